/*
 * storage/ltx/decode.c: the streaming LTX decoder (docs/ltx-format.md section
 * 1): reads a file front to back through the caller's callback and verifies
 * everything the reference decoder does plus page order, the index and the
 * trailer.
 *
 * Invariants:
 *  1. Every length read from input is checked against what is left before
 *     it is used (payloads also against the LZ4 bound, in lz4.c).
 *  2. The file CRC and a page's checksum share one CRC pass over the page:
 *     c = CRC(page), file = combine(file, c), P = combine(CRC(BE32 pgno), c)
 *     (crc64_combine_op with the operator for page_size bytes).
 *  3. The decoder never holds more than one read-ahead buffer (tens of KiB,
 *     sized to the largest frame) plus, in close(), one scratch page; it
 *     checks the index against the frames through a CRC of the (pgno,
 *     offset, size) triples, so its memory does not grow with the file.
 *  4. Errors are sticky once the stream may be inconsistent (I/O,
 *     corruption); caller mistakes (SQLITE_MISUSE) are reported without
 *     touching the stream.
 *
 * Threads: no global state; a decoder must be used by one thread at a
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

#define LTX_READ_AHEAD (32 * 1024) /* decoder buffer beyond 2 frames */

enum {
    LTX_DEC_PAGES,  /* next: a page header or the terminator */
    LTX_DEC_FRAME,  /* a page header was read, its payload was not */
    LTX_DEC_DONE,   /* the terminator was read */
    LTX_DEC_CLOSED, /* index and trailer verified */
    LTX_DEC_FAILED, /* rc holds the sticky error */
};

struct ltx_decoder {
    ltx_src src; /* first: legacy frames are read through it */
    ltx_read_fn xRead;
    void *ctx;
    ltx_header hdr;
    int state;
    int rc;
    uint8_t *buf; /* read-ahead: bytes [pos, len) are unread */
    size_t cap, pos, len;
    int eof;      /* xRead came up short: no more input */
    uint64_t off; /* file offset of buf[pos] */
    uint32_t lock_pgno;
    uint64_t op;            /* crc64_combine_gen(page_size) */
    uint64_t crc;           /* file CRC of the bytes consumed so far */
    uint64_t cksum;         /* rolling database checksum of the pages read */
    uint64_t page_cksum;    /* checksum of the last page read */
    uint32_t pgno;          /* page of the pending / last frame */
    uint32_t last_pgno;     /* last page read, 0 before the first */
    uint16_t pflags;        /* flags of the pending frame */
    uint64_t frame_off;     /* offset of the pending frame */
    uint32_t npages;        /* frames read */
    uint64_t idx_crc;       /* CRC of the (pgno, offset, size) of each frame */
    uint64_t term_off;      /* offset of the terminator */
    const uint8_t *payload; /* LZ4 block of the last page, or NULL */
    size_t npayload;
    uint8_t *scratch; /* page buffer for pages skipped by close() */
    ltx_trailer trailer;
    char zErr[256];
};

__attribute__((format(printf, 3, 4))) static int
ltx_dec_err(ltx_decoder *d, int rc, const char *zFmt, ...)
{
    va_list ap;

    va_start(ap, zFmt);
    vsnprintf(d->zErr, sizeof(d->zErr), zFmt, ap);
    va_end(ap);
    if (rc != SQLITE_MISUSE) {
        d->state = LTX_DEC_FAILED;
        d->rc = rc;
    }
    return rc;
}

/* Marks the decoder failed with rc, keeping the message already set. */
static int
ltx_dec_fail(ltx_decoder *d, int rc)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_MISUSE) {
        d->state = LTX_DEC_FAILED;
        d->rc = rc;
    }
    return rc;
}

/* Reads more input after the unread bytes (which move to the front). */
static int
ltx_dec_read_more(ltx_decoder *d)
{
    size_t want, got = 0;
    int rc = SQLITE_OK;

    if (d->pos > 0) {
        memmove(d->buf, d->buf + d->pos, d->len - d->pos);
        d->len -= d->pos;
        d->pos = 0;
    }
    want = d->cap - d->len;
    if (d->eof || want == 0)
        goto out;
    if (d->xRead(d->ctx, d->buf + d->len, want, &got) != 0 || got > want) {
        rc = ltx_dec_err(d, SQLITE_IOERR, "ltx: read at offset %llu failed",
                         (unsigned long long)(d->off + d->len));
        goto out;
    }
    d->len += got;
    if (got < want)
        d->eof = 1;
out:
    return rc;
}

/* Makes *pp point at the next n input bytes and consumes them. */
static int
ltx_dec_take(ltx_decoder *d, size_t n, const char *zWhat, const uint8_t **pp)
{
    int rc = SQLITE_OK;

    if (n > d->cap) {
        uint8_t *p = realloc(d->buf, n);
        if (!p) {
            rc = ltx_dec_err(d, SQLITE_NOMEM, "ltx: out of memory");
            goto out;
        }
        d->buf = p;
        d->cap = n;
    }
    while (d->len - d->pos < n && !d->eof) {
        if ((rc = ltx_dec_read_more(d)) != SQLITE_OK)
            goto out;
    }
    if (d->len - d->pos < n) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: unexpected end of file at offset %llu: %s "
                         "needs %zu bytes, %zu left",
                         (unsigned long long)d->off, zWhat, n, d->len - d->pos);
        goto out;
    }
    *pp = d->buf + d->pos;
    d->pos += n;
    d->off += n;
out:
    return rc;
}

static int
ltx_dec_src_take(ltx_src *s, size_t n, const char *zWhat, const uint8_t **pp)
{
    return ltx_dec_take((ltx_decoder *)s, n, zWhat, pp);
}

/* Takes n bytes that are part of the file checksum. */
static int
ltx_dec_take_crc(ltx_decoder *d, size_t n, const char *zWhat,
                 const uint8_t **pp)
{
    int rc = ltx_dec_take(d, n, zWhat, pp);

    if (rc == SQLITE_OK)
        d->crc = crc64_update(d->crc, *pp, n);
    return rc;
}

int
ltx_decoder_open(ltx_read_fn xRead, void *ctx, ltx_decoder **out)
{
    ltx_decoder *d = calloc(1, sizeof(*d));
    const uint8_t *p;
    size_t cap;
    int rc;

    *out = d;
    if (!d || !(d->buf = malloc(LTX_READ_AHEAD))) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    d->cap = LTX_READ_AHEAD;
    d->xRead = xRead;
    d->ctx = ctx;
    d->src.xTake = ltx_dec_src_take;
    d->src.zErr = d->zErr;
    d->src.nErr = sizeof(d->zErr);
    if (!xRead) {
        rc = ltx_dec_err(d, SQLITE_MISUSE, "ltx: no read callback");
        goto out;
    }
    rc = ltx_dec_take_crc(d, LTX_HEADER_SIZE, "header", &p);
    if (rc != SQLITE_OK)
        goto out;
    rc = ltx_header_decode(p, &d->hdr, d->zErr, sizeof(d->zErr));
    if (rc != SQLITE_OK) {
        ltx_dec_fail(d, rc);
        goto out;
    }
    /* Room for two of the largest frames plus read-ahead. */
    cap = LTX_READ_AHEAD + 2 * (ltx_block_bound(d->hdr.page_size) + 64);
    if (cap > d->cap) {
        uint8_t *b = realloc(d->buf, cap);
        if (!b) {
            rc = SQLITE_NOMEM;
            goto out;
        }
        d->buf = b;
        d->cap = cap;
    }
    d->lock_pgno = ltx_lock_pgno(d->hdr.page_size);
    d->op = crc64_combine_gen(d->hdr.page_size);
    d->cksum = LTX_CHECKSUM_FLAG;
    d->state = LTX_DEC_PAGES;
out:
    if (rc == SQLITE_NOMEM) {
        ltx_decoder_free(d);
        *out = NULL;
    } else if (rc != SQLITE_OK) {
        d->state = LTX_DEC_FAILED; /* refuse any further use */
        d->rc = rc;
    }
    return rc;
}

const ltx_header *
ltx_decoder_header(const ltx_decoder *dec)
{
    return &dec->hdr;
}

/* At the terminator: a snapshot must have had every page 1..commit. */
static int
ltx_dec_terminator(ltx_decoder *d)
{
    uint64_t want = (uint64_t)d->last_pgno + 1;
    int rc = SQLITE_DONE;

    if (want == d->lock_pgno)
        want++;
    d->term_off = d->frame_off;
    d->state = LTX_DEC_DONE;
    if (ltx_is_snapshot(&d->hdr) && want <= d->hdr.commit) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: snapshot ends at offset %llu after page %u "
                         "but its commit is %u pages",
                         (unsigned long long)d->frame_off, d->last_pgno,
                         d->hdr.commit);
    }
    return rc;
}

/* Checks the page number of the frame just read (ordering rules). */
static int
ltx_dec_check_pgno(ltx_decoder *d, uint32_t pgno, uint16_t flags)
{
    uint64_t want = (uint64_t)d->last_pgno + 1;
    unsigned long long off = (unsigned long long)d->frame_off;
    const char *zWhy = NULL;
    int rc = SQLITE_OK;

    if (want == d->lock_pgno)
        want++;
    if (pgno == 0) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: page frame at offset %llu: page number 0 "
                         "with flags 0x%04x",
                         off, flags);
        goto out;
    }
    if (flags & ~LTX_PAGE_FLAG_SIZE) {
        rc = ltx_dec_err(d, SQLITE_FORMAT,
                         "ltx: page frame at offset %llu (pgno %u): "
                         "unsupported flags 0x%04x",
                         off, pgno, flags);
        goto out;
    }
    if (pgno == d->lock_pgno)
        zWhy = "is the lock page";
    else if (pgno > d->hdr.commit)
        zWhy = "exceeds the commit";
    else if (pgno <= d->last_pgno)
        zWhy = "does not ascend";
    else if (ltx_is_snapshot(&d->hdr) && pgno != want)
        zWhy = "skips pages of a snapshot";
    if (zWhy) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: page frame at offset %llu: page %u %s "
                         "(previous page %u, commit %u)",
                         off, pgno, zWhy, d->last_pgno, d->hdr.commit);
    }
out:
    return rc;
}

int
ltx_decoder_next(ltx_decoder *d, uint32_t *pgno)
{
    const uint8_t *p;
    int rc;

    switch (d->state) {
    case LTX_DEC_FAILED:
        rc = d->rc;
        goto out;
    case LTX_DEC_FRAME:
        rc = ltx_dec_err(d, SQLITE_MISUSE,
                         "ltx: page %u is pending: read it first", d->pgno);
        goto out;
    case LTX_DEC_DONE:
    case LTX_DEC_CLOSED:
        rc = SQLITE_DONE;
        goto out;
    }
    d->frame_off = d->off;
    d->payload = NULL;
    rc = ltx_dec_take_crc(d, LTX_PAGE_HEADER_SIZE, "page header", &p);
    if (rc != SQLITE_OK)
        goto out;
    d->pgno = ltx_get32(p);
    d->pflags = ltx_get16(p + 4);
    if (d->pgno == 0 && d->pflags == 0) {
        rc = ltx_dec_terminator(d);
        goto out;
    }
    if ((rc = ltx_dec_check_pgno(d, d->pgno, d->pflags)) != SQLITE_OK)
        goto out;
    d->state = LTX_DEC_FRAME;
    *pgno = d->pgno;
out:
    return rc;
}

/* Decodes the pending frame's payload (either encoding) into page. */
static int
ltx_dec_payload(ltx_decoder *d, uint8_t *page)
{
    const uint8_t *p;
    uint32_t n;
    int rc;

    d->src.where.off = d->frame_off;
    d->src.where.pgno = d->pgno;
    if (!(d->pflags & LTX_PAGE_FLAG_SIZE)) {
        rc = ltx_lz4f_decode(&d->src, page, d->hdr.page_size);
        goto out;
    }
    rc = ltx_dec_take_crc(d, LTX_PAGE_SIZE_PREFIX, "page size prefix", &p);
    if (rc != SQLITE_OK)
        goto out;
    n = ltx_get32(p);
    if (n == 0 || n > (uint32_t)ltx_block_bound(d->hdr.page_size)) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: %s: LZ4 payload length %u exceeds bound %zu",
                         LTX_WHERE(&d->src.where), n,
                         ltx_block_bound(d->hdr.page_size));
        goto out;
    }
    if ((rc = ltx_dec_take(d, n, "LZ4 block", &p)) != SQLITE_OK)
        goto out;
    rc = ltx_block_decode(p, n, page, d->hdr.page_size, &d->src.where, d->zErr,
                          sizeof(d->zErr));
    d->payload = p;
    d->npayload = n;
out:
    return rc;
}

int
ltx_decoder_read(ltx_decoder *d, void *page)
{
    uint8_t rec[16];
    uint64_t c;
    int rc;

    if (d->state != LTX_DEC_FRAME || !page) {
        rc = d->state == LTX_DEC_FAILED
                 ? d->rc
                 : ltx_dec_err(d, SQLITE_MISUSE,
                               "ltx: no page pending or no page buffer");
        goto out;
    }
    if ((rc = ltx_dec_payload(d, page)) != SQLITE_OK) {
        d->payload = NULL;
        ltx_dec_fail(d, rc);
        goto out;
    }
    c = crc64_update(0, page, d->hdr.page_size);
    d->crc = crc64_combine_op(d->crc, c, d->op);
    ltx_put32(rec, d->pgno);
    d->page_cksum =
        LTX_CHECKSUM_FLAG | crc64_combine_op(crc64_update(0, rec, 4), c, d->op);
    d->cksum = ltx_checksum_fold(d->cksum, d->page_cksum);
    ltx_put32(rec + 4, (uint32_t)(d->off - d->frame_off));
    ltx_put64(rec + 8, d->frame_off);
    d->idx_crc = crc64_update(d->idx_crc, rec, sizeof(rec));
    d->npages++;
    d->last_pgno = d->pgno;
    d->state = LTX_DEC_PAGES;
out:
    return rc;
}

int
ltx_decoder_page(ltx_decoder *d, uint32_t *pgno, void *page)
{
    int rc = ltx_decoder_next(d, pgno);

    if (rc == SQLITE_OK)
        rc = ltx_decoder_read(d, page);
    return rc;
}

uint64_t
ltx_decoder_page_checksum(const ltx_decoder *d)
{
    return d->page_cksum;
}

uint64_t
ltx_decoder_checksum(const ltx_decoder *d)
{
    return d->cksum;
}

const void *
ltx_decoder_payload(const ltx_decoder *d, size_t *n)
{
    *n = d->payload ? d->npayload : 0;
    return d->payload;
}

uint64_t
ltx_decoder_offset(const ltx_decoder *d)
{
    return d->off;
}

/* Reads one index varint (file checksum and index length included). */
static int
ltx_dec_varint(ltx_decoder *d, uint64_t *v, uint64_t *idxlen)
{
    uint8_t b[10];
    const uint8_t *p;
    uint64_t start = d->off;
    int rc, k = 0;

    for (int i = 0; i < 10 && k == 0; i++) {
        if ((rc = ltx_dec_take(d, 1, "page index", &p)) != SQLITE_OK)
            goto out;
        b[i] = *p;
        k = ltx_get_uvarint(b, (size_t)i + 1, v);
        if (k < 0)
            break;
    }
    if (k <= 0) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: page index varint at offset %llu overflows",
                         (unsigned long long)start);
        goto out;
    }
    d->crc = crc64_update(d->crc, b, (size_t)k);
    *idxlen += (uint64_t)k;
out:
    return rc;
}

/*
 * Reads the page index and compares it with the frames seen.  A mismatch
 * is not reported at once (the file checksum says more about a damaged
 * file): its description goes to zBad and the caller decides.
 */
static int
ltx_dec_index(ltx_decoder *d, char *zBad, size_t nBad)
{
    uint64_t start = d->off, pgno, offset, size, prev = 0, expect = 100;
    uint64_t idxlen = 0, icrc = 0, count = 0;
    uint8_t rec[16];
    const uint8_t *p;
    int rc;

    for (;;) {
        uint64_t entry = d->off;
        if ((rc = ltx_dec_varint(d, &pgno, &idxlen)) != SQLITE_OK)
            goto out;
        if (pgno == 0)
            break;
        if ((rc = ltx_dec_varint(d, &offset, &idxlen)) != SQLITE_OK ||
            (rc = ltx_dec_varint(d, &size, &idxlen)) != SQLITE_OK)
            goto out;
        if (!zBad[0] && (pgno <= prev || pgno > UINT32_MAX ||
                         offset != expect || size > UINT32_MAX)) {
            ltx_seterr(zBad, nBad,
                       "ltx: page index entry at offset %llu (pgno %llu, "
                       "offset %llu, size %llu) does not match the page "
                       "frames",
                       (unsigned long long)entry, (unsigned long long)pgno,
                       (unsigned long long)offset, (unsigned long long)size);
        }
        prev = pgno;
        expect = offset + size;
        ltx_put32(rec, (uint32_t)pgno);
        ltx_put32(rec + 4, (uint32_t)size);
        ltx_put64(rec + 8, offset);
        icrc = crc64_update(icrc, rec, sizeof(rec));
        count++;
    }
    if (!zBad[0] &&
        (count != d->npages || icrc != d->idx_crc || expect != d->term_off)) {
        ltx_seterr(zBad, nBad,
                   "ltx: page index at offset %llu lists %llu frames that "
                   "do not match the %u page frames of the file",
                   (unsigned long long)start, (unsigned long long)count,
                   d->npages);
    }
    if ((rc = ltx_dec_take_crc(d, 8, "page index length", &p)) != SQLITE_OK)
        goto out;
    if (!zBad[0] && ltx_get64(p) != idxlen) {
        ltx_seterr(zBad, nBad,
                   "ltx: page index length field at offset %llu says %llu, "
                   "index is %llu bytes",
                   (unsigned long long)(d->off - 8),
                   (unsigned long long)ltx_get64(p),
                   (unsigned long long)idxlen);
    }
out:
    return rc;
}

/* SQLITE_OK if no input follows the trailer, else an error. */
static int
ltx_dec_expect_eof(ltx_decoder *d)
{
    int rc = SQLITE_OK;

    while (rc == SQLITE_OK && d->len == d->pos && !d->eof)
        rc = ltx_dec_read_more(d);
    if (rc == SQLITE_OK && d->len != d->pos) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: unexpected data after the trailer at offset "
                         "%llu",
                         (unsigned long long)d->off);
    }
    return rc;
}

/* Checks the trailer (docs/ltx-format.md 1.6) and the checksums. */
static int
ltx_dec_trailer(ltx_decoder *d, const char *zBad)
{
    const ltx_header *h = &d->hdr;
    const ltx_trailer *t = &d->trailer;
    int nock = (h->flags & LTX_FLAG_NO_CHECKSUM) != 0;
    unsigned long long at = (unsigned long long)(d->off - LTX_TRAILER_SIZE);
    uint64_t file = LTX_CHECKSUM_FLAG | d->crc;
    int rc = SQLITE_CORRUPT;

    if (!(t->file_checksum & LTX_CHECKSUM_FLAG) ||
        (nock ? t->post_apply != 0 : !(t->post_apply & LTX_CHECKSUM_FLAG))) {
        ltx_dec_err(d, rc,
                    "ltx: invalid trailer at offset %llu (post-apply "
                    "%016llx, file checksum %016llx, %s)",
                    at, (unsigned long long)t->post_apply,
                    (unsigned long long)t->file_checksum,
                    nock ? "NoChecksum" : "checksums on");
    } else if (t->file_checksum != file) {
        ltx_dec_err(d, rc,
                    "ltx: file checksum mismatch (computed %016llx, trailer "
                    "%016llx) at offset %llu",
                    (unsigned long long)file,
                    (unsigned long long)t->file_checksum, at + 8);
    } else if (zBad[0]) {
        ltx_dec_err(d, rc, "%s", zBad);
    } else if (!nock && h->commit == 0 && t->post_apply != LTX_CHECKSUM_FLAG) {
        ltx_dec_err(d, rc,
                    "ltx: commit 0 with post-apply checksum %016llx at "
                    "offset %llu",
                    (unsigned long long)t->post_apply, at);
    } else if (!nock && ltx_is_snapshot(h) && t->post_apply != d->cksum) {
        ltx_dec_err(d, rc,
                    "ltx: post-apply checksum mismatch (computed %016llx, "
                    "trailer %016llx) at offset %llu",
                    (unsigned long long)d->cksum,
                    (unsigned long long)t->post_apply, at);
    } else {
        rc = SQLITE_OK;
    }
    return rc;
}

int
ltx_decoder_close(ltx_decoder *d, ltx_trailer *out)
{
    char zBad[200];
    const uint8_t *p;
    uint32_t pgno;
    int rc = SQLITE_OK;

    zBad[0] = 0;
    if (d->state == LTX_DEC_FAILED) {
        rc = d->rc;
        goto out;
    }
    while (d->state == LTX_DEC_PAGES || d->state == LTX_DEC_FRAME) {
        if (!d->scratch && !(d->scratch = malloc(d->hdr.page_size))) {
            rc = ltx_dec_err(d, SQLITE_NOMEM, "ltx: out of memory");
            goto out;
        }
        if (d->state == LTX_DEC_FRAME)
            rc = ltx_decoder_read(d, d->scratch);
        else if ((rc = ltx_decoder_next(d, &pgno)) == SQLITE_DONE)
            rc = SQLITE_OK;
        if (rc != SQLITE_OK)
            goto out;
    }
    if (d->state == LTX_DEC_CLOSED)
        goto done;
    if ((rc = ltx_dec_index(d, zBad, sizeof(zBad))) != SQLITE_OK)
        goto out;
    if ((rc = ltx_dec_take(d, LTX_TRAILER_SIZE, "trailer", &p)) != SQLITE_OK)
        goto out;
    d->crc = crc64_update(d->crc, p, 8);
    d->trailer.post_apply = ltx_get64(p);
    d->trailer.file_checksum = ltx_get64(p + 8);
    if ((rc = ltx_dec_trailer(d, zBad)) != SQLITE_OK)
        goto out;
    if ((rc = ltx_dec_expect_eof(d)) != SQLITE_OK)
        goto out;
    d->state = LTX_DEC_CLOSED;
done:
    if (out)
        *out = d->trailer;
out:
    return rc;
}

const char *
ltx_decoder_errmsg(const ltx_decoder *d)
{
    return d ? d->zErr : "ltx: out of memory";
}

void
ltx_decoder_free(ltx_decoder *d)
{
    if (!d)
        return;
    free(d->scratch);
    free(d->buf);
    free(d);
}
