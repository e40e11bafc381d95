/*
 * ext/litestream.c: the loadable extension's entry point.
 *
 * Load it into any SQLite host:
 *     sqlite3> .load ./litestream
 *     python>  conn.load_extension("./litestream")
 *     node>    db.loadExtension("./litestream")
 *
 * Invariants:
 *   1. SQLite is reached only through the API table handed to us here
 *      (storage/base/sqlite.h); the .so never links libsqlite3.
 *   2. The first load registers everything process-wide (VFSes, the
 *      auto-extension that adds the SQL functions to later connections) and
 *      returns SQLITE_OK_LOAD_PERMANENTLY so the library is never unloaded
 *      while its VFS and threads live.  Later loads (another connection
 *      calling load_extension again) only add the SQL functions to their
 *      own connection.
 *
 * Runs on the application thread that loads the extension.
 */
#include "sql/sql.h"
#include "storage/base/sqlite.h"
#include "vfs/vfs.h"

/* Auto-extension: adds the SQL functions to every new connection. */
static int
auto_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    /* A read replica that could not be opened fails the open, with why. */
    int rc = vfs_remote_open_error(db, pzErrMsg);
    if (rc != SQLITE_OK)
        return rc;
    vfs_attach_connection(db, 1);
    return sql_register(db);
}

static int
register_process_wide(void)
{
    /* The remote VFS first: it wraps the OS VFS, not the replicating one. */
    int rc = vfs_remote_register();
    if (rc == SQLITE_OK)
        rc = vfs_replicate_register();
    if (rc == SQLITE_OK)
        rc = sqlite3_auto_extension((void (*)(void))auto_init);
    return rc;
}

LITESTREAM_EXPORT int sqlite3_litestream_init(sqlite3 *db, char **pzErrMsg,
                                              const sqlite3_api_routines *pApi);

/*
 * Entry point named after the file (SQLite derives "sqlite3_litestream_init"
 * from "litestream.so").  Returns SQLITE_OK_LOAD_PERMANENTLY on success, or
 * an error code with *pzErrMsg set (allocated with sqlite3_malloc).
 */
int
sqlite3_litestream_init(sqlite3 *db, char **pzErrMsg,
                        const sqlite3_api_routines *pApi)
{
    static int registered;
    int rc;

    litestream_api_set(pApi);
    if (!registered) {
        rc = register_process_wide();
        if (rc != SQLITE_OK) {
            *pzErrMsg = sqlite3_mprintf("litestream: cannot register: %s",
                                        sqlite3_errstr(rc));
            return rc;
        }
        registered = 1;
    }
    vfs_attach_connection(db, 0);
    rc = sql_register(db);
    if (rc != SQLITE_OK) {
        *pzErrMsg = sqlite3_mprintf("litestream: cannot add functions: %s",
                                    sqlite3_errstr(rc));
        return rc;
    }
    return SQLITE_OK_LOAD_PERMANENTLY;
}
