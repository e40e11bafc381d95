/*
 * storage/history/cpview.h: the compactor's picture of the replica during
 * one pass (cpview.c): one listing, kept up to date with what the pass
 * itself adds (merges, snapshots) and deletes (retention), so that the
 * steps after a merge need no second listing (docs/architecture.md 3.1,
 * "Idle").  Only the ship-lock holder writes the replica, and its level-0
 * uploads move the replicated TXID: a picture taken at a TXID is the
 * replica for as long as that TXID stays and this process does the rest.
 *
 * Pure functions of the picture and the clock, but for cpview_list.
 * Threads: the compactor's task.
 */
#ifndef LITESTREAM_CPVIEW_H
#define LITESTREAM_CPVIEW_H

#include <stdint.h>

#include "storage/backend/layout.h"
#include "storage/local/pitr.h"

typedef struct cp_view {
    ltx_info *a; /* levels 0..9, each sorted by (min, max), as listed */
    int n, cap;
    uint64_t txid; /* the replicated TXID before the listing */
    int ok;        /* 0: no picture (list first) */
} cp_view;

/* Lists the replica into v (replacing what it held) at replicated TXID
 * txid.  SQLITE_OK or the backend's error (v->ok stays 0). */
int cpview_list(cp_view *v, backend *b, uint64_t txid);

void cpview_free(cp_view *v);

/* Adds an object the pass put (merge output, snapshot) in its place;
 * out of memory: the picture is dropped (v->ok = 0). */
void cpview_add(cp_view *v, const ltx_info *o);

/* Removes the objects del[0..n-1] the pass deleted. */
void cpview_drop(cp_view *v, const ltx_info *del, int n);

/* The newest object of a level in a[0..n-1] (largest max TXID), or NULL. */
const ltx_info *cpview_newest(const ltx_info *a, int n, int level);

/* Whether `level` holds everything of level - 1: nothing to merge until
 * the level below changes. */
int cpview_caught_up(const cp_view *v, int level);

/*
 * When retention could next delete something from this picture, were it
 * to stay as it is: the first age deadline after now of a level-0 object
 * covered by level 1 or of a snapshot; INT64_MAX when none.
 */
int64_t cpview_next_deadline(const cp_view *v, const ls_pitr *o, int64_t now);

#endif
