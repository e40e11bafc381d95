/*
 * storage/ltx/lz4frame.c: a streaming reader of LZ4 frames (ltx.h), for the
 * snapshots and WAL segments of Litestream v0.3 replicas, which are single
 * LZ4 frames of any length (v0.3.13 writes them with github.com/pierrec/lz4
 * v4: 4 MiB blocks, independent, content checksum, no block checksums, no
 * content size).
 *
 * Frame layout (lz4_Frame_format.md): magic 0x184D2204 (LE); FLG (version
 * 01 in bits 7-6, block independence 0x20, block checksum 0x10, content
 * size 0x08, content checksum 0x04, reserved 0x02, dictionary id 0x01); BD
 * (block maximum id in bits 6-4: 4..7 = 64 KiB..4 MiB, other bits 0);
 * optional content size u64 LE and dictionary id u32; header checksum byte
 * = (XXH32 of the descriptor >> 8) & 0xff; then blocks, each a u32 LE size
 * (high bit: stored uncompressed) + data (+ u32 XXH32 of the data if block
 * checksums), until a zero size; then u32 XXH32 of the content if content
 * checksum.  Skippable frames (magic 0x184D2A50..5F, u32 size, data) are
 * skipped.
 *
 * Invariants:
 *   1. Every length read from the input is checked against the frame's
 *      block maximum before anything is read into or decompressed into a
 *      buffer; decompression never writes past the block buffer.
 *   2. The content is only handed out block by block after the block was
 *      decoded (and its block checksum checked); the content checksum and
 *      content size are checked at the frame's end, so a reader that reads
 *      to the end has seen every check.
 *   3. Input that ends anywhere but after a complete frame is an error.
 *
 * Threads: a reader belongs to one thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"
#include "storage/ltx/ltx.h"
#include "storage/ltx/ltx_int.h"

#define LZ4F_MAGIC      0x184D2204u
#define LZ4F_SKIP_MAGIC 0x184D2A50u /* ..5F: the low 4 bits are free */
#define LZ4F_WINDOW     65536u      /* linked blocks see this much output */
#define LZ4F_INBUF      65536u

struct ltx_lz4_reader {
    ltx_read_fn xRead;
    void *ctx;
    int rc;        /* sticky error */
    int in_eof;    /* xRead returned short: no more input */
    int in_frame;  /* between a frame's header and its end mark */
    int done;      /* input ended after a complete frame */
    int nframes;   /* complete frames read */
    uint8_t flg;   /* the current frame's FLG */
    uint32_t bmax; /* its block maximum */
    int has_size;
    uint64_t content_size, frame_out;
    ltx_xxh32_state xs;
    uint64_t nin, nout;
    uint8_t *cbuf, *obuf; /* bcap bytes each */
    uint32_t bcap;
    size_t opos, olen;
    uint8_t dict[LZ4F_WINDOW];
    size_t ndict;
    size_t ipos, ilen;
    uint8_t in[LZ4F_INBUF];
    char zErr[256];
};

static int
lz4r_err(ltx_lz4_reader *r, int rc, const char *zFmt, ...)
{
    va_list ap;

    if (r->rc == SQLITE_OK) {
        va_start(ap, zFmt);
        vsnprintf(r->zErr, sizeof(r->zErr), zFmt, ap);
        va_end(ap);
        r->rc = rc;
    }
    return r->rc;
}

/* Refills the input buffer; SQLITE_OK (maybe at end of input) or IOERR. */
static int
lz4r_fill(ltx_lz4_reader *r)
{
    size_t got = 0;

    r->ipos = r->ilen = 0;
    if (r->in_eof)
        return SQLITE_OK;
    if (r->xRead(r->ctx, r->in, sizeof(r->in), &got) != 0)
        return lz4r_err(r, SQLITE_IOERR, "lz4: cannot read the input");
    if (got > sizeof(r->in))
        got = sizeof(r->in);
    if (got < sizeof(r->in))
        r->in_eof = 1;
    r->ilen = got;
    return SQLITE_OK;
}

/* 1 if the input has no byte left (reading ahead as needed), else 0. */
static int
lz4r_at_end(ltx_lz4_reader *r)
{
    if (r->ipos < r->ilen)
        return 0;
    if (lz4r_fill(r) != SQLITE_OK)
        return 1; /* the caller checks r->rc */
    return r->ilen == 0;
}

/*
 * Copies exactly n input bytes into dst (NULL: skips them).  Input that
 * ends first is a truncated frame, described by zWhat.
 */
static int
lz4r_take(ltx_lz4_reader *r, void *dst, uint64_t n, const char *zWhat)
{
    uint8_t *p = dst;
    uint64_t start = r->nin;

    while (n > 0) {
        size_t k;
        if (r->ipos == r->ilen) {
            if (r->in_eof || lz4r_fill(r) != SQLITE_OK || r->ilen == 0)
                return r->rc ? r->rc
                             : lz4r_err(r, SQLITE_CORRUPT,
                                        "lz4: input ends inside the %s at "
                                        "offset %llu (truncated object)",
                                        zWhat, (unsigned long long)start);
        }
        k = r->ilen - r->ipos < n ? r->ilen - r->ipos : (size_t)n;
        if (p) {
            memcpy(p, r->in + r->ipos, k);
            p += k;
        }
        r->ipos += k;
        r->nin += k;
        n -= k;
    }
    return SQLITE_OK;
}

static int
lz4r_u32(ltx_lz4_reader *r, uint32_t *v, const char *zWhat)
{
    uint8_t b[4];
    int rc = lz4r_take(r, b, 4, zWhat);

    if (rc == SQLITE_OK)
        *v = ltx_getle32(b);
    return rc;
}

/* Sizes the block buffers for the frame's block maximum. */
static int
lz4r_buffers(ltx_lz4_reader *r)
{
    uint8_t *c, *o;

    if (r->bcap >= r->bmax)
        return SQLITE_OK;
    c = realloc(r->cbuf, r->bmax);
    if (c)
        r->cbuf = c;
    o = c ? realloc(r->obuf, r->bmax) : NULL;
    if (o)
        r->obuf = o;
    if (c == NULL || o == NULL)
        return lz4r_err(r, SQLITE_NOMEM, "lz4: out of memory (%u-byte blocks)",
                        r->bmax);
    r->bcap = r->bmax;
    return SQLITE_OK;
}

/* Reads a frame descriptor (after the magic) and starts the frame. */
static int
lz4r_descriptor(ltx_lz4_reader *r, uint64_t at)
{
    uint8_t d[15];
    size_t nd = 2;
    uint8_t hc;
    int rc = lz4r_take(r, d, 2, "LZ4 frame descriptor");

    if (rc != SQLITE_OK)
        return rc;
    if ((d[0] >> 6) != 1 || (d[0] & 0x02) || (d[1] & 0x8f) ||
        ((d[1] >> 4) & 7) < 4)
        return lz4r_err(r, SQLITE_CORRUPT,
                        "lz4: frame at offset %llu has an invalid descriptor "
                        "(FLG %02x BD %02x)",
                        (unsigned long long)at, d[0], d[1]);
    if (d[0] & 0x08)
        rc = lz4r_take(r, d + nd, 8, "LZ4 content size"), nd += 8;
    if (rc == SQLITE_OK && (d[0] & 0x01))
        rc = lz4r_take(r, d + nd, 4, "LZ4 dictionary id"), nd += 4;
    if (rc == SQLITE_OK)
        rc = lz4r_take(r, &hc, 1, "LZ4 header checksum");
    if (rc != SQLITE_OK)
        return rc;
    if (hc != (uint8_t)(ltx_xxh32(d, nd) >> 8))
        return lz4r_err(r, SQLITE_CORRUPT,
                        "lz4: frame at offset %llu: header checksum mismatch",
                        (unsigned long long)at);
    if (d[0] & 0x01)
        return lz4r_err(r, SQLITE_FORMAT,
                        "lz4: frame at offset %llu needs a dictionary "
                        "(unsupported)",
                        (unsigned long long)at);
    r->flg = d[0];
    r->bmax = 1u << (8 + 2 * ((d[1] >> 4) & 7));
    r->has_size = (d[0] & 0x08) != 0;
    r->content_size =
        r->has_size ? (uint64_t)ltx_getle32(d + 6) << 32 | ltx_getle32(d + 2)
                    : 0;
    r->frame_out = 0;
    r->ndict = 0;
    ltx_xxh32_init(&r->xs);
    r->in_frame = 1;
    return lz4r_buffers(r);
}

/* Reads the next frame header, skipping skippable frames; sets r->done
 * at the end of the input. */
static int
lz4r_frame_start(ltx_lz4_reader *r)
{
    for (;;) {
        uint64_t at = r->nin;
        uint32_t magic, skip;
        int rc;

        if (lz4r_at_end(r)) {
            if (r->rc)
                return r->rc;
            if (r->nframes == 0)
                return lz4r_err(r, SQLITE_CORRUPT,
                                "lz4: the object is empty (no LZ4 frame)");
            r->done = 1;
            return SQLITE_OK;
        }
        if ((rc = lz4r_u32(r, &magic, "LZ4 frame magic")) != SQLITE_OK)
            return rc;
        if (magic == LZ4F_MAGIC)
            return lz4r_descriptor(r, at);
        if ((magic & 0xfffffff0u) != LZ4F_SKIP_MAGIC) {
            if (magic == 0x2d656761u) /* "age-": an age-encrypted object */
                return lz4r_err(r, SQLITE_FORMAT,
                                "lz4: the object is age-encrypted "
                                "(unsupported: decrypt it first)");
            return lz4r_err(r, SQLITE_CORRUPT,
                            "lz4: not an LZ4 frame at offset %llu (magic "
                            "%08x)",
                            (unsigned long long)at, magic);
        }
        rc = lz4r_u32(r, &skip, "skippable frame size");
        if (rc == SQLITE_OK)
            rc = lz4r_take(r, NULL, skip, "skippable frame");
        if (rc != SQLITE_OK)
            return rc;
        r->nframes++;
    }
}

/* At a frame's end mark: the content checksum and size. */
static int
lz4r_frame_end(ltx_lz4_reader *r)
{
    uint32_t want;
    int rc;

    if (r->flg & 0x04) {
        rc = lz4r_u32(r, &want, "LZ4 content checksum");
        if (rc != SQLITE_OK)
            return rc;
        if (want != ltx_xxh32_digest(&r->xs))
            return lz4r_err(r, SQLITE_CORRUPT,
                            "lz4: content checksum mismatch (frame ending at "
                            "offset %llu)",
                            (unsigned long long)r->nin);
    }
    if (r->has_size && r->frame_out != r->content_size)
        return lz4r_err(r, SQLITE_CORRUPT,
                        "lz4: frame holds %llu bytes, its header says %llu",
                        (unsigned long long)r->frame_out,
                        (unsigned long long)r->content_size);
    r->in_frame = 0;
    r->nframes++;
    return SQLITE_OK;
}

/* Keeps the last LZ4F_WINDOW bytes of output for linked blocks. */
static void
lz4r_window(ltx_lz4_reader *r, size_t out)
{
    size_t keep;

    if (out >= LZ4F_WINDOW) {
        memcpy(r->dict, r->obuf + out - LZ4F_WINDOW, LZ4F_WINDOW);
        r->ndict = LZ4F_WINDOW;
        return;
    }
    keep = r->ndict < LZ4F_WINDOW - out ? r->ndict : LZ4F_WINDOW - out;
    memmove(r->dict, r->dict + r->ndict - keep, keep);
    memcpy(r->dict + keep, r->obuf, out);
    r->ndict = keep + out;
}

/* Decodes one data block of size field bsz into obuf. */
static int
lz4r_block(ltx_lz4_reader *r, uint32_t bsz)
{
    uint64_t at = r->nin - 4;
    uint32_t len = bsz & 0x7fffffffu, sum;
    int raw = (bsz >> 31) != 0, linked = !(r->flg & 0x20), out, rc;

    if (len == 0 || len > r->bmax)
        return lz4r_err(r, SQLITE_CORRUPT,
                        "lz4: block at offset %llu has length %u (the "
                        "frame's maximum is %u)",
                        (unsigned long long)at, len, r->bmax);
    if ((rc = lz4r_take(r, r->cbuf, len, "LZ4 block")) != SQLITE_OK)
        return rc;
    if (r->flg & 0x10) {
        if ((rc = lz4r_u32(r, &sum, "LZ4 block checksum")) != SQLITE_OK)
            return rc;
        if (sum != ltx_xxh32(r->cbuf, len))
            return lz4r_err(r, SQLITE_CORRUPT,
                            "lz4: block at offset %llu: checksum mismatch",
                            (unsigned long long)at);
    }
    if (raw) {
        memcpy(r->obuf, r->cbuf, len);
        out = (int)len;
    } else {
        out = ltx_lz4_block_decompress(r->cbuf, len, r->obuf, r->bmax,
                                       linked ? r->dict : NULL,
                                       linked ? r->ndict : 0);
        if (out < 0)
            return lz4r_err(r, SQLITE_CORRUPT,
                            "lz4: block at offset %llu (%u bytes) is not "
                            "valid LZ4 or decodes to more than %u bytes",
                            (unsigned long long)at, len, r->bmax);
    }
    ltx_xxh32_update(&r->xs, r->obuf, (size_t)out);
    r->frame_out += (uint64_t)out;
    if (r->has_size && r->frame_out > r->content_size)
        return lz4r_err(r, SQLITE_CORRUPT,
                        "lz4: frame holds more than the %llu bytes its "
                        "header says",
                        (unsigned long long)r->content_size);
    if (linked)
        lz4r_window(r, (size_t)out);
    r->opos = 0;
    r->olen = (size_t)out;
    return SQLITE_OK;
}

/* Decodes blocks until one yields content or the input is done. */
static int
lz4r_advance(ltx_lz4_reader *r)
{
    while (r->rc == SQLITE_OK && !r->done && r->opos == r->olen) {
        uint32_t bsz;
        if (!r->in_frame) {
            if (lz4r_frame_start(r) != SQLITE_OK || r->done)
                break;
            continue;
        }
        if (lz4r_u32(r, &bsz, "LZ4 block size") != SQLITE_OK)
            break;
        if (bsz == 0)
            lz4r_frame_end(r);
        else
            lz4r_block(r, bsz);
    }
    return r->rc;
}

int
ltx_lz4_reader_open(ltx_read_fn xRead, void *ctx, ltx_lz4_reader **out)
{
    ltx_lz4_reader *r = calloc(1, sizeof(*r));

    *out = r;
    if (r == NULL)
        return SQLITE_NOMEM;
    r->xRead = xRead;
    r->ctx = ctx;
    return SQLITE_OK;
}

int
ltx_lz4_reader_read(ltx_lz4_reader *r, void *buf, size_t n, size_t *nRead)
{
    uint8_t *p = buf;
    size_t got = 0;

    while (got < n) {
        size_t k;
        if (r->opos == r->olen && lz4r_advance(r) != SQLITE_OK)
            break;
        if (r->opos == r->olen)
            break; /* done */
        k = r->olen - r->opos < n - got ? r->olen - r->opos : n - got;
        memcpy(p + got, r->obuf + r->opos, k);
        r->opos += k;
        got += k;
    }
    r->nout += got;
    *nRead = got;
    return r->rc;
}

uint64_t
ltx_lz4_reader_out(const ltx_lz4_reader *r)
{
    return r->nout;
}

uint64_t
ltx_lz4_reader_in(const ltx_lz4_reader *r)
{
    return r->nin;
}

const char *
ltx_lz4_reader_errmsg(const ltx_lz4_reader *r)
{
    return r->zErr;
}

void
ltx_lz4_reader_free(ltx_lz4_reader *r)
{
    if (r == NULL)
        return;
    free(r->cbuf);
    free(r->obuf);
    free(r);
}
