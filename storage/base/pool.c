/*
 * storage/base/pool.c: the process's bounded pool of worker threads
 * (pool.h; docs/architecture.md 3, "Threads").
 *
 * Each lane keeps a binary min-heap of the tasks that have work for it,
 * keyed by when (pool_task.key[lane]); a task with no work for a lane is
 * not in that lane's heap, so an idle database costs nothing until its
 * next due time.  A running task is in no heap (invariant 1 of pool.h).
 *
 * Idle workers of a lane: at most one "leader" sleeps until the lane's
 * earliest key; the others ("followers") sleep until signalled, and end
 * after FOLLOW_IDLE_MS without being needed (the lane's last worker
 * stays).  A leader that takes a task hands the watch to a follower; with
 * none and more runnable work, a new worker starts, up to the lane's bound.
 *
 * Threads: any thread calls pool_add, pool_wake, pool_remove; the workers
 * run the loop below.  Everything shared is guarded by P.mu, which is never
 * held while a task runs (invariant 4).
 */
#include "storage/base/pool.h"

#include "storage/base/clock.h"
#include "storage/base/sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FOLLOW_IDLE_MS 60000
#define BG_NICE        10 /* compaction: the application gets the CPU first */
#define BOUND_MIN      3
#define BOUND_MAX      64

typedef struct lane_heap {
    pool_task **a;
    int n, cap;
} lane_heap;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t lead[POOL_LANES], follow[POOL_LANES], done;
    lane_heap h[POOL_LANES];
    int bound, cap[POOL_LANES]; /* 0: not sized yet */
    int workers[POOL_LANES], leader[POOL_LANES], nfollow[POOL_LANES];
    int fsignals[POOL_LANES];       /* followers signalled, not yet awake */
    int lsignal[POOL_LANES];        /* the leader was signalled */
    int64_t lead_until[POOL_LANES]; /* the leader sleeps until then */
    int ntasks;
    int shy; /* passes between pool_shy_enter() and pool_shy_leave() */
    uint64_t passes;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static const char *const lane_name[POOL_LANES] = {"ls-spool", "ls-replicator",
                                                  "ls-compactor"};

/* fork(): the child has none of the parent's workers; its tasks belong to
 * owners the child abandons.  Everything starts again, empty (the heaps'
 * memory is left behind: a parent thread may have been resizing it). */
static void
pool_child(void)
{
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.done, NULL);
    for (int l = 0; l < POOL_LANES; l++) {
        pthread_cond_init(&P.lead[l], NULL);
        pthread_cond_init(&P.follow[l], NULL);
        memset(&P.h[l], 0, sizeof(P.h[l]));
        P.workers[l] = P.leader[l] = P.nfollow[l] = 0;
        P.fsignals[l] = P.lsignal[l] = 0;
    }
    P.ntasks = 0;
    P.shy = 0;
}

static void
pool_init(void)
{
    pthread_cond_init(&P.done, NULL);
    for (int l = 0; l < POOL_LANES; l++) {
        pthread_cond_init(&P.lead[l], NULL);
        pthread_cond_init(&P.follow[l], NULL);
    }
    pthread_atfork(NULL, NULL, pool_child);
}

/* ---- heaps ---------------------------------------------------------- */

static void
heap_set(lane_heap *h, int lane, int i, pool_task *t)
{
    h->a[i] = t;
    t->hidx[lane] = i;
}

static void
heap_up(lane_heap *h, int lane, int i)
{
    pool_task *t = h->a[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h->a[p]->key[lane] <= t->key[lane])
            break;
        heap_set(h, lane, i, h->a[p]);
        i = p;
    }
    heap_set(h, lane, i, t);
}

static void
heap_down(lane_heap *h, int lane, int i)
{
    pool_task *t = h->a[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->a[c + 1]->key[lane] < h->a[c]->key[lane])
            c++;
        if (t->key[lane] <= h->a[c]->key[lane])
            break;
        heap_set(h, lane, i, h->a[c]);
        i = c;
    }
    heap_set(h, lane, i, t);
}

static void
heap_del(int lane, pool_task *t)
{
    lane_heap *h = &P.h[lane];
    int i = t->hidx[lane];
    if (i < 0)
        return;
    t->hidx[lane] = -1;
    pool_task *last = h->a[--h->n];
    if (i == h->n)
        return;
    heap_set(h, lane, i, last);
    heap_down(h, lane, i);
    heap_up(h, lane, last->hidx[lane]);
}

/* ---- workers -------------------------------------------------------- */

static void *worker_main(void *arg);

/* Starts a worker of lane l (P.mu held).  0 on success. */
static int
spawn(int l)
{
    pthread_t tid;
    pthread_attr_t at;
    int ok = pthread_attr_init(&at) == 0;
    ok = ok && pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0;
    ok = ok && pthread_create(&tid, &at, worker_main, (void *)(intptr_t)l) == 0;
    pthread_attr_destroy(&at);
    if (!ok)
        return -1;
    P.workers[l]++;
    return 0;
}

/*
 * Lane l's heap changed (P.mu held): someone must run its top now if it is
 * due, and someone must watch its next due time.  Signals already sent and
 * not yet taken are counted, so a burst of due tasks starts new workers
 * (up to the bound) rather than signalling one sleeper again and again.
 */
static void
attend(int l, int64_t now)
{
    lane_heap *h = &P.h[l];
    if (h->n == 0)
        return;
    int64_t k = h->a[0]->key[l];
    int follower = P.nfollow[l] > P.fsignals[l];
    int leader = P.leader[l] && !P.lsignal[l];
    if (k <= now) {
        if (follower) {
            P.fsignals[l]++;
            pthread_cond_signal(&P.follow[l]);
        } else if (leader) {
            P.lsignal[l] = 1;
            pthread_cond_signal(&P.lead[l]);
        } else if (P.workers[l] < P.cap[l]) {
            spawn(l);
        }
    } else if (P.leader[l]) {
        if (leader && k < P.lead_until[l]) { /* the watch wakes sooner */
            P.lsignal[l] = 1;
            pthread_cond_signal(&P.lead[l]);
        }
    } else if (follower) {
        P.fsignals[l]++; /* it becomes the watch */
        pthread_cond_signal(&P.follow[l]);
    } else if (P.workers[l] == 0) {
        spawn(l);
    }
}

/* Puts a task that is not running into the heaps its due times call for
 * (P.mu held). */
static void
place(pool_task *t, int64_t now, int self_lane)
{
    int64_t lt = t->due[POOL_LIGHT], hv = t->due[POOL_HEAVY];
    int64_t late =
        lt == POOL_NEVER ? POOL_NEVER : lt + (t->urgent ? 0 : POOL_GRACE_MS);
    for (int l = 0; l < POOL_LANES; l++)
        heap_del(l, t);
    t->key[0] = t->cls == POOL_FG ? lt : POOL_NEVER;
    t->key[1] = t->cls == POOL_FG ? (hv < late ? hv : late) : POOL_NEVER;
    t->key[2] = t->cls == POOL_BG ? (hv < lt ? hv : lt) : POOL_NEVER;
    for (int l = 0; l < POOL_LANES; l++) {
        if (t->key[l] == POOL_NEVER)
            continue;
        lane_heap *h = &P.h[l];
        h->a[h->n] = t;
        t->hidx[l] = h->n++;
        heap_up(h, l, h->n - 1);
        if (l != self_lane) /* that worker looks at its heap next */
            attend(l, now);
    }
}

/* Runs task t, taken from lane l's heap (P.mu held on entry and exit). */
static void
run_pass(int l, pool_task *t)
{
    for (int k = 0; k < POOL_LANES; k++)
        heap_del(k, t);
    t->running = 1;
    t->pend_at[0] = t->pend_at[1] = POOL_NEVER;
    t->urgent = 0;
    /* The rest of the lane needs a watch while this pass runs. */
    attend(l, clock_now_ms());
    pthread_mutex_unlock(&P.mu);

    int64_t due[2] = {POOL_NEVER, POOL_NEVER};
    t->xRun(t->ctx, l != 0, due);

    pthread_mutex_lock(&P.mu);
    P.passes++;
    t->running = 0;
    int64_t now = clock_now_ms();
    for (int k = 0; k < 2; k++) {
        int64_t p = t->pend_at[k] < now ? now : t->pend_at[k];
        t->due[k] = p < due[k] ? p : due[k];
    }
    if (t->removing)
        pthread_cond_broadcast(&P.done);
    else
        place(t, now, l);
}

static void *
worker_main(void *arg)
{
    int l = (int)(intptr_t)arg;
    pthread_setname_np(pthread_self(), lane_name[l]);
    /* Linux applies a thread id's nice value to that thread only. */
    if (l == 2)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BG_NICE);

    pthread_mutex_lock(&P.mu);
    for (;;) {
        lane_heap *h = &P.h[l];
        pool_task *t = h->n > 0 ? h->a[0] : NULL;
        int64_t now = clock_now_ms();
        if (t && t->key[l] <= now) {
            run_pass(l, t);
            continue;
        }
        struct timespec ts;
        if (!P.leader[l]) {
            P.leader[l] = 1;
            P.lsignal[l] = 0;
            P.lead_until[l] = t ? t->key[l] : INT64_MAX;
            if (t) {
                clock_deadline(&ts, t->key[l] - now);
                pthread_cond_timedwait(&P.lead[l], &P.mu, &ts);
            } else {
                pthread_cond_wait(&P.lead[l], &P.mu);
            }
            P.leader[l] = 0;
            continue;
        }
        /* The watch may sleep past this lane's new earliest due time. */
        if (t && t->key[l] < P.lead_until[l] && !P.lsignal[l]) {
            P.lsignal[l] = 1;
            pthread_cond_signal(&P.lead[l]);
        }
        P.nfollow[l]++;
        clock_deadline(&ts, FOLLOW_IDLE_MS);
        int w = pthread_cond_timedwait(&P.follow[l], &P.mu, &ts);
        P.nfollow[l]--;
        if (P.fsignals[l] > 0)
            P.fsignals[l]--;
        if (w == ETIMEDOUT && P.workers[l] > 1 && P.leader[l])
            break;
    }
    P.workers[l]--;
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

/* ---- sizing --------------------------------------------------------- */

/* The bound from LITESTREAM_POOL_THREADS or the cores (P.mu held). */
static int
size_pool(char **pzErr)
{
    const char *z = getenv("LITESTREAM_POOL_THREADS");
    int n;
    if (z && z[0]) {
        char *end = NULL;
        long v = strtol(z, &end, 10);
        if (*end || v < BOUND_MIN || v > BOUND_MAX) {
            *pzErr = sqlite3_mprintf(
                "litestream: LITESTREAM_POOL_THREADS='%s' is not a number of "
                "threads from %d to %d: set it to one (or unset it for the "
                "default, min(8, max(4, 2 x cores)))",
                z, BOUND_MIN, BOUND_MAX);
            return SQLITE_ERROR;
        }
        n = (int)v;
    } else {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)(2 * c) : 4;
        n = n < 4 ? 4 : n > 8 ? 8 : n;
    }
    P.bound = n;
    P.cap[0] = 1;
    P.cap[2] = n / 4 > 1 ? n / 4 : 1;
    P.cap[1] = n - P.cap[0] - P.cap[2];
    return SQLITE_OK;
}

/* Room in every heap for one more task (P.mu held). */
static int
reserve(void)
{
    for (int l = 0; l < POOL_LANES; l++) {
        lane_heap *h = &P.h[l];
        if (P.ntasks + 1 <= h->cap)
            continue;
        int cap = h->cap ? h->cap * 2 : 64;
        pool_task **a = realloc(h->a, sizeof(*a) * (size_t)cap);
        if (!a)
            return SQLITE_NOMEM;
        h->a = a;
        h->cap = cap;
    }
    return SQLITE_OK;
}

/* ---- API ------------------------------------------------------------ */

int
pool_add(pool_task *t, pool_fn xRun, void *ctx, int cls, const int64_t due[2],
         char **pzErr)
{
    int rc = SQLITE_OK;
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&P.mu);
    if (!P.bound)
        rc = size_pool(pzErr);
    if (rc == SQLITE_OK && reserve() != SQLITE_OK) {
        rc = SQLITE_NOMEM;
        *pzErr = sqlite3_mprintf("litestream: out of memory for the pool");
    }
    /* The lanes this class uses need a worker to watch their heaps. */
    for (int l = 0; rc == SQLITE_OK && l < POOL_LANES; l++) {
        int used = cls == POOL_BG ? l == 2 : l < 2;
        if (used && P.workers[l] == 0 && spawn(l) != 0) {
            rc = SQLITE_ERROR;
            *pzErr = sqlite3_mprintf("litestream: cannot start a worker "
                                     "thread of the pool (%s)",
                                     strerror(errno));
        }
    }
    if (rc == SQLITE_OK) {
        memset(t, 0, sizeof(*t));
        t->xRun = xRun;
        t->ctx = ctx;
        t->cls = cls;
        t->due[0] = due[0];
        t->due[1] = due[1];
        for (int l = 0; l < POOL_LANES; l++)
            t->hidx[l] = -1;
        t->added = 1;
        P.ntasks++;
        place(t, clock_now_ms(), -1);
    }
    pthread_mutex_unlock(&P.mu);
    return rc;
}

/* pool_wake() and pool_wake_at() (P.mu held). */
static void
wake_locked(pool_task *t, int kind, int64_t when, int urgent)
{
    if (!t->added || t->removing)
        return;
    if (t->running) {
        if (when < t->pend_at[kind])
            t->pend_at[kind] = when;
        return;
    }
    int64_t now = clock_now_ms();
    if (when < now)
        when = now;
    if (t->due[kind] > when)
        t->due[kind] = when;
    else if (!urgent)
        return; /* already due by then: where it is */
    /* Light work goes to the spool lane, unless nobody there is free to
     * take it right away. */
    if (urgent && kind == POOL_LIGHT && !P.leader[0] && !P.nfollow[0])
        t->urgent = 1;
    place(t, now, -1);
}

void
pool_wake(pool_task *t, int kind)
{
    pthread_mutex_lock(&P.mu);
    wake_locked(t, kind, INT64_MIN, 1);
    pthread_mutex_unlock(&P.mu);
}

void
pool_wake_at(pool_task *t, int kind, int64_t when)
{
    pthread_mutex_lock(&P.mu);
    wake_locked(t, kind, when, 0);
    pthread_mutex_unlock(&P.mu);
}

void
pool_remove(pool_task *t)
{
    if (!t || !t->added)
        return;
    pthread_mutex_lock(&P.mu);
    t->removing = 1;
    while (t->running)
        pthread_cond_wait(&P.done, &P.mu);
    for (int l = 0; l < POOL_LANES; l++)
        heap_del(l, t);
    t->added = 0;
    P.ntasks--;
    pthread_mutex_unlock(&P.mu);
}

int
pool_shy_enter(void)
{
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&P.mu);
    int room = P.cap[1] > 1 ? P.cap[1] - 1 : 1;
    int ok = P.shy < room;
    if (ok)
        P.shy++;
    pthread_mutex_unlock(&P.mu);
    return ok;
}

void
pool_shy_leave(void)
{
    pthread_mutex_lock(&P.mu);
    if (P.shy > 0)
        P.shy--;
    pthread_mutex_unlock(&P.mu);
}

void
pool_get_info(pool_info *out)
{
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&P.mu);
    memset(out, 0, sizeof(*out));
    out->bound = P.bound;
    for (int l = 0; l < POOL_LANES; l++) {
        out->lane_bound[l] = P.cap[l];
        out->workers[l] = P.workers[l];
    }
    out->tasks = P.ntasks;
    out->shy = P.shy;
    out->passes = P.passes;
    pthread_mutex_unlock(&P.mu);
}
