/*
 * storage/reader/pagecache.h: a bounded LRU cache of decoded database pages,
 * used by the read replica (storage/reader/reader.c).
 *
 * A page is keyed by (object uid, pgno): the uid names one LTX object for
 * the life of the reader (storage/reader/pagemap.h), and the frame of a page in
 * an object never changes, so an entry is valid forever and nothing has to be
 * invalidated when the reader moves to a newer TXID: entries of pages the
 * newer state no longer uses simply age out.  The cache holds at most
 * `budget` bytes of page data (pages may differ in size after a page_size
 * change), evicting the least recently used.
 *
 * Threads: one owner thread (the connection's), no locking.
 */
#ifndef LITESTREAM_PAGECACHE_H
#define LITESTREAM_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pagecache pagecache;

/*
 * Creates a cache holding up to budget bytes of pages (at least one page is
 * always kept, whatever the budget).  SQLITE_OK and *out, or SQLITE_NOMEM.
 */
int pagecache_open(uint64_t budget, pagecache **out);

/* Frees the cache and every page; NULL-safe. */
void pagecache_close(pagecache *c);

/*
 * The page (uid, pgno) of page_size bytes, or NULL; a hit becomes the most
 * recently used.  The pointer stays valid until the next pagecache_put()
 * or pagecache_close().
 */
const uint8_t *pagecache_get(pagecache *c, uint64_t uid, uint32_t pgno,
                             uint32_t page_size);

/*
 * Stores a copy of page (page_size bytes) under (uid, pgno), replacing any
 * entry of that key, evicting as needed.  SQLITE_OK or SQLITE_NOMEM (the
 * cache is then unchanged but for evictions).
 */
int pagecache_put(pagecache *c, uint64_t uid, uint32_t pgno, uint32_t page_size,
                  const void *page);

/*
 * As pagecache_put(), but returns the new entry's page_size bytes for the
 * caller to fill (e.g. decode into), or NULL if out of memory.  Valid
 * until the next put/reserve; pagecache_drop() it if it cannot be filled.
 */
uint8_t *pagecache_reserve(pagecache *c, uint64_t uid, uint32_t pgno,
                           uint32_t page_size);

/* Removes (uid, pgno) if cached. */
void pagecache_drop(pagecache *c, uint64_t uid, uint32_t pgno);

/* Pages the budget can hold at page_size (>= 1). */
uint32_t pagecache_capacity(const pagecache *c, uint32_t page_size);

/* Bytes and pages currently cached. */
uint64_t pagecache_bytes(const pagecache *c);
uint32_t pagecache_count(const pagecache *c);

#endif
