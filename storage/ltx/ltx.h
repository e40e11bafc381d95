/*
 * ltx.h: the LTX file codec (Litestream v0.5, LTX format "version 3").
 *
 * The byte format is docs/ltx-format.md section 1 (the authoritative
 * restatement of superfly/ltx).  In short:
 *
 *   header (100 bytes, big-endian fields)
 *   page frames: pgno u32 | flags u16 | payload, ascending pgno
 *       flags 0x0001: u32 size + one raw LZ4 block (current encoding)
 *       flags 0x0000: one complete LZ4 frame, no length (legacy encoding)
 *   terminator: 6 zero bytes
 *   page index: LEB128 (pgno, frame offset, frame length) triples, a 0,
 *       then the u64 length of those varint bytes
 *   trailer: post-apply checksum u64 | file checksum u64
 *
 * What this module offers:
 *   - checksums (page, rolling database checksum) and header helpers;
 *   - a streaming encoder writing through a callback;
 *   - a streaming decoder reading through a callback, which verifies
 *     everything the reference decoder does plus page order, the index and
 *     the trailer rules;
 *   - random access: parse the index from the tail of a file and decode one
 *     frame fetched by a range request;
 *   - merging (compaction) and expanding a snapshot into a database image
 *     (merge.c).
 *
 * Conventions: fallible functions return SQLite result codes (sqlite3.h is
 * used for the constants only; nothing here calls SQLite):
 *   SQLITE_OK, SQLITE_DONE      success / end of the page frames
 *   SQLITE_CORRUPT              malformed or inconsistent input
 *   SQLITE_FORMAT               well-formed but unsupported (unknown flags)
 *   SQLITE_MISUSE               the caller broke a rule (page order, ...)
 *   SQLITE_NOMEM, SQLITE_IOERR  allocation / read or write callback failed
 *   SQLITE_TOOBIG               ltx_index_parse: the tail is too short
 *   SQLITE_INTERNAL             the LZ4 compressor failed (never expected)
 * Every error leaves a message ("ltx: ..." naming the byte offset for
 * corruption) in the object's errmsg or in the caller's zErr buffer.
 * Memory comes from libc malloc; objects are not thread-safe but distinct
 * objects may be used from distinct threads.
 */
#ifndef LITESTREAM_STORAGE_LTX_H
#define LITESTREAM_STORAGE_LTX_H

#include <stddef.h>
#include <stdint.h>

#define LTX_MAGIC            "LTX1"
#define LTX_HEADER_SIZE      100
#define LTX_PAGE_HEADER_SIZE 6
#define LTX_PAGE_SIZE_PREFIX 4
#define LTX_TRAILER_SIZE     16
#define LTX_FLAG_NO_CHECKSUM 0x00000002u
#define LTX_HEADER_FLAG_MASK LTX_FLAG_NO_CHECKSUM
#define LTX_PAGE_FLAG_SIZE   0x0001u
#define LTX_CHECKSUM_FLAG    0x8000000000000000ull
#define LTX_PENDING_BYTE     0x40000000u
#define LTX_MIN_PAGE_SIZE    512u
#define LTX_MAX_PAGE_SIZE    65536u
/* Smallest possible file: header, terminator, index "0", length, trailer. */
#define LTX_MIN_FILE_SIZE                                                      \
    (LTX_HEADER_SIZE + LTX_PAGE_HEADER_SIZE + 1 + 8 + LTX_TRAILER_SIZE)
/* Length of the longest name ltx_txid_name() writes, plus the NUL. */
#define LTX_NAME_SIZE 40

typedef struct ltx_header {
    uint32_t flags;     /* LTX_FLAG_NO_CHECKSUM or 0 */
    uint32_t page_size; /* 512..65536, a power of two */
    uint32_t commit;    /* database size in pages after applying the file */
    uint64_t min_txid;  /* >= 1; 1 means "snapshot" */
    uint64_t max_txid;  /* >= min_txid */
    int64_t timestamp;  /* creation time, Unix epoch milliseconds */
    uint64_t pre_apply; /* database checksum before applying (rules 1.4) */
    int64_t wal_offset; /* source WAL offset, 0 if not from a WAL */
    int64_t wal_size;   /* WAL bytes covered, 0 if wal_offset is 0 */
    uint32_t wal_salt1;
    uint32_t wal_salt2;
    uint64_t node_id;
} ltx_header;

typedef struct ltx_trailer {
    uint64_t post_apply;    /* database checksum after applying, or 0 */
    uint64_t file_checksum; /* CRC of the file (1.7), bit 63 set */
} ltx_trailer;

/* One entry of the page index: the frame of page pgno is the `size` bytes at
 * file offset `offset` (its 6-byte page header included). */
typedef struct ltx_index_entry {
    uint32_t pgno;
    uint64_t offset;
    uint32_t size;
} ltx_index_entry;

/* ---- Checksums and small helpers ------------------------------------- */

/* The page that holds SQLite's lock byte: 0x40000000 / page_size + 1.  It is
 * never stored in an LTX file and reads back as zeros. */
uint32_t ltx_lock_pgno(uint32_t page_size);

/* 1 if page_size is a power of two in 512..65536, else 0. */
int ltx_page_size_valid(uint32_t page_size);

/* Page checksum: LTX_CHECKSUM_FLAG | CRC64(BE32(pgno) || page). */
uint64_t ltx_page_checksum(uint32_t pgno, const void *page, uint32_t page_size);

/* Rolling database checksum: start at LTX_CHECKSUM_FLAG (the empty
 * database), then fold in the checksum of every page but the lock page.
 * Folding the same page checksum twice removes it again, so a page update
 * is fold(fold(c, old), new). */
static inline uint64_t
ltx_checksum_fold(uint64_t c, uint64_t page_cksum)
{
    return LTX_CHECKSUM_FLAG | (c ^ page_cksum);
}

/* Database checksum of a whole image of npages pages held in memory (the
 * lock page, if npages reaches it, is skipped). */
uint64_t ltx_db_checksum(const void *db, uint32_t page_size, uint32_t npages);

/* ---- Header and names ------------------------------------------------ */

/* Serialises hdr (magic, fields, 20 zero reserved bytes).  No validation. */
void ltx_header_encode(const ltx_header *hdr, uint8_t out[LTX_HEADER_SIZE]);

/*
 * Checks hdr against the rules of docs/ltx-format.md 1.4 (flags, page size,
 * TXIDs, WAL fields, pre-apply checksum).  Returns SQLITE_OK, SQLITE_FORMAT for
 * unknown flag bits, else SQLITE_CORRUPT; the reason goes to zErr (may be
 * NULL).
 */
int ltx_header_validate(const ltx_header *hdr, char *zErr, size_t nErr);

/*
 * Parses and validates a 100-byte header.  Returns SQLITE_OK and fills *hdr,
 * or SQLITE_CORRUPT (bad magic, invalid field) / SQLITE_FORMAT (unknown flag
 * bits) with the reason in zErr.  The reserved bytes are ignored.
 */
int ltx_header_decode(const uint8_t in[LTX_HEADER_SIZE], ltx_header *hdr,
                      char *zErr, size_t nErr);

/* 1 if the file is a snapshot (min TXID 1, must hold pages 1..commit). */
static inline int
ltx_is_snapshot(const ltx_header *hdr)
{
    return hdr->min_txid == 1;
}

/* Writes "%016llx-%016llx.ltx" (37 characters and a NUL) to out and
 * returns out. */
const char *ltx_txid_name(uint64_t min, uint64_t max, char out[LTX_NAME_SIZE]);

/* Returns 1 and sets *min and *max if name matches
 * ^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$ exactly, else 0 (outputs untouched). */
int ltx_parse_name(const char *name, uint64_t *min, uint64_t *max);

/* ---- Encoder ---------------------------------------------------------- */

/* Write callback: write all n bytes; return 0 on success, nonzero on error
 * (the encoder then fails with SQLITE_IOERR and must be freed). */
typedef int (*ltx_write_fn)(void *ctx, const void *buf, size_t n);

typedef struct ltx_encoder ltx_encoder;

/*
 * Creates an encoder and writes the header.  The header must pass
 * ltx_header_validate(), and a file with commit 0 must not have
 * LTX_FLAG_NO_CHECKSUM (its post-apply checksum has to be exactly
 * LTX_CHECKSUM_FLAG); otherwise SQLITE_MISUSE.  Output is buffered inside the
 * encoder; xWrite sees chunks of up to a few hundred KiB.
 * On success *out owns the encoder (free with ltx_encoder_free).  On failure
 * *out is still set when an encoder was allocated (so its errmsg can be
 * read; free it), or NULL on SQLITE_NOMEM.
 * Returns SQLITE_OK, SQLITE_MISUSE or SQLITE_NOMEM (the header is only
 * buffered: write errors surface later).
 */
int ltx_encoder_open(const ltx_header *hdr, ltx_write_fn xWrite, void *ctx,
                     ltx_encoder **out);

/*
 * Chooses the legacy page encoding (one LZ4 frame per page, page flags 0,
 * readable by every Litestream 0.5.x) when on is nonzero; the default is the
 * current encoding (size-prefixed LZ4 block, Litestream >= 0.5.16).  Only
 * before the first page: SQLITE_MISUSE afterwards.
 */
int ltx_encoder_set_legacy(ltx_encoder *enc, int on);

/*
 * Appends page pgno (page_size bytes at page).  Rules (SQLITE_MISUSE when
 * broken, nothing is written and the encoder stays usable): pgno >= 1,
 * strictly ascending, pgno <= commit, never the lock page; a snapshot must
 * give pages 1..commit consecutively, skipping only the lock page.
 * SQLITE_IOERR / SQLITE_NOMEM / SQLITE_INTERNAL (compressor failure) leave
 * the encoder failed: every later call returns the same code.
 */
int ltx_encoder_page(ltx_encoder *enc, uint32_t pgno, const void *page);

/*
 * As ltx_encoder_page(), but the payload is given already compressed: `block`
 * holds n bytes of one raw LZ4 block which the caller guarantees decompresses
 * to exactly the page at `page` (as returned by ltx_decoder_payload() after a
 * successful ltx_decoder_read()).  Lets compaction copy frames without
 * recompressing.  SQLITE_MISUSE in legacy mode or if n is out of bounds.
 */
int ltx_encoder_page_lz4(ltx_encoder *enc, uint32_t pgno, const void *page,
                         const void *block, size_t n);

/*
 * Writes the terminator, the page index and the trailer, and flushes.
 * post_apply must be 0 with LTX_FLAG_NO_CHECKSUM; otherwise non-zero with bit
 * 63 set, exactly LTX_CHECKSUM_FLAG when commit is 0, and, for a snapshot,
 * equal to ltx_encoder_checksum().  A snapshot must have received every page
 * 1..commit.  Broken rules give SQLITE_MISUSE (encoder still usable, e.g. to
 * retry with the right checksum).  On SQLITE_OK *out (may be NULL) receives
 * the trailer and the encoder accepts nothing more but its accessors.
 */
int ltx_encoder_finish(ltx_encoder *enc, uint64_t post_apply, ltx_trailer *out);

/* Bytes handed to the output so far (the file size after finish). */
uint64_t ltx_encoder_size(const ltx_encoder *enc);

/* Rolling database checksum of the pages encoded so far: for a complete
 * snapshot, the checksum of the database it holds. */
uint64_t ltx_encoder_checksum(const ltx_encoder *enc);

/* Message of the last error ("" if none).  Owned by the encoder. */
const char *ltx_encoder_errmsg(const ltx_encoder *enc);

/* Frees the encoder (NULL-safe).  Output not yet finished is abandoned. */
void ltx_encoder_free(ltx_encoder *enc);

/* ---- Decoder ---------------------------------------------------------- */

/*
 * Read callback: read up to n bytes into buf and store the count in *nRead.
 * Return 0 on success; *nRead < n means end of file (the decoder will not
 * call again).  Nonzero means an I/O error (the decoder fails with
 * SQLITE_IOERR).  The decoder reads ahead in chunks of tens of KiB and
 * expects to consume the whole stream: bytes after the trailer are an error.
 */
typedef int (*ltx_read_fn)(void *ctx, void *buf, size_t n, size_t *nRead);

typedef struct ltx_decoder ltx_decoder;

/*
 * Creates a decoder, reads and validates the header (ltx_header_decode).
 * On success *out owns the decoder.  On failure *out is still set when a
 * decoder was allocated (read its errmsg, then free it), or NULL on
 * SQLITE_NOMEM.  Returns SQLITE_OK, SQLITE_CORRUPT, SQLITE_FORMAT,
 * SQLITE_IOERR or SQLITE_NOMEM.
 */
int ltx_decoder_open(ltx_read_fn xRead, void *ctx, ltx_decoder **out);

/* The decoded header (valid while the decoder lives). */
const ltx_header *ltx_decoder_header(const ltx_decoder *dec);

/*
 * Decodes the next page frame into page (page_size bytes) and sets *pgno.
 * Returns SQLITE_OK, or SQLITE_DONE at the terminator.  Both encodings are
 * accepted.  Checked: pgno != 0, known flags, payload within bounds and
 * decompressing to exactly page_size bytes, pgno ascending, pgno <= commit,
 * never the lock page; for a snapshot pages 1..commit all present in order.
 * Any error (SQLITE_CORRUPT, SQLITE_FORMAT, SQLITE_IOERR, SQLITE_NOMEM) is
 * sticky.  Equivalent to ltx_decoder_next() then ltx_decoder_read().
 */
int ltx_decoder_page(ltx_decoder *dec, uint32_t *pgno, void *page);

/*
 * The two halves of ltx_decoder_page(): ltx_decoder_next() reads and checks
 * the next page header (SQLITE_OK and *pgno, or SQLITE_DONE), then
 * ltx_decoder_read() decodes its payload into page (SQLITE_MISUSE if no
 * header is pending).  Lets a caller pick the destination buffer by pgno.
 */
int ltx_decoder_next(ltx_decoder *dec, uint32_t *pgno);
int ltx_decoder_read(ltx_decoder *dec, void *page);

/* Page checksum (ltx_page_checksum) of the page last read, computed for
 * free from the file CRC pass. */
uint64_t ltx_decoder_page_checksum(const ltx_decoder *dec);

/* Rolling database checksum over all pages read so far. */
uint64_t ltx_decoder_checksum(const ltx_decoder *dec);

/*
 * The raw LZ4 block of the page last read when it used the current encoding
 * (*n set), else NULL.  Valid until the next call on dec.
 */
const void *ltx_decoder_payload(const ltx_decoder *dec, size_t *n);

/*
 * Finishes reading: decodes (and checks) any pages not yet read, reads the
 * index and the trailer and verifies: the index lists exactly the frames
 * seen (pgno, offset, length) and its length field is right; the trailer
 * rules of docs/ltx-format.md 1.6; the file checksum; for a snapshot with
 * checksums, the post-apply checksum equals the database checksum of its pages
 * (for commit 0 with checksums: exactly LTX_CHECKSUM_FLAG); nothing follows the
 * trailer.  Index problems are reported after a file checksum mismatch,
 * which better describes a damaged file.  Returns SQLITE_OK and *out (may be
 * NULL), or the error (sticky).  Calling it again after success returns
 * SQLITE_OK.
 */
int ltx_decoder_close(ltx_decoder *dec, ltx_trailer *out);

/* File offset of the next byte the decoder will consume. */
uint64_t ltx_decoder_offset(const ltx_decoder *dec);

/* Message of the last error ("" if none).  Owned by the decoder. */
const char *ltx_decoder_errmsg(const ltx_decoder *dec);

/* Frees the decoder (NULL-safe). */
void ltx_decoder_free(ltx_decoder *dec);

/* In-memory source for ltx_decoder_open: ctx is a struct ltx_membuf whose
 * off advances as bytes are read. */
struct ltx_membuf {
    const uint8_t *p;
    size_t n, off;
};
int ltx_membuf_read(void *ctx, void *buf, size_t n, size_t *nRead);

/* File-descriptor callbacks: ctx points to an int fd.  ltx_fd_read uses
 * read() (retrying on EINTR and short reads), ltx_fd_write write() and
 * ltx_fd_pwrite pwrite() (for ltx_expand).  errno is left set on failure. */
int ltx_fd_read(void *ctx, void *buf, size_t n, size_t *nRead);
int ltx_fd_write(void *ctx, const void *buf, size_t n);
int ltx_fd_pwrite(void *ctx, const void *buf, size_t n, uint64_t offset);

/* ---- Random access ----------------------------------------------------- */

/*
 * Parses the page index and trailer from the last n bytes (tail) of a file
 * of file_size bytes.  Returns:
 *   SQLITE_OK      *entries (malloc'ed, free() it; NULL when *count is 0),
 *                  *count and *trailer set.
 *   SQLITE_TOOBIG  tail too short for the index: *need = tail bytes needed.
 *   SQLITE_CORRUPT the index or trailer is malformed: every entry must have
 *                  pgno ascending and non-zero, frames contiguous from
 *                  offset 100 up to the terminator just before the index,
 *                  and the trailer checksums must carry bit 63 (post-apply
 *                  may be 0).  Reason in zErr.
 *   SQLITE_MISUSE  n > file_size.
 *   SQLITE_NOMEM.
 * Only the index and trailer are checked (the file checksum needs the whole
 * file).  need and trailer may be NULL.
 */
int ltx_index_parse(const uint8_t *tail, size_t n, uint64_t file_size,
                    ltx_index_entry **entries, uint32_t *count,
                    ltx_trailer *trailer, uint64_t *need, char *zErr,
                    size_t nErr);

/*
 * Decodes one page frame (the n bytes of file range [offset, offset+size)
 * named by an index entry) into page (page_size bytes).  The frame must be
 * for page expect_pgno and be exactly n bytes long; both encodings.
 * Returns SQLITE_OK, SQLITE_CORRUPT, SQLITE_FORMAT (unknown flags, LZ4
 * dictionary) or SQLITE_MISUSE (bad page_size); reason in zErr.
 */
int ltx_frame_decode(const uint8_t *frame, size_t n, uint32_t page_size,
                     uint32_t expect_pgno, void *page, char *zErr, size_t nErr);

/* ---- Merge and expand (merge.c) ------------------------------------ */

/* Not a header flag: in ltx_merge's out_flags, asks for the legacy page
 * encoding in the output (see ltx_encoder_set_legacy). */
#define LTX_MERGE_LEGACY_FRAMES 0x80000000u

/*
 * Merges n >= 1 opened decoders, sorted by TXID, into one LTX file written
 * through xWrite (docs/ltx-format.md 1.12).  Rejected with SQLITE_CORRUPT and a
 * message naming the files' TXIDs: page-size mismatch, a gap (next.min >
 * prev.max + 1), a non-advancing input (next.max <= prev.max), a broken
 * checksum chain (adjacent inputs with checksums where next.pre_apply !=
 * prev.post_apply), a merged snapshot with a missing page.  For each pgno the
 * newest input's copy wins; pages above the last input's commit are dropped.
 * Output header: out_flags, page size of the inputs, commit / max TXID of the
 * last, min TXID and pre-apply of the first, the given timestamp (the
 * reference uses the last input's), WAL fields and node id 0.  Checksums are
 * written unless out_flags has LTX_FLAG_NO_CHECKSUM, except that a
 * non-snapshot output whose first input has no pre-apply or last input no
 * post-apply checksum is written with LTX_FLAG_NO_CHECKSUM (check
 * out_hdr->flags).  A snapshot output with checksums gets the database
 * checksum of its pages as post-apply.  Whatever the output flags, a merged
 * snapshot whose last input carries a post-apply checksum must have exactly
 * that checksum (SQLITE_CORRUPT otherwise).  Pages in the current encoding
 * are copied without recompression.
 * The inputs must be freshly opened (no page read yet); every input is fully
 * read and verified (closed); the decoders still belong to the caller.
 * Memory: O(page size), never O(database).  On error the bytes already
 * written are garbage and must be discarded.  out_hdr and out_trailer may be
 * NULL.  Also returns SQLITE_FORMAT, SQLITE_IOERR, SQLITE_NOMEM or
 * SQLITE_MISUSE (n < 1, a used decoder, bad out_flags, or commit 0 with
 * LTX_FLAG_NO_CHECKSUM, which the encoder cannot write).
 */
int ltx_merge(ltx_decoder **inputs, int n, uint32_t out_flags,
              int64_t timestamp, ltx_write_fn xWrite, void *ctx,
              ltx_header *out_hdr, ltx_trailer *out_trailer, char *zErr,
              size_t nErr);

/* Positional write callback: write n bytes at offset; 0 on success. */
typedef int (*ltx_pwrite_fn)(void *ctx, const void *buf, size_t n,
                             uint64_t offset);

/*
 * Expands a snapshot (min TXID 1) into a database image: pages 1..commit
 * written through xPwrite in ascending order in batches of up to 1 MiB, the
 * lock page as zeros, commit * page_size bytes in all (the caller truncates
 * the destination to that size).  The file is fully verified (closed);
 * *cksum (may be NULL) receives the database checksum of the image, which
 * for a file with checksums equals its post-apply checksum (checked).
 * Returns SQLITE_OK, SQLITE_MISUSE (not a snapshot), SQLITE_CORRUPT,
 * SQLITE_FORMAT, SQLITE_IOERR or SQLITE_NOMEM.
 */
int ltx_expand(ltx_decoder *snap, ltx_pwrite_fn xPwrite, void *ctx,
               uint64_t *cksum, char *zErr, size_t nErr);

/*
 * Restore in one pass: merges inputs (as ltx_merge; the first must be a
 * snapshot, else SQLITE_MISUSE) and writes the resulting database image
 * straight through xPwrite (as ltx_expand) without an intermediate LTX file.
 * The final database checksum goes to *cksum and, when the last input has a
 * post-apply checksum, must equal it.  *out_hdr (may be NULL) receives the
 * header the merged snapshot would have (flags 0).
 */
int ltx_merge_expand(ltx_decoder **inputs, int n, ltx_pwrite_fn xPwrite,
                     void *ctx, ltx_header *out_hdr, uint64_t *cksum,
                     char *zErr, size_t nErr);

/* ---- LZ4 frame reader (lz4frame.c) ------------------------------------ */

/*
 * Streams the content of LZ4 frames (the LZ4 frame format, lz4_Frame_format.md
 * of github.com/lz4/lz4), as Litestream v0.3 writes its snapshots and WAL
 * segments: one frame or several concatenated, skippable frames ignored.
 * Checked: magic, version, reserved bits, the header checksum, block sizes
 * against the frame's maximum, every block decompressing within it, block
 * checksums and the content checksum when the frame's flags announce them
 * (XXH32), the content size when given.  Blocks may be independent or
 * linked.  Memory: two blocks of the frame's maximum size (4 MiB at most)
 * and a 64 KiB window.
 */
typedef struct ltx_lz4_reader ltx_lz4_reader;

/*
 * Creates a reader over xRead/ctx (nothing is read yet).  Returns
 * SQLITE_OK and *out, or SQLITE_NOMEM (*out NULL).
 */
int ltx_lz4_reader_open(ltx_read_fn xRead, void *ctx, ltx_lz4_reader **out);

/*
 * Reads up to n bytes of content into buf; *nRead < n only at the end of
 * the input (after a complete last frame).  Returns SQLITE_OK, or
 * SQLITE_CORRUPT (malformed or truncated input, checksum mismatch),
 * SQLITE_FORMAT (a dictionary is needed), SQLITE_IOERR (xRead failed),
 * SQLITE_NOMEM; errors are sticky and leave a message.
 */
int ltx_lz4_reader_read(ltx_lz4_reader *r, void *buf, size_t n, size_t *nRead);

/* Content bytes returned so far, and input bytes consumed. */
uint64_t ltx_lz4_reader_out(const ltx_lz4_reader *r);
uint64_t ltx_lz4_reader_in(const ltx_lz4_reader *r);

/* The last error's message ("" if none). */
const char *ltx_lz4_reader_errmsg(const ltx_lz4_reader *r);

/* Frees the reader; NULL-safe. */
void ltx_lz4_reader_free(ltx_lz4_reader *r);

#endif
