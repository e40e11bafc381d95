/*
 * vfs/registry.h: the per-database registry of the litestream VFS.
 *
 * One ls_db per database file replicated (or replicable) in this process,
 * shared by every connection that opens it, found by path.  The registry
 * owns its lifetime (reference counted: each main database file and each
 * WAL file opened through the VFS holds one), its replicator (started,
 * restarted, stopped here) and its sidecar.  The capture (vfs/capture.c)
 * keeps its state in the same struct; the file layer (vfs/replicate.c),
 * the PRAGMAs (vfs/pragma.c) and the SQL functions (sql/) reach the
 * database through the functions below.
 *
 * Nothing here calls the capture or the file layer: the replicator's
 * recapture callback is handed in by registry_init().
 *
 * Threads: any application thread; `mu` guards the replicator pointer and
 * the error, the registry's own mutex the list and the reference counts.
 */
#ifndef LITESTREAM_VFS_REGISTRY_H
#define LITESTREAM_VFS_REGISTRY_H

#include <pthread.h>
#include <stdint.h>

#include "storage/base/sqlite.h"
#include "storage/local/sidecar.h"
#include "storage/local/wal.h"
#include "storage/replicate/replicator.h"
#include "storage/replicate/txarena.h"

typedef struct ls_db ls_db;
struct ls_db {
    /* The registry's (registry.c). */
    ls_db *next;        /* the list, under the registry's mutex */
    char *zPath;        /* the database file; immutable */
    int nRef;           /* under the registry's mutex */
    pthread_mutex_t mu; /* guards rep, zError, rep_users */
    sidecar *sc;        /* NULL before replication was first configured */
    replicator *rep;    /* NULL when not replicating */
    char *zError;       /* why replication is not running, if it is not */
    int rep_users;      /* SQL functions using rep (registry_replicator) */
    pthread_cond_t rep_idle;
    int durability;         /* LS_DURABILITY_* of the running replication; read
                             * without the mutex (atomic) by every commit */
    int durability_ms;      /* its timeout */
    uint64_t n_unconfirmed; /* remote-mode COMMITs that timed out (atomic) */

    /* The capture's (capture.c; under the WAL write lock). */
    sqlite3_file *walf; /* the WAL file of the connection holding the
                         * write lock (set when its hold begins) */
    uint8_t *buf;       /* the copy: in the arena's free space or in heap */
    size_t cap;         /* capacity at buf */
    uint8_t *heap;      /* owned heap buffer */
    size_t heap_cap;
    int in_arena; /* buf is a reservation in the current arena chunk */
    uint64_t base, end;
    int buf_ok;
    int buf_over;     /* buf_ok is 0 only because the transaction is big */
    int wal_synced;   /* this hold synced the WAL (synchronous=FULL) */
    int hold;         /* a write lock (or exclusive-mode txn) is in progress */
    int hold_locked;  /* ... that began at an xShmLock of the write lock */
    int shm_seen;     /* SQLite maps a shared wal-index for this database */
    int enq_failed;   /* enqueue_frames ran out of memory part way */
    void *hold_owner; /* the main file (connection) whose hold it is */
    volatile void *hold_shm; /* its wal-index region 0, if mapped */
    wal_hdr wh;              /* the WAL header, when wh_ok */
    int wh_ok;
    int caught_up;   /* at hold start the position matched the wal-index */
    int rep_alone;   /* atomic: the replicator's verdict for the zero-copy
                      * capture (rep_opts.pAlone): read without d->mu */
    int ckpt_hinted; /* atomic: this checkpoint woke the replicator */
    int capturing;   /* atomic: capture_hold_end_zc() runs (no d->mu) */
    int zc;          /* this hold is captured by reference, not copied */
    ls_cap zc_cap;   /* ... from this position (read when the hold began) */
    uint64_t n_full;
    txchunk *arena; /* current chunk for queued transactions */
};

/* rep_opts.xRecapture: see storage/replicate/replicator.h. */
typedef void (*registry_recapture_fn)(void *ctx, sqlite3_file *db,
                                      sqlite3_file *wal);

/*
 * Called once, when the VFS is registered: zVfs names the VFS the
 * replicator's private connections use (the one under ours; the string
 * must outlive the process's replicators), xRecapture is handed to every
 * replicator with the ls_db as its context.  Also installs the fork
 * handlers (in a child, replicators are dropped).
 */
void registry_init(const char *zVfs, registry_recapture_fn xRecapture);

/*
 * The ls_db of the database at zPath, with a new reference (created on
 * first use), or NULL when out of memory.  If replication was configured
 * earlier (a sidecar exists) and is not running, starts it; a failure is
 * recorded for registry_error().  Release with registry_release().
 */
ls_db *registry_acquire(const char *zPath);

/*
 * Calls xEach for every database of the process, each held by a reference
 * while its call runs (no lock held then), until one returns non-zero.
 * Returns that, or SQLITE_OK, or SQLITE_NOMEM.
 */
int registry_each(int (*xEach)(ls_db *, void *), void *pCtx);

/* Another reference to d (a WAL file of its database). */
void registry_ref(ls_db *d);

/* Drops a reference; the last one stops replication and frees d. */
void registry_release(ls_db *d);

/*
 * The ls_db whose database's WAL is zWal ("<path>-wal"), without a
 * reference (the caller's own open files keep it alive), or NULL.
 */
ls_db *registry_find_wal(const char *zWal);

/*
 * Applies c: starts replication (c->zUrl non-empty; restarts only if the
 * URL changed), or stops it (NULL or ""), and stores c in the sidecar.
 * SQLITE_OK or an error with *pzErr (sqlite3_malloc'd).
 */
int registry_configure(ls_db *d, const ls_config *c, char **pzErr);

/*
 * The replicator, borrowed (NULL when not replicating): it stays alive until
 * registry_replicator_done(), even if replication is stopped meanwhile.
 */
replicator *registry_replicator(ls_db *d);
void registry_replicator_done(ls_db *d, replicator *r);

sidecar *registry_sidecar(ls_db *d); /* NULL before first use */
const char *registry_path(ls_db *d); /* lives as long as d */

/*
 * Why d is not replicating (the last start's error), as a copy taken under
 * d's mutex (sqlite3_free it), or NULL when there is none.
 */
char *registry_error(ls_db *d);

/*
 * Records zErr (sqlite3_malloc'd; taken) as why d is not replicating, for
 * litestream_status(), and logs it (SQLITE_WARNING); dropped if d is
 * replicating meanwhile.  Cleared by the next successful
 * registry_configure().
 */
void registry_note_error(ls_db *d, char *zErr);

/* Full images the capture had to force (read under d->mu). */
uint64_t registry_full_images(ls_db *d);

#endif
