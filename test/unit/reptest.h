/*
 * test/unit/reptest.h: what the replication-engine tests share
 * (reptest.c): a hand-built replicator (no thread: the test is the
 * replicator thread) over any backend, spool records of known pages, a
 * real SQLite database in WAL mode and its WAL frames, and LTX objects
 * decoded into a database image.
 *
 * Page contents are a function of (pgno, version): rt_page().  Call
 * rt_init() first.
 */
#ifndef LITESTREAM_TEST_REPTEST_H
#define LITESTREAM_TEST_REPTEST_H

#include <stdint.h>

#include "storage/ltx/ltx.h"
#include "storage/replicate/replicator_int.h"

/* Sets the SQLite API table (once). */
void rt_init(void);

/* A new empty directory under $TMPDIR (malloc'd); rt_rmrf() removes it. */
char *rt_tmpdir(void);
void rt_rmrf(const char *zDir);

/*
 * A replicator for the database zDbPath (which need not exist) over be
 * (taken over): sidecar, spool, checksum table, url file:///unused; mutex
 * and conditions initialised, no thread.  Exits the test on failure.
 */
replicator *rt_replicator(const char *zDbPath, backend *be);
void rt_replicator_free(replicator *r);

/* Fills page (ps bytes) with the content of page pgno at `version`. */
void rt_page(uint8_t *page, uint32_t ps, uint32_t pgno, uint32_t version);

/*
 * Appends spool record txid: pages pgnos[0..n-1] (ascending) at `version`,
 * database size commit, flags (SPOOL_F_*).  SQLITE_OK or the spool's rc.
 */
int rt_spool(replicator *r, uint64_t txid, uint32_t flags, uint32_t ps,
             uint32_t commit, const uint32_t *pgnos, uint32_t n,
             uint32_t version);

/*
 * Decodes the LTX object p[0..n) and applies its pages to db (max_pages
 * pages of h.page_size; pages beyond are refused).  SQLITE_OK with *h and
 * *tr, or the decoder's error.
 */
int rt_apply(const uint8_t *p, size_t n, uint8_t *db, uint32_t max_pages,
             ltx_header *h, ltx_trailer *tr);

/* The frames of a WAL file, as the capture would describe them. */
#define RT_WAL_MAX 16384 /* frames rt_wal_read reads */
typedef struct rt_frame {
    uint32_t pgno, commit, cksum1, cksum2;
} rt_frame;
typedef struct rt_wal {
    uint32_t salt1, salt2, page_size, cksum1, cksum2; /* header */
    uint32_t n;
    rt_frame f[RT_WAL_MAX]; /* f[i] is frame i + 1 */
} rt_wal;

/* Reads the header and frame headers of zWal.  0 on success. */
int rt_wal_read(const char *zWal, rt_wal *w);

/* The WAL position after frame i (1-based; 0: the header's seed). */
wal_pos rt_wal_pos(const rt_wal *w, uint32_t i);

#endif
