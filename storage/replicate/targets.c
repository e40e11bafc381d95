/*
 * storage/replicate/targets.c: the replicas of a URL list (PRAGMA
 * litestream_url = 'URL1 URL2'): parsing the list, opening each replica's
 * backend, writer lease and checksum table, and each replica's upload task
 * (targets.h).
 *
 * Every replica uploads in a pool task of its own (tg_pass, on the pool's
 * upload lane), so a replica whose server hangs occupies its own worker
 * and delays no other replica.  The replicator's task decides, every sync
 * interval or when asked, whether this process ships (replicator.c,
 * upload_pass) and wakes the replicas that are due (rep_targets_dispatch);
 * a replica's pass ends by telling it when that replica is due next.
 *
 * Invariants:
 *   1. A replica's task runs only between a dispatch and the end of that
 *      pass (inflight), one pass at a time (the pool's invariant 1); a
 *      dispatch while it runs (a sync) makes it run once more at once.
 *   2. Retries of a failing replica are shy (pool_shy_enter): at most the
 *      upload lane's bound - 1 of them run at once in the process, so a
 *      hung server never takes the last upload worker from the healthy
 *      replicas of any database; a retry that finds no room waits for its
 *      next due time.
 *
 * Threads: opening on the application thread; tg_pass on pool workers;
 * rep_targets_dispatch and rep_release_laggards on the replicator's task.
 */
#include "storage/replicate/targets.h"
#include "storage/history/compactor.h"
#include "storage/replicate/lease.h"
#include "storage/replicate/spool_txn.h"
#include "storage/replicate/upload.h"

#include "storage/base/rand.h"

#include <string.h>

#define BACKOFF_MAX_MS 30000

/*
 * Opens replica n of the list: the URL, its backend, its writer lease, its
 * checksum table.  No I/O to the replica yet.
 */
static int
open_target(replicator *r, int n, const char *zUrl, size_t len, char **pzErr)
{
    rep_target *tg = &r->tg[n];
    tg->r = r;
    tg->idx = n;
    tg->zUrl = sqlite3_mprintf("%.*s", (int)len, zUrl);
    if (!tg->zUrl)
        return SQLITE_NOMEM;
    for (int i = 0; i < n; i++)
        if (strcmp(r->tg[i].zUrl, tg->zUrl) == 0) {
            *pzErr = sqlite3_mprintf("litestream: the URL list names %s "
                                     "twice: give each replica once",
                                     r->tg[i].url->redacted);
            return SQLITE_ERROR;
        }
    int rc = url_parse(tg->zUrl, &tg->url, pzErr);
    if (rc == SQLITE_OK)
        rc = backend_open_url(tg->url, &tg->be, pzErr);
    if (rc == SQLITE_OK)
        rc = lease_open(tg->url, r->zDbPath, &tg->lease, pzErr);
    if (rc == SQLITE_OK)
        rc = cktab_init_n(&tg->ck, sidecar_dir(r->sc), n);
    if (rc == SQLITE_OK)
        cktab_load(&tg->ck, sidecar_replicated_n(r->sc, n));
    return rc;
}

/*
 * Opens every replica of the whitespace-separated list zUrl and joins
 * their redacted URLs for PRAGMA litestream_url.
 */
int
rep_open_targets(replicator *r, const char *zUrl, char **pzErr)
{
    int rc = SQLITE_OK;
    const char *z = zUrl;
    while (rc == SQLITE_OK) {
        z += strspn(z, " \t\r\n");
        size_t len = strcspn(z, " \t\r\n");
        if (!len)
            break;
        if (r->ntg == LS_MAX_REPLICAS) {
            *pzErr = sqlite3_mprintf("litestream: at most %d replica URLs "
                                     "per database, not more",
                                     LS_MAX_REPLICAS);
            return SQLITE_ERROR;
        }
        rc = open_target(r, r->ntg++, z, len, pzErr);
        z += len;
    }
    if (rc == SQLITE_OK && r->ntg == 0) {
        *pzErr = sqlite3_mprintf("litestream: the replica URL is empty");
        rc = SQLITE_ERROR;
    }
    for (int i = 0; rc == SQLITE_OK && i < r->ntg; i++) {
        char *zJoined =
            sqlite3_mprintf("%s%s%s", r->zUrlRedacted ? r->zUrlRedacted : "",
                            i ? " " : "", r->tg[i].url->redacted);
        sqlite3_free(r->zUrlRedacted);
        r->zUrlRedacted = zJoined;
        if (!zJoined)
            rc = SQLITE_NOMEM;
    }
    return rc;
}

int
replicator_check_url(const char *zUrl, char **pzErr)
{
    const char *z = zUrl, *azSeen[LS_MAX_REPLICAS];
    size_t anSeen[LS_MAX_REPLICAS];
    int n = 0, rc = SQLITE_OK;
    while (rc == SQLITE_OK) {
        z += strspn(z, " \t\r\n");
        size_t len = strcspn(z, " \t\r\n");
        if (!len)
            break;
        if (n == LS_MAX_REPLICAS) {
            *pzErr = sqlite3_mprintf("litestream: at most %d replica URLs "
                                     "per database, not more",
                                     LS_MAX_REPLICAS);
            return SQLITE_ERROR;
        }
        char *zOne = sqlite3_mprintf("%.*s", (int)len, z);
        ls_url *u = NULL;
        rc = zOne ? url_parse(zOne, &u, pzErr) : SQLITE_NOMEM;
        for (int i = 0; rc == SQLITE_OK && i < n; i++)
            if (anSeen[i] == len && memcmp(azSeen[i], z, len) == 0) {
                *pzErr = sqlite3_mprintf("litestream: the URL list names %s "
                                         "twice: give each replica once",
                                         u->redacted);
                rc = SQLITE_ERROR;
            }
        url_free(u);
        sqlite3_free(zOne);
        azSeen[n] = z;
        anSeen[n++] = len;
        z += len;
    }
    return rc;
}

/* ---- each replica's upload task ----------------------------------------- */

/* Whether an upload to tg has anything to send (its writer lease is kept
 * fresh only then, storage/replicate/lease.h). */
static int
has_work(replicator *r, const rep_target *tg)
{
    ls_cap cap;
    uint64_t c = sidecar_cap_read(r->sc, &cap) ? cap.txid : 0;
    return !tg->replica_checked || tg->need_full ||
           c > sidecar_replicated_n(r->sc, tg->idx);
}

/*
 * One upload of tg: what the replicator asked of it meanwhile, its writer
 * lease, then rep_upload_once().  SQLITE_OK or the failure; *failed also
 * when the lease was refused while there was work.
 */
static int
upload_attempt(rep_target *tg, int *failed)
{
    replicator *r = tg->r;
    if (__atomic_exchange_n(&tg->rewrite_ck, 0, __ATOMIC_ACQ_REL))
        tg->ck.rewrite = 1; /* the sidecar was created again */
    if (__atomic_load_n(&tg->released, __ATOMIC_ACQUIRE))
        tg->need_full = 1; /* the spool no longer keeps its TXIDs */
    int busy = has_work(r, tg);
    int leased = rep_lease_check(tg, busy);
    pthread_mutex_lock(&r->mu);
    int woke = leased && !tg->leased && r->shipping;
    tg->leased = leased; /* the compactor reads it (is_shipping) */
    pthread_mutex_unlock(&r->mu);
    if (woke && tg->cp)
        compactor_wake(tg->cp); /* it sleeps while this process does not
                                 * ship there (ship.c tells it too, a pass
                                 * later) */
    uint64_t before = sidecar_replicated_n(r->sc, tg->idx);
    int rc = leased ? rep_upload_once(tg) : SQLITE_OK;
    if (tg->cp && sidecar_replicated_n(r->sc, tg->idx) != before)
        compactor_notify(tg->cp); /* level 1 and retention: something new */
    *failed = rc != SQLITE_OK || (!leased && busy);
    return rc;
}

/*
 * When tg is due next after a pass that began at t0 and ended at now:
 * one interval after t0 on success, after a capped exponential backoff
 * with jitter on failure (from the end: a hung attempt may have outlasted
 * the backoff).  ran: whether it uploaded at all (a shy retry without
 * room waits its backoff, or an interval, unchanged).  refused: its
 * writer lease said no while there was work (no request failed: it looks
 * again an interval later, and its backoff says so, so that a waiting
 * sync does not ask again and again: replicator.c may_ask).
 */
static int64_t
next_due(rep_target *tg, int ran, int rc, int refused, int64_t t0, int64_t now,
         int interval)
{
    int b = __atomic_load_n(&tg->backoff_ms, __ATOMIC_RELAXED);
    if (!ran)
        return now + (b ? b : interval);
    if (refused) {
        __atomic_store_n(&tg->backoff_ms, interval, __ATOMIC_RELAXED);
        return now + interval;
    }
    if (rc == SQLITE_OK) {
        __atomic_store_n(&tg->backoff_ms, 0, __ATOMIC_RELAXED);
        return t0 + interval;
    }
    b = b ? b * 2 : 500;
    b = b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b;
    __atomic_store_n(&tg->backoff_ms, b, __ATOMIC_RELAXED);
    return now + b / 2 + (int64_t)ls_rand_upto((uint64_t)b / 2);
}

/*
 * The pass of a replica's task (storage/base/pool.h): upload when this
 * process ships, then report when it is due next to the replicator's task
 * (woken if that is sooner than it planned) and to the threads waiting in
 * replicator_sync().  Due again only when dispatched (or asked meanwhile).
 */
static void
tg_pass(void *arg, int heavy, int64_t due[2])
{
    rep_target *tg = arg;
    replicator *r = tg->r;
    (void)heavy; /* always: the task has no light work */
    due[POOL_LIGHT] = due[POOL_HEAVY] = POOL_NEVER;
    pthread_mutex_lock(&r->mu);
    int go = r->shipping && !r->stop && tg->inflight;
    int failing = tg->failing, interval = r->opts.sync_interval_ms;
    int64_t t0 = tg->dispatched_ms;
    pthread_mutex_unlock(&r->mu);

    int rc = SQLITE_OK, failed = failing, ran = 0;
    int shy = go && failing && pool_shy_enter();
    if (go && (!failing || shy)) {
        rc = upload_attempt(tg, &failed);
        ran = 1;
    }
    if (shy)
        pool_shy_leave();

    int64_t now = clock_now_ms(), next = now;
    if (go)
        next = next_due(tg, ran, rc, ran && rc == SQLITE_OK && failed, t0, now,
                        interval);
    int wake = 0;
    pthread_mutex_lock(&r->mu);
    if (go)
        tg->next_upload_ms = next;
    if (ran) {
        tg->failing = failed;
        tg->settled =
            rc == SQLITE_OK && !failed && tg->replica_checked && !tg->need_full;
    }
    if (tg->again && go && !r->stop && !failed) {
        tg->again = 0; /* asked while it ran: once more, at once (after a
                        * failure its backoff decides) */
        tg->dispatched_ms = now;
        due[POOL_HEAVY] = now;
    } else {
        tg->inflight = tg->again = 0;
        if (go && tg->next_upload_ms < r->next_upload_ms) {
            /* atomic: the watch function reads it (ship.c) */
            __atomic_store_n(&r->next_upload_ms, tg->next_upload_ms,
                             __ATOMIC_RELAXED);
            wake = 1;
        }
    }
    pthread_cond_broadcast(&r->changed); /* a waiting sync looks again */
    pthread_mutex_unlock(&r->mu);
    if (wake)
        pool_wake(&r->task, POOL_HEAVY);
}

int
rep_targets_start(replicator *r, char **pzErr)
{
    int64_t due[2] = {POOL_NEVER, POOL_NEVER}; /* until dispatched */
    for (int i = 0; i < r->ntg; i++) {
        int rc =
            pool_add(&r->tg[i].task, tg_pass, &r->tg[i], POOL_FG, due, pzErr);
        if (rc != SQLITE_OK)
            return rc;
        r->tg[i].task_added = 1;
    }
    return SQLITE_OK;
}

void
rep_targets_stop(replicator *r)
{
    for (int i = 0; i < r->ntg; i++)
        if (r->tg[i].task_added) {
            pool_remove(&r->tg[i].task); /* waits for a running pass */
            r->tg[i].task_added = 0;
        }
}

/*
 * Whether tg's pass would do nothing: it settled (replica checked, no full
 * image due, not released), nothing was captured beyond its replicated
 * TXID, and its lease says what its last pass saw (lease_ok when not busy
 * sends nothing; a lease lost meanwhile must reach `leased`, which stops
 * its compactor).  An idle database then costs no pass per replica and
 * interval.  Caller holds mu (then the lease's own).
 */
static int
nothing_to_do(replicator *r, const rep_target *tg)
{
    ls_cap cap;
    char *zWhy = NULL;
    if (!tg->settled || __atomic_load_n(&tg->released, __ATOMIC_ACQUIRE) ||
        !sidecar_cap_read(r->sc, &cap) ||
        cap.txid > sidecar_replicated_n(r->sc, tg->idx))
        return 0;
    int held = lease_ok(tg->lease, 0, &zWhy);
    sqlite3_free(zWhy);
    return held == tg->leased;
}

int64_t
rep_targets_dispatch(replicator *r, int64_t t, int asked)
{
    pthread_mutex_lock(&r->mu);
    int interval = r->opts.sync_interval_ms;
    int64_t next = t + interval;
    for (int i = 0; i < r->ntg; i++) {
        rep_target *tg = &r->tg[i];
        if (tg->inflight) {
            tg->again |= asked; /* it reports when its pass ends */
            continue;
        }
        if (t >= tg->next_upload_ms && !asked && nothing_to_do(r, tg)) {
            tg->next_upload_ms = t + interval; /* as a pass finding nothing */
            continue;
        }
        if (t >= tg->next_upload_ms || asked) {
            tg->inflight = 1;
            tg->dispatched_ms = t;
            pool_wake(&tg->task, POOL_HEAVY);
        } else if (tg->next_upload_ms < next) {
            next = tg->next_upload_ms;
        }
    }
    __atomic_store_n(&r->next_upload_ms, next, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&r->mu);
    return next;
}

void
rep_release_laggards(replicator *r)
{
    uint64_t healthy = UINT64_MAX; /* what the healthy replicas hold */
    int out[LS_MAX_REPLICAS] = {0}, released = 0;
    pthread_mutex_lock(&r->mu);
    int64_t limit = r->opts.spool_limit;
    for (int i = 0; i < r->ntg; i++) {
        rep_target *tg = &r->tg[i];
        out[i] = __atomic_load_n(&tg->backoff_ms, __ATOMIC_RELAXED) ||
                 !tg->leased || tg->failing;
    }
    pthread_mutex_unlock(&r->mu);
    if ((int64_t)spool_bytes(r->sp) < limit / 2 || r->ntg < 2)
        return;
    for (int i = 0; i < r->ntg; i++) {
        uint64_t v = sidecar_replicated_n(r->sc, i);
        if (!out[i] && v < healthy)
            healthy = v;
    }
    for (int i = 0; healthy != UINT64_MAX && i < r->ntg; i++) {
        rep_target *tg = &r->tg[i];
        if (!out[i] || __atomic_load_n(&tg->released, __ATOMIC_ACQUIRE) ||
            sidecar_replicated_n(r->sc, i) >= healthy)
            continue;
        /* Its task turns this into need_full at its next pass. */
        __atomic_store_n(&tg->released, 1, __ATOMIC_RELEASE);
        released = 1;
        sqlite3_log(SQLITE_WARNING,
                    "litestream: replica %s of '%s' keeps failing while the "
                    "spool fills: it continues with a full image once "
                    "reachable",
                    tg->url->redacted, r->zDbPath);
    }
    if (released) {
        rep_spool_lock(r);
        spool_drop_upto(r->sp, rep_spool_floor(r));
        rep_spool_unlock(r);
    }
}
