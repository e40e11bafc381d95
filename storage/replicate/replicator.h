/*
 * storage/replicate/replicator.h: the one narrow interface between the capture
 * (vfs/replicate.c), the SQL functions (sql/) and everything behind them:
 * the in-memory queue, the spool, the uploader thread and its waiters.
 *
 * A replicator exists per replicated database per process.  The capture
 * hands it transactions with replicator_enqueue() (no system call, no
 * compression, no network: a mutex-protected list append); its thread
 * spools them, and in the process that holds the sidecar's ship lock
 * uploads every sync interval one L0 LTX object covering the pending TXIDs.
 */
#ifndef LITESTREAM_REPLICATOR_H
#define LITESTREAM_REPLICATOR_H

#include <stdint.h>

#include "storage/local/sidecar.h"
#include "storage/local/spool.h"
#include "storage/base/sqlite.h"

/* Flags of a captured transaction. */
#define REP_FULL  0x1 /* lost position: the next upload is a full image */
#define REP_IMAGE 0x2 /* `frames` hold every page 1..commit: a full image */
#define REP_DURABLE                                                            \
    0x8 /* SQLite synced the WAL for it (synchronous=FULL):                    \
         * fsync the spool batch that holds it */
#define REP_WALREF                                                             \
    0x4 /* too big to copy: frames wal_lo..pos.frame of the                    \
         * WAL, read (and validated by salts) by the                           \
         * replicator thread; `frames` is NULL */

/*
 * One captured transaction, as the capture hands it over.  `frames` holds
 * `nframes` raw WAL frames (24-byte header + page each, in WAL order; a
 * page may appear more than once: the last copy wins); the replicator takes
 * ownership of `frames` (sqlite3_free) and of the struct.
 */
typedef struct rep_txn {
    struct rep_txn *next;
    uint64_t txid;
    uint32_t flags;
    uint32_t page_size;
    uint32_t commit; /* database size in pages after the transaction */
    uint32_t nframes;
    uint8_t *frames;
    wal_pos pos;     /* where this transaction ends in the WAL */
    void *arena;     /* the txarena chunk holding it, or NULL (ls_malloc) */
    uint32_t wal_lo; /* REP_WALREF: first frame */
    uint32_t seed1, seed2; /* REP_WALREF: checksum of frame wal_lo - 1 */
    uint64_t txid_max;     /* REP_WALREF: the last TXID it holds (0: txid); one
                            * per commit frame from wal_lo on */
} rep_txn;

typedef struct replicator replicator;

/* Options of a replicator (from the PRAGMAs / config.json). */
typedef struct rep_opts {
    int sync_interval_ms; /* default 1000 */
    int64_t spool_limit;  /* bytes; beyond it nothing more is spooled */
    int durable_spool;    /* fsync spool appends (synchronous >= FULL) */
    const char *zVfs;     /* the VFS under the shim (full images) */
    /*
     * Runs the capture for this database on files of a connection that
     * holds the WAL write lock (db: main file, wal: WAL file).  The
     * replicator calls it when the captured position no longer matches the
     * WAL and no writer fixed that (the writer that moved the WAL died
     * before capturing): the capture then assigns the next TXID to a full
     * image of the current WAL.
     */
    void (*xRecapture)(void *ctx, sqlite3_file *db, sqlite3_file *wal);
    void *pRecaptureCtx;
    /* Where the replicator publishes (atomically) whether the zero-copy
     * capture may be used (this process is the only one with the sidecar
     * open): read by the capture without a lock, so it outlives the
     * replicator; 0 once it is closed.  May be NULL. */
    int *pAlone;
    ls_pitr pitr; /* compaction levels, snapshots, retention */
} rep_opts;

/*
 * Starts replicating the database at zDbPath to zUrl (one URL or a
 * whitespace-separated list: one replica each, docs/architecture.md 2.11):
 * opens the backends
 * (no I/O yet), the spool, and starts the replicator thread.  The sidecar
 * stays owned by the caller and must outlive the replicator.  SQLITE_OK, or
 * an error with *pzErr set (sqlite3_mprintf'd): a malformed URL, an
 * unknown scheme, a spool that cannot be opened.
 */
int replicator_open(const char *zDbPath, const char *zUrl, const rep_opts *opts,
                    sidecar *sc, replicator **out, char **pzErr);

/*
 * Stops the thread after spooling (durably) everything queued; waits up to
 * grace_ms for the upload of what this process captured, and leaves the
 * rest in the spool for the next process.  NULL-safe.
 */
void replicator_close(replicator *, int grace_ms);

/* Whether the replicator replicates to exactly this URL. */
int replicator_has_url(replicator *, const char *zUrl);

/* Queues a captured transaction.  Application thread; never blocks long. */
void replicator_enqueue(replicator *, rep_txn *t);

/*
 * The zero-copy capture (docs/architecture.md 2.3), used while
 * *rep_opts.pAlone says so: x (REP_WALREF, one TXID, on the caller's
 * stack; next, frames, arena and txid_max are not read) extends the open
 * reference when it continues it, else becomes the new one.  1,
 * or 0 when out of memory (nothing queued).  Application thread, holding
 * the WAL write lock.
 */
int replicator_enqueue_ref(replicator *, const rep_txn *x);

/*
 * Makes everything queued so far durable in the spool before returning
 * (the capture calls it before a WAL restart could overwrite frames that
 * exist only in memory).  Application thread; rare.  SQLITE_OK or the
 * spool's error.
 */
int replicator_persist(replicator *);

/*
 * Before a sync: committed transactions a writer left in the WAL without
 * capturing them (it died in between) are captured now, so the sync
 * covers every transaction committed before it began.  Application
 * thread.  SQLITE_OK, or SQLITE_BUSY (a writer holds the write lock: its
 * own capture covers them).
 */
int replicator_capture_pending(replicator *);

/*
 * Called by the capture before the WAL is restarted, truncated or deleted:
 * waits until every transaction queued by reference to WAL frames
 * (REP_WALREF) is in the spool; transactions queued as copies are only
 * handed to the thread, without waiting.  Application thread, holding the
 * WAL write lock.  SQLITE_OK or the spool's error.
 */
int replicator_before_wal_reset(replicator *);

/*
 * A checkpoint begins (a WAL restart may follow): wakes the thread if
 * anything queued names WAL frames, so that it is spooled before the
 * restart waits for it.  Application thread.
 */
void replicator_checkpoint_begins(replicator *);

/*
 * Uploads everything captured up to `txid` now and waits until every
 * replica holds it, at most timeout_ms (< 0: forever).  *replicated receives
 * the replicated TXID.  SQLITE_OK, SQLITE_BUSY on timeout (with the last error
 * in *pzErr when there is one).
 */
int replicator_sync(replicator *, uint64_t txid, int timeout_ms,
                    uint64_t *replicated, char **pzErr);

/*
 * The same, waiting until `need` replicas of a URL list hold txid: 1 (the
 * first to get there: PRAGMA litestream_durability = 'remote') or
 * REP_SYNC_ALL (every one: replicator_sync, 'remote-all').  *replicated
 * receives the TXID that many replicas hold; on timeout *pzErr names the
 * first replica below txid and its last error.
 */
#define REP_SYNC_ALL 0
int replicator_sync_n(replicator *, uint64_t txid, int need, int timeout_ms,
                      uint64_t *replicated, char **pzErr);

/*
 * Checks a replica URL or a whitespace-separated list of them (at most
 * LS_MAX_REPLICAS) without opening anything.  SQLITE_OK, or an error with
 * *pzErr saying what is wrong.
 */
int replicator_check_url(const char *zUrl, char **pzErr);

/*
 * Whether the uploader needs the capture to read a full image itself (no
 * private connection can: a writer holds the database in exclusive locking
 * mode).  replicator_take_image_request() clears the request.  A memory
 * load; any thread.
 */
int replicator_image_wanted(replicator *);
int replicator_take_image_request(replicator *);

/* Changes the sync interval (PRAGMA litestream_sync_interval). */
void replicator_set_interval(replicator *, int ms);
int replicator_interval(replicator *);

/* Changes the spool limit (PRAGMA litestream_spool_limit), in bytes. */
void replicator_set_spool_limit(replicator *, int64_t bytes);
int64_t replicator_spool_limit(replicator *);

/*
 * Point-in-time recovery (the compactor's, history/compactor.h): the
 * settings of the compaction thread, and a snapshot taken now
 * (litestream_snapshot()), waiting up to timeout_ms.  See compactor.h for the
 * results.
 */
void replicator_set_pitr(replicator *, const ls_pitr *o);
void replicator_pitr(replicator *, ls_pitr *o);
int replicator_snapshot(replicator *, int timeout_ms, uint64_t *txid,
                        char **pzErr);

/* The URL (list) with secrets redacted (owned by the replicator). */
const char *replicator_url(replicator *);

/* A copy of the last replication error (sqlite3_free it), or NULL; with
 * several replicas the first failing replica's, prefixed with its URL. */
char *replicator_last_error(replicator *);

/*
 * Adds this database's replication status to the JSON object o (url,
 * txid, ..., last_error, and "compaction" when compacting; the keys are in
 * docs/sql.md).  storage/replicate/status.c.  SQLITE_OK, or SQLITE_NOMEM
 * when a member could not be added.
 */
struct json_t;
int replicator_status(replicator *, struct json_t *o);

#endif
