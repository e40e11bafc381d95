/*
 * storage/reader/hydrate.h: hydration, a local copy of a read replica's
 * database kept by a background thread (docs/remote.md, "Hydration").
 *
 * The hydrator owns one local file (the hydration file: an ordinary SQLite
 * database file, page n at byte (n - 1) * page_size) and one thread with
 * its own backend handle.  The reader (storage/reader/hydrate_order.c)
 * hands it orders: "write these frames of these LTX objects into the file,
 * set its size, and then the file holds TXID t".  The thread fetches each
 * object's frames in large ranges (whole objects, at most HYD_RANGE bytes
 * per GET: never one request per page), decodes them, writes them, fsyncs,
 * checks the whole file's checksum when the order asks, records the TXID
 * in "<file>.meta" and publishes it (hydrator_file_txid()).
 *
 * Invariants:
 *   1. The published TXID F (0: none) is the TXID the file holds: every
 *      page of the database at F is in the file.  An order changes only
 *      pages whose newest frame is after F, and F changes only when an
 *      order is complete (release store after the writes and the fsync).
 *      So a reader that reads only pages not changed since F, while no
 *      order can touch them, reads the state at F (hydrate_order.c).
 *   2. One order at a time: hydrator_submit() refuses while one runs.
 *      F is set to 0 by the reader (hydrator_invalidate(), before a full
 *      rewrite) or by the thread when a write fails; never raised except
 *      by completing an order.
 *   3. A failure writing the file (disk full, I/O error) or opening it
 *      (unwritable path, in use) stops hydration for good (HYD_FAILED,
 *      with the message); reads then keep going to the replica.  A failure
 *      fetching (network, object gone) only abandons the order: the reader
 *      submits another later.
 *   4. The file is locked (flock, exclusive) while the hydrator lives, so
 *      two connections never write one hydration file.
 *
 * Threads: hydrator_open/close/submit/invalidate/read/status belong to
 * the reader's owner thread; the hydration thread runs the orders;
 * hydrator_status() may also be called under the VFS's registry lock from
 * any thread while the hydrator lives.  Shared fields are under the
 * hydrator's mutex, F and the progress counters are atomics.
 */
#ifndef LITESTREAM_HYDRATE_H
#define LITESTREAM_HYDRATE_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/backend/layout.h"

#define HYD_RANGE (8u << 20) /* bytes per GET at most */

struct ls_url;
typedef struct hydrator hydrator;

/* One page of an order: its frame is [offset, offset + size) of object
 * keys[obj]. */
typedef struct hyd_page {
    uint32_t pgno, obj, size;
    uint64_t offset;
} hyd_page;

typedef struct hyd_order {
    uint64_t txid;     /* the file holds this TXID when done */
    uint64_t checksum; /* its database checksum, 0: unknown */
    uint32_t page_size, npages;
    uint64_t since; /* 0: rewrite the file from nothing; else write only
                       the pages of objects ending after since */
    int verify;     /* check the whole file against checksum when done;
                       if it differs, rewrite it whole (once) */
    char (*keys)[LAYOUT_KEY_SIZE];
    uint64_t *key_max; /* max TXID of each object */
    uint32_t nkeys;
    hyd_page *pages; /* grouped by obj, ascending offset within each */
    uint32_t n;
    uint32_t nwrite; /* pages to write (those after since) */
} hyd_order;

/* States (hyd_status.state). */
enum {
    HYD_IDLE,        /* nothing done yet */
    HYD_RESTORING,   /* a full copy is being written */
    HYD_CATCHING_UP, /* the file is behind the TXID served */
    HYD_COMPLETE,    /* the file holds the TXID it was last asked for */
    HYD_FAILED       /* stopped: see zErr (invariant 3) */
};

/* The result of the last order (hydrator_result()). */
enum {
    HYD_DONE,     /* completed, or none yet */
    HYD_RUNNING,  /* an order is running */
    HYD_VANISHED, /* an object was gone or changed: re-plan, resubmit */
    HYD_RETRY,    /* a transient fetch error: resubmit later */
    HYD_STOPPED   /* failed for good */
};

typedef struct hyd_status {
    int state;
    uint64_t file_txid;               /* F */
    uint64_t pages_done, pages_total; /* of the TXID being hydrated */
    uint64_t n_get, bytes_down;       /* the thread's requests */
    uint64_t orders;                  /* orders completed */
    char zErr[512];                   /* the failure, "" if none */
} hyd_status;

/* The TXID and geometry "<path>.meta" recorded (hydrator_meta()). */
typedef struct hyd_meta {
    uint64_t txid, checksum;
    uint32_t page_size, npages;
} hyd_meta;

/*
 * Decodes the n bytes z of a meta file (hydrate_meta.c): 1 and *m when
 * it is a JSON object whose "url" is zUrl, with a "txid" and "checksum" of
 * 16 hex digits (txid not 0), a valid "page_size" and "pages" > 0; else 0
 * and *m zeroed.
 */
int hydrator_meta_parse(const char *z, size_t n, const char *zUrl, hyd_meta *m);

/*
 * Creates the hydrator of replica u (zRedacted: its redacted URL, recorded
 * in the meta file) over the file zPath, or an anonymous temporary file
 * when zPath is NULL, and starts its thread.  Never fails for the file's
 * sake: an unusable path makes a hydrator in state HYD_FAILED (message in
 * its status, logged).  SQLITE_OK and *out, or SQLITE_NOMEM.
 */
int hydrator_open(const struct ls_url *u, const char *zRedacted,
                  const char *zPath, hydrator **out);

/* Stops the thread (an order in flight is abandoned between requests),
 * closes the file (emptied if a write failed) and frees; NULL-safe. */
void hydrator_close(hydrator *h);

/*
 * What the meta file beside an existing hydration file recorded, if it
 * matches this replica and the file's size: 1 and *m; else 0.  Consumed:
 * later calls return 0.
 */
int hydrator_meta(hydrator *h, hyd_meta *m);

/* Hands over an order (taken: freed by the hydrator, also on error).
 * SQLITE_OK, SQLITE_BUSY (one is running) or SQLITE_MISUSE (failed). */
int hydrator_submit(hydrator *h, hyd_order *o);

/* Frees an order's arrays and the order; NULL-safe. */
void hydrator_order_free(hyd_order *o);

/* The result of the last order; HYD_VANISHED and HYD_RETRY are reported
 * once (then HYD_DONE).  *retry_ms: with HYD_RETRY, how long
 * to wait before resubmitting (doubling from 1 s up to 60 s). */
int hydrator_result(hydrator *h, int64_t *retry_ms);

/* F (invariant 1): the TXID the file holds, 0 if none. */
uint64_t hydrator_file_txid(hydrator *h);

/* Sets F to 0 (the reader, before submitting a full rewrite). */
void hydrator_invalidate(hydrator *h);

/* Reads page pgno (page_size bytes) from the file: 0, or -1. */
int hydrator_read(hydrator *h, uint32_t pgno, uint32_t page_size, void *buf);

/* The file's path, or NULL for an anonymous one. */
const char *hydrator_path(const hydrator *h);

void hydrator_status(hydrator *h, hyd_status *out);

/*
 * Progress from a status, 0..1: the share of the database's pages (at the
 * TXID being hydrated) already in the file; 1 only when the file holds
 * txid (the TXID served), else at most 0.999.
 */
double hydrator_progress(const hyd_status *s, uint64_t txid);

#endif
