/*
 * storage/reader/pagemap.h: the read replica's page index: for every page of
 * the database at one TXID, which LTX object holds its newest frame and where
 * (docs/architecture.md section 7, docs/ltx-format.md 1.6).
 *
 * A map is built by applying LTX objects in TXID order (a restore plan,
 * then the objects polling finds), newest page wins, as a merge would:
 * applying an object sets the frame of each page it holds, sets the
 * database size to its commit (pages beyond it are dropped: a shrink) and
 * the TXID to its max.  An object that holds every page 1..commit (a
 * snapshot or a full image) first clears the map, which is how a page size
 * change is followed.  Objects no page refers to any more are forgotten.
 *
 * Every object applied gets a uid, unique for the life of the reader that
 * supplies it, which keys the page cache (storage/reader/pagecache.h).
 *
 * Pure memory: no I/O.  Threads: one owner thread.
 */
#ifndef LITESTREAM_PAGEMAP_H
#define LITESTREAM_PAGEMAP_H

#include <stdint.h>

#include "storage/backend/layout.h"
#include "storage/ltx/ltx.h"

/* An LTX object whose header and page index were fetched. */
typedef struct pm_loaded {
    ltx_info info;          /* level, TXIDs, size, created */
    ltx_header hdr;         /* page size, commit, timestamp */
    ltx_index_entry *index; /* ascending pgno; malloc'd (libc, as ltx.h) */
    uint32_t n;
    uint64_t post_apply; /* trailer: database checksum after it, or 0 */
} pm_loaded;

/* An object the map refers to. */
typedef struct pm_object {
    uint64_t uid;
    ltx_info info;
    int64_t timestamp; /* header timestamp, Unix ms */
    uint32_t refs;     /* pages pointing at it */
} pm_object;

/* Where the frame of a page is: object objs[obj - 1] (0: no frame). */
typedef struct pm_page {
    uint32_t obj;
    uint32_t size;
    uint64_t offset;
} pm_page;

typedef struct pagemap {
    pm_object *objs;
    uint32_t nobj, capobj;
    pm_page *pages; /* pages[pgno - 1] */
    uint32_t npages, cappages;
    uint32_t page_size; /* 0 while empty */
    uint64_t txid;      /* max TXID of the last object applied */
    int64_t newest_ms;  /* created time of the newest object applied */
    int64_t txid_ms;    /* header timestamp of the last object applied */
    uint64_t checksum;  /* its post-apply checksum (0: none) */
} pagemap;

/* Frees the map's arrays and zeroes it (a zeroed map is empty). */
void pagemap_clear(pagemap *pm);

/* 1 if o holds every page 1..commit (lock page excepted). */
int pagemap_is_full(const pm_loaded *o);

/*
 * Applies object o under uid.  o must continue the map (o->info.min_txid
 * <= pm->txid + 1 < o->info.max_txid + 1), or be full.  A page size
 * different from the map's is accepted only from a full object.  Returns
 * SQLITE_OK, or SQLITE_CORRUPT (with *pzErr) for an object that cannot
 * continue the map, or SQLITE_NOMEM; on error the map is unchanged.
 */
int pagemap_apply(pagemap *pm, const pm_loaded *o, uint64_t uid, char **pzErr);

/*
 * The frame of page pgno: SQLITE_OK and *obj and *page, or SQLITE_NOTFOUND if
 * pgno is beyond the database, is the lock page, or has no frame.
 */
int pagemap_lookup(const pagemap *pm, uint32_t pgno, const pm_object **obj,
                   const pm_page **page);

/* Frees the index array of a loaded object and zeroes it; NULL-safe. */
void pagemap_loaded_free(pm_loaded *o);

#endif
