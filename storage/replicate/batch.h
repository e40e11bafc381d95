/*
 * storage/replicate/batch.h: an upload batch, the first steps of an
 * incremental L0 upload (upload.c): the spooled records of TXIDs from..to
 * read in order and reduced to the newest copy of each page (a full image
 * record supersedes everything before it), then listed by page number,
 * and checked for completeness.  Plain data over a spool: no backend, no
 * replicator.  Replicator thread only (one batch per upload).
 */
#ifndef LITESTREAM_BATCH_H
#define LITESTREAM_BATCH_H

#include <stdint.h>

#include "storage/local/spool.h"

/* pgno -> (record << 32 | page index): open addressing, pgno 0 = empty. */
typedef struct batch_map {
    uint32_t *key;
    uint64_t *val;
    uint32_t cap, n;
} batch_map;

/* The newest copy of one page: record `rec`, its page `idx`. */
typedef struct batch_page {
    uint32_t pgno;
    uint32_t rec; /* index into the batch's records */
    uint32_t idx; /* page index inside the record */
} batch_page;

typedef struct batch {
    uint64_t from, to; /* TXIDs covered; batch_read() may lower `to` */
    spool_txn *recs;   /* nrec records read; some released (live 0) */
    uint32_t *live;    /* per record: pages of it still newest */
    uint64_t nalloc;   /* entries of recs and live */
    uint64_t nrec;
    batch_map map;     /* pgno -> newest copy */
    batch_page *pages; /* batch_sort(): ascending, pgno <= commit */
    uint64_t npages;
    uint32_t page_size; /* of the pages (0 before the first page) */
    uint32_t commit;    /* database size after `to` */
    wal_pos last_pos;   /* where `to` ended in the WAL */
    int image_base;     /* a full image record starts the pages */
    int marker;         /* a full-image marker no image followed */
    int need_full;      /* only a full image can continue the replica */
} batch;

/*
 * Reads the records from..to of sp into b (zeroed first) in TXID order,
 * the newest copy of each page winning; a record left with no newest page
 * is released at once, so memory follows the distinct pages.  Stops after
 * the record that brings the pages past max_bytes (b->to then ends there),
 * unless a marker waits for an image.  Sets b->need_full: a record that
 * cannot be read (the spool's rc returned, with *pzErr), a page size
 * change, a marker no image followed (SQLITE_OK).  SQLITE_NOMEM.
 * Free b with batch_free() whatever the result.
 */
int batch_read(batch *b, spool *sp, uint64_t from, uint64_t to,
               uint64_t max_bytes, char **pzErr);

/*
 * Lists the newest copies by ascending page number in b->pages, dropping
 * pages beyond b->commit (truncated away).  SQLITE_OK or SQLITE_NOMEM.
 */
int batch_sort(batch *b);

/*
 * Whether every page the batch adds to a database of base_commit pages
 * (base_commit+1 .. commit, but the lock page) is in it.  After
 * batch_sort().
 */
int batch_complete(const batch *b, uint32_t base_commit);

/*
 * The content of b->pages[i] (page_size bytes): in its record, or read
 * into scratch (page_size bytes).  NULL if it cannot be read.
 */
const uint8_t *batch_page_data(const batch *b, uint64_t i, uint8_t *scratch);

/* Frees what b holds (not b).  NULL-safe members. */
void batch_free(batch *b);

#endif
