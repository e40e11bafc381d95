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

#include "storage/base/watch.h"
#include "storage/history/compactor.h"
#include "storage/replicate/spool_txn.h"
#include "storage/replicate/targets.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

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
        rep_spool_lock(r);
        spool_reset(r->sp);
        rep_spool_unlock(r);
        for (int i = 0; i < r->ntg; i++) /* at each one's next pass */
            __atomic_store_n(&r->tg[i].rewrite_ck, 1, __ATOMIC_RELEASE);
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
    if (__atomic_load_n(&r->db_replaced, __ATOMIC_ACQUIRE))
        return 0;
    int rc = stat(r->zDbPath, &st);
    /* Written here only (and at open), read by the replicas' full images
     * (upload.c, same_file). */
    uint64_t ino = __atomic_load_n(&r->db_ino, __ATOMIC_ACQUIRE);
    uint64_t dev = __atomic_load_n(&r->db_dev, __ATOMIC_RELAXED);
    if (rc == 0 && !ino) {
        dev = (uint64_t)st.st_dev;
        ino = (uint64_t)st.st_ino;
        __atomic_store_n(&r->db_dev, dev, __ATOMIC_RELAXED);
        __atomic_store_n(&r->db_ino, ino, __ATOMIC_RELEASE);
    }
    if ((rc == 0 && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino) ||
        (rc != 0 && (errno != ENOENT || !ino)))
        return 1; /* the same file, or none seen yet, or cannot tell */
    __atomic_store_n(&r->db_replaced, 1, __ATOMIC_RELEASE);
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
    __atomic_store_n(&r->next_upload_ms, t + r->opts.sync_interval_ms,
                     __ATOMIC_RELAXED);
    pthread_mutex_unlock(&r->mu);
    if (ship) {
        rep_targets_dispatch(r, t, asked); /* sets r->next_upload_ms */
        rep_release_laggards(r);
    } else if (rep_spool_trylock(r)) {
        /* Another process uploads: still drop our own segments
         * once every replica has them (it cannot delete them). */
        uint64_t rep = rep_min_replicated(r);
        if (rep && spool_scan(r->sp) == SQLITE_OK)
            spool_drop_upto(r->sp, rep);
        rep_spool_unlock(r);
        ring(r, t, rep);
    }
    tell_compactors(r);
}

int
rep_settled(replicator *r)
{
    uint64_t c = captured(r);
    int settled = !__atomic_load_n(&r->db_replaced, __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; settled && i < r->ntg; i++) {
        const rep_target *tg = &r->tg[i];
        /* The holder also waits for each replica's task to settle (its
         * replica checked, no full image due, no failure, no pass
         * running, targets.c); the others only for the replicated TXID. */
        settled = c <= sidecar_replicated_n(r->sc, i) &&
                  (!r->shipping || (tg->settled && !tg->inflight));
    }
    pthread_mutex_unlock(&r->mu);
    return settled;
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
