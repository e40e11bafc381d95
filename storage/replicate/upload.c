/*
 * storage/replicate/upload.c: building and uploading L0 LTX objects (the
 * ship-lock holder's half of the replicator; see replicator_int.h).
 *
 * Invariants:
 *   1. An object covers TXIDs replicated+1 .. to, all present in the spool
 *      or superseded by a full image, so the replica never has a gap.
 *   2. The checksum table describes the database at the replicated TXID;
 *      it changes (and is saved) only after the replica acknowledged an
 *      object, so a failed upload is simply retried.
 *
 * Replicator thread only.
 */
#include "storage/base/fsutil.h"
#include "storage/base/mem.h"
#include "storage/local/image.h"
#include "storage/backend/layout.h"
#include "storage/ltx/ltx.h"
#include "storage/replicate/replicator_int.h"
#include "storage/local/wal.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#define BATCH_MAX_BYTES (256ull << 20)

#define SPILL_BYTES (8u << 20)

/*
 * Where an object is encoded: memory while small, a temporary file in the
 * sidecar once it passes SPILL_BYTES, so a big object never sits in memory
 * whole (and the file backend can rename it into place).
 */
typedef struct outbuf {
    replicator *r;
    uint8_t *p;
    size_t n, cap;
    int fd;      /* -1 until spilled */
    char *zPath; /* the spill file */
    uint64_t total;
} outbuf;

static int
outbuf_write(void *ctx, const void *buf, size_t n)
{
    outbuf *m = ctx;
    if (m->fd < 0 && m->n + n > SPILL_BYTES) {
        m->zPath = sqlite3_mprintf("%s/upload.ltx.tmp", sidecar_dir(m->r->sc));
        if (!m->zPath)
            return 1;
        m->fd = open(m->zPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (m->fd < 0 || fs_write_all(m->fd, m->p, m->n) != 0)
            return 1;
        m->n = 0;
    }
    if (m->fd >= 0) {
        if (fs_write_all(m->fd, buf, n) != 0)
            return 1;
    } else {
        if (m->n + n > m->cap) {
            size_t nc = m->cap ? m->cap : 1 << 16;
            while (nc < m->n + n)
                nc *= 2;
            uint8_t *p = ls_realloc(m->p, nc);
            if (!p)
                return 1;
            m->p = p;
            m->cap = nc;
        }
        memcpy(m->p + m->n, buf, n);
        m->n += n;
    }
    m->total += n;
    return 0;
}

static void
outbuf_free(outbuf *m)
{
    if (m->fd >= 0)
        close(m->fd);
    if (m->zPath)
        unlink(m->zPath);
    sqlite3_free(m->zPath);
    ls_free(m->p);
}

/* Puts an encoded object and records counters; rc of the backend. */
static int
put_object(replicator *r, uint64_t min, uint64_t max, outbuf *m, int64_t ts)
{
    char key[256];
    int rc = layout_key(r->be, 0, min, max, key, sizeof(key));
    if (rc != SQLITE_OK)
        return rc;
    if (m->fd >= 0) {
        close(m->fd);
        m->fd = -1;
        rc = backend_put_file(r->be, key, m->zPath, m->total, ts);
    } else {
        rc = r->be->vt->put(r->be, key, m->p, m->n, ts);
    }
    if (rc != SQLITE_OK) {
        rep_set_error(r, sqlite3_mprintf("litestream: upload of %s to %s "
                                         "failed: %s",
                                         key, r->url->redacted,
                                         backend_why(r->be)));
    }
    return rc;
}

/* After an acknowledged upload: advance the position, drop the spool. */
static void
uploaded(replicator *r, uint64_t to, int full, const uint32_t *changed,
         size_t nchanged, const wal_pos *pos)
{
    r->rep_pos = *pos;
    int64_t t = rep_now_ms();
    /* Saved before the position moves: a crash in between leaves a table
     * for a TXID the position does not name, which simply does not load. */
    if (cktab_save(&r->ck, to, changed, nchanged) != SQLITE_OK)
        sqlite3_log(SQLITE_WARNING, "litestream: cannot save %s", r->ck.zPath);
    sidecar_set_replicated(r->sc, to, t);
    spool_drop_upto(r->sp, to);
    pthread_mutex_lock(&r->mu);
    r->last_upload_ms = t;
    if ((int64_t)spool_bytes(r->sp) < r->opts.spool_limit)
        r->spool_full = 0;
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
/* The pre-apply checksum of an object starting at TXID from. */
static uint64_t
pre_apply_of(replicator *r, uint64_t from)
{
    if (from == 1)
        return 0; /* a snapshot */
    if (r->ck.valid || r->pre_known)
        return r->ck.sum;
    return LTX_CHECKSUM_FLAG; /* unknown: restores still verify the end */
}

int
rep_upload_full(replicator *r)
{
    int rc;
    image *im = NULL;
    uint64_t txid = 0;
    uint32_t commit = 0, ps = 0;
    char *zErr = NULL;
    ltx_encoder *enc = NULL;
    outbuf m = {.r = r, .fd = -1};
    uint8_t *page = NULL;
    uint64_t *nc = NULL; /* the image's per-page checksums */
    uint64_t from = sidecar_replicated(r->sc) + 1;
    int64_t ts = rep_now_ms();

    rc =
        image_open(r->zDbPath, r->zVfs, r->sc, &im, &txid, &commit, &ps, &zErr);
    if (rc != SQLITE_OK)
        goto out;
    const ls_cap *ic = image_cap(im);
    wal_pos pos = {ic->salt1, ic->salt2, ic->frame, ic->cksum1, ic->cksum2};
    if (txid < from) {
        rc = SQLITE_BUSY; /* nothing captured beyond the replica yet */
        goto out;
    }
    page = ls_malloc(ps);
    /* The image's checksums go to a table of their own, adopted only once
     * the replica acknowledged the object: a failed attempt leaves the
     * current table (and the pre-apply checksum it gives) untouched. */
    nc = sqlite3_malloc64(((uint64_t)commit + 1) * 8);
    if (!page || !nc) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(nc, 0, ((size_t)commit + 1) * 8);
    ltx_header h = {.flags = 0,
                    .page_size = ps,
                    .commit = commit,
                    .min_txid = from,
                    .max_txid = txid,
                    .timestamp = ts,
                    .pre_apply = pre_apply_of(r, from)};
    rc = ltx_encoder_open(&h, outbuf_write, &m, &enc);
    if (rc != SQLITE_OK)
        goto enc_err;
    uint32_t lock = ltx_lock_pgno(ps);
    uint64_t sum = LTX_CHECKSUM_FLAG;
    for (uint32_t p = 1; p <= commit; p++) {
        if (p == lock)
            continue;
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
        nc[p] = ltx_page_checksum(p, page, ps);
        sum = ltx_checksum_fold(sum, nc[p]);
    }
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
        sqlite3_free(r->ck.c);
        r->ck.c = nc;
        nc = NULL;
        r->ck.cap = commit;
        r->ck.commit = commit;
        r->ck.sum = sum;
        r->ck.valid = 1;
        r->need_full = 0;
        uploaded(r, txid, 1, NULL, 0, &pos);
    }
    goto out;
enc_err:
    zErr = sqlite3_mprintf("litestream: encoding a full image failed: %s",
                           enc ? ltx_encoder_errmsg(enc) : "out of memory");
out:
    if (zErr)
        rep_set_error(r, zErr);
    image_close(im);
    ltx_encoder_free(enc);
    outbuf_free(&m);
    ls_free(page);
    sqlite3_free(nc);
    return rc;
}

/* pgno -> (record << 32 | page index): open addressing, pgno 0 = empty. */
typedef struct pmap {
    uint32_t *key;
    uint64_t *val;
    uint32_t cap, n;
} pmap;

static void
pmap_free(pmap *m)
{
    ls_free(m->key);
    ls_free(m->val);
    memset(m, 0, sizeof(*m));
}

static void
pmap_clear(pmap *m)
{
    if (m->key)
        memset(m->key, 0, sizeof(*m->key) * m->cap);
    m->n = 0;
}

static uint32_t
pmap_slot(const pmap *m, uint32_t k)
{
    uint32_t i = (k * 2654435761u) & (m->cap - 1);
    while (m->key[i] && m->key[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Sets k -> v.  1 if k was there (*old = its value), 0 if new, -1 NOMEM. */
static int
pmap_put(pmap *m, uint32_t k, uint64_t v, uint64_t *old)
{
    if ((uint64_t)(m->n + 1) * 2 > m->cap) {
        pmap g = {0};
        g.cap = m->cap ? m->cap * 2 : 1024;
        g.key = ls_malloc(sizeof(*g.key) * g.cap);
        g.val = ls_malloc(sizeof(*g.val) * g.cap);
        if (!g.key || !g.val) {
            pmap_free(&g);
            return -1;
        }
        memset(g.key, 0, sizeof(*g.key) * g.cap);
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->key[i]) {
                uint32_t j = pmap_slot(&g, m->key[i]);
                g.key[j] = m->key[i];
                g.val[j] = m->val[i];
                g.n++;
            }
        pmap_free(m);
        *m = g;
    }
    uint32_t i = pmap_slot(m, k);
    if (m->key[i]) {
        *old = m->val[i];
        m->val[i] = v;
        return 1;
    }
    m->key[i] = k;
    m->val[i] = v;
    m->n++;
    return 0;
}

typedef struct batch_page {
    uint32_t pgno;
    uint32_t rec; /* index into the batch's records */
    uint32_t idx; /* page index inside the record */
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
    uint64_t nrec = 0, nbp = 0;
    ltx_encoder *enc = NULL;
    outbuf m = {.r = r, .fd = -1};
    uint64_t *newck = NULL;
    uint32_t *changed = NULL;
    uint8_t *scratch = NULL;
    char *zErr = NULL;
    int64_t ts = rep_now_ms();
    int image_base = 0;
    uint64_t nread = to - from + 1;
    uint32_t *live = NULL; /* per record: pages it still owns */
    pmap pm = {0};

    recs = ls_malloc(sizeof(*recs) * (to - from + 1));
    live = ls_malloc(sizeof(*live) * (to - from + 1));
    if (!recs || !live) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(recs, 0, sizeof(*recs) * (to - from + 1));
    int marker = 0; /* a full image is needed and none followed yet */
    uint64_t last = from - 1;
    uint32_t ps = 0, commit = 0;
    wal_pos last_pos = {0};
    for (uint64_t t = from; t <= to; t++) {
        spool_txn *rec = &recs[nrec];
        rc = spool_read(r->sp, t, rec);
        if (rc != SQLITE_OK) {
            zErr = sqlite3_mprintf("litestream: spool record %llu "
                                   "unreadable (%s): taking a full image",
                                   (unsigned long long)t, sqlite3_errstr(rc));
            r->need_full = 1;
            goto out;
        }
        if (rec->flags & SPOOL_F_IMAGE) {
            /* A full image supersedes everything before it in this
             * object: the object still covers from..to, its pages are the
             * image and what follows it. */
            for (uint64_t i = 0; i < nrec; i++)
                spool_txn_free(&recs[i]);
            recs[0] = *rec;
            if (nrec)
                memset(rec, 0, sizeof(*rec));
            rec = &recs[0];
            nrec = 0;
            pmap_clear(&pm);
            image_base = 1;
            marker = 0;
            ps = 0;
        } else if (rec->flags & SPOOL_F_FULL) {
            marker = 1;
        }
        if (rec->npages) {
            if (ps == 0)
                ps = rec->page_size;
            if (rec->page_size != ps) {
                /* page_size changed (VACUUM): only a full image is right. */
                r->need_full = 1;
                goto out;
            }
        }
        /* Newest copy wins; a record left with no page in the object is
         * released at once, so memory follows the distinct pages, not the
         * number of transactions. */
        live[nrec] = 0;
        for (uint32_t j = 0; j < rec->npages; j++) {
            uint64_t old;
            int had =
                pmap_put(&pm, rec->pgnos[j], ((uint64_t)nrec << 32) | j, &old);
            if (had < 0) {
                rc = SQLITE_NOMEM;
                goto out;
            }
            if (had) {
                uint64_t o = old >> 32;
                if (o != nrec && --live[o] == 0)
                    spool_txn_free(&recs[o]);
            }
            if (!had || (old >> 32) != nrec)
                live[nrec]++;
        }
        commit = rec->commit;
        last_pos = rec->pos;
        nrec++;
        last = t;
        if ((uint64_t)pm.n * ps > BATCH_MAX_BYTES && !marker)
            break; /* the rest goes in the next object */
    }
    if (marker) {
        /* Needs an image nobody has read yet (upload_full reads it). */
        r->need_full = 1;
        rc = SQLITE_OK;
        goto out;
    }
    to = last;
    if (!r->ck.valid && !image_base) {
        r->need_full = 1;
        goto out;
    }
    /* What the object applies to: the replicated state, or nothing at all
     * when it starts with a full image. */
    uint32_t base_commit = image_base ? 0 : r->ck.commit;
    nbp = pm.n;
    bp = ls_malloc(sizeof(*bp) * (nbp + 1));
    if (!bp) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    nbp = 0;
    for (uint32_t k = 0; k < pm.cap; k++)
        if (pm.key[k])
            bp[nbp++] = (batch_page){pm.key[k], (uint32_t)(pm.val[k] >> 32),
                                     (uint32_t)pm.val[k]};
    if (nbp > 1)
        qsort(bp, nbp, sizeof(*bp), batch_page_cmp);

    /* Pages new to the database must all be present (else full image). */
    {
        uint32_t expect = base_commit + 1;
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
        if (commit > base_commit && expect <= commit) {
            r->need_full = 1;
            goto out;
        }
    }
    rc = cktab_ensure(&r->ck, commit > r->ck.commit ? commit : r->ck.commit);
    if (rc != SQLITE_OK)
        goto out;
    newck = ls_malloc(sizeof(*newck) * (nbp + 1));
    scratch = ls_malloc(ps);
    if (!newck || !scratch) {
        rc = SQLITE_NOMEM;
        goto out;
    }

    ltx_header h = {.flags = 0,
                    .page_size = ps,
                    .commit = commit,
                    .min_txid = from,
                    .max_txid = to,
                    .timestamp = ts,
                    .pre_apply = pre_apply_of(r, from)};
    rc = ltx_encoder_open(&h, outbuf_write, &m, &enc);
    if (rc != SQLITE_OK)
        goto enc_err;
    uint64_t sum = image_base ? LTX_CHECKSUM_FLAG : r->ck.sum;
    for (uint32_t p = commit + 1; p <= base_commit; p++)
        if (r->ck.c[p])
            sum = ltx_checksum_fold(sum, r->ck.c[p]); /* shrunk away */
    uint64_t nout = 0;
    for (uint64_t i = 0; i < nbp; i++) {
        if (i + 1 < nbp && bp[i + 1].pgno == bp[i].pgno)
            continue;
        if (bp[i].pgno > commit)
            continue;
        const spool_txn *rec = &recs[bp[i].rec];
        const uint8_t *page = spool_txn_page(rec, bp[i].idx, scratch);
        if (!page) {
            rc = SQLITE_IOERR;
            zErr = sqlite3_mprintf("litestream: cannot read TXID %llu from "
                                   "the spool",
                                   (unsigned long long)rec->txid);
            goto out;
        }
        rc = ltx_encoder_page(enc, bp[i].pgno, page);
        if (rc != SQLITE_OK)
            goto enc_err;
        uint64_t c = ltx_page_checksum(bp[i].pgno, page, ps);
        if (bp[i].pgno <= base_commit && r->ck.c[bp[i].pgno])
            sum = ltx_checksum_fold(sum, r->ck.c[bp[i].pgno]);
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
    rc = cktab_ensure(&r->ck, commit);
    if (rc != SQLITE_OK)
        goto out; /* uploaded, but the table is lost: next time a full image */
    if (image_base) {
        memset(r->ck.c, 0, ((size_t)r->ck.cap + 1) * 8);
        r->ck.valid = 1;
        r->need_full = 0;
    }
    for (uint32_t p = commit + 1; p <= r->ck.commit; p++)
        r->ck.c[p] = 0;
    changed = image_base ? NULL : ls_malloc(sizeof(*changed) * (nout + 1));
    for (uint64_t i = 0; i < nout; i++) {
        r->ck.c[bp[i].pgno] = newck[i];
        if (changed)
            changed[i] = bp[i].pgno; /* ascending */
    }
    r->ck.commit = commit;
    r->ck.sum = sum;
    /* Without the list (out of memory) the whole table is rewritten. */
    uploaded(r, to, image_base, changed, changed ? nout : 0, &last_pos);
    goto out;
enc_err:
    zErr = sqlite3_mprintf("litestream: encoding TXIDs %llu-%llu failed: %s",
                           (unsigned long long)from, (unsigned long long)to,
                           enc ? ltx_encoder_errmsg(enc) : "out of memory");
out:
    if (zErr)
        rep_set_error(r, zErr);
    for (uint64_t i = 0; i < nread && recs; i++)
        spool_txn_free(&recs[i]);
    ls_free(live);
    pmap_free(&pm);
    ls_free(recs);
    ls_free(bp);
    ls_free(newck);
    ls_free(changed);
    ls_free(scratch);
    ltx_encoder_free(enc);
    outbuf_free(&m);
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
        rep_set_error(r, sqlite3_mprintf("litestream: cannot list %s: %s",
                                         r->url->redacted, backend_why(r->be)));
        return rc;
    }
    uint64_t max = 0;
    int last = -1;
    for (int i = 0; i < n; i++)
        if (files[i].max_txid > max) {
            max = files[i].max_txid;
            last = i;
        }
    uint64_t rep = sidecar_replicated(r->sc);
    /* This process may just have taken over the uploading from another
     * one: its table is only right for the TXID it was saved at. */
    if (!r->ck.valid || r->ck.txid != rep)
        cktab_load(&r->ck, rep);
    if (max != rep)
        r->ck.valid = 0; /* the saved table is for another TXID */
    if (last >= 0 && !r->ck.valid && files[last].size >= LTX_TRAILER_SIZE) {
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
            /* A trailer without the checksum flag is not a checksum (a
             * torn object on a store without atomic puts): unknown. */
            r->pre_known = (post & LTX_CHECKSUM_FLAG) != 0;
            if (r->pre_known)
                r->ck.sum = post;
        }
        sqlite3_free(tr);
    }
    sqlite3_free(files); /* ltx_info holds no pointers */
    if (max != rep || !r->ck.valid) {
        /* Unknown history or unknown checksums: continue above the
         * replica with a full image. */
        if (max > rep)
            sidecar_set_replicated(r->sc, max, rep_now_ms());
        if (max >= rep)
            sidecar_set_txid_floor(r->sc, max);
        else
            sidecar_set_replicated(r->sc, max, rep_now_ms());
        r->need_full = 1;
    }
    r->replica_checked = 1;
    return SQLITE_OK;
}

int
rep_upload_once(replicator *r)
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
    /* Even when a full image is needed, the spool may hold one (read by a
     * capture that could, e.g. in exclusive locking mode). */
    if (to > rep)
        rc = upload_incremental(r, rep + 1, to);
    if (rc == SQLITE_OK && r->need_full) {
        rc = rep_upload_full(r);
        if (rc == SQLITE_BUSY)
            rep_recapture_if_stale(r);
        else
            r->full_busy_since_ms = 0;
    } else if (rc == SQLITE_OK)
        rc = rep_fill_gap(r, to > rep ? to : rep);
    sqlite3_log(SQLITE_NOTICE,
                "litestream: upload rc=%d rep=%llu to=%llu full=%d "
                "cks=%d",
                rc, (unsigned long long)rep, (unsigned long long)to,
                r->need_full, r->ck.valid);
    if (rc == SQLITE_BUSY)
        rc = SQLITE_OK; /* retried next tick */
    return rc;
}
