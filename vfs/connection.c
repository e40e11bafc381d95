/*
 * vfs/connection.c: what the extension does to each connection: it tells
 * the VFS which connection owns a replicated database file, and guards the
 * connection against PRAGMA litestream_* on databases the VFS does not
 * manage (connection.h).
 *
 * Runs on the application thread that opens the connection or loads the
 * extension into it, and (the guard) on the thread preparing a statement.
 */
#include "vfs/connection.h"
#include "vfs/auto.h"
#include "vfs/remote.h"
#include "vfs/replicate.h"

/* The authorizer: PRAGMA litestream_* on a schema whose database is not
 * ours (nor a read replica) is denied, with why in sqlite3_log. */
static int
guard(void *arg, int op, const char *z1, const char *z2, const char *z3,
      const char *z4)
{
    sqlite3 *db = arg;
    sqlite3_file *f = NULL;
    if (op != SQLITE_PRAGMA || !z1 || sqlite3_strnicmp(z1, "litestream_", 11))
        return SQLITE_OK;
    sqlite3_file_control(db, z3 ? z3 : "main", SQLITE_FCNTL_FILE_POINTER, &f);
    if (vfs_is_litestream_file(f)) {
        /* An attached schema's file learns its connection here, so the
         * PRAGMA can switch that schema to WAL mode itself. */
        vfs_set_connection(f, db);
        return SQLITE_OK;
    }
    if (vfs_is_remote_file(f))
        return SQLITE_OK;
    if (sqlite3_stricmp(z1, "litestream_url") && !z2)
        return SQLITE_OK; /* reading another setting: harmless */
    sqlite3_log(SQLITE_ERROR,
                "litestream: PRAGMA %s refused: database '%s' was not "
                "opened through the litestream VFS (load the extension "
                "before opening it; :memory: and temp databases cannot be "
                "replicated)",
                z1, z3 ? z3 : "main");
    return SQLITE_DENY;
}

void
vfs_attach_connection(sqlite3 *db, int is_new)
{
    sqlite3_file *f = NULL;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f);
    int ours = vfs_is_litestream_file(f);
    if (ours)
        vfs_set_connection(f, db);
    /* A new connection has no authorizer yet: guard every schema (temp
     * and attached ones too).  On the connection that loads us the
     * application may have its own: only take it over if nothing on that
     * connection could be replicated anyway. */
    if (is_new || !ours)
        sqlite3_set_authorizer(db, guard, db);
    /* litestream_auto's rules: a database under a rule's directory that
     * was never configured starts replicating (vfs/auto.c). */
    if (is_new && ours)
        vfs_auto_attach(db, f);
}
