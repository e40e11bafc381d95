/*
 * vfs/vfs_int.h: the state the litestream VFS (vfs/replicate.c) and the
 * capture (vfs/capture.c) share.  Internal to vfs/.
 */
#ifndef LITESTREAM_VFS_INT_H
#define LITESTREAM_VFS_INT_H

#include <pthread.h>
#include <stdint.h>

#include "storage/replicate/replicator.h"
#include "storage/local/sidecar.h"
#include "storage/base/sqlite.h"
#include "storage/replicate/txarena.h"
#include "storage/local/wal.h"
#include "vfs/vfs.h"

#define WAL_WRITE_LOCK 0
#define SHM_HDR_SIZE   48
#define BUF_MAX        (64u << 20) /* larger transactions are re-read from the WAL */
#define BUF_KEEP       (4u << 20) /* buffers above this are freed after use */
#define ARENA_MIN      (256u << 10) /* capture in the arena if this much is free */
#define CLOSE_GRACE_MS 2000 /* last close: wait this long for the upload */

typedef struct ls_db ls_db;
struct ls_db {
    ls_db *next;
    char *zPath;
    int nRef;
    pthread_mutex_t mu;
    sidecar *sc;
    replicator *rep;
    char *zError; /* why replication is not running, if it is not */

    /* Capture state (under the WAL write lock). */
    sqlite3_file *walf; /* the WAL file of the connection holding the
                         * write lock (set when its hold begins) */
    uint8_t *buf;       /* the copy: in the arena's free space or in heap */
    size_t cap;         /* capacity at buf */
    uint8_t *heap;      /* owned heap buffer */
    size_t heap_cap;
    int in_arena; /* buf is a reservation in the current arena chunk */
    uint64_t base, end;
    int buf_ok;
    int buf_over;    /* buf_ok is 0 only because the transaction is big */
    int wal_synced;  /* this hold synced the WAL (synchronous=FULL) */
    int hold;        /* a write lock (or exclusive-mode txn) is in progress */
    int hold_locked; /* ... that began at an xShmLock of the write lock */
    int shm_seen;    /* SQLite maps a shared wal-index for this database */
    int enq_failed;  /* enqueue_frames ran out of memory part way */
    int rep_users;   /* SQL functions using rep (vfs_db_replicator) */
    pthread_cond_t rep_idle;
    void *hold_owner; /* the main file (connection) whose hold it is */
    wal_hdr wh;       /* the WAL header, when wh_ok */
    int wh_ok;
    int caught_up; /* at hold start the position matched the wal-index */
    uint64_t n_full;
    txchunk *arena; /* current chunk for queued transactions */
};

typedef struct ls_file {
    sqlite3_file base;
    ls_db *db;
    int is_wal;
    sqlite3 *conn;        /* main file: the owning connection, if known */
    struct ls_file *main; /* WAL file: its main database file */
    struct ls_file *wal;  /* main file: its connection's WAL file */
} ls_file;

#define REAL(p) ((sqlite3_file *)(((ls_file *)(p)) + 1))

/* ---- the capture (vfs/capture.c); callers hold d->mu unless noted ---- */

/* Forgets the copy of the WAL writes (between holds). */
void capture_buf_reset(ls_db *d);

/*
 * Keeps a copy of a WAL write (invariant 2 of replicate.c).  Called by the
 * connection holding the WAL write lock, without d->mu.
 */
void capture_buf_write(ls_db *d, const void *p, int n, sqlite3_int64 off);

/*
 * A write transaction starts (locked: at the write lock's xShmLock; 0:
 * exclusive locking mode, at its first WAL write): notes whether the
 * captured position is current.  `real` is the main database file.
 */
void capture_hold_begin(ls_db *d, sqlite3_file *real, int locked);

/* The write lock is released (or COMMIT_PHASETWO): capture the commits. */
void capture_hold_end(ls_db *d, sqlite3_file *real);

/* rep_opts.xRecapture (replicator thread; takes d->mu itself, try-only). */
void capture_recapture(void *ctx, sqlite3_file *db, sqlite3_file *wal);

/* Before the WAL is restarted, truncated or deleted (invariant 4). */
void capture_before_wal_reset(ls_db *d);

/* Does the WAL file zWal end exactly at the captured position? */
int capture_wal_ends_at_cap(ls_db *d, const char *zWal);

/* The WAL was deleted cleanly: remember the database as left (CAP_RESET). */
void capture_after_wal_delete(ls_db *d);

#endif
