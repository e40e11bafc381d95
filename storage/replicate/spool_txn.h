/*
 * storage/replicate/spool_txn.h: turning a captured transaction (rep_txn)
 * into one spool record, and the lock of the replicator's spool handle.
 * Every function but the lock's own and rep_txn_free() runs under
 * spool_mu: on the replicator's task, on a replica's upload task while it
 * holds the spool, or in replicator_close() after the tasks stopped.
 */
#ifndef LITESTREAM_SPOOL_TXN_H
#define LITESTREAM_SPOOL_TXN_H

#include "storage/replicate/replicator_int.h"

/*
 * Converts n captured transactions, from `first` on along their next
 * links, into one spool record of r's spool and appends it, fsynced when
 * do_sync.  Several (n > 1) must be consecutive TXIDs of plain copies
 * (no REP_FULL, REP_IMAGE or REP_WALREF) with one page size: the record
 * holds the newest copy of each page as of the last, pages beyond its
 * commit dropped.  One alone may be anything: REP_FULL becomes a
 * full-image marker, REP_IMAGE an image record; REP_WALREF frames are read
 * (and validated) from the WAL, or become a marker when the WAL no longer
 * holds them.  The transactions stay the caller's.  SQLITE_OK, or the
 * spool's error with *pzErr (sqlite3_mprintf'd) when it has a message.
 */
int rep_spool_run(replicator *r, const rep_txn *first, uint32_t n, int do_sync,
                  char **pzErr);

/* One transaction: rep_spool_run(r, t, 1, ...). */
int rep_spool_txn(replicator *r, const rep_txn *t, int do_sync, char **pzErr);

/* Frees a transaction the capture queued (in the arena or on the heap). */
void rep_txn_free(rep_txn *t);

/*
 * Spools everything queued, a run of consecutive copies as one record
 * (rep_spool_run).  What cannot be spooled because of the sidecar (disk
 * full, removed, I/O error) is dropped and later recovered from the WAL
 * or by a full image, so memory stays bounded while the disk is full and
 * the application never waits; a transient error (busy, memory) puts it
 * back at the front of the queue.  fsyncs the spool when force_sync, a
 * transaction was committed with a WAL sync, or the options ask for it.
 */
int rep_spool_queue(replicator *r, int force_sync);

/*
 * Spools the queue now if the application has queued enough to wake the
 * thread (QUEUE_WAKE_BYTES) or waits in replicator_persist() (which is then
 * answered): called between the steps of a long upload so the queue, hence
 * memory, stays small and a writer at a WAL restart does not wait for the
 * whole upload.
 */
void rep_spool_if_waiting(replicator *r);

/* The queue as of persist request `ticket` was spooled with result rc:
 * wakes the threads waiting in replicator_persist() for it. */
void rep_persist_answer(replicator *r, uint64_t ticket, int rc);

/*
 * The spool handle's lock (replicator_int.h, "Locks").  rep_spool_trylock()
 * is for the replicator's own passes, which never wait for a replica's
 * upload: 1 if taken; 0 if a replica's upload holds it, which then wakes
 * the replicator's task when it lets go (rep_spool_unlock), so what waits
 * in the queue is spooled at once (meanwhile the holder spools a big queue
 * or a persist request itself, rep_spool_if_waiting).
 */
void rep_spool_lock(replicator *r);
int rep_spool_trylock(replicator *r);
void rep_spool_unlock(replicator *r);

#endif
