/*
 * vfs/walread.c: the capture's reads of the WAL (walread.h): the
 * wal-index header, the WAL header, frames and full images, each taken
 * from this hold's copy of the WAL writes (d->buf) when it holds them,
 * else from the WAL or database file; and before the WAL's deletion,
 * whether it ends at the captured position (capture_wal_ends_at_cap,
 * capture_after_wal_delete: declared in capture.h).
 *
 * Threads: as the capture (vfs/capture.c): the caller holds the WAL write
 * lock (or the database in exclusive locking mode) and d->mu.
 */
#include "vfs/walread.h"
#include "vfs/capture.h"
#include "storage/base/mem.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Reads frames lo..hi of the WAL into a new buffer, validating salts and the
 * checksum chain from seed s (the checksum of frame lo-1).  Returns NULL if
 * they do not validate.
 */
uint8_t *
walread_frames(ls_db *d, const wal_hdr *wh, uint32_t lo, uint32_t hi,
               uint32_t s[2])
{
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)wh->page_size;
    uint8_t *b = ls_malloc((uint64_t)fsz * (hi - lo + 1));
    if (!b || !d->walf)
        goto fail;
    for (uint32_t i = lo; i <= hi; i++) {
        uint8_t *f = b + (size_t)(i - lo) * fsz;
        if (d->walf->pMethods->xRead(d->walf, f, (int)fsz,
                                     (sqlite3_int64)wal_frame_offset(
                                         i, wh->page_size)) != SQLITE_OK ||
            !wal_frame_valid(wh, f, s))
            goto fail;
    }
    return b;
fail:
    ls_free(b);
    return NULL;
}

/* The WAL header (cached; the cache follows header writes and resets). */
int
walread_wal_hdr(ls_db *d, wal_hdr *wh)
{
    uint8_t h[WAL_HDR_SIZE];
    if (d->wh_ok) {
        *wh = d->wh;
        return 1;
    }
    if (d->walf && d->base == 0 && d->end >= WAL_HDR_SIZE && d->buf_ok)
        d->wh_ok = wal_hdr_parse(d->buf, &d->wh);
    else if (d->walf &&
             d->walf->pMethods->xRead(d->walf, h, WAL_HDR_SIZE, 0) == SQLITE_OK)
        d->wh_ok = wal_hdr_parse(h, &d->wh);
    *wh = d->wh;
    return d->wh_ok;
}

/* Reads frame i's header (from the buffer when it holds it). */
static int
frame_hdr_at(ls_db *d, uint32_t i, uint32_t ps, uint8_t out[24])
{
    uint64_t o = wal_frame_offset(i, ps);
    if (d->buf_ok && o >= d->base && o + WAL_FRAME_HDR_SIZE <= d->end) {
        memcpy(out, d->buf + (o - d->base), WAL_FRAME_HDR_SIZE);
        return SQLITE_OK;
    }
    if (!d->walf)
        return SQLITE_IOERR;
    return d->walf->pMethods->xRead(d->walf, out, WAL_FRAME_HDR_SIZE,
                                    (sqlite3_int64)o);
}

/*
 * Maps each page 1..commit to its newest WAL frame <= h->mx_frame (0: not
 * in the WAL) into fm.  SQLITE_OK, or an error when a frame header cannot
 * be read or is not of this WAL.
 */
static int
image_frame_map(ls_db *d, const shm_hdr *h, uint32_t ps, uint32_t commit,
                uint32_t *fm)
{
    uint8_t fh[WAL_FRAME_HDR_SIZE];
    memset(fm, 0, ((size_t)commit + 1) * 4);
    for (uint32_t i = 1; i <= h->mx_frame; i++) {
        if (frame_hdr_at(d, i, ps, fh) != SQLITE_OK ||
            wal_get32(fh + 8) != h->salt[0] || wal_get32(fh + 12) != h->salt[1])
            return SQLITE_CORRUPT;
        uint32_t pg = wal_get32(fh);
        if (pg >= 1 && pg <= commit)
            fm[pg] = i;
    }
    return SQLITE_OK;
}

/* Reads page p's image into out: from WAL frame `frame` (buffer or file),
 * or from the database file when frame is 0 (zero-filled past its end). */
static int
image_read_page(ls_db *d, sqlite3_file *real, uint32_t p, uint32_t frame,
                uint32_t ps, uint8_t *out)
{
    int rc;
    if (frame) {
        uint64_t o = wal_frame_offset(frame, ps) + WAL_FRAME_HDR_SIZE;
        if (d->buf_ok && o >= d->base && o + ps <= d->end) {
            memcpy(out, d->buf + (o - d->base), ps);
            return SQLITE_OK;
        }
        return d->walf->pMethods->xRead(d->walf, out, (int)ps,
                                        (sqlite3_int64)o);
    }
    rc = real->pMethods->xRead(real, out, (int)ps, (sqlite3_int64)(p - 1) * ps);
    return rc == SQLITE_IOERR_SHORT_READ ? SQLITE_OK : rc;
}

/* The page count of the image as of h into *commit (the database file's
 * when the wal-index does not say).  0 when the file size is unknown. */
static int
image_pages(sqlite3_file *real, const shm_hdr *h, uint32_t ps, uint32_t *commit)
{
    sqlite3_int64 sz = 0;
    *commit = h->n_page;
    if (h->n_page != 0 && h->mx_frame != 0)
        return 1;
    if (real->pMethods->xFileSize(real, &sz) != SQLITE_OK)
        return 0;
    if (*commit == 0)
        *commit = (uint32_t)(sz / ps);
    return 1;
}

/*
 * A full image as of wal-index header h, read here and now: each page from
 * its newest WAL frame <= mxFrame, else from the database file.  Used where
 * nobody else could read a consistent image: exclusive locking mode, or the
 * replicator's recapture (its connection holds the write lock).  Costs
 * memory of the size of the database, once per lost position.
 */
rep_txn *
walread_image(ls_db *d, sqlite3_file *real, const shm_hdr *h, uint32_t ps,
              uint64_t txid)
{
    uint32_t commit, lock = 0x40000000u / ps + 1, n = 0;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)ps;
    uint32_t *fm = NULL;
    uint8_t *blob = NULL;
    rep_txn *t = NULL;
    if (!image_pages(real, h, ps, &commit))
        return NULL;
    fm = ls_malloc(((uint64_t)commit + 1) * 4);
    blob = ls_malloc((uint64_t)commit * fsz + 1);
    t = ls_malloc(sizeof(*t));
    if (!fm || !blob || !t ||
        image_frame_map(d, h, ps, commit, fm) != SQLITE_OK)
        goto fail;
    for (uint32_t p = 1; p <= commit; p++) {
        if (p == lock)
            continue;
        uint8_t *f = blob + (size_t)n * fsz;
        memset(f, 0, WAL_FRAME_HDR_SIZE);
        wal_put32(f, p);
        if (image_read_page(d, real, p, fm[p], ps, f + WAL_FRAME_HDR_SIZE) !=
            SQLITE_OK)
            goto fail;
        n++;
    }
    ls_free(fm);
    *t = (rep_txn){.txid = txid,
                   .flags = REP_IMAGE,
                   .page_size = ps,
                   .commit = commit,
                   .nframes = n,
                   .frames = blob,
                   .pos = walread_pos(h)};
    return t;
fail:
    ls_free(fm);
    ls_free(blob);
    ls_free(t);
    return NULL;
}

/*
 * walread_heap_hdr's start: a header for WAL header wh, positioned after the
 * captured position when it is in this WAL (*i: the first frame to look
 * at, s: the checksum seed for it).
 */
static void
heap_hdr_start(ls_db *d, const wal_hdr *wh, shm_hdr *h, uint32_t *i,
               uint32_t s[2])
{
    ls_cap cap;
    memset(h, 0, sizeof(*h));
    h->init = 1;
    h->salt[0] = wh->salt1;
    h->salt[1] = wh->salt2;
    h->page_size = (uint16_t)(wh->page_size == 65536 ? 1 : wh->page_size);
    *i = 1;
    s[0] = wh->cksum1;
    s[1] = wh->cksum2;
    if (sidecar_cap_read(d->sc, &cap) && cap.salt1 == wh->salt1 &&
        cap.salt2 == wh->salt2 && cap.frame > 0) {
        *i = cap.frame + 1;
        s[0] = cap.cksum1;
        s[1] = cap.cksum2;
        h->mx_frame = cap.frame;
        h->n_page = cap.commit;
        h->frame_cksum[0] = cap.cksum1;
        h->frame_cksum[1] = cap.cksum2;
    }
}

/*
 * Exclusive locking mode with a heap wal-index: no shared header to read.
 * Derive one from the WAL itself: the last commit frame among the frames
 * this connection wrote (buffer), else by validating the WAL file from the
 * captured position (or from its first frame).  0 if there is no WAL.
 */
int
walread_heap_hdr(ls_db *d, shm_hdr *h)
{
    wal_hdr wh;
    uint8_t *f = NULL;
    uint32_t s[2], i;
    if (!walread_wal_hdr(d, &wh))
        return 0;
    heap_hdr_start(d, &wh, h, &i, s);
    uint32_t ps = wh.page_size;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)ps;
    if (!d->walf || !(f = ls_malloc(fsz)))
        return h->mx_frame > 0 || i == 1;
    /* When the buffer holds every frame after the position, the frames
     * past its end are not this WAL's: no need to read the file. */
    int buf_all =
        d->buf_ok && d->end > d->base && d->base <= wal_frame_offset(i, ps);
    for (;; i++) {
        uint64_t o = wal_frame_offset(i, ps);
        int rc;
        if (buf_all && o + fsz > d->end)
            break;
        if (d->buf_ok && o >= d->base && o + fsz <= d->end) {
            memcpy(f, d->buf + (o - d->base), fsz);
            rc = SQLITE_OK;
        } else {
            rc = d->walf->pMethods->xRead(d->walf, f, (int)fsz,
                                          (sqlite3_int64)o);
        }
        if (rc != SQLITE_OK || !wal_frame_valid(&wh, f, s))
            break;
        if (wal_get32(f + 4)) {
            h->mx_frame = i;
            h->n_page = wal_get32(f + 4);
            h->frame_cksum[0] = s[0];
            h->frame_cksum[1] = s[1];
        }
    }
    ls_free(f);
    return 1;
}

/* ---- the WAL's deletion (declared in capture.h) ---------------------- */

/*
 * Before the WAL file zWal is deleted (the last connection closed it after
 * a checkpoint): does it end exactly at the captured position?  Only then
 * may the next WAL continue from it (CAP_RESET); committed frames beyond
 * the position (a writer without the extension, a writer killed before
 * capturing) make the next TXID a full image instead.  The file is read
 * directly: SQLite holds no lock on the -wal file itself.
 */
int
capture_wal_ends_at_cap(ls_db *d, const char *zWal)
{
    ls_cap cap;
    wal_hdr wh;
    uint8_t hb[WAL_HDR_SIZE];
    uint8_t *f = NULL;
    int clean = 0;
    int fd = open(zWal, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || !d->sc || !sidecar_cap_read(d->sc, &cap))
        goto out;
    if (pread(fd, hb, WAL_HDR_SIZE, 0) != WAL_HDR_SIZE ||
        !wal_hdr_parse(hb, &wh)) {
        clean = cap.frame == 0 || (cap.flags & CAP_RESET); /* empty WAL */
        goto out;
    }
    if (wh.salt1 != cap.salt1 || wh.salt2 != cap.salt2)
        goto out; /* restarted without us */
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)wh.page_size;
    uint32_t s[2] = {cap.cksum1, cap.cksum2};
    if (cap.frame == 0) {
        s[0] = wh.cksum1;
        s[1] = wh.cksum2;
    }
    if (!(f = ls_malloc(fsz)))
        goto out;
    /* Any valid commit frame after the position was never captured. */
    for (uint32_t i = cap.frame + 1;; i++) {
        if (pread(fd, f, fsz, (off_t)wal_frame_offset(i, wh.page_size)) !=
                (ssize_t)fsz ||
            !wal_frame_valid(&wh, f, s)) {
            clean = 1;
            break;
        }
        if (wal_get32(f + 4))
            break; /* an uncaptured commit */
    }
out:
    if (fd >= 0)
        close(fd);
    ls_free(f);
    return clean;
}

/* The WAL was deleted after a checkpoint: remember the database as left. */
void
capture_after_wal_delete(ls_db *d)
{
    ls_cap cap;
    struct stat st;
    if (!d->sc || !sidecar_cap_read(d->sc, &cap) || stat(d->zPath, &st) != 0)
        return;
    cap.flags |= CAP_RESET;
    cap.db_ino = (uint64_t)st.st_ino;
    cap.db_size = st.st_size;
    cap.db_mtime_ns =
        (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    sidecar_cap_write(d->sc, &cap);
}
