/*
 * storage/reader/reader_int.h: the state shared by storage/reader/reader.c
 * (open, read path) and storage/reader/plan.c (building and extending the page
 * map). Internal to the reader.
 */
#ifndef LITESTREAM_READER_INT_H
#define LITESTREAM_READER_INT_H

#include "storage/reader/hydrate.h"
#include "storage/reader/pagecache.h"
#include "storage/reader/pagemap.h"
#include "storage/reader/reader.h"

#define READER_LOAD_THREADS 8 /* extra threads fetching object indexes */

struct ls_url;

struct reader {
    struct ls_url *u;       /* the parsed replica URL */
    backend *b;             /* this reader's own handle (one thread) */
    backend_counters extra; /* requests of the loader threads' handles */
    pagemap map;            /* the state served */
    pagecache *cache;
    uint64_t next_uid; /* uid of the next object applied */
    uint64_t target_txid;
    int64_t target_ms;
    int poll_ms;
    int64_t last_poll; /* monotonic ms of the last look, 0: never */
    int stale;         /* the next poll must re-plan from scratch */
    uint32_t ra_next;  /* page after the last fetched run */
    uint32_t ra_pages; /* current read-ahead window, pages */
    uint8_t *page;     /* the page handed out by reader_read */
    uint32_t page_cap;
    char *zErr; /* last failure, or NULL */
    reader_stats st;
    int travel;           /* retargeted by PRAGMA: hydration paused */
    hydrator *hyd;        /* NULL: no hydration */
    uint64_t hyd_goal;    /* TXID of the last order submitted */
    int64_t hyd_retry_at; /* no order before (monotonic ms) */
};

/* state.c: replaces r's message with z (owned; may be NULL); returns rc. */
int reader_seterr(reader *r, int rc, char *z);

/* Monotonic clock, ms. */
int64_t reader_now_ms(void);

/*
 * Re-plans for target_txid / target_ms (0, 0: latest) and, on success,
 * replaces the page map.  On error *pzErr says why and the map is kept.
 */
int reader_build(reader *r, uint64_t target_txid, int64_t target_ms,
                 char **pzErr);

/*
 * Fetches the header and page index of files[0..n) into out[0..n) (free
 * each with pagemap_loaded_free()), in parallel (load.c).
 * SQLITE_OK, or the error of the first object that failed with *pzErr
 * naming it (SQLITE_NOTFOUND: it vanished or changed; SQLITE_CORRUPT; the
 * backend's code); out is then all freed.
 */
int reader_load_all(reader *r, const ltx_info *files, int n, pm_loaded *out,
                    char **pzErr);

/* hydrate_order.c: starts hydration into zPath (NULL: a temporary
 * file); SQLITE_OK even when the file is unusable (the hydrator then
 * reports why), or SQLITE_NOMEM. */
int reader_hydrate_start(reader *r, const char *zPath);

/* hydrate_order.c: gives the hydrator its next order if it is idle and
 * the file is behind the TXID served (at each read transaction's start). */
void reader_hydrate_kick(reader *r);

/* hydrate_order.c: 1 and buf filled if page pgno may be read from the
 * hydration file (its invariant 1) and was; else 0. */
int reader_hydrate_read(reader *r, uint32_t pgno, uint8_t *buf);

/* The key of object info into buf (LAYOUT_KEY_SIZE bytes). */
void reader_key(const reader *r, const ltx_info *info, char *buf);

#endif
