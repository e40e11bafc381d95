/*
 * storage/replicate/recover.c: the recovery path of the uploader
 * (recover.h): TXIDs a process captured but never spooled (it died) are
 * re-read from the WAL, or judged to need a full image (the caller uploads
 * it); a captured position left behind by a writer that died is
 * re-captured under the write lock.
 *
 * A replica's upload task (rep_fill_gap, rep_recapture_if_stale: the
 * replica's gap and stale-position timers are its own), and the
 * application thread (rep_capture_pending).  Recovery spools: it holds
 * the replicator's spool_mu from the look at the spool to the append.
 */
#include "storage/replicate/recover.h"

#include "storage/base/mem.h"
#include "storage/local/image.h"
#include "storage/local/wal.h"
#include "storage/replicate/spool_txn.h"

#include <pthread.h>
#include <string.h>

#define GAP_GRACE_MS      1000
#define RECOVER_MAX_BYTES (256ull << 20)

/*
 * The recovery path (docs/architecture.md 2.9): re-reads from the WAL the TXIDs
 * after+1 .. captured that some process captured but never spooled (it
 * died), starting where `after` ended (`pos`), validating salts and the
 * checksum chain, and spools them.  SQLITE_NOTFOUND when the WAL no longer
 * holds them (restarted, overwritten, or too much): only a full image helps
 * then.  SQLITE_BUSY: try later.  read_run() pins the WAL (p, closed by the
 * caller) and reads and validates the run of frames after pos into *pfr.
 */
static int
read_run(replicator *r, uint64_t after, const ls_cap *cap, const wal_pos *pos,
         pin *p, uint8_t **pfr, char **pzErr)
{
    wal_hdr wh;
    uint8_t whb[WAL_HDR_SIZE];
    uint32_t n = cap->frame - pos->frame;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)cap->page_size;

    int rc = pin_open(r->zDbPath, r->zVfs, p, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    if (p->walf->pMethods->xRead(p->walf, whb, WAL_HDR_SIZE, 0) != SQLITE_OK ||
        !wal_hdr_parse(whb, &wh) || wh.salt1 != cap->salt1 ||
        wh.salt2 != cap->salt2 || wh.page_size != cap->page_size)
        return SQLITE_NOTFOUND;
    uint8_t *fr = *pfr = ls_malloc((uint64_t)n * fsz);
    if (!fr)
        return SQLITE_NOMEM;
    rc = p->walf->pMethods->xRead(
        p->walf, fr, (int)((uint64_t)n * fsz),
        (sqlite3_int64)wal_frame_offset(pos->frame + 1, cap->page_size));
    if (rc != SQLITE_OK)
        return SQLITE_NOTFOUND;
    /* Validate the whole run first: all or nothing. */
    uint32_t s[2] = {pos->cksum1, pos->cksum2};
    uint64_t commits = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!wal_frame_valid(&wh, fr + i * fsz, s))
            return SQLITE_NOTFOUND;
        if (wal_get32(fr + i * fsz + 4))
            commits++;
    }
    if (commits != cap->txid - after || !wal_get32(fr + (n - 1) * fsz + 4))
        return SQLITE_NOTFOUND; /* does not line up with the TXIDs */
    return SQLITE_OK;
}

/* Spools the validated run fr (frames pos->frame+1 .. cap->frame) as
 * TXIDs after+1 .., one per commit frame, and syncs the spool. */
static int
spool_run(replicator *r, uint64_t after, const ls_cap *cap, const wal_pos *pos,
          uint8_t *fr, char **pzErr)
{
    uint32_t n = cap->frame - pos->frame;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)cap->page_size;
    uint32_t start = 0;
    uint64_t txid = after;
    int rc = SQLITE_OK;

    for (uint32_t i = 0; i < n && rc == SQLITE_OK; i++) {
        const uint8_t *fh = fr + i * fsz;
        if (!wal_get32(fh + 4))
            continue;
        rep_txn t = {.txid = ++txid,
                     .page_size = cap->page_size,
                     .commit = wal_get32(fh + 4),
                     .nframes = i + 1 - start,
                     .frames = fr + start * fsz,
                     .pos = {wal_get32(fh + 8), wal_get32(fh + 12),
                             pos->frame + i + 1, wal_get32(fh + 16),
                             wal_get32(fh + 20)}};
        rc = rep_spool_txn(r, &t, 0, pzErr);
        start = i + 1;
    }
    if (rc == SQLITE_OK && spool_sync(r->sp) != SQLITE_OK)
        rc = SQLITE_IOERR;
    if (rc == SQLITE_OK)
        sqlite3_log(SQLITE_NOTICE,
                    "litestream: recovered TXIDs %llu-%llu of '%s' from the "
                    "WAL",
                    (unsigned long long)after + 1,
                    (unsigned long long)cap->txid, r->zDbPath);
    return rc;
}

static int
recover_from_wal(replicator *r, rep_target *tg, uint64_t after,
                 const wal_pos *pos)
{
    int rc;
    ls_cap cap;
    pin p = {0};
    uint8_t *fr = NULL;
    char *zErr = NULL;

    if (!sidecar_cap_read(r->sc, &cap))
        return SQLITE_NOTFOUND;
    if (cap.txid <= after)
        return SQLITE_OK;
    if (pos->frame == 0 || cap.salt1 != pos->salt1 || cap.salt2 != pos->salt2 ||
        cap.frame <= pos->frame || cap.page_size == 0)
        return SQLITE_NOTFOUND;
    uint64_t fsz = WAL_FRAME_HDR_SIZE + (uint64_t)cap.page_size;
    if ((uint64_t)(cap.frame - pos->frame) * fsz > RECOVER_MAX_BYTES)
        return SQLITE_NOTFOUND;
    rc = read_run(r, after, &cap, pos, &p, &fr, &zErr);
    if (rc == SQLITE_OK)
        rc = spool_run(r, after, &cap, pos, fr, &zErr);
    if (zErr)
        rep_error(r, tg, zErr);
    pin_close(&p);
    ls_free(fr);
    return rc;
}

#define STALE_GRACE_MS 1000

/*
 * A full image that keeps failing because the captured position does not
 * match the WAL (its writer died between moving the WAL and capturing):
 * take the write lock on a private connection and let the capture assign
 * a TXID to the WAL as it is.
 */
void
rep_recapture_if_stale(rep_target *tg)
{
    replicator *r = tg->r;
    pin p;
    ls_cap cap;
    char *zErr = NULL;
    int64_t t = clock_now_ms();
    if (!r->opts.xRecapture)
        return;
    uint64_t now_txid = sidecar_cap_read(r->sc, &cap) ? cap.txid : 0;
    if (!tg->full_busy_since_ms) {
        tg->full_busy_since_ms = t;
        tg->full_busy_txid = now_txid;
        return;
    }
    if (t - tg->full_busy_since_ms < STALE_GRACE_MS)
        return;
    if (now_txid != tg->full_busy_txid) {
        /* The position kept moving: a live writer, whose commits keep
         * overtaking the image.  Taking the write lock from it would hand
         * it SQLITE_BUSY: its next capture reads the image instead. */
        __atomic_store_n(&r->want_image, 1, __ATOMIC_RELEASE);
        tg->full_busy_since_ms = t;
        tg->full_busy_txid = now_txid;
        return;
    }
    /* The position stood still for the whole grace period: left behind
     * by a writer that died between moving the WAL and capturing. */
    if (pin_write_open(r->zDbPath, r->zVfs, &p, &zErr) == SQLITE_OK) {
        r->opts.xRecapture(r->opts.pRecaptureCtx, p.dbf, p.walf);
        pin_close(&p);
        tg->full_busy_since_ms = 0;
    } else {
        /* Locked out (exclusive locking mode): the writer's next commit,
         * or litestream_sync() on its connection, reads the image. */
        __atomic_store_n(&r->want_image, 1, __ATOMIC_RELEASE);
    }
    sqlite3_free(zErr);
}

/*
 * 1 if the WAL ends at the captured position (see pin_ends_at), 0 if it
 * holds frames beyond it, -1 if it cannot tell now (the database could not
 * be opened: busy).  A position that cannot be read (lost, or torn by a
 * writer that died while writing it) is no position: any frame in the WAL
 * is then beyond it.
 */
static int
wal_ends_at_cap(replicator *r)
{
    pin p;
    ls_cap cap;
    char *zErr = NULL;
    int ends;
    if (!sidecar_cap_read(r->sc, &cap))
        memset(&cap, 0, sizeof(cap));
    int rc = pin_open(r->zDbPath, r->zVfs, &p, &zErr);
    if (rc == SQLITE_OK) {
        ends = pin_ends_at(&p, &cap);
        pin_close(&p);
    } else {
        /* Busy: look again.  Anything else (the file gone, exclusive
         * locking mode elsewhere): nothing a wait would change. */
        ends = (rc & 0xff) == SQLITE_BUSY ? -1 : 1;
    }
    sqlite3_free(zErr);
    return ends;
}

#define PENDING_MS 1000 /* how long a busy database is looked at again */

int
rep_capture_pending(replicator *r)
{
    int rc = SQLITE_OK;
    if (!r->opts.xRecapture)
        return SQLITE_OK;
    int64_t until = clock_now_ms() + PENDING_MS;
    for (int i = 0; i == 0 || clock_now_ms() < until; i++) {
        pin p;
        char *zErr = NULL;
        int e = wal_ends_at_cap(r);
        if (e == 1)
            return SQLITE_OK;
        /* A writer between its commit and its capture shows the same
         * picture for a moment: only a position that stays behind was
         * left by a dead writer. */
        sqlite3_sleep(i == 0 ? 5 : 50);
        if (e == 0 && (e = wal_ends_at_cap(r)) == 1)
            return SQLITE_OK;
        if (e == -1)
            continue; /* cannot tell yet: look again */
        rc = pin_write_open(r->zDbPath, r->zVfs, &p, &zErr);
        sqlite3_free(zErr);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
            return rc;
        if (rc == SQLITE_OK) {
            /* The write lock: no live writer is between its commit and
             * its capture now. */
            r->opts.xRecapture(r->opts.pRecaptureCtx, p.dbf, p.walf);
            pin_close(&p);
            return SQLITE_OK;
        }
    }
    return rc == SQLITE_OK ? SQLITE_BUSY : rc;
}

/* Where TXID `to` ended in the WAL, or a zero position if unknown.
 * Caller holds spool_mu. */
static wal_pos
end_of(const rep_target *tg, uint64_t to)
{
    replicator *r = tg->r;
    wal_pos pos = {0};
    spool_txn rec;
    if (to == rep_replicated(tg) && tg->rep_pos.frame)
        pos = tg->rep_pos;
    else if (spool_read_end(r->sp, to, &rec) == SQLITE_OK) {
        pos = rec.pos;
        spool_txn_free(&rec);
    }
    return pos;
}

int
rep_fill_gap(rep_target *tg, uint64_t to, rep_gap *verdict)
{
    replicator *r = tg->r;
    ls_cap cap;
    int queued;

    *verdict = REP_GAP_NONE;
    if (!sidecar_cap_read(r->sc, &cap) || cap.txid <= to) {
        tg->gap_since_ms = 0;
        return SQLITE_OK;
    }
    /* This process's queue, or a pass spooling what it took from it. */
    pthread_mutex_lock(&r->mu);
    queued = r->head != NULL || r->spooling || rep_slot_open(r);
    pthread_mutex_unlock(&r->mu);
    int64_t t = clock_now_ms();
    if (queued || !tg->gap_since_ms) {
        tg->gap_since_ms = queued ? 0 : t;
        return SQLITE_OK;
    }
    if (t - tg->gap_since_ms < GAP_GRACE_MS)
        return SQLITE_OK;
    rep_spool_lock(r);
    wal_pos pos = end_of(tg, to);
    int rc = recover_from_wal(r, tg, to, &pos);
    rep_spool_unlock(r);
    if (rc == SQLITE_NOTFOUND) {
        *verdict = REP_GAP_IMAGE;
        return SQLITE_OK;
    }
    if (rc == SQLITE_OK) {
        tg->gap_since_ms = 0;
        *verdict = REP_GAP_RECOVERED;
    }
    return rc;
}
