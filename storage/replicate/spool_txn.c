/*
 * storage/replicate/spool_txn.c: turning a captured transaction into one
 * spool record (spool_txn.h): the newest copy of each page,
 * straight from the queued WAL frames, or streamed from the WAL for a
 * transaction queued by reference.
 *
 * Replicator thread only (and the application thread during
 * replicator_close(), after the thread has stopped).
 */
#include "storage/replicate/spool_txn.h"

#include "storage/base/mem.h"
#include "storage/local/image.h"
#include "storage/local/wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pg_ref {
    uint32_t pgno;
    uint32_t idx; /* frame index (later copies win) */
} pg_ref;

static int
pg_ref_cmp(const void *a, const void *b)
{
    const pg_ref *x = a, *y = b;
    if (x->pgno != y->pgno)
        return x->pgno < y->pgno ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reading a REP_WALREF transaction from the WAL, for spool_append_pages. */
typedef struct walref_rd {
    pin p;
    uint32_t ps;
    const uint32_t *frame_of; /* per output page: its WAL frame */
    uint8_t *page;
} walref_rd;

static int
walref_page(void *ctx, uint32_t i, const uint8_t **page)
{
    walref_rd *w = ctx;
    int rc = w->p.walf->pMethods->xRead(
        w->p.walf, w->page, (int)w->ps,
        (sqlite3_int64)(wal_frame_offset(w->frame_of[i], w->ps) +
                        WAL_FRAME_HDR_SIZE));
    *page = w->page;
    return rc;
}

/*
 * The validating pass over a REP_WALREF transaction's frames wal_lo ..
 * pos.frame: the WAL header must still carry its salts (*wh receives it),
 * the checksum chain must run from the seed to pos's checksum.  last[pg]
 * receives each page's newest frame (pages <= commit), *n their number.
 * 1 if valid, 0 if not, -1 out of memory.
 */
static int
walref_scan(walref_rd *w, const rep_txn *t, wal_hdr *wh, uint32_t *last,
            uint32_t *n)
{
    uint8_t whb[WAL_HDR_SIZE];
    const uint32_t CH = 256;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)t->page_size;
    uint8_t *chunk = ls_malloc(fsz * CH);
    if (!chunk)
        return -1;
    int valid = w->p.walf->pMethods->xRead(w->p.walf, whb, WAL_HDR_SIZE, 0) ==
                    SQLITE_OK &&
                wal_hdr_parse(whb, wh) && wh->salt1 == t->pos.salt1 &&
                wh->salt2 == t->pos.salt2 && wh->page_size == t->page_size;
    uint32_t s[2] = {t->seed1, t->seed2};
    for (uint32_t f = t->wal_lo; valid && f <= t->pos.frame; f += CH) {
        uint32_t k = t->pos.frame - f + 1 < CH ? t->pos.frame - f + 1 : CH;
        if (w->p.walf->pMethods->xRead(w->p.walf, chunk, (int)(k * fsz),
                                       (sqlite3_int64)wal_frame_offset(
                                           f, t->page_size)) != SQLITE_OK) {
            valid = 0;
            break;
        }
        for (uint32_t j = 0; j < k && valid; j++) {
            const uint8_t *fr = chunk + j * fsz;
            valid = wal_frame_valid(wh, fr, s);
            uint32_t pg = wal_get32(fr);
            if (valid && pg <= t->commit) {
                if (!last[pg])
                    (*n)++;
                last[pg] = f + j;
            }
        }
    }
    ls_free(chunk);
    return valid && s[0] == t->pos.cksum1 && s[1] == t->pos.cksum2;
}

/*
 * Spools a transaction the capture queued by reference (REP_WALREF): one
 * validating pass over its frames in the WAL (salts, checksum chain from
 * the seed) to find each page's newest copy, then the pages streamed into
 * the spool, so memory stays small whatever the transaction's size.  If
 * the WAL no longer holds it, a full-image marker takes its TXID.
 */
static int
spool_walref(replicator *r, const rep_txn *t, int do_sync, char **pzErr)
{
    int rc;
    walref_rd w = {.ps = t->page_size};
    wal_hdr wh;
    uint32_t *last = NULL, *pgnos = NULL, *frames = NULL, n = 0;
    spool_txn st = {.txid = t->txid,
                    .page_size = t->page_size,
                    .commit = t->commit,
                    .pos = t->pos};

    rc = pin_open(r->zDbPath, r->zVfs, &w.p, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    last = ls_malloc(((uint64_t)t->commit + 1) * 4);
    w.page = ls_malloc(t->page_size);
    if (!last || !w.page) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(last, 0, ((size_t)t->commit + 1) * 4);
    int valid = walref_scan(&w, t, &wh, last, &n);
    if (valid < 0) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (!valid) {
        /* Gone from the WAL (it cannot be, short of a foreign writer):
         * cover this TXID with a full image instead. */
        st.flags = SPOOL_F_FULL;
        rc = spool_append(r->sp, &st, do_sync, pzErr);
        goto out;
    }
    pgnos = ls_malloc((uint64_t)n * 4 + 4);
    frames = ls_malloc((uint64_t)n * 4 + 4);
    if (!pgnos || !frames) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    n = 0;
    for (uint32_t pg = 1; pg <= t->commit; pg++)
        if (last[pg]) {
            pgnos[n] = pg;
            frames[n++] = last[pg];
        }
    st.npages = n;
    st.pgnos = pgnos;
    w.frame_of = frames;
    sqlite3_log(SQLITE_NOTICE,
                "litestream: spooling TXID %llu from the WAL "
                "(frames %u-%u, %u pages)",
                (unsigned long long)t->txid, t->wal_lo, t->pos.frame, n);
    /* The pages are read while only a read transaction pins the WAL, which
     * does not stop a restart on read lock 0: check the header is still
     * the one validated, else the spooled pages may be newer frames. */
    rc = spool_append_pages(r->sp, &st, walref_page, &w, 0, pzErr);
    if (rc == SQLITE_OK) {
        uint8_t hb2[WAL_HDR_SIZE];
        wal_hdr wh2;
        if (w.p.walf->pMethods->xRead(w.p.walf, hb2, WAL_HDR_SIZE, 0) !=
                SQLITE_OK ||
            !wal_hdr_parse(hb2, &wh2) || wh2.salt1 != wh.salt1 ||
            wh2.salt2 != wh.salt2) {
            /* Supersede the record just written: same TXID, full-image
             * marker (a marker wins over a record in the spool index). */
            spool_txn mk = {.txid = t->txid, .flags = SPOOL_F_FULL};
            rc = spool_append(r->sp, &mk, do_sync, pzErr);
        } else if (do_sync) {
            rc = spool_sync(r->sp);
        }
    }
out:
    pin_close(&w.p);
    ls_free(last);
    ls_free(w.page);
    ls_free(pgnos);
    ls_free(frames);
    return rc;
}

/* The pages of captured transactions, straight from their WAL frames. */
static int
frames_page(void *ctx, uint32_t i, const uint8_t **page)
{
    const uint8_t **out = ctx;
    *page = out[i] + WAL_FRAME_HDR_SIZE;
    return SQLITE_OK;
}

/* Room for nframes in the scratch arrays (kept between passes: this runs
 * thousands of times a second).  0 when out of memory. */
static int
scratch_reserve(replicator *r, uint64_t nframes)
{
    if (nframes + 1 <= r->scratch_cap)
        return 1;
    uint64_t nc = nframes + 64;
    pg_ref *refs = ls_realloc(r->scratch_refs, sizeof(*refs) * nc);
    if (refs)
        r->scratch_refs = refs;
    uint32_t *u = refs ? ls_realloc(r->scratch_u32, 8 * nc) : NULL;
    if (u)
        r->scratch_u32 = u;
    const uint8_t **ptrs =
        u ? ls_realloc((void *)r->scratch_ptrs, 2 * sizeof(*ptrs) * nc) : NULL;
    if (!ptrs)
        return 0;
    r->scratch_ptrs = ptrs;
    r->scratch_cap = nc;
    return 1;
}

/*
 * The record of the n transactions from `first` on (linked by next, their
 * TXIDs consecutive, all copies of plain commits, one page size; or one
 * image the capture read, with its flags): the
 * newest copy of each page as of the last, pages beyond its commit
 * dropped.  One record for a spooling pass instead of one per commit: a
 * page rewritten by many small transactions is written once.
 */
static int
spool_copies(replicator *r, const rep_txn *first, uint32_t n, uint32_t flags,
             int do_sync, char **pzErr)
{
    const rep_txn *last = first, *t = first;
    uint64_t nframes = 0;
    for (uint32_t k = 0; k < n; k++, t = t->next) {
        nframes += t->nframes;
        last = t;
    }
    if (!scratch_reserve(r, nframes))
        return SQLITE_NOMEM;
    pg_ref *refs = r->scratch_refs;
    uint32_t *pgnos = r->scratch_u32;
    const uint8_t **frame = r->scratch_ptrs, **out = frame + r->scratch_cap;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)first->page_size;
    uint32_t g = 0, np = 0;
    t = first;
    for (uint32_t k = 0; k < n; k++, t = t->next)
        for (uint32_t i = 0; i < t->nframes; i++, g++) {
            frame[g] = t->frames + i * fsz;
            refs[g].pgno = wal_get32(frame[g]);
            refs[g].idx = g;
        }
    if (nframes > 1)
        qsort(refs, nframes, sizeof(*refs), pg_ref_cmp);
    for (uint32_t i = 0; i < nframes; i++) {
        if (i + 1 < nframes && refs[i + 1].pgno == refs[i].pgno)
            continue; /* a later copy of the same page wins */
        if (refs[i].pgno > last->commit)
            continue; /* truncated away since */
        pgnos[np] = refs[i].pgno;
        out[np++] = frame[refs[i].idx];
    }
    spool_txn st = {.txid = first->txid,
                    .txid_max = last->txid,
                    .flags = flags,
                    .page_size = first->page_size,
                    .commit = last->commit,
                    .pos = last->pos,
                    .npages = np,
                    .pgnos = pgnos};
    return spool_append_pages(r->sp, &st, frames_page, out, do_sync, pzErr);
}

int
rep_spool_run(replicator *r, const rep_txn *first, uint32_t n, int do_sync,
              char **pzErr)
{
    const rep_txn *t = first;
    spool_txn st = {.txid = t->txid,
                    .page_size = t->page_size,
                    .commit = t->commit,
                    .pos = t->pos};

    if (n > 1 || !(t->flags & (REP_FULL | REP_IMAGE | REP_WALREF)))
        return spool_copies(r, first, n, 0, do_sync, pzErr);
    if (t->flags & REP_FULL) {
        st.flags = SPOOL_F_FULL;
        return spool_append(r->sp, &st, do_sync, pzErr);
    }
    if (t->flags & REP_WALREF)
        return spool_walref(r, t, do_sync, pzErr);
    /* REP_IMAGE: an image the capture read, pages 1..commit. */
    return spool_copies(r, t, 1, SPOOL_F_FULL | SPOOL_F_IMAGE, do_sync, pzErr);
}

int
rep_spool_txn(replicator *r, const rep_txn *t, int do_sync, char **pzErr)
{
    return rep_spool_run(r, t, 1, do_sync, pzErr);
}
