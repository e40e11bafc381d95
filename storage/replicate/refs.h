/*
 * storage/replicate/refs.h: the queue's tail, shared by the copies and the
 * zero-copy capture's references to WAL ranges (docs/architecture.md 2.3),
 * and the restart fence that keeps another process from restarting the
 * WAL under those references.
 */
#ifndef LITESTREAM_REFS_H
#define LITESTREAM_REFS_H

#include "storage/replicate/replicator_int.h"

/* Accounts for sz bytes (of frames, copied or referenced) queued up to
 * TXID last, waking the task as replicator_enqueue() describes.  Caller
 * holds r->mu. */
void rep_queue_added(replicator *r, uint64_t sz, uint64_t last);

/* Takes the open reference out (NULL: none); waits out a writer
 * extending it.  Caller holds mu. */
rep_txn *rep_slot_take(replicator *r);

/* The open reference, moved to the end of the list: before anything is
 * queued behind it, and when a pass takes the list.  Caller holds mu. */
void rep_slot_flush(replicator *r);

/* Publishes whether the zero-copy capture may be used (r->alone and
 * *opts.pAlone). */
void rep_refs_alone(replicator *r, int alone);

/* A pass: refreshes r->alone (one system call) and drops this process's
 * fence once no reference is queued any more.  Task side. */
void rep_refs_pass(replicator *r);

/* Before a WAL restart: waits (bounded) for another process's queued
 * references to be spooled.  Application thread, holding the write lock. */
void rep_refs_wait(replicator *r);

#endif
