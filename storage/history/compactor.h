/*
 * storage/history/compactor.h: the compaction task of a replicator
 * (docs/ltx-format.md 2.2, 2.3): L0 -> L1 -> ... -> Ln merges and level-9
 * snapshots, each at wall-clock multiples of its interval, and retention.
 *
 * It is a task of the process's pool (storage/base/pool.h: the background
 * lane, so a long merge never holds up an upload), with a backend handle of
 * its own, and works only while this process holds the ship lock (the env's
 * xShipping), so exactly one process compacts a replica.  It is due only
 * when something can need it (a boundary of a level that is behind, a
 * retention deadline, the snapshot boundary, or what its owner tells it:
 * compactor_notify, compactor_wake).  What it needs of
 * the replicator comes in a compactor_env: history/ never sees replicate/.  It
 * never takes a lock the application's writers need: merges read the replica,
 * snapshots read the database inside a private read transaction.
 *
 * Threads: compactor_start/stop on the thread opening/closing the
 * replicator; the others on any thread.
 */
#ifndef LITESTREAM_COMPACTOR_H
#define LITESTREAM_COMPACTOR_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/local/pitr.h"
#include "storage/local/sidecar.h"

struct ls_url;
typedef struct compactor compactor;

/*
 * What the compactor needs of the database it compacts, filled by its
 * owner (the replicator).  Every pointer stays owned by the owner and must
 * outlive the compactor (compactor_stop() first).
 */
typedef struct compactor_env {
    const struct ls_url *url; /* the replica */
    const char *zDbPath;      /* the database (snapshots read it) */
    const char *zVfs;         /* the VFS under the shim */
    sidecar *sc;              /* positions, scratch directory */
    /*
     * Whether this process uploads (holds the ship lock) right now; called
     * in the compactor's passes, must be cheap and thread-safe.
     */
    int (*xShipping)(void *pCtx);
    void *pCtx;
    /*
     * Optional: the backend handle to use, owned by the compactor from
     * compactor_start() on, even when it fails (tests: an in-memory
     * backend).  NULL: the compactor opens its own from `url`.
     */
    backend *be;
    int slot; /* which replica of a URL list (sidecar_replicated_n) */
} compactor_env;

/*
 * Starts the task for env (copied) with settings o.  SQLITE_OK and
 * *out, or an error with *pzErr (the backend could not be opened, the
 * pool has no thread).
 */
int compactor_start(const compactor_env *env, const ls_pitr *o, compactor **out,
                    char **pzErr);

/* Removes the task (waiting for a running pass), frees everything.
 * NULL-safe. */
void compactor_stop(compactor *);

/*
 * What the replicator tells it (any thread; cheap, no I/O): the replica
 * advanced (a level-0 upload: level 1, and retention when a new object can
 * matter to it, are due at their next time), and this process has just
 * started to upload to it (it sleeps while another process does).
 */
void compactor_notify(compactor *);
void compactor_wake(compactor *);

/* Replaces the settings (takes effect at the next wake-up, at once). */
void compactor_set(compactor *, const ls_pitr *o);
void compactor_get(compactor *, ls_pitr *o);

/*
 * Takes a snapshot now and waits up to timeout_ms for it.  SQLITE_OK with
 * *txid (the snapshot's TXID, or the newest existing snapshot's when the
 * database did not change since), or an error with *pzErr: this process
 * does not upload (another holds the ship lock), the image could not be
 * pinned, the upload failed, SQLITE_BUSY on timeout.
 */
int compactor_snapshot_now(compactor *, int timeout_ms, uint64_t *txid,
                           char **pzErr);

/*
 * Adds the "compaction" member (settings, counters, last error) to the JSON
 * object o.  SQLITE_OK, or SQLITE_NOMEM when it could not be added.
 */
struct json_t;
int compactor_status(compactor *, struct json_t *o);

#endif
