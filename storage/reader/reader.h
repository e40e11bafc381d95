/*
 * storage/reader/reader.h: a read replica served straight from the replica's
 * LTX objects (docs/architecture.md section 7, docs/ltx-format.md 1.6 and 4):
 * the engine behind the `litestream-remote` VFS, with no knowledge of SQLite's
 * VFS.
 *
 *   open     = restore plan (storage/restore/restore.h) + each planned object's
 *              header and page index (one GET of the whole object when it
 *              is small, else a header GET and a tail GET), applied in
 *              order into a page map (storage/reader/pagemap.h);
 *   read     = page cache hit (storage/reader/pagecache.h), else one range GET
 * of the frame and one LZ4 decode; a miss that continues a sequential run
 * fetches several contiguous frames of the same object in that one GET
 * (read-ahead, the window doubling up to READER_RA_MAX_BYTES); poll     = list
 * level 0 (and levels 1..8 when level 0 has a gap) for objects after the TXID
 * served, fetch their indexes, apply them; a gap nothing bridges means a full
 * re-plan; retarget = re-plan for a TXID, a time, or the latest (time travel).
 *
 * The reader only ever changes its page map inside reader_poll(),
 * reader_retarget() and, when an object it uses vanished (compaction or
 * retention deleted or replaced it between listing and reading), inside
 * reader_read(), which then re-plans for exactly the TXID served (the same
 * database, so a read transaction still sees one state) and retries once.
 *
 * Hydration (opts.hydrate, storage/reader/hydrate.h): a background thread
 * keeps a local copy of the database at the TXID served; pages unchanged
 * since the copy's TXID are then read from it (hydrate_order.c).
 *
 * Threads: a reader and its backend handle belong to one thread at a time
 * (the VFS: the connection's); it starts no thread, except the hydration
 * thread when asked and the loader threads it joins before returning.
 */
#ifndef LITESTREAM_READER_H
#define LITESTREAM_READER_H

#include <stdint.h>

#include "storage/backend/backend.h"

#define READER_SMALL_OBJECT (256u << 10) /* fetched whole when opening */
#define READER_TAIL_GUESS   (64u << 10)  /* first tail GET of big objects */
#define READER_RA_MAX_BYTES (1u << 20)   /* read-ahead: bytes per GET */
#define READER_RA_MAX_PAGES 256u         /* ... and pages per GET */

typedef struct reader reader;

typedef struct reader_opts {
    uint64_t cache_bytes;     /* page cache budget */
    uint64_t target_txid;     /* 0: not pinned to a TXID */
    int64_t target_ms;        /* 0: not pinned to a time (Unix ms) */
    int poll_ms;              /* 0: never poll; ignored while pinned */
    int hydrate;              /* keep a local copy (docs/remote.md) */
    const char *hydrate_path; /* ... in this file; NULL: a temporary one */
} reader_opts;

/* Counters of one reader (requests are the backend's own counters). */
typedef struct reader_stats {
    uint64_t cache_hits, cache_misses; /* pages */
    uint64_t pages_fetched;            /* frames decoded from GETs */
    uint64_t polls, replans, poll_errors;
    uint64_t file_reads;       /* pages read from the hydration file */
    backend_counters requests; /* the hydration thread's not included */
} reader_stats;

/* Hydration as the PRAGMAs and metrics show it (reader_get_hydration()). */
typedef struct reader_hydration {
    int enabled;
    const char *zState; /* idle, restoring, catching_up, complete, paused,
                           failed (static text) */
    double progress;    /* 0..1, 1: the file holds the TXID served */
    uint64_t file_txid; /* the TXID the file holds, 0: none yet */
    uint64_t n_get, bytes_down; /* the hydration thread's requests */
    const char *zPath;          /* "": temporary; NULL: no hydration */
    char zErr[512];             /* why it failed, "" */
} reader_hydration;

/*
 * Opens the replica zUrl and builds the page map for the target of o.
 * Returns SQLITE_OK and *out (free with reader_close()), or an error with
 * *pzErr (sqlite3_mprintf'd) saying which problem: the URL (malformed,
 * unsupported scheme), the replica (empty or missing: SQLITE_NOTFOUND; a
 * gap, no snapshot: SQLITE_CORRUPT), the target (not a restorable point),
 * a corrupt object (SQLITE_CORRUPT, naming it), or the backend's error
 * (SQLITE_IOERR, SQLITE_AUTH, ...).
 */
int reader_open(const char *zUrl, const reader_opts *o, reader **out,
                char **pzErr);

/* Frees the reader and its backend handle; NULL-safe. */
void reader_close(reader *r);

/*
 * Looks for newer objects when the reader follows the replica (not pinned,
 * poll_ms > 0) and poll_ms passed since the last look, or always when
 * force.  Applies what it finds.  A failure keeps the current state and is
 * recorded (reader_errmsg(), poll_errors); returns SQLITE_OK or that code.
 */
int reader_poll(reader *r, int force);

/*
 * Sets *page to page pgno (reader_page_size() bytes; valid until the next
 * call on r).  SQLITE_OK; SQLITE_IOERR_SHORT_READ if pgno is beyond the
 * database (*page NULL); otherwise an error with reader_errmsg() naming the
 * object: SQLITE_CORRUPT (undecodable frame, page missing from the
 * replica), SQLITE_IOERR (the object vanished and the TXID served is no
 * longer restorable: retry the transaction), the backend's code.
 */
int reader_read(reader *r, uint32_t pgno, const uint8_t **page);

/*
 * Re-plans for target_txid, else target_ms, else the latest state (then the
 * reader follows the replica again).  On error (*pzErr) the reader keeps
 * its current state and target.
 */
int reader_retarget(reader *r, uint64_t target_txid, int64_t target_ms,
                    char **pzErr);

/*
 * Polls until the TXID served is >= txid or timeout_ms passed (sleeping
 * between looks).  SQLITE_OK, or SQLITE_BUSY with *pzErr saying what is
 * visible.
 */
int reader_wait_txid(reader *r, uint64_t txid, int timeout_ms, char **pzErr);

uint32_t reader_page_size(const reader *r);
uint32_t reader_npages(const reader *r);
uint64_t reader_txid(const reader *r);
int64_t reader_txid_ms(const reader *r);   /* timestamp of that state */
int64_t reader_newest_ms(const reader *r); /* newest object applied */
int reader_pinned(const reader *r);        /* 1 if time travelling */
const char *reader_url(const reader *r);   /* redacted */
/* Message of the last failure ("" if none). */
const char *reader_errmsg(const reader *r);
void reader_get_stats(reader *r, reader_stats *out);
void reader_get_hydration(reader *r, reader_hydration *out);
/* The hydrator (storage/reader/hydrate.h), NULL without hydration; set at
 * open, so any thread may read it while the reader lives. */
struct hydrator *reader_hydrator(reader *r);

#endif
