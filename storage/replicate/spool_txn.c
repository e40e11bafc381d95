/*
 * storage/replicate/spool_txn.c: turning a captured transaction into one
 * spool record (spool_txn.h): the newest copy of each page,
 * straight from the queued WAL frames, or streamed from the WAL for a
 * transaction queued by reference.
 *
 * Under the replicator's spool_mu (rep_spool_lock): its own task's passes,
 * a replica's upload task while it reads and encodes the spool, the
 * application thread in replicator_close() after the tasks stopped.
 */
#include "storage/replicate/spool_txn.h"

#include "storage/base/mem.h"
#include "storage/base/pool.h"
#include "storage/local/wal.h"

#include "storage/replicate/refs.h"
#include "storage/replicate/txarena.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUN_MAX_BYTES (64u << 20) /* frames in one spool record */

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
    int fd; /* the -wal file, opened for this record */
    uint32_t ps;
    const uint32_t *frame_of; /* per output page: its WAL frame */
    uint8_t *page;
    const uint8_t *held; /* all the frames, when the scan read them at once */
    uint32_t held_lo;    /* the first frame in `held` */
} walref_rd;

/* Reads n bytes at off of the WAL (no pin: the validation below and the
 * header check after the copy catch frames overwritten meanwhile).
 * SQLITE_OK, or SQLITE_IOERR_SHORT_READ (gone, truncated, no file). */
static int
wal_pread(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (fd >= 0 && got < n) {
        ssize_t k =
            pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got == n ? SQLITE_OK : SQLITE_IOERR_SHORT_READ;
}

static int
walref_page(void *ctx, uint32_t i, const uint8_t **page)
{
    walref_rd *w = ctx;
    if (w->held) {
        *page = w->held +
                (size_t)(w->frame_of[i] - w->held_lo) *
                    (WAL_FRAME_HDR_SIZE + w->ps) +
                WAL_FRAME_HDR_SIZE;
        return SQLITE_OK;
    }
    *page = w->page;
    return wal_pread(w->fd, w->page, w->ps,
                     wal_frame_offset(w->frame_of[i], w->ps) +
                         WAL_FRAME_HDR_SIZE);
}

#define HOLD_MAX_BYTES (1u << 20) /* frames a scan keeps for the copy */

/*
 * The validating pass over a REP_WALREF transaction's frames wal_lo ..
 * pos.frame: the WAL header must still carry its salts (*wh receives it),
 * so must every frame's header, the last frame's must carry pos's checksum
 * and commit size, and the seed must be the checksum just before the range
 * (the WAL header's, or that of frame wal_lo - 1): the range starts where
 * the previous capture ended.  The checksum chain is not recomputed: frames
 * up to a commit never change while the salts stay (a restart writes new
 * salts into the WAL header before it overwrites any frame), and the
 * header is read again once the pages are copied (spool_walref).
 * last[pg] receives each page's newest frame (pages <= commit), *n their
 * number.  Frames of up to HOLD_MAX_BYTES in all are kept in *held (the
 * copy reads them from there, not from the WAL again).  1 if valid, 0 if
 * not, -1 out of memory.
 */
static int
walref_scan(walref_rd *w, const rep_txn *t, wal_hdr *wh, uint32_t *last,
            uint32_t *n, uint8_t **held)
{
    uint8_t whb[WAL_HDR_SIZE];
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)t->page_size;
    uint32_t total = t->pos.frame - t->wal_lo + 1;
    uint32_t CH = (uint32_t)(HOLD_MAX_BYTES / fsz);
    if (CH == 0)
        CH = 1;
    if (total <= CH)
        CH = total;
    uint8_t *chunk = ls_malloc(fsz * CH);
    if (!chunk)
        return -1;
    int valid = t->pos.frame >= t->wal_lo && t->wal_lo >= 1 &&
                wal_pread(w->fd, whb, WAL_HDR_SIZE, 0) == SQLITE_OK &&
                wal_hdr_parse(whb, wh) && wh->salt1 == t->pos.salt1 &&
                wh->salt2 == t->pos.salt2 && wh->page_size == t->page_size;
    if (valid && t->wal_lo == 1) {
        valid = wh->cksum1 == t->seed1 && wh->cksum2 == t->seed2;
    } else if (valid) { /* the range starts right after the seed's commit */
        uint8_t b[WAL_FRAME_HDR_SIZE];
        wal_frame_hdr ph;
        valid = wal_pread(w->fd, b, sizeof(b),
                          wal_frame_offset(t->wal_lo - 1, t->page_size)) ==
                SQLITE_OK;
        if (valid) {
            wal_frame_hdr_parse(b, &ph);
            valid = ph.salt1 == wh->salt1 && ph.salt2 == wh->salt2 &&
                    ph.cksum1 == t->seed1 && ph.cksum2 == t->seed2;
        }
    }
    for (uint32_t f = t->wal_lo; valid && f <= t->pos.frame; f += CH) {
        uint32_t k = t->pos.frame - f + 1 < CH ? t->pos.frame - f + 1 : CH;
        if (wal_pread(w->fd, chunk, k * fsz,
                      wal_frame_offset(f, t->page_size)) != SQLITE_OK) {
            valid = 0;
            break;
        }
        for (uint32_t j = 0; j < k && valid; j++) {
            wal_frame_hdr fh;
            wal_frame_hdr_parse(chunk + j * fsz, &fh);
            valid =
                fh.pgno != 0 && fh.salt1 == wh->salt1 && fh.salt2 == wh->salt2;
            if (valid && f + j == t->pos.frame)
                valid = fh.commit == t->commit && fh.cksum1 == t->pos.cksum1 &&
                        fh.cksum2 == t->pos.cksum2;
            if (valid && fh.pgno <= t->commit) {
                if (!last[fh.pgno])
                    (*n)++;
                last[fh.pgno] = f + j;
            }
        }
    }
    if (valid && CH == total)
        *held = chunk;
    else
        ls_free(chunk);
    return valid;
}

/*
 * Spools a transaction the capture queued by reference (REP_WALREF): one
 * validating pass over its frames in the WAL (walref_scan) to find each
 * page's newest copy, then the pages copied into the spool: from the
 * frames the scan kept when they were few, else streamed from the WAL
 * again, so memory stays small whatever the transaction's size.  One
 * record for its TXIDs txid..txid_max (the zero-copy capture's references
 * hold many commits).  The WAL is read with pread, without a private read
 * transaction: a reader there would hold off the application's
 * checkpoints.  If the WAL no longer holds the frames, a full-image marker
 * takes the TXIDs.
 */
static int
spool_walref(replicator *r, const rep_txn *t, int do_sync, char **pzErr)
{
    int rc;
    walref_rd w = {.ps = t->page_size};
    wal_hdr wh;
    uint32_t *last = NULL, *pgnos = NULL, *frames = NULL, n = 0;
    uint8_t *held = NULL;
    spool_txn st = {.txid = t->txid,
                    .txid_max = t->txid_max,
                    .page_size = t->page_size,
                    .commit = t->commit,
                    .pos = t->pos};

    char *zWal = sqlite3_mprintf("%s-wal", r->zDbPath);
    w.fd = zWal ? open(zWal, O_RDONLY | O_CLOEXEC) : -1;
    sqlite3_free(zWal);
    last = ls_malloc(((uint64_t)t->commit + 1) * 4);
    w.page = ls_malloc(t->page_size);
    if (!last || !w.page) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(last, 0, ((size_t)t->commit + 1) * 4);
    int valid = walref_scan(&w, t, &wh, last, &n, &held);
    w.held = held;
    w.held_lo = t->wal_lo;
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
    if (t->txid_max <= t->txid) /* a big one (not the zero-copy capture's) */
        sqlite3_log(SQLITE_NOTICE,
                    "litestream: spooling TXID %llu from the WAL "
                    "(frames %u-%u, %u pages)",
                    (unsigned long long)t->txid, t->wal_lo, t->pos.frame, n);
    /* Nothing pins the WAL while the pages are read (our own restarts
     * wait for this pass; another process's wait for the fence, bounded):
     * check the header is still the one validated, else the spooled pages
     * may be newer frames.  (A restart writes the header before any
     * frame; a WAL deleted meanwhile stays readable through w.fd.) */
    rc = spool_append_pages(r->sp, &st, walref_page, &w, 0, pzErr);
    if (rc == SQLITE_OK) {
        uint8_t hb2[WAL_HDR_SIZE];
        wal_hdr wh2;
        if (wal_pread(w.fd, hb2, WAL_HDR_SIZE, 0) != SQLITE_OK ||
            !wal_hdr_parse(hb2, &wh2) || wh2.salt1 != wh.salt1 ||
            wh2.salt2 != wh.salt2) {
            /* Supersede the record just written: same TXID, full-image
             * marker (a marker wins over a record in the spool index). */
            spool_txn mk = {.txid = t->txid,
                            .txid_max = t->txid_max,
                            .flags = SPOOL_F_FULL};
            rc = spool_append(r->sp, &mk, do_sync, pzErr);
        } else if (do_sync) {
            rc = spool_sync(r->sp);
        }
    }
out:
    if (w.fd >= 0)
        close(w.fd);
    ls_free(last);
    ls_free(held);
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

void
rep_txn_free(rep_txn *t)
{
    if (!t)
        return;
    if (t->arena) {
        txarena_release(t);
    } else {
        ls_free(t->frames);
        ls_free(t);
    }
}

/* ---- spooling the queue ------------------------------------------------ */

/* Puts back at the front of the queue, in order, what was not spooled. */
static void
requeue(replicator *r, rep_txn *list)
{
    pthread_mutex_lock(&r->mu);
    rep_txn *tail = list;
    for (;; tail = tail->next) {
        r->refs_queued += (tail->flags & REP_WALREF) != 0;
        if (!tail->next)
            break;
    }
    tail->next = r->head;
    if (!r->head)
        r->tail = tail;
    r->head = list;
    pthread_mutex_unlock(&r->mu);
}

/* Whether a spooling error is the sidecar's (disk full, removed, I/O). */
static int
spool_fault(int rc)
{
    int e = rc & 0xff;
    return e == SQLITE_FULL || e == SQLITE_IOERR || e == SQLITE_CANTOPEN;
}

/*
 * A transaction could not be spooled (the sidecar's disk is full, the
 * sidecar was removed, an I/O error): it and the rest of the list are
 * dropped, not kept in memory, and the error shows in the status.  Nothing
 * is lost: the TXIDs are captured, so once the spool works again recovery
 * re-reads them from the WAL or a full image covers them (upload.c,
 * fill_gap).  Returns NULL: nothing to requeue.
 */
static rep_txn *
spool_failed(rep_txn *list, char **pzErr)
{
    size_t n = 0;
    while (list) {
        rep_txn *t = list;
        list = t->next;
        rep_txn_free(t);
        n++;
    }
    char *z = sqlite3_mprintf(
        "%s (%llu transaction%s not spooled: they wait in the database and "
        "are recovered from the WAL or by a full image once the spool can "
        "be written)",
        *pzErr ? *pzErr : "litestream: cannot spool", (unsigned long long)n,
        n == 1 ? "" : "s");
    if (z) {
        sqlite3_free(*pzErr);
        *pzErr = z;
    }
    return NULL;
}

/* Whether t is a plain copy of a commit (what a run of records holds). */
static int
plain_copy(const rep_txn *t)
{
    return !(t->flags & (REP_FULL | REP_IMAGE | REP_WALREF));
}

/*
 * How many transactions from t on go into one spool record: consecutive
 * TXIDs of plain copies with one page size, up to RUN_MAX_BYTES of frames
 * (spool_txn.h).
 */
static uint32_t
run_length(const rep_txn *t)
{
    uint32_t n = 1;
    uint64_t bytes = (uint64_t)t->nframes * t->page_size;
    if (!plain_copy(t))
        return 1;
    for (const rep_txn *u = t->next;
         u && plain_copy(u) && u->txid == t->txid + 1 &&
         u->page_size == t->page_size;
         t = u, u = u->next) {
        bytes += (uint64_t)u->nframes * u->page_size;
        if (bytes > RUN_MAX_BYTES)
            break;
        n++;
    }
    return n;
}

/*
 * Spools everything queued.  What cannot be spooled is dropped and later
 * recovered (spool_failed()), so memory stays bounded while the disk is
 * full and the application never waits.
 */
/* The queue a pass took is in the spool (or back in the queue). */
static void
spooled_all(replicator *r)
{
    pthread_mutex_lock(&r->mu);
    r->spooling = 0;
    r->refs_spooling = 0;
    pthread_mutex_unlock(&r->mu);
}

int
rep_spool_queue(replicator *r, int force_sync)
{
    rep_txn *list, *t;
    int rc = SQLITE_OK;
    uint64_t last = 0;
    char *zErr = NULL;

    /* One short critical section per pass: the application thread
     * appends under the same mutex at every commit. */
    pthread_mutex_lock(&r->mu);
    rep_slot_flush(r); /* the zero-copy capture's open reference, last */
    list = r->head;
    r->head = r->tail = NULL;
    r->refs_spooling = r->refs_queued;
    r->refs_queued = 0;
    r->queued_bytes = 0;
    r->woken = 0;
    r->spooling = list != NULL;
    int64_t limit = r->opts.spool_limit;
    int was_full = r->spool_full;
    pthread_mutex_unlock(&r->mu);
    if (__atomic_load_n(&r->db_replaced, __ATOMIC_ACQUIRE)) {
        /* Not this path's database any more (db_current()). */
        while ((t = list)) {
            list = t->next;
            rep_txn_free(t);
        }
        spooled_all(r);
        return SQLITE_OK;
    }
    int full = (int64_t)spool_bytes(r->sp) >= limit;

    while (list) {
        t = list;
        if (full || (int64_t)spool_bytes(r->sp) >= limit) {
            /* Full: this transaction is not spooled.  Once the replica
             * catches up, the missing TXIDs are recovered from the WAL or
             * covered by a full image (upload.c, fill_gap). */
            if (!full && !was_full)
                rep_set_error(
                    r, sqlite3_mprintf("litestream: the spool of '%s' is full "
                                       "(%llu bytes, limit %lld): new "
                                       "transactions wait in the database; a "
                                       "full image follows once the replica "
                                       "is reachable",
                                       r->zDbPath,
                                       (unsigned long long)spool_bytes(r->sp),
                                       (long long)limit));
            full = 1;
            list = t->next;
            rep_txn_free(t);
            continue;
        }
        uint32_t n = run_length(t);
        rc = rep_spool_run(r, t, n, 0, &zErr);
        if (rc != SQLITE_OK && spool_fault(rc)) {
            list = spool_failed(list, &zErr);
            full |= rc == SQLITE_FULL;
            rc = SQLITE_OK;
            break;
        }
        if (rc != SQLITE_OK)
            break; /* transient (busy, memory): requeued, tried again */
        while (n--) {
            t = list;
            if (t->flags & REP_DURABLE)
                force_sync = 1;
            last = rep_txn_last(t);
            list = t->next;
            rep_txn_free(t);
        }
    }
    if (last && (force_sync || r->opts.durable_spool) &&
        spool_sync(r->sp) != SQLITE_OK && rc == SQLITE_OK) {
        rc = SQLITE_IOERR;
        zErr = sqlite3_mprintf("litestream: cannot sync the spool: %s",
                               strerror(errno));
    }
    if (list)
        requeue(r, list);
    if (rc == SQLITE_OK && last)
        sidecar_set_spooled(r->sc, last);
    if (full != was_full) {
        pthread_mutex_lock(&r->mu);
        r->spool_full = full;
        pthread_mutex_unlock(&r->mu);
    }
    spooled_all(r);
    if (zErr)
        rep_set_error(r, zErr);
    return rc;
}

void
rep_spool_if_waiting(replicator *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t ticket = r->persist_req;
    int asked = ticket > r->persist_done;
    int waiting = r->queued_bytes >= QUEUE_WAKE_BYTES || asked;
    pthread_mutex_unlock(&r->mu);
    if (!waiting)
        return;
    int rc = rep_spool_queue(r, 0);
    if (asked) {
        /* An application thread waits in replicator_persist() (a WAL
         * restart behind a transaction queued by reference): answer now,
         * not after the upload. */
        rep_persist_answer(r, ticket, rc);
    }
}

void
rep_persist_answer(replicator *r, uint64_t ticket, int rc)
{
    pthread_mutex_lock(&r->mu);
    if (ticket > r->persist_done) {
        r->persist_done = ticket;
        r->persist_rc = rc;
        pthread_cond_broadcast(&r->changed);
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- the spool's lock ------------------------------------------------- */

void
rep_spool_lock(replicator *r)
{
    pthread_mutex_lock(&r->spool_mu);
}

int
rep_spool_trylock(replicator *r)
{
    /* Noted first: a holder that unlocks after the failed try sees it. */
    pthread_mutex_lock(&r->mu);
    r->spool_missed = 1;
    pthread_mutex_unlock(&r->mu);
    if (pthread_mutex_trylock(&r->spool_mu) != 0)
        return 0;
    pthread_mutex_lock(&r->mu);
    r->spool_missed = 0;
    pthread_mutex_unlock(&r->mu);
    return 1;
}

void
rep_spool_unlock(replicator *r)
{
    pthread_mutex_unlock(&r->spool_mu);
    pthread_mutex_lock(&r->mu);
    int missed = r->spool_missed;
    r->spool_missed = 0;
    pthread_mutex_unlock(&r->mu);
    if (missed)
        pool_wake(&r->task, POOL_LIGHT); /* spool what waited meanwhile */
}
