/*
 * sql/pitr.c: the point-in-time recovery SQL surface.
 *
 *   SELECT * FROM litestream_ltx('file:///var/backups/app');
 *   SELECT level, min_txid, max_txid, size, created
 *     FROM litestream_ltx('file:///var/backups/app')
 *    WHERE level = 9 ORDER BY max_txid DESC;
 *   SELECT litestream_snapshot();          -- snapshot now, returns its TXID
 *
 * litestream_ltx is an eponymous-only virtual table (a table-valued
 * function): its hidden column `url` is the argument; without one it
 * fails.  Columns: level, min_txid, max_txid (integers, usable as restore
 * targets), size (bytes), created (RFC 3339 UTC with milliseconds, so it
 * sorts as text).  The listing is taken once per scan (xFilter), one LIST
 * per level.
 *
 * Runs on the application thread running the statement; listing the
 * replica is this function's job (network I/O allowed, rule 6).
 */
#include "sql/sql.h"
#include "storage/backend/backend.h"
#include "storage/backend/layout.h"
#include "storage/base/timefmt.h"
#include "storage/restore/v03.h"
#include "vfs/registry.h"
#include "vfs/replicate.h"

#include <stdio.h>
#include <string.h>

enum {
    COL_LEVEL,
    COL_MIN,
    COL_MAX,
    COL_SIZE,
    COL_CREATED,
    COL_URL,
    COL_GEN,
    COL_WAL_INDEX,
    COL_WAL_OFFSET,
    COL_KEY
};

typedef struct ltx_vtab {
    sqlite3_vtab base;
} ltx_vtab;

typedef struct ltx_cursor {
    sqlite3_vtab_cursor base;
    ltx_info *a;
    v03_obj *v; /* a Litestream v0.3 replica's objects (when a is empty) */
    int n, nv, i;
    char *zUrl;
    const char *zLevelFmt; /* the backend's level directories (backend.h) */
} ltx_cursor;

static int
ltx_connect(sqlite3 *db, void *pAux, int argc, const char *const *argv,
            sqlite3_vtab **ppVtab, char **pzErr)
{
    ltx_vtab *v;
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(level INTEGER, "
                                      "min_txid INTEGER, max_txid INTEGER, "
                                      "size INTEGER, created TEXT, "
                                      "url HIDDEN, generation HIDDEN, "
                                      "wal_index HIDDEN, wal_offset HIDDEN, "
                                      "key HIDDEN)");
    if (rc != SQLITE_OK)
        return rc;
    v = sqlite3_malloc64(sizeof(*v));
    if (!v)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof(*v));
    sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
    *ppVtab = &v->base;
    return SQLITE_OK;
}

static int
ltx_disconnect(sqlite3_vtab *pVtab)
{
    sqlite3_free(pVtab);
    return SQLITE_OK;
}

/* The url argument must be given (an equality constraint on `url`). */
static int
ltx_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *p)
{
    int url = -1;
    for (int i = 0; i < p->nConstraint; i++) {
        if (p->aConstraint[i].iColumn != COL_URL)
            continue;
        if (!p->aConstraint[i].usable ||
            p->aConstraint[i].op != SQLITE_INDEX_CONSTRAINT_EQ)
            return SQLITE_CONSTRAINT;
        url = i;
    }
    if (url < 0) {
        sqlite3_free(pVtab->zErrMsg);
        pVtab->zErrMsg = sqlite3_mprintf("litestream_ltx(url): the replica "
                                         "URL argument is required");
        return SQLITE_ERROR;
    }
    p->aConstraintUsage[url].argvIndex = 1;
    p->aConstraintUsage[url].omit = 1;
    p->estimatedCost = 1000;
    p->estimatedRows = 1000;
    return SQLITE_OK;
}

static int
ltx_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur)
{
    ltx_cursor *c = sqlite3_malloc64(sizeof(*c));
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    *ppCur = &c->base;
    return SQLITE_OK;
}

static int
ltx_close(sqlite3_vtab_cursor *cur)
{
    ltx_cursor *c = (ltx_cursor *)cur;
    sqlite3_free(c->a);
    sqlite3_free(c->v);
    sqlite3_free(c->zUrl);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int
ltx_filter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr, int argc,
           sqlite3_value **argv)
{
    ltx_cursor *c = (ltx_cursor *)cur;
    const char *zUrl =
        argc > 0 ? (const char *)sqlite3_value_text(argv[0]) : NULL;
    backend *b = NULL;
    char *zErr = NULL;
    int rc;

    sqlite3_free(c->a);
    sqlite3_free(c->v);
    c->a = NULL;
    c->v = NULL;
    c->n = c->nv = c->i = 0;
    if (!zUrl || !zUrl[0]) {
        zErr = sqlite3_mprintf("litestream_ltx(url): the replica URL "
                               "argument is required");
        rc = SQLITE_ERROR;
        goto out;
    }
    rc = backend_open(zUrl, &b, &zErr);
    if (rc == SQLITE_OK) {
        rc = layout_list_all(b, &c->a, &c->n);
        if (rc != SQLITE_OK)
            zErr = sqlite3_mprintf("litestream_ltx: cannot list '%s': %s",
                                   backend_url(b), backend_why(b));
        else if (c->n == 0) /* no LTX file: a Litestream v0.3 replica? */
            rc = v03_list(b, &c->v, &c->nv, &zErr);
        if (rc == SQLITE_MISUSE) { /* cannot tell: no v0.3 objects */
            sqlite3_free(zErr);
            zErr = NULL;
            rc = SQLITE_OK;
        }
        c->zLevelFmt = b->vt->level_fmt; /* static: outlives the handle */
    }
out:
    backend_close(b);
    if (rc != SQLITE_OK) {
        sqlite3_free(cur->pVtab->zErrMsg);
        cur->pVtab->zErrMsg =
            zErr ? zErr : sqlite3_mprintf("%s", sqlite3_errstr(rc));
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

static int
ltx_next(sqlite3_vtab_cursor *cur)
{
    ((ltx_cursor *)cur)->i++;
    return SQLITE_OK;
}

static int
ltx_eof(sqlite3_vtab_cursor *cur)
{
    ltx_cursor *c = (ltx_cursor *)cur;
    return c->i >= (c->nv > 0 ? c->nv : c->n);
}

/* A row of a Litestream v0.3 replica: level 9 a snapshot, 0 a WAL
 * segment; no TXIDs; its generation, WAL index and offset, and key. */
static int
v03_column(const v03_obj *o, sqlite3_context *ctx, int col)
{
    char buf[160];

    switch (col) {
    case COL_LEVEL:
        sqlite3_result_int(ctx, o->snapshot ? 9 : 0);
        break;
    case COL_SIZE:
        sqlite3_result_int64(ctx, (sqlite3_int64)o->size);
        break;
    case COL_CREATED:
        sqlite3_result_text(ctx, timefmt_time(o->created_ms, buf, sizeof(buf)),
                            -1, SQLITE_TRANSIENT);
        break;
    case COL_GEN:
        sqlite3_result_text(ctx, o->gen, -1, SQLITE_TRANSIENT);
        break;
    case COL_WAL_INDEX:
        sqlite3_result_int64(ctx, o->index);
        break;
    case COL_WAL_OFFSET:
        if (!o->snapshot)
            sqlite3_result_int64(ctx, (sqlite3_int64)o->offset);
        break;
    case COL_KEY:
        v03_key(o, buf, sizeof(buf));
        sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
        break;
    default:
        sqlite3_result_null(ctx);
        break;
    }
    return SQLITE_OK;
}

static int
ltx_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
    ltx_cursor *c = (ltx_cursor *)cur;
    const ltx_info *f;
    char buf[48], key[160];

    if (c->nv > 0)
        return v03_column(&c->v[c->i], ctx, col);
    f = &c->a[c->i];
    switch (col) {
    case COL_LEVEL:
        sqlite3_result_int(ctx, f->level);
        break;
    case COL_MIN:
        sqlite3_result_int64(ctx, (sqlite3_int64)f->min_txid);
        break;
    case COL_MAX:
        sqlite3_result_int64(ctx, (sqlite3_int64)f->max_txid);
        break;
    case COL_SIZE:
        sqlite3_result_int64(ctx, (sqlite3_int64)f->size);
        break;
    case COL_CREATED:
        sqlite3_result_text(ctx, timefmt_time(f->created_ms, buf, sizeof(buf)),
                            -1, SQLITE_TRANSIENT);
        break;
    case COL_KEY:
        snprintf(key, sizeof(key), c->zLevelFmt, f->level);
        snprintf(key + strlen(key), sizeof(key) - strlen(key),
                 "%016llx-%016llx.ltx", (unsigned long long)f->min_txid,
                 (unsigned long long)f->max_txid);
        sqlite3_result_text(ctx, key, -1, SQLITE_TRANSIENT);
        break;
    default:
        sqlite3_result_null(ctx);
        break;
    }
    return SQLITE_OK;
}

static int
ltx_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid)
{
    *pRowid = ((ltx_cursor *)cur)->i + 1;
    return SQLITE_OK;
}

static const sqlite3_module ltx_module = {
    .iVersion = 0,
    .xCreate = NULL, /* eponymous-only */
    .xConnect = ltx_connect,
    .xBestIndex = ltx_best_index,
    .xDisconnect = ltx_disconnect,
    .xDestroy = ltx_disconnect,
    .xOpen = ltx_open,
    .xClose = ltx_close,
    .xFilter = ltx_filter,
    .xNext = ltx_next,
    .xEof = ltx_eof,
    .xColumn = ltx_column,
    .xRowid = ltx_rowid,
};

/* litestream_snapshot([schema]) -> TXID of the snapshot */
static void
fn_snapshot(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    sqlite3 *db = sqlite3_context_db_handle(ctx);
    const char *zSchema = argc > 0 && sqlite3_value_text(argv[0])
                              ? (const char *)sqlite3_value_text(argv[0])
                              : "main";
    sqlite3_file *f = NULL;
    ls_db *d = NULL;
    replicator *r = NULL;
    uint64_t txid = 0;
    char *zErr = NULL;

    if (sqlite3_file_control(db, zSchema, SQLITE_FCNTL_FILE_POINTER, &f) ==
        SQLITE_OK)
        d = vfs_db_of_file(f);
    r = d ? registry_replicator(d) : NULL;
    if (!r) {
        zErr = sqlite3_mprintf("litestream_snapshot: database '%s' is not "
                               "being replicated (set PRAGMA "
                               "%s.litestream_url first)",
                               zSchema, zSchema);
    } else if (replicator_snapshot(r, 60000, &txid, &zErr) == SQLITE_OK) {
        sqlite3_result_int64(ctx, (sqlite3_int64)txid);
    }
    registry_replicator_done(d, r);
    if (zErr) {
        sqlite3_result_error(ctx, zErr, -1);
        sqlite3_free(zErr);
    }
}

int
sql_register_pitr(sqlite3 *db)
{
    int rc =
        sqlite3_create_module_v2(db, "litestream_ltx", &ltx_module, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "litestream_snapshot", 0,
                                        SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                        fn_snapshot, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "litestream_snapshot", 1,
                                        SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                        fn_snapshot, NULL, NULL, NULL);
    return rc;
}
