/*
 * storage/backend/azure.c: the abs backend (backend.h): Azure Blob Storage
 * block blobs over the REST client of storage/backend/azure_client.c.
 *
 *   abs://ACCOUNT@CONTAINER/PATH[?endpoint=URL&block_size=16MiB]
 *
 * Blobs live at "<path>/ltx/<level>/<min>-<max>.ltx" (Litestream v0.5's
 * layout for abs; storage/backend/layout.c), each with the metadata
 * x-ms-meta-litestreamtimestamp (its creation time, Go RFC3339Nano), which
 * List Blobs returns with include=metadata, so listings carry exact times.
 *
 * Invariants:
 *   1. put() is atomic: one Put Blob up to block_size, else Put Block on
 *      up to `concurrency` threads and one Put Block List, which is when the
 *      blob appears.  A failed upload leaves only uncommitted blocks,
 *      which no reader sees and Azure discards (after a week, or at the
 *      next Put Block List of that name); none is ever committed.
 *   2. Listings page with markers until NextMarker is empty and return
 *      names relative to the listed prefix, in name order.
 *   3. A missing blob is not an error for del().
 *
 * Threads: one caller thread per handle (backend.h); an upload in blocks
 * runs them on threads of its own.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/backend/azure_client.h"
#include "storage/backend/backend.h"
#include "storage/backend/objstore.h"
#include "storage/backend/s3_client.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"

#define AZ_META "x-ms-meta-litestreamtimestamp"

typedef struct az_backend {
    backend base;
    az_client c;
    char *zErr;
} az_backend;

static int
azb_err(az_backend *ab, int rc, char *zMsg)
{
    sqlite3_free(ab->zErr);
    ab->zErr =
        zMsg ? zMsg : sqlite3_mprintf("litestream: %s", sqlite3_errstr(rc));
    return rc;
}

/* "<prefix>/<key>" (or key when the prefix is empty). */
static char *
azb_name(const az_backend *ab, const char *key)
{
    return sqlite3_mprintf("%s%s%s", ab->c.prefix, ab->c.prefix[0] ? "/" : "",
                           key);
}

static int
azb_call(az_backend *ab, const az_call *call, http_resp *resp)
{
    char *zErr = NULL;
    int rc = az_call_do(&ab->c, call, resp, &zErr);

    return rc != SQLITE_OK ? azb_err(ab, rc, zErr) : rc;
}

/* --- put ------------------------------------------------------------- */

typedef struct az_body {
    const uint8_t *data;
    int fd;
    uint64_t n;
} az_body;

/* One upload in blocks. */
typedef struct az_blocks {
    az_backend *ab;
    const char *zName;
    const az_body *body;
    int nBlock;
    pthread_mutex_t mu;
    int next;
    int rc;
    char *zErr;
} az_blocks;

/* The id of block i: base64 of a fixed-width text, as Azure requires all
 * ids of a blob to have one length. */
static char *
azb_block_id(int i)
{
    char z[16];
    snprintf(z, sizeof(z), "ls-%08d", i);
    return sigv4_base64(z, strlen(z), 0);
}

static int
azb_block(az_blocks *m, int i)
{
    uint64_t bs = m->ab->c.block_size, off = (uint64_t)i * bs;
    uint64_t len = m->body->n - off < bs ? m->body->n - off : bs;
    char *zId = azb_block_id(i), *zErr = NULL;
    sigv4_pair q[] = {{"comp", "block"}, {"blockid", zId ? zId : ""}};
    sigv4_pair h[] = {{"Content-Type", "application/octet-stream"}};
    az_call call = {
        .method = "PUT",
        .blob = m->zName,
        .query = q,
        .nquery = 2,
        .headers = h,
        .nheader = 1,
        .body = m->body->data ? m->body->data + off : NULL,
        .body_fd = m->body->fd,
        .body_off = m->body->data ? 0 : off,
        .nbody = len,
    };
    http_resp resp;
    int rc = zId ? az_call_do(&m->ab->c, &call, &resp, &zErr) : SQLITE_NOMEM;

    if (zId)
        http_resp_clear(&resp);
    sqlite3_free(zId);
    if (rc != SQLITE_OK) {
        pthread_mutex_lock(&m->mu);
        if (m->rc == SQLITE_OK) {
            m->rc = rc;
            m->zErr = zErr;
            zErr = NULL;
        }
        pthread_mutex_unlock(&m->mu);
    }
    sqlite3_free(zErr);
    return rc;
}

static void *
azb_block_worker(void *arg)
{
    az_blocks *m = arg;

    for (;;) {
        pthread_mutex_lock(&m->mu);
        int i = m->rc == SQLITE_OK && m->next < m->nBlock ? m->next++ : -1;
        pthread_mutex_unlock(&m->mu);
        if (i < 0 || azb_block(m, i) != SQLITE_OK)
            return NULL;
    }
}

/* Put Block List of blocks 0..n-1, with the creation time. */
static int
azb_commit(az_backend *ab, const char *zName, int n, const char *zTime)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    sigv4_pair q[] = {{"comp", "blocklist"}};
    sigv4_pair h[] = {{"Content-Type", "application/xml"},
                      {AZ_META, zTime},
                      {"x-ms-blob-content-type", "application/octet-stream"}};
    http_resp resp;
    char *zBody;
    int rc;

    sqlite3_str_appendall(s, "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                             "<BlockList>");
    for (int i = 0; i < n; i++) {
        char *zId = azb_block_id(i);
        sqlite3_str_appendf(s, "<Latest>%s</Latest>", zId ? zId : "");
        if (zId == NULL)
            sqlite3_str_reset(s);
        sqlite3_free(zId);
    }
    sqlite3_str_appendall(s, "</BlockList>");
    zBody = sqlite3_str_finish(s);
    if (zBody == NULL || strstr(zBody, "<BlockList>") == NULL) {
        sqlite3_free(zBody);
        return azb_err(ab, SQLITE_NOMEM, NULL);
    }
    az_call call = {.method = "PUT",
                    .blob = zName,
                    .query = q,
                    .nquery = 1,
                    .headers = h,
                    .nheader = 3,
                    .body = zBody,
                    .nbody = strlen(zBody)};
    rc = azb_call(ab, &call, &resp);
    http_resp_clear(&resp);
    sqlite3_free(zBody);
    return rc;
}

static int
azb_put_blocks(az_backend *ab, const char *zName, const az_body *body,
               const char *zTime)
{
    az_blocks m = {.ab = ab, .zName = zName, .body = body};
    pthread_t th[64];
    int nth, k;

    m.nBlock = (int)((body->n + ab->c.block_size - 1) / ab->c.block_size);
    if (m.nBlock > 50000)
        return azb_err(ab, SQLITE_TOOBIG,
                       sqlite3_mprintf("litestream: '%s' needs %d blocks "
                                       "(Azure allows 50000): raise "
                                       "block_size",
                                       zName, m.nBlock));
    pthread_mutex_init(&m.mu, NULL);
    nth = ab->c.block_parallel < m.nBlock ? ab->c.block_parallel : m.nBlock;
    for (k = 0; k < nth - 1; k++)
        if (pthread_create(&th[k], NULL, azb_block_worker, &m) != 0)
            break;
    azb_block_worker(&m); /* this thread works too */
    while (k-- > 0)
        pthread_join(th[k], NULL);
    pthread_mutex_destroy(&m.mu);
    if (m.rc != SQLITE_OK)
        return azb_err(ab, m.rc, m.zErr);
    return azb_commit(ab, zName, m.nBlock, zTime);
}

static int
azb_put_body(az_backend *ab, const char *key, const az_body *body,
             int64_t created_ms)
{
    char zTime[40];
    char *zName = azb_name(ab, key);
    http_resp resp;
    int rc;

    if (zName == NULL)
        return azb_err(ab, SQLITE_NOMEM, NULL);
    s3_format_time(created_ms > 0 ? created_ms : 0, zTime, sizeof(zTime));
    if (body->n > ab->c.block_size) {
        rc = azb_put_blocks(ab, zName, body, zTime);
    } else {
        sigv4_pair h[] = {{"Content-Type", "application/octet-stream"},
                          {"x-ms-blob-type", "BlockBlob"},
                          {AZ_META, zTime}};
        az_call call = {.method = "PUT",
                        .blob = zName,
                        .headers = h,
                        .nheader = 3,
                        .body = body->data,
                        .body_fd = body->fd,
                        .nbody = body->n};
        rc = azb_call(ab, &call, &resp);
        http_resp_clear(&resp);
    }
    sqlite3_free(zName);
    return rc;
}

static int
azb_put(backend *b, const char *key, const void *data, size_t n,
        int64_t created_ms)
{
    az_body body = {
        .data = data ? data : (const uint8_t *)"", .fd = -1, .n = n};
    return azb_put_body((az_backend *)b, key, &body, created_ms);
}

static int
azb_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
             int64_t created_ms)
{
    az_backend *ab = (az_backend *)b;
    az_body body = {.fd = open(zSrc, O_RDONLY | O_CLOEXEC), .n = n};
    int rc;

    if (body.fd < 0)
        return azb_err(ab, SQLITE_IOERR,
                       sqlite3_mprintf("litestream: cannot open '%s' to "
                                       "upload it",
                                       zSrc));
    rc = azb_put_body(ab, key, &body, created_ms);
    close(body.fd);
    return rc;
}

/* --- get, list, delete ------------------------------------------------ */

static int
azb_get(backend *b, const char *key, uint64_t offset, uint64_t len,
        uint8_t **out, size_t *nOut)
{
    az_backend *ab = (az_backend *)b;
    char zRange[64];
    http_resp resp;
    char *zName = azb_name(ab, key);
    int rc, ranged = offset > 0 || len != UINT64_MAX;

    *out = NULL;
    *nOut = 0;
    if (zName == NULL)
        return azb_err(ab, SQLITE_NOMEM, NULL);
    if (len == 0) {
        sqlite3_free(zName);
        *out = sqlite3_malloc(1);
        return *out ? SQLITE_OK : azb_err(ab, SQLITE_NOMEM, NULL);
    }
    objstore_range(offset, len, zRange, sizeof(zRange));
    sigv4_pair h[] = {{"x-ms-range", zRange}};
    az_call call = {
        .method = "GET", .blob = zName, .headers = h, .nheader = ranged};
    rc = azb_call(ab, &call, &resp);
    if (rc == SQLITE_ERROR && resp.status == 416) {
        rc = SQLITE_OK; /* the range starts past the end */
        resp.nbody = 0;
    } else if (rc == SQLITE_NOTFOUND) {
        azb_err(ab, rc,
                sqlite3_mprintf("litestream: object '%s' not found in '%s'",
                                key, backend_url(b)));
    }
    if (rc == SQLITE_OK &&
        objstore_take_body(&resp, ranged, offset, len, out, nOut) != SQLITE_OK)
        rc = azb_err(ab, SQLITE_NOMEM, NULL);
    http_resp_clear(&resp);
    sqlite3_free(zName);
    return rc;
}

/*
 * Conditional writes (backend.h): the version is the blob's ETag; a put
 * sends If-None-Match: * (create) or If-Match: ETAG (replace), which Azure
 * (and Azurite) enforce: 409 BlobAlreadyExists or 412 ConditionNotMet.
 */
static int
azb_get_ver(backend *b, const char *key, uint8_t **out, size_t *nOut,
            char **pzVer)
{
    az_backend *ab = (az_backend *)b;
    char zTag[256];
    http_resp resp = {0};
    char *zName = azb_name(ab, key);
    az_call call = {.method = "GET", .blob = zName};
    int rc = zName ? azb_call(ab, &call, &resp) : SQLITE_NOMEM;

    *out = NULL;
    *nOut = 0;
    *pzVer = NULL;
    if (rc == SQLITE_OK && !http_resp_header(&resp, "ETag", zTag, sizeof(zTag)))
        rc = azb_err(ab, SQLITE_IOERR,
                     sqlite3_mprintf("litestream: Azure sent no ETag for "
                                     "'%s'",
                                     key));
    if (rc == SQLITE_OK &&
        ((*pzVer = sqlite3_mprintf("%s", zTag)) == NULL ||
         objstore_take_body(&resp, 0, 0, UINT64_MAX, out, nOut) != SQLITE_OK))
        rc = azb_err(ab, SQLITE_NOMEM, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_free(*pzVer);
        *pzVer = NULL;
    }
    http_resp_clear(&resp);
    sqlite3_free(zName);
    return rc;
}

static int
azb_put_if(backend *b, const char *key, const void *data, size_t n,
           const char *zVer, char **pzVer)
{
    az_backend *ab = (az_backend *)b;
    char zTag[256];
    http_resp resp = {0};
    char *zName = azb_name(ab, key);
    sigv4_pair h[] = {{"Content-Type", "application/json"},
                      {"x-ms-blob-type", "BlockBlob"},
                      {zVer ? "If-Match" : "If-None-Match", zVer ? zVer : "*"}};
    az_call call = {.method = "PUT",
                    .blob = zName,
                    .headers = h,
                    .nheader = 3,
                    .body = data,
                    .body_fd = -1,
                    .nbody = n};
    int rc = zName ? azb_call(ab, &call, &resp) : SQLITE_NOMEM;

    *pzVer = NULL;
    if (rc != SQLITE_OK &&
        (resp.status == 409 || resp.status == 412 || rc == SQLITE_NOTFOUND))
        rc = SQLITE_CONSTRAINT;
    else if (rc == SQLITE_OK &&
             (!http_resp_header(&resp, "ETag", zTag, sizeof(zTag)) ||
              (*pzVer = sqlite3_mprintf("%s", zTag)) == NULL))
        rc = azb_err(ab, SQLITE_IOERR,
                     sqlite3_mprintf("litestream: Azure sent no ETag for "
                                     "'%s'",
                                     key));
    http_resp_clear(&resp);
    sqlite3_free(zName);
    return rc;
}

/* One List Blobs request; the marker of the next page into *pzNext. */
static int
azb_list_one(void *ctx, const char *zPrefix, int deep, const char *zMarker,
             backend_obj **objs, int *n, int *nAlloc, char **pzNext)
{
    az_backend *ab = ctx;
    char zMax[16];
    sigv4_pair q[7];
    int nq = 0, rc;
    http_resp resp = {0};
    char *zErr = NULL;

    *pzNext = NULL;
    q[nq++] = (sigv4_pair){"restype", "container"};
    q[nq++] = (sigv4_pair){"comp", "list"};
    q[nq++] = (sigv4_pair){"prefix", zPrefix};
    q[nq++] = (sigv4_pair){"include", "metadata"};
    if (!deep)
        q[nq++] = (sigv4_pair){"delimiter", "/"};
    if (ab->c.max_results) {
        snprintf(zMax, sizeof(zMax), "%d", ab->c.max_results);
        q[nq++] = (sigv4_pair){"maxresults", zMax};
    }
    if (zMarker)
        q[nq++] = (sigv4_pair){"marker", zMarker};
    az_call call = {.method = "GET", .query = q, .nquery = nq};
    rc = azb_call(ab, &call, &resp);
    if (rc == SQLITE_OK)
        rc = az_list_decode((const char *)resp.body, resp.nbody,
                            strlen(zPrefix), objs, n, nAlloc, pzNext, &zErr);
    if (rc == SQLITE_CORRUPT)
        rc = azb_err(ab, SQLITE_IOERR,
                     sqlite3_mprintf("litestream: bad listing from container "
                                     "'%s': %s",
                                     ab->c.container,
                                     zErr ? zErr : "malformed"));
    else if (rc == SQLITE_NOMEM)
        rc = azb_err(ab, SQLITE_NOMEM, NULL);
    sqlite3_free(zErr);
    http_resp_clear(&resp);
    return rc;
}

static int
azb_list_pages(backend *b, const char *prefix, int deep, backend_obj **objs,
               int *n)
{
    az_backend *ab = (az_backend *)b;
    char *zPrefix = azb_name(ab, prefix), *zErr = NULL;
    int rc;

    *objs = NULL;
    *n = 0;
    if (zPrefix == NULL)
        return azb_err(ab, SQLITE_NOMEM, NULL);
    rc = objstore_list_pages(azb_list_one, ab, zPrefix, deep, objs, n, &zErr);
    if (zErr)
        azb_err(ab, rc, zErr);
    sqlite3_free(zPrefix);
    return rc;
}

static int
azb_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return azb_list_pages(b, prefix, 0, objs, n);
}

static int
azb_list_tree(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return azb_list_pages(b, prefix, 1, objs, n);
}

static int
azb_del(backend *b, const char *const *keys, int n)
{
    az_backend *ab = (az_backend *)b;
    int rc = SQLITE_OK;

    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        char *zName = azb_name(ab, keys[i]);
        az_call call = {.method = "DELETE", .blob = zName};
        http_resp resp = {0};
        if (zName == NULL)
            return azb_err(ab, SQLITE_NOMEM, NULL);
        rc = azb_call(ab, &call, &resp);
        if (rc == SQLITE_NOTFOUND)
            rc = SQLITE_OK; /* already gone */
        http_resp_clear(&resp);
        sqlite3_free(zName);
    }
    return rc;
}

static const char *
azb_errmsg(backend *b)
{
    az_backend *ab = (az_backend *)b;
    return ab->zErr ? ab->zErr : "not an error";
}

static const backend_counters *
azb_counters(backend *b)
{
    return &((az_backend *)b)->c.counters;
}

static void
azb_close(backend *b)
{
    az_backend *ab = (az_backend *)b;

    if (ab == NULL)
        return;
    az_client_clear(&ab->c);
    sqlite3_free(ab->zErr);
    sqlite3_free(ab->base.url);
    sqlite3_free(ab);
}

static int
azb_open(const ls_url *u, backend **out, char **pzErr)
{
    az_backend *ab = sqlite3_malloc64(sizeof(*ab));
    int rc;

    *out = NULL;
    if (ab == NULL)
        return SQLITE_NOMEM;
    memset(ab, 0, sizeof(*ab));
    ab->base.vt = &backend_abs_vtab;
    rc = az_client_init(&ab->c, u, pzErr);
    if (rc != SQLITE_OK) {
        azb_close(&ab->base);
        return rc;
    }
    *out = &ab->base;
    return SQLITE_OK;
}

static const char *
azb_credential(backend *b)
{
    return az_credential(&((az_backend *)b)->c);
}

const backend_vtab backend_abs_vtab = {
    .name = "abs",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC | BACKEND_CAP_EXACT_TIME,
    .level_fmt = "ltx/%d/",
    .open = azb_open,
    .close = azb_close,
    .put = azb_put,
    .put_file = azb_put_file,
    .get = azb_get,
    .list = azb_list,
    .list_tree = azb_list_tree,
    .del = azb_del,
    .errmsg = azb_errmsg,
    .counters = azb_counters,
    .credential = azb_credential,
    .get_ver = azb_get_ver,
    .put_if = azb_put_if,
};
