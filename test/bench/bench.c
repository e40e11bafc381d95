/*
 * test/bench/bench.c: the benchmark of the litestream extension against
 * plain SQLite and against the Litestream v0.3.13 daemon, in one run.
 *
 *   bench -ext BUILD/litestream -daemon PATH/litestream -work DIR -out FILE.md
 *
 * Measures (see docs/benchmarks.md):
 *   a. 1-row transactions/s: plain SQLite, the extension (1 s and 100 ms sync
 *      interval), plain SQLite + the daemon (1 s and 100 ms), repeated and
 *      interleaved, median reported;
 *   b. replication lag at a paced rate (commit -> L0 object appears, seen by
 *      inotify on <replica>/ltx/0);
 *   c. one big transaction: COMMIT returning -> the object holding it appears;
 *   d. restore of a large database vs cp (and cp + sync) vs the daemon;
 *   e. peak memory (VmHWM) of the writer process for a and c.
 *
 * Every measurement runs in a child process of its own (fork), so the
 * extension (which loads permanently and becomes the default VFS) never
 * leaks into the plain-SQLite measurements, and VmHWM is per measurement.
 * The parent never opens a database before the last fork.
 *
 * Sizes come from environment variables (BENCH_QUICK=1 gives a smoke run of
 * well under a minute):
 *   BENCH_SECONDS (5)  BENCH_WARMUP (1)  BENCH_REPS (3)  BENCH_VALUE (100)
 *   BENCH_LAG_SECONDS (10)  BENCH_LAG_RATE (100)
 *   BENCH_BIG_MB (200)  BENCH_BIG_ROW_KB (1024)
 *   BENCH_RESTORE_MB (500)
 *   BENCH_DAEMON (1; 0 skips every daemon measurement)
 *   BENCH_ONLY (a list of letters among "abcd", default all)
 */
#define _GNU_SOURCE
#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "bench"
#include "benchutil.h"

extern char **environ;

/* ---- options ------------------------------------------------------------ */

static const char *g_ext;    /* path of the extension, without ".so" */
static const char *g_daemon; /* litestream v0.3.13 binary */
static char g_work[4096];    /* scratch directory (absolute) */
static const char *g_out;    /* markdown results */

static double opt_seconds, opt_warmup, opt_lag_seconds, opt_lag_rate;
static int opt_reps, opt_value, opt_big_mb, opt_big_row_kb, opt_restore_mb;
static int opt_daemon, opt_quick;
static const char *opt_only;

static double
env_num(const char *name, double quick, double full)
{
    const char *z = getenv(name);
    if (z && *z)
        return atof(z);
    return opt_quick ? quick : full;
}

/* ---- small helpers --------------------------------------------------------
 */

static off_t
file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static off_t tree_bytes_acc;
static int
tree_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)p;
    (void)f;
    if (flag == FTW_F)
        tree_bytes_acc += st->st_size;
    return 0;
}

static off_t
tree_bytes(const char *path)
{
    tree_bytes_acc = 0;
    nftw(path, tree_cb, 64, FTW_PHYS);
    return tree_bytes_acc;
}

/* Nearest-rank percentile of a sorted array. */
static double
pct(const double *v, int n, double p)
{
    if (n <= 0)
        return -1;
    int i = (int)(p / 100.0 * n + 0.999999) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return v[i];
}

/* Drops the page cache; 1 when it worked. */
static int
drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0)
        return 0;
    int ok = write(fd, "3\n", 2) == 2;
    close(fd);
    return ok;
}

/* ---- processes ------------------------------------------------------------
 */

/* Spawns argv with stdout+stderr appended to zLog (NULL: inherited). */
static pid_t
spawn(char *const argv[], const char *zLog)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    posix_spawn_file_actions_init(&fa);
    if (zLog) {
        posix_spawn_file_actions_addopen(&fa, 1, zLog,
                                         O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
    }
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        die("cannot run %s: %s", argv[0], strerror(rc));
    return pid;
}

/* Runs a shell command; returns its exit status. */
static int
run_sh(const char *cmd)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    return wait_pid(spawn(argv, NULL));
}

/* ---- results sent back by the measurement children ------------------------
 */

typedef struct {
    int ok;
    double v[16];
    long hwm_kb;
    double foreign; /* CPUs used by other processes meanwhile (0..ncpu) */
    char note[512];
} result;

/* Busy CPU seconds of the whole machine so far (from /proc/stat). */
static double
machine_busy_s(void)
{
    unsigned long long u = 0, n = 0, sy = 0, id = 0, io = 0, irq = 0, sirq = 0,
                       st = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &n, &sy,
               &id, &io, &irq, &sirq, &st) < 4)
        u = n = sy = irq = sirq = st = 0;
    fclose(f);
    return (double)(u + n + sy + irq + sirq + st) / sysconf(_SC_CLK_TCK);
}

static double g_foreign_busy, g_foreign_wall; /* over the whole run */

typedef void (*child_fn)(result *, void *);

static result
in_child(child_fn fn, void *arg)
{
    int fds[2];
    result r;
    memset(&r, 0, sizeof r);
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0)
        die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        result cr;
        memset(&cr, 0, sizeof cr);
        fn(&cr, arg);
        cr.hwm_kb = vm_hwm_kb();
        if (write(fds[1], &cr, sizeof cr) != (ssize_t)sizeof cr)
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    int64_t w0 = now_ns();
    double b0 = machine_busy_s(), c0 = children_cpu_s();
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = read(fds[0], (char *)&r + got, sizeof r - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    int st = wait_pid(pid);
    double wall = (double)(now_ns() - w0) / 1e9;
    double other = (machine_busy_s() - b0) - (children_cpu_s() - c0);
    if (other < 0)
        other = 0;
    g_foreign_busy += other;
    g_foreign_wall += wall;
    r.foreign = wall > 0 ? other / wall : 0;
    if (got != sizeof r) {
        memset(&r, 0, sizeof r);
        snprintf(r.note, sizeof r.note, "child failed (status %d)", st);
    }
    return r;
}

/* ---- SQLite helpers (children only) -------------------------------------- */

static void
exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        die("%s: %s", sql, err ? err : sqlite3_errmsg(db));
}

/* First column of the first row as text (malloc'd), or NULL. */
static char *
query_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *z = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die("%s: %s", sql, sqlite3_errmsg(db));
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        z = strdup(t ? t : "");
    } else if (rc != SQLITE_DONE) {
        die("%s: %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return z;
}

static int64_t
query_int(sqlite3 *db, const char *sql)
{
    char *z = query_text(db, sql);
    int64_t v = z ? strtoll(z, NULL, 10) : -1;
    free(z);
    return v;
}

/* Loads the extension into this process (it becomes the default VFS). */
static void
load_extension(void)
{
    sqlite3 *boot;
    char *err = NULL;
    if (sqlite3_open(":memory:", &boot) != SQLITE_OK)
        die("open :memory:");
    sqlite3_enable_load_extension(boot, 1);
    if (sqlite3_load_extension(boot, g_ext, NULL, &err) != SQLITE_OK)
        die("load %s: %s", g_ext, err ? err : "?");
    sqlite3_close(boot);
}

/* Opens zDb with the benchmark's journal settings. */
static sqlite3 *
open_db(const char *zDb)
{
    sqlite3 *db;
    if (sqlite3_open(zDb, &db) != SQLITE_OK)
        die("open %s: %s", zDb, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 10000);
    exec_sql(db, "PRAGMA journal_mode=WAL");
    exec_sql(db, "PRAGMA synchronous=NORMAL");
    return db;
}

/* Starts replication with the extension. */
static void
replicate(sqlite3 *db, const char *zRep, int interval_ms)
{
    char *s = fmt("PRAGMA litestream_url='file://%s'", zRep);
    exec_sql(db, s);
    free(s);
    s = fmt("PRAGMA litestream_sync_interval=%d", interval_ms);
    exec_sql(db, s);
    free(s);
}

static uint64_t
ext_txid(sqlite3_stmt *st)
{
    uint64_t v = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *z = (const char *)sqlite3_column_text(st, 0);
        if (z)
            v = strtoull(z, NULL, 16);
    }
    sqlite3_reset(st);
    return v;
}

static sqlite3_stmt *
prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die("%s: %s", sql, sqlite3_errmsg(db));
    return st;
}

static void
step_done(sqlite3 *db, sqlite3_stmt *st)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_BUSY)
        sqlite3_reset(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        die("step: %s", sqlite3_errmsg(db));
    sqlite3_reset(st);
}

/* ---- the daemon ------------------------------------------------------------
 */

typedef struct {
    pid_t pid;
    char *zCfg, *zLog;
} daemon_t;

static void
write_daemon_config(const char *zCfg, const char *zDb, const char *zRep,
                    int interval_ms)
{
    FILE *f = fopen(zCfg, "w");
    if (!f)
        die("cannot write %s", zCfg);
    fprintf(f,
            "dbs:\n"
            "  - path: %s\n"
            "    monitor-interval: %dms\n"
            "    replicas:\n"
            "      - type: file\n"
            "        path: %s\n"
            "        sync-interval: %dms\n",
            zDb, interval_ms, zRep, interval_ms);
    fclose(f);
}

/* Starts `litestream replicate` and waits for <rep>/generations. */
static daemon_t
daemon_start(const char *zDir, const char *zDb, const char *zRep,
             int interval_ms)
{
    daemon_t d;
    d.zCfg = fmt("%s/litestream.yml", zDir);
    d.zLog = fmt("%s/daemon.log", zDir);
    write_daemon_config(d.zCfg, zDb, zRep, interval_ms);
    char *argv[] = {(char *)g_daemon, "replicate", "-config", d.zCfg, NULL};
    d.pid = spawn(argv, d.zLog);
    char *zGen = fmt("%s/generations", zRep);
    int64_t t0 = now_ns();
    while (!exists(zGen)) {
        if (now_ns() - t0 > 30000000000LL)
            die("the daemon did not create %s in 30 s (see %s)", zGen, d.zLog);
        int st;
        if (waitpid(d.pid, &st, WNOHANG) == d.pid)
            die("the daemon exited (see %s)", d.zLog);
        sleep_ms(10);
    }
    free(zGen);
    return d;
}

static void
daemon_stop(daemon_t *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        wait_pid(d->pid);
        d->pid = 0;
    }
    free(d->zCfg);
    free(d->zLog);
}

/* Waits until the tree under zDir has not changed size for quiet_ms
 * (at most max_ms); returns the final size. */
static off_t
wait_quiet(const char *zDir, int quiet_ms, int max_ms)
{
    off_t last = tree_bytes(zDir);
    int64_t t0 = now_ns(), tchange = t0;
    while ((now_ns() - tchange) / 1000000 < quiet_ms &&
           (now_ns() - t0) / 1000000 < max_ms) {
        sleep_ms(20);
        off_t b = tree_bytes(zDir);
        if (b != last) {
            last = b;
            tchange = now_ns();
        }
    }
    return last;
}

/* ---- inotify watcher of <replica>/ltx/0 ------------------------------------
 */

typedef struct {
    uint64_t min, max;
    int64_t t; /* monotonic ns of appearance */
} object_seen;

typedef struct {
    int fd;
    pthread_t th;
    volatile int stop;
    pthread_mutex_t mu;
    object_seen *objs;
    int n, cap;
} watcher;

static int
parse_ltx_name(const char *z, uint64_t *pmin, uint64_t *pmax)
{
    if (strlen(z) != 37 || strcmp(z + 33, ".ltx") != 0 || z[16] != '-')
        return 0;
    for (int i = 0; i < 33; i++)
        if (i != 16 && !strchr("0123456789abcdefABCDEF", z[i]))
            return 0;
    *pmin = strtoull(z, NULL, 16);
    *pmax = strtoull(z + 17, NULL, 16);
    return 1;
}

static void *
watch_main(void *arg)
{
    watcher *w = arg;
    char buf[64 * 1024] __attribute__((aligned(8)));
    while (!w->stop) {
        struct pollfd p = {w->fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = read(w->fd, buf, sizeof buf);
        int64_t t = now_ns();
        for (ssize_t off = 0; n > 0 && off < n;) {
            struct inotify_event *e = (struct inotify_event *)(buf + off);
            uint64_t mn, mx;
            if (e->len && parse_ltx_name(e->name, &mn, &mx)) {
                pthread_mutex_lock(&w->mu);
                if (w->n == w->cap) {
                    w->cap = w->cap ? 2 * w->cap : 1024;
                    w->objs = realloc(w->objs, sizeof(object_seen) * w->cap);
                }
                w->objs[w->n++] = (object_seen){mn, mx, t};
                pthread_mutex_unlock(&w->mu);
            }
            off += (ssize_t)sizeof(*e) + e->len;
        }
    }
    return NULL;
}

static void
watch_start(watcher *w, const char *zDir)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->fd = inotify_init1(IN_CLOEXEC);
    if (w->fd < 0)
        die("inotify_init1: %s", strerror(errno));
    if (!exists(zDir))
        die("%s does not exist after the first litestream_sync", zDir);
    if (inotify_add_watch(w->fd, zDir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
        die("inotify_add_watch %s: %s", zDir, strerror(errno));
    pthread_create(&w->th, NULL, watch_main, w);
}

static void
watch_stop(watcher *w)
{
    w->stop = 1;
    pthread_join(w->th, NULL);
    close(w->fd);
}

/* Appearance time of the first object with max >= txid, or -1. */
static int64_t
watch_find(watcher *w, uint64_t txid, int from, int *pAt)
{
    int64_t t = -1;
    pthread_mutex_lock(&w->mu);
    for (int i = from; i < w->n; i++)
        if (w->objs[i].max >= txid) {
            t = w->objs[i].t;
            if (pAt)
                *pAt = i;
            break;
        }
    pthread_mutex_unlock(&w->mu);
    return t;
}

static int64_t
watch_wait(watcher *w, uint64_t txid, int timeout_ms)
{
    int64_t t0 = now_ns(), t;
    while ((t = watch_find(w, txid, 0, NULL)) < 0 &&
           now_ns() - t0 < (int64_t)timeout_ms * 1000000)
        sleep_ms(1);
    return t;
}

/* ---- a. 1-row transactions ------------------------------------------------
 */

enum { CFG_PLAIN, CFG_EXT1S, CFG_EXT100, CFG_D1S, CFG_D100, NCFG };
static const char *cfg_name[NCFG] = {
    "plain SQLite",
    "extension, sync interval 1000 ms",
    "extension, sync interval 100 ms",
    "plain SQLite + daemon v0.3.13, 1 s",
    "plain SQLite + daemon v0.3.13, 100 ms",
};
static const int cfg_interval[NCFG] = {0, 1000, 100, 1000, 100};

typedef struct {
    int cfg, rep;
} tps_arg;

/* v[0] tx/s, v[1] transactions, v[2] catch-up ms (litestream_sync after the
 * run), v[3] replicated == captured at the end (1/0) */
static void
child_tps(result *r, void *argp)
{
    tps_arg *a = argp;
    char *zDir = fmt("%s/a-%d-%d", g_work, a->cfg, a->rep);
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    int ext = a->cfg == CFG_EXT1S || a->cfg == CFG_EXT100;
    int dmn = a->cfg == CFG_D1S || a->cfg == CFG_D100;
    daemon_t d = {0};

    rm_rf(zDir);
    mkdir_p(zDir);
    if (ext)
        load_extension();
    sqlite3 *db = open_db(zDb);
    if (ext)
        replicate(db, zRep, cfg_interval[a->cfg]);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    if (ext)
        free(query_text(db, "SELECT litestream_sync(30000)"));
    if (dmn)
        d = daemon_start(zDir, zDb, zRep, cfg_interval[a->cfg]);

    unsigned char val[8192];
    srand(1234 + a->rep);
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (unsigned char)rand();
    sqlite3_stmt *ins = prepare(db, "INSERT INTO t(v) VALUES (?)");
    long n = 0;
    int64_t t0 = now_ns(), tw = t0 + (int64_t)(opt_warmup * 1e9), tm = 0;
    int64_t tend = tw + (int64_t)(opt_seconds * 1e9);
    long nstart = 0;
    for (;;) {
        sqlite3_bind_blob(ins, 1, val + (n * 37) % (sizeof val - opt_value),
                          opt_value, SQLITE_STATIC);
        step_done(db, ins);
        n++;
        int64_t t = now_ns();
        if (!tm && t >= tw) {
            tm = t;
            nstart = n;
        }
        if (t >= tend)
            break;
    }
    int64_t t1 = now_ns();
    sqlite3_finalize(ins);
    r->v[0] = (double)(n - nstart) / ((double)(t1 - tm) / 1e9);
    r->v[1] = (double)(n - nstart);
    if (ext) {
        int64_t s0 = now_ns();
        char *z = query_text(db, "SELECT litestream_sync(60000)");
        r->v[2] = (double)(now_ns() - s0) / 1e6;
        free(z);
        char *st = query_text(db, "SELECT litestream_status()");
        char *cap = query_text(
            db, "SELECT json_extract(litestream_status(),"
                "'$.databases[0].txid') = json_extract(litestream_status(),"
                "'$.databases[0].replicated_txid')");
        r->v[3] = cap && atoi(cap) == 1;
        if (!r->v[3])
            snprintf(r->note, sizeof r->note, "%.500s", st ? st : "");
        free(st);
        free(cap);
    }
    r->hwm_kb = vm_hwm_kb();
    sqlite3_close(db);
    if (dmn)
        daemon_stop(&d);
    rm_rf(zDir);
    r->ok = 1;
}

/* ---- b. replication lag ----------------------------------------------------
 */

typedef struct {
    int interval;
} lag_arg;

/* v[0] commits, v[1] objects, v[2] p50 ms, v[3] p90, v[4] max, v[5] commits
 * not seen in time, v[6] achieved rate */
static void
child_lag(result *r, void *argp)
{
    lag_arg *a = argp;
    char *zDir = fmt("%s/b-%d", g_work, a->interval);
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    char *zL0 = fmt("%s/ltx/0", zRep);
    rm_rf(zDir);
    mkdir_p(zDir);
    load_extension();
    sqlite3 *db = open_db(zDb);
    replicate(db, zRep, a->interval);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    free(query_text(db, "SELECT litestream_sync(30000)"));
    watcher w;
    watch_start(&w, zL0);
    /* Let one interval go by so the first commit does not ride on the
     * upload litestream_sync forced. */
    sleep_ms(a->interval + 50);

    int total = (int)(opt_lag_seconds * opt_lag_rate);
    uint64_t *txid = calloc(total, sizeof *txid);
    int64_t *tc = calloc(total, sizeof *tc);
    sqlite3_stmt *ins = prepare(db, "INSERT INTO t(v) VALUES (randomblob(?))");
    sqlite3_stmt *st = prepare(
        db, "SELECT json_extract(litestream_status(),'$.databases[0].txid')");
    sqlite3_bind_int(ins, 1, opt_value);
    int64_t period = (int64_t)(1e9 / opt_lag_rate);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int64_t t0 = (int64_t)start.tv_sec * 1000000000 + start.tv_nsec;
    for (int i = 0; i < total; i++) {
        int64_t due = t0 + (int64_t)i * period;
        struct timespec ts = {due / 1000000000, due % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
               EINTR) {
        }
        step_done(db, ins);
        tc[i] = now_ns();
        txid[i] = ext_txid(st);
    }
    int64_t tlast = now_ns();
    r->v[6] = total / ((double)(tlast - t0) / 1e9);
    /* Wait for the natural upload of the last commit (no forced sync). */
    watch_wait(&w, txid[total - 1], 2 * a->interval + 5000);
    watch_stop(&w);

    double *lag = calloc(total, sizeof *lag);
    int nl = 0, missing = 0, at = 0;
    for (int i = 0; i < total; i++) {
        int64_t t = watch_find(&w, txid[i], at, &at);
        if (t < 0) {
            missing++;
            continue;
        }
        lag[nl++] = (double)(t - tc[i]) / 1e6;
    }
    qsort(lag, nl, sizeof *lag, cmp_double);
    r->v[0] = total;
    r->v[1] = w.n;
    r->v[2] = pct(lag, nl, 50);
    r->v[3] = pct(lag, nl, 90);
    r->v[4] = nl ? lag[nl - 1] : -1;
    r->v[5] = missing;
    sqlite3_finalize(ins);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rm_rf(zDir);
    r->ok = 1;
}

/* ---- c. one big transaction ------------------------------------------------
 */

enum { BIG_PLAIN, BIG_EXT, BIG_DAEMON };

typedef struct {
    int kind;
} big_arg;

/* v[0] COMMIT duration ms, v[1] COMMIT return -> in the replica ms,
 * v[2] insert phase ms, v[3] (daemon) last growth ms, v[4] bytes of the
 * replica growth after COMMIT */
static void
child_big(result *r, void *argp)
{
    big_arg *a = argp;
    char *zDir = fmt("%s/c-%d", g_work, a->kind);
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    char *zL0 = fmt("%s/ltx/0", zRep);
    daemon_t d = {0};
    watcher w;
    rm_rf(zDir);
    mkdir_p(zDir);
    if (a->kind == BIG_EXT)
        load_extension();
    sqlite3 *db = open_db(zDb);
    if (a->kind == BIG_EXT)
        replicate(db, zRep, 1000);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    if (a->kind == BIG_EXT) {
        free(query_text(db, "SELECT litestream_sync(30000)"));
        watch_start(&w, zL0);
    }
    if (a->kind == BIG_DAEMON) {
        d = daemon_start(zDir, zDb, zRep, 1000);
        wait_quiet(zRep, 1500, 10000);
    }
    long rows = (long)opt_big_mb * 1024 / opt_big_row_kb;
    char *zIns = fmt("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 "
                     "FROM c WHERE x<%ld) INSERT INTO t(v) SELECT "
                     "randomblob(%d) FROM c",
                     rows, opt_big_row_kb * 1024);
    int64_t ti = now_ns();
    exec_sql(db, "BEGIN");
    exec_sql(db, zIns);
    int64_t tc0 = now_ns();
    exec_sql(db, "COMMIT");
    int64_t tc1 = now_ns();
    r->v[2] = (double)(tc0 - ti) / 1e6;
    r->v[0] = (double)(tc1 - tc0) / 1e6;
    if (a->kind == BIG_EXT) {
        sqlite3_stmt *st =
            prepare(db, "SELECT json_extract(litestream_status(),"
                        "'$.databases[0].txid')");
        uint64_t txid = ext_txid(st);
        sqlite3_finalize(st);
        int64_t t = watch_wait(&w, txid, 120000);
        watch_stop(&w);
        /* not seen: 1e9; negative: in the replica before COMMIT returned
         * (COMMIT includes the checkpoint) */
        r->v[1] = t < 0 ? 1e9 : (double)(t - tc1) / 1e6;
    } else if (a->kind == BIG_DAEMON) {
        /* Sample the replica's size until it has been quiet for 3 s;
         * "in the replica" = when the growth reached 98% of its final
         * value (a trailing few-KB segment, e.g. the daemon's own
         * _litestream_seq write after its checkpoint, does not count). */
        enum { MAXS = 20000 };
        static int64_t ts[MAXS];
        static off_t sz[MAXS];
        int ns = 0;
        off_t base = tree_bytes(zRep), last = base;
        int64_t tchange = tc1;
        ts[ns] = tc1;
        sz[ns++] = base;
        while (now_ns() - tchange < 3000000000LL &&
               now_ns() - tc1 < 120000000000LL && ns < MAXS) {
            sleep_ms(10);
            off_t b = tree_bytes(zRep);
            if (b != last) {
                last = b;
                tchange = now_ns();
                ts[ns] = tchange;
                sz[ns++] = b;
            }
        }
        off_t grow = last - base;
        int64_t t98 = tc1;
        for (int i = 0; i < ns; i++)
            if ((double)(sz[i] - base) >= 0.98 * (double)grow) {
                t98 = ts[i];
                break;
            }
        r->v[1] = (double)(t98 - tc1) / 1e6;
        r->v[3] = (double)(tchange - tc1) / 1e6;
        r->v[4] = (double)grow;
    }
    r->hwm_kb = vm_hwm_kb();
    sqlite3_close(db);
    if (a->kind == BIG_DAEMON)
        daemon_stop(&d);
    rm_rf(zDir);
    r->ok = 1;
}

/* ---- d. restore ------------------------------------------------------------
 */

/* Builds the restore test database in zDir: with the extension (daemon=0)
 * or plain SQLite + the daemon at 1 s.  v[0] build s, v[1] final sync s,
 * v[2] db bytes, v[3] replica bytes, v[4] rows */
typedef struct {
    int daemon;
} build_arg;

static void
child_build(result *r, void *argp)
{
    build_arg *a = argp;
    char *zDir = fmt("%s/d-%s", g_work, a->daemon ? "daemon" : "ext");
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    daemon_t d = {0};
    rm_rf(zDir);
    mkdir_p(zDir);
    if (!a->daemon)
        load_extension();
    sqlite3 *db = open_db(zDb);
    if (!a->daemon)
        replicate(db, zRep, 1000);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    if (!a->daemon)
        free(query_text(db, "SELECT litestream_sync(30000)"));
    else
        d = daemon_start(zDir, zDb, zRep, 1000);
    /* 4000-byte blobs: one row per 4096-byte leaf page, no overflow. */
    long rows = (long)opt_restore_mb * 1024 * 1024 / 4096;
    long batch = 1000;
    char *zIns = fmt("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 "
                     "FROM c WHERE x<%ld) INSERT INTO t(v) SELECT "
                     "randomblob(4000) FROM c",
                     batch);
    int64_t t0 = now_ns();
    for (long done = 0; done < rows; done += batch)
        exec_sql(db, zIns);
    int64_t t1 = now_ns();
    r->v[0] = (double)(t1 - t0) / 1e9;
    if (!a->daemon) {
        free(query_text(db, "SELECT litestream_sync(300000)"));
        exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        free(query_text(db, "SELECT litestream_sync(300000)"));
        char *st = query_text(
            db, "SELECT json_extract(litestream_status(),"
                "'$.databases[0].txid') = json_extract(litestream_status(),"
                "'$.databases[0].replicated_txid')");
        if (!st || atoi(st) != 1)
            snprintf(r->note, sizeof r->note, "not fully replicated");
        free(st);
    } else {
        /* The daemon has no "sync now": wait until its replica has been
         * quiet for 3 s (three sync intervals), then stop it. */
        wait_quiet(zRep, 3000, 300000);
    }
    r->v[1] = (double)(now_ns() - t1) / 1e9;
    r->v[4] = (double)query_int(db, "SELECT count(*) FROM t");
    sqlite3_close(db);
    if (a->daemon)
        daemon_stop(&d);
    r->v[2] = (double)file_size(zDb);
    r->v[3] = (double)tree_bytes(zRep);
    r->ok = 1;
}

typedef struct {
    const char *zRep, *zOut;
} restore_arg;

/* v[0] seconds of litestream_restore */
static void
child_restore(result *r, void *argp)
{
    restore_arg *a = argp;
    load_extension();
    sqlite3 *db;
    sqlite3_open(":memory:", &db);
    char *sql =
        fmt("SELECT litestream_restore('file://%s', '%s')", a->zRep, a->zOut);
    int64_t t0 = now_ns();
    char *z = query_text(db, sql);
    r->v[0] = (double)(now_ns() - t0) / 1e9;
    snprintf(r->note, sizeof r->note, "%.500s", z ? z : "");
    free(z);
    sqlite3_close(db);
    r->ok = 1;
}

/* v[0] rows, v[1] quick_check ok */
static void
child_count(result *r, void *argp)
{
    sqlite3 *db;
    if (sqlite3_open_v2((const char *)argp, &db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        snprintf(r->note, sizeof r->note, "cannot open");
        return;
    }
    r->v[0] = (double)query_int(db, "SELECT count(*) FROM t");
    char *z = query_text(db, "PRAGMA quick_check");
    r->v[1] = z && strcmp(z, "ok") == 0;
    free(z);
    sqlite3_close(db);
    r->ok = 1;
}

static double
time_cmd(const char *cmd)
{
    int64_t t0 = now_ns();
    int rc = run_sh(cmd);
    double s = (double)(now_ns() - t0) / 1e9;
    if (rc != 0)
        fprintf(stderr, "bench: '%s' exited %d\n", cmd, rc);
    return rc == 0 ? s : -1;
}

/* ---- report ---------------------------------------------------------------
 */

static FILE *g_md;

static void
out(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vprintf(f, ap);
    va_end(ap);
    va_start(ap, f);
    vfprintf(g_md, f, ap);
    va_end(ap);
    fflush(stdout);
}

static const char *
yes(int ok)
{
    return ok ? "met" : "**MISSED**";
}

static int
want(char c)
{
    return !opt_only || strchr(opt_only, c) != NULL;
}

static void
progress(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, f, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

int
main(int argc, char **argv)
{
    const char *work = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-ext"))
            g_ext = argv[i + 1];
        else if (!strcmp(argv[i], "-daemon"))
            g_daemon = argv[i + 1];
        else if (!strcmp(argv[i], "-work"))
            work = argv[i + 1];
        else if (!strcmp(argv[i], "-out"))
            g_out = argv[i + 1];
        else
            die("unknown option %s", argv[i]);
    }
    if (!g_ext || !work || !g_out)
        die("usage: bench -ext PATH -daemon PATH -work DIR -out FILE.md");
    if (!realpath(work, g_work)) {
        mkdir_p(work);
        if (!realpath(work, g_work))
            die("bad work dir %s", work);
    }
    opt_quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK"));
    opt_seconds = env_num("BENCH_SECONDS", 1, 5);
    opt_warmup = env_num("BENCH_WARMUP", 0.3, 1);
    opt_reps = (int)env_num("BENCH_REPS", 1, 3);
    opt_value = (int)env_num("BENCH_VALUE", 100, 100);
    opt_lag_seconds = env_num("BENCH_LAG_SECONDS", 2, 10);
    opt_lag_rate = env_num("BENCH_LAG_RATE", 100, 100);
    opt_big_mb = (int)env_num("BENCH_BIG_MB", 20, 200);
    opt_big_row_kb = (int)env_num("BENCH_BIG_ROW_KB", 1024, 1024);
    opt_restore_mb = (int)env_num("BENCH_RESTORE_MB", 40, 500);
    opt_daemon = (int)env_num("BENCH_DAEMON", 1, 1) && g_daemon;
    opt_only = getenv("BENCH_ONLY");
    if (opt_reps > 15)
        opt_reps = 15;
    if (opt_value < 1 || opt_value > 4096)
        opt_value = 100;

    g_md = fopen(g_out, "w");
    if (!g_md)
        die("cannot write %s", g_out);

    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    struct utsname un;
    uname(&un);
    char cpu[512] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                snprintf(cpu, sizeof cpu, "%s", c ? c + 2 : line);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    out("# litestream benchmark results\n\n");
    out("- date: %s\n", date);
    out("- machine: %ld CPUs (%s), %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu,
        un.sysname, un.release);
    out("- SQLite (system libsqlite3): %s\n", sqlite3_libversion());
    if (getenv("BENCH_BUILD_ID"))
        out("- extension: %s\n", getenv("BENCH_BUILD_ID"));
    out("- parameters: %s; %.1f s per throughput run after %.1f s warm-up, "
        "%d repetition(s) interleaved, %d-byte values; lag %.0f tx/s for "
        "%.0f s; big transaction %d MB (%d KB rows); restore database %d MB; "
        "daemon %s\n\n",
        opt_quick ? "QUICK" : "full", opt_seconds, opt_warmup, opt_reps,
        opt_value, opt_lag_rate, opt_lag_seconds, opt_big_mb, opt_big_row_kb,
        opt_restore_mb, opt_daemon ? "on" : "off");

    /* ---- a ---- */
    if (want('a')) {
        double tps[NCFG][16], catchup[NCFG][16], hwm[NCFG][16];
        double foreign[NCFG] = {0};
        int ok[NCFG] = {0}, behind[NCFG] = {0};
        char note[NCFG][512];
        memset(note, 0, sizeof note);
        for (int rep = 0; rep < opt_reps; rep++)
            for (int c = 0; c < NCFG; c++) {
                if ((c == CFG_D1S || c == CFG_D100) && !opt_daemon)
                    continue;
                progress("a. rep %d/%d: %s", rep + 1, opt_reps, cfg_name[c]);
                tps_arg a = {c, rep};
                result r = in_child(child_tps, &a);
                if (!r.ok) {
                    snprintf(note[c], sizeof note[c], "%s", r.note);
                    progress("   failed: %s", r.note);
                    continue;
                }
                if (r.foreign > foreign[c])
                    foreign[c] = r.foreign;
                tps[c][ok[c]] = r.v[0];
                catchup[c][ok[c]] = r.v[2];
                hwm[c][ok[c]] = r.hwm_kb / 1024.0;
                if ((c == CFG_EXT1S || c == CFG_EXT100) && !r.v[3]) {
                    behind[c]++;
                    snprintf(note[c], sizeof note[c], "%s", r.note);
                }
                ok[c]++;
                progress("   %.0f tx/s, VmHWM %.1f MB, other load %.2f CPU",
                         r.v[0], r.hwm_kb / 1024.0, r.foreign);
            }
        double base = median(tps[CFG_PLAIN], ok[CFG_PLAIN]);
        out("## a. 1-row transactions (WAL, synchronous=NORMAL)\n\n");
        out("Each transaction is one `INSERT INTO t(v) VALUES (?)` of a "
            "%d-byte blob; tx/s over %.1f s after %.1f s of warm-up, fresh "
            "database per run; median of %d interleaved runs.\n\n",
            opt_value, opt_seconds, opt_warmup, opt_reps);
        out("| configuration | runs (tx/s) | median tx/s | vs plain | target "
            "| catch-up after run (ms) | writer VmHWM (MB) | other load "
            "(max, CPUs) |\n");
        out("|---|---|---:|---:|---|---:|---:|---:|\n");
        for (int c = 0; c < NCFG; c++) {
            if (!ok[c]) {
                if ((c == CFG_D1S || c == CFG_D100) && !opt_daemon)
                    continue;
                out("| %s | failed: %s | | | | | |\n", cfg_name[c], note[c]);
                continue;
            }
            char runs[256] = "";
            for (int i = 0; i < ok[c]; i++)
                snprintf(runs + strlen(runs), sizeof runs - strlen(runs),
                         "%s%.0f", i ? ", " : "", tps[c][i]);
            double m = median(tps[c], ok[c]);
            double ratio = base > 0 ? m / base : 0;
            char target[64] = "";
            if (c == CFG_EXT1S)
                snprintf(target, sizeof target, ">= 0.97: %s",
                         yes(ratio >= 0.97));
            else if (c == CFG_EXT100)
                snprintf(target, sizeof target, ">= 0.97: %s",
                         yes(ratio >= 0.97));
            char cu[64] = "";
            if (c == CFG_EXT1S || c == CFG_EXT100)
                snprintf(cu, sizeof cu, "%.0f%s", median(catchup[c], ok[c]),
                         behind[c] ? " (NOT caught up)" : "");
            double hmax = 0;
            for (int i = 0; i < ok[c]; i++)
                if (hwm[c][i] > hmax)
                    hmax = hwm[c][i];
            out("| %s | %s | %.0f | %.3f | %s | %s | %.1f | %.2f |\n",
                cfg_name[c], runs, m, ratio, target, cu, hmax, foreign[c]);
        }
        out("\nCatch-up = time `litestream_sync()` took right after the "
            "timed loop (what was still to upload). The daemon runs in its "
            "own process; its memory is not in the writer's VmHWM. Other "
            "load = CPU used by processes outside this benchmark during a "
            "run (from /proc/stat), the worst run of each configuration.\n\n");
    }

    /* ---- b ---- */
    if (want('b')) {
        out("## b. replication lag (extension)\n\n");
        out("%.0f one-row transactions/s paced for %.0f s; lag = appearance "
            "(inotify IN_MOVED_TO on `<replica>/ltx/0`) of the first object "
            "whose max TXID >= the commit's TXID, minus the time COMMIT "
            "returned.\n\n",
            opt_lag_rate, opt_lag_seconds);
        out("| sync interval | commits | objects | achieved tx/s | p50 ms | "
            "p90 ms | max ms | target p50 | writer VmHWM (MB) | other load "
            "(CPUs) |\n");
        out("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
        int ivs[2] = {1000, 100};
        for (int i = 0; i < 2; i++) {
            progress("b. lag at %d ms", ivs[i]);
            lag_arg a = {ivs[i]};
            result r = in_child(child_lag, &a);
            if (!r.ok) {
                out("| %d ms | failed: %s |||||||\n", ivs[i], r.note);
                continue;
            }
            double tgt = ivs[i] / 2.0 + 20;
            out("| %d ms | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f | <= %.0f: "
                "%s%s | %.1f | %.2f |\n",
                ivs[i], r.v[0], r.v[1], r.v[6], r.v[2], r.v[3], r.v[4], tgt,
                yes(r.v[2] >= 0 && r.v[2] <= tgt),
                r.v[5] ? " (some commits never seen)" : "", r.hwm_kb / 1024.0,
                r.foreign);
        }
        out("\n");
    }

    /* ---- c ---- */
    if (want('c')) {
        const char *nm[3] = {"plain SQLite (no replication)",
                             "extension, 1000 ms",
                             "plain SQLite + daemon v0.3.13, 1 s"};
        double ins[3][16], com[3][16], inrep[3][16], hwm[3][16];
        double last[3][16], grow[3][16], foreign[3] = {0};
        int ok[3] = {0};
        char note[3][512];
        memset(note, 0, sizeof note);
        for (int rep = 0; rep < opt_reps; rep++)
            for (int k = 0; k < 3; k++) {
                if (k == BIG_DAEMON && !opt_daemon)
                    continue;
                progress("c. rep %d/%d: big transaction, %s", rep + 1, opt_reps,
                         nm[k]);
                big_arg a = {k};
                result r = in_child(child_big, &a);
                if (!r.ok) {
                    snprintf(note[k], sizeof note[k], "%s", r.note);
                    continue;
                }
                int i = ok[k]++;
                ins[k][i] = r.v[2];
                com[k][i] = r.v[0];
                inrep[k][i] = r.v[1];
                last[k][i] = r.v[3];
                grow[k][i] = r.v[4];
                hwm[k][i] = r.hwm_kb / 1024.0;
                if (r.foreign > foreign[k])
                    foreign[k] = r.foreign;
                progress("   COMMIT %.0f ms, in the replica %.0f ms later, "
                         "VmHWM %.1f MB",
                         r.v[0], r.v[1], r.hwm_kb / 1024.0);
            }
        out("## c. one %d MB transaction\n\n", opt_big_mb);
        out("%ld rows of `randomblob(%d KB)` in one transaction, sync "
            "interval 1 s; \"in the replica\" is measured from COMMIT "
            "returning (COMMIT includes SQLite's automatic checkpoint). "
            "Median of %d interleaved runs, every run listed.\n\n",
            (long)opt_big_mb * 1024 / opt_big_row_kb, opt_big_row_kb, opt_reps);
        out("| writer | insert phase (ms) | COMMIT (ms) | in the replica "
            "after (ms) | target | writer VmHWM (MB) | other load (max, "
            "CPUs) |\n");
        out("|---|---:|---:|---:|---|---:|---:|\n");
        for (int k = 0; k < 3; k++) {
            if (k == BIG_DAEMON && !opt_daemon)
                continue;
            if (!ok[k]) {
                out("| %s | failed: %s ||||||\n", nm[k], note[k]);
                continue;
            }
            char lc[256] = "", lr[256] = "", lh[256] = "";
            for (int i = 0; i < ok[k]; i++) {
                snprintf(lc + strlen(lc), sizeof lc - strlen(lc), "%s%.0f",
                         i ? ", " : "", com[k][i]);
                snprintf(lr + strlen(lr), sizeof lr - strlen(lr), "%s%.0f",
                         i ? ", " : "", inrep[k][i]);
                snprintf(lh + strlen(lh), sizeof lh - strlen(lh), "%s%.0f",
                         i ? ", " : "", hwm[k][i]);
            }
            double mr = median(inrep[k], ok[k]);
            char rep[320] = "-", tgt[64] = "";
            if (k != BIG_PLAIN)
                snprintf(rep, sizeof rep, "**%.0f** (%s)", mr, lr);
            if (k == BIG_EXT)
                snprintf(tgt, sizeof tgt, "<= 1500: %s%s",
                         mr >= 1e8 ? "**not seen**" : yes(mr <= 1500),
                         mr < 0 ? " (before COMMIT returned)" : "");
            out("| %s | %.0f | **%.0f** (%s) | %s | %s | %s | %.2f |\n", nm[k],
                median(ins[k], ok[k]), median(com[k], ok[k]), lc, rep, tgt, lh,
                foreign[k]);
        }
        if (opt_daemon && ok[BIG_DAEMON])
            out("\nDaemon: its replica grew by %.1f MB after COMMIT; the "
                "figure is when 98%% of that growth had arrived (the last "
                "growth of any size came %.0f ms after COMMIT, median).\n",
                median(grow[BIG_DAEMON], ok[BIG_DAEMON]) / 1048576.0,
                median(last[BIG_DAEMON], ok[BIG_DAEMON]));
        out("\n");
    }

    /* ---- d ---- */
    if (want('d')) {
        char *zDirE = fmt("%s/d-ext", g_work);
        char *zDbE = fmt("%s/db.sqlite", zDirE);
        char *zRepE = fmt("%s/replica", zDirE);
        char *zCp = fmt("%s/cp.db", zDirE);
        char *zOutE = fmt("%s/restored.db", zDirE);
        char *zDirD = fmt("%s/d-daemon", g_work);
        char *zRepD = fmt("%s/replica", zDirD);
        char *zOutD = fmt("%s/restored.db", zDirD);
        progress("d. building the %d MB database with the extension",
                 opt_restore_mb);
        result rb = in_child(child_build, &(build_arg){0});
        result rbd = {0};
        if (opt_daemon) {
            progress("d. building the %d MB database with the daemon",
                     opt_restore_mb);
            rbd = in_child(child_build, &(build_arg){1});
        }
        double t_cp[16], t_cps[16], t_re[16], t_rd[16];
        int n_cp = 0, n_cps = 0, n_re = 0, n_rd = 0, cold = 1;
        result rr = {0}, cE = {0}, cD = {0};
        for (int rep = 0; rep < opt_reps && rb.ok; rep++) {
            char *cmd;
            double t;
            progress("d. rep %d/%d: cp, cp + sync, litestream_restore%s",
                     rep + 1, opt_reps,
                     opt_daemon && rbd.ok ? ", daemon restore" : "");
            unlink(zCp);
            cold &= drop_caches();
            cmd = fmt("cp '%s' '%s'", zDbE, zCp);
            if ((t = time_cmd(cmd)) > 0)
                t_cp[n_cp++] = t;
            free(cmd);
            unlink(zCp);
            cold &= drop_caches();
            cmd = fmt("cp '%s' '%s' && sync '%s'", zDbE, zCp, zCp);
            if ((t = time_cmd(cmd)) > 0)
                t_cps[n_cps++] = t;
            free(cmd);
            unlink(zCp);
            unlink(zOutE);
            cold &= drop_caches();
            rr = in_child(child_restore, &(restore_arg){zRepE, zOutE});
            if (rr.ok)
                t_re[n_re++] = rr.v[0];
            if (rep == 0)
                cE = in_child(child_count, zOutE);
            unlink(zOutE);
            if (opt_daemon && rbd.ok) {
                unlink(zOutD);
                cold &= drop_caches();
                cmd = fmt("'%s' restore -o '%s' 'file://%s' "
                          ">>'%s/restore.log' 2>&1",
                          g_daemon, zOutD, zRepD, zDirD);
                if ((t = time_cmd(cmd)) > 0)
                    t_rd[n_rd++] = t;
                free(cmd);
                if (rep == 0)
                    cD = in_child(child_count, zOutD);
                unlink(zOutD);
            }
            progress("   cp %.2f s, cp+sync %.2f s, restore %.2f s, daemon "
                     "%.2f s",
                     n_cp ? t_cp[n_cp - 1] : -1, n_cps ? t_cps[n_cps - 1] : -1,
                     n_re ? t_re[n_re - 1] : -1, n_rd ? t_rd[n_rd - 1] : -1);
        }
        double mcp = median(t_cp, n_cp), mcps = median(t_cps, n_cps);
        double mre = median(t_re, n_re), mrd = median(t_rd, n_rd);
        out("## d. restore of a %d MB database\n\n", opt_restore_mb);
        out("Database of 4000-byte random blobs (one row per 4 KiB page), "
            "built in 1000-row transactions while replicating at 1 s. %s "
            "Median of %d interleaved runs, every run listed.\n\n",
            cold ? "Page cache dropped (`sync; echo 3 > "
                   "/proc/sys/vm/drop_caches`) before each timed command: "
                   "cold cache."
                 : "Dropping the page cache was NOT possible: warm-cache "
                   "numbers.",
            opt_reps);
        out("| method | seconds (median) | runs | vs cp | vs cp + sync | "
            "target | check of the result |\n");
        out("|---|---:|---|---:|---:|---|---|\n");
        char l[4][256];
        double *arr[4] = {t_cp, t_cps, t_re, t_rd};
        int cnt[4] = {n_cp, n_cps, n_re, n_rd};
        for (int j = 0; j < 4; j++) {
            l[j][0] = 0;
            for (int i = 0; i < cnt[j]; i++)
                snprintf(l[j] + strlen(l[j]), sizeof l[j] - strlen(l[j]),
                         "%s%.2f", i ? ", " : "", arr[j][i]);
        }
        if (!rb.ok) {
            out("| (build with the extension failed: %s) |||||||\n", rb.note);
        } else {
            out("| `cp` of the database file (%.1f MB) | %.2f | %s | 1.00 | "
                "| | |\n",
                rb.v[2] / 1048576.0, mcp, l[0]);
            out("| `cp` + `sync` of the copy | %.2f | %s | %.2f | 1.00 | | |\n",
                mcps, l[1], mcps / mcp);
            out("| extension `litestream_restore` (replica %.1f MB) | **%.2f** "
                "| %s | %.2f | **%.2f** | <= 1.5x cp + sync: %s | %s rows, "
                "quick_check %s |\n",
                rb.v[3] / 1048576.0, mre, l[2], mre / mcp, mre / mcps,
                yes(n_re && mre <= 1.5 * mcps),
                cE.ok && cE.v[0] == rb.v[4] ? "all" : "WRONG number of",
                cE.ok && cE.v[1] ? "ok" : "FAILED");
        }
        if (opt_daemon) {
            if (!rbd.ok)
                out("| (build with the daemon failed: %s) |||||||\n", rbd.note);
            else if (rb.ok)
                out("| daemon `litestream restore -o OUT file://REPLICA` "
                    "(db %.1f MB, replica %.1f MB) | %.2f | %s | %.2f | %.2f "
                    "| | %s rows, quick_check %s |\n",
                    rbd.v[2] / 1048576.0, rbd.v[3] / 1048576.0, mrd, l[3],
                    mrd / mcp, mrd / mcps,
                    cD.ok && cD.v[0] == rbd.v[4] ? "all" : "WRONG number of",
                    cD.ok && cD.v[1] ? "ok" : "FAILED");
        }
        if (rb.ok)
            out("\nBuilding it took %.1f s with the extension (then %.1f s "
                "for the final `litestream_sync`). `litestream_restore` "
                "returned: `%s`\n",
                rb.v[0], rb.v[1], rr.note);
        if (rbd.ok)
            out("With the daemon: %.1f s to write, then %.1f s until its "
                "replica was quiet for 3 s.\n",
                rbd.v[0], rbd.v[1]);
        out("\n");
        rm_rf(zDirE);
        rm_rf(zDirD);
    }
    out("Other processes on the machine used %.2f CPUs on average during "
        "the measurements (of %ld).\n",
        g_foreign_wall > 0 ? g_foreign_busy / g_foreign_wall : 0,
        sysconf(_SC_NPROCESSORS_ONLN));
    fclose(g_md);
    return 0;
}
