/*
 * vfs/replicate.c: the `litestream` VFS, a shim over the default VFS that
 * captures every committed WAL transaction of a replicated database.
 *
 * How it is used: the extension registers it as the default VFS, so every
 * database opened afterwards goes through it.  Nothing changes for a
 * database until `PRAGMA litestream_url = 'URL'` (stored in the sidecar
 * `<db>-litestream/`, so replication resumes at every later open).
 *
 * Invariants (DESIGN.md section 4):
 *   1. Only main databases and their WALs are wrapped; every other file
 *      (journals, temp files, ...) is the underlying VFS's own object.
 *   2. While a connection holds the WAL write lock, xWrite on the WAL keeps a
 *      byte copy of what it writes (`buf`, WAL offsets [base, end)).
 *   3. The capture runs when the write lock is released (before forwarding
 *      the unlock) or, in exclusive locking mode, on
 *      SQLITE_FCNTL_COMMIT_PHASETWO: the frames between the captured
 *      position and the wal-index mxFrame become one TXID per commit.  If
 *      they are not all in `buf` they are re-read from the WAL and validated
 *      (salts + checksum chain); if the WAL no longer matches the position
 *      the next TXID is a full image.  No system call on the fast path.
 *   4. Before anything that overwrites or removes WAL content (a new WAL
 *      header, a truncation, deleting the WAL) nothing queued may still
 *      depend on it: transactions queued by reference (big ones) are
 *      spooled first.  Those queued as copies need no wait: a restart
 *      follows a complete checkpoint, so if the process died before they
 *      reach the spool the database file still holds their data and the
 *      uploader covers the missing TXIDs with one full image.
 *   5. No checkpoints of our own, no read transactions of our own here.
 *
 * Threads: VFS methods run on application threads under SQLite's locks; the
 * per-database state is shared by the connections of this process and
 * guarded by `mu` where two connections could meet.
 */
#include "storage/mem.h"
#include "storage/txarena.h"
#include "storage/replicator.h"
#include "storage/sidecar.h"
#include "storage/sqlite.h"
#include "storage/wal.h"
#include "vfs/vfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_WRITE_LOCK 0
#define SHM_HDR_SIZE 48
#define BUF_MAX (64u << 20) /* larger transactions are re-read from the WAL */
#define BUF_KEEP (4u << 20) /* buffers above this are freed after use */
#define ARENA_MIN (256u << 10) /* capture in the arena if this much is free */
#define CLOSE_GRACE_MS 2000 /* last close: wait this long for the upload */

typedef struct shm_hdr {
    uint32_t version, unused, change;
    uint8_t init, big_end_cksum;
    uint16_t page_size;
    uint32_t mx_frame, n_page;
    uint32_t frame_cksum[2];
    uint32_t salt[2];
    uint32_t cksum[2];
} shm_hdr;

typedef struct ls_db ls_db;
struct ls_db {
    ls_db *next;
    char *zPath;
    int nRef;
    pthread_mutex_t mu;
    sidecar *sc;
    replicator *rep;
    char *zError; /* why replication is not running, if it is not */

    /* Capture state (under the WAL write lock). */
    sqlite3_file *walf; /* the WAL file of the connection holding the
                         * write lock (set when its hold begins) */
    uint8_t *buf;   /* the copy: in the arena's free space or in heap */
    size_t cap;     /* capacity at buf */
    uint8_t *heap;  /* owned heap buffer */
    size_t heap_cap;
    int in_arena;   /* buf is a reservation in the current arena chunk */
    uint64_t base, end;
    int buf_ok;
    int buf_over;  /* buf_ok is 0 only because the transaction is big */
    int wal_synced; /* this hold synced the WAL (synchronous=FULL) */
    int hold;      /* a write lock (or exclusive-mode txn) is in progress */
    int hold_locked; /* ... that began at an xShmLock of the write lock */
    int shm_seen;  /* SQLite maps a shared wal-index for this database */
    int enq_failed; /* enqueue_frames ran out of memory part way */
    int rep_users;  /* SQL functions using rep (vfs_db_replicator) */
    pthread_cond_t rep_idle;
    void *hold_owner; /* the main file (connection) whose hold it is */
    wal_hdr wh;    /* the WAL header, when wh_ok */
    int wh_ok;
    int caught_up; /* at hold start the position matched the wal-index */
    uint64_t n_full;
    txchunk *arena; /* current chunk for queued transactions */
};

typedef struct ls_file {
    sqlite3_file base;
    ls_db *db;
    int is_wal;
    sqlite3 *conn;           /* main file: the owning connection, if known */
    struct ls_file *main;    /* WAL file: its main database file */
    struct ls_file *wal;     /* main file: its connection's WAL file */
} ls_file;

#define REAL(p) ((sqlite3_file *)(((ls_file *)(p)) + 1))
#define ORIG ((sqlite3_vfs *)litestream_vfs.pAppData)

static sqlite3_vfs litestream_vfs;
static sqlite3_io_methods main_methods;
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static ls_db *registry;

/* ---- per-database state ------------------------------------------------ */

static ls_db *
db_acquire(const char *zPath)
{
    ls_db *d;
    pthread_mutex_lock(&registry_mu);
    for (d = registry; d; d = d->next)
        if (strcmp(d->zPath, zPath) == 0)
            break;
    if (d) {
        d->nRef++;
    } else if ((d = sqlite3_malloc64(sizeof(*d))) != NULL) {
        memset(d, 0, sizeof(*d));
        d->zPath = sqlite3_mprintf("%s", zPath);
        if (!d->zPath) {
            sqlite3_free(d);
            d = NULL;
        } else {
            pthread_mutex_init(&d->mu, NULL);
            pthread_cond_init(&d->rep_idle, NULL);
            d->nRef = 1;
            d->next = registry;
            registry = d;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    return d;
}

/* Stops replication; grace_ms as replicator_close().  Caller holds mu
 * (or is the last reference). */
static void
db_stop(ls_db *d, int grace_ms)
{
    replicator_close(d->rep, grace_ms);
    d->rep = NULL;
}

static void
db_release(ls_db *d)
{
    pthread_mutex_lock(&registry_mu);
    if (--d->nRef > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (ls_db **pp = &registry; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    db_stop(d, CLOSE_GRACE_MS);
    txarena_retire(&d->arena);
    sidecar_close(d->sc);
    ls_free(d->heap);
    sqlite3_free(d->zError);
    sqlite3_free(d->zPath);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->rep_idle);
    sqlite3_free(d);
}

static void
db_set_error(ls_db *d, char *z)
{
    sqlite3_free(d->zError);
    d->zError = z;
    if (z)
        sqlite3_log(SQLITE_WARNING, "%s", z);
}

static void recapture(void *ctx, sqlite3_file *db, sqlite3_file *wal);

/* Starts replication of d as c says.  Caller holds d->mu. */
static int
db_start(ls_db *d, const ls_config *c, char **pzErr)
{
    int rc = SQLITE_OK;
    rep_opts o = {.sync_interval_ms = c->sync_ms,
                  .spool_limit = c->spool_limit,
                  .zVfs = ORIG->zName,
                  .xRecapture = recapture,
                  .pRecaptureCtx = d};
    if (!d->sc) {
        rc = sidecar_open(d->zPath, &d->sc, pzErr);
        if (rc != SQLITE_OK)
            return rc;
    }
    return replicator_open(d->zPath, c->zUrl, &o, d->sc, &d->rep, pzErr);
}

/* ---- capture ----------------------------------------------------------- */

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
    memcpy(h, (const void *)p, sizeof(*h));
    /* SQLite copies the salts into the wal-index as raw (big-endian) bytes;
     * everything else there is native. */
    h->salt[0] = wal_get32((const uint8_t *)&h->salt[0]);
    h->salt[1] = wal_get32((const uint8_t *)&h->salt[1]);
    return h->init != 0;
}

static void
buf_reset(ls_db *d)
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
static void
buf_write(ls_db *d, const void *p, int n, sqlite3_int64 off)
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
wal_reread(ls_db *d, const wal_hdr *wh, uint32_t lo, uint32_t hi,
           uint32_t s[2])
{
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)wh->page_size;
    uint8_t *b = ls_malloc((uint64_t)fsz * (hi - lo + 1));
    if (!b || !d->walf)
        goto fail;
    for (uint32_t i = lo; i <= hi; i++) {
        uint8_t *f = b + (size_t)(i - lo) * fsz;
        if (d->walf->pMethods->xRead(
                d->walf, f, (int)fsz,
                (sqlite3_int64)wal_frame_offset(i, wh->page_size)) !=
                SQLITE_OK ||
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
             d->walf->pMethods->xRead(d->walf, h, WAL_HDR_SIZE, 0) ==
                 SQLITE_OK)
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

/*
 * The common case: this hold's copy, in the arena, holds frames lo..hi of
 * exactly one transaction (only frame hi commits).  Queue it where it is.
 * Returns the TXID, or 0 if the case does not apply.
 */
static uint64_t
enqueue_in_place(ls_db *d, uint32_t lo, uint32_t hi, uint32_t ps,
                 uint64_t base)
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
                   .pos = {.salt1 = h->salt[0],
                           .salt2 = h->salt[1],
                           .frame = h->mx_frame,
                           .cksum1 = h->frame_cksum[0],
                           .cksum2 = h->frame_cksum[1]}};
    replicator_enqueue(d->rep, t);
    return base + 1;
}

static void
enqueue_full(ls_db *d, uint64_t txid, const shm_hdr *h)
{
    rep_txn *t = ls_malloc(sizeof(*t));
    if (!t)
        return; /* the position stays unmatched: next capture retries */
    *t = (rep_txn){.txid = txid,
                   .flags = REP_FULL,
                   .pos = {.salt1 = h->salt[0],
                           .salt2 = h->salt[1],
                           .frame = h->mx_frame,
                           .cksum1 = h->frame_cksum[0],
                           .cksum2 = h->frame_cksum[1]}};
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
            wal_get32(fh + 8) != h->salt[0] ||
            wal_get32(fh + 12) != h->salt[1])
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
                   .pos = {.salt1 = h->salt[0],
                           .salt2 = h->salt[1],
                           .frame = h->mx_frame,
                           .cksum1 = h->frame_cksum[0],
                           .cksum2 = h->frame_cksum[1]}};
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
    int buf_all = d->buf_ok && d->end > d->base &&
                  d->base <= wal_frame_offset(i, ps);
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
                if (d->in_arena &&
                    !buf_to_heap(d, d->end - d->base)) {
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
                txid = enqueue_frames(d, fr, lo, h.mx_frame - lo + 1, ps,
                                      base);
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
         * replicator's recapture), it is read here. */
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
static void
hold_begin(ls_db *d, sqlite3_file *real, int locked)
{
    shm_hdr h;
    ls_cap cap;
    d->hold = 1;
    d->caught_up = 0;
    buf_reset(d);
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

static void
hold_end(ls_db *d, sqlite3_file *real)
{
    if (d->hold) {
        capture(d, real);
        d->hold = 0;
        d->hold_locked = 0;
        buf_reset(d);
    }
}

/*
 * The replicator's rep_opts.xRecapture: capture on the files of its private
 * connection, which holds the WAL write lock.  Replicator thread.
 */
static void
recapture(void *ctx, sqlite3_file *db, sqlite3_file *wal)
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
    buf_reset(d);
    pthread_mutex_unlock(&d->mu);
}

/* Invariant 4: before the WAL is overwritten or removed, nothing queued
 * may depend on it any more. */
static void
before_wal_reset(ls_db *d)
{
    if (d->rep && replicator_before_wal_reset(d->rep) != SQLITE_OK)
        sqlite3_log(SQLITE_WARNING, "litestream: cannot persist the queue "
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
static int
wal_ends_at_cap(ls_db *d, const char *zWal)
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
static void
after_wal_delete(ls_db *d)
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

/* ---- io methods: main database ----------------------------------------- */

static int
m_close(sqlite3_file *pFile)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->main && p->main->wal == p)
        p->main->wal = NULL;
    if (p->is_wal && p->db) {
        pthread_mutex_lock(&p->db->mu);
        if (p->db->walf == REAL(pFile))
            p->db->walf = NULL;
        pthread_mutex_unlock(&p->db->mu);
    }
    int rc = REAL(pFile)->pMethods->xClose(REAL(pFile));
    if (p->db)
        db_release(p->db);
    return rc;
}

static int
m_read(sqlite3_file *pFile, void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    return REAL(pFile)->pMethods->xRead(REAL(pFile), zBuf, iAmt, iOfst);
}

static int
m_write(sqlite3_file *pFile, const void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->db && p->db->rep) {
        ls_db *d = p->db;
        /* No mutex here (twice per frame): only the connection holding the
         * WAL write lock writes the WAL, and the capture state is that
         * connection's until it releases the lock. */
        if (!d->hold && p->main) { /* exclusive locking mode: no xShmLock */
            pthread_mutex_lock(&d->mu);
            hold_begin(d, REAL(p->main), 0);
            d->hold_owner = p->main;
            pthread_mutex_unlock(&d->mu);
        }
        d->walf = REAL(pFile);
        if (iOfst == 0) {
            /* A new WAL header: frames are about to be overwritten. */
            pthread_mutex_lock(&d->mu);
            before_wal_reset(d);
            pthread_mutex_unlock(&d->mu);
            buf_reset(d);
            d->wh_ok = 0;
        }
        buf_write(d, zBuf, iAmt, iOfst);
    }
    return REAL(pFile)->pMethods->xWrite(REAL(pFile), zBuf, iAmt, iOfst);
}

static int
m_truncate(sqlite3_file *pFile, sqlite3_int64 size)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->db && p->db->rep) {
        pthread_mutex_lock(&p->db->mu);
        before_wal_reset(p->db);
        pthread_mutex_unlock(&p->db->mu);
        p->db->wh_ok = 0;
    }
    return REAL(pFile)->pMethods->xTruncate(REAL(pFile), size);
}

static int
m_sync(sqlite3_file *pFile, int flags)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->db && p->db->hold)
        p->db->wal_synced = 1; /* a plain store: the writer holds the lock */
    return REAL(pFile)->pMethods->xSync(REAL(pFile), flags);
}

static int
m_file_size(sqlite3_file *pFile, sqlite3_int64 *pSize)
{
    return REAL(pFile)->pMethods->xFileSize(REAL(pFile), pSize);
}

static int
m_lock(sqlite3_file *pFile, int eLock)
{
    return REAL(pFile)->pMethods->xLock(REAL(pFile), eLock);
}

static int
m_unlock(sqlite3_file *pFile, int eLock)
{
    return REAL(pFile)->pMethods->xUnlock(REAL(pFile), eLock);
}

static int
m_check_reserved(sqlite3_file *pFile, int *pResOut)
{
    return REAL(pFile)->pMethods->xCheckReservedLock(REAL(pFile), pResOut);
}

static int
m_file_control(sqlite3_file *pFile, int op, void *pArg)
{
    ls_file *p = (ls_file *)pFile;
    if (!p->is_wal && p->db) {
        if (op == SQLITE_FCNTL_PRAGMA) {
            int rc = vfs_pragma(p->db, p->conn, REAL(pFile), (char **)pArg);
            if (rc != SQLITE_NOTFOUND)
                return rc;
        } else if (op == SQLITE_FCNTL_COMMIT_PHASETWO && p->db->hold) {
            /* Exclusive locking mode: no xShmLock, capture here; only the
             * connection's own hold (another may hold the lock by now). */
            pthread_mutex_lock(&p->db->mu);
            if (p->db->hold && !p->db->hold_locked &&
                p->db->hold_owner == p)
                hold_end(p->db, REAL(pFile));
            pthread_mutex_unlock(&p->db->mu);
        }
    }
    return REAL(pFile)->pMethods->xFileControl(REAL(pFile), op, pArg);
}

static int
m_sector_size(sqlite3_file *pFile)
{
    return REAL(pFile)->pMethods->xSectorSize(REAL(pFile));
}

static int
m_device_characteristics(sqlite3_file *pFile)
{
    return REAL(pFile)->pMethods->xDeviceCharacteristics(REAL(pFile));
}

static int
m_shm_map(sqlite3_file *pFile, int iPg, int pgsz, int bExtend,
          void volatile **pp)
{
    ls_file *p = (ls_file *)pFile;
    if (p->db && !p->db->shm_seen)
        p->db->shm_seen = 1;
    return REAL(pFile)->pMethods->xShmMap(REAL(pFile), iPg, pgsz, bExtend,
                                          pp);
}

static int
m_shm_lock(sqlite3_file *pFile, int offset, int n, int flags)
{
    ls_file *p = (ls_file *)pFile;
    ls_db *d = p->db;
    int covers_write = offset <= WAL_WRITE_LOCK && offset + n > WAL_WRITE_LOCK;
    int excl = (flags & SQLITE_SHM_EXCLUSIVE) != 0;
    int rc;
    if (d && d->rep && covers_write && excl && (flags & SQLITE_SHM_UNLOCK)) {
        pthread_mutex_lock(&d->mu);
        hold_end(d, REAL(pFile));
        pthread_mutex_unlock(&d->mu);
    }
    rc = REAL(pFile)->pMethods->xShmLock(REAL(pFile), offset, n, flags);
    if (rc == SQLITE_OK && d && d->rep && covers_write && excl &&
        (flags & SQLITE_SHM_LOCK)) {
        pthread_mutex_lock(&d->mu);
        if (p->wal)
            d->walf = REAL(p->wal); /* the holder's own WAL handle */
        hold_begin(d, REAL(pFile), 1);
        d->hold_owner = p;
        d->hold_locked = 1;
        pthread_mutex_unlock(&d->mu);
    }
    return rc;
}

static void
m_shm_barrier(sqlite3_file *pFile)
{
    REAL(pFile)->pMethods->xShmBarrier(REAL(pFile));
}

static int
m_shm_unmap(sqlite3_file *pFile, int deleteFlag)
{
    return REAL(pFile)->pMethods->xShmUnmap(REAL(pFile), deleteFlag);
}

static int
m_fetch(sqlite3_file *pFile, sqlite3_int64 iOfst, int iAmt, void **pp)
{
    return REAL(pFile)->pMethods->xFetch(REAL(pFile), iOfst, iAmt, pp);
}

static int
m_unfetch(sqlite3_file *pFile, sqlite3_int64 iOfst, void *pPage)
{
    return REAL(pFile)->pMethods->xUnfetch(REAL(pFile), iOfst, pPage);
}

static sqlite3_io_methods main_methods = {
    .iVersion = 3,
    .xClose = m_close,
    .xRead = m_read,
    .xWrite = m_write,
    .xTruncate = m_truncate,
    .xSync = m_sync,
    .xFileSize = m_file_size,
    .xLock = m_lock,
    .xUnlock = m_unlock,
    .xCheckReservedLock = m_check_reserved,
    .xFileControl = m_file_control,
    .xSectorSize = m_sector_size,
    .xDeviceCharacteristics = m_device_characteristics,
    .xShmMap = m_shm_map,
    .xShmLock = m_shm_lock,
    .xShmBarrier = m_shm_barrier,
    .xShmUnmap = m_shm_unmap,
    .xFetch = m_fetch,
    .xUnfetch = m_unfetch,
};

/* ---- VFS methods ------------------------------------------------------- */

static int
v_open(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *pFile, int flags,
       int *pOutFlags)
{
    ls_file *p = (ls_file *)pFile;
    int rc;
    int is_main = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    int is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    if ((!is_main && !is_wal) || !zName)
        return ORIG->xOpen(ORIG, zName, pFile, flags, pOutFlags);
    memset(p, 0, sizeof(*p));
    rc = ORIG->xOpen(ORIG, zName, REAL(pFile), flags, pOutFlags);
    if (rc != SQLITE_OK)
        return rc;
    p->is_wal = is_wal;
    if (is_main) {
        p->db = db_acquire(zName);
        if (p->db && !p->db->rep && sidecar_exists(zName)) {
            /* Replication configured earlier resumes. */
            ls_config c;
            char *zErr = NULL;
            sidecar_config_read(zName, &c);
            pthread_mutex_lock(&p->db->mu);
            if (c.zUrl && !p->db->rep &&
                db_start(p->db, &c, &zErr) != SQLITE_OK)
                db_set_error(p->db, zErr);
            pthread_mutex_unlock(&p->db->mu);
            sqlite3_free(c.zUrl);
        }
    } else {
        sqlite3_file *m = sqlite3_database_file_object(zName);
        if (m && m->pMethods == &main_methods) {
            ls_file *mf = (ls_file *)m;
            p->main = mf;
            mf->wal = p;
            if (mf->db) {
                pthread_mutex_lock(&registry_mu);
                mf->db->nRef++;
                pthread_mutex_unlock(&registry_mu);
                p->db = mf->db;
                if (!p->db->walf)
                    p->db->walf = REAL(pFile);
            }
        }
    }
    pFile->pMethods = &main_methods;
    return SQLITE_OK;
}

static int
v_delete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    size_t n = strlen(zName);
    ls_db *d = NULL;
    if (n > 4 && strcmp(zName + n - 4, "-wal") == 0) {
        pthread_mutex_lock(&registry_mu);
        for (d = registry; d; d = d->next)
            if (strlen(d->zPath) == n - 4 &&
                memcmp(d->zPath, zName, n - 4) == 0)
                break;
        pthread_mutex_unlock(&registry_mu);
    }
    int clean = 0;
    if (d && d->rep) {
        pthread_mutex_lock(&d->mu);
        before_wal_reset(d);
        d->wh_ok = 0;
        clean = wal_ends_at_cap(d, zName);
        pthread_mutex_unlock(&d->mu);
    }
    int rc = ORIG->xDelete(ORIG, zName, syncDir);
    if (d && d->rep && rc == SQLITE_OK && clean)
        after_wal_delete(d);
    return rc;
}

static int
v_access(sqlite3_vfs *pVfs, const char *zName, int flags, int *pResOut)
{
    return ORIG->xAccess(ORIG, zName, flags, pResOut);
}

static int
v_full_pathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    return ORIG->xFullPathname(ORIG, zName, nOut, zOut);
}

static void *
v_dlopen(sqlite3_vfs *pVfs, const char *zPath)
{
    return ORIG->xDlOpen(ORIG, zPath);
}

static void
v_dlerror(sqlite3_vfs *pVfs, int nByte, char *zErrMsg)
{
    ORIG->xDlError(ORIG, nByte, zErrMsg);
}

static void (*v_dlsym(sqlite3_vfs *pVfs, void *p, const char *zSym))(void)
{
    return ORIG->xDlSym(ORIG, p, zSym);
}

static void
v_dlclose(sqlite3_vfs *pVfs, void *pHandle)
{
    ORIG->xDlClose(ORIG, pHandle);
}

static int
v_randomness(sqlite3_vfs *pVfs, int nByte, char *zOut)
{
    return ORIG->xRandomness(ORIG, nByte, zOut);
}

static int
v_sleep(sqlite3_vfs *pVfs, int micro)
{
    return ORIG->xSleep(ORIG, micro);
}

static int
v_current_time(sqlite3_vfs *pVfs, double *p)
{
    return ORIG->xCurrentTime(ORIG, p);
}

static int
v_get_last_error(sqlite3_vfs *pVfs, int n, char *z)
{
    return ORIG->xGetLastError ? ORIG->xGetLastError(ORIG, n, z) : 0;
}

static int
v_current_time_int64(sqlite3_vfs *pVfs, sqlite3_int64 *p)
{
    return ORIG->xCurrentTimeInt64(ORIG, p);
}

static int
v_set_system_call(sqlite3_vfs *pVfs, const char *zName,
                  sqlite3_syscall_ptr pCall)
{
    return ORIG->xSetSystemCall(ORIG, zName, pCall);
}

static sqlite3_syscall_ptr
v_get_system_call(sqlite3_vfs *pVfs, const char *zName)
{
    return ORIG->xGetSystemCall(ORIG, zName);
}

static const char *
v_next_system_call(sqlite3_vfs *pVfs, const char *zName)
{
    return ORIG->xNextSystemCall(ORIG, zName);
}

static sqlite3_vfs litestream_vfs = {
    .iVersion = 3,
    .zName = "litestream",
    .xOpen = v_open,
    .xDelete = v_delete,
    .xAccess = v_access,
    .xFullPathname = v_full_pathname,
    .xDlOpen = v_dlopen,
    .xDlError = v_dlerror,
    .xDlSym = v_dlsym,
    .xDlClose = v_dlclose,
    .xRandomness = v_randomness,
    .xSleep = v_sleep,
    .xCurrentTime = v_current_time,
    .xGetLastError = v_get_last_error,
    .xCurrentTimeInt64 = v_current_time_int64,
    .xSetSystemCall = v_set_system_call,
    .xGetSystemCall = v_get_system_call,
    .xNextSystemCall = v_next_system_call,
};

/*
 * fork(): every mutex is taken around it, so the child's copies are
 * consistent; in the child the replicators are dropped (their threads do
 * not exist there; their memory is abandoned) and a later open of the
 * database starts a fresh one.  SQLite itself forbids carrying a
 * connection across fork, so the child's own connections are new ones.
 */
static void
atfork_prepare(void)
{
    pthread_mutex_lock(&registry_mu);
    for (ls_db *d = registry; d; d = d->next)
        pthread_mutex_lock(&d->mu);
}

static void
atfork_parent(void)
{
    for (ls_db *d = registry; d; d = d->next)
        pthread_mutex_unlock(&d->mu);
    pthread_mutex_unlock(&registry_mu);
}

static void
atfork_child(void)
{
    for (ls_db *d = registry; d; d = d->next) {
        d->rep = NULL;
        d->hold = 0;
        d->arena = NULL;
        if (d->sc)
            sidecar_after_fork(d->sc);
        pthread_mutex_unlock(&d->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

int
vfs_replicate_register(void)
{
    sqlite3_vfs *orig = sqlite3_vfs_find(NULL);
    if (!orig)
        return SQLITE_ERROR;
    if (orig == &litestream_vfs)
        return SQLITE_OK;
    litestream_vfs.iVersion = orig->iVersion < 3 ? orig->iVersion : 3;
    litestream_vfs.szOsFile = (int)sizeof(ls_file) + orig->szOsFile;
    litestream_vfs.mxPathname = orig->mxPathname;
    litestream_vfs.pAppData = orig;
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    main_methods.iVersion = 3;
    return sqlite3_vfs_register(&litestream_vfs, 1);
}

int
vfs_is_litestream_file(sqlite3_file *f)
{
    return f && f->pMethods == &main_methods && !((ls_file *)f)->is_wal;
}

void
vfs_set_connection(sqlite3_file *f, sqlite3 *conn)
{
    if (vfs_is_litestream_file(f))
        ((ls_file *)f)->conn = conn;
}

/* ---- the replication PRAGMAs and status, for vfs/pragma.c and sql/ ----- */

ls_db *
vfs_db_of_file(sqlite3_file *f)
{
    return vfs_is_litestream_file(f) ? ((ls_file *)f)->db : NULL;
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
        buf_reset(d);
    }
    pthread_mutex_unlock(&d->mu);
}

int
vfs_db_configure(ls_db *d, const ls_config *c, char **pzErr)
{
    int rc = SQLITE_OK;
    replicator *old = NULL;
    int start = c->zUrl && c->zUrl[0];

    pthread_mutex_lock(&d->mu);
    if (start && d->rep && replicator_has_url(d->rep, c->zUrl)) {
        /* Already replicating there (e.g. the URL set again at every
         * start of the application): nothing to restart. */
        replicator_set_interval(d->rep, c->sync_ms);
        replicator_set_spool_limit(d->rep, c->spool_limit);
        rc = sidecar_config_write(d->sc, c, pzErr);
        pthread_mutex_unlock(&d->mu);
        return rc;
    }
    old = d->rep; /* detached here, closed below without the mutex: its */
    d->rep = NULL; /* thread may need the mutex to finish (recapture) */
    while (old && d->rep_users > 0) /* an SQL function still uses it */
        pthread_cond_wait(&d->rep_idle, &d->mu);
    pthread_mutex_unlock(&d->mu);
    replicator_close(old, 0);

    pthread_mutex_lock(&d->mu);
    if (!start) {
        if (!d->sc)
            rc = sidecar_open(d->zPath, &d->sc, pzErr);
        if (rc == SQLITE_OK)
            rc = sidecar_config_write(d->sc, c, pzErr);
    } else if (!d->rep) {
        rc = db_start(d, c, pzErr);
        if (rc == SQLITE_OK)
            rc = sidecar_config_write(d->sc, c, pzErr);
        if (rc != SQLITE_OK) {
            old = d->rep;
            d->rep = NULL;
        }
    }
    if (rc == SQLITE_OK)
        db_set_error(d, NULL);
    pthread_mutex_unlock(&d->mu);
    if (rc != SQLITE_OK)
        replicator_close(old, 0);
    return rc;
}

replicator *
vfs_db_replicator(ls_db *d)
{
    pthread_mutex_lock(&d->mu);
    replicator *r = d->rep;
    if (r)
        d->rep_users++;
    pthread_mutex_unlock(&d->mu);
    return r;
}

void
vfs_db_replicator_done(ls_db *d, replicator *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&d->mu);
    if (--d->rep_users == 0)
        pthread_cond_broadcast(&d->rep_idle);
    pthread_mutex_unlock(&d->mu);
}

sidecar *
vfs_db_sidecar(ls_db *d)
{
    return d->sc;
}

const char *
vfs_db_path(ls_db *d)
{
    return d->zPath;
}

const char *
vfs_db_error(ls_db *d)
{
    return d->zError;
}

uint64_t
vfs_db_full_images(ls_db *d)
{
    return d->n_full;
}
