/*
 * vfs/pragma.h: `PRAGMA litestream_*` on databases opened through the
 * litestream VFS (vfs/pragma.c).
 */
#ifndef LITESTREAM_VFS_PRAGMA_H
#define LITESTREAM_VFS_PRAGMA_H

#include "storage/base/sqlite.h"
#include "vfs/registry.h"

/*
 * Handles `PRAGMA litestream_*` for database d (SQLITE_FCNTL_PRAGMA; azArg
 * as SQLite passes it: azArg[0] receives an sqlite3_malloc'd result or
 * error message).  conn is the connection owning the main database file
 * `real` (NULL if unknown: then litestream_url cannot switch it to WAL).
 * SQLITE_OK, SQLITE_ERROR with the message, or SQLITE_NOTFOUND for other
 * pragmas.
 */
int vfs_pragma(ls_db *d, sqlite3 *conn, sqlite3_file *real, char **azArg);

#endif
