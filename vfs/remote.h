/*
 * vfs/remote.h: the read-only `litestream-remote` VFS (vfs/remote.c) as
 * the rest of the extension sees it.
 */
#ifndef LITESTREAM_VFS_REMOTE_H
#define LITESTREAM_VFS_REMOTE_H

#include "storage/base/sqlite.h"
#include "storage/reader/reader.h"

/*
 * Registers the read-only `litestream-remote` VFS over the current default
 * VFS, without making it the default.  Idempotent.
 */
int vfs_remote_register(void);

/* Whether f is a database file opened through `litestream-remote`. */
int vfs_is_remote_file(sqlite3_file *f);

/*
 * If the main database of db is a `litestream-remote` file whose open
 * failed, makes the connection's error that failure (its code, normally
 * SQLITE_CANTOPEN, and "litestream-remote: <why>") and returns 1; else 0.
 * Called by the auto-extension, which then returns SQLITE_OK: SQLite's
 * openDatabase() fails sqlite3_open_v2() with whatever error an
 * auto-extension left on the connection, without the "automatic extension
 * loading failed: " prefix it puts before an auto-extension's own error.
 */
int vfs_remote_fail_open(sqlite3 *db);

/* One open read replica as litestream_metrics() shows it. */
typedef struct remote_metrics {
    const char *zUrl;            /* the replica, redacted */
    uint64_t conn;               /* process-unique number of the open */
    uint64_t txid;               /* TXID served */
    int64_t newest_ms;           /* creation time of the newest object seen */
    reader_stats st;             /* the connection's requests and cache */
    int hydrating;               /* hydration on */
    double progress;             /* ... 0..1 */
    uint64_t hyd_get, hyd_bytes; /* ... its requests */
} remote_metrics;

/*
 * Calls x(m, ctx) for every open `litestream-remote` database of the
 * process, in the order opened, with the counters as of the start or end
 * of its last read transaction (hydration: live), under the list's lock
 * (x must not open or close a replica).  Stops at x's first non-zero
 * return and returns it; else SQLITE_OK.
 */
int vfs_remote_each(int (*x)(const remote_metrics *m, void *ctx), void *ctx);

#endif
