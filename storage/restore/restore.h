/*
 * storage/restore/restore.h: restore plans and restores
 * (docs/ltx-format.md 2.4).
 *
 * A restore plan is the list of LTX objects whose merge is the database at
 * one TXID: the newest eligible snapshot from level 9, then greedily, over
 * levels 8..0, the object that extends the covered TXID range the furthest.
 * A restore fetches the plan's objects (in parallel), merges them
 * newest-page-wins straight into "<path>.tmp", proves the result (database
 * checksum against the last object's post-apply checksum when it carries
 * one, PRAGMA quick_check), fsyncs it and renames it into place.  A failed
 * restore leaves the destination untouched and no temporary file behind.
 *
 * Threads: the calling thread (an application thread running
 * litestream_restore(), whose job it is to do I/O); restore_run() starts and
 * joins its own fetch threads.
 */
#ifndef LITESTREAM_RESTORE_H
#define LITESTREAM_RESTORE_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/backend/layout.h"

typedef struct restore_plan {
    ltx_info *files; /* in merge order; files[0].min_txid == 1 */
    int n;
    uint64_t txid; /* the TXID the plan reaches (files[n-1].max_txid) */
} restore_plan;

/*
 * Computes the plan for the latest state (target_txid 0, target_ms 0), for
 * exactly target_txid, or for the newest state whose objects were all
 * created at or before target_ms (Unix ms; used when target_txid is 0).
 * Snapshot: the last level-9 object with max <= target_txid / created <=
 * target_ms / any.  Then repeatedly, over levels 8..0, the object with
 * min <= cur+1 and max > cur (and max <= target_txid, created <= target_ms)
 * with the largest max (ties: smaller min, then higher level), until none
 * qualifies or target_txid is reached.
 *
 * Returns SQLITE_OK and fills *plan (free with restore_plan_free()), or an
 * error with *pzErr (sqlite3_mprintf'd) saying what exists:
 *   SQLITE_NOTFOUND  "litestream: replica is empty (no LTX files under
 *                    'file:///x')"; or the target is not a restorable
 *                    point: "litestream: TXID 0000000000000042 is not a
 *                    restorable point; nearest available: 0000000000000040
 *                    and 0000000000000045"; or nothing was created by
 *                    target_ms.
 *   SQLITE_CORRUPT   the replica cannot be restored: no object starts at
 *                    TXID 1, or (latest restores) "litestream: replica has a
 *                    gap after TXID x: next file starts at y".
 *   other            the backend's error (listing failed), message included.
 */
int restore_plan_make(backend *b, uint64_t target_txid, int64_t target_ms,
                      restore_plan *plan, char **pzErr);

/*
 * As restore_plan_make(), over a listing already in memory (a: levels in
 * ascending order, each sorted as layout_list_all() returns them; zWhere
 * names the replica in messages; now_ms is the current wall-clock time).
 * Time targets are also refused when in the future or when the state at
 * that time was compacted away (the message names the nearest points).
 */
int restore_plan_list(const ltx_info *a, int n, const char *zWhere,
                      uint64_t target_txid, int64_t target_ms, int64_t now_ms,
                      restore_plan *plan, char **pzErr);

/* Frees the plan's array and zeroes it; NULL-safe. */
void restore_plan_free(restore_plan *plan);

typedef struct restore_opts {
    uint64_t target_txid; /* 0: latest */
    int64_t target_ms;    /* 0: no time target (ignored if target_txid) */
    int overwrite;        /* replace an existing destination */
    int parallel;         /* fetch threads; <= 0 means 8 */
} restore_opts;

/*
 * Restores the replica zUrl into the database file zPath.  opts may be NULL
 * (latest, no overwrite, 8 threads).  Refuses an existing zPath unless
 * opts->overwrite ("litestream: restore target 'x' exists; remove it first
 * or pass overwrite").  Stale "<zPath>-wal", "-shm" and "-journal" files are
 * removed before the new database is renamed into place, so SQLite never
 * applies an old log to the restored file.
 *
 * On success returns SQLITE_OK and *pzJson, a sqlite3_mprintf'd summary:
 *   {"path":"...","txid":"<16hex>","files":N,"pages":N,"page_size":N,
 *    "size":BYTES,"checksum":"<16hex>","elapsed_ms":N}
 * On failure returns an SQLite code with *pzErr (sqlite3_mprintf'd): the
 * URL, plan, fetch (naming the object), decode (naming the corrupt object
 * and quoting the codec), checksum, quick_check or file-system error.
 * zPath is then untouched and "<zPath>.tmp" removed.
 */
int restore_run(const char *zUrl, const char *zPath, const restore_opts *opts,
                char **pzJson, char **pzErr);

#endif
