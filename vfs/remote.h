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
 * failed, returns that error code with *pzErr (sqlite3_mprintf'd) saying
 * why; else SQLITE_OK (*pzErr NULL).  Called by the auto-extension so that
 * sqlite3_open_v2() itself fails with the reason.
 */
int vfs_remote_open_error(sqlite3 *db, char **pzErr);

#endif
