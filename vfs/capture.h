/*
 * vfs/capture.h: turning the WAL writes of a replicated database into
 * queued transactions (vfs/capture.c).  Called by the file layer
 * (vfs/replicate.c) and, for recaptures, by the replicator thread through
 * the callback the registry hands it.
 *
 * The capture's state lives in the database's ls_db (vfs/registry.h).
 * Callers hold d->mu unless noted.
 */
#ifndef LITESTREAM_VFS_CAPTURE_H
#define LITESTREAM_VFS_CAPTURE_H

#include "storage/base/sqlite.h"
#include "vfs/registry.h"

#define BUF_MAX   (8u << 20) /* larger transactions are re-read from the WAL */
#define BUF_KEEP  (4u << 20) /* buffers above this are freed after use */
#define ARENA_MIN (256u << 10) /* capture in the arena if this much is free */

/* Forgets the copy of the WAL writes (between holds). */
void capture_buf_reset(ls_db *d);

/*
 * Keeps a copy of a WAL write (invariant 2 of vfs/replicate.c).  Called by
 * the connection holding the WAL write lock, without d->mu.
 */
void capture_buf_write(ls_db *d, const void *p, int n, sqlite3_int64 off);

/*
 * A write transaction starts (locked: at the write lock's xShmLock; 0:
 * exclusive locking mode, at its first WAL write): notes whether the
 * captured position is current.  `real` is the main database file.
 * Called with the WAL write lock (or the exclusive lock) held, with or
 * without d->mu: it only reads the positions and the sidecar (which stays
 * until d is freed) and writes the capture state, which is the lock
 * holder's.
 */
void capture_hold_begin(ls_db *d, sqlite3_file *real, int locked);

/*
 * The write lock is released (or COMMIT_PHASETWO): capture the commits.
 * Returns the last TXID they became, or 0 when there was none.
 */
uint64_t capture_hold_end(ls_db *d, sqlite3_file *real);

/*
 * capture_hold_end() of a zero-copy hold (d->zc), without d->mu: the common
 * case (capture_zc) pins the replicator with d->capturing instead (see
 * detach() in registry.c); anything else takes d->mu and runs
 * capture_hold_end().  Caller holds the WAL write lock.
 */
uint64_t capture_hold_end_zc(ls_db *d, sqlite3_file *real);

/*
 * rep_opts.xRecapture (replicator thread; ctx is the ls_db; takes d->mu
 * itself, try-only: when it is busy the replicator retries later).
 */
void capture_recapture(void *ctx, sqlite3_file *db, sqlite3_file *wal);

/*
 * The replicator wants a full image it cannot read itself (exclusive
 * locking mode): read one now from `real`, whose connection holds the
 * exclusive lock.  Takes d->mu itself; does nothing while a hold is in
 * progress.
 */
void capture_image_now(ls_db *d, sqlite3_file *real);

/* Before the WAL is restarted, truncated or deleted (invariant 4). */
void capture_before_wal_reset(ls_db *d);

/*
 * A checkpoint writes the database file: a WAL restart may follow.  The
 * replicator starts spooling what the zero-copy capture queued by
 * reference now, so the restart finds little or nothing to wait for.
 * Application thread; takes d->mu (once per checkpoint).
 */
void capture_checkpoint_begins(ls_db *d);

/* Does the WAL file zWal end exactly at the captured position? */
int capture_wal_ends_at_cap(ls_db *d, const char *zWal);

/* The WAL was deleted cleanly: remember the database as left (CAP_RESET). */
void capture_after_wal_delete(ls_db *d);

#endif
