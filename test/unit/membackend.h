/*
 * test/unit/membackend.h: an in-memory backend for the unit tests of the
 * replication engine.
 *
 * A store holds objects by key; any number of handles (backend_vtab
 * "mem", file-like level directories "ltx/%d/") share one store, as the
 * replicator's and the compactor's handles share a bucket.  A countdown
 * makes a put fail (SQLITE_IOERR) to test retries.  Thread-safe (the
 * compactor thread and the test's thread use it at once).  Call after the
 * SQLite API table is set (keys are sqlite3_malloc'd).
 */
#ifndef LITESTREAM_TEST_MEMBACKEND_H
#define LITESTREAM_TEST_MEMBACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/backend.h"

typedef struct mem_store mem_store;

/* A new empty store (NULL out of memory); free with mem_store_free(). */
mem_store *mem_store_new(void);
void mem_store_free(mem_store *s); /* after every handle is closed */

/* A handle on s; close with backend_close(). */
backend *membackend_open(mem_store *s);

/* The number of objects, and the keys of them (i-th in key order). */
int mem_store_count(mem_store *s);

/* The list() calls made so far through every handle on s. */
int mem_store_lists(mem_store *s);
const char *mem_store_key(mem_store *s, int i);

/*
 * A copy of the object under key (malloc'd, *n bytes; free()), or NULL if
 * absent.
 */
uint8_t *mem_store_get(mem_store *s, const char *key, size_t *n);

/* Stores an object directly (as put() would), e.g. a prepared L0 file. */
void mem_store_put(mem_store *s, const char *key, const void *p, size_t n,
                   int64_t created_ms);

/* The n-th next put() fails with SQLITE_IOERR (0: none fails). */
void mem_store_fail_put(mem_store *s, int n);

#endif
