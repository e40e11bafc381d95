/*
 * storage/history/compactor.c: the compaction task (compactor.h), one per
 * replicator, run by the process's pool (storage/base/pool.h).
 *
 * Each wake-up ("pass") lists the replica once and then, for each level
 * L = 1..n whose wall-clock boundary floor(now / interval) * interval was
 * not handled yet: skips it if level L's newest object was created at or
 * after the boundary (another process or an earlier run did it), else
 * merges the run of level L-1 objects that starts above level L's newest
 * TXID (contiguous or overlapping; a gap ends the run and the rest waits
 * for the next boundary).  Then the snapshot (its own boundary, or a
 * request from litestream_snapshot()), then retention every check
 * interval.  Deletions go to the backend in batches.
 *
 * Invariants:
 *   1. Only the ship-lock holder compacts; the replicator's L0 uploads
 *      continue meanwhile (separate handle, separate task and lane).
 *   2. Every object is verified before it is uploaded (levels.c).
 *   3. Retention deletes only what retention_plan() proved unneeded for
 *      the latest state.
 *
 * Threads: the task's passes run on the pool's background lane, one at a
 * time; the API functions take `mu`.
 */
#include "storage/history/compactor.h"
#include "storage/base/json.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/base/clock.h"
#include "storage/base/pool.h"
#include "storage/base/sqlite.h"
#include "storage/history/levels.h"
#include "storage/restore/restore.h"

#define DEL_BATCH      1000
#define SNAP_BUDGET_MS 2000
#define RETRY_MS       1000   /* first retry after a failure, doubling */
#define RETRY_MAX_MS   300000 /* up to 5 minutes */
#define SHIP_POLL_MS   50
#define SHIP_TRIES     40

struct compactor {
    compactor_env env; /* its be moved to b */
    backend *b;
    pool_task task; /* its task in the process's pool (cp_run) */
    int started;
    pthread_mutex_t mu;
    pthread_cond_t done;
    /* Guarded by mu (stop is also read atomically without it). */
    int stop;
    ls_pitr o;
    uint64_t snap_req, snap_served, snap_txid;
    int snap_rc;
    char *snap_err;
    uint64_t n_compactions, n_snapshots, n_deleted;
    char *last_error;
    int64_t last_error_ms;
    /* Thread side. */
    int64_t done_at[LAYOUT_MAX_LEVEL + 1]; /* handled boundary per level */
    int64_t retry_at;
    int64_t backoff_ms;
    int64_t next_retention;
    /* Idle: no listing while nothing can have changed (cp_unchanged). */
    uint64_t lv_txid[LAYOUT_MAX_LEVEL + 1]; /* level caught up at this... */
    uint64_t lv_gen[LAYOUT_MAX_LEVEL + 1];  /* ...TXID and generation */
    uint64_t ret_txid, ret_gen;             /* retention found nothing */
    int64_t ret_next;                       /* until this deadline */
    char zTmp[4096];                        /* cp_tmpdir() */
    uint64_t settings; /* compactor_set() calls (guarded by mu) */
    int ship_tries;    /* a snapshot request waits for the ship lock */
};

/* Records an error (or clears it with NULL); takes mu. */
static void
cp_error(compactor *c, char *zMsg)
{
    if (zMsg)
        sqlite3_log(SQLITE_WARNING, "%s", zMsg);
    pthread_mutex_lock(&c->mu);
    if (zMsg || c->last_error) {
        sqlite3_free(c->last_error);
        c->last_error = zMsg;
        c->last_error_ms = clock_now_ms();
    }
    pthread_mutex_unlock(&c->mu);
}

static int64_t
boundary(int64_t now, int64_t iv)
{
    return now - now % iv;
}

/*
 * Where merges and snapshots write their scratch file: the sidecar for the
 * first replica, `<sidecar>/replica-N` for replica N of a URL list (the
 * compactors of several replicas run at the same time).
 */
static const char *
cp_tmpdir(compactor *c)
{
    if (!c->env.slot)
        return sidecar_dir(c->env.sc);
    snprintf(c->zTmp, sizeof(c->zTmp), "%s/replica-%d", sidecar_dir(c->env.sc),
             c->env.slot + 1);
    mkdir(c->zTmp, 0700); /* EEXIST: there; else the open fails, reported */
    return c->zTmp;
}

/* Whether this process uploads (holds the ship lock). */
static int
cp_shipping(compactor *c)
{
    return c->env.xShipping(c->env.pCtx);
}

static int
cp_list(compactor *c, ltx_info **a, int *n)
{
    int rc = layout_list_all(c->b, a, n);
    if (rc != SQLITE_OK)
        cp_error(c, sqlite3_mprintf("litestream: compaction cannot list "
                                    "%s: %s",
                                    backend_url(c->b), backend_why(c->b)));
    return rc;
}

/* The newest object of a level (largest max TXID), or NULL. */
static const ltx_info *
cp_newest(const ltx_info *a, int n, int level)
{
    const ltx_info *best = NULL;
    for (int i = 0; i < n; i++)
        if (a[i].level == level && (!best || a[i].max_txid >= best->max_txid))
            best = &a[i];
    return best;
}

/*
 * What this process changed in the replica or its settings so far: every
 * merge, snapshot, deletion and compactor_set() counts.  With the
 * replicated TXID (L0 uploads) it says whether a listing could differ from
 * the last one: only the ship-lock holder writes the replica.
 */
static uint64_t
cp_gen(compactor *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t g = c->n_compactions + c->n_snapshots + c->n_deleted + c->settings;
    pthread_mutex_unlock(&c->mu);
    return g;
}

/* Whether nothing changed since a listing at (txid, gen); txid 0: never. */
static int
cp_unchanged(compactor *c, uint64_t txid, uint64_t gen)
{
    return txid != 0 && txid == sidecar_replicated_n(c->env.sc, c->env.slot) &&
           gen == cp_gen(c);
}

/* Whether level `level` holds everything of level - 1: nothing to merge
 * until the level below changes. */
static int
cp_caught_up(const ltx_info *a, int n, int level)
{
    const ltx_info *dst = cp_newest(a, n, level);
    for (int i = 0; i < n; i++)
        if (a[i].level == level - 1 && (!dst || a[i].max_txid > dst->max_txid))
            return 0;
    return 1;
}

/*
 * Level `level` at boundary bnd: SQLITE_OK when handled (merged, or
 * nothing to do), else the error (already recorded).
 */
static int
cp_level(compactor *c, const ltx_info *a, int n, int level, int64_t bnd)
{
    ltx_info out;
    char *zErr = NULL;
    int first, count = compact_pick_run(a, n, level, bnd, &first);

    if (count == 0)
        return SQLITE_OK;
    int rc = compact_merge(c->env.url, c->b, cp_tmpdir(c), &a[first], count,
                           level, &c->stop, &out, &zErr);
    if (rc != SQLITE_OK) {
        cp_error(c, zErr ? zErr
                         : sqlite3_mprintf("litestream: compaction "
                                           "into level %d: %s",
                                           level, sqlite3_errstr(rc)));
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    c->n_compactions++;
    pthread_mutex_unlock(&c->mu);
    return SQLITE_OK;
}

/*
 * Fallback when no image of the live database can be pinned (a writer in
 * exclusive locking mode, or commits so dense that no moment between two
 * of them is found): the snapshot is the merge of the replica's latest
 * restore plan, which starts at TXID 1 and so merges into a full
 * snapshot.  SQLITE_DONE if the replica has nothing newer than `after`.
 */
static int
cp_snapshot_from_replica(compactor *c, const ltx_info *a, int n, uint64_t after,
                         ltx_info *out, char **pzErr)
{
    restore_plan p;
    int rc = restore_plan_list(a, n, backend_url(c->b), 0, 0, clock_now_ms(),
                               &p, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    if (p.txid <= after)
        rc = SQLITE_DONE;
    else if (p.n == 1 && p.files[0].level == LAYOUT_MAX_LEVEL)
        rc = SQLITE_DONE;
    else
        rc = compact_merge(c->env.url, c->b, cp_tmpdir(c), p.files, p.n,
                           LAYOUT_MAX_LEVEL, &c->stop, out, pzErr);
    restore_plan_free(&p);
    return rc;
}

/* The snapshot step: scheduled (bnd) or requested (want). */
static int
cp_snapshot(compactor *c, const ltx_info *a, int n, int64_t bnd, int want,
            uint64_t *txid, char **pzErr)
{
    const ltx_info *last = cp_newest(a, n, LAYOUT_MAX_LEVEL);
    ltx_info out;
    const compactor_env *e = &c->env;
    ls_cap cap;

    *txid = last ? last->max_txid : 0;
    if (!want && last && last->created_ms >= bnd)
        return SQLITE_OK;
    /* A full image uploaded since the boundary (the first replication of a
     * database, a replaced one) is this period's snapshot already:
     * uploading the same database again would double the cost. */
    for (int i = 0; !want && i < n; i++)
        if (a[i].level < LAYOUT_MAX_LEVEL && a[i].min_txid == 1 &&
            a[i].created_ms >= bnd && a[i].max_txid > *txid)
            return SQLITE_OK;
    /* Nothing uploaded yet: the replicator's first object is a full image
     * on its way; look again shortly (no error: pzErr stays NULL). */
    if (!want && sidecar_replicated_n(e->sc, e->slot) == 0)
        return SQLITE_BUSY;
    if (!sidecar_cap_read(e->sc, &cap) || cap.txid <= *txid) {
        if (want && *txid == 0) {
            *pzErr = sqlite3_mprintf("litestream: nothing to snapshot yet "
                                     "(no transaction captured)");
            return SQLITE_NOTFOUND;
        }
        return SQLITE_OK; /* nothing new since the newest snapshot */
    }
    int rc = snapshot_take(c->b, cp_tmpdir(c), e->zDbPath, e->zVfs, e->sc,
                           *txid, SNAP_BUDGET_MS, &c->stop, &out, pzErr);
    if (rc == SQLITE_BUSY) {
        sqlite3_log(SQLITE_NOTICE, "%s; snapshot merged from the replica",
                    *pzErr ? *pzErr : "no image");
        sqlite3_free(*pzErr);
        *pzErr = NULL;
        rc = cp_snapshot_from_replica(c, a, n, *txid, &out, pzErr);
    }
    if (rc == SQLITE_DONE)
        return SQLITE_OK; /* nothing new since the newest snapshot */
    if (rc == SQLITE_OK) {
        *txid = out.max_txid;
        pthread_mutex_lock(&c->mu);
        c->n_snapshots++;
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* Deletes objects del[0..n-1] in batches of DEL_BATCH keys. */
static void
cp_delete(compactor *c, const ltx_info *del, int n)
{
    char **keys = sqlite3_malloc64(sizeof(char *) * (size_t)n);
    char *buf = sqlite3_malloc64((uint64_t)n * LAYOUT_KEY_SIZE);

    for (int i = 0; keys && buf && i < n; i++) {
        keys[i] = buf + (size_t)i * LAYOUT_KEY_SIZE;
        layout_key(c->b, del[i].level, del[i].min_txid, del[i].max_txid,
                   keys[i], LAYOUT_KEY_SIZE);
    }
    for (int i = 0; keys && buf && i < n; i += DEL_BATCH) {
        int k = n - i < DEL_BATCH ? n - i : DEL_BATCH;
        if (backend_del(c->b, (const char *const *)keys + i, k) != SQLITE_OK) {
            cp_error(c, sqlite3_mprintf("litestream: retention: delete "
                                        "failed: %s",
                                        backend_why(c->b)));
            break;
        }
        pthread_mutex_lock(&c->mu);
        c->n_deleted += (uint64_t)k;
        pthread_mutex_unlock(&c->mu);
    }
    sqlite3_free(buf);
    sqlite3_free(keys);
}

/* When retention could next delete something from listing a, were it to
 * stay the same: the first L0 or snapshot age deadline after now. */
static int64_t
cp_next_deadline(const ltx_info *a, int n, const ls_pitr *o, int64_t now)
{
    int64_t t = INT64_MAX;
    for (int i = 0; i < n; i++) {
        int64_t keep = a[i].level == 0 ? o->l0_retention_ms
                       : a[i].level == LAYOUT_MAX_LEVEL
                           ? o->snapshot_retention_ms
                           : PITR_OFF;
        if (keep == PITR_OFF)
            continue;
        int64_t d = a[i].created_ms + keep + 1;
        if (d > now && d < t)
            t = d;
    }
    return t;
}

/*
 * Retention: plan over a fresh listing, delete in batches.  A listing that
 * leaves nothing to delete is not repeated while the replica stays as it
 * was and no object's age deadline passes (idle: no LIST).
 */
static void
cp_retention(compactor *c, const ls_pitr *o, int64_t now)
{
    ltx_info *a = NULL, *del = NULL;
    char *zErr = NULL;
    int n = 0, ndel = 0, rc;

    if (now < c->ret_next && cp_unchanged(c, c->ret_txid, c->ret_gen))
        return;
    uint64_t txid = sidecar_replicated_n(c->env.sc, c->env.slot),
             gen = cp_gen(c);
    c->ret_txid = 0;
    if (cp_list(c, &a, &n) != SQLITE_OK)
        return;
    rc = retention_plan(a, n, o, now, &del, &ndel, &zErr);
    if (rc == SQLITE_OK && ndel == 0) {
        c->ret_txid = txid;
        c->ret_gen = gen;
        c->ret_next = cp_next_deadline(a, n, o, now);
    }
    if (rc != SQLITE_OK)
        cp_error(c, zErr ? zErr
                         : sqlite3_mprintf("litestream: retention: "
                                           "%s",
                                           sqlite3_errstr(rc)));
    else if (ndel > 0)
        cp_delete(c, del, ndel);
    sqlite3_free(del);
    sqlite3_free(a);
}

/* Milliseconds between retention checks: 15 s, less for short settings. */
static int64_t
retention_every(const ls_pitr *o)
{
    int64_t v = 15000;
    if (o->l0_retention_ms > 0 && o->l0_retention_ms / 2 < v)
        v = o->l0_retention_ms / 2;
    if (o->snapshot_retention_ms > 0 && o->snapshot_retention_ms / 2 < v)
        v = o->snapshot_retention_ms / 2;
    return v < 10 ? 10 : v;
}

/* The levels due at `now`, in order; re-lists after each merge. */
static int
cp_levels(compactor *c, const ls_pitr *o, int64_t now)
{
    ltx_info *a = NULL;
    int n = 0, rc = SQLITE_OK;

    uint64_t txid = 0, gen = 0;
    for (int level = 1; level <= o->nlevels && rc == SQLITE_OK; level++) {
        int64_t bnd = boundary(now, o->levels[level - 1]);
        if (bnd <= c->done_at[level])
            continue;
        if (cp_unchanged(c, c->lv_txid[level], c->lv_gen[level])) {
            c->done_at[level] = bnd; /* idle: no listing */
            continue;
        }
        if (!a) {
            txid = sidecar_replicated_n(c->env.sc,
                                        c->env.slot); /* before the listing */
            gen = cp_gen(c);
            if ((rc = cp_list(c, &a, &n)) != SQLITE_OK)
                break;
        }
        c->lv_txid[level] = cp_caught_up(a, n, level) ? txid : 0;
        c->lv_gen[level] = gen;
        rc = cp_level(c, a, n, level, bnd);
        if (rc == SQLITE_OK) {
            c->done_at[level] = bnd;
            sqlite3_free(a); /* the next level sees the new object */
            a = NULL;
        }
    }
    sqlite3_free(a);
    return rc;
}

/* After a failed step: retry later, backing off while it keeps failing
 * (e.g. a corrupt object that an operator has to deal with). */
static void
cp_failed(compactor *c, int64_t now)
{
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : RETRY_MS;
    if (c->backoff_ms > RETRY_MAX_MS)
        c->backoff_ms = RETRY_MAX_MS;
    c->retry_at = now + c->backoff_ms;
}

/* One pass; `want` asks for a snapshot now.  Returns the snapshot rc. */
static int
cp_pass(compactor *c, const ls_pitr *o, int want, uint64_t *snap_txid,
        char **pzSnapErr)
{
    int64_t now = clock_now_ms();
    int64_t sb = boundary(now, o->snapshot_ms);
    int rc = SQLITE_OK;
    ltx_info *a = NULL;
    int n = 0;

    if (now >= c->retry_at) {
        if (cp_levels(c, o, now) != SQLITE_OK)
            cp_failed(c, now);
        else
            c->backoff_ms = 0;
    }
    if (want || (sb > c->done_at[0] && now >= c->retry_at)) {
        rc = cp_list(c, &a, &n);
        if (rc == SQLITE_OK)
            rc = cp_snapshot(c, a, n, sb, want, snap_txid, pzSnapErr);
        if (rc == SQLITE_OK && sb > c->done_at[0])
            c->done_at[0] = sb;
        else if (rc == SQLITE_BUSY && !want)
            rc = SQLITE_OK; /* not yet: the next pass looks again */
        else if (rc != SQLITE_OK) {
            cp_failed(c, now);
            if (!want && *pzSnapErr) {
                cp_error(c, *pzSnapErr);
                *pzSnapErr = NULL;
            }
        }
        sqlite3_free(a);
    }
    /* Settings may have shortened since the last check was scheduled. */
    if (c->next_retention > now + retention_every(o))
        c->next_retention = now + retention_every(o);
    if (now >= c->next_retention) {
        cp_retention(c, o, now);
        c->next_retention = now + retention_every(o);
    }
    return rc;
}

/* Milliseconds until the next boundary or retention check. */
static int64_t
cp_next_wake(compactor *c, const ls_pitr *o, int64_t now)
{
    int64_t t = c->next_retention;
    for (int level = 1; level <= o->nlevels; level++) {
        int64_t nb = boundary(now, o->levels[level - 1]) + o->levels[level - 1];
        if (nb < t)
            t = nb;
    }
    if (boundary(now, o->snapshot_ms) + o->snapshot_ms < t)
        t = boundary(now, o->snapshot_ms) + o->snapshot_ms;
    if (c->retry_at > now && c->retry_at < t)
        t = c->retry_at;
    return t - now;
}

/* The due time after a pass (c->mu held). */
static int64_t
cp_due(compactor *c, int ship)
{
    int64_t now = clock_now_ms();
    if (c->stop)
        return POOL_NEVER;
    if (c->snap_req > c->snap_served)
        return now;
    int64_t wait = cp_next_wake(c, &c->o, now);
    if (!ship && wait > 1000)
        wait = 1000; /* see when this process starts to upload */
    return now + (wait < 1 ? 1 : wait);
}

/*
 * One pass of the compactor's task in the pool (storage/base/pool.h, the
 * background lane, at nice +10: on a busy machine the application's
 * threads and the L0 uploads get the CPU first).  A snapshot request that
 * finds the ship lock not taken yet (the replicator's first pass may not
 * have tried it) looks again every SHIP_POLL_MS, up to SHIP_TRIES times,
 * before it is answered.
 */
static void
cp_run(void *arg, int heavy, int64_t due[2])
{
    compactor *c = arg;
    (void)heavy;
    pthread_mutex_lock(&c->mu);
    ls_pitr o = c->o;
    uint64_t req = c->snap_req;
    int want = req > c->snap_served, rc = SQLITE_OK;
    uint64_t txid = 0;
    char *zErr = NULL;
    pthread_mutex_unlock(&c->mu);
    int ship = cp_shipping(c);
    if (want && !ship && c->ship_tries < SHIP_TRIES &&
        !__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
        c->ship_tries++;
        due[POOL_HEAVY] = clock_now_ms() + SHIP_POLL_MS;
        return;
    }
    c->ship_tries = 0;
    if (!ship) {
        /* Another process may write the replica meanwhile: whatever this
         * one knew of it is void. */
        memset(c->lv_txid, 0, sizeof(c->lv_txid));
        c->ret_txid = 0;
    }
    if (ship) {
        rc = cp_pass(c, &o, want, &txid, &zErr);
    } else if (want) {
        rc = SQLITE_BUSY;
        zErr = sqlite3_mprintf("litestream: another process uploads "
                               "this database (holds its ship lock): "
                               "take the snapshot there");
    }
    pthread_mutex_lock(&c->mu);
    if (want) {
        c->snap_served = req;
        c->snap_rc = rc;
        c->snap_txid = txid;
        sqlite3_free(c->snap_err);
        c->snap_err = zErr;
        zErr = NULL;
        pthread_cond_broadcast(&c->done);
    }
    sqlite3_free(zErr);
    due[POOL_HEAVY] = cp_due(c, cp_shipping(c));
    pthread_mutex_unlock(&c->mu);
}

int
compactor_start(const compactor_env *env, const ls_pitr *o, compactor **out,
                char **pzErr)
{
    compactor *c = sqlite3_malloc64(sizeof(*c));
    int rc = SQLITE_OK;

    *out = NULL;
    if (!c) {
        backend_close(env->be);
        return SQLITE_NOMEM;
    }
    memset(c, 0, sizeof(*c));
    c->env = *env;
    c->b = env->be;
    c->env.be = NULL;
    c->o = *o;
    if (c->o.nlevels <= 0 || c->o.snapshot_ms <= 0)
        pitr_defaults(&c->o);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->done, NULL);
    if (!c->b)
        rc = backend_open_url(env->url, &c->b, pzErr);
    int64_t due[2] = {POOL_NEVER, clock_now_ms()};
    if (rc == SQLITE_OK)
        rc = pool_add(&c->task, cp_run, c, POOL_BG, due, pzErr);
    if (rc != SQLITE_OK) {
        compactor_stop(c);
        return rc;
    }
    c->started = 1;
    *out = c;
    return SQLITE_OK;
}

void
compactor_stop(compactor *c)
{
    if (!c)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        /* Also read by merges and snapshots, which then give up. */
        __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&c->done);
        pthread_mutex_unlock(&c->mu);
        pool_remove(&c->task); /* waits for a running pass */
    }
    backend_close(c->b);
    sqlite3_free(c->snap_err);
    sqlite3_free(c->last_error);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->done);
    sqlite3_free(c);
}

void
compactor_set(compactor *c, const ls_pitr *o)
{
    pthread_mutex_lock(&c->mu);
    c->o = *o;
    c->next_retention = 0;
    c->settings++; /* every level and retention looks again */
    pool_wake(&c->task, POOL_HEAVY);
    pthread_mutex_unlock(&c->mu);
}

void
compactor_get(compactor *c, ls_pitr *o)
{
    pthread_mutex_lock(&c->mu);
    *o = c->o;
    pthread_mutex_unlock(&c->mu);
}

int
compactor_snapshot_now(compactor *c, int timeout_ms, uint64_t *txid,
                       char **pzErr)
{
    struct timespec dl;
    int rc = SQLITE_BUSY;

    clock_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&c->mu);
    uint64_t ticket = ++c->snap_req;
    pool_wake(&c->task, POOL_HEAVY);
    while (c->snap_served < ticket && !c->stop)
        if (pthread_cond_timedwait(&c->done, &c->mu, &dl) == ETIMEDOUT)
            break;
    if (c->snap_served >= ticket) {
        rc = c->snap_rc;
        *txid = c->snap_txid;
        if (rc != SQLITE_OK)
            *pzErr = sqlite3_mprintf("%s", c->snap_err ? c->snap_err
                                                       : sqlite3_errstr(rc));
    } else {
        *pzErr = sqlite3_mprintf("litestream: the snapshot did not finish "
                                 "within %d ms",
                                 timeout_ms);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int
compactor_status(compactor *c, json_t *o)
{
    char lv[128], a[32], b[32], d[32];
    json_t *cp = json_object(), *err = json_null();
    int bad = 0;

    pthread_mutex_lock(&c->mu);
    ls_json_set(
        cp, "levels",
        json_string(timefmt_levels(c->o.levels, c->o.nlevels, lv, sizeof(lv))),
        &bad);
    ls_json_set(cp, "snapshot_interval",
                json_string(timefmt_duration(c->o.snapshot_ms, a, sizeof(a))),
                &bad);
    ls_json_set(cp, "snapshot_retention",
                json_string(c->o.snapshot_retention_ms == PITR_OFF
                                ? "off"
                                : timefmt_duration(c->o.snapshot_retention_ms,
                                                   b, sizeof(b))),
                &bad);
    ls_json_set(
        cp, "retention",
        json_string(c->o.l0_retention_ms == PITR_OFF
                        ? "off"
                        : timefmt_duration(c->o.l0_retention_ms, d, sizeof(d))),
        &bad);
    ls_json_set(cp, "compactions", ls_json_u64(c->n_compactions), &bad);
    ls_json_set(cp, "snapshots", ls_json_u64(c->n_snapshots), &bad);
    ls_json_set(cp, "deleted", ls_json_u64(c->n_deleted), &bad);
    if (c->last_error) {
        err = json_object();
        ls_json_set(err, "message", ls_json_text(c->last_error), &bad);
        ls_json_set(err, "at", json_integer(c->last_error_ms), &bad);
    }
    pthread_mutex_unlock(&c->mu);
    ls_json_set(cp, "last_error", err, &bad);
    ls_json_set(o, "compaction", cp, &bad);
    return bad ? SQLITE_NOMEM : SQLITE_OK;
}
