/*
 * vfs/connection.h: what the extension does to each connection
 * (vfs/connection.c).
 */
#ifndef LITESTREAM_VFS_CONNECTION_H
#define LITESTREAM_VFS_CONNECTION_H

#include "storage/base/sqlite.h"

/*
 * Remembers the connection that owns the litestream main database file of
 * db (so PRAGMA litestream_url can switch it to WAL mode) and installs the
 * guard (an authorizer) that turns PRAGMA litestream_* on a database the
 * VFS does not manage (:memory:, temp, opened before the load or through
 * another VFS) into an error.  is_new: db was just opened (auto-extension)
 * rather than the connection loading the extension.
 */
void vfs_attach_connection(sqlite3 *db, int is_new);

#endif
