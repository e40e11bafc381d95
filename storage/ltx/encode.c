/*
 * storage/ltx/encode.c: the streaming LTX encoder (docs/ltx-format.md section
 * 1): header, page frames in either page encoding, page index and trailer,
 * written through the caller's callback.
 *
 * Invariants:
 *  1. The file CRC and a page's checksum share one CRC pass over the page:
 *     c = CRC(page), file = combine(file, c), P = combine(CRC(BE32 pgno), c)
 *     (crc64_combine_op with the operator for page_size bytes).
 *  2. Output is buffered; the buffer always has room for the largest frame
 *     either encoding can produce (frame_max) before a frame is built in
 *     place, so a frame is never split across a flush.
 *  3. Errors are sticky once the output may be inconsistent (I/O, memory,
 *     compressor); caller mistakes (SQLITE_MISUSE) are reported without
 *     touching the stream.
 *  4. Memory: the output buffer plus the page index (16 bytes a page).
 *
 * Threads: no global state; an encoder must be used by one thread at a
 * time.
 */
#include "storage/base/sqlite.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/ltx/crc64.h"
#include "storage/ltx/ltx.h"
#include "storage/ltx/ltx_int.h"

#define LTX_OUT_BUF (256 * 1024) /* encoder output buffer */

enum { LTX_ENC_OPEN, LTX_ENC_FINISHED, LTX_ENC_FAILED };

struct ltx_encoder {
    ltx_header hdr;
    ltx_write_fn xWrite;
    void *ctx;
    int state;
    int rc;     /* the sticky error when state is FAILED */
    int legacy; /* write LZ4 frames (page flags 0) */
    uint32_t lock_pgno;
    uint32_t last_pgno; /* last page written, 0 before the first */
    uint64_t op;        /* crc64_combine_gen(page_size) */
    uint64_t crc;       /* file CRC so far */
    uint64_t cksum;     /* rolling database checksum of the pages */
    uint64_t size;      /* bytes produced (flushed + buffered) */
    uint8_t *out;       /* output buffer: nout bytes pending */
    size_t nout, cap;
    size_t frame_max; /* largest frame either encoding can produce */
    void *lz4;        /* ltx_block_state_new() */
    ltx_index_entry *idx;
    uint32_t nidx, aidx;
    char zErr[256];
};

__attribute__((format(printf, 3, 4))) static int
ltx_enc_err(ltx_encoder *enc, int rc, const char *zFmt, ...)
{
    va_list ap;

    va_start(ap, zFmt);
    vsnprintf(enc->zErr, sizeof(enc->zErr), zFmt, ap);
    va_end(ap);
    if (rc != SQLITE_MISUSE) {
        enc->state = LTX_ENC_FAILED;
        enc->rc = rc;
    }
    return rc;
}

static int
ltx_enc_flush(ltx_encoder *enc)
{
    int rc = SQLITE_OK;

    if (enc->nout && enc->xWrite(enc->ctx, enc->out, enc->nout) != 0) {
        rc = ltx_enc_err(
            enc, SQLITE_IOERR, "ltx: write of %zu bytes at offset %llu failed",
            enc->nout, (unsigned long long)(enc->size - enc->nout));
        goto out;
    }
    enc->nout = 0;
out:
    return rc;
}

/* Makes room for n more bytes in the output buffer (n <= cap). */
static int
ltx_enc_room(ltx_encoder *enc, size_t n)
{
    return enc->cap - enc->nout >= n ? SQLITE_OK : ltx_enc_flush(enc);
}

/* Appends n bytes that are part of the file checksum. */
static int
ltx_enc_emit(ltx_encoder *enc, const void *p, size_t n)
{
    int rc = ltx_enc_room(enc, n);

    if (rc == SQLITE_OK) {
        memcpy(enc->out + enc->nout, p, n);
        enc->nout += n;
        enc->size += n;
        enc->crc = crc64_update(enc->crc, p, n);
    }
    return rc;
}

int
ltx_encoder_open(const ltx_header *hdr, ltx_write_fn xWrite, void *ctx,
                 ltx_encoder **out)
{
    ltx_encoder *enc = calloc(1, sizeof(*enc));
    uint8_t buf[LTX_HEADER_SIZE];
    size_t legacy_max;
    int rc = SQLITE_OK;

    *out = enc;
    if (!enc) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (!hdr || !xWrite) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE, "ltx: no header or writer");
        goto out;
    }
    if (ltx_header_validate(hdr, enc->zErr, sizeof(enc->zErr)) != SQLITE_OK) {
        rc = SQLITE_MISUSE;
        goto out;
    }
    if (hdr->commit == 0 && (hdr->flags & LTX_FLAG_NO_CHECKSUM)) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: a file with commit 0 needs checksums (its "
                         "post-apply checksum must be 1<<63)");
        goto out;
    }
    enc->hdr = *hdr;
    enc->xWrite = xWrite;
    enc->ctx = ctx;
    enc->lock_pgno = ltx_lock_pgno(hdr->page_size);
    enc->op = crc64_combine_gen(hdr->page_size);
    enc->cksum = LTX_CHECKSUM_FLAG;
    legacy_max = LTX_PAGE_HEADER_SIZE + ltx_lz4f_bound(hdr->page_size);
    enc->frame_max = LTX_PAGE_HEADER_SIZE + LTX_PAGE_SIZE_PREFIX +
                     ltx_block_bound(hdr->page_size);
    if (legacy_max > enc->frame_max)
        enc->frame_max = legacy_max;
    enc->cap = LTX_OUT_BUF > enc->frame_max ? LTX_OUT_BUF : enc->frame_max;
    enc->out = malloc(enc->cap);
    enc->lz4 = ltx_block_state_new();
    if (!enc->out || !enc->lz4) {
        rc = ltx_enc_err(enc, SQLITE_NOMEM, "ltx: out of memory");
        goto out;
    }
    ltx_header_encode(hdr, buf);
    rc = ltx_enc_emit(enc, buf, sizeof(buf));
out:
    if (rc == SQLITE_NOMEM) {
        ltx_encoder_free(enc);
        *out = NULL;
    } else if (rc != SQLITE_OK) {
        enc->state = LTX_ENC_FAILED; /* refuse any further use */
        enc->rc = rc;
    }
    return rc;
}

int
ltx_encoder_set_legacy(ltx_encoder *enc, int on)
{
    int rc = SQLITE_OK;

    if (enc->state != LTX_ENC_OPEN || enc->last_pgno != 0) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: page encoding must be chosen before the "
                         "first page");
        goto out;
    }
    enc->legacy = on != 0;
out:
    return rc;
}

/* Checks that pgno may come next (docs/ltx-format.md 1.5 ordering rules). */
static int
ltx_enc_check_pgno(ltx_encoder *enc, uint32_t pgno)
{
    uint64_t want = (uint64_t)enc->last_pgno + 1;
    int rc = SQLITE_OK;

    if (want == enc->lock_pgno)
        want++;
    if (pgno == 0 || pgno > enc->hdr.commit) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: page %u out of range 1..%u (commit)", pgno,
                         enc->hdr.commit);
    } else if (pgno == enc->lock_pgno) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: page %u is the lock page and is never stored",
                         pgno);
    } else if (pgno <= enc->last_pgno) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: page %u after page %u: pages must ascend", pgno,
                         enc->last_pgno);
    } else if (ltx_is_snapshot(&enc->hdr) && pgno != want) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: snapshot page %u after page %u: snapshots "
                         "hold every page 1..commit",
                         pgno, enc->last_pgno);
    }
    return rc;
}

/* Records the frame just written in the index (growing it). */
static int
ltx_enc_index_add(ltx_encoder *enc, uint32_t pgno, uint64_t offset,
                  uint32_t size)
{
    int rc = SQLITE_OK;

    if (enc->nidx == enc->aidx) {
        uint32_t n = enc->aidx ? enc->aidx * 2 : 64;
        ltx_index_entry *p = realloc(enc->idx, (size_t)n * sizeof(*p));
        if (!p) {
            rc = ltx_enc_err(enc, SQLITE_NOMEM, "ltx: out of memory");
            goto out;
        }
        enc->idx = p;
        enc->aidx = n;
    }
    enc->idx[enc->nidx].pgno = pgno;
    enc->idx[enc->nidx].offset = offset;
    enc->idx[enc->nidx].size = size;
    enc->nidx++;
out:
    return rc;
}

/* Compresses page into the frame at f; returns the payload length (0 on
 * failure) and sets *hdrlen to the bytes of frame header before it. */
static size_t
ltx_enc_compress(ltx_encoder *enc, uint8_t *f, const void *page,
                 const void *block, size_t nblock, size_t *hdrlen)
{
    size_t room = enc->cap - enc->nout, n;
    uint32_t ps = enc->hdr.page_size;

    if (enc->legacy) {
        *hdrlen = LTX_PAGE_HEADER_SIZE;
        ltx_put16(f + 4, 0);
        return ltx_lz4f_encode(page, ps, f + 6, room - 6);
    }
    *hdrlen = LTX_PAGE_HEADER_SIZE + LTX_PAGE_SIZE_PREFIX;
    ltx_put16(f + 4, LTX_PAGE_FLAG_SIZE);
    if (block) {
        memcpy(f + 10, block, nblock);
        n = nblock;
    } else {
        n = ltx_block_encode(enc->lz4, page, ps, f + 10, room - 10);
    }
    ltx_put32(f + 6, (uint32_t)n);
    return n;
}

static int
ltx_enc_page(ltx_encoder *enc, uint32_t pgno, const void *page,
             const void *block, size_t nblock)
{
    uint64_t c, offset = enc->size;
    size_t hdrlen = 0, n;
    uint8_t *f;
    int rc;

    if (enc->state != LTX_ENC_OPEN) {
        rc = enc->state == LTX_ENC_FAILED
                 ? enc->rc
                 : ltx_enc_err(enc, SQLITE_MISUSE, "ltx: encoder finished");
        goto out;
    }
    if (!page) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE, "ltx: no page data");
        goto out;
    }
    if ((rc = ltx_enc_check_pgno(enc, pgno)) != SQLITE_OK)
        goto out;
    if (block && (enc->legacy || nblock == 0 ||
                  nblock > ltx_block_bound(enc->hdr.page_size))) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: page %u: precompressed block of %zu bytes "
                         "not usable here",
                         pgno, nblock);
        goto out;
    }
    if ((rc = ltx_enc_room(enc, enc->frame_max)) != SQLITE_OK)
        goto out;
    if ((rc = ltx_enc_index_add(enc, pgno, offset, 0)) != SQLITE_OK)
        goto out;
    f = enc->out + enc->nout;
    ltx_put32(f, pgno);
    n = ltx_enc_compress(enc, f, page, block, nblock, &hdrlen);
    if (n == 0) {
        rc = ltx_enc_err(enc, SQLITE_INTERNAL,
                         "ltx: page %u: LZ4 compression failed", pgno);
        goto out;
    }
    c = crc64_update(0, page, enc->hdr.page_size);
    enc->crc = crc64_combine_op(crc64_update(enc->crc, f, hdrlen), c, enc->op);
    enc->cksum = ltx_checksum_fold(
        enc->cksum, LTX_CHECKSUM_FLAG |
                        crc64_combine_op(crc64_update(0, f, 4), c, enc->op));
    enc->idx[enc->nidx - 1].size = (uint32_t)(hdrlen + n);
    enc->nout += hdrlen + n;
    enc->size += hdrlen + n;
    enc->last_pgno = pgno;
out:
    return rc;
}

int
ltx_encoder_page(ltx_encoder *enc, uint32_t pgno, const void *page)
{
    return ltx_enc_page(enc, pgno, page, NULL, 0);
}

int
ltx_encoder_page_lz4(ltx_encoder *enc, uint32_t pgno, const void *page,
                     const void *block, size_t n)
{
    int rc;

    if (!block) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE, "ltx: no LZ4 block");
        goto out;
    }
    rc = ltx_enc_page(enc, pgno, page, block, n);
out:
    return rc;
}

/* The finish() rules that do not depend on the output (docs/ltx-format.md 1.6).
 */
static int
ltx_enc_check_finish(ltx_encoder *enc, uint64_t post)
{
    const ltx_header *h = &enc->hdr;
    int nock = (h->flags & LTX_FLAG_NO_CHECKSUM) != 0;
    uint64_t want = (uint64_t)enc->last_pgno + 1;
    int rc = SQLITE_OK;

    if (want == enc->lock_pgno)
        want++;
    if (ltx_is_snapshot(h) && want <= h->commit) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: snapshot lacks pages %llu..%u",
                         (unsigned long long)want, h->commit);
    } else if (nock && post != 0) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: post-apply checksum %016llx with the "
                         "NoChecksum flag (must be 0)",
                         (unsigned long long)post);
    } else if (!nock && !(post & LTX_CHECKSUM_FLAG)) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: post-apply checksum %016llx lacks bit 63",
                         (unsigned long long)post);
    } else if (!nock && h->commit == 0 && post != LTX_CHECKSUM_FLAG) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: commit 0 needs post-apply checksum "
                         "8000000000000000, not %016llx",
                         (unsigned long long)post);
    } else if (!nock && ltx_is_snapshot(h) && post != enc->cksum) {
        rc = ltx_enc_err(enc, SQLITE_MISUSE,
                         "ltx: post-apply checksum %016llx is not the "
                         "checksum of the snapshot's pages (%016llx)",
                         (unsigned long long)post,
                         (unsigned long long)enc->cksum);
    }
    return rc;
}

/* Writes the page index: varint triples, 0, u64 length. */
static int
ltx_enc_write_index(ltx_encoder *enc)
{
    uint8_t buf[32];
    uint64_t len = 0;
    size_t k;
    int rc = SQLITE_OK;

    for (uint32_t i = 0; i < enc->nidx && rc == SQLITE_OK; i++) {
        k = ltx_put_uvarint(buf, enc->idx[i].pgno);
        k += ltx_put_uvarint(buf + k, enc->idx[i].offset);
        k += ltx_put_uvarint(buf + k, enc->idx[i].size);
        len += k;
        rc = ltx_enc_emit(enc, buf, k);
    }
    if (rc != SQLITE_OK)
        goto out;
    buf[0] = 0;
    ltx_put64(buf + 1, len + 1);
    rc = ltx_enc_emit(enc, buf, 9);
out:
    return rc;
}

int
ltx_encoder_finish(ltx_encoder *enc, uint64_t post_apply, ltx_trailer *out)
{
    uint8_t buf[LTX_TRAILER_SIZE];
    int rc;

    if (enc->state != LTX_ENC_OPEN) {
        rc = enc->state == LTX_ENC_FAILED
                 ? enc->rc
                 : ltx_enc_err(enc, SQLITE_MISUSE, "ltx: encoder finished");
        goto out;
    }
    if ((rc = ltx_enc_check_finish(enc, post_apply)) != SQLITE_OK)
        goto out;
    memset(buf, 0, sizeof(buf));
    if ((rc = ltx_enc_emit(enc, buf, LTX_PAGE_HEADER_SIZE)) != SQLITE_OK)
        goto out;
    if ((rc = ltx_enc_write_index(enc)) != SQLITE_OK)
        goto out;
    ltx_put64(buf, post_apply);
    if ((rc = ltx_enc_emit(enc, buf, 8)) != SQLITE_OK)
        goto out;
    ltx_put64(buf, LTX_CHECKSUM_FLAG | enc->crc);
    if ((rc = ltx_enc_room(enc, 8)) != SQLITE_OK)
        goto out;
    memcpy(enc->out + enc->nout, buf, 8);
    enc->nout += 8;
    enc->size += 8;
    if ((rc = ltx_enc_flush(enc)) != SQLITE_OK)
        goto out;
    enc->state = LTX_ENC_FINISHED;
    if (out) {
        out->post_apply = post_apply;
        out->file_checksum = LTX_CHECKSUM_FLAG | enc->crc;
    }
out:
    return rc;
}

uint64_t
ltx_encoder_size(const ltx_encoder *enc)
{
    return enc->size;
}

uint64_t
ltx_encoder_checksum(const ltx_encoder *enc)
{
    return enc->cksum;
}

const char *
ltx_encoder_errmsg(const ltx_encoder *enc)
{
    return enc ? enc->zErr : "ltx: out of memory";
}

void
ltx_encoder_free(ltx_encoder *enc)
{
    if (!enc)
        return;
    free(enc->idx);
    free(enc->lz4);
    free(enc->out);
    free(enc);
}
