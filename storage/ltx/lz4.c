/*
 * storage/ltx/lz4.c: page payloads, the codec's only contact with liblz4: raw
 * LZ4 blocks (the current page encoding, flags 0x0001) and complete LZ4 frames
 * (the legacy encoding, flags 0), both ways (XXH32, for the frames'
 * checksums, is xxh32.c), and the raw block decompressor behind the
 * streaming frame reader of lz4frame.c.
 *
 * Invariants:
 *  1. Every length read from input is checked against what is left (and
 *     against the LZ4 bound for the page size) before it is used; page data
 *     is only ever decompressed into page_size bytes.
 *  2. A legacy frame is parsed through an ltx_src, so it consumes exactly
 *     its own bytes whether it comes from the streaming decoder or from a
 *     frame in memory (ltx_frame_decode).
 *  3. This is the only file that includes lz4.h / lz4frame.h.
 *
 * Threads: no state of its own (a compression state belongs to one
 * encoder); any thread.
 */
#include <lz4.h>
#include <lz4frame.h>
#include "storage/base/sqlite.h"
#include <stdlib.h>
#include <string.h>

#include "storage/ltx/ltx.h"
#include "storage/ltx/ltx_int.h"

#define LTX_LZ4F_MAGIC 0x184D2204u

/* The frame format of the legacy encoding (all other fields zero). */
static const LZ4F_preferences_t ltx_lz4f_prefs = {
    .frameInfo =
        {
            .blockSizeID = LZ4F_max64KB,
            .blockMode = LZ4F_blockIndependent,
            .contentChecksumFlag = LZ4F_contentChecksumEnabled,
            .frameType = LZ4F_frame,
        },
};

/* ---- Raw blocks (current encoding) ------------------------------------ */

size_t
ltx_block_bound(uint32_t page_size)
{
    return (size_t)LZ4_compressBound((int)page_size);
}

void *
ltx_block_state_new(void)
{
    return malloc((size_t)LZ4_sizeofState());
}

size_t
ltx_block_encode(void *state, const void *page, uint32_t page_size,
                 uint8_t *dst, size_t cap)
{
    int r = LZ4_compress_fast_extState(state, page, (char *)dst, (int)page_size,
                                       (int)cap, 1);

    return r > 0 ? (size_t)r : 0;
}

int
ltx_block_decode(const uint8_t *src, size_t n, uint8_t *page,
                 uint32_t page_size, const ltx_where *w, char *zErr,
                 size_t nErr)
{
    size_t bound = (size_t)LZ4_compressBound((int)page_size);
    int r, rc = SQLITE_CORRUPT;

    if (n == 0 || n > bound) {
        ltx_seterr(zErr, nErr,
                   "ltx: %s: LZ4 payload length %zu exceeds bound %zu",
                   LTX_WHERE(w), n, bound);
        goto out;
    }
    r = LZ4_decompress_safe((const char *)src, (char *)page, (int)n,
                            (int)page_size);
    if (r != (int)page_size) {
        ltx_seterr(
            zErr, nErr, "ltx: %s: LZ4 block of %zu bytes %s (page size %u)",
            LTX_WHERE(w), n, r < 0 ? "is invalid" : "is short", page_size);
        goto out;
    }
    rc = SQLITE_OK;
out:
    return rc;
}

int
ltx_lz4_block_decompress(const uint8_t *src, size_t n, uint8_t *dst, size_t cap,
                         const uint8_t *dict, size_t ndict)
{
    if (n > (size_t)INT32_MAX || cap > (size_t)INT32_MAX ||
        ndict > (size_t)INT32_MAX)
        return -1;
    if (ndict == 0)
        return LZ4_decompress_safe((const char *)src, (char *)dst, (int)n,
                                   (int)cap);
    return LZ4_decompress_safe_usingDict((const char *)src, (char *)dst, (int)n,
                                         (int)cap, (const char *)dict,
                                         (int)ndict);
}

/* ---- LZ4 frames (legacy encoding) ------------------------------------- */

size_t
ltx_lz4f_bound(uint32_t page_size)
{
    return LZ4F_compressFrameBound(page_size, &ltx_lz4f_prefs);
}

size_t
ltx_lz4f_encode(const void *page, uint32_t page_size, uint8_t *dst, size_t cap)
{
    size_t n = LZ4F_compressFrame(dst, cap, page, page_size, &ltx_lz4f_prefs);

    return LZ4F_isError(n) ? 0 : n;
}

/* Takes n descriptor bytes into desc (for the header checksum). */
static int
ltx_lz4f_take_desc(ltx_src *s, size_t n, const char *zWhat, uint8_t *desc,
                   size_t *nd)
{
    const uint8_t *p;
    int rc = s->xTake(s, n, zWhat, &p);

    if (rc == SQLITE_OK) {
        memcpy(desc + *nd, p, n);
        *nd += n;
    }
    return rc;
}

/* Reads the descriptor of a legacy LZ4 frame (after the magic). */
static int
ltx_lz4f_descriptor(ltx_src *s, uint32_t page_size, uint8_t *pFlg,
                    uint32_t *pBlockMax)
{
    uint8_t desc[16] = {0};
    size_t nd = 0;
    const uint8_t *p;
    uint64_t cs = page_size;
    int rc;

    rc = ltx_lz4f_take_desc(s, 2, "LZ4 frame descriptor", desc, &nd);
    if (rc != SQLITE_OK)
        goto out;
    if ((desc[0] >> 6) != 1 || (desc[0] & 0x02) || (desc[1] & 0x8f) ||
        ((desc[1] >> 4) & 7) < 4) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: invalid LZ4 frame descriptor FLG %02x BD %02x",
                   LTX_WHERE(&s->where), desc[0], desc[1]);
        rc = SQLITE_CORRUPT;
        goto out;
    }
    if ((desc[0] & 0x08) &&
        (rc = ltx_lz4f_take_desc(s, 8, "LZ4 content size", desc, &nd)))
        goto out;
    if ((desc[0] & 0x01) &&
        (rc = ltx_lz4f_take_desc(s, 4, "LZ4 dictionary id", desc, &nd)))
        goto out;
    if ((rc = s->xTake(s, 1, "LZ4 header checksum", &p)) != SQLITE_OK)
        goto out;
    if (desc[0] & 0x08)
        cs = (uint64_t)ltx_getle32(desc + 6) << 32 | ltx_getle32(desc + 2);
    rc = SQLITE_CORRUPT;
    if (*p != (uint8_t)(ltx_xxh32(desc, nd) >> 8)) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: LZ4 frame header checksum mismatch",
                   LTX_WHERE(&s->where));
    } else if (cs != page_size) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: LZ4 content size %llu is not the page size %u",
                   LTX_WHERE(&s->where), (unsigned long long)cs, page_size);
    } else if (desc[0] & 0x01) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: LZ4 frame needs a dictionary (unsupported)",
                   LTX_WHERE(&s->where));
        rc = SQLITE_FORMAT;
    } else {
        *pFlg = desc[0];
        *pBlockMax = 1u << (8 + 2 * ((desc[1] >> 4) & 7));
        rc = SQLITE_OK;
    }
out:
    return rc;
}

/* Decompresses (or copies) one block's data p[0..len) into the page. */
static int
ltx_lz4f_data(const uint8_t *p, uint32_t len, int raw, int linked,
              uint8_t *page, uint32_t produced, uint32_t room)
{
    if (raw) {
        memcpy(page + produced, p, len);
        return (int)len;
    }
    if (produced == 0 || !linked)
        return LZ4_decompress_safe((const char *)p, (char *)page + produced,
                                   (int)len, (int)room);
    return LZ4_decompress_safe_usingDict(
        (const char *)p, (char *)page + produced, (int)len, (int)room,
        (const char *)page, (int)produced);
}

/* Decodes one data block of a legacy frame at page + *produced. */
static int
ltx_lz4f_block(ltx_src *s, uint32_t bsz, uint8_t flg, uint32_t block_max,
               uint8_t *page, uint32_t page_size, uint32_t *produced)
{
    uint32_t len = bsz & 0x7fffffffu, room = page_size - *produced, h;
    int raw = (bsz >> 31) != 0, r, rc = SQLITE_CORRUPT;
    size_t bound = (size_t)LZ4_compressBound((int)page_size);
    const uint8_t *p;

    if (len == 0 || len > block_max || (raw ? len > room : len > bound)) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: LZ4 %s block length %u out of bounds (%u bytes "
                   "of the page left)",
                   LTX_WHERE(&s->where), raw ? "stored" : "compressed", len,
                   room);
        goto out;
    }
    if ((rc = s->xTake(s, len, "LZ4 block", &p)) != SQLITE_OK)
        goto out;
    r = ltx_lz4f_data(p, len, raw, !(flg & 0x20), page, *produced, room);
    if (r <= 0) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: invalid LZ4 block of %u bytes (%u bytes of the "
                   "page left)",
                   LTX_WHERE(&s->where), len, room);
        rc = SQLITE_CORRUPT;
        goto out;
    }
    *produced += (uint32_t)r;
    if (!(flg & 0x10))
        goto out;
    h = ltx_xxh32(p, len); /* before the next take moves the buffer */
    if ((rc = s->xTake(s, 4, "LZ4 block checksum", &p)) != SQLITE_OK)
        goto out;
    if (ltx_getle32(p) != h) {
        ltx_seterr(s->zErr, s->nErr, "ltx: %s: LZ4 block checksum mismatch",
                   LTX_WHERE(&s->where));
        rc = SQLITE_CORRUPT;
    }
out:
    return rc;
}

int
ltx_lz4f_decode(ltx_src *s, uint8_t *page, uint32_t page_size)
{
    const uint8_t *p;
    uint8_t flg = 0;
    uint32_t block_max = 0, produced = 0, bsz;
    int rc;

    if ((rc = s->xTake(s, 4, "LZ4 frame magic", &p)) != SQLITE_OK)
        goto out;
    if (ltx_getle32(p) != LTX_LZ4F_MAGIC) {
        ltx_seterr(s->zErr, s->nErr, "ltx: %s: not an LZ4 frame (magic %08x)",
                   LTX_WHERE(&s->where), ltx_getle32(p));
        rc = SQLITE_CORRUPT;
        goto out;
    }
    rc = ltx_lz4f_descriptor(s, page_size, &flg, &block_max);
    while (rc == SQLITE_OK &&
           (rc = s->xTake(s, 4, "LZ4 block size", &p)) == SQLITE_OK &&
           (bsz = ltx_getle32(p)) != 0)
        rc = ltx_lz4f_block(s, bsz, flg, block_max, page, page_size, &produced);
    if (rc != SQLITE_OK)
        goto out;
    if (produced != page_size) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: LZ4 frame holds %u bytes, page size is %u",
                   LTX_WHERE(&s->where), produced, page_size);
        rc = SQLITE_CORRUPT;
        goto out;
    }
    if (!(flg & 0x04))
        goto out;
    if ((rc = s->xTake(s, 4, "LZ4 content checksum", &p)) != SQLITE_OK)
        goto out;
    if (ltx_getle32(p) != ltx_xxh32(page, page_size)) {
        ltx_seterr(s->zErr, s->nErr, "ltx: %s: LZ4 content checksum mismatch",
                   LTX_WHERE(&s->where));
        rc = SQLITE_CORRUPT;
    }
out:
    return rc;
}
