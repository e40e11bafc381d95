/*
 * storage/replicate/heartbeat.c: the process's heartbeat (heartbeat.h), a
 * dead-man's switch for monitoring services: a GET of a URL once per
 * interval while every database the process replicates is in its replica.
 *
 * Invariants:
 *   1. At most one GET per interval, whatever its outcome: a failing
 *      endpoint is logged and counted, never retried in a loop.
 *   2. No GET while any database has transactions that have waited longer
 *      than the interval for the replica (uploads failing or far behind):
 *      the monitor then sees the pings stop.
 *   3. The GET runs on a short-lived detached thread started by the
 *      heartbeat's own pool task when it is due (a slow endpoint never
 *      holds up spooling or uploads); one at a time.
 *   4. Nothing wakes for the heartbeat while it has no URL or no database:
 *      its task is due once per interval only while there is one to ping
 *      (an idle replicator no longer runs an upload pass per interval,
 *      docs/architecture.md 3.1, so the heartbeat keeps its own time).
 *
 * Threads: its pool task (hb_pass, on an upload worker), the application's
 * (heartbeat_set, heartbeat_get, add and remove).
 */
#include "storage/replicate/heartbeat.h"

#include "storage/backend/http.h"
#include "storage/base/clock.h"
#include "storage/base/pool.h"

#include <string.h>

#define MAX_REPS 1024 /* databases watched; more are simply not checked */
#define RETRY_MS 1000 /* an unhealthy moment: look again this soon */

static pthread_mutex_t hb_mu = PTHREAD_MUTEX_INITIALIZER;
static char *hb_url;                 /* NULL: no heartbeat */
static int64_t hb_interval = 300000; /* ms */
static int64_t hb_last_try;          /* ms; 0: never */
static int hb_busy;                  /* a GET is running */
static uint64_t hb_ok, hb_fail;      /* counters */
static replicator *hb_reps[MAX_REPS];
static int hb_nrep;
static int64_t hb_retry; /* ms: due but unhealthy, look again then */
static pool_task hb_task;
static int hb_task_added;
static pthread_once_t hb_once = PTHREAD_ONCE_INIT;

/* fork(): the child starts with no GET running, no replicators (its
 * registry drops them) and an unlocked mutex. */
static void
hb_prepare(void)
{
    pthread_mutex_lock(&hb_mu);
}

static void
hb_parent(void)
{
    pthread_mutex_unlock(&hb_mu);
}

static void
hb_child(void)
{
    pthread_mutex_init(&hb_mu, NULL);
    hb_busy = 0;
    hb_nrep = 0;
    hb_task_added = 0; /* the child's pool starts empty */
}

static void
hb_init(void)
{
    pthread_atfork(hb_prepare, hb_parent, hb_child);
}

static void hb_pass(void *ctx, int heavy, int64_t due[2]);

/* When the task is next due (hb_mu held). */
static int64_t
hb_due(int64_t now)
{
    if (!hb_url || hb_nrep == 0)
        return POOL_NEVER; /* invariant 4 */
    if (hb_retry)
        return hb_retry;
    return hb_last_try ? hb_last_try + hb_interval : now;
}

/* Adds the task once per process, else makes it look again (hb_mu held:
 * the pool's mutex is taken after it, never before). */
static void
hb_schedule(void)
{
    int64_t now = clock_now_ms();
    if (!hb_task_added) {
        char *zErr = NULL;
        int64_t due[2] = {POOL_NEVER, hb_due(now)};
        hb_task_added =
            pool_add(&hb_task, hb_pass, NULL, POOL_FG, due, &zErr) == SQLITE_OK;
        if (!hb_task_added)
            sqlite3_log(SQLITE_WARNING, "%s (the heartbeat is off)",
                        zErr ? zErr : "litestream: out of memory");
        sqlite3_free(zErr);
    } else {
        pool_wake_at(&hb_task, POOL_HEAVY, hb_due(now));
    }
}

void
heartbeat_add(replicator *r)
{
    pthread_once(&hb_once, hb_init);
    pthread_mutex_lock(&hb_mu);
    if (hb_nrep < MAX_REPS)
        hb_reps[hb_nrep++] = r;
    hb_schedule();
    pthread_mutex_unlock(&hb_mu);
}

void
heartbeat_remove(replicator *r)
{
    pthread_mutex_lock(&hb_mu);
    for (int i = 0; i < hb_nrep; i++)
        if (hb_reps[i] == r) {
            hb_reps[i] = hb_reps[--hb_nrep];
            break;
        }
    pthread_mutex_unlock(&hb_mu);
}

int
heartbeat_set(const char *zUrl, int64_t interval_ms)
{
    char *z = NULL;
    if (zUrl && zUrl[0] && !(z = sqlite3_mprintf("%s", zUrl)))
        return SQLITE_NOMEM;
    pthread_mutex_lock(&hb_mu);
    if (zUrl) {
        sqlite3_free(hb_url);
        hb_url = z;
        hb_last_try = 0; /* a new URL is pinged at the next healthy pass */
        hb_retry = 0;
    }
    if (interval_ms > 0)
        hb_interval = interval_ms;
    pthread_once(&hb_once, hb_init);
    if (hb_nrep > 0)
        hb_schedule();
    pthread_mutex_unlock(&hb_mu);
    return SQLITE_OK;
}

char *
heartbeat_get(int64_t *interval_ms, uint64_t *n_ok, uint64_t *n_fail)
{
    pthread_mutex_lock(&hb_mu);
    char *z = hb_url ? sqlite3_mprintf("%s", hb_url) : NULL;
    if (interval_ms)
        *interval_ms = hb_interval;
    if (n_ok)
        *n_ok = hb_ok;
    if (n_fail)
        *n_fail = hb_fail;
    pthread_mutex_unlock(&hb_mu);
    return z;
}

/* Whether r has nothing that waited longer than `within` ms for the
 * replica (invariant 2).  Caller holds hb_mu. */
static int
healthy(replicator *r, int64_t now, int64_t within)
{
    ls_cap cap;
    /* Every replica of a URL list. */
    if (!sidecar_cap_read(r->sc, &cap))
        return 1;
    for (int i = 0; i < r->ntg; i++) {
        int64_t since = sidecar_replicated_at_n(r->sc, i);
        if (cap.txid > sidecar_replicated_n(r->sc, i) &&
            !(since > 0 && now - since < within))
            return 0;
    }
    return 1;
}

/* One GET of zUrl: 2xx or 3xx is a success.  1 or 0, *pzWhy on failure. */
static int
ping(const char *zUrl, char **pzWhy)
{
    http_opts o = {.connect_timeout_ms = 5000,
                   .stall_timeout_ms = 10000,
                   .max_attempts = 1};
    http_client *c = NULL;
    http_resp resp;
    memset(&resp, 0, sizeof(resp));
    http_req req = {.method = "GET", .url = zUrl, .max_response = 65536};
    int good = 0;
    if (http_client_new(&o, &c) != SQLITE_OK) {
        *pzWhy = sqlite3_mprintf("cannot create an HTTP client");
        return 0;
    }
    if (http_do(c, &req, &resp) != SQLITE_OK)
        *pzWhy = sqlite3_mprintf("%s", resp.transport ? resp.transport
                                                      : "no response");
    else if (resp.status >= 200 && resp.status < 400)
        good = 1;
    else
        *pzWhy = sqlite3_mprintf("HTTP status %ld", resp.status);
    http_resp_clear(&resp);
    http_client_free(c);
    return good;
}

/* The GET (invariant 3): zUrl is the thread's to free. */
static void *
ping_main(void *arg)
{
    char *zUrl = arg, *zWhy = NULL;
    pthread_setname_np(pthread_self(), "ls-heartbeat");
    int good = ping(zUrl, &zWhy);
    if (!good)
        sqlite3_log(SQLITE_WARNING,
                    "litestream: heartbeat GET failed: %s (next try in one "
                    "interval)",
                    zWhy ? zWhy : "out of memory");
    sqlite3_free(zWhy);
    sqlite3_free(zUrl);
    pthread_mutex_lock(&hb_mu);
    hb_busy = 0;
    if (good)
        hb_ok++;
    else
        hb_fail++;
    pthread_mutex_unlock(&hb_mu);
    return NULL;
}

/* The GET if it is due and every database is healthy (invariants 1-3). */
static void
hb_tick(void)
{
    int64_t now = clock_now_ms();
    char *zUrl = NULL;
    pthread_mutex_lock(&hb_mu);
    int due = hb_url && !hb_busy && hb_nrep > 0 &&
              (hb_last_try == 0 || now - hb_last_try >= hb_interval);
    int well = 1;
    for (int i = 0; due && well && i < hb_nrep; i++)
        well = healthy(hb_reps[i], now, hb_interval);
    hb_retry = 0;
    if (due && !well) /* no GET now (invariant 2): look again soon */
        hb_retry = now + (hb_interval < RETRY_MS ? hb_interval : RETRY_MS);
    if (due && well && (zUrl = sqlite3_mprintf("%s", hb_url)) != NULL) {
        hb_busy = 1;
        hb_last_try = now; /* invariant 1: whatever the outcome */
    }
    pthread_mutex_unlock(&hb_mu);
    if (!zUrl)
        return;
    pthread_t tid;
    pthread_attr_t at;
    int started =
        pthread_attr_init(&at) == 0 &&
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0 &&
        pthread_create(&tid, &at, ping_main, zUrl) == 0;
    pthread_attr_destroy(&at);
    if (!started) {
        sqlite3_free(zUrl);
        pthread_mutex_lock(&hb_mu);
        hb_busy = 0;
        hb_fail++;
        pthread_mutex_unlock(&hb_mu);
        sqlite3_log(SQLITE_WARNING, "litestream: cannot start the heartbeat "
                                    "thread (next try in one interval)");
    }
}

/* The heartbeat's pool task: a GET when due, then the next due time. */
static void
hb_pass(void *ctx, int heavy, int64_t due[2])
{
    (void)ctx;
    if (heavy)
        hb_tick();
    pthread_mutex_lock(&hb_mu);
    due[POOL_LIGHT] = POOL_NEVER;
    due[POOL_HEAVY] = hb_due(clock_now_ms());
    pthread_mutex_unlock(&hb_mu);
}
