/*
 * vfs/remote.h: the read-only `litestream-remote` VFS (vfs/remote.c) as
 * the rest of the extension sees it.
 */
#ifndef LITESTREAM_VFS_REMOTE_H
#define LITESTREAM_VFS_REMOTE_H

#include "storage/base/sqlite.h"

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

#endif
