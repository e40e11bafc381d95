/*
 * storage/replicate/upload.c: building and uploading L0 LTX objects (the
 * ship-lock holder's half of the replicator; upload.h).
 *
 * An incremental upload is a run of named steps: batch_read() (the spooled
 * records, newest copy of each page; batch.c), batch_sort(),
 * batch_applies() (known checksums, no missing page), encode_batch() (the
 * LTX object, the checksum chain from chain_start()), put_object(),
 * commit_batch() (checksum table, position, spool).  A full image:
 * image_open(), encode_image(), put_object(), adopt_image().
 *
 * Every function works for one replica (rep_target t of its replicator
 * t->r): its backend, checksum table and position.
 *
 * Invariants:
 *   1. An object covers TXIDs replicated+1 .. to, all present in the spool
 *      or superseded by a full image, so the replica never has a gap.
 *   2. The checksum table describes the database at the replicated TXID;
 *      it changes (and is saved) only after the replica acknowledged an
 *      object, so a failed upload is simply retried.
 *   3. The spool (shared by every replica and the replicator's spooling)
 *      is read only under the replicator's spool_mu, from the scan to the
 *      end of the encoding (a big record's pages are read from its segment
 *      as they are encoded); the lock is let go before any network I/O, so
 *      a replica that hangs holds up no other.
 *
 * Threads: the replica's upload task (targets.c), one pass at a time.
 */
#include "storage/replicate/upload.h"
#include "storage/replicate/spool_txn.h"

#include "storage/backend/age.h"
#include "storage/backend/layout.h"
#include "storage/base/fsutil.h"
#include "storage/base/killpoint.h"
#include "storage/base/mem.h"
#include "storage/local/image.h"
#include "storage/local/wal.h"
#include "storage/ltx/ltx.h"
#include "storage/replicate/batch.h"
#include "storage/replicate/recover.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#define BATCH_MAX_BYTES (256ull << 20)

#define SPILL_BYTES (2u << 20)

/*
 * Where an object is encoded: memory while small, a temporary file in the
 * sidecar once it passes SPILL_BYTES, so a big object never sits in memory
 * whole (and the file backend can rename it into place).
 */
typedef struct outbuf {
    rep_target *t;
    uint8_t *p;
    size_t n, cap;
    int fd;        /* -1 until spilled */
    int can_spool; /* the encoder holds spool_mu (an incremental object):
                    * it spools the queue meanwhile.  Not a full image,
                    * whose private read transaction is open (spooling may
                    * open another, and a fork waiting between the two
                    * would deadlock), nor does it hold the spool */
    char *zPath;   /* the spill file */
    uint64_t total;
} outbuf;

/*
 * The spill file of replica t: `upload.ltx.tmp` in the sidecar for the
 * first, in `<sidecar>/replica-N/` for replica N of a URL list (their
 * uploads run at the same time, and the file backend renames it into
 * place).
 */
static char *
spill_path(const rep_target *t)
{
    const char *zDir = sidecar_dir(t->r->sc);
    if (!t->idx)
        return sqlite3_mprintf("%s/upload.ltx.tmp", zDir);
    char *zSub = sqlite3_mprintf("%s/replica-%d", zDir, t->idx + 1);
    if (zSub)
        mkdir(zSub, 0700); /* EEXIST: there; else the open fails */
    char *z = zSub ? sqlite3_mprintf("%s/upload.ltx.tmp", zSub) : NULL;
    sqlite3_free(zSub);
    return z;
}

static int
outbuf_write(void *ctx, const void *buf, size_t n)
{
    outbuf *m = ctx;
    /* The application goes on committing while an object is encoded:
     * spool what it queued meanwhile, so the queue stays small. */
    if (m->can_spool)
        rep_spool_if_waiting(m->t->r);
    if (m->fd < 0 && m->n + n > SPILL_BYTES) {
        m->zPath = spill_path(m->t);
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
put_object(rep_target *t, uint64_t min, uint64_t max, outbuf *m, int64_t ts)
{
    replicator *r = t->r;
    char key[256];
    int rc = layout_key(t->be, 0, min, max, key, sizeof(key));
    if (rc != SQLITE_OK)
        return rc;
    if (m->fd >= 0) {
        close(m->fd);
        m->fd = -1;
        rc = backend_put_file(t->be, key, m->zPath, m->total, ts);
    } else {
        rc = t->be->vt->put(t->be, key, m->p, m->n, ts);
    }
    if (rc != SQLITE_OK) {
        rep_error(r, t,
                  sqlite3_mprintf("litestream: upload of %s to %s "
                                  "failed: %s",
                                  key, t->url->redacted, backend_why(t->be)));
    }
    return rc;
}

/* After an acknowledged upload: advance the replica's position, drop
 * the spool below what every replica holds. */
static void
uploaded(rep_target *tg, uint64_t to, int full, const uint32_t *changed,
         size_t nchanged, const wal_pos *pos)
{
    replicator *r = tg->r;
    KILLPOINT("upload-before-position");
    tg->rep_pos = *pos;
    int64_t t = clock_now_ms();
    /* Saved before the position moves: a crash in between leaves a table
     * for a TXID the position does not name, which simply does not load. */
    if (cktab_save(&tg->ck, to, changed, nchanged) != SQLITE_OK)
        sqlite3_log(SQLITE_WARNING, "litestream: cannot save %s", tg->ck.zPath);
    /* The position and the counts move together (under mu): a sync that
     * returns, and a status read after it, see both. */
    pthread_mutex_lock(&r->mu);
    if (full) /* fed from the spool again (a drop meanwhile keeps more) */
        __atomic_store_n(&tg->released, 0, __ATOMIC_RELEASE);
    sidecar_set_replicated_n(r->sc, tg->idx, to, t);
    tg->last_upload_ms = t;
    r->last_upload_ms = t;
    tg->n_uploads++;
    if (full)
        tg->n_full_images++;
    sqlite3_free(tg->last_error);
    tg->last_error = NULL;
    int clean = 1;
    for (int i = 0; i < r->ntg; i++)
        clean &= r->tg[i].last_error == NULL;
    if (clean) {
        sqlite3_free(r->last_error);
        r->last_error = NULL;
    }
    memcpy(&tg->counters, tg->be->vt->counters(tg->be), sizeof(tg->counters));
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->mu);
    rep_spool_lock(r);
    spool_drop_upto(r->sp, rep_spool_floor(r));
    rep_spool_unlock(r);
    pthread_mutex_lock(&r->mu);
    if ((int64_t)spool_bytes(r->sp) < r->opts.spool_limit)
        r->spool_full = 0;
    pthread_mutex_unlock(&r->mu);
}

/* The TXID the next object continues: the replicated one, or above
 * another history's TXIDs (check_replica). */
static uint64_t
continues_from(const rep_target *t)
{
    uint64_t rep = rep_replicated(t);
    return t->foreign_upto > rep ? t->foreign_upto : rep;
}

/* The pre-apply checksum of an object starting at TXID from. */
static uint64_t
pre_apply_of(const rep_target *t, uint64_t from)
{
    if (from == 1)
        return 0; /* a snapshot */
    if (t->ck.valid || t->pre_known)
        return t->ck.sum;
    return LTX_CHECKSUM_FLAG; /* unknown: restores still verify the end */
}

/* A full image being encoded: the pinned image and its geometry. */
typedef struct full_image {
    image *im;
    uint64_t from, txid; /* the TXIDs the object covers */
    uint32_t commit, ps;
    int64_t ts;
    uint64_t *nc; /* the image's per-page checksums, 1..commit */
    uint64_t sum; /* their database checksum */
} full_image;

/*
 * Encodes every page of the image (but the lock page) into m, computing
 * the per-page checksums and their sum.  The image's checksums go to a
 * table of their own, adopted only once the replica acknowledged the
 * object: a failed attempt leaves the current table (and the pre-apply
 * checksum it gives) untouched.  SQLITE_OK, SQLITE_BUSY (written to
 * meanwhile: take it again), or an error with *pzErr.
 */
static int
encode_image(rep_target *t, full_image *f, outbuf *m, char **pzErr)
{
    ltx_encoder *enc = NULL;
    uint8_t *page = ls_malloc(f->ps);
    int rc = SQLITE_NOMEM;

    f->nc = sqlite3_malloc64(((uint64_t)f->commit + 1) * 8);
    if (!page || !f->nc)
        goto out;
    KILLPOINT("image-mid");
    memset(f->nc, 0, ((size_t)f->commit + 1) * 8);
    ltx_header h = {.flags = 0,
                    .page_size = f->ps,
                    .commit = f->commit,
                    .min_txid = f->from,
                    .max_txid = f->txid,
                    .timestamp = f->ts,
                    .pre_apply = pre_apply_of(t, f->from)};
    rc = ltx_encoder_open(&h, outbuf_write, m, &enc);
    if (rc != SQLITE_OK)
        goto enc_err;
    uint32_t lock = ltx_lock_pgno(f->ps);
    f->sum = LTX_CHECKSUM_FLAG;
    for (uint32_t p = 1; p <= f->commit; p++) {
        if (p == lock)
            continue;
        rc = image_page(f->im, p, page);
        if (rc != SQLITE_OK) {
            *pzErr = sqlite3_mprintf("litestream: cannot read page %u of "
                                     "'%s' for a full image",
                                     p, t->r->zDbPath);
            goto out;
        }
        rc = ltx_encoder_page(enc, p, page);
        if (rc != SQLITE_OK)
            goto enc_err;
        f->nc[p] = ltx_page_checksum(p, page, f->ps);
        f->sum = ltx_checksum_fold(f->sum, f->nc[p]);
    }
    rc = image_done(f->im);
    if (rc != SQLITE_OK)
        goto out; /* written to meanwhile: take it again */
    rc = ltx_encoder_finish(enc, f->sum, NULL);
    if (rc == SQLITE_OK)
        goto out;
enc_err:
    *pzErr = sqlite3_mprintf("litestream: encoding a full image failed: %s",
                             enc ? ltx_encoder_errmsg(enc) : "out of memory");
out:
    ltx_encoder_free(enc);
    ls_free(page);
    return rc;
}

/* After the replica acknowledged a full image: its checksums become the
 * table, the position advances. */
static void
adopt_image(rep_target *t, full_image *f, const wal_pos *pos)
{
    sqlite3_free(t->ck.c);
    t->ck.c = f->nc;
    f->nc = NULL;
    t->ck.cap = f->commit;
    t->ck.commit = f->commit;
    t->ck.sum = f->sum;
    t->ck.valid = 1;
    t->need_full = 0;
    uploaded(t, f->txid, 1, NULL, 0, pos);
}

/*
 * Whether the file at the database's path is still the one replication
 * started on: an image read through a private connection after another
 * file was renamed over it would be that file's (replicator.c,
 * db_current(), stops replication at its next pass).
 */
static int
same_file(replicator *r)
{
    struct stat st;
    uint64_t ino = __atomic_load_n(&r->db_ino, __ATOMIC_ACQUIRE);
    return !ino || (stat(r->zDbPath, &st) == 0 &&
                    (uint64_t)st.st_dev ==
                        __atomic_load_n(&r->db_dev, __ATOMIC_RELAXED) &&
                    (uint64_t)st.st_ino == ino);
}

int
rep_upload_full(rep_target *t)
{
    replicator *r = t->r;
    full_image f = {.from = continues_from(t) + 1, .ts = clock_now_ms()};
    outbuf m = {.t = t, .fd = -1};
    char *zErr = NULL;

    int rc = image_open(r->zDbPath, r->zVfs, r->sc, &f.im, &f.txid, &f.commit,
                        &f.ps, &zErr);
    if (rc != SQLITE_OK)
        goto out;
    const ls_cap *ic = image_cap(f.im);
    wal_pos pos = {ic->salt1, ic->salt2, ic->frame, ic->cksum1, ic->cksum2};
    if (f.txid < f.from) {
        /* Nothing captured beyond the replica yet.  Above another
         * history's TXIDs no commit may come: the capture is asked for an
         * image (the next commit's, or a recapture's once the position
         * stood still, recover.c). */
        if (t->foreign_upto >= f.txid)
            __atomic_store_n(&r->want_image, 1, __ATOMIC_RELEASE);
        rc = SQLITE_BUSY;
        goto out;
    }
    rc = encode_image(t, &f, &m, &zErr);
    if (rc != SQLITE_OK)
        goto out;
    image_close(f.im);
    f.im = NULL;
    if (!same_file(r)) {
        rc = SQLITE_IOERR; /* replication stops at the next pass */
        zErr = sqlite3_mprintf("litestream: '%s' was replaced while its "
                               "image was read: not uploaded",
                               r->zDbPath);
        goto out;
    }
    rc = put_object(t, f.from, f.txid, &m, f.ts);
    if (rc == SQLITE_OK)
        adopt_image(t, &f, &pos);
out:
    if (zErr)
        rep_error(r, t, zErr);
    image_close(f.im);
    outbuf_free(&m);
    sqlite3_free(f.nc);
    return rc;
}

/*
 * The checksum of the database before the batch's pages: the replicated
 * state's (none when the batch starts with a full image), without the
 * pages the batch truncates away (base_commit+1 .. commit are folded out).
 */
static uint64_t
chain_start(const rep_target *t, const batch *b, uint32_t base_commit)
{
    uint64_t sum = b->image_base ? LTX_CHECKSUM_FLAG : t->ck.sum;
    for (uint32_t p = b->commit + 1; p <= base_commit; p++)
        if (t->ck.c[p])
            sum = ltx_checksum_fold(sum, t->ck.c[p]); /* shrunk away */
    return sum;
}

/*
 * Encodes the batch's pages (ascending) into one L0 object in m, advancing
 * the checksum chain: *sum receives the post-apply checksum, newck[i] the
 * new checksum of b->pages[i].  SQLITE_OK, or an error with *pzErr.
 */
static int
encode_batch(rep_target *t, const batch *b, int64_t ts, outbuf *m,
             uint64_t *newck, uint64_t *sum, char **pzErr)
{
    uint32_t ps = b->page_size;
    uint32_t base_commit = b->image_base ? 0 : t->ck.commit;
    ltx_encoder *enc = NULL;
    uint8_t *scratch = ls_malloc(ps);
    int rc;

    ltx_header h = {.flags = 0,
                    .page_size = ps,
                    .commit = b->commit,
                    .min_txid = b->from,
                    .max_txid = b->to,
                    .timestamp = ts,
                    .pre_apply = pre_apply_of(t, b->from)};
    if (!scratch)
        return SQLITE_NOMEM;
    rc = ltx_encoder_open(&h, outbuf_write, m, &enc);
    if (rc != SQLITE_OK)
        goto enc_err;
    *sum = chain_start(t, b, base_commit);
    for (uint64_t i = 0; i < b->npages; i++) {
        uint32_t pgno = b->pages[i].pgno;
        const uint8_t *page = batch_page_data(b, i, scratch);
        if (!page) {
            rc = SQLITE_IOERR;
            *pzErr = sqlite3_mprintf(
                "litestream: cannot read TXID %llu from the spool",
                (unsigned long long)b->recs[b->pages[i].rec].txid);
            goto out;
        }
        rc = ltx_encoder_page(enc, pgno, page);
        if (rc != SQLITE_OK)
            goto enc_err;
        newck[i] = ltx_page_checksum(pgno, page, ps);
        if (pgno <= base_commit && t->ck.c[pgno])
            *sum = ltx_checksum_fold(*sum, t->ck.c[pgno]);
        *sum = ltx_checksum_fold(*sum, newck[i]);
    }
    rc = ltx_encoder_finish(enc, *sum, NULL);
    if (rc == SQLITE_OK)
        goto out;
enc_err:
    *pzErr =
        sqlite3_mprintf("litestream: encoding TXIDs %llu-%llu failed: %s",
                        (unsigned long long)b->from, (unsigned long long)b->to,
                        enc ? ltx_encoder_errmsg(enc) : "out of memory");
out:
    ltx_encoder_free(enc);
    ls_free(scratch);
    return rc;
}

/*
 * After the replica acknowledged the batch's object: the checksum table
 * takes the new checksums (cleared first when the batch starts with a full
 * image), and the position advances.  SQLITE_OK, or SQLITE_NOMEM when the
 * table cannot grow (uploaded, but the table is lost: next time a full
 * image).
 */
static int
commit_batch(rep_target *t, const batch *b, const uint64_t *newck, uint64_t sum)
{
    int rc = cktab_ensure(&t->ck, b->commit);
    if (rc != SQLITE_OK)
        return rc;
    if (b->image_base) {
        memset(t->ck.c, 0, ((size_t)t->ck.cap + 1) * 8);
        t->ck.valid = 1;
        t->need_full = 0;
    }
    for (uint32_t p = b->commit + 1; p <= t->ck.commit; p++)
        t->ck.c[p] = 0;
    uint32_t *changed =
        b->image_base ? NULL : ls_malloc(sizeof(*changed) * (b->npages + 1));
    for (uint64_t i = 0; i < b->npages; i++) {
        t->ck.c[b->pages[i].pgno] = newck[i];
        if (changed)
            changed[i] = b->pages[i].pgno; /* ascending */
    }
    t->ck.commit = b->commit;
    t->ck.sum = sum;
    /* Without the list (out of memory) the whole table is rewritten. */
    uploaded(t, b->to, b->image_base, changed, changed ? b->npages : 0,
             &b->last_pos);
    ls_free(changed);
    return SQLITE_OK;
}

/*
 * Whether the batch can continue the replica incrementally: the checksums
 * of the replicated state are known (or the batch starts with an image)
 * and every page it adds to the database is in it.
 */
static int
batch_applies(const rep_target *t, const batch *b)
{
    if (!t->ck.valid && !b->image_base)
        return 0;
    return batch_complete(b, b->image_base ? 0 : t->ck.commit);
}

/*
 * The object of spool records from..to (or the first part of them, up to
 * BATCH_MAX_BYTES of pages), encoded into m with the checksum chain
 * advanced (*sum, newck[] per page of b): read the records, list the newest
 * copy of each page, check they apply, encode.  Caller holds spool_mu
 * (invariant 3).  *encoded: an object is in m.  Sets t->need_full when the
 * records cannot be applied incrementally (a full-image marker, a growth
 * whose new pages are missing, unknown checksums).
 */
static int
encode_spooled(rep_target *t, batch *b, uint64_t from, uint64_t to, int64_t ts,
               outbuf *m, uint64_t **newck, uint64_t *sum, int *encoded,
               char **pzErr)
{
    int rc = batch_read(b, t->r->sp, from, to, BATCH_MAX_BYTES, pzErr);
    if (b->need_full)
        t->need_full = 1;
    if (rc != SQLITE_OK || b->need_full)
        return rc;
    if ((rc = batch_sort(b)) != SQLITE_OK)
        return rc;
    if (!batch_applies(t, b)) {
        t->need_full = 1;
        return SQLITE_OK;
    }
    rc = cktab_ensure(&t->ck,
                      b->commit > t->ck.commit ? b->commit : t->ck.commit);
    if (rc != SQLITE_OK)
        return rc;
    *newck = ls_malloc(sizeof(**newck) * (b->npages + 1));
    if (!*newck)
        return SQLITE_NOMEM;
    rc = encode_batch(t, b, ts, m, *newck, sum, pzErr);
    *encoded = rc == SQLITE_OK;
    return rc;
}

/*
 * Uploads the spooled TXIDs after the replicated one as one L0 object:
 * under spool_mu, scan the spool, find how far it is contiguous (*pto) and
 * encode; then, without it, put the object and commit the position.
 * SQLITE_OK also when nothing was spooled or only a full image can
 * continue (t->need_full).
 */
static int
upload_incremental(rep_target *t, uint64_t *prep, uint64_t *pto)
{
    replicator *r = t->r;
    batch b;
    outbuf m = {.t = t, .fd = -1, .can_spool = 1};
    uint64_t *newck = NULL, sum = 0;
    char *zErr = NULL;
    int64_t ts = clock_now_ms();
    int encoded = 0;

    memset(&b, 0, sizeof(b));
    rep_spool_lock(r);
    int rc = spool_scan(r->sp);
    uint64_t rep = *prep = continues_from(t);
    *pto = rc == SQLITE_OK ? spool_contiguous(r->sp, rep + 1) : rep;
    /* Even when a full image is needed, the spool may hold one (read by a
     * capture that could, e.g. in exclusive locking mode). */
    if (*pto > rep)
        rc = encode_spooled(t, &b, rep + 1, *pto, ts, &m, &newck, &sum,
                            &encoded, &zErr);
    rep_spool_unlock(r);
    if (encoded)
        rc = put_object(t, rep + 1, b.to, &m, ts);
    if (encoded && rc == SQLITE_OK)
        rc = commit_batch(t, &b, newck, sum);
    if (zErr)
        rep_error(r, t, zErr);
    batch_free(&b);
    ls_free(newck);
    outbuf_free(&m);
    return rc;
}

/*
 * The next object's pre-apply checksum is the newest object's post-apply
 * checksum: read it from that object's trailer into t->ck.sum, and set
 * t->pre_known.  A trailer without the checksum flag is not a checksum (a
 * torn object on a store without atomic puts): unknown.  Nothing changes
 * when the trailer cannot be read.
 */
static void
read_post_apply(rep_target *t, const ltx_info *f)
{
    char key[256];
    uint8_t *tr = NULL;
    size_t ntr = 0;
    if (layout_key(t->be, f->level, f->min_txid, f->max_txid, key,
                   sizeof(key)) == SQLITE_OK &&
        t->be->vt->get(t->be, key, f->size - LTX_TRAILER_SIZE, LTX_TRAILER_SIZE,
                       &tr, &ntr) == SQLITE_OK &&
        ntr == LTX_TRAILER_SIZE) {
        uint64_t post = 0;
        for (int i = 0; i < 8; i++)
            post = (post << 8) | tr[i];
        t->pre_known = (post & LTX_CHECKSUM_FLAG) != 0;
        if (t->pre_known)
            t->ck.sum = post;
    }
    sqlite3_free(tr);
}

/*
 * The replica's newest object is encrypted if and only if our URL encrypts
 * (storage/backend/age.h): never add plaintext to an encrypted replica or
 * the reverse.
 */
static int
check_encryption(rep_target *t, const ltx_info *f)
{
    char key[256], *zErr = NULL;
    int rc =
        layout_key(t->be, f->level, f->min_txid, f->max_txid, key, sizeof(key));
    if (rc == SQLITE_OK)
        rc = age_check_object(t->be, key, &zErr);
    if (rc != SQLITE_OK)
        rep_error(t->r, t,
                  zErr ? zErr
                       : sqlite3_mprintf("litestream: %s", sqlite3_errstr(rc)));
    return rc;
}

/*
 * First upload of this process: learn where the replica is.  A replica
 * ahead of our position (restored database, lost sidecar, another writer)
 * makes TXIDs continue above it, starting with a full image.
 */
static int
check_replica(rep_target *t)
{
    replicator *r = t->r;
    ltx_info *files = NULL;
    int n = 0;
    int rc = layout_list_all(t->be, &files, &n);
    if (rc != SQLITE_OK) {
        rep_error(r, t,
                  sqlite3_mprintf("litestream: cannot list %s: %s",
                                  t->url->redacted, backend_why(t->be)));
        return rc;
    }
    uint64_t max = 0;
    int last = -1;
    for (int i = 0; i < n; i++)
        if (files[i].max_txid > max) {
            max = files[i].max_txid;
            last = i;
        }
    uint64_t rep = rep_replicated(t);
    /* This process may just have taken over the uploading from another
     * one: its table is only right for the TXID it was saved at. */
    if (!t->ck.valid || t->ck.txid != rep)
        cktab_load(&t->ck, rep);
    if (max != rep)
        t->ck.valid = 0; /* the saved table is for another TXID */
    if (last >= 0 && (rc = check_encryption(t, &files[last])) != SQLITE_OK) {
        sqlite3_free(files);
        return rc;
    }
    if (last >= 0 && !t->ck.valid && files[last].size >= LTX_TRAILER_SIZE)
        read_post_apply(t, &files[last]);
    sqlite3_free(files); /* ltx_info holds no pointers */
    if (max != rep || !t->ck.valid) {
        /* Unknown history or unknown checksums: continue above the
         * replica with a full image. */
        /* The replicated TXID stays ours: a litestream_sync() begun
         * before this check waits for the full image above `max`, not
         * for TXIDs of another history that happen to be higher. */
        if (max > rep)
            t->foreign_upto = max;
        if (max >= rep)
            sidecar_set_txid_floor(r->sc, max);
        else
            sidecar_set_replicated_n(r->sc, t->idx, max, clock_now_ms());
        t->need_full = 1;
    }
    t->replica_checked = 1;
    return SQLITE_OK;
}

/*
 * Acts on recovery's verdict on the TXIDs captured after `to` that no
 * spool holds: a full image when the WAL no longer has them.
 */
static int
fill_gap(rep_target *t, uint64_t to)
{
    rep_gap v;
    int rc = rep_fill_gap(t, to, &v);
    if (rc != SQLITE_OK || v != REP_GAP_IMAGE)
        return rc;
    rc = rep_upload_full(t);
    if (rc == SQLITE_BUSY) {
        rep_recapture_if_stale(t);
        return rc;
    }
    t->full_busy_since_ms = 0; /* the next busy spell has its own grace */
    if (rc == SQLITE_OK)
        t->gap_since_ms = 0;
    return rc;
}

int
rep_upload_once(rep_target *t)
{
    int rc;
    uint64_t rep = 0, to = 0;
    if (!t->replica_checked) {
        rc = check_replica(t);
        if (rc != SQLITE_OK)
            return rc;
    }
    rc = upload_incremental(t, &rep, &to);
    if (rc == SQLITE_OK && t->need_full) {
        rc = rep_upload_full(t);
        if (rc == SQLITE_BUSY)
            rep_recapture_if_stale(t);
        else
            t->full_busy_since_ms = 0;
    } else if (rc == SQLITE_OK) {
        rc = fill_gap(t, to > rep ? to : rep);
    }
    sqlite3_log(SQLITE_NOTICE,
                "litestream: upload rc=%d rep=%llu to=%llu full=%d "
                "cks=%d",
                rc, (unsigned long long)rep, (unsigned long long)to,
                t->need_full, t->ck.valid);
    if (rc == SQLITE_BUSY)
        rc = SQLITE_OK; /* retried next tick */
    return rc;
}
