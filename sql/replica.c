/*
 * sql/replica.c: the SQL functions Litestream's VFS offers on a read
 * replica, with the same names, answered by the `litestream-remote` VFS
 * (docs/remote.md, "Litestream's names"):
 *
 *   SELECT litestream_txid();      -- TXID served (16 hex digits)
 *   SELECT litestream_time();      -- when that state was written (RFC 3339)
 *   SELECT litestream_lag();       -- seconds since the newest object this
 *                                  -- connection has seen was written
 *   SELECT litestream_set_time('5 minutes ago');  -- time travel; NULL
 *   SELECT litestream_set_time('LATEST');         -- follow again
 *   SELECT litestream_hydration_progress();       -- 0..100 (hydration)
 *   SELECT litestream_hydration_status();         -- restoring, complete...
 *
 * Each is the matching PRAGMA of the main database, asked through
 * SQLITE_FCNTL_PRAGMA, so both spellings share one implementation
 * (vfs/remote_pragma.c).
 *
 * Threads: the application thread running the statement.
 */
#include "sql/sql.h"
#include "vfs/remote.h"

#include <stdlib.h>

/* Runs PRAGMA zName [= zVal] on the main database's file.  Returns the
 * PRAGMA's text (sqlite3_free it) or NULL with the error set on ctx. */
static char *
ask(sqlite3_context *ctx, const char *zName, const char *zVal)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    sqlite3_file *f = NULL;
    char *azArg[3] = {NULL, (char *)zName, (char *)zVal};

    sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f);
    if (!vfs_is_remote_file(f)) {
        char *z = sqlite3_mprintf(
            "%s(): the main database is not a read replica (open it "
            "with vfs=litestream-remote, docs/remote.md); on a replicated "
            "database see litestream_status()",
            zName);
        sqlite3_result_error(ctx, z ? z : "litestream: out of memory", -1);
        sqlite3_free(z);
        return NULL;
    }
    int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_PRAGMA, azArg);
    if (rc != SQLITE_OK) {
        sqlite3_result_error(ctx, azArg[0] ? azArg[0] : sqlite3_errstr(rc), -1);
        sqlite3_free(azArg[0]);
        return NULL;
    }
    if (!azArg[0])
        sqlite3_result_error_nomem(ctx);
    return azArg[0];
}

static void
fn_txid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char *z = ask(ctx, "litestream_txid", NULL);
    if (z)
        sqlite3_result_text(ctx, z, -1, sqlite3_free);
}

static void
fn_time(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char *z = ask(ctx, "litestream_time", NULL);
    if (z)
        sqlite3_result_text(ctx, z, -1, sqlite3_free);
}

/* Seconds, as Litestream's VFS returns; ours measure the age of the data
 * served (PRAGMA litestream_lag, in ms), not the time since a poll. */
static void
fn_lag(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char *z = ask(ctx, "litestream_lag", NULL);
    if (z) {
        sqlite3_result_int64(ctx, strtoll(z, NULL, 10) / 1000);
        sqlite3_free(z);
    }
}

/* Percent 0..100 as Litestream's function returns (a REAL here). */
static void
fn_hyd_progress(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char *z = ask(ctx, "litestream_hydration_progress", NULL);
    if (z) {
        sqlite3_result_double(ctx, strtod(z, NULL));
        sqlite3_free(z);
    }
}

static void
fn_hyd_status(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    char *z = ask(ctx, "litestream_hydration_status", NULL);
    if (z)
        sqlite3_result_text(ctx, z, -1, sqlite3_free);
}

static void
fn_set_time(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    const char *zTs = (const char *)sqlite3_value_text(argv[0]);
    if (!zTs) {
        sqlite3_result_error(ctx,
                             "litestream_set_time(): give a time (RFC 3339, "
                             "'5 minutes ago') or 'LATEST'",
                             -1);
        return;
    }
    char *z = ask(ctx, "litestream_time", zTs);
    if (z) {
        sqlite3_free(z);
        sqlite3_result_null(ctx);
    }
}

int
sql_register_replica(sqlite3 *db)
{
    static const struct {
        const char *zName;
        int nArg;
        int flags;
        void (*xFunc)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"litestream_txid", 0, 0, fn_txid},
        {"litestream_time", 0, 0, fn_time},
        {"litestream_lag", 0, 0, fn_lag},
        {"litestream_set_time", 1, SQLITE_DIRECTONLY, fn_set_time},
        {"litestream_hydration_progress", 0, 0, fn_hyd_progress},
        {"litestream_hydration_status", 0, 0, fn_hyd_status},
    };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        int rc = sqlite3_create_function_v2(db, fns[i].zName, fns[i].nArg,
                                            SQLITE_UTF8 | fns[i].flags, NULL,
                                            fns[i].xFunc, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}
