/*
 * storage/replicate/ship.h: the upload pass of a replicator (ship.c): the
 * checks that decide whether this process ships (its URL, its file, the
 * sidecar, the ship lock), each replica's upload, and what lets an idle
 * database sleep: whether anything is left to upload, and the directory
 * watches that wake it when another process spools, takes the database
 * over or goes away (docs/architecture.md 3.1, "Idle").  Task side only
 * (one pass at a time), but for the watch function, which only wakes the
 * task.
 */
#ifndef LITESTREAM_SHIP_H
#define LITESTREAM_SHIP_H

#include "storage/replicate/replicator_int.h"

/* The upload part of a heavy pass that is due (or asked for, `asked`):
 * sets r->next_upload_ms. */
void rep_upload_pass(replicator *r, int64_t t, int asked);

/*
 * Whether an upload pass has nothing to do until something happens: every
 * replica holds every captured TXID, none backs off or waits for a full
 * image, the holder has checked each replica once.  The caller adds what
 * its own mutex guards (the queue, a request).  An upload pass is then
 * due only when a watch fires (or never, when nothing is watched: then
 * the caller keeps its timer).
 */
int rep_settled(replicator *r);

/*
 * Starts watching the sidecar, the spool and the database's directory
 * (r->watching, when all three could be watched); rep_watch_close() ends
 * them (before the task is removed: a watch function wakes it).
 */
void rep_watch_open(replicator *r);
void rep_watch_close(replicator *r);

#endif
