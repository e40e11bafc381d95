/*
 * storage/local/spool.h: the spool, an append-only log of captured transactions
 * in `<sidecar>/spool/` (docs/architecture.md 4.3).
 *
 * Each process appends only to segments it created (named
 * `<first txid 16hex>-<pid>-<n>.seg`), so appends need no cross-process
 * lock and a torn tail left by a process that died can never have records
 * after it.  A record holds one TXID or a run of consecutive TXIDs
 * (txid..txid_max, the transactions one spooling pass took from the queue):
 * its flags, database size after the last commit, page size and the page
 * images (ascending pgno, newest copy of each page as of txid_max),
 * followed by a CRC-64 of everything before it; a record that is torn or
 * fails its CRC ends the readable part of its segment.
 *
 * The reader side (the uploader) scans every segment, its own and other
 * processes', into an in-memory index of records by first TXID; a TXID
 * spooled twice (a transaction recaptured after a crash) is read once.
 * Records are read in order with spool_read_next(): after TXID t, the
 * record that carries the state furthest past t among those starting at
 * or before t + 1 (a record overlapping TXIDs already read is still
 * right: its pages are the newest as of its last TXID), except that a
 * full-image record or marker starting at t + 1 always wins.
 *
 * Threads: one spool handle is used by one thread at a time (the
 * replicator of its process serializes its tasks with a lock), but for
 * spool_bytes(), which any thread may call.
 */
#ifndef LITESTREAM_SPOOL_H
#define LITESTREAM_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_F_FULL  0x1 /* a full image is needed at this TXID */
#define SPOOL_F_IMAGE 0x2 /* ... and this record holds it: pages 1..commit */

/*
 * Where a transaction ends in the WAL: the salts of the WAL it was captured
 * from, its commit frame and that frame's cumulative checksum.  Lets the
 * uploader re-read from the WAL what a process that died had captured but
 * not spooled (frame 0: unknown).
 */
typedef struct wal_pos {
    uint32_t salt1, salt2;
    uint32_t frame;
    uint32_t cksum1, cksum2;
} wal_pos;

/* One record (one transaction or a run of them), as appended and read. */
typedef struct spool_txn {
    uint64_t txid;
    uint64_t txid_max; /* its last TXID (0 when appending one: = txid) */
    uint32_t flags;
    uint32_t page_size;
    uint32_t commit;
    uint32_t npages;
    const uint32_t *pgnos; /* npages, ascending */
    const uint8_t *pages;  /* npages * page_size bytes, or NULL: on disk */
    wal_pos pos;
    int src_fd; /* read side, pages on disk: where they are */
    uint64_t pages_off;
    void *owned; /* storage behind the pointers (read side) */
} spool_txn;

typedef struct spool spool;

/* Opens the spool in directory zDir (created by the sidecar). */
int spool_open(const char *zDir, spool **out, char **pzErr);
void spool_close(spool *);

/*
 * Forgets every segment (the spool directory was removed and created
 * again): the next append starts a new segment, the next scan reads the
 * directory afresh.
 */
void spool_reset(spool *);

/*
 * Appends one record to this process's current segment (rotating at
 * 64 MiB).  Pages must be ascending and unique.  With do_sync the segment
 * is fdatasync()ed.  SQLITE_OK, SQLITE_FULL (disk full: nothing partial is
 * left behind), SQLITE_IOERR; *pzErr set on failure.
 */
int spool_append(spool *, const spool_txn *t, int do_sync, char **pzErr);

/*
 * As spool_append(), but the pages come one at a time from xPage (index i
 * in 0..t->npages-1; the pointer it returns must stay valid until the next
 * call), so a record bigger than memory can be written.  t->pages is
 * ignored.
 */
typedef int (*spool_page_fn)(void *ctx, uint32_t i, const uint8_t **page);
int spool_append_pages(spool *, const spool_txn *t, spool_page_fn xPage,
                       void *ctx, int do_sync, char **pzErr);

/* fdatasync()s this process's current segment. */
int spool_sync(spool *);

/*
 * Picks up records appended since the last scan (by any process).
 * Returns SQLITE_OK or SQLITE_IOERR.
 */
int spool_scan(spool *);

/* Highest TXID t >= from-1 such that every TXID in [from, t] is indexed. */
uint64_t spool_contiguous(spool *, uint64_t from);

/* Whether a record starting at txid is indexed. */
int spool_has(spool *, uint64_t txid);

/*
 * Reads the record of txid into *out (free with spool_txn_free), after
 * verifying its CRC.  Big records keep their pages on disk (out->pages is
 * NULL): get them with spool_txn_page() while the spool stays open and the
 * record is not dropped.  SQLITE_NOTFOUND if not indexed, SQLITE_CORRUPT
 * if it fails its CRC.
 */
int spool_read(spool *, uint64_t txid, spool_txn *out);

/*
 * Page i of a record read by spool_read(): a pointer into the record, or
 * into `scratch` (page_size bytes) when it was read from disk; NULL on an
 * I/O error.
 */
const uint8_t *spool_txn_page(const spool_txn *t, uint32_t i, uint8_t *scratch);

/*
 * The record that continues after TXID `after` (see the top of this file),
 * read as by spool_read().  SQLITE_NOTFOUND when none does.
 */
int spool_read_next(spool *, uint64_t after, spool_txn *out);

/*
 * The record that ends at TXID `to` (its position says where `to` ended in
 * the WAL), read as by spool_read().  SQLITE_NOTFOUND when none does.
 */
int spool_read_end(spool *, uint64_t to, spool_txn *out);
void spool_txn_free(spool_txn *);

/*
 * Deletes every segment whose records are all < txid (the record of txid
 * itself is kept: it says where txid ended in the WAL) and that no live
 * process may still append to (its own rotated or current-and-complete
 * segments; other processes' segments only if the owner is gone).  Drops
 * the index entries < txid.
 */
int spool_drop_upto(spool *, uint64_t txid);

/* Bytes in the spool's segments, as of the last scan.  Any thread. */
uint64_t spool_bytes(spool *);

#endif
