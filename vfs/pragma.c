/*
 * vfs/pragma.c: `PRAGMA litestream_*` on databases opened through the
 * litestream VFS, and the guard that makes them an error elsewhere.
 *
 *   PRAGMA litestream_url;                 -- the URL, secrets redacted
 *   PRAGMA litestream_url = 'file:///dir'; -- start (switches to WAL)
 *   PRAGMA litestream_url = '';            -- stop
 *   PRAGMA litestream_sync_interval;       -- ms between uploads
 *   PRAGMA litestream_sync_interval = 250;
 *
 * Runs on the application thread preparing the PRAGMA.
 */
#include "storage/url.h"
#include "vfs/vfs.h"

#include <stdlib.h>
#include <string.h>

/* Is the database at `real` in WAL mode (file header bytes 18,19 == 2)? */
static int
is_wal_mode(sqlite3_file *real)
{
    unsigned char h[2];
    if (real->pMethods->xRead(real, h, 2, 18) != SQLITE_OK)
        return 0;
    return h[0] == 2 && h[1] == 2;
}

static int
fail(char **azArg, char *zMsg)
{
    azArg[0] = zMsg;
    return SQLITE_ERROR;
}

static int
set_url(ls_db *d, sqlite3 *conn, sqlite3_file *real, char **azArg,
        const char *zUrl)
{
    char *zErr = NULL;
    ls_url *u = NULL;
    int rc;
    replicator *r = vfs_db_replicator(d);
    int sync_ms = r ? replicator_interval(r) : 1000;

    if (zUrl[0]) {
        /* Validate before touching anything. */
        rc = url_parse(zUrl, &u, &zErr);
        url_free(u);
        if (rc != SQLITE_OK)
            return fail(azArg, zErr);
        if (!is_wal_mode(real)) {
            char *zMode = NULL;
            if (conn) {
                sqlite3_stmt *st = NULL;
                if (sqlite3_prepare_v2(conn, "PRAGMA main.journal_mode=WAL",
                                       -1, &st, NULL) == SQLITE_OK &&
                    sqlite3_step(st) == SQLITE_ROW)
                    zMode = sqlite3_mprintf(
                        "%s", (const char *)sqlite3_column_text(st, 0));
                sqlite3_finalize(st);
            }
            int ok = zMode && sqlite3_stricmp(zMode, "wal") == 0;
            sqlite3_free(zMode);
            if (!ok || !is_wal_mode(real))
                return fail(azArg,
                            sqlite3_mprintf(
                                "litestream: cannot switch '%s' to WAL mode "
                                "(replication needs it): run PRAGMA "
                                "journal_mode=WAL first, outside any "
                                "transaction",
                                vfs_db_path(d)));
        }
    }
    rc = vfs_db_configure(d, zUrl, sync_ms, &zErr);
    if (rc != SQLITE_OK)
        return fail(azArg,
                    zErr ? zErr
                         : sqlite3_mprintf("litestream: %s",
                                           sqlite3_errstr(rc)));
    r = vfs_db_replicator(d);
    azArg[0] = sqlite3_mprintf("%s", r ? replicator_url(r) : "");
    return SQLITE_OK;
}

int
vfs_pragma(ls_db *d, sqlite3 *conn, sqlite3_file *real, char **azArg)
{
    const char *zName = azArg[1];
    const char *zVal = azArg[2];
    replicator *r = vfs_db_replicator(d);

    if (sqlite3_stricmp(zName, "litestream_url") == 0) {
        if (zVal)
            return set_url(d, conn, real, azArg, zVal);
        azArg[0] = sqlite3_mprintf("%s", r ? replicator_url(r) : "");
        return SQLITE_OK;
    }
    if (sqlite3_stricmp(zName, "litestream_sync_interval") == 0) {
        if (zVal) {
            char *end = NULL;
            long v = strtol(zVal, &end, 10);
            if (!end || *end || v < 1 || v > 3600000)
                return fail(azArg,
                            sqlite3_mprintf("litestream: "
                                            "litestream_sync_interval must "
                                            "be milliseconds between 1 and "
                                            "3600000, not '%s'",
                                            zVal));
            if (!r)
                return fail(azArg, sqlite3_mprintf(
                                       "litestream: '%s' is not being "
                                       "replicated: set PRAGMA "
                                       "litestream_url first",
                                       vfs_db_path(d)));
            replicator_set_interval(r, (int)v);
            char *zErr = NULL;
            sidecar *sc = vfs_db_sidecar(d);
            /* Keep the stored config in step (the URL stays). */
            char *zUrl = NULL;
            int old = 0;
            sidecar_config_read(vfs_db_path(d), &zUrl, &old);
            if (sc && zUrl)
                sidecar_config_write(sc, zUrl, (int)v, &zErr);
            sqlite3_free(zUrl);
            sqlite3_free(zErr);
        }
        azArg[0] = sqlite3_mprintf("%d", r ? replicator_interval(r) : 1000);
        return SQLITE_OK;
    }
    return SQLITE_NOTFOUND;
}

/* ---- the guard on connections whose databases are not ours ------------- */

static int
guard(void *arg, int op, const char *z1, const char *z2, const char *z3,
      const char *z4)
{
    sqlite3 *db = arg;
    sqlite3_file *f = NULL;
    if (op != SQLITE_PRAGMA || !z1 || sqlite3_strnicmp(z1, "litestream_", 11))
        return SQLITE_OK;
    sqlite3_file_control(db, z3 ? z3 : "main", SQLITE_FCNTL_FILE_POINTER, &f);
    if (vfs_is_litestream_file(f))
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
}
