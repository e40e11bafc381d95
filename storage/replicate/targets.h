/*
 * storage/replicate/targets.h: opening the replicas of a URL list
 * (targets.c).  replicator_check_url() is declared in replicator.h.
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

#endif
