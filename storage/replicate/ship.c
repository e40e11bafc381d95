/*
 * storage/replicate/ship.c: the upload pass of a replicator (ship.h).
 *
 * An upload pass runs every sync interval while something is left to
 * upload, and otherwise only when something happens (docs/architecture.md
 * 3.1, "Idle"): the process's directory watcher (storage/base/watch.h)
 * wakes the task when another process spools a record (the spool
 * directory), sets another URL or closes the database (the sidecar:
 * config.json renamed into place, ship.lock closed by a process that had
 * it open), when the sidecar is removed, or when the database file is
 * renamed over or deleted (its directory, by name).  A woken pass is due
 * at the task's own pace: no sooner than one sync interval after the last.
 *
 * Invariants:
 *   1. A record spooled by any process is uploaded by the ship-lock holder
 *      within a sync interval of its spooling (plus the upload's time):
 *      the append wakes the holder, or, should that wake be lost (the
 *      watcher's queue overflowed and every watch fired anyway, or the
 *      record was never spooled), a non-holder that waits for it and sees
 *      no progress over a pass rings the spool directory (utimensat: a
 *      change of its times that every watcher sees), at most once per
 *      interval.
 *   2. A pass that finds nothing to do writes nothing into the watched
 *      directories, so it never wakes itself again.
 *
 * Threads: the replicator's task (one pass at a time); the watch function
 * on the watcher's thread (it only wakes the task).
 */
#include "storage/replicate/ship.h"

#include "storage/base/rand.h"
#include "storage/base/watch.h"
#include "storage/history/compactor.h"
#include "storage/replicate/lease.h"
#include "storage/replicate/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define BACKOFF_MAX_MS 30000

/*
 * Whether this replicator's URL is still the database's (config.json).
 * Another process that set another URL takes over: this one gives the
 * ship lock up and stops uploading, so a replica never receives TXIDs
 * from two processes that disagree about where the database replicates.
 */
static int
url_current(replicator *r)
{
    char *zNow = NULL;
    if (sidecar_url_current(r->sc, r->zDbPath, r->zUrl, r->started_ns, &r->seen,
                            &zNow))
        return 1;
    sidecar_ship_unlock(r->sc);
    if (zNow)
        rep_set_error(r, sqlite3_mprintf(
                             "litestream: another process changed the replica "
                             "of '%s' to %s: this process no longer uploads "
                             "(open the database again to follow)",
                             r->zDbPath, zNow));
    sqlite3_free(zNow);
    return 0;
}

/*
 * The sidecar directory removed under the open database (rm -rf): it is
 * created again, the spool starts empty and the checksum table is written
 * in full at the next save.  What was spooled and not yet uploaded is
 * recovered from the WAL or covered by a full image (fill_gap); the
 * status says what happened until the next upload succeeds.
 */
static void
sidecar_check(replicator *r)
{
    int again = 0;
    char *zErr = NULL;
    /* A process whose URL was replaced writes no config.json of its own
     * into a recreated sidecar (url_current: a missing file is no verdict). */
    ls_config c = {.zUrl = url_current(r) ? r->zUrl : NULL,
                   .sync_ms = r->opts.sync_interval_ms,
                   .spool_limit = r->opts.spool_limit,
                   .pitr = r->opts.pitr};
    int rc = sidecar_recreate(r->sc, &c, &again, &zErr);
    if (again) {
        spool_reset(r->sp);
        for (int i = 0; i < r->ntg; i++)
            r->tg[i].ck.rewrite = 1;
    }
    if (rc != SQLITE_OK) {
        rep_set_error(r, zErr);
        return;
    }
    sqlite3_free(zErr);
    if (!again)
        return;
    rep_set_error(
        r, sqlite3_mprintf("litestream: the sidecar '%s' was removed while the "
                           "database was open: created again; what it held "
                           "and was not uploaded is recovered from the WAL or "
                           "by a full image",
                           sidecar_dir(r->sc)));
}

/*
 * Whether the file at the database's path is still the one this process
 * opened.  Another file renamed over it (a restored copy) or its removal
 * leaves the application's connections on the old inode, while every
 * private connection (full images, recovery) would open the new file:
 * replication of the old inode stops here, with the reason in the status,
 * and the queue is no longer spooled.  The next open of the path starts
 * again with one full image of the file then there (forget_position() at
 * the last close).
 */
static int
db_current(replicator *r)
{
    struct stat st;
    if (r->db_replaced)
        return 0;
    int rc = stat(r->zDbPath, &st);
    if (rc == 0 && !r->db_ino) {
        r->db_dev = (uint64_t)st.st_dev;
        r->db_ino = (uint64_t)st.st_ino;
    }
    if ((rc == 0 && (uint64_t)st.st_dev == r->db_dev &&
         (uint64_t)st.st_ino == r->db_ino) ||
        (rc != 0 && (errno != ENOENT || !r->db_ino)))
        return 1; /* the same file, or none seen yet, or cannot tell */
    r->db_replaced = 1;
    sidecar_ship_unlock(r->sc);
    rep_set_error(
        r, sqlite3_mprintf("litestream: the database file '%s' was %s while "
                           "open: this process stopped replicating it (the "
                           "replica keeps the old database up to TXID %llu); "
                           "close every connection and open the database "
                           "again to replicate the file now there",
                           r->zDbPath, rc == 0 ? "replaced" : "deleted",
                           (unsigned long long)rep_min_replicated(r)));
    return 0;
}

/* The highest TXID captured by any process (0: none, or unreadable). */
static uint64_t
captured(replicator *r)
{
    ls_cap cap;
    return sidecar_cap_read(r->sc, &cap) ? cap.txid : 0;
}

/* Whether an upload to tg has anything to send (its writer lease is kept
 * fresh only then, storage/replicate/lease.h). */
static int
has_work(replicator *r, const rep_target *tg)
{
    return !tg->replica_checked || tg->need_full ||
           captured(r) > sidecar_replicated_n(r->sc, tg->idx);
}

/*
 * One replica's upload when due or asked for (a sync asks every replica,
 * even one backing off: it may be back; replicator_sync_n asks again only
 * while some replica below the TXID is not backing off).  Sets its next due
 * time.  Whether this process holds the replica's writer lease (as of its last
 * check).  A replica that advanced tells its compactor (level 1 and
 * retention have something new to look at).
 */
static int
upload_target(replicator *r, rep_target *tg, int64_t t, int asked)
{
    if (t < tg->next_upload_ms && !asked)
        return tg->leased;
    pthread_mutex_lock(&r->mu);
    r->t = tg;
    pthread_mutex_unlock(&r->mu);
    int leased = rep_lease_check(r, has_work(r, tg));
    pthread_mutex_lock(&r->mu);
    tg->leased = leased; /* the compactor reads it (is_shipping) */
    pthread_mutex_unlock(&r->mu);
    uint64_t before = sidecar_replicated_n(r->sc, tg->idx);
    int rc = leased ? rep_upload_once(r) : SQLITE_OK;
    pthread_mutex_lock(&r->mu);
    r->t = NULL;
    pthread_mutex_unlock(&r->mu);
    if (tg->cp && sidecar_replicated_n(r->sc, tg->idx) != before)
        compactor_notify(tg->cp);
    if (rc == SQLITE_OK) {
        __atomic_store_n(&tg->backoff_ms, 0, __ATOMIC_RELAXED);
        tg->next_upload_ms = t + r->opts.sync_interval_ms;
    } else {
        /* Capped exponential backoff with jitter. */
        int b = tg->backoff_ms ? tg->backoff_ms * 2 : 500;
        __atomic_store_n(&tg->backoff_ms,
                         b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b,
                         __ATOMIC_RELAXED);
        tg->next_upload_ms =
            t + tg->backoff_ms / 2 +
            (int64_t)ls_rand_upto((uint64_t)tg->backoff_ms / 2);
    }
    return tg->leased;
}

/*
 * A replica that keeps failing must not fill the spool for the others
 * (once full, every replica would need a full image): when the spool
 * passes half its limit while at least one replica is healthy, the failing
 * ones (backing off, or without their writer lease) are released: the spool
 * drops what only they still need, and each continues with a full image once it
 * is reachable again.
 */
static void
release_laggards(replicator *r)
{
    uint64_t healthy = UINT64_MAX; /* what the healthy replicas hold */
    int released = 0;
    if ((int64_t)spool_bytes(r->sp) < r->opts.spool_limit / 2 || r->ntg < 2)
        return;
    for (int i = 0; i < r->ntg; i++) {
        uint64_t v = sidecar_replicated_n(r->sc, i);
        if (!r->tg[i].backoff_ms && r->tg[i].leased && v < healthy)
            healthy = v;
    }
    for (int i = 0; healthy != UINT64_MAX && i < r->ntg; i++) {
        rep_target *tg = &r->tg[i];
        if (tg->released || (!tg->backoff_ms && tg->leased) ||
            sidecar_replicated_n(r->sc, i) >= healthy)
            continue;
        tg->released = released = 1;
        tg->need_full = 1;
        sqlite3_log(SQLITE_WARNING,
                    "litestream: replica %s of '%s' keeps failing while the "
                    "spool fills: it continues with a full image once "
                    "reachable",
                    tg->url->redacted, r->zDbPath);
    }
    if (released)
        spool_drop_upto(r->sp, rep_spool_floor(r));
}

/*
 * A non-holder that waits for the holder (something captured is not in
 * every replica) and saw no progress since its previous pass rings the
 * spool directory, at most once per interval (invariant 1).  rep is the
 * replicated TXID now.
 */
static void
ring(replicator *r, int64_t t, uint64_t rep)
{
    int stuck = r->ring_rep == rep;
    r->ring_rep = rep;
    if (!stuck || captured(r) <= rep ||
        t - r->rang_ms < r->opts.sync_interval_ms)
        return;
    char *z = sqlite3_mprintf("%s/spool", sidecar_dir(r->sc));
    if (z && utimensat(AT_FDCWD, z, NULL, 0) == 0)
        r->rang_ms = t;
    sqlite3_free(z);
}

/* Tells each replica's compactor when this process starts to upload to it
 * (it sleeps while another process does). */
static void
tell_compactors(replicator *r)
{
    for (int i = 0; i < r->ntg; i++) {
        rep_target *tg = &r->tg[i];
        pthread_mutex_lock(&r->mu);
        int s = r->shipping && tg->leased;
        pthread_mutex_unlock(&r->mu);
        if (s && !tg->cp_shipping && tg->cp)
            compactor_wake(tg->cp);
        tg->cp_shipping = s;
    }
}

void
rep_upload_pass(replicator *r, int64_t t, int asked)
{
    sidecar_check(r);
    rep_watch_open(r); /* again, if the sidecar was created again */
    int ship = db_current(r) && url_current(r) && sidecar_ship_trylock(r->sc);
    pthread_mutex_lock(&r->mu);
    r->shipping = ship;
    r->upload_now = 0;
    pthread_mutex_unlock(&r->mu);
    int64_t next = t + r->opts.sync_interval_ms;
    if (ship) {
        int leased = 0; /* ships to a replica whose writer lease it holds */
        /* The healthy replicas first: a waiting sync is answered before
         * a failing replica's retry. */
        int failing[LS_MAX_REPLICAS];
        for (int i = 0; i < r->ntg; i++)
            failing[i] = r->tg[i].backoff_ms != 0;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < r->ntg; i++)
                if (failing[i] == pass)
                    leased |= upload_target(r, &r->tg[i], t, asked);
        for (int i = 0; i < r->ntg; i++)
            if (r->tg[i].next_upload_ms < next)
                next = r->tg[i].next_upload_ms;
        release_laggards(r);
        pthread_mutex_lock(&r->mu);
        r->shipping = leased;
        pthread_mutex_unlock(&r->mu);
    } else {
        /* Another process uploads: still drop our own segments
         * once every replica has them (it cannot delete them). */
        uint64_t rep = rep_min_replicated(r);
        if (rep && spool_scan(r->sp) == SQLITE_OK)
            spool_drop_upto(r->sp, rep);
        ring(r, t, rep);
    }
    tell_compactors(r);
    __atomic_store_n(&r->next_upload_ms, next, __ATOMIC_RELAXED);
}

int
rep_settled(replicator *r)
{
    uint64_t c = captured(r);
    for (int i = 0; i < r->ntg; i++) {
        const rep_target *tg = &r->tg[i];
        if (c > sidecar_replicated_n(r->sc, i) || tg->need_full ||
            __atomic_load_n(&tg->backoff_ms, __ATOMIC_RELAXED) ||
            (r->shipping && !tg->replica_checked))
            return 0;
    }
    return !r->db_replaced;
}

/* ---- watches ------------------------------------------------------------ */

/* A watched directory changed: an upload pass at the task's pace. */
static void
woken(void *ctx)
{
    replicator *r = ctx;
    pool_wake_at(&r->task, POOL_HEAVY,
                 __atomic_load_n(&r->next_upload_ms, __ATOMIC_RELAXED));
}

void
rep_watch_close(replicator *r)
{
    for (int i = 0; i < 3; i++) {
        watch_remove(r->w[i]);
        r->w[i] = NULL;
    }
    r->watching = 0;
}

void
rep_watch_open(replicator *r)
{
    int live = r->watching;
    for (int i = 0; live && i < 3; i++)
        live = watch_live(r->w[i]);
    if (live)
        return;
    rep_watch_close(r);
    char *zSpool = sqlite3_mprintf("%s/spool", sidecar_dir(r->sc));
    char *zDir = sqlite3_mprintf("%s", r->zDbPath);
    char *zSlash = zDir ? strrchr(zDir, '/') : NULL;
    const char *zName = zSlash ? zSlash + 1 : r->zDbPath;
    if (zSlash)
        *zSlash = 0;
    int rc = zSpool && zDir ? SQLITE_OK : SQLITE_NOMEM;
    /* Another process's records; the ring of a waiting one. */
    if (rc == SQLITE_OK)
        rc =
            watch_add(zSpool, NULL, WATCH_WRITTEN | WATCH_ADDED | WATCH_TOUCHED,
                      woken, r, &r->w[0]);
    /* config.json renamed into place (another URL), ship.lock closed (a
     * process, maybe the holder, closed the database or died). */
    if (rc == SQLITE_OK)
        rc = watch_add(sidecar_dir(r->sc), NULL, WATCH_ADDED | WATCH_CLOSED,
                       woken, r, &r->w[1]);
    /* The database renamed over, moved away or deleted. */
    if (rc == SQLITE_OK)
        rc = watch_add(zSlash ? (zDir[0] ? zDir : "/") : ".", zName,
                       WATCH_ADDED | WATCH_REMOVED, woken, r, &r->w[2]);
    if (rc == SQLITE_OK)
        r->watching = 1;
    else
        rep_watch_close(r); /* the pass keeps its timer */
    sqlite3_free(zSpool);
    sqlite3_free(zDir);
}
