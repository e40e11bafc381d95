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
 * Idle (docs/architecture.md 3.1): the pass lists the replica once and
 * keeps that picture up to date with its own merges, snapshots and
 * deletions (cpview.h); a level caught up with the one below, and a
 * retention that found nothing to delete, are not looked at again while
 * nothing they depend on changed (cp_quiet_level, cp_quiet_retention).
 * The task sleeps until the next thing that can need it: a boundary of a
 * level that is not caught up, a retention deadline, the snapshot
 * boundary.  The replicator tells it about uploads (compactor_notify) and
 * about this process starting to upload (compactor_wake): no timer while
 * another process uploads.
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
#include "storage/history/cpview.h"
#include "storage/history/levels.h"
#include "storage/restore/restore.h"

#define DEL_BATCH      1000
#define SNAP_BUDGET_MS 2000
#define RETRY_MS       1000   /* first retry after a failure, doubling */
#define RETRY_MAX_MS   300000 /* up to 5 minutes */
#define SHIP_POLL_MS   50
#define SHIP_TRIES     40

/* What a listing depended on when it was taken (cp_quiet_*). */
typedef struct cp_key {
    int valid;
    uint64_t txid, lo, hi, set;
} cp_key;

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
    int64_t notify_ret; /* an upload makes retention due then */
    /* Thread side. */
    int64_t done_at[LAYOUT_MAX_LEVEL + 1]; /* handled boundary per level */
    int64_t retry_at;
    int64_t backoff_ms;
    int64_t next_retention; /* no retention listing before then */
    /* Idle: no listing while nothing can have changed (cp_quiet_*).  Only
     * the ship-lock holder writes the replica: its level-0 uploads move
     * the replicated TXID, and this process counts what it changed. */
    uint64_t added[LAYOUT_MAX_LEVEL + 1]; /* objects put, per level */
    uint64_t removed;                     /* objects deleted */
    uint64_t set_seen;                    /* settings as of this pass */
    cp_key lv[LAYOUT_MAX_LEVEL + 1];      /* level caught up as of */
    cp_key ret;        /* retention found nothing to delete as of ... */
    int64_t ret_next;  /* ... until this deadline */
    char zTmp[4096];   /* cp_tmpdir() */
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

static uint64_t
cp_replicated(compactor *c)
{
    return sidecar_replicated_n(c->env.sc, c->env.slot);
}

/* The pass's picture of the replica, listed when it has none or the
 * replicated TXID moved since (an L0 upload). */
static int
cp_view_get(compactor *c, cp_view *v)
{
    uint64_t txid = cp_replicated(c); /* before the listing */
    if (v->ok && v->txid == txid)
        return SQLITE_OK;
    int rc = cpview_list(v, c->b, txid);
    if (rc != SQLITE_OK)
        cp_error(c, sqlite3_mprintf("litestream: compaction cannot list "
                                    "%s: %s",
                                    backend_url(c->b), backend_why(c->b)));
    return rc;
}

/* Whether v is the replica now (no listing needed). */
static int
cp_view_current(compactor *c, const cp_view *v)
{
    return v->ok && v->txid == cp_replicated(c);
}

/* Level `level`'s key: level 1 depends on the uploads, every level on
 * what this process put in it and below it, and on the settings.  Not on
 * deletions: retention never deletes the newest object of a level, so a
 * level caught up stays so. */
static cp_key
cp_level_key(compactor *c, int level, uint64_t txid)
{
    cp_key k = {1, level == 1 ? txid : 0, c->added[level - 1], c->added[level],
                c->set_seen};
    return k;
}

static int
cp_key_eq(const cp_key *a, const cp_key *b)
{
    return a->valid && b->valid && a->txid == b->txid && a->lo == b->lo &&
           a->hi == b->hi && a->set == b->set;
}

/* Whether level `level` was caught up at a listing and nothing it depends
 * on changed since: no listing at its boundary. */
static int
cp_quiet_level(compactor *c, int level)
{
    cp_key now = cp_level_key(c, level, cp_replicated(c));
    return cp_key_eq(&c->lv[level], &now);
}

/* Retention's key: the uploads, every change of this process, the
 * settings.  (An upload alone rarely lets it delete more, but its listing
 * is also what finds a replica damaged from outside, such as a gap: it
 * looks again at its pace while uploads go on.) */
static cp_key
cp_ret_key(compactor *c, uint64_t txid)
{
    uint64_t sum = c->removed;
    for (int i = 0; i <= LAYOUT_MAX_LEVEL; i++)
        sum += c->added[i];
    cp_key k = {1, txid, sum, 0, c->set_seen};
    return k;
}

/* Whether retention found nothing to delete and nothing changed since
 * (its next deadline aside). */
static int
cp_quiet_retention(compactor *c)
{
    cp_key now = cp_ret_key(c, cp_replicated(c));
    return cp_key_eq(&c->ret, &now);
}

/*
 * Level `level` at boundary bnd over the picture v: SQLITE_OK when handled
 * (merged, the new object added to v, or nothing to do), else the error
 * (already recorded).
 */
static int
cp_level(compactor *c, cp_view *v, int level, int64_t bnd)
{
    ltx_info out;
    char *zErr = NULL;
    int first, count = compact_pick_run(v->a, v->n, level, bnd, &first);

    if (count == 0)
        return SQLITE_OK;
    int rc = compact_merge(c->env.url, c->b, cp_tmpdir(c), &v->a[first], count,
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
    c->added[level]++;
    cpview_add(v, &out);
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
cp_snapshot(compactor *c, cp_view *v, int64_t bnd, int want, uint64_t *txid,
            char **pzErr)
{
    const ltx_info *a = v->a;
    int n = v->n;
    const ltx_info *last = cpview_newest(a, n, LAYOUT_MAX_LEVEL);
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
        c->added[LAYOUT_MAX_LEVEL]++;
        cpview_add(v, &out);
    }
    return rc;
}

/* Deletes objects del[0..n-1] in batches of DEL_BATCH keys, and from the
 * picture v.  SQLITE_OK when every one is gone. */
static int
cp_delete(compactor *c, cp_view *v, const ltx_info *del, int n)
{
    int rc = SQLITE_NOMEM;
    char **keys = sqlite3_malloc64(sizeof(char *) * (size_t)n);
    char *buf = sqlite3_malloc64((uint64_t)n * LAYOUT_KEY_SIZE);

    for (int i = 0; keys && buf && i < n; i++) {
        keys[i] = buf + (size_t)i * LAYOUT_KEY_SIZE;
        layout_key(c->b, del[i].level, del[i].min_txid, del[i].max_txid,
                   keys[i], LAYOUT_KEY_SIZE);
    }
    for (int i = 0; keys && buf && i < n; i += DEL_BATCH) {
        int k = n - i < DEL_BATCH ? n - i : DEL_BATCH;
        rc = backend_del(c->b, (const char *const *)keys + i, k);
        c->removed += (uint64_t)k; /* some may be gone even on failure */
        if (rc != SQLITE_OK) {
            cp_error(c, sqlite3_mprintf("litestream: retention: delete "
                                        "failed: %s",
                                        backend_why(c->b)));
            cpview_free(v); /* what is left: listed again */
            break;
        }
        cpview_drop(v, del + i, k);
        pthread_mutex_lock(&c->mu);
        c->n_deleted += (uint64_t)k;
        pthread_mutex_unlock(&c->mu);
    }
    sqlite3_free(buf);
    sqlite3_free(keys);
    return rc;
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

/* Plans retention over v (the replica now) and deletes what may go; when
 * nothing (more) is to go, records the key and the next deadline. */
static void
cp_retention_on(compactor *c, const ls_pitr *o, cp_view *v, int64_t now)
{
    c->ret.valid = 0;
    for (int round = 0; round < 2 && v->ok; round++) {
        ltx_info *del = NULL;
        char *zErr = NULL;
        int ndel = 0;
        int rc = retention_plan(v->a, v->n, o, now, &del, &ndel, &zErr);
        if (rc != SQLITE_OK) {
            cp_error(c, zErr ? zErr
                             : sqlite3_mprintf("litestream: retention: %s",
                                               sqlite3_errstr(rc)));
            return;
        }
        if (ndel == 0) {
            c->ret = cp_ret_key(c, v->txid);
            c->ret_next = cpview_next_deadline(v, o, now);
            return;
        }
        /* Planned again after the deletions: nothing more is expected
         * (the next check takes whatever is). */
        rc = round == 0 ? cp_delete(c, v, del, ndel) : SQLITE_DONE;
        sqlite3_free(del);
        if (rc != SQLITE_OK)
            return;
    }
}

/*
 * Retention: a listing (or the pass's own picture, which costs nothing)
 * planned and deleted in batches.  Not looked at while it found nothing
 * and nothing it depends on changed, until its next deadline; a listing
 * no more often than every check interval.
 */
static void
cp_retention(compactor *c, const ls_pitr *o, cp_view *v, int64_t now)
{
    if (cp_quiet_retention(c) && now < c->ret_next)
        return;
    if (!cp_view_current(c, v)) {
        if (now < c->next_retention)
            return; /* the next check lists */
        c->next_retention = now + retention_every(o);
        if (cp_view_get(c, v) != SQLITE_OK)
            return;
    }
    cp_retention_on(c, o, v, now);
}

/* The levels due at `now`, in order, over the pass's picture v (listed
 * once, when a level is not quiet). */
static int
cp_levels(compactor *c, const ls_pitr *o, int64_t now, cp_view *v)
{
    int rc = SQLITE_OK;
    for (int level = 1; level <= o->nlevels && rc == SQLITE_OK; level++) {
        int64_t bnd = boundary(now, o->levels[level - 1]);
        if (bnd <= c->done_at[level])
            continue;
        if (cp_quiet_level(c, level)) {
            c->done_at[level] = bnd; /* idle: no listing */
            continue;
        }
        if ((rc = cp_view_get(c, v)) != SQLITE_OK)
            break;
        rc = cp_level(c, v, level, bnd);
        if (rc == SQLITE_OK && v->ok) {
            c->done_at[level] = bnd;
            c->lv[level] = cp_level_key(c, level, v->txid);
            c->lv[level].valid = cpview_caught_up(v, level);
        }
    }
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
    cp_view v = {0};

    if (now >= c->retry_at) {
        if (cp_levels(c, o, now, &v) != SQLITE_OK)
            cp_failed(c, now);
        else
            c->backoff_ms = 0;
    }
    if (want || (sb > c->done_at[0] && now >= c->retry_at)) {
        rc = cp_view_get(c, &v);
        if (rc == SQLITE_OK)
            rc = cp_snapshot(c, &v, sb, want, snap_txid, pzSnapErr);
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
    }
    /* Settings may have shortened since the last check was scheduled. */
    if (c->next_retention > now + retention_every(o))
        c->next_retention = now + retention_every(o);
    cp_retention(c, o, &v, now);
    cpview_free(&v);
    return rc;
}

static int64_t
next_boundary(int64_t now, int64_t iv)
{
    return boundary(now, iv) + iv;
}

/*
 * When the task is next needed if nothing changes meanwhile: a boundary of
 * a level that is not caught up, the retention check (listing cadence) or
 * its next deadline, the snapshot boundary (soon when its snapshot still
 * waits for the first upload), a retry.
 */
static int64_t
cp_next_wake(compactor *c, const ls_pitr *o, int64_t now)
{
    int64_t t = next_boundary(now, o->snapshot_ms);
    if (boundary(now, o->snapshot_ms) > c->done_at[0] && now + o->levels[0] < t)
        t = now + o->levels[0];
    for (int level = 1; level <= o->nlevels; level++) {
        int64_t nb = next_boundary(now, o->levels[level - 1]);
        if (!cp_quiet_level(c, level) && nb < t)
            t = nb;
    }
    int64_t rt = cp_quiet_retention(c) ? c->ret_next : c->next_retention;
    if (rt < t)
        t = rt;
    if (c->retry_at > now && c->retry_at < t)
        t = c->retry_at;
    return t;
}

/* The due time after a pass (c->mu held); `ship`: this process uploads. */
static int64_t
cp_due(compactor *c, int ship)
{
    int64_t now = clock_now_ms();
    if (c->stop)
        return POOL_NEVER;
    if (c->snap_req > c->snap_served)
        return now;
    if (!ship)
        return POOL_NEVER; /* compactor_wake() once it does */
    int64_t t = cp_next_wake(c, &c->o, now);
    return t > now ? t : now + 1;
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
    c->set_seen = c->settings;
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
        memset(c->lv, 0, sizeof(c->lv));
        c->ret.valid = 0;
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
    c->notify_ret = c->next_retention;
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
    c->notify_ret = POOL_NEVER;
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
compactor_notify(compactor *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t iv = c->o.levels[0];
    int64_t t = next_boundary(clock_now_ms(), iv);
    if (c->notify_ret < t)
        t = c->notify_ret;
    pool_wake_at(&c->task, POOL_HEAVY, t);
    pthread_mutex_unlock(&c->mu);
}

void
compactor_wake(compactor *c)
{
    pool_wake(&c->task, POOL_HEAVY);
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
