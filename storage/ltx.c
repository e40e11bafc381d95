/*
 * ltx.c: LTX encoder, streaming decoder, random access and checksums (the
 * format is docs/LTX.md section 1; merge/expand live in ltx_merge.c).
 *
 * Invariants:
 *  1. Every length read from input is checked against what is left (and
 *     against the LZ4 bound for the page size) before it is used; page data
 *     is only ever decompressed into page_size bytes.
 *  2. The file CRC and a page's checksum share one CRC pass over the page:
 *     c = CRC(page), file = combine(file, c), P = combine(CRC(BE32 pgno), c)
 *     (crc64_combine_op with the operator for page_size bytes).
 *  3. The decoder never holds more than one read-ahead buffer (tens of KiB,
 *     sized to the largest frame) plus, in close(), one scratch page; it
 *     checks the index against the frames through a CRC of the (pgno,
 *     offset, size) triples, so its memory does not grow with the file.
 *  4. Encoder and decoder errors are sticky once the stream may be
 *     inconsistent (I/O, corruption); caller mistakes (SQLITE_MISUSE) are
 *     reported without touching the stream.
 *  5. This is the only file that includes lz4.h / lz4frame.h.
 *
 * Threads: no global state (crc64's tables are constant); an encoder or
 * decoder must be used by one thread at a time.
 */
#include "storage/ltx.h"

#include <errno.h>
#include <lz4.h>
#include <lz4frame.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/crc64.h"

#define LTX_LZ4F_MAGIC 0x184D2204u
#define LTX_OUT_BUF (256 * 1024)   /* encoder output buffer */
#define LTX_READ_AHEAD (32 * 1024) /* decoder buffer beyond 2 frames */
#define LTX_MIN_FRAME_SIZE 11      /* 6-byte header, size, 1-byte block */

/* ---- Byte helpers ----------------------------------------------------- */

static uint16_t
ltx_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
ltx_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t
ltx_get64(const uint8_t *p)
{
    return (uint64_t)ltx_get32(p) << 32 | ltx_get32(p + 4);
}

static uint32_t
ltx_getle32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 |
           p[0];
}

static void
ltx_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
ltx_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
ltx_put64(uint8_t *p, uint64_t v)
{
    ltx_put32(p, (uint32_t)(v >> 32));
    ltx_put32(p + 4, (uint32_t)v);
}

static size_t
ltx_put_uvarint(uint8_t *p, uint64_t v)
{
    size_t i = 0;

    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

/*
 * Go's binary.Uvarint over p[0..n): returns the bytes consumed (1..10) and
 * sets *v, 0 if p ends first, -1 if the value overflows 64 bits.
 */
static int
ltx_get_uvarint(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t x = 0;

    for (size_t i = 0; i < n && i < 10; i++) {
        if (i == 9 && p[i] > 1)
            return -1;
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return (int)i + 1;
        }
    }
    return n >= 10 ? -1 : 0;
}

__attribute__((format(printf, 3, 4))) static void
ltx_seterr(char *zErr, size_t nErr, const char *zFmt, ...)
{
    va_list ap;

    if (!zErr || !nErr)
        return;
    va_start(ap, zFmt);
    vsnprintf(zErr, nErr, zFmt, ap);
    va_end(ap);
}

/* XXH32 (seed 0 in LZ4 frames): header, block and content checksums. */
#define XXH_P1 2654435761u
#define XXH_P2 2246822519u
#define XXH_P3 3266489917u
#define XXH_P4 668265263u
#define XXH_P5 374761393u

static uint32_t
ltx_rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static uint32_t
ltx_xxh32_round(uint32_t acc, uint32_t in)
{
    return ltx_rotl32(acc + in * XXH_P2, 13) * XXH_P1;
}

static uint32_t
ltx_xxh32(const uint8_t *p, size_t n)
{
    size_t i = 0;
    uint32_t h;

    if (n >= 16) {
        uint32_t v1 = XXH_P1 + XXH_P2, v2 = XXH_P2, v3 = 0, v4 = 0 - XXH_P1;
        for (; n - i >= 16; i += 16) {
            v1 = ltx_xxh32_round(v1, ltx_getle32(p + i));
            v2 = ltx_xxh32_round(v2, ltx_getle32(p + i + 4));
            v3 = ltx_xxh32_round(v3, ltx_getle32(p + i + 8));
            v4 = ltx_xxh32_round(v4, ltx_getle32(p + i + 12));
        }
        h = ltx_rotl32(v1, 1) + ltx_rotl32(v2, 7) + ltx_rotl32(v3, 12) +
            ltx_rotl32(v4, 18);
    } else {
        h = XXH_P5;
    }
    h += (uint32_t)n;
    for (; n - i >= 4; i += 4)
        h = ltx_rotl32(h + ltx_getle32(p + i) * XXH_P3, 17) * XXH_P4;
    for (; i < n; i++)
        h = ltx_rotl32(h + p[i] * XXH_P5, 11) * XXH_P1;
    h ^= h >> 15;
    h *= XXH_P2;
    h ^= h >> 13;
    h *= XXH_P3;
    h ^= h >> 16;
    return h;
}

/* ---- Checksums, header, names ----------------------------------------- */

uint32_t
ltx_lock_pgno(uint32_t page_size)
{
    return page_size ? LTX_PENDING_BYTE / page_size + 1 : 0;
}

int
ltx_page_size_valid(uint32_t page_size)
{
    return page_size >= LTX_MIN_PAGE_SIZE && page_size <= LTX_MAX_PAGE_SIZE &&
           (page_size & (page_size - 1)) == 0;
}

uint64_t
ltx_page_checksum(uint32_t pgno, const void *page, uint32_t page_size)
{
    uint8_t be[4];

    ltx_put32(be, pgno);
    return LTX_CHECKSUM_FLAG |
           crc64_update(crc64_update(0, be, 4), page, page_size);
}

uint64_t
ltx_db_checksum(const void *db, uint32_t page_size, uint32_t npages)
{
    const uint8_t *p = db;
    uint32_t lock = ltx_lock_pgno(page_size);
    uint64_t c = LTX_CHECKSUM_FLAG;

    for (uint32_t pgno = 1; pgno <= npages && pgno != 0; pgno++) {
        if (pgno != lock)
            c = ltx_checksum_fold(
                c, ltx_page_checksum(pgno, p + (size_t)(pgno - 1) * page_size,
                                     page_size));
    }
    return c;
}

void
ltx_header_encode(const ltx_header *hdr, uint8_t out[LTX_HEADER_SIZE])
{
    memset(out, 0, LTX_HEADER_SIZE);
    memcpy(out, LTX_MAGIC, 4);
    ltx_put32(out + 4, hdr->flags);
    ltx_put32(out + 8, hdr->page_size);
    ltx_put32(out + 12, hdr->commit);
    ltx_put64(out + 16, hdr->min_txid);
    ltx_put64(out + 24, hdr->max_txid);
    ltx_put64(out + 32, (uint64_t)hdr->timestamp);
    ltx_put64(out + 40, hdr->pre_apply);
    ltx_put64(out + 48, (uint64_t)hdr->wal_offset);
    ltx_put64(out + 56, (uint64_t)hdr->wal_size);
    ltx_put32(out + 64, hdr->wal_salt1);
    ltx_put32(out + 68, hdr->wal_salt2);
    ltx_put64(out + 72, hdr->node_id);
}

int
ltx_header_validate(const ltx_header *h, char *zErr, size_t nErr)
{
    int nock = (h->flags & LTX_FLAG_NO_CHECKSUM) != 0;
    const char *zWhy = NULL;

    if (h->flags & ~LTX_HEADER_FLAG_MASK) {
        ltx_seterr(zErr, nErr, "ltx: header: unsupported flags 0x%08x",
                   h->flags);
        return SQLITE_FORMAT;
    }
    if (!ltx_page_size_valid(h->page_size)) {
        ltx_seterr(zErr, nErr, "ltx: header: invalid page size %u",
                   h->page_size);
        return SQLITE_CORRUPT;
    }
    if (h->min_txid == 0 || h->max_txid == 0)
        zWhy = "TXID 0";
    else if (h->min_txid > h->max_txid)
        zWhy = "min TXID above max TXID";
    else if (h->wal_offset < 0 || h->wal_size < 0)
        zWhy = "negative WAL offset or size";
    else if (h->wal_offset == 0 &&
             (h->wal_size || h->wal_salt1 || h->wal_salt2))
        zWhy = "WAL size or salts without a WAL offset";
    else if (ltx_is_snapshot(h) && h->pre_apply != 0)
        zWhy = "snapshot with a pre-apply checksum";
    else if (!ltx_is_snapshot(h) && nock && h->pre_apply != 0)
        zWhy = "pre-apply checksum with the NoChecksum flag";
    else if (!ltx_is_snapshot(h) && !nock &&
             !(h->pre_apply & LTX_CHECKSUM_FLAG))
        zWhy = "missing or invalid pre-apply checksum";
    if (zWhy) {
        ltx_seterr(zErr, nErr,
                   "ltx: header: %s (TXID %016llx-%016llx, pre-apply "
                   "%016llx)",
                   zWhy, (unsigned long long)h->min_txid,
                   (unsigned long long)h->max_txid,
                   (unsigned long long)h->pre_apply);
        return SQLITE_CORRUPT;
    }
    return SQLITE_OK;
}

int
ltx_header_decode(const uint8_t in[LTX_HEADER_SIZE], ltx_header *hdr,
                  char *zErr, size_t nErr)
{
    if (memcmp(in, LTX_MAGIC, 4) != 0) {
        ltx_seterr(zErr, nErr,
                   "ltx: not an LTX file (magic %02x %02x %02x %02x at "
                   "offset 0)",
                   in[0], in[1], in[2], in[3]);
        return SQLITE_CORRUPT;
    }
    hdr->flags = ltx_get32(in + 4);
    hdr->page_size = ltx_get32(in + 8);
    hdr->commit = ltx_get32(in + 12);
    hdr->min_txid = ltx_get64(in + 16);
    hdr->max_txid = ltx_get64(in + 24);
    hdr->timestamp = (int64_t)ltx_get64(in + 32);
    hdr->pre_apply = ltx_get64(in + 40);
    hdr->wal_offset = (int64_t)ltx_get64(in + 48);
    hdr->wal_size = (int64_t)ltx_get64(in + 56);
    hdr->wal_salt1 = ltx_get32(in + 64);
    hdr->wal_salt2 = ltx_get32(in + 68);
    hdr->node_id = ltx_get64(in + 72);
    return ltx_header_validate(hdr, zErr, nErr);
}

const char *
ltx_txid_name(uint64_t min, uint64_t max, char out[LTX_NAME_SIZE])
{
    snprintf(out, LTX_NAME_SIZE, "%016llx-%016llx.ltx", (unsigned long long)min,
             (unsigned long long)max);
    return out;
}

static int
ltx_parse_hex16(const char *z, uint64_t *v)
{
    uint64_t x = 0;

    for (int i = 0; i < 16; i++) {
        char c = z[i];
        if (c >= '0' && c <= '9')
            x = x << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x = x << 4 | (uint64_t)(c - 'a' + 10);
        else
            return 0;
    }
    *v = x;
    return 1;
}

int
ltx_parse_name(const char *name, uint64_t *min, uint64_t *max)
{
    uint64_t a, b;

    if (!name || strlen(name) != 37 || name[16] != '-' ||
        strcmp(name + 33, ".ltx") != 0)
        return 0;
    if (!ltx_parse_hex16(name, &a) || !ltx_parse_hex16(name + 17, &b))
        return 0;
    *min = a;
    *max = b;
    return 1;
}

/* ---- Page payloads (shared by the decoder and ltx_frame_decode) ------- */

/* Which frame a message is about; only formatted when there is an error. */
typedef struct ltx_where {
    uint64_t off; /* file offset of the frame, UINT64_MAX if unknown */
    uint32_t pgno;
} ltx_where;

static const char *
ltx_where_fmt(const ltx_where *w, char *buf, size_t n)
{
    if (w->off == UINT64_MAX)
        snprintf(buf, n, "page frame (pgno %u)", w->pgno);
    else
        snprintf(buf, n, "page frame at offset %llu (pgno %u)",
                 (unsigned long long)w->off, w->pgno);
    return buf;
}

/* "page frame at offset N (pgno P)", valid to the end of the block. */
#define LTX_WHERE(w) ltx_where_fmt((w), (char[64]){0}, 64)

/*
 * A byte source for parsing a legacy LZ4 frame, whose length is only known
 * once it is parsed.  xTake returns a pointer to the next n bytes (valid
 * until the next xTake) or an error code, having written a message to zErr.
 */
typedef struct ltx_src ltx_src;
struct ltx_src {
    int (*xTake)(ltx_src *src, size_t n, const char *zWhat, const uint8_t **pp);
    ltx_where where; /* the frame being parsed */
    char *zErr;
    size_t nErr;
};

/* Decodes one raw LZ4 block of n bytes into exactly page_size bytes. */
static int
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

/*
 * Decodes one complete LZ4 frame (legacy page encoding) from s into exactly
 * page_size bytes, consuming precisely the frame's bytes: magic,
 * descriptor, blocks up to the end mark, optional content checksum.
 */
static int
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

/* ---- Encoder ---------------------------------------------------------- */

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
    void *lz4;        /* LZ4_compress_fast_extState state */
    LZ4F_preferences_t prefs;
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
    enc->prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    enc->prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    enc->prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    enc->prefs.frameInfo.frameType = LZ4F_frame;
    legacy_max = LTX_PAGE_HEADER_SIZE +
                 LZ4F_compressFrameBound(hdr->page_size, &enc->prefs);
    enc->frame_max = LTX_PAGE_HEADER_SIZE + LTX_PAGE_SIZE_PREFIX +
                     (size_t)LZ4_compressBound((int)hdr->page_size);
    if (legacy_max > enc->frame_max)
        enc->frame_max = legacy_max;
    enc->cap = LTX_OUT_BUF > enc->frame_max ? LTX_OUT_BUF : enc->frame_max;
    enc->out = malloc(enc->cap);
    enc->lz4 = malloc((size_t)LZ4_sizeofState());
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

/* Checks that pgno may come next (LTX.md 1.5 ordering rules). */
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
        n = LZ4F_compressFrame(f + 6, room - 6, page, ps, &enc->prefs);
        return LZ4F_isError(n) ? 0 : n;
    }
    *hdrlen = LTX_PAGE_HEADER_SIZE + LTX_PAGE_SIZE_PREFIX;
    ltx_put16(f + 4, LTX_PAGE_FLAG_SIZE);
    if (block) {
        memcpy(f + 10, block, nblock);
        n = nblock;
    } else {
        int r = LZ4_compress_fast_extState(enc->lz4, page, (char *)f + 10,
                                           (int)ps, (int)(room - 10), 1);
        n = r > 0 ? (size_t)r : 0;
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
    if (block &&
        (enc->legacy || nblock == 0 ||
         nblock > (size_t)LZ4_compressBound((int)enc->hdr.page_size))) {
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

/* The finish() rules that do not depend on the output (LTX.md 1.6). */
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

const ltx_index_entry *
ltx_encoder_index(const ltx_encoder *enc, uint32_t *count)
{
    *count = enc->nidx;
    return enc->idx;
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

/* ---- Decoder ---------------------------------------------------------- */

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
    cap = LTX_READ_AHEAD +
          2 * ((size_t)LZ4_compressBound((int)d->hdr.page_size) + 64);
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
    if (n == 0 || n > (uint32_t)LZ4_compressBound((int)d->hdr.page_size)) {
        rc = ltx_dec_err(d, SQLITE_CORRUPT,
                         "ltx: %s: LZ4 payload length %u exceeds bound %d",
                         LTX_WHERE(&d->src.where), n,
                         LZ4_compressBound((int)d->hdr.page_size));
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

/* Checks the trailer (LTX.md 1.6) and the checksums. */
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

/* ---- Read / write callbacks ------------------------------------------- */

int
ltx_membuf_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    struct ltx_membuf *m = ctx;
    size_t k = m->off < m->n ? m->n - m->off : 0;

    if (k > n)
        k = n;
    if (k)
        memcpy(buf, m->p + m->off, k);
    m->off += k;
    *nRead = k;
    return 0;
}

int
ltx_fd_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    int fd = *(int *)ctx, rc = 0;
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        got += (size_t)r;
    }
    *nRead = got;
    return rc;
}

int
ltx_fd_write(void *ctx, const void *buf, size_t n)
{
    int fd = *(int *)ctx, rc = 0;
    size_t done = 0;

    while (done < n && rc == 0) {
        ssize_t r = write(fd, (const char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = -1;
        else
            done += (size_t)r;
    }
    return rc;
}

int
ltx_fd_pwrite(void *ctx, const void *buf, size_t n, uint64_t offset)
{
    int fd = *(int *)ctx, rc = 0;
    size_t done = 0;

    while (done < n && rc == 0) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done,
                           (off_t)(offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = -1;
        else
            done += (size_t)r;
    }
    return rc;
}

/* ---- Random access ---------------------------------------------------- */

/* Parses the varint triples of an index of n bytes (LTX.md 1.6). */
static int
ltx_index_entries(const uint8_t *p, size_t n, uint64_t term_off,
                  ltx_index_entry *e, uint32_t *count, char *zErr, size_t nErr)
{
    uint64_t v[3] = {0, 0, 0}, expect = LTX_HEADER_SIZE, prev = 0;
    size_t pos = 0;
    uint32_t k = 0;
    int rc = SQLITE_CORRUPT, r;

    for (;;) {
        size_t at = pos;
        for (int i = 0; i < 3; i++) {
            if ((r = ltx_get_uvarint(p + pos, n - pos, &v[i])) <= 0) {
                ltx_seterr(zErr, nErr, "ltx: page index byte %zu: %s varint",
                           pos, r < 0 ? "overflowing" : "truncated");
                goto out;
            }
            pos += (size_t)r;
            if (i == 0 && v[0] == 0)
                break;
        }
        if (v[0] == 0)
            break;
        if (v[0] <= prev || v[0] > UINT32_MAX || v[1] != expect ||
            v[2] < LTX_MIN_FRAME_SIZE || v[2] > term_off - expect) {
            ltx_seterr(zErr, nErr,
                       "ltx: page index byte %zu: entry (pgno %llu, offset "
                       "%llu, size %llu) is invalid (previous pgno %llu, "
                       "next frame at %llu, terminator at %llu)",
                       at, (unsigned long long)v[0], (unsigned long long)v[1],
                       (unsigned long long)v[2], (unsigned long long)prev,
                       (unsigned long long)expect,
                       (unsigned long long)term_off);
            goto out;
        }
        e[k].pgno = (uint32_t)v[0];
        e[k].offset = v[1];
        e[k].size = (uint32_t)v[2];
        k++;
        prev = v[0];
        expect += v[2];
    }
    if (pos != n || expect != term_off) {
        ltx_seterr(zErr, nErr,
                   "ltx: page index of %zu bytes ends at byte %zu; frames "
                   "end at %llu, terminator at %llu",
                   n, pos, (unsigned long long)expect,
                   (unsigned long long)term_off);
        goto out;
    }
    *count = k;
    rc = SQLITE_OK;
out:
    return rc;
}

/*
 * Reads the index length and trailer from the last n bytes of a file of
 * file_size bytes and checks they fit (see ltx_index_parse).
 */
static int
ltx_index_locate(const uint8_t *tail, size_t n, uint64_t file_size,
                 uint64_t *idxlen, ltx_trailer *t, uint64_t *need, char *zErr,
                 size_t nErr)
{
    const uint8_t *end = tail + n;
    int rc = SQLITE_CORRUPT;

    if (file_size < LTX_MIN_FILE_SIZE) {
        ltx_seterr(zErr, nErr, "ltx: file of %llu bytes is too short",
                   (unsigned long long)file_size);
        goto out;
    }
    *need = 8 + LTX_TRAILER_SIZE;
    if (n < *need) {
        ltx_seterr(zErr, nErr, "ltx: need %d tail bytes", 8 + LTX_TRAILER_SIZE);
        rc = SQLITE_TOOBIG;
        goto out;
    }
    *idxlen = ltx_get64(end - 24);
    t->post_apply = ltx_get64(end - 16);
    t->file_checksum = ltx_get64(end - 8);
    if (*idxlen == 0 || *idxlen > file_size - (LTX_MIN_FILE_SIZE - 1)) {
        ltx_seterr(zErr, nErr,
                   "ltx: page index length %llu at offset %llu does not fit "
                   "a %llu-byte file",
                   (unsigned long long)*idxlen,
                   (unsigned long long)(file_size - 24),
                   (unsigned long long)file_size);
    } else if (!(t->file_checksum & LTX_CHECKSUM_FLAG) ||
               (t->post_apply && !(t->post_apply & LTX_CHECKSUM_FLAG))) {
        ltx_seterr(zErr, nErr,
                   "ltx: invalid trailer at offset %llu (post-apply %016llx, "
                   "file checksum %016llx)",
                   (unsigned long long)(file_size - 16),
                   (unsigned long long)t->post_apply,
                   (unsigned long long)t->file_checksum);
    } else if (n - 24 < *idxlen) {
        *need = 24 + *idxlen;
        ltx_seterr(zErr, nErr, "ltx: need %llu tail bytes",
                   (unsigned long long)*need);
        rc = SQLITE_TOOBIG;
    } else {
        rc = SQLITE_OK;
    }
out:
    return rc;
}

int
ltx_index_parse(const uint8_t *tail, size_t n, uint64_t file_size,
                ltx_index_entry **entries, uint32_t *count,
                ltx_trailer *trailer, uint64_t *need, char *zErr, size_t nErr)
{
    ltx_index_entry *e = NULL;
    ltx_trailer t;
    uint64_t idxlen = 0, want = 0;
    int rc;

    *entries = NULL;
    *count = 0;
    if (n > file_size || (!tail && n)) {
        ltx_seterr(zErr, nErr, "ltx: tail of %zu bytes for a %llu-byte file", n,
                   (unsigned long long)file_size);
        rc = SQLITE_MISUSE;
        goto out;
    }
    rc = ltx_index_locate(tail, n, file_size, &idxlen, &t, &want, zErr, nErr);
    if (rc == SQLITE_TOOBIG && need)
        *need = want;
    if (rc != SQLITE_OK)
        goto out;
    if (idxlen >= 3 && !(e = malloc((size_t)(idxlen / 3) * sizeof(*e)))) {
        ltx_seterr(zErr, nErr, "ltx: out of memory");
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = ltx_index_entries(tail + n - 24 - idxlen, (size_t)idxlen,
                           file_size - 24 - idxlen - LTX_PAGE_HEADER_SIZE, e,
                           count, zErr, nErr);
    if (rc != SQLITE_OK)
        goto out;
    if (trailer)
        *trailer = t;
    if (*count)
        *entries = e;
    else
        free(e);
    e = NULL;
out:
    free(e);
    if (rc != SQLITE_OK)
        *count = 0;
    return rc;
}

/* Byte source over a frame in memory, for ltx_frame_decode. */
struct ltx_memsrc {
    ltx_src base;
    const uint8_t *p;
    size_t n, pos;
};

static int
ltx_memsrc_take(ltx_src *s, size_t n, const char *zWhat, const uint8_t **pp)
{
    struct ltx_memsrc *m = (struct ltx_memsrc *)s;
    int rc = SQLITE_OK;

    if (m->n - m->pos < n) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: %s needs %zu bytes at frame byte %zu, %zu left",
                   LTX_WHERE(&s->where), zWhat, n,
                   m->pos + LTX_PAGE_HEADER_SIZE, m->n - m->pos);
        rc = SQLITE_CORRUPT;
        goto out;
    }
    *pp = m->p + m->pos;
    m->pos += n;
out:
    return rc;
}

int
ltx_frame_decode(const uint8_t *frame, size_t n, uint32_t page_size,
                 uint32_t expect_pgno, void *page, char *zErr, size_t nErr)
{
    struct ltx_memsrc m;
    ltx_where w = {UINT64_MAX, expect_pgno};
    uint32_t pgno, size;
    uint16_t flags;
    int rc = SQLITE_CORRUPT;

    if (!ltx_page_size_valid(page_size) || !page || (!frame && n)) {
        ltx_seterr(zErr, nErr, "ltx: frame decode: bad arguments");
        rc = SQLITE_MISUSE;
        goto out;
    }
    if (n < LTX_PAGE_HEADER_SIZE) {
        ltx_seterr(zErr, nErr, "ltx: %s: only %zu bytes", LTX_WHERE(&w), n);
        goto out;
    }
    pgno = ltx_get32(frame);
    flags = ltx_get16(frame + 4);
    if (pgno != expect_pgno || pgno == 0) {
        ltx_seterr(zErr, nErr, "ltx: %s: frame holds page %u", LTX_WHERE(&w),
                   pgno);
        goto out;
    }
    if (flags & ~LTX_PAGE_FLAG_SIZE) {
        ltx_seterr(zErr, nErr, "ltx: %s: unsupported flags 0x%04x",
                   LTX_WHERE(&w), flags);
        rc = SQLITE_FORMAT;
        goto out;
    }
    if (flags & LTX_PAGE_FLAG_SIZE) {
        size = n >= 10 ? ltx_get32(frame + 6) : 0;
        if (n < 10 || size != n - 10) {
            ltx_seterr(zErr, nErr,
                       "ltx: %s: payload length %u in a %zu-byte frame",
                       LTX_WHERE(&w), size, n);
            goto out;
        }
        rc =
            ltx_block_decode(frame + 10, size, page, page_size, &w, zErr, nErr);
        goto out;
    }
    m.base.xTake = ltx_memsrc_take;
    m.base.where = w;
    m.base.zErr = zErr;
    m.base.nErr = nErr;
    m.p = frame + LTX_PAGE_HEADER_SIZE;
    m.n = n - LTX_PAGE_HEADER_SIZE;
    m.pos = 0;
    if ((rc = ltx_lz4f_decode(&m.base, page, page_size)) != SQLITE_OK)
        goto out;
    if (m.pos != m.n) {
        ltx_seterr(zErr, nErr, "ltx: %s: %zu bytes after the LZ4 frame",
                   LTX_WHERE(&w), m.n - m.pos);
        rc = SQLITE_CORRUPT;
    }
out:
    return rc;
}
