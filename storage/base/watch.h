/*
 * storage/base/watch.h: the process's one watcher of directories
 * (inotify), so that a task with nothing to do sleeps until something
 * happens instead of waking on a timer (docs/architecture.md 3.1, "Idle").
 *
 * One inotify instance and one thread ("ls-watch") serve every watch of
 * the process, whatever the number of databases: the thread sleeps in
 * read() and calls a watch's function when its directory reports one of
 * the watched kinds of change.  The function runs on that thread, under
 * the watcher's mutex: it must be short and must not call watch_*()
 * (pool_wake_at() is what it is for).
 *
 * Invariants:
 *   1. After watch_remove() returns, the watch's function is not running
 *      and is never called again.
 *   2. No event is lost silently: when the kernel's queue overflowed, every
 *      watch's function is called; when a watched directory is removed or
 *      moved, its watches' functions are called and watch_live() turns 0.
 *
 * fork(): the child starts with no watches and no thread (the parent's
 * watches belong to owners the child abandons); the next watch_add()
 * starts again.
 *
 * Threads: any thread calls these; the functions run on the watcher's.
 */
#ifndef LITESTREAM_WATCH_H
#define LITESTREAM_WATCH_H

#include <stdint.h>

/* What a watch reports (any combination). */
#define WATCH_WRITTEN 1u  /* a file in it written to */
#define WATCH_CLOSED  2u  /* a file in it closed that was open for writing */
#define WATCH_ADDED   4u  /* a name created in it or moved into it */
#define WATCH_REMOVED 8u  /* a name deleted from it or moved out of it */
#define WATCH_TOUCHED 16u /* its own or a file's times changed (utimensat) */

typedef struct watch watch;
typedef void (*watch_fn)(void *ctx);

/*
 * Watches directory zDir for the changes `kinds` (WATCH_*) to the name
 * zName in it (NULL: any name; changes of the directory itself always
 * count).  xFn(ctx) is called on the watcher's thread for each batch of
 * such changes.  SQLITE_OK and *out, or an error (no inotify, its limit
 * of watches reached, no such directory, out of memory): the caller then
 * polls as it would without a watcher.
 */
int watch_add(const char *zDir, const char *zName, unsigned kinds, watch_fn xFn,
              void *ctx, watch **out);

/* Ends a watch (invariant 1).  NULL-safe.  Not from a watch function. */
void watch_remove(watch *);

/* 0 once its directory was removed or moved away (add it again). */
int watch_live(watch *);

#endif
