/*
 * ext/litestream.c: the loadable extension's entry point.
 *
 * Load it into any SQLite host:
 *     sqlite3> .load ./litestream
 *     python>  conn.load_extension("./litestream")
 *     node>    db.loadExtension("./litestream")
 * or link it (liblitestream.a, ext/litestream.h) and register it with
 * sqlite3_auto_extension().
 *
 * Invariants:
 *   1. SQLite is reached only through the API table handed to us here
 *      (storage/base/sqlite.h); the .so never links libsqlite3.
 *   2. The first load registers everything process-wide (VFSes, the
 *      auto-extension that adds the SQL functions to later connections),
 *      once even when several threads load at once, and returns
 *      SQLITE_OK_LOAD_PERMANENTLY so the library is never unloaded while
 *      its VFS and threads live.
 *   3. Loading is idempotent: any number of loads, through the C API or
 *      SQL, into any connection, succeed and leave one VFS registration and
 *      one set of functions per connection (a connection that has them,
 *      through the auto-extension or an earlier load, keeps them:
 *      sql_register() knows which have them).
 *   4. The same file builds the loadable .so (calls to SQLite through the
 *      API table) and the embedding library liblitestream.a (compiled with
 *      SQLITE_CORE: direct calls into the application's SQLite, see
 *      ext/meson.build).
 *
 * Runs on the application thread that loads the extension (any thread).
 */
#include <pthread.h>

#include "ext/litestream.h"
#include "sql/sql.h"
#include "storage/base/sqlite.h"
#include "vfs/auto.h"
#include "vfs/connection.h"
#include "vfs/durability.h"
#include "vfs/remote.h"
#include "vfs/replicate.h"

_Static_assert(LITESTREAM_UNCONFIRMED == LS_UNCONFIRMED,
               "litestream.h names the code vfs/durability.c returns");

/* Auto-extension: adds the SQL functions to every new connection. */
static int
auto_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    /* A read replica that could not be opened fails the open, with why
     * (the connection's error, so SQLite adds no prefix). */
    if (vfs_remote_fail_open(db))
        return SQLITE_OK;
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
 * from "litestream.so"; the .so exports no sqlite3_extension_init, see
 * docs/install.md).  Returns SQLITE_OK_LOAD_PERMANENTLY on success (SQLITE_OK
 * in liblitestream.a, where it runs as an automatic extension and any other
 * value fails the open), or an error code with *pzErrMsg set (allocated with
 * sqlite3_malloc).
 */
int
sqlite3_litestream_init(sqlite3 *db, char **pzErrMsg,
                        const sqlite3_api_routines *pApi)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int registered; /* under mu */
    int rc = SQLITE_OK;

    /* Several threads may load at once: the first one in sets the API
     * table and registers; the others wait for it, then find it done. */
    pthread_mutex_lock(&mu);
    char *zEnv = NULL; /* a bad LITESTREAM_AUTO_* fails every load */
    if (!registered) {
        litestream_api_set(pApi);
        rc = vfs_auto_env(&zEnv); /* first: a bad one registers nothing */
        if (rc == SQLITE_OK)
            rc = register_process_wide();
        registered = rc == SQLITE_OK;
    }
    pthread_mutex_unlock(&mu);
    if (zEnv) {
        *pzErrMsg = zEnv;
        return rc;
    }
    if (rc != SQLITE_OK) {
        *pzErrMsg = sqlite3_mprintf("litestream: cannot register: %s",
                                    sqlite3_errstr(rc));
        return rc;
    }
    vfs_attach_connection(db, 0);
    rc = sql_register(db);
    if (rc != SQLITE_OK) {
        *pzErrMsg = sqlite3_mprintf("litestream: cannot add functions: %s",
                                    sqlite3_errstr(rc));
        return rc;
    }
#ifdef SQLITE_CORE
    return SQLITE_OK;
#else
    return SQLITE_OK_LOAD_PERMANENTLY;
#endif
}
