/*
 * storage/replicate/replicator.c: the replicator of one database in one process
 * (replicator.h): in-memory queue -> spool -> L0 LTX objects in the replica.
 *
 * Threads:
 *   - application threads call replicator_enqueue() (mutex + list append),
 *     replicator_persist(), replicator_sync() and the status functions;
 *   - the replicator is a task of the process's pool (storage/base/pool.h):
 *     its passes (rep_pass) spool the queue every tick on the pool's spool
 *     lane or an upload worker and, every sync interval on an upload
 *     worker, decide whether this process ships (it holds the ship lock)
 *     and wake the replicas that are due; one pass at a time;
 *   - each replica uploads in a task of its own (targets.c), so a replica
 *     that hangs holds up only its own worker.
 * The functions above "application side" run in those passes only, except
 * that replicator_close() first removes the tasks (waiting for their
 * passes).
 *
 * The uploads themselves are in upload.c, spool records are built in
 * spool_txn.c (replicator_int.h shows how the files call each other and
 * the order of the locks).  The spool handle is shared by this task and
 * the replicas' tasks under spool_mu; this task only tries it
 * (rep_spool_trylock), so the spool lane never waits for an upload.
 *
 * Invariants:
 *   1. Nothing captured is dropped: a transaction leaves the queue only
 *      once it is in the spool (on failure it goes back to the front).
 *   2. A spool segment is deleted only once every record in it is <= the
 *      replicated TXID of every replica still fed from the spool
 *      (rep_spool_floor, computed and acted on under spool_mu, which every
 *      read of the spool holds; a released replica continues with a full
 *      image).
 */
#include "storage/replicate/replicator_int.h"

#include "storage/base/clock.h"
#include "storage/base/mem.h"
#include "storage/base/pool.h"
#include "storage/history/compactor.h"
#include "storage/local/wal.h"
#include "storage/replicate/heartbeat.h"
#include "storage/replicate/lease.h"
#include "storage/replicate/recover.h"
#include "storage/replicate/refs.h"
#include "storage/replicate/ship.h"
#include "storage/replicate/spool_txn.h"
#include "storage/replicate/targets.h"
#include "storage/replicate/txarena.h"
#include "storage/replicate/upload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS            100         /* spooling cadence */
#define QUEUE_UPLOAD_BYTES (16u << 20) /* wake to upload at once */

/* Spooling the queue: storage/replicate/spool_txn.c (rep_spool_queue). */

/*
 * The last connection to a replaced database closed: its captured
 * position describes the old file and WAL, so the next open of the path
 * must not continue from it.  The position is marked lost (the next
 * capture takes one full image of what is then at the path) and the TXIDs
 * this process captured stay below the next ones (the floor).
 */
static void
forget_position(replicator *r)
{
    ls_cap cap, lost;
    if (sidecar_cap_read(r->sc, &cap) && cap.txid > sidecar_txid_floor(r->sc))
        sidecar_set_txid_floor(r->sc, cap.txid);
    memset(&lost, 0, sizeof(lost));
    sidecar_cap_write(r->sc, &lost);
}

/*
 * One pass of the replicator's task in the pool (storage/base/pool.h): spool
 * the queue, answer persist requests, and on a heavy pass upload when due.
 * Then the next due times: the light one every TICK_MS while transactions
 * arrive (the application does not wake the task: a pass takes what a tick
 * gathered, one record per run), none after a tick that brought nothing
 * (the first enqueue then wakes it); the heavy one at the next upload pass
 * while anything is left to upload, or now when asked; none once every
 * replica holds everything (rep_settled): then a watched directory that
 * changes (another process's spool, ship.c) or the application wakes it.
 */
static void
rep_pass(void *arg, int heavy, int64_t due[2])
{
    replicator *r = arg;
    pthread_mutex_lock(&r->mu);
    uint64_t ticket = r->persist_req;
    int want_upload = r->upload_now;
    int had = r->head || rep_slot_open(r); /* this pass has something */
    int64_t next_upload = r->next_upload_ms;
    pthread_mutex_unlock(&r->mu);

    /* A replica's upload holding the spool wakes this task when it lets
     * go (and spools a big queue or a persist request itself meanwhile). */
    int busy = !rep_spool_trylock(r);
    if (!busy) {
        int rc = rep_spool_queue(r, 0);
        rep_persist_answer(r, ticket, rc);
        rep_spool_unlock(r);
    }
    rep_refs_pass(r);

    int64_t t = clock_now_ms();
    if (heavy && (want_upload || t >= next_upload))
        rep_upload_pass(r, t, want_upload);
    int settled = r->watching && rep_settled(r);
    if (settled)
        r->ring_rep = UINT64_MAX; /* the next wait starts afresh (ship.c) */

    pthread_mutex_lock(&r->mu);
    int64_t now = clock_now_ms();
    r->idle = 0;
    if (r->stop) {
        due[POOL_LIGHT] = due[POOL_HEAVY] = POOL_NEVER;
    } else {
        if (r->persist_req > r->persist_done && !busy)
            due[POOL_LIGHT] = now;
        else if (r->head || rep_slot_open(r) || had ||
                 r->persist_req > r->persist_done)
            due[POOL_LIGHT] = now + TICK_MS;
        else
            r->idle = 1;
        int quiet = settled && !r->head && !rep_slot_open(r) && !had;
        due[POOL_HEAVY] = r->upload_now ? now
                          : quiet       ? POOL_NEVER
                                        : r->next_upload_ms;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- application side -------------------------------------------------- */

/* compactor_env.xShipping: whether this process holds the ship lock. */
static int
is_shipping(void *pCtx)
{
    rep_target *tg = pCtx; /* ... and holds this replica's writer lease */
    replicator *r = tg->r;
    pthread_mutex_lock(&r->mu);
    int s = r->shipping && tg->leased;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* Starts a replica's compaction task over what it needs of r. */
static int
start_compactor(replicator *r, rep_target *tg, char **pzErr)
{
    compactor_env env = {.url = tg->url,
                         .zDbPath = r->zDbPath,
                         .zVfs = r->zVfs,
                         .sc = r->sc,
                         .xShipping = is_shipping,
                         .pCtx = tg,
                         .slot = tg->idx};
    return compactor_start(&env, &r->opts.pitr, &tg->cp, pzErr);
}

int
replicator_open(const char *zDbPath, const char *zUrl, const rep_opts *opts,
                sidecar *sc, replicator **out, char **pzErr)
{
    int rc;
    replicator *r = sqlite3_malloc64(sizeof(*r));
    *out = NULL;
    if (!r)
        return SQLITE_NOMEM;
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->spool_mu, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->sc = sc;
    r->pid = (int32_t)getpid();
    r->opts = *opts;
    rep_refs_alone(r, sidecar_alone(sc)); /* then refreshed by every pass */
    if (r->opts.sync_interval_ms <= 0)
        r->opts.sync_interval_ms = LS_DEFAULT_SYNC_MS;
    if (r->opts.spool_limit <= 0)
        r->opts.spool_limit = LS_DEFAULT_SPOOL_LIMIT;
    r->zDbPath = sqlite3_mprintf("%s", zDbPath);
    r->zUrl = sqlite3_mprintf("%s", zUrl);
    r->started_ns = clock_now_ms() * 1000000;
    r->zVfs = sqlite3_mprintf("%s", opts->zVfs ? opts->zVfs : "unix");
    if (!r->zDbPath || !r->zVfs || !r->zUrl) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = rep_open_targets(r, zUrl, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    char *zSpool = sqlite3_mprintf("%s/spool", sidecar_dir(sc));
    if (!zSpool) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = spool_open(zSpool, &r->sp, pzErr);
    sqlite3_free(zSpool);
    if (rc != SQLITE_OK)
        goto out;
    struct stat st;
    if (stat(zDbPath, &st) == 0) {
        r->db_dev = (uint64_t)st.st_dev;
        r->db_ino = (uint64_t)st.st_ino;
    }
    /* The compactors first: the task's upload passes tell them when this
     * process starts to upload (they sleep until then).  Then the
     * replicas' tasks: the replicator's first pass wakes them. */
    for (int i = 0; rc == SQLITE_OK && i < r->ntg; i++)
        rc = start_compactor(r, &r->tg[i], pzErr);
    if (rc == SQLITE_OK)
        rc = rep_targets_start(r, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    rep_watch_open(r); /* before the task's first pass (which may reopen) */
    int64_t due[2] = {clock_now_ms(), clock_now_ms()};
    rc = pool_add(&r->task, rep_pass, r, POOL_FG, due, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    r->started = 1;
    heartbeat_add(r);
out:
    if (rc != SQLITE_OK) {
        replicator_close(r, 0);
        return rc;
    }
    *out = r;
    return SQLITE_OK;
}

void
replicator_close(replicator *r, int grace_ms)
{
    if (!r)
        return;
    rep_refs_alone(r, 0); /* the capture copies from here on */
    heartbeat_remove(r);
    if (r->started) {
        /* Spool durably, then give the upload of what this process
         * captured a moment (the rest waits in the spool for the next
         * process that opens the database). */
        replicator_persist(r);
        pthread_mutex_lock(&r->mu);
        uint64_t want = __atomic_load_n(&r->last_enqueued, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&r->mu);
        if (grace_ms > 0 && want > rep_min_replicated(r))
            replicator_sync(r, want, grace_ms, NULL, NULL);
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->changed);
        pthread_mutex_unlock(&r->mu);
        pool_remove(&r->task); /* waits for a running pass */
        rep_targets_stop(r);   /* ... and each replica's */
        rep_watch_close(r);    /* no pass runs, none will: no race on w[] */
        /* After the tasks: their passes tell the compactors about
         * uploads. */
        for (int i = 0; i < r->ntg; i++) {
            compactor_stop(r->tg[i].cp);
            r->tg[i].cp = NULL;
        }
        rep_refs_alone(r, 0); /* (a pass may have set it again) */
        rep_spool_lock(r);
        rep_spool_queue(r, 1); /* anything enqueued meanwhile */
        rep_spool_unlock(r);
        for (int i = 0; i < r->ntg; i++) {
            /* released: another writer may take it */
            lease_close(r->tg[i].lease);
            r->tg[i].lease = NULL;
        }
        if (__atomic_load_n(&r->db_replaced, __ATOMIC_ACQUIRE))
            forget_position(r);
    }
    rep_targets_stop(r); /* an open that failed midway */
    rep_watch_close(r);
    for (rep_txn *t = r->head, *n; t; t = n) {
        n = t->next;
        rep_txn_free(t);
    }
    ls_free(r->slot_spare);
    if (r->fenced)
        sidecar_refs_unfence(r->sc, r->pid); /* nothing of ours is queued */
    for (int i = 0; i < r->ntg; i++) {
        rep_target *tg = &r->tg[i];
        compactor_stop(tg->cp); /* an open that failed midway */
        lease_close(tg->lease);
        if (tg->be)
            tg->be->vt->close(tg->be);
        url_free(tg->url);
        cktab_free(&tg->ck);
        sqlite3_free(tg->last_error);
        sqlite3_free(tg->zUrl);
    }
    spool_close(r->sp);
    ls_free(r->scratch_refs);
    ls_free((void *)r->scratch_ptrs);
    ls_free(r->scratch_u32);
    sqlite3_free(r->last_error);
    sqlite3_free(r->zDbPath);
    sqlite3_free(r->zUrl);
    sqlite3_free(r->zUrlRedacted);
    sqlite3_free(r->zVfs);
    pthread_mutex_destroy(&r->spool_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->changed);
    sqlite3_free(r);
}

char *
replicator_last_error(replicator *r)
{
    pthread_mutex_lock(&r->mu);
    char *z = NULL;
    /* Several replicas: the first failing one, named. */
    for (int i = 0; !z && r->ntg > 1 && i < r->ntg; i++) {
        const char *e = r->tg[i].last_error;
        if (e && strncmp(e, "litestream: ", 12) == 0)
            e += 12;
        if (e)
            z = sqlite3_mprintf("replica %s: %s", r->tg[i].url->redacted, e);
    }
    if (!z && r->last_error)
        z = sqlite3_mprintf("%s", r->last_error);
    pthread_mutex_unlock(&r->mu);
    return z;
}

void
replicator_enqueue(replicator *r, rep_txn *t)
{
    uint64_t sz = (uint64_t)t->nframes * (t->page_size + WAL_FRAME_HDR_SIZE);
    t->next = NULL;
    pthread_mutex_lock(&r->mu);
    rep_slot_flush(r); /* the zero-copy capture's TXIDs come first */
    if (t->flags & REP_WALREF)
        r->refs_queued++;
    if (r->tail)
        r->tail->next = t;
    else
        r->head = t;
    r->tail = t;
    rep_queue_added(r, sz, rep_txn_last(t));
    pthread_mutex_unlock(&r->mu);
}

int
replicator_before_wal_reset(replicator *r)
{
    pthread_mutex_lock(&r->mu);
    /* (Also those a pass is spooling: it reads them from the WAL.) */
    int refs = rep_refs_pending(r);
    if (!refs && r->head) {
        /* Queued copies do not depend on the WAL: just get them spooled
         * soon (a crash before that costs a full image, not data: the
         * checkpoint before any restart put everything in the database). */
        pool_wake(&r->task, POOL_LIGHT);
    }
    pthread_mutex_unlock(&r->mu);
    rep_refs_wait(r); /* another process's references to this WAL */
    return refs ? replicator_persist(r) : SQLITE_OK;
}

int
replicator_capture_pending(replicator *r)
{
    return rep_capture_pending(r);
}

int
replicator_persist(replicator *r)
{
    int rc;
    pthread_mutex_lock(&r->mu);
    if (!r->head && !rep_slot_open(r) && !r->spooling &&
        r->persist_req == r->persist_done) {
        pthread_mutex_unlock(&r->mu);
        return SQLITE_OK;
    }
    uint64_t ticket = ++r->persist_req;
    pool_wake(&r->task, POOL_LIGHT);
    while (r->persist_done < ticket && !r->stop)
        pthread_cond_wait(&r->changed, &r->mu);
    rc = r->persist_done >= ticket ? r->persist_rc : SQLITE_ERROR;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/*
 * The TXID `need` replicas hold (REP_SYNC_ALL: all, the lowest replicated
 * TXID; 1: the highest), and through *pzWho the URL of the first replica
 * below txid.  Caller holds mu.
 */
static uint64_t
sync_reached(replicator *r, int need, uint64_t txid, const char **pzWho)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    *pzWho = NULL;
    for (int i = 0; i < r->ntg; i++) {
        uint64_t v = sidecar_replicated_n(r->sc, i);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        if (v < txid && !*pzWho)
            *pzWho = r->tg[i].url->redacted;
    }
    return need == REP_SYNC_ALL || r->ntg == 1 ? lo : hi;
}

/* Whether a replica below txid is neither backing off (asking it again
 * is no tight loop against a failing replica) nor uploading (its pass
 * wakes the waiters when it ends, and runs once more if asked meanwhile:
 * a hung one is not asked again and again).  Caller holds mu. */
static int
may_ask(replicator *r, uint64_t txid)
{
    for (int i = 0; i < r->ntg; i++)
        if (sidecar_replicated_n(r->sc, i) < txid && !r->tg[i].inflight &&
            __atomic_load_n(&r->tg[i].backoff_ms, __ATOMIC_RELAXED) == 0)
            return 1;
    return 0;
}

/* The error that explains why `zWho` did not reach txid.  Caller holds mu. */
static char *
sync_error(replicator *r, uint64_t txid, int timeout_ms, const char *zWho)
{
    const char *zWhy = r->last_error;
    for (int i = 0; i < r->ntg; i++)
        if (zWho && r->tg[i].url->redacted == zWho && r->tg[i].last_error)
            zWhy = r->tg[i].last_error;
    if (r->ntg == 1 || !zWho)
        return sqlite3_mprintf(
            "litestream: replica did not reach TXID %llu within %d ms%s%s",
            (unsigned long long)txid, timeout_ms, zWhy ? ": " : "",
            zWhy ? zWhy : "");
    return sqlite3_mprintf(
        "litestream: replica %s did not reach TXID %llu within %d ms%s%s", zWho,
        (unsigned long long)txid, timeout_ms, zWhy ? ": " : "",
        zWhy ? zWhy : "");
}

int
replicator_sync(replicator *r, uint64_t txid, int timeout_ms,
                uint64_t *replicated, char **pzErr)
{
    return replicator_sync_n(r, txid, REP_SYNC_ALL, timeout_ms, replicated,
                             pzErr);
}

int
replicator_sync_n(replicator *r, uint64_t txid, int need, int timeout_ms,
                  uint64_t *replicated, char **pzErr)
{
    struct timespec dl;
    int rc = SQLITE_OK;
    const char *zWho;
    if (timeout_ms >= 0)
        clock_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    r->upload_now = 1;
    pool_wake(&r->task, POOL_HEAVY);
    while (sync_reached(r, need, txid, &zWho) < txid) {
        int w;
        if (r->stop) {
            rc = SQLITE_ERROR;
            break;
        }
        /* Another process may be the one uploading: poll the shared
         * position as well as waiting for our own thread. */
        struct timespec step;
        clock_deadline(&step, 20);
        if (timeout_ms >= 0 &&
            (step.tv_sec > dl.tv_sec ||
             (step.tv_sec == dl.tv_sec && step.tv_nsec > dl.tv_nsec)))
            step = dl;
        w = pthread_cond_timedwait(&r->changed, &r->mu, &step);
        if (w == ETIMEDOUT && timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (now.tv_sec > dl.tv_sec ||
                (now.tv_sec == dl.tv_sec && now.tv_nsec >= dl.tv_nsec)) {
                rc = sync_reached(r, need, txid, &zWho) >= txid ? SQLITE_OK
                                                                : SQLITE_BUSY;
                break;
            }
        }
        /* Ask again once the thread took the request, unless the last
         * attempts failed: then the backoff decides (a waiting sync must
         * not turn retries against a failing replica into a tight loop). */
        if (!r->upload_now && sync_reached(r, need, txid, &zWho) < txid &&
            may_ask(r, txid)) {
            r->upload_now = 1;
            pool_wake(&r->task, POOL_HEAVY);
        }
    }
    if (rc != SQLITE_OK && pzErr)
        *pzErr = sync_error(r, txid, timeout_ms, zWho);
    if (replicated)
        *replicated = sync_reached(r, need, txid, &zWho);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int
replicator_image_wanted(replicator *r)
{
    return __atomic_load_n(&r->want_image, __ATOMIC_ACQUIRE);
}

int
replicator_take_image_request(replicator *r)
{
    return __atomic_exchange_n(&r->want_image, 0, __ATOMIC_ACQ_REL);
}

void
replicator_set_interval(replicator *r, int ms)
{
    pthread_mutex_lock(&r->mu);
    ms = ms > 0 ? ms : 1000;
    if (ms != r->opts.sync_interval_ms) {
        /* The new interval from now on: an upload pass now sets the next
         * due time (else a shorter one waited for the end of the old). */
        r->opts.sync_interval_ms = ms;
        r->upload_now = 1;
        pool_wake(&r->task, POOL_HEAVY);
    }
    pthread_mutex_unlock(&r->mu);
}

void
replicator_set_spool_limit(replicator *r, int64_t bytes)
{
    pthread_mutex_lock(&r->mu);
    r->opts.spool_limit = bytes > 0 ? bytes : LS_DEFAULT_SPOOL_LIMIT;
    pthread_mutex_unlock(&r->mu);
}

int64_t
replicator_spool_limit(replicator *r)
{
    pthread_mutex_lock(&r->mu);
    int64_t v = r->opts.spool_limit;
    pthread_mutex_unlock(&r->mu);
    return v;
}

int
replicator_interval(replicator *r)
{
    return r->opts.sync_interval_ms;
}

int
replicator_has_url(replicator *r, const char *zUrl)
{
    return strcmp(r->zUrl, zUrl) == 0;
}

void
replicator_set_pitr(replicator *r, const ls_pitr *o)
{
    for (int i = 0; i < r->ntg; i++)
        if (r->tg[i].cp)
            compactor_set(r->tg[i].cp, o);
}

void
replicator_pitr(replicator *r, ls_pitr *o)
{
    if (r->tg[0].cp)
        compactor_get(r->tg[0].cp, o);
    else
        pitr_defaults(o);
}

/* A snapshot in every replica; *txid: the first replica's. */
int
replicator_snapshot(replicator *r, int timeout_ms, uint64_t *txid, char **pzErr)
{
    int rc = SQLITE_OK;
    for (int i = 0; rc == SQLITE_OK && i < r->ntg; i++) {
        uint64_t t = 0;
        if (!r->tg[i].cp) {
            *pzErr = sqlite3_mprintf("litestream: compaction is not running");
            return SQLITE_ERROR;
        }
        rc = compactor_snapshot_now(r->tg[i].cp, timeout_ms, &t, pzErr);
        if (i == 0)
            *txid = t;
    }
    return rc;
}

const char *
replicator_url(replicator *r)
{
    return r->zUrlRedacted;
}
