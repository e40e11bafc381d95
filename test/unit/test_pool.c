/*
 * test_pool.c: storage/base/pool.c, the process's bounded pool of workers.
 *
 * A bad LITESTREAM_POOL_THREADS is refused with what to do; the lanes are
 * sized from it; a task runs when due and again when woken, never on two
 * workers at once, and a wake while it runs is not lost; light work runs
 * on the spool lane (heavy = 0) even while every upload worker is blocked
 * in a slow pass (the blocking problem, docs/architecture.md 3); no lane
 * ever has more workers than its bound; pool_remove() waits for a running
 * pass and the task never runs again; shy passes leave one upload worker
 * free; a forked child gets an empty pool that works; pool_wake_at() makes
 * an idle task due by its time, never later than a due time it already
 * has, and is kept when it comes during a pass.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/base/clock.h"
#include "storage/base/pool.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

#define NT 24 /* tasks of the bound test */

typedef struct probe {
    pool_task task;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int runs, light_runs, inside, overlap;
    int block;       /* heavy passes wait until this is 0 */
    int64_t next;    /* heavy due after a pass (POOL_NEVER: until woken) */
    int light_again; /* light passes: due again at once this many times */
} probe;

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_closed, gate_waiting;

static void
probe_init(probe *p)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->next = POOL_NEVER;
}

static void
probe_run(void *ctx, int heavy, int64_t due[2])
{
    probe *p = ctx;
    pthread_mutex_lock(&p->mu);
    if (p->inside++)
        p->overlap = 1;
    pthread_mutex_unlock(&p->mu);
    if (heavy && __atomic_load_n(&p->block, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&gate_mu);
        gate_waiting++;
        pthread_cond_broadcast(&gate_cv);
        while (gate_closed)
            pthread_cond_wait(&gate_cv, &gate_mu);
        gate_waiting--;
        pthread_mutex_unlock(&gate_mu);
    } else {
        struct timespec ts = {0, 200000}; /* a little work */
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&p->mu);
    p->inside--;
    p->runs++;
    if (!heavy)
        p->light_runs++;
    due[POOL_HEAVY] = p->next;
    if (p->light_again > 0) {
        p->light_again--;
        due[POOL_LIGHT] = clock_now_ms();
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits up to 10 s for p->runs >= n (light: p->light_runs). */
static int
wait_runs(probe *p, int n, int light)
{
    struct timespec dl;
    clock_deadline(&dl, 10000);
    pthread_mutex_lock(&p->mu);
    while ((light ? p->light_runs : p->runs) < n)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) != 0)
            break;
    int got = light ? p->light_runs : p->runs;
    pthread_mutex_unlock(&p->mu);
    return got >= n;
}

static int
runs_of(probe *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->runs;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void
test_env(void)
{
    probe p;
    char *zErr = NULL;
    int64_t due[2] = {POOL_NEVER, POOL_NEVER};
    probe_init(&p);
    setenv("LITESTREAM_POOL_THREADS", "many", 1);
    int rc = pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr);
    ok(rc != SQLITE_OK && zErr && strstr(zErr, "LITESTREAM_POOL_THREADS") &&
           strstr(zErr, "from 3 to 64"),
       "a bad LITESTREAM_POOL_THREADS is refused: %s", zErr ? zErr : "-");
    sqlite3_free(zErr);
    zErr = NULL;
    setenv("LITESTREAM_POOL_THREADS", "2", 1);
    rc = pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr);
    ok(rc != SQLITE_OK && zErr, "too few threads refused: %s",
       zErr ? zErr : "-");
    sqlite3_free(zErr);
    zErr = NULL;
    setenv("LITESTREAM_POOL_THREADS", "6", 1);
    rc = pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr);
    pool_info in;
    pool_get_info(&in);
    ok(rc == SQLITE_OK && in.bound == 6 && in.lane_bound[0] == 1 &&
           in.lane_bound[1] == 4 && in.lane_bound[2] == 1,
       "LITESTREAM_POOL_THREADS=6: lanes 1 + %d + %d", in.lane_bound[1],
       in.lane_bound[2]);
    pool_remove(&p.task);
}

static void
test_wake(void)
{
    probe p;
    char *zErr = NULL;
    int64_t due[2] = {POOL_NEVER, clock_now_ms()};
    probe_init(&p);
    int rc = pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr);
    ok(rc == SQLITE_OK && wait_runs(&p, 1, 0), "a task due now runs");
    /* On the spool lane, or on an upload worker when the spool lane's
     * worker is not free at that moment: a pass either way. */
    int before = runs_of(&p);
    pool_wake(&p.task, POOL_LIGHT);
    ok(wait_runs(&p, before + 1, 0), "a light wake runs a pass");
    before = runs_of(&p);
    pool_wake(&p.task, POOL_HEAVY);
    ok(wait_runs(&p, before + 1, 0), "a heavy wake runs a pass");
    /* Many wakes from several threads' worth of calls: never two passes
     * at once, and the last wake is followed by a pass. */
    for (int i = 0; i < 2000; i++) {
        pool_wake(&p.task, i % 2 ? POOL_HEAVY : POOL_LIGHT);
        if (i % 100 == 0) {
            struct timespec ts = {0, 300000};
            nanosleep(&ts, NULL);
        }
    }
    before = runs_of(&p);
    pool_wake(&p.task, POOL_HEAVY);
    ok(wait_runs(&p, before + 1, 0), "the last of 2000 wakes ran a pass");
    ok(!p.overlap, "never two passes of one task at once");

    /* A due time in the future is kept, an idle task is left alone. */
    before = runs_of(&p);
    pthread_mutex_lock(&p.mu);
    p.next = clock_now_ms() + 150;
    pthread_mutex_unlock(&p.mu);
    pool_wake(&p.task, POOL_HEAVY); /* pass 1 sets the due time */
    ok(wait_runs(&p, before + 2, 0), "a due time 150 ms ahead came");
    pthread_mutex_lock(&p.mu);
    p.next = POOL_NEVER;
    pthread_mutex_unlock(&p.mu);
    pool_remove(&p.task);
    int after = runs_of(&p);
    pool_wake(&p.task, POOL_HEAVY); /* a no-op on a removed task */
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    ok(runs_of(&p) == after, "a removed task never runs again");
}

/*
 * Every upload worker blocked in a slow pass: light work of the other
 * tasks still runs (on the spool lane), and no lane grows past its bound.
 */
static void
test_bound(void)
{
    static probe p[NT];
    char *zErr = NULL;
    pool_info in;
    pool_get_info(&in);
    int up = in.lane_bound[1];
    gate_closed = 1;
    for (int i = 0; i < NT; i++) {
        probe_init(&p[i]);
        p[i].block = 1;
        int64_t due[2] = {POOL_NEVER, clock_now_ms()};
        if (pool_add(&p[i].task, probe_run, &p[i], POOL_FG, due, &zErr) !=
            SQLITE_OK) {
            ok(0, "pool_add: %s", zErr ? zErr : "-");
            return;
        }
    }
    struct timespec dl;
    clock_deadline(&dl, 10000);
    pthread_mutex_lock(&gate_mu);
    while (gate_waiting < up)
        if (pthread_cond_timedwait(&gate_cv, &gate_mu, &dl) != 0)
            break;
    int waiting = gate_waiting;
    pthread_mutex_unlock(&gate_mu);
    ok(waiting == up, "all %d upload workers blocked in slow passes (%d)", up,
       waiting);
    pool_get_info(&in);
    ok(in.workers[1] <= in.lane_bound[1] && in.workers[0] <= 1,
       "lanes within their bounds: spool %d, upload %d of %d", in.workers[0],
       in.workers[1], in.lane_bound[1]);
    /* Light work of a task whose heavy pass waits for a worker. */
    int idle = NT - 1;
    for (int i = 0; i < NT; i++)
        if (runs_of(&p[i]) == 0 && !p[i].inside)
            idle = i;
    pool_wake(&p[idle].task, POOL_LIGHT);
    ok(wait_runs(&p[idle], 1, 1),
       "spooling of another database runs while every upload worker is "
       "blocked");
    pthread_mutex_lock(&gate_mu);
    gate_closed = 0;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    int all = 1;
    for (int i = 0; i < NT; i++)
        all &= wait_runs(&p[i], 1, 0);
    ok(all, "every task's heavy pass ran once the workers were free");
    pool_get_info(&in);
    ok(in.workers[1] <= in.lane_bound[1],
       "the upload lane stayed within its bound (%d)", in.workers[1]);
    for (int i = 0; i < NT; i++)
        pool_remove(&p[i].task);
}

/* pool_remove() of a task in a slow pass waits until the pass ends. */
static probe slow;

static void *
release_later(void *arg)
{
    (void)arg;
    struct timespec dl;
    clock_deadline(&dl, 10000);
    pthread_mutex_lock(&gate_mu);
    while (gate_waiting < 1)
        if (pthread_cond_timedwait(&gate_cv, &gate_mu, &dl) != 0)
            break;
    gate_closed = 0;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    return NULL;
}

static void
test_remove(void)
{
    char *zErr = NULL;
    pthread_t th;
    probe_init(&slow);
    slow.block = 1;
    gate_closed = 1;
    int64_t due[2] = {POOL_NEVER, clock_now_ms()};
    int rc = pool_add(&slow.task, probe_run, &slow, POOL_BG, due, &zErr);
    pthread_create(&th, NULL, release_later, NULL);
    /* Wait until the pass is inside, then remove: it must wait. */
    struct timespec dl;
    clock_deadline(&dl, 10000);
    pthread_mutex_lock(&gate_mu);
    while (gate_waiting < 1)
        if (pthread_cond_timedwait(&gate_cv, &gate_mu, &dl) != 0)
            break;
    pthread_mutex_unlock(&gate_mu);
    pool_remove(&slow.task);
    ok(rc == SQLITE_OK && runs_of(&slow) == 1 && !slow.inside,
       "pool_remove() returned after the running pass ended");
    pthread_join(th, NULL);
}

/* A light pass that asks for more light work runs again at once. */
static void
test_light_again(void)
{
    probe p;
    char *zErr = NULL;
    probe_init(&p);
    p.light_again = 5;
    int64_t due[2] = {clock_now_ms(), POOL_NEVER};
    int rc = pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr);
    int got = rc == SQLITE_OK && wait_runs(&p, 6, 0);
    ok(got, "a pass due again at once runs again (%d passes)", runs_of(&p));
    pool_remove(&p.task);
}

/*
 * Shy passes (retries of a failing replica): at most the upload lane's
 * bound - 1 at once, so one upload worker always stays for the others;
 * a forked child starts with none.
 */
static void
test_shy(void)
{
    pool_info in;
    pool_get_info(&in);
    int room = in.lane_bound[1] - 1, got = 0;
    for (int i = 0; i < room + 2; i++)
        got += pool_shy_enter();
    pool_get_info(&in);
    ok(got == room && in.shy == room,
       "%d shy passes at once with %d upload workers (asked %d)", got,
       in.lane_bound[1], room + 2);
    pool_shy_leave();
    ok(pool_shy_enter() == 1 && pool_shy_enter() == 0,
       "one leaves: exactly one more may enter");
    pid_t pid = fork();
    if (pid == 0) {
        int n = 0;
        while (n < room + 1 && pool_shy_enter())
            n++;
        _exit(n == room ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "a forked child starts with no shy pass of the parent's");
    for (int i = 0; i < room; i++)
        pool_shy_leave();
    pool_get_info(&in);
    ok(in.shy == 0, "all left (%d)", in.shy);
}

/* Waits up to 10 s for p->runs >= n; the clock_now_ms() when it saw it
 * (0: it did not come). */
static int64_t
when_runs(probe *p, int n)
{
    return wait_runs(p, n, 0) ? clock_now_ms() : 0;
}

/*
 * pool_wake_at(): an idle task (due never) runs at the time given, not at
 * once; a time already past is now; a task due sooner stays due then; a
 * wake_at during a pass makes the task due by that time after it.
 */
static void
test_wake_at(void)
{
    probe p;
    char *zErr = NULL;
    probe_init(&p);
    int64_t due[2] = {POOL_NEVER, POOL_NEVER};
    int rc = pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr);
    int64_t t0 = clock_now_ms();
    pool_wake_at(&p.task, POOL_HEAVY, t0 + 300);
    int64_t t1 = when_runs(&p, 1);
    ok(rc == SQLITE_OK && t1 >= t0 + 300,
       "an idle task woken for 300 ms ahead runs then, not at once (%lld ms)",
       (long long)(t1 - t0));
    t0 = clock_now_ms();
    pool_wake_at(&p.task, POOL_HEAVY, t0 - 5000);
    ok(when_runs(&p, 2) != 0, "a time already past runs it now");
    /* Due in 200 ms: a wake_at an hour ahead leaves it due in 200 ms. */
    pthread_mutex_lock(&p.mu);
    p.next = clock_now_ms() + 200;
    pthread_mutex_unlock(&p.mu);
    pool_wake(&p.task, POOL_HEAVY);
    ok(wait_runs(&p, 3, 0), "a pass set the due time 200 ms ahead");
    pthread_mutex_lock(&p.mu);
    p.next = POOL_NEVER;
    pthread_mutex_unlock(&p.mu);
    pool_wake_at(&p.task, POOL_HEAVY, clock_now_ms() + 3600000);
    ok(wait_runs(&p, 4, 0), "... and it still came (a later time is no delay)");
    /* During a pass: due by the time given once the pass ends. */
    gate_closed = 1;
    __atomic_store_n(&p.block, 1, __ATOMIC_RELEASE);
    pool_wake(&p.task, POOL_HEAVY);
    struct timespec dl;
    clock_deadline(&dl, 10000);
    pthread_mutex_lock(&gate_mu);
    while (gate_waiting < 1)
        if (pthread_cond_timedwait(&gate_cv, &gate_mu, &dl) != 0)
            break;
    pthread_mutex_unlock(&gate_mu);
    __atomic_store_n(&p.block, 0, __ATOMIC_RELEASE);
    t0 = clock_now_ms();
    pool_wake_at(&p.task, POOL_HEAVY, t0 + 250);
    pthread_mutex_lock(&gate_mu);
    gate_closed = 0;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    ok(wait_runs(&p, 5, 0), "the blocked pass ended");
    t1 = when_runs(&p, 6);
    ok(t1 >= t0 + 250,
       "a wake_at during a pass ran the task by its time "
       "after it, not at once (%lld ms)",
       (long long)(t1 - t0));
    pool_remove(&p.task);
}

/* fork(): the child's pool starts empty and works. */
static void
test_fork(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        pool_info in;
        pool_get_info(&in);
        if (in.tasks != 0 || in.workers[0] + in.workers[1] + in.workers[2])
            _exit(2);
        probe p;
        char *zErr = NULL;
        probe_init(&p);
        int64_t due[2] = {POOL_NEVER, clock_now_ms()};
        if (pool_add(&p.task, probe_run, &p, POOL_FG, due, &zErr) != SQLITE_OK)
            _exit(3);
        if (!wait_runs(&p, 1, 0))
            _exit(4);
        pool_remove(&p.task);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
       "a forked child starts with an empty pool that runs its tasks "
       "(exit %d)",
       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int
main(void)
{
    api_init();
    test_env();
    test_wake();
    test_light_again();
    test_wake_at();
    test_bound();
    test_remove();
    test_shy();
    test_fork();
    return tap_done();
}
