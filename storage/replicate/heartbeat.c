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
 *      replicator pass that made it due (a slow endpoint never holds up
 *      spooling or uploads); one at a time.
 *
 * Threads: replicator threads (heartbeat_tick), the application's
 * (heartbeat_set, heartbeat_get, add and remove).
 */
#include "storage/replicate/heartbeat.h"

#include "storage/backend/http.h"
#include "storage/base/clock.h"

#include <string.h>

#define MAX_REPS 1024 /* databases watched; more are simply not checked */

static pthread_mutex_t hb_mu = PTHREAD_MUTEX_INITIALIZER;
static char *hb_url;                 /* NULL: no heartbeat */
static int64_t hb_interval = 300000; /* ms */
static int64_t hb_last_try;          /* ms; 0: never */
static int hb_busy;                  /* a GET is running */
static uint64_t hb_ok, hb_fail;      /* counters */
static replicator *hb_reps[MAX_REPS];
static int hb_nrep;
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
}

static void
hb_init(void)
{
    pthread_atfork(hb_prepare, hb_parent, hb_child);
}

void
heartbeat_add(replicator *r)
{
    pthread_once(&hb_once, hb_init);
    pthread_mutex_lock(&hb_mu);
    if (hb_nrep < MAX_REPS)
        hb_reps[hb_nrep++] = r;
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
    }
    if (interval_ms > 0)
        hb_interval = interval_ms;
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

void
heartbeat_tick(void)
{
    int64_t now = clock_now_ms();
    char *zUrl = NULL;
    pthread_mutex_lock(&hb_mu);
    int due = hb_url && !hb_busy && hb_nrep > 0 &&
              (hb_last_try == 0 || now - hb_last_try >= hb_interval);
    for (int i = 0; due && i < hb_nrep; i++)
        due = healthy(hb_reps[i], now, hb_interval);
    if (due && (zUrl = sqlite3_mprintf("%s", hb_url)) != NULL) {
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
