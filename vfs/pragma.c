/*
 * vfs/pragma.c: `PRAGMA litestream_*` on databases opened through the
 * litestream VFS, and the guard that makes them an error elsewhere.
 *
 *   PRAGMA litestream_url;                 -- the URL, secrets redacted
 *   PRAGMA litestream_url = 'file:///dir'; -- start (switches to WAL)
 *   PRAGMA litestream_url = '';            -- stop
 *   PRAGMA litestream_sync_interval;       -- ms between uploads
 *   PRAGMA litestream_sync_interval = 250;
 *   PRAGMA litestream_spool_limit;         -- bytes the spool may hold
 *   PRAGMA litestream_spool_limit = 268435456;
 *   PRAGMA litestream_durability = 'remote';   -- COMMIT waits for the replica
 *   PRAGMA litestream_durability_timeout = 5000; -- ... at most this long
 *   PRAGMA litestream_levels = '30s,5m,1h';          -- L1.. intervals
 *   PRAGMA litestream_snapshot_interval = '24h';     -- L9 snapshots
 *   PRAGMA litestream_snapshot_retention = '24h';    -- or 'off'
 *   PRAGMA litestream_retention = '5m';  -- L0 kept once compacted; 'off'
 *                                        -- never deletes anything
 *
 * The guard that refuses them on databases the VFS does not manage is in
 * vfs/connection.c.
 *
 * Runs on the application thread preparing the PRAGMA.
 */
#include "vfs/pragma.h"
#include "storage/replicate/heartbeat.h"
#include "storage/backend/url.h"
#include "storage/base/timefmt.h"
#include "storage/local/sidecar.h"

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

/*
 * Replication just started on a database that already has a schema but no
 * captured transaction: commit an empty change (user_version rewritten
 * with its own value) so the existing content gets TXID 1 and is uploaded
 * as a full image now, not at the application's next write.  Only from
 * autocommit mode; best effort (the next write does the same).
 */
static void
mark_first_txid(ls_db *d, sqlite3 *conn, sqlite3_file *real,
                const char *zSchema)
{
    sqlite3_int64 size = 0;
    sqlite3_stmt *st = NULL;
    sidecar *sc = registry_sidecar(d);
    ls_cap cap;
    char *zSql;
    int v;

    if (!conn || !sqlite3_get_autocommit(conn) || !sc ||
        (sidecar_cap_read(sc, &cap) && cap.txid > 0) ||
        real->pMethods->xFileSize(real, &size) != SQLITE_OK || size == 0)
        return;
    if (sqlite3_exec(conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return;
    /* Content = a schema (a fresh file holds a header page only). */
    zSql = sqlite3_mprintf("SELECT (SELECT count(*) FROM \"%w\".sqlite_schema),"
                           " user_version FROM \"%w\".pragma_user_version",
                           zSchema, zSchema);
    if (zSql && sqlite3_prepare_v2(conn, zSql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0) {
        v = sqlite3_column_int(st, 1);
        sqlite3_finalize(st);
        st = NULL;
        sqlite3_free(zSql);
        zSql = sqlite3_mprintf("PRAGMA \"%w\".user_version = %d", zSchema, v);
        if (zSql && (!sidecar_cap_read(sc, &cap) || cap.txid == 0))
            sqlite3_exec(conn, zSql, NULL, NULL, NULL);
        sqlite3_free(zSql);
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sqlite3_exec(conn, "ROLLBACK", NULL, NULL, NULL);
}

/* The schema name under which conn has this database ("main" if none
 * matches, or without a connection), into buf. */
static void
schema_of(ls_db *d, sqlite3 *conn, char *buf, size_t n)
{
    sqlite3_stmt *st = NULL;
    sqlite3_snprintf((int)n, buf, "main");
    if (!conn || sqlite3_prepare_v2(conn, "PRAGMA database_list", -1, &st,
                                    NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *zFile = (const char *)sqlite3_column_text(st, 2);
        if (zFile && strcmp(zFile, registry_path(d)) == 0) {
            sqlite3_snprintf((int)n, buf, "%s", sqlite3_column_text(st, 1));
            break;
        }
    }
    sqlite3_finalize(st);
}

/* 1 if conn may not write the schema: opened read-only, or query_only. */
static int
read_only(sqlite3 *conn, const char *zSchema)
{
    sqlite3_stmt *st = NULL;
    int ro = sqlite3_db_readonly(conn, zSchema) == 1;
    if (!ro &&
        sqlite3_prepare_v2(conn, "PRAGMA query_only", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ro = sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return ro;
}

/* The error of a setting changed before replication was configured. */
static int
not_replicating(ls_db *d, char **azArg)
{
    return fail(azArg, sqlite3_mprintf("litestream: '%s' is not being "
                                       "replicated: set PRAGMA "
                                       "litestream_url first",
                                       registry_path(d)));
}

/* Switches the schema to WAL mode; 1 if it is in WAL mode now. */
static int
switch_to_wal(sqlite3 *conn, sqlite3_file *real, const char *zSchema)
{
    char *zMode = NULL;
    sqlite3_stmt *st = NULL;
    char *zSql = sqlite3_mprintf("PRAGMA \"%w\".journal_mode=WAL", zSchema);
    if (conn && zSql &&
        sqlite3_prepare_v2(conn, zSql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        zMode = sqlite3_mprintf("%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_free(zSql);
    int ok = zMode && sqlite3_stricmp(zMode, "wal") == 0;
    sqlite3_free(zMode);
    return ok && is_wal_mode(real);
}

static int
set_url(ls_db *d, sqlite3 *conn, sqlite3_file *real, char **azArg,
        const char *zUrl, const char *zSchema)
{
    char *zErr = NULL;
    int rc;
    replicator *r;
    ls_config c;

    if (zUrl[0]) {
        /* Validate before touching anything. */
        rc = replicator_check_url(zUrl, &zErr);
        if (rc != SQLITE_OK)
            return fail(azArg, zErr);
        if (!is_wal_mode(real) && !switch_to_wal(conn, real, zSchema))
            return fail(azArg, sqlite3_mprintf(
                                   "litestream: cannot switch '%s' to WAL "
                                   "mode (replication needs it): run PRAGMA "
                                   "%s.journal_mode=WAL first, outside any "
                                   "transaction",
                                   registry_path(d), zSchema));
    }
    sidecar_config_read(registry_path(d), &c);
    sqlite3_free(c.zUrl);
    c.zUrl = (char *)zUrl;
    rc = registry_configure(d, &c, &zErr);
    if (rc != SQLITE_OK)
        return fail(azArg, zErr ? zErr
                                : sqlite3_mprintf("litestream: %s",
                                                  sqlite3_errstr(rc)));
    if (zUrl[0])
        mark_first_txid(d, conn, real, zSchema);
    r = registry_replicator(d);
    azArg[0] = sqlite3_mprintf("%s", r ? replicator_url(r) : "");
    registry_replicator_done(d, r);
    return SQLITE_OK;
}

/*
 * PRAGMA litestream_sync_interval / litestream_spool_limit /
 * litestream_durability_timeout: read, or set (within [lo, hi]) and store.
 * which: 0 interval, 1 spool limit, 2 durability timeout.
 */
static int
set_number(ls_db *d, char **azArg, const char *zName, int64_t lo, int64_t hi,
           const char *zUnit, int which)
{
    const char *zVal = azArg[2];
    /* Only peeked at: a borrow must not be held across configure. */
    replicator *r = registry_replicator(d);
    int replicating = r != NULL;
    registry_replicator_done(d, r);
    ls_config c;
    char *zErr = NULL;
    int rc = SQLITE_OK;
    sidecar_config_read(registry_path(d), &c);
    if (zVal) {
        char *end = NULL;
        long long v = strtoll(zVal, &end, 10);
        if (!end || end == zVal || *end || v < lo || v > hi) {
            rc = fail(azArg, sqlite3_mprintf("litestream: %s must be %s "
                                             "between %lld and %lld, not "
                                             "'%s'",
                                             zName, zUnit, (long long)lo,
                                             (long long)hi, zVal));
            goto out;
        }
        if (!replicating) {
            rc = not_replicating(d, azArg);
            goto out;
        }
        if (which == 0)
            c.sync_ms = (int)v;
        else if (which == 1)
            c.spool_limit = v;
        else
            c.durability_ms = (int)v;
        rc = registry_configure(d, &c, &zErr);
        if (rc != SQLITE_OK) {
            rc = fail(azArg, zErr);
            goto out;
        }
    }
    r = registry_replicator(d);
    if (which == 0)
        azArg[0] =
            sqlite3_mprintf("%d", r ? replicator_interval(r) : c.sync_ms);
    else if (which == 2)
        azArg[0] = sqlite3_mprintf("%d", c.durability_ms);
    else
        azArg[0] = sqlite3_mprintf(
            "%lld", (long long)(r ? replicator_spool_limit(r) : c.spool_limit));
    registry_replicator_done(d, r);
out:
    sqlite3_free(c.zUrl);
    return rc;
}

/* The PITR PRAGMAs, in the order set_pitr()'s `which` numbers them. */
static const char *const pitr_names[] = {
    "litestream_levels", "litestream_snapshot_interval",
    "litestream_snapshot_retention", "litestream_retention"};

/* Formats setting `which` of p into buf. */
static const char *
pitr_format(const ls_pitr *p, int which, char *buf, size_t n)
{
    int64_t v = which == 1   ? p->snapshot_ms
                : which == 2 ? p->snapshot_retention_ms
                             : p->l0_retention_ms;
    if (which == 0)
        return timefmt_levels(p->levels, p->nlevels, buf, n);
    if (v == PITR_OFF)
        return "off";
    return timefmt_duration(v, buf, n);
}

/* Parses zVal into setting `which` of p; SQLITE_OK or *pzErr. */
static int
pitr_parse(ls_pitr *p, int which, const char *zVal, char **pzErr)
{
    int64_t v;
    if (which == 0)
        return timefmt_parse_levels(zVal, p->levels, &p->nlevels, pzErr);
    if (which >= 2 && sqlite3_stricmp(zVal, "off") == 0) {
        v = PITR_OFF;
    } else if (timefmt_parse_duration(zVal, &v, pzErr) != SQLITE_OK) {
        char *z = *pzErr;
        *pzErr = sqlite3_mprintf("%s (PRAGMA %s%s)", z, pitr_names[which],
                                 which >= 2 ? "; 'off' never deletes" : "");
        sqlite3_free(z);
        return SQLITE_ERROR;
    }
    if (which == 1)
        p->snapshot_ms = v;
    else if (which == 2)
        p->snapshot_retention_ms = v;
    else
        p->l0_retention_ms = v;
    return SQLITE_OK;
}

/* PRAGMA litestream_levels and friends: read, or set and store. */
static int
set_pitr(ls_db *d, char **azArg, int which)
{
    const char *zVal = azArg[2];
    replicator *r = registry_replicator(d);
    int replicating = r != NULL;
    ls_config c;
    char *zErr = NULL, buf[160];
    int rc = SQLITE_OK;

    sidecar_config_read(registry_path(d), &c);
    if (r)
        replicator_pitr(r, &c.pitr);
    registry_replicator_done(d, r);
    if (zVal) {
        if (pitr_parse(&c.pitr, which, zVal, &zErr) != SQLITE_OK) {
            rc = fail(azArg, zErr);
            goto out;
        }
        if (!replicating) {
            rc = not_replicating(d, azArg);
            goto out;
        }
        rc = registry_configure(d, &c, &zErr);
        if (rc != SQLITE_OK) {
            rc = fail(azArg, zErr);
            goto out;
        }
    }
    azArg[0] =
        sqlite3_mprintf("%s", pitr_format(&c.pitr, which, buf, sizeof(buf)));
out:
    sqlite3_free(c.zUrl);
    return rc;
}

/*
 * PRAGMA litestream_heartbeat_url / litestream_heartbeat_interval: the
 * process's heartbeat (storage/replicate/heartbeat.h), the same whichever
 * database's connection sets or reads it.
 */
static int
heartbeat_pragma(char **azArg)
{
    const char *zName = azArg[1], *zVal = azArg[2];
    int64_t ms = 0;
    uint64_t n_ok = 0, n_fail = 0;
    int url = sqlite3_stricmp(zName, "litestream_heartbeat_url") == 0;
    if (!url && sqlite3_stricmp(zName, "litestream_heartbeat_interval") != 0)
        return SQLITE_NOTFOUND;
    if (zVal && url && zVal[0] && sqlite3_strnicmp(zVal, "http://", 7) &&
        sqlite3_strnicmp(zVal, "https://", 8))
        return fail(azArg, sqlite3_mprintf("litestream: PRAGMA %s takes an "
                                           "http:// or https:// URL (or '' "
                                           "to stop), not '%s'",
                                           zName, zVal));
    if (zVal && !url) {
        char *zErr = NULL, *end = NULL;
        long long v = strtoll(zVal, &end, 10);
        if (end && !*end && *zVal)
            ms = v;
        else if (timefmt_parse_duration(zVal, &ms, &zErr) != SQLITE_OK)
            ms = -1;
        sqlite3_free(zErr);
        if (ms < 100 || ms > 86400000LL * 7)
            return fail(azArg, sqlite3_mprintf(
                                   "litestream: PRAGMA %s takes milliseconds "
                                   "(100 to 604800000) or a duration such as "
                                   "'5m', not '%s'",
                                   zName, zVal));
    }
    if (zVal && heartbeat_set(url ? zVal : NULL, ms) != SQLITE_OK)
        return SQLITE_NOMEM;
    char *z = heartbeat_get(&ms, &n_ok, &n_fail);
    azArg[0] = url ? sqlite3_mprintf("%s", z ? z : "")
                   : sqlite3_mprintf("%lld", (long long)ms);
    sqlite3_free(z);
    return SQLITE_OK;
}

/* PRAGMA litestream_durability: read, or set and store. */
static const char *const durability_names[] = {"local", "remote", "remote-all"};

static int
set_durability(ls_db *d, char **azArg)
{
    const char *zVal = azArg[2];
    ls_config c;
    char *zErr = NULL;
    int rc = SQLITE_OK;
    sidecar_config_read(registry_path(d), &c);
    if (zVal) {
        int m = -1;
        for (int i = 0; i < 3; i++)
            if (sqlite3_stricmp(zVal, durability_names[i]) == 0)
                m = i;
        replicator *r = registry_replicator(d);
        int replicating = r != NULL;
        registry_replicator_done(d, r);
        if (m < 0)
            rc = fail(azArg, sqlite3_mprintf(
                                 "litestream: litestream_durability must be "
                                 "'local', 'remote' or 'remote-all', not "
                                 "'%s'",
                                 zVal));
        else if (!replicating)
            rc = not_replicating(d, azArg);
        else {
            c.durability = m;
            rc = registry_configure(d, &c, &zErr);
            if (rc != SQLITE_OK)
                rc = fail(azArg, zErr);
        }
    }
    if (rc == SQLITE_OK)
        azArg[0] = sqlite3_mprintf("%s", durability_names[c.durability]);
    sqlite3_free(c.zUrl);
    return rc;
}

int
vfs_pragma(ls_db *d, sqlite3 *conn, sqlite3_file *real, char **azArg)
{
    const char *zName = azArg[1];
    const char *zVal = azArg[2];
    char zSchema[128];

    if (sqlite3_strnicmp(zName, "litestream_", 11) != 0)
        return SQLITE_NOTFOUND;
    schema_of(d, conn, zSchema, sizeof(zSchema));
    if (zVal && conn && read_only(conn, zSchema))
        return fail(azArg, sqlite3_mprintf(
                               "litestream: cannot change %s of '%s' from a "
                               "read-only connection (opened read-only or "
                               "PRAGMA query_only): use a connection that "
                               "may write",
                               zName, registry_path(d)));
    if (sqlite3_stricmp(zName, "litestream_url") == 0) {
        if (zVal)
            return set_url(d, conn, real, azArg, zVal, zSchema);
        replicator *r = registry_replicator(d);
        azArg[0] = sqlite3_mprintf("%s", r ? replicator_url(r) : "");
        registry_replicator_done(d, r);
        return SQLITE_OK;
    }
    if (sqlite3_stricmp(zName, "litestream_sync_interval") == 0)
        return set_number(d, azArg, "litestream_sync_interval", 1, 3600000,
                          "milliseconds", 0);
    if (sqlite3_stricmp(zName, "litestream_spool_limit") == 0)
        return set_number(d, azArg, "litestream_spool_limit", 1 << 20,
                          (int64_t)1 << 50, "bytes", 1);
    if (sqlite3_stricmp(zName, "litestream_durability") == 0)
        return set_durability(d, azArg);
    if (sqlite3_stricmp(zName, "litestream_durability_timeout") == 0)
        return set_number(d, azArg, "litestream_durability_timeout", 1,
                          86400000, "milliseconds", 2);
    for (int i = 0; i < 4; i++)
        if (sqlite3_stricmp(zName, pitr_names[i]) == 0)
            return set_pitr(d, azArg, i);
    if (sqlite3_strnicmp(zName, "litestream_heartbeat_", 21) == 0)
        return heartbeat_pragma(azArg);
    return SQLITE_NOTFOUND;
}
