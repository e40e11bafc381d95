/*
 * storage/ltx/merge.c: merging LTX files (compaction, docs/ltx-format.md 1.12)
 * and expanding a snapshot, or a merge that yields one, into a database image
 * (restore).
 *
 * Invariants:
 *  1. Streaming k-way merge: every input is read front to back exactly once
 *     and fully verified (ltx_decoder_close); memory is two pages plus the
 *     inputs' read buffers (plus one write batch when expanding), never
 *     proportional to the database.
 *  2. For each pgno the newest input (highest index) that holds it wins;
 *     the older copies are still decoded, since that is what verifies them.
 *  3. Pages above the last input's commit are dropped.  A merged snapshot
 *     must hold every page 1..commit but the lock page, which an image gets
 *     as zeros.
 *  4. A winning page in the current encoding is copied to the output as its
 *     LZ4 block (no recompression); expansion decompresses winners straight
 *     into the write batch.
 *  5. On error the output written so far is garbage; callers discard it.
 *
 * Threads: none of its own; runs on the caller's thread.
 */
#include "storage/base/sqlite.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/ltx/ltx.h"

#define LTX_BATCH_BYTES (1024 * 1024)

__attribute__((format(printf, 4, 5))) static int
ltx_merge_err(char *zErr, size_t nErr, int rc, const char *zFmt, ...)
{
    va_list ap;

    if (zErr && nErr) {
        va_start(ap, zFmt);
        vsnprintf(zErr, nErr, zFmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Copies a decoder's message, prefixed with which input it is. */
static int
ltx_merge_input_err(ltx_decoder *d, int i, int rc, char *zErr, size_t nErr)
{
    const ltx_header *h = ltx_decoder_header(d);
    const char *z = ltx_decoder_errmsg(d);

    if (strncmp(z, "ltx: ", 5) == 0)
        z += 5;
    return ltx_merge_err(
        zErr, nErr, rc, "ltx: merge input %d (%016llx-%016llx): %s", i,
        (unsigned long long)h->min_txid, (unsigned long long)h->max_txid, z);
}

/* Checks that inputs are fresh, of one page size and form a TXID chain. */
static int
ltx_merge_check(ltx_decoder **in, int n, char *zErr, size_t nErr)
{
    int rc = SQLITE_OK;

    if (n < 1 || !in) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_MISUSE, "ltx: merge of %d inputs",
                           n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const ltx_header *h, *p;
        if (!in[i] || ltx_decoder_offset(in[i]) != LTX_HEADER_SIZE) {
            rc = ltx_merge_err(zErr, nErr, SQLITE_MISUSE,
                               "ltx: merge input %d is not a freshly opened "
                               "decoder",
                               i);
            goto out;
        }
        if (i == 0)
            continue;
        h = ltx_decoder_header(in[i]);
        p = ltx_decoder_header(in[i - 1]);
        if (h->page_size != p->page_size) {
            rc = ltx_merge_err(
                zErr, nErr, SQLITE_CORRUPT,
                "ltx: merge input %d (%016llx-%016llx) has page size %u, "
                "input %d (%016llx-%016llx) %u",
                i, (unsigned long long)h->min_txid,
                (unsigned long long)h->max_txid, h->page_size, i - 1,
                (unsigned long long)p->min_txid,
                (unsigned long long)p->max_txid, p->page_size);
            goto out;
        }
        /* min_txid >= 1 (validated header): min - 1 cannot wrap */
        if (h->min_txid - 1 > p->max_txid || h->max_txid <= p->max_txid) {
            rc = ltx_merge_err(
                zErr, nErr, SQLITE_CORRUPT,
                "ltx: merge input %d (%016llx-%016llx) %s input %d "
                "(%016llx-%016llx)",
                i, (unsigned long long)h->min_txid,
                (unsigned long long)h->max_txid,
                h->max_txid <= p->max_txid ? "does not advance past"
                                           : "leaves a gap after",
                i - 1, (unsigned long long)p->min_txid,
                (unsigned long long)p->max_txid);
            goto out;
        }
    }
out:
    return rc;
}

/*
 * Closes (verifies) every input, then checks the checksum chain: adjacent
 * inputs that both carry checksums must agree.  *last_post receives the
 * last input's post-apply checksum.
 */
static int
ltx_merge_close(ltx_decoder **in, int n, uint64_t *last_post, char *zErr,
                size_t nErr)
{
    ltx_trailer t, prev = {0, 0};
    int rc = SQLITE_OK;

    for (int i = 0; i < n; i++) {
        const ltx_header *h = ltx_decoder_header(in[i]);
        const ltx_header *p = i ? ltx_decoder_header(in[i - 1]) : NULL;
        if ((rc = ltx_decoder_close(in[i], &t)) != SQLITE_OK) {
            ltx_merge_input_err(in[i], i, rc, zErr, nErr);
            goto out;
        }
        if (p && h->min_txid == p->max_txid + 1 && h->pre_apply &&
            prev.post_apply && h->pre_apply != prev.post_apply) {
            rc = ltx_merge_err(
                zErr, nErr, SQLITE_CORRUPT,
                "ltx: merge input %d (%016llx-%016llx) pre-apply checksum "
                "%016llx does not follow post-apply %016llx of input %d",
                i, (unsigned long long)h->min_txid,
                (unsigned long long)h->max_txid,
                (unsigned long long)h->pre_apply,
                (unsigned long long)prev.post_apply, i - 1);
            goto out;
        }
        prev = t;
    }
    *last_post = prev.post_apply;
out:
    return rc;
}

/*
 * The k-way cursor: cur[i] is the pgno of input i's pending frame, 0 once
 * it is exhausted.  Returns the smallest pending pgno (0: all done) and the
 * newest input holding it in *win.
 */
static uint32_t
ltx_merge_min(const uint32_t *cur, int n, int *win)
{
    uint32_t m = 0;

    for (int i = 0; i < n; i++) {
        if (cur[i] && (!m || cur[i] <= m)) {
            m = cur[i];
            *win = i;
        }
    }
    return m;
}

/* Advances input i to its next frame header. */
static int
ltx_merge_next(ltx_decoder **in, uint32_t *cur, int i, char *zErr, size_t nErr)
{
    int rc = ltx_decoder_next(in[i], &cur[i]);

    if (rc == SQLITE_DONE) {
        cur[i] = 0;
        rc = SQLITE_OK;
    } else if (rc != SQLITE_OK) {
        ltx_merge_input_err(in[i], i, rc, zErr, nErr);
    }
    return rc;
}

/*
 * Reads the pending page m of every input holding it: the winner into dst,
 * the others into scratch.  Advances those inputs.
 */
static int
ltx_merge_step(ltx_decoder **in, uint32_t *cur, int n, uint32_t m, int win,
               void *dst, void *scratch, char *zErr, size_t nErr)
{
    int rc = SQLITE_OK;

    for (int i = 0; i < n; i++) {
        if (cur[i] != m)
            continue;
        rc = ltx_decoder_read(in[i], i == win ? dst : scratch);
        if (rc != SQLITE_OK) {
            ltx_merge_input_err(in[i], i, rc, zErr, nErr);
            goto out;
        }
        if (i == win)
            continue; /* advanced by the caller once dst is used */
        if ((rc = ltx_merge_next(in, cur, i, zErr, nErr)) != SQLITE_OK)
            goto out;
    }
out:
    return rc;
}

/* Fills the output header of a merge (see ltx.h). */
static void
ltx_merge_header(ltx_decoder **in, int n, uint32_t out_flags, int64_t timestamp,
                 ltx_header *o)
{
    const ltx_header *first = ltx_decoder_header(in[0]);
    const ltx_header *last = ltx_decoder_header(in[n - 1]);

    memset(o, 0, sizeof(*o));
    o->flags = out_flags & LTX_HEADER_FLAG_MASK;
    o->page_size = first->page_size;
    o->commit = last->commit;
    o->min_txid = first->min_txid;
    o->max_txid = last->max_txid;
    o->timestamp = timestamp;
    if (!(o->flags & LTX_FLAG_NO_CHECKSUM) && !ltx_is_snapshot(o) &&
        (first->pre_apply == 0 || (last->flags & LTX_FLAG_NO_CHECKSUM)))
        o->flags |= LTX_FLAG_NO_CHECKSUM;
    if (!(o->flags & LTX_FLAG_NO_CHECKSUM) && !ltx_is_snapshot(o))
        o->pre_apply = first->pre_apply;
}

/* The merge loop proper: feeds the winning pages to enc. */
static int
ltx_merge_pages(ltx_decoder **in, int n, ltx_encoder *enc, int legacy,
                uint32_t commit, uint8_t *page, uint8_t *scratch, uint32_t *cur,
                char *zErr, size_t nErr)
{
    const ltx_header *o = ltx_decoder_header(in[0]);
    uint32_t m, lock = ltx_lock_pgno(o->page_size);
    uint64_t want = 1;
    int win = 0, rc = SQLITE_OK;
    const void *blk;
    size_t nblk;

    for (int i = 0; i < n && rc == SQLITE_OK; i++)
        rc = ltx_merge_next(in, cur, i, zErr, nErr);
    while (rc == SQLITE_OK && (m = ltx_merge_min(cur, n, &win)) != 0) {
        if (want == lock)
            want++;
        if (ltx_is_snapshot(o) && m <= commit && m != want)
            break; /* a missing page, reported below */
        rc = ltx_merge_step(in, cur, n, m, win, page, scratch, zErr, nErr);
        if (rc == SQLITE_OK && m <= commit) {
            want = (uint64_t)m + 1;
            blk = legacy ? NULL : ltx_decoder_payload(in[win], &nblk);
            rc = blk ? ltx_encoder_page_lz4(enc, m, page, blk, nblk)
                     : ltx_encoder_page(enc, m, page);
            if (rc != SQLITE_OK)
                ltx_merge_err(zErr, nErr, rc, "%s", ltx_encoder_errmsg(enc));
        }
        if (rc == SQLITE_OK)
            rc = ltx_merge_next(in, cur, win, zErr, nErr);
    }
    if (want == lock)
        want++;
    if (rc == SQLITE_OK && ltx_is_snapshot(o) && want <= commit) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_CORRUPT,
                           "ltx: merged snapshot lacks page %llu (commit %u)",
                           (unsigned long long)want, commit);
    }
    return rc;
}

/*
 * Finishes the merged file: its post-apply checksum is 0 without checksums,
 * the checksum of its pages for a snapshot, else the last input's.  A
 * merged snapshot's pages must match the last input's post-apply checksum
 * when it has one, whatever the output flags.
 */
static int
ltx_merge_finish(ltx_encoder *enc, const ltx_header *o, uint64_t last_post,
                 ltx_trailer *t, char *zErr, size_t nErr)
{
    uint64_t post = 0;
    int rc;

    if (ltx_is_snapshot(o) && last_post &&
        ltx_encoder_checksum(enc) != last_post) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_CORRUPT,
                           "ltx: merged snapshot has checksum %016llx, last "
                           "input's post-apply is %016llx",
                           (unsigned long long)ltx_encoder_checksum(enc),
                           (unsigned long long)last_post);
        goto out;
    }
    if (!(o->flags & LTX_FLAG_NO_CHECKSUM))
        post = ltx_is_snapshot(o) ? ltx_encoder_checksum(enc) : last_post;
    if ((rc = ltx_encoder_finish(enc, post, t)) != SQLITE_OK)
        ltx_merge_err(zErr, nErr, rc, "%s", ltx_encoder_errmsg(enc));
out:
    return rc;
}

int
ltx_merge(ltx_decoder **in, int n, uint32_t out_flags, int64_t timestamp,
          ltx_write_fn xWrite, void *ctx, ltx_header *out_hdr,
          ltx_trailer *out_trailer, char *zErr, size_t nErr)
{
    ltx_encoder *enc = NULL;
    ltx_header o;
    ltx_trailer t;
    uint8_t *page = NULL, *scratch = NULL;
    uint32_t *cur = NULL;
    uint64_t last_post = 0;
    int rc;

    if ((rc = ltx_merge_check(in, n, zErr, nErr)) != SQLITE_OK)
        goto out;
    if (out_flags & ~(LTX_HEADER_FLAG_MASK | LTX_MERGE_LEGACY_FRAMES)) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_MISUSE,
                           "ltx: merge: unsupported flags 0x%08x", out_flags);
        goto out;
    }
    ltx_merge_header(in, n, out_flags, timestamp, &o);
    page = malloc(o.page_size);
    scratch = malloc(o.page_size);
    cur = calloc((size_t)n, sizeof(*cur));
    if (!page || !scratch || !cur) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_NOMEM, "ltx: out of memory");
        goto out;
    }
    rc = ltx_encoder_open(&o, xWrite, ctx, &enc);
    if (rc == SQLITE_OK && (out_flags & LTX_MERGE_LEGACY_FRAMES))
        rc = ltx_encoder_set_legacy(enc, 1);
    if (rc != SQLITE_OK) {
        ltx_merge_err(zErr, nErr, rc, "%s", ltx_encoder_errmsg(enc));
        goto out;
    }
    rc = ltx_merge_pages(in, n, enc, (out_flags & LTX_MERGE_LEGACY_FRAMES) != 0,
                         o.commit, page, scratch, cur, zErr, nErr);
    if (rc != SQLITE_OK)
        goto out;
    if ((rc = ltx_merge_close(in, n, &last_post, zErr, nErr)) != SQLITE_OK)
        goto out;
    if ((rc = ltx_merge_finish(enc, &o, last_post, &t, zErr, nErr)))
        goto out;
    if (out_hdr)
        *out_hdr = o;
    if (out_trailer)
        *out_trailer = t;
out:
    ltx_encoder_free(enc);
    free(cur);
    free(scratch);
    free(page);
    return rc;
}

/* ---- Expansion into a database image ---------------------------------- */

/* A run of consecutive pages being assembled for one pwrite. */
struct ltx_batch {
    ltx_pwrite_fn xPwrite;
    void *ctx;
    uint8_t *buf;
    uint32_t page_size;
    uint32_t cap;   /* pages per batch */
    uint32_t first; /* pgno of buf's first page */
    uint32_t n;     /* pages in buf */
};

static int
ltx_batch_flush(struct ltx_batch *b, char *zErr, size_t nErr)
{
    uint64_t off = (uint64_t)(b->first - 1) * b->page_size;
    size_t len = (size_t)b->n * b->page_size;
    int rc = SQLITE_OK;

    if (b->n && b->xPwrite(b->ctx, b->buf, len, off) != 0) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_IOERR,
                           "ltx: write of %zu bytes at offset %llu failed", len,
                           (unsigned long long)off);
        goto out;
    }
    b->first += b->n;
    b->n = 0;
out:
    return rc;
}

/* The slot for the next page, flushing a full batch first. */
static int
ltx_batch_slot(struct ltx_batch *b, uint8_t **slot, char *zErr, size_t nErr)
{
    int rc = SQLITE_OK;

    if (b->n == b->cap && (rc = ltx_batch_flush(b, zErr, nErr)) != SQLITE_OK)
        goto out;
    *slot = b->buf + (size_t)b->n * b->page_size;
out:
    return rc;
}

/*
 * Writes page `want` when it is the lock page (zeros) and advances want.
 * Returns SQLITE_OK with nothing done otherwise.
 */
static int
ltx_batch_lock(struct ltx_batch *b, uint64_t *want, uint32_t lock,
               uint32_t commit, char *zErr, size_t nErr)
{
    uint8_t *slot;
    int rc = SQLITE_OK;

    if (*want != lock || lock > commit)
        goto out;
    if ((rc = ltx_batch_slot(b, &slot, zErr, nErr)) != SQLITE_OK)
        goto out;
    memset(slot, 0, b->page_size);
    b->n++;
    (*want)++;
out:
    return rc;
}

/* The merge loop for an image: winners decode straight into the batch. */
static int
ltx_expand_pages(ltx_decoder **in, int n, struct ltx_batch *b, uint32_t commit,
                 uint8_t *scratch, uint32_t *cur, uint64_t *cksum, char *zErr,
                 size_t nErr)
{
    uint32_t m, lock = ltx_lock_pgno(b->page_size);
    uint64_t want = 1;
    uint8_t *slot;
    int win = 0, rc = SQLITE_OK;

    for (int i = 0; i < n && rc == SQLITE_OK; i++)
        rc = ltx_merge_next(in, cur, i, zErr, nErr);
    while (rc == SQLITE_OK && (m = ltx_merge_min(cur, n, &win)) != 0) {
        if ((rc = ltx_batch_lock(b, &want, lock, commit, zErr, nErr)))
            break;
        if (m <= commit && m != want)
            break; /* a missing page, reported below */
        slot = scratch;
        if (m <= commit && (rc = ltx_batch_slot(b, &slot, zErr, nErr)))
            break;
        rc = ltx_merge_step(in, cur, n, m, win, slot, scratch, zErr, nErr);
        if (rc != SQLITE_OK)
            break;
        if (m <= commit) {
            *cksum =
                ltx_checksum_fold(*cksum, ltx_decoder_page_checksum(in[win]));
            b->n++;
            want++;
        }
        rc = ltx_merge_next(in, cur, win, zErr, nErr);
    }
    if (rc == SQLITE_OK)
        rc = ltx_batch_lock(b, &want, lock, commit, zErr, nErr);
    if (rc == SQLITE_OK && want <= commit) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_CORRUPT,
                           "ltx: snapshot lacks page %llu (commit %u)",
                           (unsigned long long)want, commit);
    }
    if (rc == SQLITE_OK)
        rc = ltx_batch_flush(b, zErr, nErr);
    return rc;
}

int
ltx_merge_expand(ltx_decoder **in, int n, ltx_pwrite_fn xPwrite, void *ctx,
                 ltx_header *out_hdr, uint64_t *cksum, char *zErr, size_t nErr)
{
    struct ltx_batch b;
    ltx_header o;
    uint8_t *scratch = NULL;
    uint32_t *cur = NULL;
    uint64_t c = LTX_CHECKSUM_FLAG, last_post = 0;
    int rc;

    memset(&b, 0, sizeof(b));
    if ((rc = ltx_merge_check(in, n, zErr, nErr)) != SQLITE_OK)
        goto out;
    if (!ltx_is_snapshot(ltx_decoder_header(in[0])) || !xPwrite) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_MISUSE,
                           "ltx: expand needs a snapshot (min TXID 1) "
                           "first and a write callback");
        goto out;
    }
    ltx_merge_header(in, n, 0, ltx_decoder_header(in[n - 1])->timestamp, &o);
    b.xPwrite = xPwrite;
    b.ctx = ctx;
    b.page_size = o.page_size;
    b.cap = LTX_BATCH_BYTES / o.page_size;
    b.first = 1;
    b.buf = malloc((size_t)b.cap * o.page_size);
    scratch = malloc(o.page_size);
    cur = calloc((size_t)n, sizeof(*cur));
    if (!b.buf || !scratch || !cur) {
        rc = ltx_merge_err(zErr, nErr, SQLITE_NOMEM, "ltx: out of memory");
        goto out;
    }
    rc = ltx_expand_pages(in, n, &b, o.commit, scratch, cur, &c, zErr, nErr);
    if (rc != SQLITE_OK)
        goto out;
    if ((rc = ltx_merge_close(in, n, &last_post, zErr, nErr)) != SQLITE_OK)
        goto out;
    if (last_post && last_post != c) {
        rc =
            ltx_merge_err(zErr, nErr, SQLITE_CORRUPT,
                          "ltx: restored database has checksum %016llx, "
                          "last input's post-apply is %016llx",
                          (unsigned long long)c, (unsigned long long)last_post);
        goto out;
    }
    if (out_hdr)
        *out_hdr = o;
    if (cksum)
        *cksum = c;
out:
    free(cur);
    free(scratch);
    free(b.buf);
    return rc;
}

int
ltx_expand(ltx_decoder *snap, ltx_pwrite_fn xPwrite, void *ctx, uint64_t *cksum,
           char *zErr, size_t nErr)
{
    return ltx_merge_expand(&snap, 1, xPwrite, ctx, NULL, cksum, zErr, nErr);
}
