/*
 * sql/metrics.c: litestream_metrics(), the Prometheus text exposition of
 * every database this process replicates (docs/sql.md, "Metrics").
 *
 *   SELECT litestream_metrics();
 *
 * Names and labels follow Litestream's where the meaning is the same
 * (litestream_db_size, litestream_wal_size, litestream_txid,
 * litestream_sync_count, litestream_sync_error_count, litestream_disk_full,
 * litestream_replica_operation_total and _bytes by replica_type and
 * operation); the others are ours and say so in their HELP.  Each database
 * is read through the same status the SQL function litestream_status()
 * returns (replicator_status()), so both always agree.
 *
 * Every read replica open in the process (`litestream-remote`,
 * vfs_remote_each()) adds litestream_txid and litestream_vfs_* samples
 * labelled {url="<replica, redacted>",conn="<number of the open>"}, and its
 * GETs, LISTs and bytes to litestream_replica_operation_*.
 *
 * Threads: the application thread running the statement.
 */
#include "sql/sql.h"
#include "storage/base/json.h"
#include "storage/replicate/heartbeat.h"
#include "vfs/registry.h"
#include "vfs/remote.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The metrics, in the order printed. */
enum {
    M_DB_SIZE,
    M_WAL_SIZE,
    M_TXID,
    M_REPLICATED,
    M_LAG,
    M_PENDING,
    M_SYNC,
    M_SYNC_ERR,
    M_DISK_FULL,
    M_SPOOL,
    M_FULL,
    M_COMPACT,
    M_SNAP,
    M_OPS,
    M_OPS_BYTES,
    M_VFS_LAG,
    M_VFS_REQ,
    M_VFS_BYTES,
    M_VFS_HITS,
    M_VFS_MISSES,
    M_VFS_FILE,
    M_VFS_HYD,
    M_N
};

static const struct {
    const char *zName, *zType, *zHelp;
} defs[M_N] = {
    {"litestream_db_size", "gauge", "The current size of the real DB"},
    {"litestream_wal_size", "gauge", "The current size of the real WAL"},
    {"litestream_txid", "gauge", "The current transaction ID"},
    {"litestream_replicated_txid", "gauge",
     "The newest transaction ID the replica holds"},
    {"litestream_lag_seconds", "gauge",
     "Seconds the oldest transaction not yet in the replica has waited"},
    {"litestream_pending_txns", "gauge",
     "Transactions committed but not yet in the replica"},
    {"litestream_sync_count", "counter",
     "Number of uploads to the replica performed"},
    {"litestream_sync_error_count", "counter",
     "Number of upload errors that have occurred"},
    {"litestream_disk_full", "gauge",
     "Whether the spool is full (the sidecar's disk or its limit)"},
    {"litestream_spool_bytes", "gauge",
     "Bytes of spooled transactions waiting beside the database"},
    {"litestream_full_images_total", "counter",
     "Full images uploaded (first sync, lost positions)"},
    {"litestream_compaction_count", "counter", "Compactions performed"},
    {"litestream_snapshot_count", "counter", "Snapshots uploaded"},
    {"litestream_replica_operation_total", "counter",
     "The number of replica operations performed"},
    {"litestream_replica_operation_bytes", "counter",
     "The number of bytes used by replica operations"},
    {"litestream_vfs_lag_seconds", "gauge",
     "Read replica: seconds since the newest LTX object it has seen was "
     "written"},
    {"litestream_vfs_requests_total", "counter",
     "Read replica: requests to the replica (hydration included)"},
    {"litestream_vfs_bytes_total", "counter",
     "Read replica: bytes received from the replica (hydration included)"},
    {"litestream_vfs_cache_hits_total", "counter",
     "Read replica: page reads served by its page cache"},
    {"litestream_vfs_cache_misses_total", "counter",
     "Read replica: page reads not in its page cache"},
    {"litestream_vfs_file_reads_total", "counter",
     "Read replica: page reads served by its hydration file"},
    {"litestream_vfs_hydration_progress", "gauge",
     "Read replica: share of the database in its hydration file (0..1)"},
};

/* Operation counters summed per replica type (Litestream's labels). */
#define MAX_TYPES 8
typedef struct metrics {
    sqlite3_str *m[M_N];
    struct {
        char zType[16];
        uint64_t put, get, list, del, up, down;
    } t[MAX_TYPES];
    int nt;
} metrics;

/* A label value with \, " and newlines escaped. */
static void
label(sqlite3_str *s, const char *z)
{
    for (; *z; z++) {
        if (*z == '\\' || *z == '"')
            sqlite3_str_appendchar(s, 1, '\\');
        if (*z == '\n')
            sqlite3_str_appendall(s, "\\n");
        else
            sqlite3_str_appendchar(s, 1, *z);
    }
}

static void
sample(metrics *m, int k, const char *zDb, double v)
{
    sqlite3_str_appendf(m->m[k], "%s{db=\"", defs[k].zName);
    label(m->m[k], zDb);
    sqlite3_str_appendf(m->m[k], "\"} %.17g\n", v);
}

static double
num(json_t *o, const char *zKey)
{
    json_t *v = o ? json_object_get(o, zKey) : NULL;
    if (json_is_integer(v))
        return (double)json_integer_value(v);
    if (json_is_boolean(v))
        return json_is_true(v) ? 1 : 0;
    if (json_is_string(v)) /* TXIDs are 16 hex digits */
        return (double)strtoull(json_string_value(v), NULL, 16);
    return 0;
}

static double
file_size(const char *zPath, const char *zSuffix)
{
    struct stat st;
    char *z = sqlite3_mprintf("%s%s", zPath, zSuffix);
    double v = z && stat(z, &st) == 0 ? (double)st.st_size : 0;
    sqlite3_free(z);
    return v;
}

/* Adds operations of a replica zUrl to its replica type's sums. */
static void
add_ops(metrics *m, const char *zUrl, const uint64_t v[6])
{
    char zType[16] = "file";
    if (zUrl) {
        size_t n = strcspn(zUrl, ":");
        if (n > 0 && n < sizeof(zType)) {
            memcpy(zType, zUrl, n);
            zType[n] = 0;
        }
    }
    int i = 0;
    while (i < m->nt && strcmp(m->t[i].zType, zType) != 0)
        i++;
    if (i == m->nt) {
        if (m->nt == MAX_TYPES)
            return;
        memset(&m->t[i], 0, sizeof(m->t[i]));
        memcpy(m->t[i].zType, zType, sizeof(zType));
        m->nt++;
    }
    m->t[i].put += v[0];
    m->t[i].get += v[1];
    m->t[i].list += v[2];
    m->t[i].del += v[3];
    m->t[i].up += v[4];
    m->t[i].down += v[5];
}

/* One replica's operations (o: an element of the status's "replicas", or
 * the status itself), under its own replica type. */
static void
add_replica_ops(metrics *m, json_t *o)
{
    json_t *c = json_object_get(o, "counters");
    uint64_t v[6] = {
        (uint64_t)num(c, "put"),      (uint64_t)num(c, "get"),
        (uint64_t)num(c, "list"),     (uint64_t)num(c, "delete"),
        (uint64_t)num(c, "bytes_up"), (uint64_t)num(c, "bytes_down")};
    add_ops(m, json_string_value(json_object_get(o, "url")), v);
}

/* One replicated database's operations: each replica of its URL list
 * under its own type (the status's top-level "url" is the whole list). */
static void
add_db_ops(metrics *m, json_t *o)
{
    json_t *a = json_object_get(o, "replicas");
    if (json_array_size(a) == 0) {
        add_replica_ops(m, o);
        return;
    }
    for (size_t i = 0; i < json_array_size(a); i++)
        add_replica_ops(m, json_array_get(a, i));
}

/* A read replica's sample: {url="...",conn="N"[,operation="..."]}. */
static void
sample_vfs(metrics *m, int k, const remote_metrics *r, const char *zOp,
           double v)
{
    sqlite3_str_appendf(m->m[k], "%s{url=\"", defs[k].zName);
    label(m->m[k], r->zUrl);
    sqlite3_str_appendf(m->m[k], "\",conn=\"%llu\"",
                        (unsigned long long)r->conn);
    if (zOp)
        sqlite3_str_appendf(m->m[k], ",operation=\"%s\"", zOp);
    sqlite3_str_appendf(m->m[k], "} %.17g\n", v);
}

/* One open read replica (vfs_remote_each()). */
static int
one_replica(const remote_metrics *r, void *pCtx)
{
    metrics *m = pCtx;
    const backend_counters *c = &r->st.requests;
    uint64_t v[6] = {0, c->n_get + r->hyd_get,       c->n_list, 0,
                     0, c->bytes_down + r->hyd_bytes};
    sqlite3_int64 now = 0;
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);

    vfs->xCurrentTimeInt64(vfs, &now); /* Julian day ms */
    now -= 210866760000000LL;          /* to Unix ms */
    sqlite3_str_appendf(m->m[M_TXID], "%s{url=\"", defs[M_TXID].zName);
    label(m->m[M_TXID], r->zUrl);
    sqlite3_str_appendf(m->m[M_TXID], "\",conn=\"%llu\"} %llu\n",
                        (unsigned long long)r->conn,
                        (unsigned long long)r->txid);
    sample_vfs(m, M_VFS_LAG, r, NULL,
               r->newest_ms ? (double)(now - r->newest_ms) / 1000 : 0);
    sample_vfs(m, M_VFS_REQ, r, "GET", (double)v[1]);
    sample_vfs(m, M_VFS_REQ, r, "LIST", (double)v[2]);
    sample_vfs(m, M_VFS_BYTES, r, NULL, (double)v[5]);
    sample_vfs(m, M_VFS_HITS, r, NULL, (double)r->st.cache_hits);
    sample_vfs(m, M_VFS_MISSES, r, NULL, (double)r->st.cache_misses);
    sample_vfs(m, M_VFS_FILE, r, NULL, (double)r->st.file_reads);
    if (r->hydrating)
        sample_vfs(m, M_VFS_HYD, r, NULL, r->progress);
    add_ops(m, r->zUrl, v);
    return SQLITE_OK;
}

static int
one_db(ls_db *d, void *pCtx)
{
    metrics *m = pCtx;
    replicator *r = registry_replicator(d);
    if (!r)
        return SQLITE_OK; /* not replicating */
    json_t *o = json_object();
    int rc = o ? replicator_status(r, o) : SQLITE_NOMEM;
    registry_replicator_done(d, r);
    if (rc == SQLITE_OK) {
        const char *zDb = registry_path(d);
        json_t *cp = json_object_get(o, "compaction");
        sample(m, M_DB_SIZE, zDb, file_size(zDb, ""));
        sample(m, M_WAL_SIZE, zDb, file_size(zDb, "-wal"));
        sample(m, M_TXID, zDb, num(o, "txid"));
        sample(m, M_REPLICATED, zDb, num(o, "replicated_txid"));
        sample(m, M_LAG, zDb, num(o, "lag_ms") / 1000);
        sample(m, M_PENDING, zDb, num(o, "pending_txns"));
        sample(m, M_SYNC, zDb, num(o, "uploads"));
        sample(m, M_SYNC_ERR, zDb, num(o, "errors"));
        sample(m, M_DISK_FULL, zDb, num(o, "spool_full"));
        sample(m, M_SPOOL, zDb, num(o, "spool_bytes"));
        sample(m, M_FULL, zDb, num(o, "full_images"));
        sample(m, M_COMPACT, zDb, num(cp, "compactions"));
        sample(m, M_SNAP, zDb, num(cp, "snapshots"));
        add_db_ops(m, o);
    }
    json_decref(o);
    return rc;
}

static void
ops(metrics *m)
{
    static const char *const zOp[] = {"PUT", "GET", "LIST", "DELETE"};
    for (int i = 0; i < m->nt; i++) {
        uint64_t n[4] = {m->t[i].put, m->t[i].get, m->t[i].list, m->t[i].del};
        for (int k = 0; k < 4; k++)
            sqlite3_str_appendf(m->m[M_OPS],
                                "%s{replica_type=\"%s\",operation=\"%s\"} "
                                "%llu\n",
                                defs[M_OPS].zName, m->t[i].zType, zOp[k],
                                (unsigned long long)n[k]);
        sqlite3_str_appendf(m->m[M_OPS_BYTES],
                            "%s{replica_type=\"%s\",operation=\"PUT\"} %llu\n"
                            "%s{replica_type=\"%s\",operation=\"GET\"} %llu\n",
                            defs[M_OPS_BYTES].zName, m->t[i].zType,
                            (unsigned long long)m->t[i].up,
                            defs[M_OPS_BYTES].zName, m->t[i].zType,
                            (unsigned long long)m->t[i].down);
    }
}

/* litestream_metrics() */
static void
fn_metrics(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    metrics m;
    memset(&m, 0, sizeof(m));
    sqlite3_str *out = sqlite3_str_new(NULL);
    for (int k = 0; k < M_N; k++)
        m.m[k] = sqlite3_str_new(NULL);
    int rc = registry_each(one_db, &m);
    if (rc == SQLITE_OK)
        rc = vfs_remote_each(one_replica, &m);
    ops(&m);
    uint64_t n_ok = 0, n_fail = 0;
    sqlite3_free(heartbeat_get(NULL, &n_ok, &n_fail));
    for (int k = 0; k < M_N; k++) {
        sqlite3_str_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", defs[k].zName,
                            defs[k].zHelp, defs[k].zName, defs[k].zType);
        char *z = sqlite3_str_finish(m.m[k]); /* NULL: no samples */
        sqlite3_str_appendall(out, z ? z : "");
        sqlite3_free(z);
    }
    sqlite3_str_appendf(out,
                        "# HELP litestream_heartbeat_total Heartbeat GETs "
                        "by result\n# TYPE litestream_heartbeat_total "
                        "counter\nlitestream_heartbeat_total{result=\"ok\"} "
                        "%llu\nlitestream_heartbeat_total{result=\"error\"} "
                        "%llu\n",
                        (unsigned long long)n_ok, (unsigned long long)n_fail);
    if (rc == SQLITE_OK)
        rc = sqlite3_str_errcode(out);
    char *zOut = sqlite3_str_finish(out);
    if (rc != SQLITE_OK || !zOut) {
        sqlite3_free(zOut);
        sqlite3_result_error_code(ctx, rc == SQLITE_OK ? SQLITE_NOMEM : rc);
        return;
    }
    sqlite3_result_text(ctx, zOut, -1, sqlite3_free);
}

int
sql_register_metrics(sqlite3 *db)
{
    return sqlite3_create_function_v2(db, "litestream_metrics", 0,
                                      SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                      fn_metrics, NULL, NULL, NULL);
}
