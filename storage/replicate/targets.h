/*
 * storage/replicate/targets.h: the replicas of a URL list (targets.c):
 * opening them, and each one's upload task.  replicator_check_url() is
 * declared in replicator.h.
 */
#ifndef LITESTREAM_TARGETS_H
#define LITESTREAM_TARGETS_H

#include "storage/replicate/replicator_int.h"

/*
 * Opens every replica of the whitespace-separated list zUrl into r->tg
 * (r->ntg of them, at most LS_MAX_REPLICAS, no URL twice) and joins their
 * redacted URLs into r->zUrlRedacted.  No I/O to the replicas.  SQLITE_OK,
 * or an error with *pzErr; what was opened is closed by replicator_close().
 */
int rep_open_targets(replicator *r, const char *zUrl, char **pzErr);

/*
 * Adds each replica's upload task to the pool, not due until dispatched.
 * SQLITE_OK, or the pool's error with *pzErr; rep_targets_stop() removes
 * the tasks added.
 */
int rep_targets_start(replicator *r, char **pzErr);

/* Removes every replica's task, waiting for a running pass (an upload
 * that hangs: up to its timeout and retries).  Idempotent. */
void rep_targets_stop(replicator *r);

/*
 * On the replicator's task, when this process ships: wakes the upload
 * task of every replica that is due at t (all of them when asked: a sync,
 * a big queue); a replica whose pass still runs is asked again at its end
 * instead.  Sets and returns r->next_upload_ms, the earliest next due time
 * of the replicas not running (a running one lowers it when it ends).
 */
int64_t rep_targets_dispatch(replicator *r, int64_t t, int asked);

/*
 * A replica that keeps failing must not fill the spool for the others
 * (once full, every replica would need a full image): when the spool
 * passes half its limit while at least one replica is healthy, the failing
 * ones (backing off, or without their writer lease) are released: the
 * spool drops what only they still need, and each continues with a full
 * image once it is reachable again.  On the replicator's task.
 */
void rep_release_laggards(replicator *r);

#endif
