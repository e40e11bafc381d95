/*
 * ltx_int.h: private to the LTX codec (storage/ltx_*.c); nothing outside
 * the codec includes it.  Holds what more than one codec file needs:
 * big-endian and varint byte helpers, error-message helpers, the byte
 * source the legacy frame parser reads from, and the page payload codec of
 * lz4.c (the only file that includes lz4.h / lz4frame.h).
 *
 * The public API and its conventions (result codes, messages, memory from
 * libc malloc) are in ltx.h.
 */
#ifndef LITESTREAM_STORAGE_LTX_INT_H
#define LITESTREAM_STORAGE_LTX_INT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/ltx/ltx.h"

/* ---- Byte helpers ----------------------------------------------------- */

static inline uint16_t
ltx_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t
ltx_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline uint64_t
ltx_get64(const uint8_t *p)
{
    return (uint64_t)ltx_get32(p) << 32 | ltx_get32(p + 4);
}

static inline uint32_t
ltx_getle32(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 |
           p[0];
}

static inline void
ltx_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
ltx_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
ltx_put64(uint8_t *p, uint64_t v)
{
    ltx_put32(p, (uint32_t)(v >> 32));
    ltx_put32(p + 4, (uint32_t)v);
}

static inline size_t
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
static inline int
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

/* ---- Messages (format.c) ------------------------------------------ */

/* snprintf into zErr[nErr]; does nothing when zErr is NULL or nErr 0. */
void ltx_seterr(char *zErr, size_t nErr, const char *zFmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Which frame a message is about; only formatted when there is an error. */
typedef struct ltx_where {
    uint64_t off; /* file offset of the frame, UINT64_MAX if unknown */
    uint32_t pgno;
} ltx_where;

/* Writes "page frame at offset N (pgno P)", or "page frame (pgno P)" when
 * the offset is unknown, to buf[n] and returns buf. */
const char *ltx_where_fmt(const ltx_where *w, char *buf, size_t n);

/* "page frame at offset N (pgno P)", valid to the end of the block. */
#define LTX_WHERE(w) ltx_where_fmt((w), (char[64]){0}, 64)

/* ---- Page payloads (lz4.c) ---------------------------------------- */

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

/* LZ4_compressBound(page_size): the longest raw LZ4 block a page of
 * page_size bytes (a valid page size) can compress to. */
size_t ltx_block_bound(uint32_t page_size);

/* A compression state for ltx_block_encode (malloc'ed, free() it), or NULL
 * when out of memory. */
void *ltx_block_state_new(void);

/*
 * Compresses page_size bytes at page into one raw LZ4 block (acceleration
 * 1) at dst, using state from ltx_block_state_new().  Returns the block
 * length, or 0 if it does not fit in cap bytes or the compressor fails.
 */
size_t ltx_block_encode(void *state, const void *page, uint32_t page_size,
                        uint8_t *dst, size_t cap);

/*
 * Decodes one raw LZ4 block of n bytes into exactly page_size bytes.
 * Returns SQLITE_OK, or SQLITE_CORRUPT (n is 0 or above the bound, the
 * block is invalid or decodes to another length) with the reason, naming
 * the frame w, in zErr.
 */
int ltx_block_decode(const uint8_t *src, size_t n, uint8_t *page,
                     uint32_t page_size, const ltx_where *w, char *zErr,
                     size_t nErr);

/* The longest LZ4 frame ltx_lz4f_encode can produce for page_size bytes. */
size_t ltx_lz4f_bound(uint32_t page_size);

/*
 * Compresses page_size bytes at page into one complete LZ4 frame (64 KiB
 * independent blocks, content checksum: the legacy page encoding) at dst.
 * Returns the frame length, or 0 if it does not fit in cap bytes or the
 * compressor fails.
 */
size_t ltx_lz4f_encode(const void *page, uint32_t page_size, uint8_t *dst,
                       size_t cap);

/*
 * Decodes one complete LZ4 frame (legacy page encoding) from s into exactly
 * page_size bytes, consuming precisely the frame's bytes: magic,
 * descriptor, blocks up to the end mark, optional content checksum.
 * Returns SQLITE_OK; SQLITE_CORRUPT for a malformed frame or checksum
 * mismatch, SQLITE_FORMAT for a frame that needs a dictionary, or what
 * s->xTake returned; the message is in s->zErr.
 */
int ltx_lz4f_decode(ltx_src *s, uint8_t *page, uint32_t page_size);

/*
 * Decompresses one raw LZ4 block src[0..n) into dst (at most cap bytes),
 * with dict[0..ndict) as the preceding output (linked blocks; ndict 0: none).
 * Returns the bytes produced, or a negative number for an invalid block.
 */
int ltx_lz4_block_decompress(const uint8_t *src, size_t n, uint8_t *dst,
                             size_t cap, const uint8_t *dict, size_t ndict);

/* ---- XXH32, seed 0 (xxh32.c) ------------------------------------------ */

typedef struct ltx_xxh32_state {
    uint32_t v[4];
    uint64_t total;  /* bytes consumed */
    uint8_t buf[16]; /* the tail not yet a whole stripe */
    uint32_t nbuf;
} ltx_xxh32_state;

void ltx_xxh32_init(ltx_xxh32_state *s);
void ltx_xxh32_update(ltx_xxh32_state *s, const void *data, size_t n);
uint32_t ltx_xxh32_digest(const ltx_xxh32_state *s);

/* XXH32 of data[0..n) in one call. */
uint32_t ltx_xxh32(const void *data, size_t n);

#endif
