/*
 * storage/local/wal.h: reading and validating SQLite WAL bytes.
 *
 * A WAL file is a 32-byte header followed by frames of (24-byte frame header
 * + one page).  A frame is valid only while its salts equal the header's and
 * the cumulative checksum chain (seeded by the header's checksum) holds; the
 * last valid frame whose "database size after commit" is non-zero ends the
 * committed part.  See https://sqlite.org/fileformat2.html#walformat.
 *
 * Pure functions over caller-provided bytes; any thread.
 */
#ifndef LITESTREAM_WAL_H
#define LITESTREAM_WAL_H

#include <stddef.h>
#include <stdint.h>

#define WAL_HDR_SIZE       32
#define WAL_FRAME_HDR_SIZE 24
#define WAL_MAGIC_LE       0x377f0682u
#define WAL_MAGIC_BE       0x377f0683u

typedef struct wal_hdr {
    uint32_t magic, version, page_size, ckpt_seq;
    uint32_t salt1, salt2, cksum1, cksum2;
} wal_hdr;

typedef struct wal_frame_hdr {
    uint32_t pgno;
    uint32_t commit; /* database size in pages after commit; 0 if none */
    uint32_t salt1, salt2, cksum1, cksum2;
} wal_frame_hdr;

static inline uint32_t
wal_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static inline void
wal_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Byte offset of frame `iFrame` (1-based) for a page size. */
static inline uint64_t
wal_frame_offset(uint32_t iFrame, uint32_t page_size)
{
    return WAL_HDR_SIZE +
           (uint64_t)(iFrame - 1) * (WAL_FRAME_HDR_SIZE + page_size);
}

/*
 * The wal-index header (first 48 bytes of the -shm; SQLite's WalIndexHdr).
 * Native byte order, except the salts, which SQLite copies raw from the
 * WAL header: wal_index_hdr_read() converts them to values.
 */
typedef struct shm_hdr {
    uint32_t version, unused, change;
    uint8_t init, big_end_cksum;
    uint16_t page_size; /* 1 means 65536 */
    uint32_t mx_frame, n_page;
    uint32_t frame_cksum[2];
    uint32_t salt[2];
    uint32_t cksum[2];
} shm_hdr;

/*
 * Copies the wal-index header at p (a mapped -shm region 0) into *out,
 * salts as values.  Returns 1 if the header is initialized, else 0.
 */
int wal_index_hdr_read(const volatile void *p, shm_hdr *out);

/*
 * As wal_index_hdr_read(), for a reader that does not hold the WAL write
 * lock: the two copies SQLite keeps are read until they agree (a writer
 * may be updating them).  Returns 1 if initialized, 0 if not, -1 if the
 * copies kept disagreeing.
 */
int wal_index_hdr_read_stable(const volatile void *p, shm_hdr *out);

/*
 * Parses and validates a 32-byte WAL header (magic, version 3007000, page
 * size, header checksum).  Returns 1 if valid, 0 otherwise.
 */
int wal_hdr_parse(const uint8_t *p, wal_hdr *out);

/* Parses a 24-byte frame header (no validation). */
void wal_frame_hdr_parse(const uint8_t *p, wal_frame_hdr *out);

/*
 * Continues the SQLite WAL checksum over `n` bytes (n a multiple of 8),
 * starting from s[0], s[1] and leaving the result there.  `big_endian` is
 * the header magic's low bit.
 */
void wal_checksum(int big_endian, const uint8_t *p, size_t n, uint32_t s[2]);

/*
 * Validates one frame (24-byte header followed by page_size bytes) against
 * the WAL header's salts and the running checksum s (the previous frame's
 * checksum, or the header's for frame 1).  On success returns 1 and
 * advances s to this frame's checksum; returns 0 otherwise.
 */
int wal_frame_valid(const wal_hdr *h, const uint8_t *frame, uint32_t s[2]);

#endif
