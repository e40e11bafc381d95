/*
 * test/fuzz/failmem.h: the failing allocator of the fuzz targets whose code
 * allocates through the SQLite API table (dav1d style): fuzz_setup()
 * installs a counting allocator and the API table (test/unit/api_init.h)
 * once; a target parses an input cleanly, reads fuzz_mem_count, then parses
 * it again with fuzz_mem_countdown = i for every i below it, so the i-th
 * allocation fails and every out-of-memory path runs.
 *
 * Included by one target file per binary (its statics are that file's).
 */
#ifndef LITESTREAM_FUZZ_FAILMEM_H
#define LITESTREAM_FUZZ_FAILMEM_H

#include "test/unit/api_init.h"

static sqlite3_mem_methods fuzz_mem_orig;
static long fuzz_mem_countdown = -1; /* fail when it reaches 0; -1 = never */
static long fuzz_mem_count;

static void *
fuzz_malloc(int n)
{
    fuzz_mem_count++;
    if (fuzz_mem_countdown >= 0 && fuzz_mem_countdown-- == 0)
        return NULL;
    return fuzz_mem_orig.xMalloc(n);
}

static void *
fuzz_realloc(void *p, int n)
{
    fuzz_mem_count++;
    if (fuzz_mem_countdown >= 0 && fuzz_mem_countdown-- == 0)
        return NULL;
    return fuzz_mem_orig.xRealloc(p, n);
}

static void
fuzz_setup(void)
{
    static int done;
    sqlite3_mem_methods m;

    if (done)
        return;
    done = 1;
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &fuzz_mem_orig);
    m = fuzz_mem_orig;
    m.xMalloc = fuzz_malloc;
    m.xRealloc = fuzz_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
    api_init();
}

#endif
