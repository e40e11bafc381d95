/*
 * vfs/capture.c: turning the WAL writes of a replicated database into
 * queued transactions (DESIGN.md section 4; the invariants are listed at
 * the top of vfs/replicate.c).
 *
 * Threads: application threads, holding the WAL write lock (or the
 * database in exclusive locking mode) and d->mu where noted in
 * vfs_int.h; capture_recapture() on the replicator thread while its
 * private connection holds the write lock.
 */
#include "storage/base/mem.h"
#include "vfs/vfs_int.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads the wal-index header; 0 if there is no shared memory. */
static int
shm_read(ls_db *d, sqlite3_file *real, shm_hdr *h)
{
    /* Never map it ourselves: a connection with a heap wal-index
     * (exclusive locking mode) would get a -shm file it never uses. */
    if (!d->shm_seen)
        return 0;
    volatile void *p = NULL;
    if (real->pMethods->iVersion < 2 ||
        real->pMethods->xShmMap(real, 0, 32768, 0, &p) != SQLITE_OK || !p)
        return 0;
    return wal_index_hdr_read(p, h);
}

void
capture_buf_reset(ls_db *d)
{
    d->base = d->end = 0;
    d->buf_ok = 1;
    d->buf_over = 0;
    d->wal_synced = 0;
    if (d->heap_cap > BUF_KEEP) {
        /* A big transaction's buffer is not kept for small ones. */
        ls_free(d->heap);
        d->heap = NULL;
        d->heap_cap = 0;
    }
    d->in_arena = 0;
    d->buf = d->heap;
    d->cap = d->heap_cap;
}

/* Moves the copy to the heap buffer, grown to hold `need` bytes. */
static int
buf_to_heap(ls_db *d, uint64_t need)
{
    if (need > d->heap_cap) {
        size_t nc = d->heap_cap ? d->heap_cap : 1 << 16;
        while (nc < need)
            nc *= 2;
        uint8_t *b = d->in_arena ? ls_malloc(nc) : ls_realloc(d->heap, nc);
        if (!b)
            return 0;
        if (d->in_arena)
            ls_free(d->heap);
        d->heap = b;
        d->heap_cap = nc;
    }
    if (d->in_arena && d->end > d->base)
        memcpy(d->heap, d->buf, (size_t)(d->end - d->base));
    d->in_arena = 0;
    d->buf = d->heap;
    d->cap = d->heap_cap;
    return 1;
}

/* Keeps a copy of a WAL write (invariant 2).  A hold's copy starts in the
 * free space of the current arena chunk, so the commit can queue it where
 * it is (no second copy); it moves to the heap if it outgrows that. */
void
capture_buf_write(ls_db *d, const void *p, int n, sqlite3_int64 off)
{
    uint64_t o = (uint64_t)off;
    if (!d->buf_ok)
        return;
    if (d->end == d->base) {
        d->base = d->end = o;
        if (!d->in_arena) {
            size_t avail = 0;
            uint8_t *a = txarena_reserve(&d->arena, ARENA_MIN, &avail);
            if (a) {
                d->in_arena = 1;
                d->buf = a;
                d->cap = avail;
            }
        }
    }
    if (o < d->base || o > d->end) {
        d->buf_ok = 0; /* not a contiguous run: re-read from the WAL */
        return;
    }
    if (o + (uint64_t)n - d->base > BUF_MAX) {
        d->buf_ok = 0; /* too big to copy: the replicator reads the WAL */
        d->buf_over = 1;
        return;
    }
    uint64_t need = o + (uint64_t)n - d->base;
    if (need > d->cap && !buf_to_heap(d, need)) {
        d->buf_ok = 0;
        return;
    }
    memcpy(d->buf + (o - d->base), p, (size_t)n);
    if (o + (uint64_t)n > d->end)
        d->end = o + (uint64_t)n;
}

/* Does buf hold frames lo..hi (1-based) for page size ps? */
static int
buf_covers(ls_db *d, uint32_t lo, uint32_t hi, uint32_t ps)
{
    return d->buf_ok && d->base <= wal_frame_offset(lo, ps) &&
           d->end >= wal_frame_offset(hi + 1, ps);
}

/*
 * Reads frames lo..hi of the WAL into a new buffer, validating salts and the
 * checksum chain from seed s (the checksum of frame lo-1).  Returns NULL if
 * they do not validate.
 */
static uint8_t *
wal_reread(ls_db *d, const wal_hdr *wh, uint32_t lo, uint32_t hi, uint32_t s[2])
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
static int
read_wal_hdr(ls_db *d, wal_hdr *wh)
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

/* Hands frames (one buffer, commit boundaries inside) to the replicator,
 * one TXID per commit frame.  Returns the last TXID used. */
static uint64_t
enqueue_frames(ls_db *d, const uint8_t *frames, uint32_t first_frame,
               uint32_t n, uint32_t ps, uint64_t txid)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)ps;
    uint32_t start = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t commit = wal_get32(frames + i * fsz + 4);
        if (commit == 0)
            continue;
        size_t nbytes = (size_t)(i + 1 - start) * fsz;
        rep_txn *t = txarena_alloc(&d->arena, nbytes);
        uint8_t *copy;
        void *arena = NULL;
        if (t) {
            copy = (uint8_t *)t->frames;
            arena = t->arena;
        } else {
            t = ls_malloc(sizeof(*t));
            copy = ls_malloc(nbytes);
            if (!t || !copy) {
                ls_free(t);
                ls_free(copy);
                /* Out of memory: the capture covers what is left with a
                 * full image after the TXIDs already queued. */
                d->enq_failed = 1;
                return txid;
            }
        }
        memcpy(copy, frames + start * fsz, nbytes);
        const uint8_t *fh = frames + i * fsz;
        *t = (rep_txn){.txid = ++txid,
                       .arena = arena,
                       .flags = d->wal_synced ? REP_DURABLE : 0,
                       .page_size = ps,
                       .commit = commit,
                       .nframes = i + 1 - start,
                       .frames = copy,
                       .pos = {.salt1 = wal_get32(fh + 8),
                               .salt2 = wal_get32(fh + 12),
                               .frame = first_frame + i,
                               .cksum1 = wal_get32(fh + 16),
                               .cksum2 = wal_get32(fh + 20)}};
        replicator_enqueue(d->rep, t);
        start = i + 1;
    }
    return txid;
}

/* Where the WAL ends per a wal-index header: the position of its mxFrame. */
static wal_pos
pos_of(const shm_hdr *h)
{
    return (wal_pos){.salt1 = h->salt[0],
                     .salt2 = h->salt[1],
                     .frame = h->mx_frame,
                     .cksum1 = h->frame_cksum[0],
                     .cksum2 = h->frame_cksum[1]};
}

/*
 * The common case: this hold's copy, in the arena, holds frames lo..hi of
 * exactly one transaction (only frame hi commits).  Queue it where it is.
 * Returns the TXID, or 0 if the case does not apply.
 */
static uint64_t
enqueue_in_place(ls_db *d, uint32_t lo, uint32_t hi, uint32_t ps, uint64_t base)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)ps;
    if (!d->in_arena)
        return 0;
    uint8_t *first = d->buf + (wal_frame_offset(lo, ps) - d->base);
    for (uint32_t i = 0; i + lo < hi; i++)
        if (wal_get32(first + i * fsz + 4))
            return 0; /* more than one commit */
    const uint8_t *fh = first + (size_t)(hi - lo) * fsz;
    uint32_t commit = wal_get32(fh + 4);
    if (!commit)
        return 0;
    rep_txn *t = txarena_commit(d->arena, d->buf, (size_t)(d->end - d->base));
    t->frames = first;
    t->txid = base + 1;
    t->flags = d->wal_synced ? REP_DURABLE : 0;
    t->page_size = ps;
    t->commit = commit;
    t->nframes = hi - lo + 1;
    t->pos = (wal_pos){.salt1 = wal_get32(fh + 8),
                       .salt2 = wal_get32(fh + 12),
                       .frame = hi,
                       .cksum1 = wal_get32(fh + 16),
                       .cksum2 = wal_get32(fh + 20)};
    /* The reservation is consumed: the next hold reserves anew. */
    d->in_arena = 0;
    d->buf = d->heap;
    d->cap = d->heap_cap;
    d->base = d->end = 0;
    replicator_enqueue(d->rep, t);
    return base + 1;
}

/*
 * This hold wrote frames lo..mxFrame, too many to copy: queue them by
 * reference, one TXID (one write-lock hold is one transaction).  The WAL
 * cannot restart before the replicator read them (before_wal_reset waits
 * for it).  Returns the TXID, or 0 if the WAL header is unreadable.
 */
static uint64_t
enqueue_walref(ls_db *d, uint32_t lo, const shm_hdr *h, uint32_t ps,
               const ls_cap *cap, uint64_t base)
{
    wal_hdr wh;
    rep_txn *t;
    if (!read_wal_hdr(d, &wh) || wh.page_size != ps ||
        !(t = ls_malloc(sizeof(*t))))
        return 0;
    *t = (rep_txn){.txid = base + 1,
                   .flags = REP_WALREF | (d->wal_synced ? REP_DURABLE : 0),
                   .page_size = ps,
                   .commit = h->n_page,
                   .nframes = h->mx_frame - lo + 1,
                   .wal_lo = lo,
                   .seed1 = lo == 1 ? wh.cksum1 : cap->cksum1,
                   .seed2 = lo == 1 ? wh.cksum2 : cap->cksum2,
                   .pos = pos_of(h)};
    replicator_enqueue(d->rep, t);
    return base + 1;
}

static void
enqueue_full(ls_db *d, uint64_t txid, const shm_hdr *h)
{
    rep_txn *t = ls_malloc(sizeof(*t));
    if (!t)
        return; /* the position stays unmatched: next capture retries */
    *t = (rep_txn){.txid = txid, .flags = REP_FULL, .pos = pos_of(h)};
    replicator_enqueue(d->rep, t);
    d->n_full++;
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
 * A full image as of wal-index header h, read here and now: each page from
 * its newest WAL frame <= mxFrame, else from the database file.  Used where
 * nobody else could read a consistent image: exclusive locking mode, or the
 * replicator's recapture (its connection holds the write lock).  Costs
 * memory of the size of the database, once per lost position.
 */
static rep_txn *
image_inline(ls_db *d, sqlite3_file *real, const shm_hdr *h, uint32_t ps,
             uint64_t txid)
{
    uint32_t commit = h->n_page;
    uint32_t *fm = NULL;
    uint8_t *blob = NULL;
    rep_txn *t = NULL;
    uint8_t fh[WAL_FRAME_HDR_SIZE];
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)ps;
    if (commit == 0 || h->mx_frame == 0) {
        sqlite3_int64 sz = 0;
        if (real->pMethods->xFileSize(real, &sz) != SQLITE_OK)
            return NULL;
        if (commit == 0)
            commit = (uint32_t)(sz / ps);
    }
    fm = ls_malloc(((uint64_t)commit + 1) * 4);
    blob = ls_malloc((uint64_t)commit * fsz + 1);
    t = ls_malloc(sizeof(*t));
    if (!fm || !blob || !t)
        goto fail;
    memset(fm, 0, ((size_t)commit + 1) * 4);
    for (uint32_t i = 1; i <= h->mx_frame; i++) {
        if (frame_hdr_at(d, i, ps, fh) != SQLITE_OK ||
            wal_get32(fh + 8) != h->salt[0] || wal_get32(fh + 12) != h->salt[1])
            goto fail;
        uint32_t pg = wal_get32(fh);
        if (pg >= 1 && pg <= commit)
            fm[pg] = i;
    }
    uint32_t lock = 0x40000000u / ps + 1, n = 0;
    for (uint32_t p = 1; p <= commit; p++) {
        if (p == lock)
            continue;
        uint8_t *f = blob + (size_t)n * fsz;
        memset(f, 0, WAL_FRAME_HDR_SIZE);
        wal_put32(f, p);
        int rc;
        if (fm[p]) {
            uint64_t o = wal_frame_offset(fm[p], ps) + WAL_FRAME_HDR_SIZE;
            if (d->buf_ok && o >= d->base && o + ps <= d->end) {
                memcpy(f + WAL_FRAME_HDR_SIZE, d->buf + (o - d->base), ps);
                rc = SQLITE_OK;
            } else {
                rc = d->walf->pMethods->xRead(d->walf, f + WAL_FRAME_HDR_SIZE,
                                              (int)ps, (sqlite3_int64)o);
            }
        } else {
            rc = real->pMethods->xRead(real, f + WAL_FRAME_HDR_SIZE, (int)ps,
                                       (sqlite3_int64)(p - 1) * ps);
            if (rc == SQLITE_IOERR_SHORT_READ)
                rc = SQLITE_OK; /* zero-filled */
        }
        if (rc != SQLITE_OK)
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
                   .pos = pos_of(h)};
    return t;
fail:
    ls_free(fm);
    ls_free(blob);
    ls_free(t);
    return NULL;
}

/*
 * Exclusive locking mode with a heap wal-index: no shared header to read.
 * Derive one from the WAL itself: the last commit frame among the frames
 * this connection wrote (buffer), else by validating the WAL file from the
 * captured position (or from its first frame).  0 if there is no WAL.
 */
static int
heap_hdr(ls_db *d, shm_hdr *h)
{
    wal_hdr wh;
    ls_cap cap;
    uint8_t *f = NULL;
    if (!read_wal_hdr(d, &wh))
        return 0;
    memset(h, 0, sizeof(*h));
    h->init = 1;
    h->salt[0] = wh.salt1;
    h->salt[1] = wh.salt2;
    h->page_size = (uint16_t)(wh.page_size == 65536 ? 1 : wh.page_size);
    uint32_t ps = wh.page_size;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)ps;
    uint32_t s[2] = {wh.cksum1, wh.cksum2}, i = 1;
    if (sidecar_cap_read(d->sc, &cap) && cap.salt1 == wh.salt1 &&
        cap.salt2 == wh.salt2 && cap.frame > 0) {
        /* Start after the captured position. */
        i = cap.frame + 1;
        s[0] = cap.cksum1;
        s[1] = cap.cksum2;
        h->mx_frame = cap.frame;
        h->n_page = cap.commit;
        h->frame_cksum[0] = cap.cksum1;
        h->frame_cksum[1] = cap.cksum2;
    }
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

/* The TXID counter never goes back, even when the position was lost. */
static uint64_t
txid_base(ls_db *d, const ls_cap *cap, int valid)
{
    uint64_t t = valid ? cap->txid : 0;
    uint64_t f = sidecar_txid_floor(d->sc);
    uint64_t s = sidecar_spooled(d->sc);
    uint64_t r = sidecar_replicated(d->sc);
    if (f > t)
        t = f;
    if (s > t)
        t = s;
    if (r > t)
        t = r;
    return t;
}

/*
 * The capture (invariant 3).  `real` is the main database file.  Runs with
 * the WAL write lock held, or in exclusive locking mode.
 */
static void
capture(ls_db *d, sqlite3_file *real)
{
    shm_hdr h;
    ls_cap cap, nc;
    wal_hdr wh;
    int valid;
    uint64_t base, txid;

    if (!d->rep || !d->sc)
        return;
    if (!shm_read(d, real, &h) && !heap_hdr(d, &h))
        return;
    if (d->wh_ok && (d->wh.salt1 != h.salt[0] || d->wh.salt2 != h.salt[1]))
        d->wh_ok = 0; /* another process restarted the WAL */
    uint32_t ps = h.page_size == 1 ? 65536 : h.page_size;
    if (ps == 0) {
        /* An empty WAL's wal-index header has no page size: ask the
         * database header (rare: only right after a crash or reset). */
        uint8_t dh[2] = {0, 0};
        if (real->pMethods->xRead(real, dh, 2, 16) == SQLITE_OK)
            ps = ((uint32_t)dh[0] << 8 | dh[1]) == 1
                     ? 65536
                     : ((uint32_t)dh[0] << 8 | dh[1]);
    }
    valid = sidecar_cap_read(d->sc, &cap);
    base = txid_base(d, &cap, valid);
    int same_salts = valid && cap.salt1 == h.salt[0] && cap.salt2 == h.salt[1];
    /* The uploader cannot read a full image itself (exclusive locking
     * mode): read it now, as part of this capture. */
    int force_image = !d->hold_locked && replicator_image_wanted(d->rep) &&
                      replicator_take_image_request(d->rep);
    if (!force_image && same_salts && cap.frame == h.mx_frame &&
        base == cap.txid)
        return; /* nothing new: a rollback or an empty transaction */

    nc = (ls_cap){.flags = CAP_VALID,
                  .salt1 = h.salt[0],
                  .salt2 = h.salt[1],
                  .frame = h.mx_frame,
                  .cksum1 = h.frame_cksum[0],
                  .cksum2 = h.frame_cksum[1],
                  .page_size = ps,
                  .commit = h.n_page};
    txid = 0;
    if (!force_image && valid && base == cap.txid &&
        (same_salts || d->caught_up)) {
        uint32_t lo = same_salts ? cap.frame + 1 : 1;
        if (h.mx_frame < lo - 1) {
            txid = 0; /* the WAL went backwards: lost frames */
        } else if (h.mx_frame == lo - 1) {
            txid = base; /* a restart with nothing new */
        } else if (d->buf_over && d->caught_up && d->hold_locked &&
                   (txid = enqueue_walref(d, lo, &h, ps, &cap, base))) {
            /* (Not in exclusive locking mode: the replicator could never
             * read the WAL behind the writer's lock.) */
            /* queued by reference */
        } else if (buf_covers(d, lo, h.mx_frame, ps)) {
            txid = enqueue_in_place(d, lo, h.mx_frame, ps, base);
            if (!txid) {
                /* Several commits (or no arena): copy them out. */
                if (d->in_arena && !buf_to_heap(d, d->end - d->base)) {
                    txid = 0;
                } else {
                    txid = enqueue_frames(
                        d, d->buf + (wal_frame_offset(lo, ps) - d->base), lo,
                        h.mx_frame - lo + 1, ps, base);
                }
            }
        } else if (read_wal_hdr(d, &wh) && wh.page_size == ps) {
            uint32_t s[2] = {cap.cksum1, cap.cksum2};
            if (lo == 1) {
                s[0] = wh.cksum1;
                s[1] = wh.cksum2;
            }
            uint8_t *fr = wal_reread(d, &wh, lo, h.mx_frame, s);
            if (fr)
                txid = enqueue_frames(d, fr, lo, h.mx_frame - lo + 1, ps, base);
            ls_free(fr);
        }
    }
    if (d->enq_failed) {
        d->enq_failed = 0;
        if (txid > base)
            base = txid; /* those are queued; the rest: a full image */
        txid = 0;
    }
    if (txid == 0) {
        /* Lost position: the next TXID is a full image.  Normally the
         * replicator reads it from a private read transaction; where none
         * can run (exclusive locking mode) or it failed already (the
         * replicator's capture_recapture), it is read here. */
        txid = base + 1;
        rep_txn *img = NULL;
        if (!d->hold_locked && ps)
            img = image_inline(d, real, &h, ps, txid);
        if (img) {
            replicator_enqueue(d->rep, img);
            d->n_full++;
        } else {
            enqueue_full(d, txid, &h);
        }
    }
    nc.txid = txid;
    sidecar_cap_write(d->sc, &nc);
}

/* Start of a write transaction: is the position current? */
void
capture_hold_begin(ls_db *d, sqlite3_file *real, int locked)
{
    shm_hdr h;
    ls_cap cap;
    d->hold = 1;
    d->caught_up = 0;
    capture_buf_reset(d);
    if (!d->rep || !d->sc)
        return;
    int valid = sidecar_cap_read(d->sc, &cap);
    if (!valid || txid_base(d, &cap, valid) != cap.txid)
        return;
    if (locked && shm_read(d, real, &h)) {
        d->caught_up = (cap.salt1 == h.salt[0] && cap.salt2 == h.salt[1] &&
                        cap.frame == h.mx_frame) ||
                       ((cap.flags & CAP_RESET) && h.mx_frame == 0);
    } else {
        /* Exclusive locking mode: this connection is the only writer, so
         * the WAL is current if its header is the one the position was
         * captured in.  (Not the wal-index: at a restart SQLite has put
         * the new salts there before the first write reaches us.) */
        wal_hdr wh;
        d->caught_up = (cap.flags & CAP_RESET) ||
                       (read_wal_hdr(d, &wh) && wh.salt1 == cap.salt1 &&
                        wh.salt2 == cap.salt2);
    }
    if (d->caught_up && (cap.flags & CAP_RESET)) {
        /* The WAL was removed after a clean close.  Only trust that if the
         * database file is exactly as we left it. */
        struct stat st;
        if (stat(d->zPath, &st) != 0 || (uint64_t)st.st_ino != cap.db_ino ||
            st.st_size != cap.db_size ||
            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec !=
                cap.db_mtime_ns)
            d->caught_up = 0;
    }
}

void
capture_hold_end(ls_db *d, sqlite3_file *real)
{
    if (d->hold) {
        capture(d, real);
        d->hold = 0;
        d->hold_locked = 0;
        capture_buf_reset(d);
    }
}

/*
 * The replicator's rep_opts.xRecapture: capture on the files of its private
 * connection, which holds the WAL write lock.  Replicator thread.
 */
void
capture_recapture(void *ctx, sqlite3_file *db, sqlite3_file *wal)
{
    ls_db *d = ctx;
    /* Never wait for the mutex here: whoever holds it may be waiting for
     * this thread (stopping replication).  The replicator retries. */
    if (pthread_mutex_trylock(&d->mu) != 0)
        return;
    if (!d->rep) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    sqlite3_file *saved = d->walf;
    d->walf = wal;
    d->hold = 1;
    d->caught_up = 0;
    d->buf_ok = 0; /* nothing buffered: frames are re-read */
    capture(d, db);
    d->hold = 0;
    d->walf = saved;
    capture_buf_reset(d);
    pthread_mutex_unlock(&d->mu);
}

/* Invariant 4: before the WAL is overwritten or removed, nothing queued
 * may depend on it any more. */
void
capture_before_wal_reset(ls_db *d)
{
    if (d->rep && replicator_before_wal_reset(d->rep) != SQLITE_OK)
        sqlite3_log(SQLITE_WARNING,
                    "litestream: cannot persist the queue "
                    "of '%s' before a WAL reset",
                    d->zPath);
}

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

void
vfs_db_image_now(ls_db *d, sqlite3_file *f)
{
    int lock = 0;
    if (!vfs_is_litestream_file(f) || !d->rep ||
        !replicator_image_wanted(d->rep))
        return;
    /* Only the connection holding the exclusive lock may read the files
     * as they are without a write lock of its own. */
    if (REAL(f)->pMethods->xFileControl(REAL(f), SQLITE_FCNTL_LOCKSTATE,
                                        &lock) != SQLITE_OK ||
        lock != SQLITE_LOCK_EXCLUSIVE)
        return;
    pthread_mutex_lock(&d->mu);
    if (!d->hold) {
        d->hold = 1;
        d->hold_locked = 0;
        d->caught_up = 0;
        d->buf_ok = 0;
        capture(d, REAL(f));
        d->hold = 0;
        capture_buf_reset(d);
    }
    pthread_mutex_unlock(&d->mu);
}
