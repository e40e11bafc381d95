/*
 * test/bench/writers.c: the writer-cost measurements of issue 12 (part of
 * `make bench`, test/bench/run.sh; docs/benchmarks.md sections g, i, j).
 *
 *   writers -ext BUILD/litestream [-daemon PATH/litestream] -work DIR
 *           -out FILE.md
 *
 *   g. 1-row transactions with 4 writers: 4 threads on 4 connections of one
 *      process, and 4 processes; plain SQLite, the extension at 1 s and
 *      100 ms sync; interleaved repetitions, medians, ratio to plain.
 *   i. peak RSS (VmHWM) of the writer process: 100k 1-row commits at full
 *      speed, 1 s sync; one big transaction; plain vs extension.
 *   j. CPU of the extension's own threads per transaction at full speed
 *      (process CPU minus the writer thread's, from getrusage and
 *      /proc/self/task/TID/stat; per thread name from /proc/self/task/ *
 *      /comm and stat), and the daemon's CPU per transaction (its
 *      /proc/PID/stat) for the same workload.
 *
 * Every measurement runs in a child process of its own (fork before any
 * SQLite use), as in bench.c.  Knobs: BENCH_QUICK, BENCH_SECONDS (5),
 * BENCH_WARMUP (1), BENCH_REPS (3), BENCH_VALUE (100), BENCH_RSS_COMMITS
 * (100000), BENCH_BIG_MB (200), BENCH_WRITERS (4), BENCH_ONLY (letters
 * among "gij"; others are ignored).
 */
#define _GNU_SOURCE
#include <sqlite3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "writers"
#include "benchutil.h"

extern char **environ;

static const char *g_ext, *g_daemon, *g_out;
static char g_work[4096];
static double opt_seconds, opt_warmup;
static int opt_reps, opt_value, opt_rss_commits, opt_big_mb, opt_writers;
static int opt_quick;
static FILE *g_md;

/* ---- helpers -------------------------------------------------------------
 */

static double
env_num(const char *name, double quick, double full)
{
    const char *z = getenv(name);
    if (z && *z)
        return atof(z);
    return opt_quick ? quick : full;
}

static void
out(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vfprintf(g_md, f, ap);
    va_end(ap);
    fflush(g_md);
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

static const char *
yes(int ok)
{
    return ok ? "met" : "**MISSED**";
}

/* Busy CPU seconds of the whole machine (from /proc/stat). */
static double
machine_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 4)
        memset(v, 0, sizeof v);
    fclose(f);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
           sysconf(_SC_CLK_TCK);
}

static double
rusage_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime (s) and voluntary context switches from a /proc stat and
 * status pair; path is ".../stat". */
static double
proc_cpu_s(const char *zStat)
{
    FILE *f = fopen(zStat, "r");
    char buf[2048];
    double s = -1;
    if (!f)
        return -1;
    if (fgets(buf, sizeof buf, f)) {
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
         * majflt cmajflt utime stime */
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                   &ut, &st) == 2)
            s = (double)(ut + st) / sysconf(_SC_CLK_TCK);
    }
    fclose(f);
    return s;
}

/* ---- results from children -----------------------------------------------
 */

typedef struct {
    int ok;
    double v[24];
    long hwm_kb;
    double foreign;
    char note[1024];
} result;

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
        if (cr.hwm_kb == 0)
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
    r.foreign = wall > 0 && other > 0 ? other / wall : 0;
    if (got != sizeof r) {
        memset(&r, 0, sizeof r);
        snprintf(r.note, sizeof r.note, "child failed (status %d)", st);
    }
    return r;
}

/* ---- SQLite --------------------------------------------------------------
 */

static void
exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc;
    while ((rc = sqlite3_exec(db, sql, NULL, NULL, &err)) == SQLITE_BUSY) {
        sqlite3_free(err);
        err = NULL;
        sleep_ms(1);
    }
    if (rc != SQLITE_OK)
        die("%s: %s", sql, err ? err : sqlite3_errmsg(db));
}

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

/* Opens zDb (WAL, synchronous=NORMAL); with interval > 0 replicates it to
 * zRep (file://) at that sync interval; creates the table. */
static sqlite3 *
open_db(const char *zDb, const char *zRep, int interval)
{
    sqlite3 *db;
    if (sqlite3_open(zDb, &db) != SQLITE_OK)
        die("open %s: %s", zDb, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 10000);
    exec_sql(db, "PRAGMA journal_mode=WAL");
    exec_sql(db, "PRAGMA synchronous=NORMAL");
    if (interval > 0) {
        char *s = fmt("PRAGMA litestream_url='file://%s'", zRep);
        exec_sql(db, s);
        free(s);
        s = fmt("PRAGMA litestream_sync_interval=%d", interval);
        exec_sql(db, s);
        free(s);
    }
    exec_sql(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, "
                 "v BLOB)");
    return db;
}

static unsigned char g_val[8192];

/* One 1-row transaction. */
static void
insert_one(sqlite3 *db, sqlite3_stmt *ins, long i)
{
    int rc;
    sqlite3_bind_blob(ins, 1, g_val + (i * 37) % (sizeof g_val - opt_value),
                      opt_value, SQLITE_STATIC);
    while ((rc = sqlite3_step(ins)) == SQLITE_BUSY)
        sqlite3_reset(ins);
    if (rc != SQLITE_DONE)
        die("insert: %s", sqlite3_errmsg(db));
    sqlite3_reset(ins);
}

static sqlite3_stmt *
prepare_insert(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &st, NULL) !=
        SQLITE_OK)
        die("prepare: %s", sqlite3_errmsg(db));
    return st;
}

/* ---- g. four writers -----------------------------------------------------
 */

enum { G_PLAIN, G_EXT1S, G_EXT100, NG };
static const char *g_name[NG] = {"plain SQLite",
                                 "extension, sync interval 1000 ms",
                                 "extension, sync interval 100 ms"};
static const int g_interval[NG] = {0, 1000, 100};

typedef struct {
    int cfg, rep, procs;
} g_arg;

/* One writer of g: waits for t_start, counts commits in [t_warm, t_end). */
typedef struct {
    const char *zDb, *zRep;
    int interval, id;
    int64_t t_start, t_warm, t_end;
    long counted;
    pthread_barrier_t *bar;
    int sync_after; /* call litestream_sync() before closing */
    double catchup; /* ... and how long it took (ms) */
} g_writer;

static void *
g_writer_main(void *arg)
{
    g_writer *w = arg;
    sqlite3 *db = open_db(w->zDb, w->zRep, w->interval);
    sqlite3_stmt *ins = prepare_insert(db);
    if (w->bar)
        pthread_barrier_wait(w->bar);
    while (now_ns() < w->t_start)
        sleep_ms(0.2);
    long n = 0;
    for (long i = w->id * 1000003L;; i++) {
        insert_one(db, ins, i);
        int64_t t = now_ns();
        if (t >= w->t_end)
            break;
        if (t >= w->t_warm)
            n++;
    }
    w->counted = n;
    sqlite3_finalize(ins);
    if (w->sync_after) {
        int64_t s0 = now_ns();
        free(query_text(db, "SELECT litestream_sync(60000)"));
        w->catchup = (double)(now_ns() - s0) / 1e6;
    }
    sqlite3_close(db);
    return NULL;
}

/* v[0] tx/s (all writers), v[1] catch-up ms */
static void
child_g(result *r, void *argp)
{
    g_arg *a = argp;
    char *zDir = fmt("%s/g-%d-%d-%d", g_work, a->procs, a->cfg, a->rep);
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    int nw = opt_writers;
    rm_rf(zDir);
    mkdir_p(zDir);
    /* The first connection sets the database up before the clock runs. */
    if (a->cfg != G_PLAIN && !a->procs)
        load_extension();
    if (!a->procs) {
        sqlite3 *db = open_db(zDb, zRep, g_interval[a->cfg]);
        if (a->cfg != G_PLAIN)
            free(query_text(db, "SELECT litestream_sync(30000)"));
        g_writer w[16];
        pthread_t tid[16];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nw + 1);
        for (int i = 0; i < nw; i++) {
            memset(&w[i], 0, sizeof w[i]);
            w[i].zDb = zDb;
            w[i].zRep = zRep;
            w[i].interval = g_interval[a->cfg];
            w[i].id = i;
            w[i].bar = &bar;
            w[i].t_start = INT64_MAX;
        }
        for (int i = 0; i < nw; i++)
            pthread_create(&tid[i], NULL, g_writer_main, &w[i]);
        pthread_barrier_wait(&bar);
        int64_t t0 = now_ns() + 20000000;
        for (int i = 0; i < nw; i++) {
            w[i].t_warm = t0 + (int64_t)(opt_warmup * 1e9);
            w[i].t_end = w[i].t_warm + (int64_t)(opt_seconds * 1e9);
            __atomic_store_n(&w[i].t_start, t0, __ATOMIC_SEQ_CST);
        }
        long n = 0;
        for (int i = 0; i < nw; i++) {
            pthread_join(tid[i], NULL);
            n += w[i].counted;
        }
        r->v[0] = n / opt_seconds;
        if (a->cfg != G_PLAIN) {
            int64_t s0 = now_ns();
            free(query_text(db, "SELECT litestream_sync(60000)"));
            r->v[1] = (double)(now_ns() - s0) / 1e6;
        }
        sqlite3_close(db);
    } else {
        /* Processes: each loads the extension and opens its connection;
         * the start time goes to all of them through a pipe. */
        int ready[2], go[2], res[2];
        if (pipe(ready) || pipe(go) || pipe(res))
            die("pipe");
        pid_t pid[16];
        for (int i = 0; i < nw; i++) {
            pid[i] = fork();
            if (pid[i] == 0) {
                if (a->cfg != G_PLAIN)
                    load_extension();
                g_writer w;
                memset(&w, 0, sizeof w);
                w.zDb = zDb;
                w.zRep = zRep;
                w.interval = g_interval[a->cfg];
                w.id = i;
                w.sync_after = a->cfg != G_PLAIN && i == 0;
                sqlite3 *db = open_db(zDb, zRep, w.interval);
                if (a->cfg != G_PLAIN && i == 0)
                    free(query_text(db, "SELECT litestream_sync(30000)"));
                sqlite3_close(db);
                char c = 1;
                if (write(ready[1], &c, 1) != 1)
                    _exit(2);
                if (read(go[0], &w.t_start, sizeof w.t_start) !=
                    sizeof w.t_start)
                    _exit(2);
                w.t_warm = w.t_start + (int64_t)(opt_warmup * 1e9);
                w.t_end = w.t_warm + (int64_t)(opt_seconds * 1e9);
                g_writer_main(&w);
                double msg[2] = {(double)w.counted, w.catchup};
                if (write(res[1], msg, sizeof msg) != sizeof msg)
                    _exit(2);
                _exit(0);
            }
        }
        for (int i = 0; i < nw; i++) {
            char c;
            if (read(ready[0], &c, 1) != 1)
                die("a writer process failed to start");
        }
        int64_t t0 = now_ns() + 20000000;
        for (int i = 0; i < nw; i++)
            if (write(go[1], &t0, sizeof t0) != sizeof t0)
                die("pipe");
        long n = 0;
        for (int i = 0; i < nw; i++) {
            double msg[2];
            if (read(res[0], msg, sizeof msg) != sizeof msg)
                die("a writer process failed");
            n += (long)msg[0];
            if (msg[1] > 0)
                r->v[1] = msg[1];
        }
        for (int i = 0; i < nw; i++)
            if (wait_pid(pid[i]) != 0)
                die("a writer process failed");
        r->v[0] = n / opt_seconds;
    }
    r->hwm_kb = vm_hwm_kb();
    rm_rf(zDir);
    r->ok = 1;
}

static void
section_g(void)
{
    for (int procs = 0; procs < 2; procs++) {
        double tps[NG][16], cu[NG][16], foreign[NG] = {0};
        int ok[NG] = {0};
        for (int rep = 0; rep < opt_reps; rep++)
            for (int c = 0; c < NG; c++) {
                progress("g. rep %d/%d: %d %s, %s", rep + 1, opt_reps,
                         opt_writers, procs ? "processes" : "threads",
                         g_name[c]);
                g_arg a = {c, rep, procs};
                result r = in_child(child_g, &a);
                if (!r.ok) {
                    progress("   failed: %s", r.note);
                    continue;
                }
                tps[c][ok[c]] = r.v[0];
                cu[c][ok[c]++] = r.v[1];
                if (r.foreign > foreign[c])
                    foreign[c] = r.foreign;
                progress("   %.0f tx/s", r.v[0]);
            }
        out("### %d writer %s\n\n", opt_writers,
            procs ? "processes (one connection each)"
                  : "threads on 4 connections of one process");
        out("| configuration | runs (tx/s, all writers) | median tx/s | vs "
            "plain | target | catch-up after run (ms) | other load (max, "
            "CPUs) |\n|---|---|---:|---:|---|---:|---:|\n");
        double base = median(tps[G_PLAIN], ok[G_PLAIN]);
        for (int c = 0; c < NG; c++) {
            char runs[256] = "";
            for (int i = 0; i < ok[c]; i++)
                snprintf(runs + strlen(runs), sizeof runs - strlen(runs),
                         "%s%.0f", i ? ", " : "", tps[c][i]);
            double m = median(tps[c], ok[c]), ratio = base > 0 ? m / base : 0;
            out("| %s | %s | %.0f | %.3f | %s | %s | %.2f |\n", g_name[c], runs,
                m, ratio,
                c == G_PLAIN
                    ? ""
                    : (ratio >= 0.95 ? ">= 0.95: met" : ">= 0.95: **MISSED**"),
                c == G_PLAIN ? "" : fmt("%.0f", median(cu[c], ok[c])),
                foreign[c]);
        }
        out("\n");
    }
}

/* ---- i. peak memory ------------------------------------------------------
 */

typedef struct {
    int ext, big;
} i_arg;

/* v[0] seconds of the workload, v[1] catch-up ms */
static void
child_i(result *r, void *argp)
{
    i_arg *a = argp;
    char *zDir = fmt("%s/i-%d-%d", g_work, a->ext, a->big);
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    rm_rf(zDir);
    mkdir_p(zDir);
    if (a->ext)
        load_extension();
    sqlite3 *db = open_db(zDb, zRep, a->ext ? 1000 : 0);
    if (a->ext)
        free(query_text(db, "SELECT litestream_sync(30000)"));
    int64_t t0 = now_ns();
    if (a->big) {
        char *z = fmt("BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                      "SELECT x+1 FROM c WHERE x<%d) INSERT INTO t(v) SELECT "
                      "randomblob(1048576) FROM c; COMMIT",
                      opt_big_mb);
        exec_sql(db, z);
        free(z);
    } else {
        sqlite3_stmt *ins = prepare_insert(db);
        for (long i = 0; i < opt_rss_commits; i++)
            insert_one(db, ins, i);
        sqlite3_finalize(ins);
    }
    r->v[0] = (double)(now_ns() - t0) / 1e9;
    if (a->ext) {
        int64_t s0 = now_ns();
        free(query_text(db, "SELECT litestream_sync(120000)"));
        r->v[1] = (double)(now_ns() - s0) / 1e6;
    }
    r->hwm_kb = vm_hwm_kb();
    sqlite3_close(db);
    rm_rf(zDir);
    r->ok = 1;
}

static void
section_i(void)
{
    out("### Peak RSS (VmHWM) of the writer process\n\n");
    out("| workload | plain SQLite (MB) | extension, 1 s sync (MB) | added "
        "(MB) | target | workload time plain / extension (s) | catch-up "
        "after (ms) |\n|---|---:|---:|---:|---|---|---:|\n");
    for (int big = 0; big < 2; big++) {
        result r[2];
        for (int e = 0; e < 2; e++) {
            progress("i. peak RSS: %s, %s",
                     big ? "one big transaction" : "1-row commits",
                     e ? "extension" : "plain");
            i_arg a = {e, big};
            r[e] = in_child(child_i, &a);
        }
        if (!r[0].ok || !r[1].ok) {
            out("| %s | failed: %s %s |||||\n", big ? "big" : "commits",
                r[0].note, r[1].note);
            continue;
        }
        double p = r[0].hwm_kb / 1024.0, x = r[1].hwm_kb / 1024.0;
        double lim = big ? 32 : 16;
        char *w = big ? fmt("one %d MB transaction (%d rows of 1 MiB)",
                            opt_big_mb, opt_big_mb)
                      : fmt("%d 1-row commits at full speed", opt_rss_commits);
        out("| %s | %.1f | %.1f | %+.1f | <= +%.0f: %s | %.2f / %.2f | %.0f "
            "|\n",
            w, p, x, x - p, lim, yes(x - p <= lim), r[0].v[0], r[1].v[0],
            r[1].v[1]);
        free(w);
    }
    out("\n");
}

/* ---- j. CPU of the replication per transaction ---------------------------
 */

typedef struct {
    int daemon;
} j_arg;

/* Per-name CPU of this process's threads other than the caller. */
typedef struct {
    char name[32];
    double s;
} thr_cpu;

static int
threads_cpu(thr_cpu *t, int max)
{
    pid_t self = (pid_t)syscall(SYS_gettid);
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        char *zc = fmt("/proc/self/task/%s/comm", e->d_name);
        char *zs = fmt("/proc/self/task/%s/stat", e->d_name);
        char name[32] = "?";
        FILE *f = fopen(zc, "r");
        if (f) {
            if (fgets(name, sizeof name, f))
                name[strcspn(name, "\n")] = 0;
            fclose(f);
        }
        double s = proc_cpu_s(zs);
        free(zc);
        free(zs);
        int k;
        for (k = 0; k < n && strcmp(t[k].name, name); k++) {
        }
        if (k == n && n < max) {
            snprintf(t[n].name, sizeof t[n].name, "%s", name);
            t[n++].s = 0;
        }
        if (k < max && s > 0)
            t[k].s += s;
    }
    if (d)
        closedir(d);
    return n;
}

/* v[0] commits, v[1] wall s, v[2] extension (or daemon) CPU s, v[3] writer
 * thread CPU s; note: per-thread-name CPU */
static void
child_j(result *r, void *argp)
{
    j_arg *a = argp;
    char *zDir = fmt("%s/j-%d", g_work, a->daemon);
    char *zDb = fmt("%s/db.sqlite", zDir);
    char *zRep = fmt("%s/replica", zDir);
    pid_t dpid = 0;
    rm_rf(zDir);
    mkdir_p(zDir);
    if (!a->daemon)
        load_extension();
    sqlite3 *db = open_db(zDb, zRep, a->daemon ? 0 : 1000);
    if (!a->daemon)
        free(query_text(db, "SELECT litestream_sync(30000)"));
    char *zStat = NULL;
    if (a->daemon) {
        char *zCfg = fmt("%s/litestream.yml", zDir);
        FILE *f = fopen(zCfg, "w");
        if (!f)
            die("cannot write %s", zCfg);
        fprintf(f,
                "dbs:\n  - path: %s\n    monitor-interval: 1s\n"
                "    replicas:\n      - type: file\n        path: %s\n"
                "        sync-interval: 1s\n",
                zDb, zRep);
        fclose(f);
        char *zLog = fmt("%s/daemon.log", zDir);
        char *argv[] = {(char *)g_daemon, "replicate", "-config", zCfg, NULL};
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, zLog,
                                         O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (posix_spawn(&dpid, g_daemon, &fa, NULL, argv, environ) != 0)
            die("cannot run %s", g_daemon);
        char *zGen = fmt("%s/generations", zRep);
        for (int i = 0; i < 3000 && !exists(zGen); i++)
            sleep_ms(10);
        sleep_ms(1500); /* its first snapshot and checkpoint */
        zStat = fmt("/proc/%d/stat", (int)dpid);
    }
    double c0 = a->daemon ? proc_cpu_s(zStat) : rusage_s(RUSAGE_SELF);
    double w0 = rusage_s(RUSAGE_THREAD);
    thr_cpu t0[32], t1[32];
    int n0 = a->daemon ? 0 : threads_cpu(t0, 32);
    sqlite3_stmt *ins = prepare_insert(db);
    int64_t s0 = now_ns(), tend = s0 + (int64_t)(opt_seconds * 1e9);
    long n = 0;
    while (now_ns() < tend)
        insert_one(db, ins, n++);
    r->v[1] = (double)(now_ns() - s0) / 1e9;
    sqlite3_finalize(ins);
    r->v[3] = rusage_s(RUSAGE_THREAD) - w0;
    if (!a->daemon)
        free(query_text(db, "SELECT litestream_sync(60000)"));
    else
        sleep_ms(2500); /* two sync intervals: the daemon catches up */
    r->v[0] = (double)n;
    if (a->daemon) {
        r->v[2] = proc_cpu_s(zStat) - c0;
        kill(dpid, SIGTERM);
        wait_pid(dpid);
    } else {
        r->v[2] = rusage_s(RUSAGE_SELF) - c0 - (rusage_s(RUSAGE_THREAD) - w0);
        int n1 = threads_cpu(t1, 32);
        for (int i = 0; i < n1; i++) {
            double before = 0;
            for (int k = 0; k < n0; k++)
                if (!strcmp(t0[k].name, t1[i].name))
                    before = t0[k].s;
            size_t l = strlen(r->note);
            snprintf(r->note + l, sizeof r->note - l, "%s`%s` %.2f us",
                     l ? ", " : "", t1[i].name,
                     (t1[i].s - before) / (double)n * 1e6);
        }
    }
    r->hwm_kb = vm_hwm_kb();
    sqlite3_close(db);
    rm_rf(zDir);
    r->ok = 1;
}

static void
section_j(void)
{
    double us[2][16];
    int ok[2] = {0, 0};
    result last[2];
    memset(last, 0, sizeof last);
    for (int rep = 0; rep < opt_reps; rep++)
        for (int d = 0; d < (g_daemon ? 2 : 1); d++) {
            progress("j. CPU per transaction, rep %d/%d: %s", rep + 1, opt_reps,
                     d ? "daemon" : "extension");
            j_arg a = {d};
            result r = in_child(child_j, &a);
            if (!r.ok || r.v[0] <= 0) {
                progress("   failed: %s", r.note);
                continue;
            }
            us[d][ok[d]++] = r.v[2] / r.v[0] * 1e6;
            last[d] = r;
            progress("   %.0f tx, %.2f us/tx", r.v[0], r.v[2] / r.v[0] * 1e6);
        }
    out("### CPU of the replication per transaction (1-row transactions at "
        "full speed for %.0f s, 1 s sync, file replica)\n\n",
        opt_seconds);
    out("| replicator | runs (us/tx) | median us/tx | target | tx in the "
        "last run | writer thread us/tx (last run) | per thread (last run) "
        "|\n|---|---|---:|---|---:|---:|---|\n");
    for (int d = 0; d < 2; d++) {
        if (!ok[d])
            continue;
        char runs[256] = "";
        for (int i = 0; i < ok[d]; i++)
            snprintf(runs + strlen(runs), sizeof runs - strlen(runs), "%s%.2f",
                     i ? ", " : "", us[d][i]);
        double m = median(us[d], ok[d]);
        out("| %s | %s | %.2f | %s | %.0f | %.2f | %s |\n",
            d ? "daemon v0.3.13 (its process, /proc/PID/stat)"
              : "extension's threads (process CPU minus the writer "
                "thread's)",
            runs, m, d ? "" : (m <= 8 ? "<= 8: met" : "<= 8: **MISSED**"),
            last[d].v[0], last[d].v[3] / last[d].v[0] * 1e6,
            d ? "" : last[d].note);
    }
    out("\nThe extension's figure counts everything its threads did from "
        "the first commit to the end of the `litestream_sync()` after the "
        "last (process CPU from getrusage minus the writer thread's, so "
        "threads that ended are counted too); the per-thread column is "
        "from /proc/self/task/*/stat by thread name (unnamed threads carry "
        "the program's name). The daemon's is its process's CPU over the "
        "same window plus 2.5 s to catch up.\n\n");
}

/* ---- main ----------------------------------------------------------------
 */

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
        die("usage: writers -ext PATH [-daemon PATH] -work DIR -out FILE.md");
    mkdir_p(work);
    if (!realpath(work, g_work))
        die("bad work dir %s", work);
    opt_quick = getenv("BENCH_QUICK") && atoi(getenv("BENCH_QUICK"));
    opt_seconds = env_num("BENCH_SECONDS", 1, 5);
    opt_warmup = env_num("BENCH_WARMUP", 0.3, 1);
    opt_reps = (int)env_num("BENCH_REPS", 1, 3);
    opt_value = (int)env_num("BENCH_VALUE", 100, 100);
    opt_rss_commits = (int)env_num("BENCH_RSS_COMMITS", 20000, 100000);
    opt_big_mb = (int)env_num("BENCH_BIG_MB", 20, 200);
    opt_writers = (int)env_num("BENCH_WRITERS", 4, 4);
    if (opt_reps > 15)
        opt_reps = 15;
    if (opt_writers < 1 || opt_writers > 16)
        opt_writers = 4;
    if (opt_value < 1 || opt_value > 4096)
        opt_value = 100;
    if (getenv("BENCH_DAEMON") && !atoi(getenv("BENCH_DAEMON")))
        g_daemon = NULL;
    srand(4321);
    for (size_t i = 0; i < sizeof g_val; i++)
        g_val[i] = (unsigned char)rand();
    const char *only = getenv("BENCH_ONLY");
    g_md = fopen(g_out, "a");
    if (!g_md)
        die("cannot write %s", g_out);
    if (!only || strchr(only, 'g')) {
        out("\n## g. 1-row transactions, %d writers (WAL, "
            "synchronous=NORMAL, %.1f s after %.1f s warm-up, median of %d "
            "interleaved runs)\n\n",
            opt_writers, opt_seconds, opt_warmup, opt_reps);
        section_g();
    }
    if (!only || strchr(only, 'i')) {
        out("\n## i. peak memory\n\n");
        section_i();
    }
    if (!only || strchr(only, 'j')) {
        out("\n## j. CPU per transaction\n\n");
        section_j();
    }
    fclose(g_md);
    return 0;
}
