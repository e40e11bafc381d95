/*
 * vfs/vfs.h: the `litestream` VFS as the rest of the extension sees it.
 */
#ifndef LITESTREAM_VFS_H
#define LITESTREAM_VFS_H

#include <stdint.h>

#include "storage/replicate/replicator.h"
#include "storage/local/sidecar.h"
#include "storage/base/sqlite.h"

typedef struct ls_db ls_db;

/*
 * Registers the `litestream` VFS over the current default VFS and makes it
 * the default.  Idempotent.  SQLITE_OK or the registration's error.
 */
int vfs_replicate_register(void);

/*
 * Registers the read-only `litestream-remote` VFS (vfs/remote.c) over the
 * current default VFS, without making it the default.  Idempotent.
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

/* Whether f is a database file opened through the litestream VFS. */
int vfs_is_litestream_file(sqlite3_file *f);

/* The replicated-database state behind a file (NULL if not ours). */
ls_db *vfs_db_of_file(sqlite3_file *f);

/*
 * Applies c: starts replication (c->zUrl non-empty; restarts only if the
 * URL changed), or stops it (NULL or ""), and stores c in the sidecar.
 * SQLITE_OK or an error with *pzErr.
 */
int vfs_db_configure(ls_db *d, const ls_config *c, char **pzErr);

/*
 * The replicator, borrowed (NULL when not replicating): it stays alive until
 * vfs_db_replicator_done(), even if replication is stopped meanwhile.
 */
replicator *vfs_db_replicator(ls_db *d);
void vfs_db_replicator_done(ls_db *d, replicator *r);

/*
 * If the uploader asked for a full image it cannot read (exclusive locking
 * mode) and f's connection holds the exclusive lock, captures one now.
 * Called by litestream_sync() on the application thread.
 */
void vfs_db_image_now(ls_db *d, sqlite3_file *f);
sidecar *vfs_db_sidecar(ls_db *d); /* NULL before first use */
const char *vfs_db_path(ls_db *d);
/*
 * Why d is not replicating (the last start's error), as a copy taken under
 * d's mutex (sqlite3_free it), or NULL when there is none.
 */
char *vfs_db_error(ls_db *d);
uint64_t vfs_db_full_images(ls_db *d); /* full images the capture forced */

/*
 * Handles `PRAGMA litestream_*` for database d (SQLITE_FCNTL_PRAGMA; azArg
 * as SQLite passes it).  Returns SQLITE_NOTFOUND for other pragmas.
 */
int vfs_pragma(ls_db *d, sqlite3 *conn, sqlite3_file *real, char **azArg);

/* Records the connection owning main database file f (ours only). */
void vfs_set_connection(sqlite3_file *f, sqlite3 *conn);

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
