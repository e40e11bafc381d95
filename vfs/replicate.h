/*
 * vfs/replicate.h: the `litestream` VFS (vfs/replicate.c) as the rest of
 * the extension sees it: registration, and which files are its own.
 */
#ifndef LITESTREAM_VFS_REPLICATE_H
#define LITESTREAM_VFS_REPLICATE_H

#include "storage/base/sqlite.h"
#include "vfs/registry.h"

/*
 * Registers the `litestream` VFS over the current default VFS and makes it
 * the default.  Idempotent.  SQLITE_OK or the registration's error.
 */
int vfs_replicate_register(void);

/* Whether f is a main database file opened through the litestream VFS. */
int vfs_is_litestream_file(sqlite3_file *f);

/* The replicated-database state behind a file (NULL if not ours). */
ls_db *vfs_db_of_file(sqlite3_file *f);

/* Records the connection owning main database file f (ours only). */
void vfs_set_connection(sqlite3_file *f, sqlite3 *conn);

/*
 * If the uploader asked for a full image it cannot read (exclusive locking
 * mode) and f's connection holds the exclusive lock, captures one now.
 * Called by litestream_sync() on the application thread.
 */
void vfs_image_now(sqlite3_file *f);

#endif
