/*
 * storage/base/pool.h: the process's one bounded pool of worker threads
 * that runs the background work of every replicated database
 * (docs/architecture.md 3): each replicator and each compactor is a task
 * with due times, not a thread.
 *
 * A task is a pass function and two due times: `light` (local work only:
 * spooling, answering persist requests) and `heavy` (anything, network
 * included: uploads, compaction).  The pool runs a pass when a due time
 * comes (or a wake makes it due now), on one worker at a time, then asks
 * the pass for the next due times.  Workers belong to three lanes, each
 * with its own bound, so that slow work of one kind never starves
 * another:
 *
 *   lane 0 "ls-spool"      one worker: light passes of foreground tasks
 *                          (heavy = 0: the pass must not touch the network)
 *   lane 1 "ls-replicator" heavy passes of foreground tasks (uploads); it
 *                          also takes light work the spool lane left
 *                          waiting for POOL_GRACE_MS
 *   lane 2 "ls-compactor"  passes of background tasks, at nice +10
 *
 * Workers start on demand up to their lane's bound and end after a minute
 * without work beyond the first of a lane.  The bound is
 * LITESTREAM_POOL_THREADS (3..64), else min(8, max(4, 2 x cores)).
 *
 * Invariants:
 *   1. A task runs on at most one worker at a time.
 *   2. A wake is never lost: a wake while the task runs makes it due again
 *      as soon as the pass ends (pool_wake_at: by its time).
 *   3. After pool_remove() returns, the task is not running and never runs
 *      again.
 *   4. The pool never calls a task while holding its mutex, so a task may
 *      call pool_wake() (on any task) from its pass, and pool_wake() may be
 *      called under any mutex of the caller.
 *
 * fork(): the child starts with an empty pool (no workers, no tasks; the
 * parent's tasks are abandoned there, as their owners are); the next
 * pool_add() starts workers again.
 */
#ifndef LITESTREAM_POOL_H
#define LITESTREAM_POOL_H

#include <stdint.h>

#define POOL_NEVER    INT64_MAX /* a due time that never comes */
#define POOL_LIGHT    0         /* due[] index: local work */
#define POOL_HEAVY    1         /* due[] index: network work */
#define POOL_FG       0         /* task class: replicators (lanes 0, 1) */
#define POOL_BG       1         /* task class: compactors (lane 2) */
#define POOL_LANES    3
#define POOL_GRACE_MS 50 /* light work waits this long for the spool lane */

/*
 * One pass of a task.  heavy: 0 on the spool lane (local work only), 1 on
 * the others.  Sets due[POOL_LIGHT] and due[POOL_HEAVY] to the next due
 * times (clock_now_ms() milliseconds, or POOL_NEVER: until woken).
 */
typedef void (*pool_fn)(void *ctx, int heavy, int64_t due[2]);

/* Embedded in its owner; the fields are the pool's (pool.c). */
typedef struct pool_task {
    pool_fn xRun;
    void *ctx;
    int cls;
    int64_t due[2];
    int64_t key[POOL_LANES];
    int hidx[POOL_LANES]; /* position in each lane's heap, or -1 */
    int added, running, removing, urgent;
    int64_t pend_at[2]; /* wakes while running: due by then (POOL_NEVER) */
} pool_task;

/*
 * Adds task t (zeroed or never added) of class cls with pass xRun(ctx),
 * first due at due[] (copied).  Starts the lane's first worker if there is
 * none.  SQLITE_OK, or an error with *pzErr (sqlite3_mprintf'd): a bad
 * LITESTREAM_POOL_THREADS, out of memory, no thread.
 */
int pool_add(pool_task *t, pool_fn xRun, void *ctx, int cls,
             const int64_t due[2], char **pzErr);

/*
 * Makes t's `kind` work (POOL_LIGHT or POOL_HEAVY) due now.  Any thread,
 * under any of the caller's mutexes; never blocks beyond the pool's
 * mutex.  A no-op on a task not added or being removed.
 */
void pool_wake(pool_task *t, int kind);

/*
 * Makes t's `kind` work due no later than `when` (clock_now_ms()
 * milliseconds; a time already past is now): an earlier due time stays.
 * For an event that calls for work at the task's own pace (a watched
 * directory changed: upload at the next sync interval, not at once).
 * Same threads, mutexes and no-ops as pool_wake().
 */
void pool_wake_at(pool_task *t, int kind, int64_t when);

/*
 * Removes t: waits until its current pass (if any) ends; it never runs
 * again.  Not from t's own pass.  NULL-safe on a task never added.
 */
void pool_remove(pool_task *t);

/*
 * A pass that may block for long on a destination known to fail (the
 * retry of a replica whose last attempt failed) asks first: at most the
 * upload lane's bound - 1 such passes run at once (1 when the lane has a
 * single worker), so one upload worker always stays for everything else.
 * 1: go ahead, then pool_shy_leave() when done; 0: not now (try later).
 */
int pool_shy_enter(void);
void pool_shy_leave(void);

/* The pool's bound (all lanes) and how many workers exist now. */
typedef struct pool_info {
    int bound;
    int lane_bound[POOL_LANES];
    int workers[POOL_LANES];
    int tasks;
    int shy;         /* passes inside pool_shy_enter() now */
    uint64_t passes; /* passes run since the process started */
} pool_info;
void pool_get_info(pool_info *out);

#endif
