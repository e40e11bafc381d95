/*
 * storage/replicator.c: the replicator of one database in one process
 * (replicator.h): in-memory queue -> spool -> L0 LTX objects in the replica.
 *
 * Threads:
 *   - application threads call replicator_enqueue() (mutex + list append),
 *     replicator_persist(), replicator_sync() and the status functions;
 *   - one replicator thread per replicator spools the queue every tick and,
 *     when this process holds the ship lock, uploads every sync interval.
 * Everything below "thread side" runs on the replicator thread only, except
 * that replicator_close() joins it first.
 *
 * Invariants:
 *   1. An upload covers TXIDs replicated+1 .. to, all present in the spool
 *      (or superseded by a full image), so the replica never has a gap.
 *   2. The per-page checksums (`cks`) describe the database at the
 *      replicated TXID; they change only after the replica acknowledged an
 *      object, so a failed upload is simply retried.
 *   3. A spool segment is deleted only once every record in it is <= the
 *      replicated TXID.
 */
#include "storage/replicator.h"
#include "storage/backend.h"
#include "storage/crc64.h"
#include "storage/image.h"
#include "storage/layout.h"
#include "storage/ltx.h"
#include "storage/spool.h"
#include "storage/sqlite.h"
#include "storage/url.h"
#include "storage/wal.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 100              /* spooling cadence */
#define QUEUE_WAKE_BYTES (16 << 20)
#define BATCH_MAX_BYTES (256ull << 20)
#define BACKOFF_MAX_MS 30000

struct replicator {
    char *zDbPath;
    char *zVfs;
    ls_url *url;
    backend *be;
    sidecar *sc;
    spool *sp;
    rep_opts opts;

    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* the thread waits here */
    pthread_cond_t changed; /* waiters of persist/sync wait here */

    /* Guarded by mu. */
    rep_txn *head, *tail;
    uint64_t queued_bytes;
    uint64_t persist_req, persist_done; /* tickets */
    int persist_rc;
    int stop;
    int upload_now;
    char *last_error;
    int64_t last_error_ms;
    int64_t last_upload_ms;
    uint64_t n_uploads, n_full_images, n_errors;
    uint64_t spooled_bytes;
    backend_counters counters;
    int shipping;

    /* Thread side. */
    uint64_t *cks;     /* per-page checksums at the replicated TXID */
    uint32_t ncks;     /* entries (pages 1..ncks) */
    uint32_t cks_commit;
    uint64_t cks_sum;  /* database checksum at the replicated TXID */
    int cks_valid;
    int pre_known;     /* cks_sum is right even though cks is not */
    int replica_checked;
    int need_full;
    int64_t next_upload_ms;
    int backoff_ms;
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Records an error for status (thread side; takes mu). */
static void
set_error(replicator *r, char *zMsg)
{
    pthread_mutex_lock(&r->mu);
    sqlite3_free(r->last_error);
    r->last_error = zMsg;
    r->last_error_ms = now_ms();
    if (zMsg)
        r->n_errors++;
    pthread_mutex_unlock(&r->mu);
    if (zMsg)
        sqlite3_log(SQLITE_WARNING, "%s", zMsg);
}

static void
txn_free(rep_txn *t)
{
    if (t) {
        sqlite3_free(t->frames);
        sqlite3_free(t);
    }
}

/* ---- spooling ---------------------------------------------------------- */

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

/* Converts captured WAL frames into one spool record (newest copy wins). */
static int
spool_one(replicator *r, const rep_txn *t, int do_sync, char **pzErr)
{
    int rc = SQLITE_OK;
    spool_txn st = {.txid = t->txid,
                    .page_size = t->page_size,
                    .commit = t->commit};
    pg_ref *refs = NULL;
    uint32_t *pgnos = NULL;
    uint8_t *pages = NULL;
    uint32_t n = 0;
    size_t fsz = WAL_FRAME_HDR_SIZE + (size_t)t->page_size;

    if (t->flags & REP_FULL) {
        st.flags = SPOOL_F_FULL;
        return spool_append(r->sp, &st, do_sync, pzErr);
    }
    refs = sqlite3_malloc64(sizeof(*refs) * (t->nframes + 1));
    pgnos = sqlite3_malloc64(sizeof(*pgnos) * (t->nframes + 1));
    pages = sqlite3_malloc64((uint64_t)fsz * (t->nframes + 1));
    if (!refs || !pgnos || !pages) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < t->nframes; i++) {
        refs[i].pgno = wal_get32(t->frames + i * fsz);
        refs[i].idx = i;
    }
    if (t->nframes > 1)
        qsort(refs, t->nframes, sizeof(*refs), pg_ref_cmp);
    for (uint32_t i = 0; i < t->nframes; i++) {
        if (i + 1 < t->nframes && refs[i + 1].pgno == refs[i].pgno)
            continue; /* a later copy of the same page wins */
        if (refs[i].pgno > t->commit)
            continue; /* truncated away by this transaction */
        pgnos[n] = refs[i].pgno;
        memcpy(pages + (size_t)n * t->page_size,
               t->frames + refs[i].idx * fsz + WAL_FRAME_HDR_SIZE,
               t->page_size);
        n++;
    }
    st.npages = n;
    st.pgnos = pgnos;
    st.pages = pages;
    rc = spool_append(r->sp, &st, do_sync, pzErr);
out:
    sqlite3_free(refs);
    sqlite3_free(pgnos);
    sqlite3_free(pages);
    return rc;
}

/*
 * Spools everything queued.  On failure the unspooled transactions go back
 * to the front of the queue, so nothing is lost while the disk is full.
 */
static int
spool_queue(replicator *r, int force_sync)
{
    rep_txn *list, *t;
    int rc = SQLITE_OK;
    uint64_t last = 0;
    char *zErr = NULL;

    pthread_mutex_lock(&r->mu);
    list = r->head;
    r->head = r->tail = NULL;
    r->queued_bytes = 0;
    pthread_mutex_unlock(&r->mu);

    while (list) {
        t = list;
        rc = spool_one(r, t, 0, &zErr);
        if (rc != SQLITE_OK)
            break;
        last = t->txid;
        list = t->next;
        txn_free(t);
    }
    if (last && (force_sync || r->opts.durable_spool) &&
        spool_sync(r->sp) != SQLITE_OK && rc == SQLITE_OK) {
        rc = SQLITE_IOERR;
        zErr = sqlite3_mprintf("litestream: cannot sync the spool: %s",
                               strerror(errno));
    }
    if (list) {
        /* Put back what could not be spooled, in order. */
        pthread_mutex_lock(&r->mu);
        rep_txn *tail = list;
        while (tail->next)
            tail = tail->next;
        tail->next = r->head;
        if (!r->head)
            r->tail = tail;
        r->head = list;
        pthread_mutex_unlock(&r->mu);
    }
    if (rc == SQLITE_OK && last)
        sidecar_set_spooled(r->sc, last);
    if (zErr)
        set_error(r, zErr);
    return rc;
}

/* ---- uploading --------------------------------------------------------- */

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static int
membuf_write(void *ctx, const void *buf, size_t n)
{
    membuf *m = ctx;
    if (m->n + n > m->cap) {
        size_t nc = m->cap ? m->cap : 1 << 16;
        while (nc < m->n + n)
            nc *= 2;
        uint8_t *p = sqlite3_realloc64(m->p, nc);
        if (!p)
            return 1;
        m->p = p;
        m->cap = nc;
    }
    memcpy(m->p + m->n, buf, n);
    m->n += n;
    return 0;
}

static int
cks_ensure(replicator *r, uint32_t npages)
{
    if (npages <= r->ncks)
        return SQLITE_OK;
    uint64_t *c = sqlite3_realloc64(r->cks, ((uint64_t)npages + 1) * 8);
    if (!c)
        return SQLITE_NOMEM;
    memset(c + r->ncks + 1, 0, (size_t)(npages - r->ncks) * 8);
    r->cks = c;
    r->ncks = npages;
    return SQLITE_OK;
}

/* Puts an encoded object and records counters; rc of the backend. */
static int
put_object(replicator *r, uint64_t min, uint64_t max, const membuf *m,
           int64_t ts)
{
    char key[256];
    int rc = layout_key(r->be, 0, min, max, key, sizeof(key));
    if (rc != SQLITE_OK)
        return rc;
    rc = r->be->vt->put(r->be, key, m->p, m->n, ts);
    if (rc != SQLITE_OK) {
        set_error(r, sqlite3_mprintf("litestream: upload of %s to %s "
                                     "failed: %s",
                                     key, r->url->redacted,
                                     r->be->vt->errmsg(r->be)));
    }
    return rc;
}

/* After an acknowledged upload: advance the position, drop the spool. */
static void
uploaded(replicator *r, uint64_t to, int full)
{
    int64_t t = now_ms();
    sidecar_set_replicated(r->sc, to, t);
    spool_drop_upto(r->sp, to);
    pthread_mutex_lock(&r->mu);
    r->last_upload_ms = t;
    r->n_uploads++;
    if (full)
        r->n_full_images++;
    sqlite3_free(r->last_error);
    r->last_error = NULL;
    memcpy(&r->counters, r->be->vt->counters(r->be), sizeof(r->counters));
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->mu);
}

/*
 * Uploads a full image of the database as one object covering
 * replicated+1 .. the image's TXID.  SQLITE_BUSY: try again next tick.
 */
static int
upload_full(replicator *r)
{
    int rc;
    image *im = NULL;
    uint64_t txid = 0;
    uint32_t commit = 0, ps = 0;
    char *zErr = NULL;
    ltx_encoder *enc = NULL;
    membuf m = {0};
    uint8_t *page = NULL;
    uint64_t from = sidecar_replicated(r->sc) + 1;
    int64_t ts = now_ms();

    rc = image_open(r->zDbPath, r->zVfs, r->sc, &im, &txid, &commit, &ps,
                    &zErr);
    if (rc != SQLITE_OK)
        goto out;
    if (txid < from) {
        rc = SQLITE_BUSY; /* nothing captured beyond the replica yet */
        goto out;
    }
    page = sqlite3_malloc64(ps);
    rc = page ? cks_ensure(r, commit) : SQLITE_NOMEM;
    if (rc != SQLITE_OK)
        goto out;
    ltx_header h = {.flags = 0,
                    .page_size = ps,
                    .commit = commit,
                    .min_txid = from,
                    .max_txid = txid,
                    .timestamp = ts,
                    .pre_apply = from == 1 ? 0
                                 : (r->cks_valid || r->pre_known)
                                     ? r->cks_sum
                                     : LTX_CHECKSUM_FLAG};
    rc = ltx_encoder_open(&h, membuf_write, &m, &enc);
    if (rc != SQLITE_OK)
        goto enc_err;
    uint32_t lock = ltx_lock_pgno(ps);
    uint64_t sum = LTX_CHECKSUM_FLAG;
    for (uint32_t p = 1; p <= commit; p++) {
        if (p == lock) {
            r->cks[p] = 0;
            continue;
        }
        rc = image_page(im, p, page);
        if (rc != SQLITE_OK) {
            zErr = sqlite3_mprintf("litestream: cannot read page %u of "
                                   "'%s' for a full image",
                                   p, r->zDbPath);
            goto out;
        }
        rc = ltx_encoder_page(enc, p, page);
        if (rc != SQLITE_OK)
            goto enc_err;
        r->cks[p] = ltx_page_checksum(p, page, ps);
        sum = ltx_checksum_fold(sum, r->cks[p]);
    }
    /* Until the upload is acknowledged the checksums are not trusted. */
    r->cks_valid = 0;
    rc = image_done(im);
    if (rc != SQLITE_OK)
        goto out; /* written to meanwhile: take it again */
    rc = ltx_encoder_finish(enc, sum, NULL);
    if (rc != SQLITE_OK)
        goto enc_err;
    image_close(im);
    im = NULL;
    rc = put_object(r, from, txid, &m, ts);
    if (rc == SQLITE_OK) {
        for (uint32_t p = commit + 1; p <= r->ncks; p++)
            r->cks[p] = 0;
        r->cks_commit = commit;
        r->cks_sum = sum;
        r->cks_valid = 1;
        r->need_full = 0;
        uploaded(r, txid, 1);
    }
    goto out;
enc_err:
    zErr = sqlite3_mprintf("litestream: encoding a full image failed: %s",
                           enc ? ltx_encoder_errmsg(enc) : "out of memory");
out:
    if (zErr)
        set_error(r, zErr);
    image_close(im);
    ltx_encoder_free(enc);
    sqlite3_free(m.p);
    sqlite3_free(page);
    return rc;
}

typedef struct batch_page {
    uint32_t pgno;
    uint32_t rec;  /* index into the batch's records */
    uint32_t idx;  /* page index inside the record */
} batch_page;

static int
batch_page_cmp(const void *a, const void *b)
{
    const batch_page *x = a, *y = b;
    if (x->pgno != y->pgno)
        return x->pgno < y->pgno ? -1 : 1;
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

/*
 * Uploads spool records from..to as one L0 object.  Sets r->need_full when
 * the records cannot be applied incrementally (a full-image marker, a
 * growth whose new pages are missing, unknown checksums).
 */
static int
upload_incremental(replicator *r, uint64_t from, uint64_t to)
{
    int rc = SQLITE_OK;
    spool_txn *recs = NULL;
    batch_page *bp = NULL;
    uint64_t nrec = 0, nbp = 0, bytes = 0;
    ltx_encoder *enc = NULL;
    membuf m = {0};
    uint64_t *newck = NULL;
    char *zErr = NULL;
    int64_t ts = now_ms();

    recs = sqlite3_malloc64(sizeof(*recs) * (to - from + 1));
    if (!recs)
        return SQLITE_NOMEM;
    memset(recs, 0, sizeof(*recs) * (to - from + 1));
    for (uint64_t t = from; t <= to; t++) {
        rc = spool_read(r->sp, t, &recs[nrec]);
        if (rc != SQLITE_OK) {
            zErr = sqlite3_mprintf("litestream: spool record %llu "
                                   "unreadable (%s): taking a full image",
                                   (unsigned long long)t,
                                   sqlite3_errstr(rc));
            r->need_full = 1;
            goto out;
        }
        if (recs[nrec].flags & SPOOL_F_FULL) {
            r->need_full = 1;
            rc = SQLITE_OK;
            goto out;
        }
        nbp += recs[nrec].npages;
        bytes += (uint64_t)recs[nrec].npages * recs[nrec].page_size;
        nrec++;
        if (bytes > BATCH_MAX_BYTES)
            break; /* the rest goes in the next object */
    }
    to = from + nrec - 1;
    uint32_t ps = recs[0].page_size;
    uint32_t commit = recs[nrec - 1].commit;
    for (uint64_t i = 0; i < nrec; i++) {
        if (recs[i].page_size != ps) {
            /* page_size changed (VACUUM): only a full image is right. */
            r->need_full = 1;
            goto out;
        }
    }
    if (!r->cks_valid) {
        r->need_full = 1;
        goto out;
    }
    bp = sqlite3_malloc64(sizeof(*bp) * (nbp + 1));
    if (!bp) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    nbp = 0;
    for (uint64_t i = 0; i < nrec; i++)
        for (uint32_t j = 0; j < recs[i].npages; j++)
            bp[nbp++] = (batch_page){recs[i].pgnos[j], (uint32_t)i, j};
    if (nbp > 1)
        qsort(bp, nbp, sizeof(*bp), batch_page_cmp);

    /* Pages new to the database must all be present (else full image). */
    {
        uint32_t expect = r->cks_commit + 1;
        uint32_t lock = ltx_lock_pgno(ps);
        for (uint64_t i = 0; i < nbp; i++) {
            if (i + 1 < nbp && bp[i + 1].pgno == bp[i].pgno)
                continue;
            if (bp[i].pgno < expect || bp[i].pgno > commit)
                continue;
            while (expect == lock && expect < bp[i].pgno)
                expect++;
            if (bp[i].pgno != expect)
                break;
            expect++;
        }
        if (expect == lock)
            expect++;
        if (commit > r->cks_commit && expect <= commit) {
            r->need_full = 1;
            goto out;
        }
    }
    rc = cks_ensure(r, commit > r->cks_commit ? commit : r->cks_commit);
    if (rc != SQLITE_OK)
        goto out;
    newck = sqlite3_malloc64(sizeof(*newck) * (nbp + 1));
    if (!newck) {
        rc = SQLITE_NOMEM;
        goto out;
    }

    ltx_header h = {.flags = 0,
                    .page_size = ps,
                    .commit = commit,
                    .min_txid = from,
                    .max_txid = to,
                    .timestamp = ts,
                    .pre_apply = r->cks_sum};
    rc = ltx_encoder_open(&h, membuf_write, &m, &enc);
    if (rc != SQLITE_OK)
        goto enc_err;
    uint64_t sum = r->cks_sum;
    for (uint32_t p = commit + 1; p <= r->cks_commit; p++)
        if (r->cks[p])
            sum = ltx_checksum_fold(sum, r->cks[p]); /* shrunk away */
    uint64_t nout = 0;
    for (uint64_t i = 0; i < nbp; i++) {
        if (i + 1 < nbp && bp[i + 1].pgno == bp[i].pgno)
            continue;
        if (bp[i].pgno > commit)
            continue;
        const spool_txn *rec = &recs[bp[i].rec];
        const uint8_t *page = rec->pages + (size_t)bp[i].idx * ps;
        rc = ltx_encoder_page(enc, bp[i].pgno, page);
        if (rc != SQLITE_OK)
            goto enc_err;
        uint64_t c = ltx_page_checksum(bp[i].pgno, page, ps);
        if (bp[i].pgno <= r->cks_commit && r->cks[bp[i].pgno])
            sum = ltx_checksum_fold(sum, r->cks[bp[i].pgno]);
        sum = ltx_checksum_fold(sum, c);
        newck[nout] = c;
        bp[nout++] = bp[i];
    }
    rc = ltx_encoder_finish(enc, sum, NULL);
    if (rc != SQLITE_OK)
        goto enc_err;
    rc = put_object(r, from, to, &m, ts);
    if (rc != SQLITE_OK)
        goto out;
    for (uint32_t p = commit + 1; p <= r->cks_commit; p++)
        r->cks[p] = 0;
    for (uint64_t i = 0; i < nout; i++)
        r->cks[bp[i].pgno] = newck[i];
    r->cks_commit = commit;
    r->cks_sum = sum;
    uploaded(r, to, 0);
    goto out;
enc_err:
    zErr = sqlite3_mprintf("litestream: encoding TXIDs %llu-%llu failed: %s",
                           (unsigned long long)from, (unsigned long long)to,
                           enc ? ltx_encoder_errmsg(enc) : "out of memory");
out:
    if (zErr)
        set_error(r, zErr);
    for (uint64_t i = 0; i < to - from + 1 && recs; i++)
        spool_txn_free(&recs[i]);
    sqlite3_free(recs);
    sqlite3_free(bp);
    sqlite3_free(newck);
    ltx_encoder_free(enc);
    sqlite3_free(m.p);
    return rc;
}

/*
 * First upload of this process: learn where the replica is.  A replica
 * ahead of our position (restored database, lost sidecar, another writer)
 * makes TXIDs continue above it, starting with a full image.
 */
static int
check_replica(replicator *r)
{
    ltx_info *files = NULL;
    int n = 0;
    int rc = layout_list_all(r->be, &files, &n);
    if (rc != SQLITE_OK) {
        set_error(r, sqlite3_mprintf("litestream: cannot list %s: %s",
                                     r->url->redacted,
                                     r->be->vt->errmsg(r->be)));
        return rc;
    }
    uint64_t max = 0;
    int last = -1;
    for (int i = 0; i < n; i++)
        if (files[i].max_txid > max) {
            max = files[i].max_txid;
            last = i;
        }
    if (last >= 0 && !r->cks_valid && files[last].size >= LTX_TRAILER_SIZE) {
        /* The next object's pre-apply checksum is the newest object's
         * post-apply checksum: read it from its trailer. */
        char key[256];
        uint8_t *tr = NULL;
        size_t ntr = 0;
        if (layout_key(r->be, files[last].level, files[last].min_txid,
                       files[last].max_txid, key, sizeof(key)) == SQLITE_OK &&
            r->be->vt->get(r->be, key, files[last].size - LTX_TRAILER_SIZE,
                           LTX_TRAILER_SIZE, &tr, &ntr) == SQLITE_OK &&
            ntr == LTX_TRAILER_SIZE) {
            uint64_t post = 0;
            for (int i = 0; i < 8; i++)
                post = (post << 8) | tr[i];
            r->cks_sum = post;
            r->pre_known = post != 0;
        }
        sqlite3_free(tr);
    }
    sqlite3_free(files); /* ltx_info holds no pointers */
    uint64_t rep = sidecar_replicated(r->sc);
    if (max != rep || !r->cks_valid) {
        /* Unknown history or unknown checksums: continue above the
         * replica with a full image. */
        if (max > rep)
            sidecar_set_replicated(r->sc, max, now_ms());
        if (max >= rep)
            sidecar_set_txid_floor(r->sc, max);
        else
            sidecar_set_replicated(r->sc, max, now_ms());
        r->need_full = 1;
    }
    r->replica_checked = 1;
    return SQLITE_OK;
}

static int
upload_once(replicator *r)
{
    int rc;
    if (!r->replica_checked) {
        rc = check_replica(r);
        if (rc != SQLITE_OK)
            return rc;
    }
    rc = spool_scan(r->sp);
    if (rc != SQLITE_OK)
        return rc;
    uint64_t rep = sidecar_replicated(r->sc);
    uint64_t to = spool_contiguous(r->sp, rep + 1);
    if (!r->need_full && to > rep)
        rc = upload_incremental(r, rep + 1, to);
    if (rc == SQLITE_OK && r->need_full)
        rc = upload_full(r);
    else if (rc == SQLITE_OK && to <= rep && spool_max(r->sp) > rep) {
        /* A gap in the spool: the missing TXIDs were lost (a process died
         * before spooling them).  Cover them with a full image. */
        ls_cap cap;
        if (sidecar_cap_read(r->sc, &cap) && cap.txid > rep)
            rc = upload_full(r);
    }
    if (getenv("LITESTREAM_DEBUG"))
        fprintf(stderr, "litestream: upload rc=%d rep=%llu to=%llu full=%d "
                        "cks=%d\n",
                rc, (unsigned long long)rep, (unsigned long long)to,
                r->need_full, r->cks_valid);
    if (rc == SQLITE_BUSY)
        rc = SQLITE_OK; /* retried next tick */
    return rc;
}

static void *
thread_main(void *arg)
{
    replicator *r = arg;
    int64_t next_upload = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        uint64_t ticket = r->persist_req;
        int want_upload = r->upload_now;
        pthread_mutex_unlock(&r->mu);

        int rc = spool_queue(r, ticket != 0);
        pthread_mutex_lock(&r->mu);
        if (ticket > r->persist_done) {
            r->persist_done = ticket;
            r->persist_rc = rc;
            pthread_cond_broadcast(&r->changed);
        }
        pthread_mutex_unlock(&r->mu);

        int64_t t = now_ms();
        if (want_upload || t >= next_upload) {
            int ship = sidecar_ship_trylock(r->sc);
            pthread_mutex_lock(&r->mu);
            r->shipping = ship;
            r->upload_now = 0;
            pthread_mutex_unlock(&r->mu);
            rc = ship ? upload_once(r) : SQLITE_OK;
            if (rc == SQLITE_OK) {
                r->backoff_ms = 0;
                next_upload = t + r->opts.sync_interval_ms;
            } else {
                /* Capped exponential backoff with jitter. */
                int b = r->backoff_ms ? r->backoff_ms * 2 : 500;
                r->backoff_ms = b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b;
                next_upload = t + r->backoff_ms / 2 +
                              (int64_t)(rand() % (r->backoff_ms / 2 + 1));
            }
        }

        pthread_mutex_lock(&r->mu);
        if (r->stop || r->upload_now || r->persist_req > r->persist_done)
            continue;
        int64_t wait = next_upload - now_ms();
        if (wait > TICK_MS)
            wait = TICK_MS;
        if (wait < 1)
            wait = 1;
        struct timespec ts;
        deadline_in(&ts, (int)wait);
        pthread_cond_timedwait(&r->wake, &r->mu, &ts);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- application side -------------------------------------------------- */

int
replicator_open(const char *zDbPath, const char *zUrl, const rep_opts *opts,
                sidecar *sc, replicator **out, char **pzErr)
{
    int rc;
    replicator *r = sqlite3_malloc64(sizeof(*r));
    *out = NULL;
    if (!r)
        return SQLITE_NOMEM;
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->sc = sc;
    r->opts = *opts;
    if (r->opts.sync_interval_ms <= 0)
        r->opts.sync_interval_ms = 1000;
    r->zDbPath = sqlite3_mprintf("%s", zDbPath);
    r->zVfs = sqlite3_mprintf("%s", opts->zVfs ? opts->zVfs : "unix");
    if (!r->zDbPath || !r->zVfs) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = url_parse(zUrl, &r->url, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    rc = backend_open_url(r->url, &r->be, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    char *zSpool = sqlite3_mprintf("%s/spool", sidecar_dir(sc));
    if (!zSpool) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = spool_open(zSpool, &r->sp, pzErr);
    sqlite3_free(zSpool);
    if (rc != SQLITE_OK)
        goto out;
    if (pthread_create(&r->thread, NULL, thread_main, r) != 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot start the replicator "
                                 "thread");
        rc = SQLITE_ERROR;
        goto out;
    }
    r->started = 1;
out:
    if (rc != SQLITE_OK) {
        replicator_close(r);
        return rc;
    }
    *out = r;
    return SQLITE_OK;
}

void
replicator_close(replicator *r)
{
    if (!r)
        return;
    if (r->started) {
        uint64_t want = 0;
        ls_cap cap;
        if (sidecar_cap_read(r->sc, &cap))
            want = cap.txid;
        /* Spool durably, then give the upload a moment. */
        replicator_persist(r);
        if (want > sidecar_replicated(r->sc))
            replicator_sync(r, want, 1000, NULL, NULL);
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->wake);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        spool_queue(r, 1); /* anything enqueued meanwhile */
    }
    for (rep_txn *t = r->head, *n; t; t = n) {
        n = t->next;
        txn_free(t);
    }
    spool_close(r->sp);
    if (r->be)
        r->be->vt->close(r->be);
    url_free(r->url);
    sqlite3_free(r->cks);
    sqlite3_free(r->last_error);
    sqlite3_free(r->zDbPath);
    sqlite3_free(r->zVfs);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->changed);
    sqlite3_free(r);
}

void
replicator_enqueue(replicator *r, rep_txn *t)
{
    uint64_t sz = (uint64_t)t->nframes * (t->page_size + WAL_FRAME_HDR_SIZE);
    t->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->tail)
        r->tail->next = t;
    else
        r->head = t;
    r->tail = t;
    r->queued_bytes += sz;
    /* Waking the thread is a system call: only when the queue is big. */
    if (r->queued_bytes >= QUEUE_WAKE_BYTES)
        pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

int
replicator_persist(replicator *r)
{
    int rc;
    pthread_mutex_lock(&r->mu);
    if (!r->head && r->persist_req == r->persist_done) {
        pthread_mutex_unlock(&r->mu);
        return SQLITE_OK;
    }
    uint64_t ticket = ++r->persist_req;
    pthread_cond_signal(&r->wake);
    while (r->persist_done < ticket && !r->stop)
        pthread_cond_wait(&r->changed, &r->mu);
    rc = r->persist_done >= ticket ? r->persist_rc : SQLITE_ERROR;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int
replicator_sync(replicator *r, uint64_t txid, int timeout_ms,
                uint64_t *replicated, char **pzErr)
{
    struct timespec dl;
    int rc = SQLITE_OK;
    if (timeout_ms >= 0)
        deadline_in(&dl, timeout_ms);
    pthread_mutex_lock(&r->mu);
    r->upload_now = 1;
    pthread_cond_signal(&r->wake);
    while (sidecar_replicated(r->sc) < txid) {
        int w;
        if (r->stop) {
            rc = SQLITE_ERROR;
            break;
        }
        /* Another process may be the one uploading: poll the shared
         * position as well as waiting for our own thread. */
        struct timespec step;
        deadline_in(&step, 20);
        if (timeout_ms >= 0 &&
            (step.tv_sec > dl.tv_sec ||
             (step.tv_sec == dl.tv_sec && step.tv_nsec > dl.tv_nsec)))
            step = dl;
        w = pthread_cond_timedwait(&r->changed, &r->mu, &step);
        if (w == ETIMEDOUT && timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (now.tv_sec > dl.tv_sec ||
                (now.tv_sec == dl.tv_sec && now.tv_nsec >= dl.tv_nsec)) {
                rc = sidecar_replicated(r->sc) >= txid ? SQLITE_OK
                                                       : SQLITE_BUSY;
                break;
            }
        }
        if (!r->upload_now && sidecar_replicated(r->sc) < txid) {
            r->upload_now = 1;
            pthread_cond_signal(&r->wake);
        }
    }
    if (rc != SQLITE_OK && pzErr)
        *pzErr = sqlite3_mprintf(
            "litestream: replica did not reach TXID %llu within %d ms%s%s",
            (unsigned long long)txid, timeout_ms,
            r->last_error ? ": " : "", r->last_error ? r->last_error : "");
    pthread_mutex_unlock(&r->mu);
    if (replicated)
        *replicated = sidecar_replicated(r->sc);
    return rc;
}

void
replicator_set_interval(replicator *r, int ms)
{
    pthread_mutex_lock(&r->mu);
    r->opts.sync_interval_ms = ms > 0 ? ms : 1000;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

int
replicator_interval(replicator *r)
{
    return r->opts.sync_interval_ms;
}

const char *
replicator_url(replicator *r)
{
    return r->url->redacted;
}

/* Appends z as a JSON string literal. */
static void
json_str(sqlite3_str *out, const char *z)
{
    sqlite3_str_appendchar(out, 1, '"');
    for (; z && *z; z++) {
        unsigned char ch = (unsigned char)*z;
        if (ch == '"' || ch == '\\')
            sqlite3_str_appendf(out, "\\%c", ch);
        else if (ch < 0x20)
            sqlite3_str_appendf(out, "\\u%04x", ch);
        else
            sqlite3_str_appendchar(out, 1, (char)ch);
    }
    sqlite3_str_appendchar(out, 1, '"');
}

static void
hex16(char out[17], uint64_t v)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = d[v & 15];
    out[16] = 0;
}

void
replicator_status(replicator *r, void *pOut)
{
    sqlite3_str *out = pOut;
    ls_cap cap;
    int have = sidecar_cap_read(r->sc, &cap);
    uint64_t rep = sidecar_replicated(r->sc);
    int64_t rep_ms = sidecar_replicated_at(r->sc);
    char a[17], b[17], c[17];
    hex16(a, have ? cap.txid : 0);
    hex16(b, rep);
    hex16(c, sidecar_spooled(r->sc));
    pthread_mutex_lock(&r->mu);
    sqlite3_str_appendall(out, "\"url\":");
    json_str(out, r->url->redacted);
    sqlite3_str_appendf(
        out,
        ","
        "\"txid\":\"%s\",\"spooled_txid\":\"%s\","
        "\"replicated_txid\":\"%s\",\"pending_txns\":%lld,"
        "\"lag_ms\":%lld,\"sync_interval_ms\":%d,\"spool_bytes\":%llu,"
        "\"queued_bytes\":%llu,\"shipping\":%s,\"uploads\":%llu,"
        "\"full_images\":%llu,\"errors\":%llu,"
        "\"counters\":{\"put\":%llu,\"get\":%llu,\"list\":%llu,"
        "\"delete\":%llu,\"bytes_up\":%llu,\"bytes_down\":%llu},"
        "\"last_upload\":%lld,\"last_error\":",
        a, c, b,
        (long long)((have && cap.txid > rep) ? cap.txid - rep : 0),
        (long long)((have && cap.txid > rep && rep_ms) ? now_ms() - rep_ms
                                                       : 0),
        r->opts.sync_interval_ms, (unsigned long long)spool_bytes(r->sp),
        (unsigned long long)r->queued_bytes, r->shipping ? "true" : "false",
        (unsigned long long)r->n_uploads,
        (unsigned long long)r->n_full_images,
        (unsigned long long)r->n_errors,
        (unsigned long long)r->counters.n_put,
        (unsigned long long)r->counters.n_get,
        (unsigned long long)r->counters.n_list,
        (unsigned long long)r->counters.n_delete,
        (unsigned long long)r->counters.bytes_up,
        (unsigned long long)r->counters.bytes_down,
        (long long)r->last_upload_ms);
    if (r->last_error) {
        sqlite3_str_appendall(out, "{\"message\":");
        json_str(out, r->last_error);
        sqlite3_str_appendf(out, ",\"at\":%lld}", (long long)r->last_error_ms);
    }
    else
        sqlite3_str_appendall(out, "null");
    pthread_mutex_unlock(&r->mu);
}
