/*
 * vfs/capture.c: turning the WAL writes of a replicated database into
 * queued transactions (capture.h; the invariants are listed at the top of
 * vfs/replicate.c, the design in docs/architecture.md).
 *
 * The capture at unlock, in named steps:
 *   1. view_read        the WAL as of now (the wal-index header, or one
 *                       derived from the WAL in exclusive locking mode)
 *                       and where the last capture ended;
 *   2. view_unchanged   nothing new (a rollback, an empty transaction);
 *   3. queue_new_frames the frames after the position, one TXID per
 *                       commit: from this hold's copy (queued in place
 *                       when it is one transaction in the arena), by
 *                       reference for a big one, or re-read and validated
 *                       from the WAL; 0 when the position is lost;
 *   4. queue_full_image the position is lost: the next TXID is a full
 *                       image (read here when nobody else can);
 *   5. position_write   the new position, for the next capture.
 * No allocation, lock or system call on the common path (one transaction
 * in this hold's copy): the copy is queued where it is.
 *
 * Threads: application threads, holding the WAL write lock (or the
 * database in exclusive locking mode) and d->mu where noted in
 * capture.h; capture_recapture() on the replicator thread while its
 * private connection holds the write lock.
 */
#include "vfs/capture.h"
#include "vfs/walread.h"
#include "storage/base/mem.h"
#include "storage/base/killpoint.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads the wal-index header; 0 if there is no shared memory.  (Static
 * here, on the commit path: the compiler specializes it.) */
static int
shm_read(ls_db *d, sqlite3_file *real, shm_hdr *h)
{
    /* Never map it ourselves: a connection with a heap wal-index
     * (exclusive locking mode) would get a -shm file it never uses. */
    if (d->hold_shm)
        return wal_index_hdr_read(d->hold_shm, h);
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
    d->buf_ok = !d->zc; /* a zero-copy hold keeps no copy */
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
    if (!walread_wal_hdr(d, &wh) || wh.page_size != ps ||
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
                   .pos = walread_pos(h)};
    replicator_enqueue(d->rep, t);
    return base + 1;
}

/*
 * The zero-copy capture (docs/architecture.md 2.3): this hold's frames
 * lo..mxFrame, one TXID, queued as a reference to the WAL range; the
 * replicator merges it into its last reference when it continues it.
 * Returns the TXID, or 0 (the WAL header unreadable, out of memory).
 */
static uint64_t
enqueue_ref(ls_db *d, uint32_t lo, const shm_hdr *h, uint32_t ps,
            const ls_cap *cap, uint64_t base)
{
    rep_txn t = {.txid = base + 1,
                 .flags = REP_WALREF | (d->wal_synced ? REP_DURABLE : 0),
                 .page_size = ps,
                 .commit = h->n_page,
                 .nframes = h->mx_frame - lo + 1,
                 .wal_lo = lo,
                 .seed1 = cap->cksum1,
                 .seed2 = cap->cksum2,
                 .pos = walread_pos(h)};
    if (lo == 1) {
        wal_hdr wh; /* the WAL restarted: the chain starts at its header */
        if (!walread_wal_hdr(d, &wh) || wh.page_size != ps)
            return 0;
        t.seed1 = wh.cksum1;
        t.seed2 = wh.cksum2;
    }
    return replicator_enqueue_ref(d->rep, &t) ? base + 1 : 0;
}

static void
enqueue_full(ls_db *d, uint64_t txid, const shm_hdr *h)
{
    rep_txn *t = ls_malloc(sizeof(*t));
    if (!t)
        return; /* the position stays unmatched: next capture retries */
    *t = (rep_txn){.txid = txid, .flags = REP_FULL, .pos = walread_pos(h)};
    replicator_enqueue(d->rep, t);
    d->n_full++;
}

/* The TXID counter never goes back, even when the position was lost. */
static uint64_t
txid_base(ls_db *d, const ls_cap *cap, int valid)
{
    uint64_t t = valid ? cap->txid : 0;
    uint64_t a = sidecar_txid_above(d->sc);
    return a > t ? a : t;
}

/* ---- the capture at unlock, step by step ------------------------------- */

/* What a capture starts from: the WAL as of now and the last position. */
typedef struct capture_view {
    shm_hdr *h;  /* the wal-index header (or one derived from the WAL) */
    ls_cap *cap; /* the captured position, when valid */
    uint32_t ps; /* the page size (0: unknown) */
    int valid;
    uint64_t base;  /* the last TXID used (never goes back) */
    int same_salts; /* the position is in the current WAL */
} capture_view;

/* The page size per h, or per the database header when an empty WAL's
 * wal-index does not say (rare: only right after a crash or reset). */
static uint32_t
view_page_size(sqlite3_file *real, const shm_hdr *h)
{
    uint32_t ps = h->page_size == 1 ? 65536 : h->page_size;
    uint8_t dh[2];
    if (ps != 0 || real->pMethods->xRead(real, dh, 2, 16) != SQLITE_OK)
        return ps;
    ps = (uint32_t)dh[0] << 8 | dh[1];
    return ps == 1 ? 65536 : ps;
}

/*
 * Step 1: reads the WAL's state and the captured position into v.  0 when
 * there is no WAL to capture from.  (The position is in the sidecar's
 * memory-mapped page: no system call.)
 */
static int
view_read(ls_db *d, sqlite3_file *real, capture_view *v)
{
    if (!shm_read(d, real, v->h) && !walread_heap_hdr(d, v->h))
        return 0;
    if (d->wh_ok &&
        (d->wh.salt1 != v->h->salt[0] || d->wh.salt2 != v->h->salt[1]))
        d->wh_ok = 0; /* another process restarted the WAL */
    v->ps = view_page_size(real, v->h);
    v->valid = sidecar_cap_read(d->sc, v->cap);
    v->base = txid_base(d, v->cap, v->valid);
    v->same_salts = v->valid & (v->cap->salt1 == v->h->salt[0]) &
                    (v->cap->salt2 == v->h->salt[1]);
    return 1;
}

/*
 * Step 1, when there is neither a wal-index nor a WAL header: if the WAL
 * file is empty (a TRUNCATE checkpoint, or a crash right after one) while
 * the position still points into a WAL, the frames it names are gone and
 * the database file is all there is: v becomes an empty WAL's view, so the
 * steps below take a full image of the file.  0 otherwise.
 */
static int
view_empty_wal(ls_db *d, sqlite3_file *real, capture_view *v)
{
    sqlite3_int64 sz = -1;
    if (!d->walf || d->walf->pMethods == NULL ||
        d->walf->pMethods->xFileSize(d->walf, &sz) != SQLITE_OK || sz != 0 ||
        !sidecar_cap_read(d->sc, v->cap) || v->cap->frame == 0)
        return 0;
    memset(v->h, 0, sizeof(*v->h));
    v->ps = view_page_size(real, v->h);
    v->valid = 1;
    v->base = txid_base(d, v->cap, v->valid);
    v->same_salts = 0;
    return v->ps != 0;
}

/* Step 2: nothing new since the position (a rollback, an empty txn). */
static int
view_unchanged(const capture_view *v)
{
    return v->same_salts && v->cap->frame == v->h->mx_frame &&
           v->base == v->cap->txid;
}

/* Step 3a: frames lo..mxFrame are in this hold's copy: queue them in
 * place (one transaction in the arena) or copied out.  0 if that failed. */
static uint64_t
queue_from_buf(ls_db *d, uint32_t lo, const capture_view *v)
{
    uint32_t hi = v->h->mx_frame;
    uint64_t txid = enqueue_in_place(d, lo, hi, v->ps, v->base);
    if (txid)
        return txid;
    /* Several commits (or no arena): copy them out. */
    if (d->in_arena && !buf_to_heap(d, d->end - d->base))
        return 0;
    return enqueue_frames(d, d->buf + (wal_frame_offset(lo, v->ps) - d->base),
                          lo, hi - lo + 1, v->ps, v->base);
}

/* Step 3b: frames lo..mxFrame re-read from the WAL and validated from the
 * position's checksum.  0 if they do not validate. */
static uint64_t
queue_reread(ls_db *d, uint32_t lo, const capture_view *v)
{
    wal_hdr wh;
    uint64_t txid = 0;
    if (!walread_wal_hdr(d, &wh) || wh.page_size != v->ps)
        return 0;
    uint32_t s[2] = {v->cap->cksum1, v->cap->cksum2};
    if (lo == 1) {
        s[0] = wh.cksum1;
        s[1] = wh.cksum2;
    }
    uint8_t *fr = walread_frames(d, &wh, lo, v->h->mx_frame, s);
    if (fr)
        txid =
            enqueue_frames(d, fr, lo, v->h->mx_frame - lo + 1, v->ps, v->base);
    ls_free(fr);
    return txid;
}

/*
 * Step 3: the frames after the position, one TXID per commit.  Returns the
 * last TXID queued (v->base when there was nothing new), or 0 when the
 * position is lost; after running out of memory part way, v->base becomes
 * the last TXID queued and 0 is returned (a full image covers the rest).
 */
static uint64_t
queue_new_frames(ls_db *d, capture_view *v)
{
    uint64_t txid = 0;
    if (!v->valid || v->base != v->cap->txid ||
        !(v->same_salts || d->caught_up))
        return 0;
    uint32_t lo = v->same_salts ? v->cap->frame + 1 : 1;
    if (v->h->mx_frame < lo - 1)
        return 0; /* the WAL went backwards: lost frames */
    if (v->h->mx_frame == lo - 1)
        return v->base; /* a restart with nothing new */
    /* Too big to copy: by reference.  (Not in exclusive locking mode: the
     * replicator could never read the WAL behind the writer's lock.) */
    if (d->zc && d->caught_up && d->hold_locked)
        txid = enqueue_ref(d, lo, v->h, v->ps, v->cap, v->base);
    else if (d->buf_over && d->caught_up && d->hold_locked)
        txid = enqueue_walref(d, lo, v->h, v->ps, v->cap, v->base);
    if (txid == 0)
        txid = buf_covers(d, lo, v->h->mx_frame, v->ps)
                   ? queue_from_buf(d, lo, v)
                   : queue_reread(d, lo, v);
    if (d->enq_failed) {
        d->enq_failed = 0;
        if (txid > v->base)
            v->base = txid; /* those are queued; the rest: a full image */
        txid = 0;
    }
    return txid;
}

/*
 * Step 4: the position is lost; the next TXID is a full image.  Normally
 * the replicator reads it from a private read transaction; where none can
 * run (exclusive locking mode) or it failed already (the replicator's
 * capture_recapture), it is read here.  Returns its TXID.
 */
static uint64_t
queue_full_image(ls_db *d, sqlite3_file *real, const capture_view *v)
{
    uint64_t txid = v->base + 1;
    rep_txn *img = NULL;
    if (!d->hold_locked && v->ps)
        img = walread_image(d, real, v->h, v->ps, txid);
    if (img) {
        replicator_enqueue(d->rep, img);
        d->n_full++;
    } else {
        enqueue_full(d, txid, v->h);
    }
    return txid;
}

/* Step 5: the position after this capture, for the next one. */
static void
position_write(ls_db *d, const capture_view *v, uint64_t txid)
{
    ls_cap nc = {.flags = CAP_VALID,
                 .salt1 = v->h->salt[0],
                 .salt2 = v->h->salt[1],
                 .frame = v->h->mx_frame,
                 .cksum1 = v->h->frame_cksum[0],
                 .cksum2 = v->h->frame_cksum[1],
                 .page_size = v->ps,
                 .commit = v->h->n_page,
                 .txid = txid};
    sidecar_cap_write(d->sc, &nc);
}

#define CAPTURE_GENERAL UINT64_MAX

/*
 * The zero-copy capture's common case (docs/architecture.md 2.3): from the
 * position read when the hold began (the write lock kept it as it was) to
 * the WAL as of now, in the same WAL: one reference queued.  Returns the
 * TXID, 0 when there is nothing new, or CAPTURE_GENERAL when the general
 * capture must decide (a restart inside the hold, the TXID floor raised
 * meanwhile, out of memory): nothing was queued then.
 */
static uint64_t
capture_zc(ls_db *d, replicator *rep, sqlite3_file *real)
{
    shm_hdr h;
    const ls_cap *cap = &d->zc_cap;
    /* (The TXID counter was checked when the hold began: the position
     * cannot have moved since, the write lock is ours.) */
    if (!shm_read(d, real, &h) || h.salt[0] != cap->salt1 ||
        h.salt[1] != cap->salt2 || h.mx_frame < cap->frame || h.page_size == 0)
        return CAPTURE_GENERAL;
    if (h.mx_frame == cap->frame)
        return 0; /* a rollback, an empty transaction */
    if (cap->frame == 0)
        return CAPTURE_GENERAL; /* the position was taken in a restarted WAL
                                 * before its first frame: the wal-index's
                                 * checksum was still the old WAL's, the
                                 * seed is the new header's (enqueue_ref) */
    capture_view v = {.h = &h, .ps = h.page_size == 1 ? 65536 : h.page_size};
    rep_txn t; /* (field by field: what a reference leaves unused is not
                * zeroed at every commit; replicator_enqueue_ref reads the
                * fields set here, and NULLs next/frames/arena itself) */
    t.txid = cap->txid + 1;
    t.txid_max = 0;
    t.flags = REP_WALREF | (d->wal_synced ? REP_DURABLE : 0);
    t.page_size = v.ps;
    t.commit = h.n_page;
    t.nframes = h.mx_frame - cap->frame;
    t.wal_lo = cap->frame + 1;
    t.seed1 = cap->cksum1;
    t.seed2 = cap->cksum2;
    t.pos = walread_pos(&h);
    if (!replicator_enqueue_ref(rep, &t))
        return CAPTURE_GENERAL;
    position_write(d, &v, t.txid);
    KILLPOINT("capture-queued");
    return t.txid;
}

/*
 * The capture (invariant 3).  `real` is the main database file.  Runs with
 * the WAL write lock held, or in exclusive locking mode.
 */
static uint64_t
capture(ls_db *d, sqlite3_file *real)
{
    shm_hdr h;
    ls_cap cap;
    capture_view v = {.h = &h, .cap = &cap}; /* (scalars kept apart from
                                              * what the callees write) */
    uint64_t txid = 0;
    if (d->zc && d->rep && d->sc &&
        (txid = capture_zc(d, d->rep, real)) != CAPTURE_GENERAL)
        return txid;
    txid = 0;
    if (!d->rep || !d->sc ||
        (!view_read(d, real, &v) && !view_empty_wal(d, real, &v)))
        return 0;
    /* The uploader cannot read a full image itself (exclusive locking
     * mode): read it now, as part of this capture. */
    int force_image = !d->hold_locked && replicator_image_wanted(d->rep) &&
                      replicator_take_image_request(d->rep);
    if (!force_image && view_unchanged(&v))
        return 0;
    if (!force_image)
        txid = queue_new_frames(d, &v);
    if (txid == 0)
        txid = queue_full_image(d, real, &v);
    position_write(d, &v, txid);
    KILLPOINT("capture-queued");
    return txid;
}

/* Start of a write transaction: is the position current? */
void
capture_hold_begin(ls_db *d, sqlite3_file *real, int locked)
{
    shm_hdr h;
    ls_cap *cap = &d->zc_cap; /* (kept for capture_zc) */
    d->hold = 1;
    d->caught_up = 0;
    d->zc = 0;
    capture_buf_reset(d);
    if (!__atomic_load_n(&d->rep, __ATOMIC_ACQUIRE) ||
        !__atomic_load_n(&d->sc, __ATOMIC_ACQUIRE))
        return;
    int valid = sidecar_cap_read(d->sc, cap);
    if (!valid || txid_base(d, cap, valid) != cap->txid)
        return;
    if (locked && shm_read(d, real, &h)) {
        d->caught_up = (cap->salt1 == h.salt[0] && cap->salt2 == h.salt[1] &&
                        cap->frame == h.mx_frame) ||
                       ((cap->flags & CAP_RESET) && h.mx_frame == 0);
        /* Zero-copy: the replicator reads the frames (not in exclusive
         * locking mode, nor with another process that could restart the
         * WAL under the reference: rep_opts.pAlone). */
        if (d->caught_up && !(cap->flags & CAP_RESET) &&
            __atomic_load_n(&d->rep_alone, __ATOMIC_RELAXED)) {
            d->zc = 1;
            d->buf_ok = 0;
        }
    } else {
        /* Exclusive locking mode: this connection is the only writer, so
         * the WAL is current if its header is the one the position was
         * captured in.  (Not the wal-index: at a restart SQLite has put
         * the new salts there before the first write reaches us.) */
        wal_hdr wh;
        d->caught_up = (cap->flags & CAP_RESET) ||
                       (walread_wal_hdr(d, &wh) && wh.salt1 == cap->salt1 &&
                        wh.salt2 == cap->salt2);
    }
    if (d->caught_up && (cap->flags & CAP_RESET)) {
        /* The WAL was removed after a clean close.  Only trust that if the
         * database file is exactly as we left it. */
        struct stat st;
        if (stat(d->zPath, &st) != 0 || (uint64_t)st.st_ino != cap->db_ino ||
            st.st_size != cap->db_size ||
            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec !=
                cap->db_mtime_ns)
            d->caught_up = 0;
    }
}

uint64_t
capture_hold_end(ls_db *d, sqlite3_file *real)
{
    uint64_t txid = 0;
    if (d->hold) {
        txid = capture(d, real);
        d->hold = 0;
        d->hold_locked = 0;
        d->hold_shm = NULL;
        if (d->zc) {
            d->zc = 0; /* nothing was copied: the rest is as reset */
            d->buf_ok = 1;
            d->wal_synced = 0;
        } else {
            capture_buf_reset(d);
        }
    }
    return txid;
}

uint64_t
capture_hold_end_zc(ls_db *d, sqlite3_file *real)
{
    uint64_t txid = CAPTURE_GENERAL;
    /* Instead of d->mu: announce the capture, then load d->rep (detach()
     * in registry.c stores NULL, then waits while d->capturing). */
    __atomic_store_n(&d->capturing, 1, __ATOMIC_SEQ_CST);
    replicator *rep = __atomic_load_n(&d->rep, __ATOMIC_SEQ_CST);
    if (rep && d->sc)
        txid = capture_zc(d, rep, real);
    __atomic_store_n(&d->capturing, 0, __ATOMIC_RELEASE);
    if (txid == CAPTURE_GENERAL) {
        pthread_mutex_lock(&d->mu);
        txid = capture_hold_end(d, real);
        pthread_mutex_unlock(&d->mu);
        return txid;
    }
    d->hold = 0;
    d->hold_locked = 0;
    d->hold_shm = NULL;
    d->zc = 0; /* nothing was copied: the rest is as reset */
    d->buf_ok = 1;
    d->wal_synced = 0;
    return txid;
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
    d->hold_shm = NULL; /* its own mapping: asked for through db */
    d->caught_up = 0;
    d->buf_ok = 0; /* nothing buffered: frames are re-read */
    capture(d, db);
    d->hold = 0;
    d->walf = saved;
    capture_buf_reset(d);
    pthread_mutex_unlock(&d->mu);
}

void
capture_checkpoint_begins(ls_db *d)
{
    pthread_mutex_lock(&d->mu);
    if (d->rep)
        replicator_checkpoint_begins(d->rep);
    pthread_mutex_unlock(&d->mu);
}

/* Invariant 4: before the WAL is overwritten or removed, nothing queued
 * may depend on it any more. */
void
capture_before_wal_reset(ls_db *d)
{
    __atomic_store_n(&d->ckpt_hinted, 0, __ATOMIC_RELAXED);
    if (d->rep && replicator_before_wal_reset(d->rep) != SQLITE_OK)
        sqlite3_log(SQLITE_WARNING,
                    "litestream: cannot persist the queue "
                    "of '%s' before a WAL reset",
                    d->zPath);
}

void
capture_image_now(ls_db *d, sqlite3_file *real)
{
    pthread_mutex_lock(&d->mu);
    if (d->rep && replicator_image_wanted(d->rep) && !d->hold) {
        d->hold = 1;
        d->hold_locked = 0;
        d->caught_up = 0;
        d->buf_ok = 0;
        capture(d, real);
        d->hold = 0;
        capture_buf_reset(d);
    }
    pthread_mutex_unlock(&d->mu);
}
