/*
 * sql/functions.c: the litestream_* SQL functions.
 *
 *   litestream_version()
 *   litestream_status([schema])               JSON
 *   litestream_sync([schema][, timeout_ms])   replicated TXID
 *   litestream_restore(url, path[, target[, overwrite]])  JSON summary
 *   (litestream_ltx and litestream_snapshot: sql/pitr.c)
 *
 * Runs on application threads (whichever thread calls the function).  The
 * functions reach the replicator only through storage/replicate/replicator.h
 * and the VFS through vfs/registry.h and vfs/replicate.h; restore and sync are
 * the only network calls.
 */
#include "sql/sql.h"
#include "storage/backend/url.h"
#include "storage/base/clock.h"
#include "storage/base/json.h"
#include "storage/restore/restore.h"
#include "storage/base/timefmt.h"
#include "vfs/registry.h"
#include "vfs/remote.h"
#include "vfs/replicate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* litestream_version(): the extension's version string. */
static void
fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    sqlite3_result_text(ctx, LITESTREAM_VERSION, -1, SQLITE_STATIC);
}

/* The file of a schema of this connection, or NULL. */
static sqlite3_file *
schema_file(sqlite3 *db, const char *zSchema)
{
    sqlite3_file *f = NULL;
    sqlite3_file_control(db, zSchema, SQLITE_FCNTL_FILE_POINTER, &f);
    return f;
}

/* The replicated database behind a schema of this connection, or NULL. */
static ls_db *
db_of_schema(sqlite3 *db, const char *zSchema)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, zSchema, SQLITE_FCNTL_FILE_POINTER, &f) !=
        SQLITE_OK)
        return NULL;
    return vfs_db_of_file(f);
}

/* The status object of one replicated database (docs/sql.md). */
static json_t *
status_one(const char *zSchema, ls_db *d)
{
    replicator *r = registry_replicator(d);
    char *zErr = r ? NULL : registry_error(d);
    json_t *o = json_object();
    int bad = 0;

    ls_json_set(o, "schema", ls_json_text(zSchema), &bad);
    ls_json_set(o, "path", ls_json_text(registry_path(d)), &bad);
    ls_json_set(o, "replicating", json_boolean(r != NULL), &bad);
    ls_json_set(o, "forced_full_images", ls_json_u64(registry_full_images(d)),
                &bad);
    static const char *const zMode[] = {"local", "remote", "remote-all"};
    int m = __atomic_load_n(&d->durability, __ATOMIC_RELAXED);
    ls_json_set(o, "durability", ls_json_text(zMode[m < 0 || m > 2 ? 0 : m]),
                &bad);
    ls_json_set(
        o, "unconfirmed_commits",
        ls_json_u64(__atomic_load_n(&d->n_unconfirmed, __ATOMIC_RELAXED)),
        &bad);
    if (r && o && replicator_status(r, o) != SQLITE_OK)
        bad = 1;
    if (zErr) {
        json_t *e = json_object();
        ls_json_set(e, "message", ls_json_text(zErr), &bad);
        ls_json_set(o, "last_error", e, &bad);
    }
    sqlite3_free(zErr);
    registry_replicator_done(d, r);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Why the database behind zSchema (not ours) cannot be replicated. */
static char *
not_replicable_reason(sqlite3 *db, const char *zSchema, const char *zFile)
{
    sqlite3_vfs *pVfs = NULL;
    if (!zFile || !zFile[0])
        return sqlite3_mprintf("in-memory or temporary database");
    if (vfs_is_remote_file(schema_file(db, zSchema)))
        return sqlite3_mprintf("a read replica (litestream-remote): "
                               "replicate the primary instead");
    sqlite3_file_control(db, zSchema, SQLITE_FCNTL_VFS_POINTER, &pVfs);
    return sqlite3_mprintf("opened through VFS '%s', not 'litestream': load "
                           "the extension before opening the database",
                           pVfs ? pVfs->zName : "?");
}

/* {"schema", "reason"} for a database that cannot be replicated. */
static json_t *
not_replicable_one(sqlite3 *db, const char *zSchema, const char *zFile)
{
    char *zWhy = not_replicable_reason(db, zSchema, zFile);
    json_t *o = json_object();
    int bad = !zWhy;
    ls_json_set(o, "schema", ls_json_text(zSchema), &bad);
    ls_json_set(o, "reason", ls_json_text(zWhy ? zWhy : ""), &bad);
    sqlite3_free(zWhy);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/*
 * Fills the "databases" and "not_replicable" arrays from the schemas of db
 * (only zOnly when not NULL).  SQLITE_OK or an error code.
 */
static int
status_schemas(sqlite3 *db, const char *zOnly, json_t *dbs, json_t *no)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA database_list", -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *zSchema = (const char *)sqlite3_column_text(st, 1);
        const char *zFile = (const char *)sqlite3_column_text(st, 2);
        if (!zSchema || (zOnly && sqlite3_stricmp(zOnly, zSchema)))
            continue;
        ls_db *d = db_of_schema(db, zSchema);
        if (d) {
            if (json_array_append_new(dbs, status_one(zSchema, d)) != 0)
                rc = SQLITE_NOMEM;
        } else if (sqlite3_stricmp(zSchema, "temp") != 0) {
            if (json_array_append_new(
                    no, not_replicable_one(db, zSchema, zFile)) != 0)
                rc = SQLITE_NOMEM;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* litestream_status([schema]) */
static void
fn_status(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    const char *zOnly =
        argc > 0 ? (const char *)sqlite3_value_text(argv[0]) : NULL;
    json_t *doc = json_object(), *dbs = json_array(), *no = json_array();
    int bad = 0, rc = SQLITE_NOMEM;

    if (dbs && no)
        rc = status_schemas(db, zOnly, dbs, no);
    ls_json_set(doc, "version", json_string(LITESTREAM_VERSION), &bad);
    ls_json_set(doc, "databases", dbs, &bad);
    ls_json_set(doc, "not_replicable", no, &bad);
    if (rc != SQLITE_OK || bad) {
        json_decref(doc);
        if (rc == SQLITE_NOMEM || bad)
            sqlite3_result_error_nomem(ctx);
        else
            sqlite3_result_error_code(ctx, rc);
        return;
    }
    ls_json_result(ctx, doc);
}

/*
 * Waits until the replica holds every transaction captured when the call
 * began (or, in exclusive locking mode, a full image read here), up to
 * timeout ms (negative: forever).  SQLITE_OK with *rep (the replicated
 * TXID), or an error with *pzErr (sqlite3_malloc'd, may be NULL).
 */
static int
sync_wait(sqlite3 *db, const char *zSchema, ls_db *d, replicator *r,
          int timeout, uint64_t *rep, char **pzErr)
{
    ls_cap cap;
    /* The sync contract (docs/sql.md): everything committed before the
     * call, including what a crashed writer left uncaptured in the WAL.
     * (Not from a connection holding the exclusive lock: no one else can
     * have written, and a private connection would only wait for it.) */
    int lock = 0;
    if (sqlite3_file_control(db, zSchema, SQLITE_FCNTL_LOCKSTATE, &lock) !=
            SQLITE_OK ||
        lock != SQLITE_LOCK_EXCLUSIVE)
        replicator_capture_pending(r);
    uint64_t want = sidecar_cap_read(registry_sidecar(d), &cap) ? cap.txid : 0;
    int rc = replicator_persist(r);
    sqlite3_int64 deadline = 0, now = 0;
    sqlite3_file *f = NULL;
    sqlite3_file_control(db, zSchema, SQLITE_FCNTL_FILE_POINTER, &f);
    sqlite3_vfs *pVfs = sqlite3_vfs_find(NULL);
    pVfs->xCurrentTimeInt64(pVfs, &now);
    deadline = now + (timeout < 0 ? 0 : timeout);
    while (rc == SQLITE_OK) {
        /* Wait in slices: in exclusive locking mode only this connection
         * can read a full image the replica may be waiting for. */
        int slice = timeout < 0 ? 500 : (int)(deadline - now);
        if (slice > 500)
            slice = 500;
        if (slice < 0)
            slice = 0;
        sqlite3_free(*pzErr);
        *pzErr = NULL;
        rc = replicator_sync(r, want, slice, rep, pzErr);
        if (rc != SQLITE_BUSY)
            break;
        if (replicator_image_wanted(r)) {
            vfs_image_now(f);
            if (sidecar_cap_read(registry_sidecar(d), &cap) && cap.txid > want)
                want = cap.txid;
            if (replicator_persist(r) != SQLITE_OK)
                break;
        }
        pVfs->xCurrentTimeInt64(pVfs, &now);
        if (timeout >= 0 && now >= deadline)
            break;
        rc = SQLITE_OK;
    }
    if (rc == SQLITE_BUSY) {
        /* Waited in slices: the message names the caller's timeout. */
        char *zWhy = replicator_last_error(r);
        const char *z = zWhy ? zWhy : "";
        if (strncmp(z, "litestream: ", 12) == 0)
            z += 12; /* one prefix is enough */
        sqlite3_free(*pzErr);
        *pzErr = sqlite3_mprintf("litestream: replica did not reach TXID %llu "
                                 "within %d ms%s%s",
                                 (unsigned long long)want, timeout,
                                 *z ? ": " : "", z);
        sqlite3_free(zWhy);
    }
    return rc;
}

/* litestream_sync([schema][, timeout_ms]) -> replicated TXID */
static void
fn_sync(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    const char *zSchema = "main";
    int timeout = 30000;
    uint64_t rep = 0;
    char *zErr = NULL;
    for (int i = 0; i < argc; i++) {
        if (sqlite3_value_type(argv[i]) == SQLITE_INTEGER)
            timeout = sqlite3_value_int(argv[i]);
        else if (sqlite3_value_type(argv[i]) == SQLITE_TEXT)
            zSchema = (const char *)sqlite3_value_text(argv[i]);
    }
    ls_db *d = db_of_schema(db, zSchema);
    replicator *r = d ? registry_replicator(d) : NULL;
    if (!r) {
        char *zWhy = d ? registry_error(d) : NULL;
        char *z = sqlite3_mprintf(
            "litestream_sync: database '%s' is not being replicated "
            "(set PRAGMA %s.litestream_url first)%s%s",
            zSchema, zSchema, zWhy ? ": " : "", zWhy ? zWhy : "");
        sqlite3_result_error(ctx, z, -1);
        sqlite3_free(z);
        sqlite3_free(zWhy);
        return;
    }
    if (sync_wait(db, zSchema, d, r, timeout, &rep, &zErr) != SQLITE_OK)
        sqlite3_result_error(ctx, zErr ? zErr : "litestream_sync: spool failed",
                             -1);
    else
        sqlite3_result_int64(ctx, (sqlite3_int64)rep);
    sqlite3_free(zErr);
    registry_replicator_done(d, r);
}

/* Parses a restore target: integer TXID, 16-hex string or RFC 3339 time. */
static int
parse_target(sqlite3_value *v, restore_opts *o, char **pzErr)
{
    if (sqlite3_value_type(v) == SQLITE_NULL)
        return SQLITE_OK;
    if (sqlite3_value_type(v) == SQLITE_INTEGER) {
        if (sqlite3_value_int64(v) <= 0)
            goto bad;
        o->target_txid = (uint64_t)sqlite3_value_int64(v);
        return SQLITE_OK;
    }
    const char *z = (const char *)sqlite3_value_text(v);
    char *end = NULL;
    if (z && strlen(z) == 16) {
        unsigned long long t = strtoull(z, &end, 16);
        if (end && !*end && t > 0) {
            o->target_txid = t;
            return SQLITE_OK;
        }
    }
    if (z && timefmt_parse_when(z, clock_now_ms(), &o->target_ms) &&
        o->target_ms > 0)
        return SQLITE_OK;
bad:
    *pzErr = sqlite3_mprintf("litestream_restore: target must be a TXID "
                             "(a positive integer or 16 hex digits), a "
                             "timestamp with a time zone "
                             "('2026-11-22T14:01:00Z', "
                             "'2026-11-22T16:01:00.5+02:00') or a relative "
                             "time ('5 minutes ago'), got '%s'",
                             sqlite3_value_text(v));
    return SQLITE_ERROR;
}

/* litestream_restore(url, path[, target[, overwrite]]) -> JSON summary */
/* The restore's 4th argument: 0/1 (overwrite), or words among
 * overwrite, if-not-exists, if-replica-exists (commas or spaces between). */
#define RESTORE_IF_NOT_EXISTS     1
#define RESTORE_IF_REPLICA_EXISTS 2

static int
parse_mode(sqlite3_value *v, restore_opts *o, int *flags, char **pzErr)
{
    static const char *const words[] = {"overwrite", "if-not-exists",
                                        "if-replica-exists"};
    if (sqlite3_value_type(v) == SQLITE_NULL)
        return SQLITE_OK;
    if (sqlite3_value_type(v) == SQLITE_INTEGER) {
        o->overwrite = sqlite3_value_int64(v) != 0;
        return SQLITE_OK;
    }
    const char *z = (const char *)sqlite3_value_text(v);
    while (z && *z) {
        size_t n = strcspn(z, ", ");
        int k = -1;
        for (int i = 0; i < 3 && n; i++)
            if (strlen(words[i]) == n &&
                sqlite3_strnicmp(z, words[i], (int)n) == 0)
                k = i;
        if (n && k < 0) {
            *pzErr = sqlite3_mprintf(
                "litestream_restore: the 4th argument is 1 (overwrite) or "
                "one or more of 'overwrite', 'if-not-exists', "
                "'if-replica-exists', got '%s'",
                sqlite3_value_text(v));
            return SQLITE_ERROR;
        }
        if (k == 0)
            o->overwrite = 1;
        else if (k > 0)
            *flags |=
                k == 1 ? RESTORE_IF_NOT_EXISTS : RESTORE_IF_REPLICA_EXISTS;
        z += n + (z[n] != 0);
    }
    if (o->overwrite && (*flags & RESTORE_IF_NOT_EXISTS)) {
        *pzErr = sqlite3_mprintf("litestream_restore: 'overwrite' and "
                                 "'if-not-exists' exclude each other");
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

/* ?parallelism=N on the URL: the restore's download threads (1..64). */
static int
parse_parallelism(const char *zUrl, restore_opts *o, char **pzErr)
{
    ls_url *u = NULL;
    if (url_parse(zUrl, &u, NULL) != SQLITE_OK || !u)
        return SQLITE_OK; /* the restore reports a bad URL itself */
    const char *z = url_param(u, "parallelism");
    int rc = SQLITE_OK;
    if (z) {
        char *end = NULL;
        long v = strtol(z, &end, 10);
        if (!*z || !end || *end || v < 1 || v > 64) {
            *pzErr = sqlite3_mprintf("litestream_restore: URL parameter "
                                     "parallelism must be 1 to 64, not '%s'",
                                     z);
            rc = SQLITE_ERROR;
        } else {
            o->parallel = (int)v;
        }
    }
    url_free(u);
    return rc;
}

/* The answer of a restore that was skipped on purpose. */
static void
skipped(sqlite3_context *ctx, const char *zPath, const char *zWhy)
{
    json_t *o = json_object();
    int bad = 0;
    ls_json_set(o, "path", ls_json_text(zPath), &bad);
    ls_json_set(o, "restored", json_false(), &bad);
    ls_json_set(o, "reason", ls_json_text(zWhy), &bad);
    char *zJson = bad ? NULL : ls_json_dump(o);
    json_decref(o);
    if (zJson)
        sqlite3_result_text(ctx, zJson, -1, sqlite3_free);
    else
        sqlite3_result_error_nomem(ctx);
}

static void
fn_restore(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    restore_opts o = {.parallel = 8};
    char *zJson = NULL, *zErr = NULL;
    const char *zUrl = (const char *)sqlite3_value_text(argv[0]);
    const char *zPath = (const char *)sqlite3_value_text(argv[1]);
    if (!zUrl || !zUrl[0] || !zPath || !zPath[0]) {
        sqlite3_result_error(ctx,
                             "litestream_restore(url, path[, target[, "
                             "overwrite]]): url and path are required",
                             -1);
        return;
    }
    int flags = 0, rc;
    if (argc > 2 && parse_target(argv[2], &o, &zErr) != SQLITE_OK)
        goto fail;
    if ((argc > 3 && parse_mode(argv[3], &o, &flags, &zErr) != SQLITE_OK) ||
        parse_parallelism(zUrl, &o, &zErr) != SQLITE_OK)
        goto fail;
    struct stat st;
    if ((flags & RESTORE_IF_NOT_EXISTS) && stat(zPath, &st) == 0) {
        skipped(ctx, zPath, "the database exists");
        return;
    }
    rc = restore_run(zUrl, zPath, &o, &zJson, &zErr);
    if (rc == SQLITE_NOTFOUND && (flags & RESTORE_IF_REPLICA_EXISTS) && zErr &&
        strstr(zErr, "empty or does not exist")) {
        sqlite3_free(zErr);
        skipped(ctx, zPath, "the replica is empty or does not exist");
        return;
    }
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_result_text(ctx, zJson, -1, sqlite3_free);
    return;
fail:
    sqlite3_result_error(ctx, zErr ? zErr : "litestream_restore failed", -1);
    sqlite3_free(zErr);
}

/* ---- which connections have the functions ------------------------------
 *
 * Loading the extension again into a connection that has the functions
 * (the auto-extension added them, or an earlier load did) must leave them
 * alone: replacing a function while a statement runs fails with
 * SQLITE_BUSY, and a load through SQL (SELECT load_extension(...)) is such
 * a statement.  The connections that have them are listed here; a
 * connection leaves the list when SQLite destroys its litestream_version
 * (at sqlite3_close, or if the application replaces it).  Callers hold the
 * connection's mutex (SQLite's, during a load or an open), then reg_mu,
 * never the other way round. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static sqlite3 **reg_conns;
static size_t reg_n, reg_cap;

static int
reg_has(sqlite3 *db)
{
    int found = 0;
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n && !found; i++)
        found = reg_conns[i] == db;
    pthread_mutex_unlock(&reg_mu);
    return found;
}

static int
reg_add(sqlite3 *db)
{
    int rc = SQLITE_OK;
    pthread_mutex_lock(&reg_mu);
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 16;
        sqlite3 **p = sqlite3_realloc64(reg_conns, cap * sizeof(*p));
        if (p) {
            reg_conns = p;
            reg_cap = cap;
        } else {
            rc = SQLITE_NOMEM;
        }
    }
    if (rc == SQLITE_OK)
        reg_conns[reg_n++] = db;
    pthread_mutex_unlock(&reg_mu);
    return rc;
}

/* xDestroy of litestream_version: its connection no longer has it. */
static void
reg_forget(void *pApp)
{
    pthread_mutex_lock(&reg_mu);
    for (size_t i = 0; i < reg_n; i++)
        if (reg_conns[i] == pApp) {
            reg_conns[i] = reg_conns[--reg_n];
            break;
        }
    pthread_mutex_unlock(&reg_mu);
}

int
sql_register(sqlite3 *db)
{
    static const struct {
        const char *zName;
        int nArg;
        int flags;
        void (*xFunc)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"litestream_version", 0, SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
         fn_version},
        {"litestream_status", 0, SQLITE_DIRECTONLY, fn_status},
        {"litestream_status", 1, SQLITE_DIRECTONLY, fn_status},
        {"litestream_sync", 0, SQLITE_DIRECTONLY, fn_sync},
        {"litestream_sync", 1, SQLITE_DIRECTONLY, fn_sync},
        {"litestream_sync", 2, SQLITE_DIRECTONLY, fn_sync},
        {"litestream_restore", 2, SQLITE_DIRECTONLY, fn_restore},
        {"litestream_restore", 3, SQLITE_DIRECTONLY, fn_restore},
        {"litestream_restore", 4, SQLITE_DIRECTONLY, fn_restore},
    };
    int rc = SQLITE_OK;
    if (reg_has(db))
        return SQLITE_OK; /* loaded again: keep the functions it has */
    for (size_t i = 1; i < sizeof(fns) / sizeof(fns[0]); i++) {
        rc = sqlite3_create_function_v2(db, fns[i].zName, fns[i].nArg,
                                        SQLITE_UTF8 | fns[i].flags, NULL,
                                        fns[i].xFunc, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    rc = sql_register_pitr(db);
    if (rc == SQLITE_OK)
        rc = sql_register_replica(db);
    if (rc == SQLITE_OK)
        rc = sql_register_metrics(db);
    if (rc == SQLITE_OK)
        rc = sql_register_auto(db);
    if (rc == SQLITE_OK)
        rc = reg_add(db);
    /* Last, the one whose destructor takes db off the list. */
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, fns[0].zName, fns[0].nArg,
                                        SQLITE_UTF8 | fns[0].flags, db,
                                        fns[0].xFunc, NULL, NULL, reg_forget);
    return rc;
}
