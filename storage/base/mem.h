/*
 * storage/base/mem.h: the allocator of bulk buffers.
 *
 * House rule 3 says sqlite3_malloc64; this is the one exception, for the
 * buffers that carry page images: the capture's WAL copies and queued
 * transactions (allocated on application threads, freed on the replicator
 * thread), spool records, and the uploader's working arrays.  SQLite's
 * allocator serializes every thread on one mutex while memory statistics
 * are on (its default), so the replicator thread's thousands of
 * allocations a second made the application's own SQLite allocations
 * wait: 9% of the writer's time in the 1-row-transaction benchmark.  The C
 * allocator has per-thread arenas.  Strings, handles and everything small
 * stay on sqlite3_malloc64.  Memory from ls_malloc/ls_realloc is freed with
 * ls_free, never sqlite3_free.
 */
#ifndef LITESTREAM_MEM_H
#define LITESTREAM_MEM_H

#include <stdint.h>
#include <stdlib.h>

static inline void *
ls_malloc(uint64_t n)
{
    return n > SIZE_MAX ? NULL : malloc(n ? (size_t)n : 1);
}

static inline void *
ls_realloc(void *p, uint64_t n)
{
    return n > SIZE_MAX ? NULL : realloc(p, n ? (size_t)n : 1);
}

static inline void
ls_free(void *p)
{
    free(p);
}

#endif
