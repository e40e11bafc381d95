/*
 * storage/backend/s3.c: the s3 and gs backends (backend.h) over the S3
 * REST client of storage/backend/s3_client.c.
 *
 *   s3://bucket/path?endpoint=URL&region=R&force_path_style=true
 *   gs://bucket/path            (GCS XML API, HMAC keys)
 *   oss://bucket/path           (Alibaba OSS, S3-compatible API)
 *
 * Objects live at "<path>/<key>"; the layout (storage/backend/layout.c) gives
 * keys
 * "<level %04x>/<min>-<max>.ltx" for s3 and "ltx/<level>/..." for gs, as
 * Litestream v0.5 writes them (docs/ltx-format.md 2.1).  Every object carries
 * x-amz-meta-litestream-timestamp (its creation time, Go RFC3339Nano).
 *
 * Invariants:
 *   1. put() is atomic: one PUT up to part_size, else a multipart upload
 *      whose object appears only at CompleteMultipartUpload; a failed
 *      multipart upload is aborted (where the server supports it).
 *   2. A completion that failed or whose answer was lost (the retry then
 *      hears NoSuchUpload or an error) is checked with a HEAD: the object
 *      is there with this put's size and creation time, or the put fails.
 *   3. Listings page with continuation tokens until IsTruncated is false,
 *      and return keys relative to the listed prefix, in S3 key order
 *      (which is (min, max) TXID order for LTX names).
 *   4. Deletions go 1000 keys per multi-delete request.
 *
 * Threads: one caller thread per handle (backend.h); a multipart upload
 * runs its parts on up to `concurrency` threads of its own.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/backend/backend.h"
#include "storage/backend/objstore.h"
#include "storage/backend/s3_client.h"
#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"
#include "storage/backend/url.h"
#include "storage/backend/xml.h"

typedef struct s3_backend {
    backend base;
    s3_client c;
    char *zErr;
} s3_backend;

static int
s3b_err(s3_backend *sb, int rc, char *zMsg)
{
    sqlite3_free(sb->zErr);
    sb->zErr =
        zMsg ? zMsg : sqlite3_mprintf("litestream: %s", sqlite3_errstr(rc));
    return rc;
}

/* "<prefix>/<key>" (or key when the prefix is empty). */
static char *
s3b_key(const s3_backend *sb, const char *key)
{
    return sqlite3_mprintf("%s%s%s", sb->c.prefix, sb->c.prefix[0] ? "/" : "",
                           key);
}

/* Runs a call and records its failure on the handle. */
static int
s3b_call(s3_backend *sb, const s3_call *call, http_resp *resp)
{
    char *zErr = NULL;
    int rc = s3_call_do(&sb->c, call, resp, &zErr);

    if (rc != SQLITE_OK)
        return s3b_err(sb, rc, zErr);
    return rc;
}

/* --- put ------------------------------------------------------------- */

/* The body of a put: memory, or a file descriptor. */
typedef struct s3_body {
    const uint8_t *data;
    int fd;
    uint64_t n;
} s3_body;

static int
s3b_put_one(s3_backend *sb, const char *zKey, const s3_body *body,
            const char *zTime)
{
    sigv4_pair h[] = {{"x-amz-meta-litestream-timestamp", zTime}};
    s3_call call = {
        .method = "PUT",
        .key = zKey,
        .headers = h,
        .nheader = 1,
        .body = body->data,
        .body_fd = body->fd,
        .nbody = body->n,
        .unsigned_payload = body->data == NULL,
    };
    http_resp resp;
    int rc = s3b_call(sb, &call, &resp);

    http_resp_clear(&resp);
    return rc;
}

/* A multipart upload in progress. */
typedef struct s3_mpu {
    s3_backend *sb;
    const char *zKey;
    const char *zUpload;
    const s3_body *body;
    const char *zTime; /* the object's creation time, as sent */
    int nPart;
    char **azEtag; /* per part */
    pthread_mutex_t mu;
    int next; /* next part to send */
    int rc;   /* first failure */
    char *zErr;
} s3_mpu;

static int
mpu_part(s3_mpu *m, int i)
{
    const s3_client *c = &m->sb->c;
    uint64_t off = (uint64_t)i * c->part_size;
    uint64_t len =
        m->body->n - off < c->part_size ? m->body->n - off : c->part_size;
    char zNum[16], zEtag[256];
    snprintf(zNum, sizeof(zNum), "%d", i + 1);
    sigv4_pair q[] = {{"partNumber", zNum}, {"uploadId", m->zUpload}};
    s3_call call = {
        .method = "PUT",
        .key = m->zKey,
        .query = q,
        .nquery = 2,
        .body = m->body->data ? m->body->data + off : NULL,
        .body_fd = m->body->fd,
        .body_off = m->body->data ? 0 : off,
        .nbody = len,
        .unsigned_payload = m->body->data == NULL,
    };
    http_resp resp;
    char *zErr = NULL;
    int rc = s3_call_do(&m->sb->c, &call, &resp, &zErr);

    if (rc == SQLITE_OK) {
        if (http_resp_header(&resp, "ETag", zEtag, sizeof(zEtag)) == NULL)
            zEtag[0] = 0;
        m->azEtag[i] = sqlite3_mprintf("%s", zEtag);
        rc = m->azEtag[i] ? SQLITE_OK : SQLITE_NOMEM;
    }
    http_resp_clear(&resp);
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
mpu_worker(void *arg)
{
    s3_mpu *m = arg;

    for (;;) {
        pthread_mutex_lock(&m->mu);
        int i = m->rc == SQLITE_OK && m->next < m->nPart ? m->next++ : -1;
        pthread_mutex_unlock(&m->mu);
        if (i < 0 || mpu_part(m, i) != SQLITE_OK)
            return NULL;
    }
}

/* Sends every part on up to `concurrency` threads. */
static int
mpu_send_parts(s3_mpu *m)
{
    pthread_t th[64];
    int nth = m->sb->c.part_parallel, k = 0;

    if (nth > m->nPart)
        nth = m->nPart;
    for (k = 0; k < nth - 1; k++)
        if (pthread_create(&th[k], NULL, mpu_worker, m) != 0)
            break;
    mpu_worker(m); /* this thread works too */
    while (k-- > 0)
        pthread_join(th[k], NULL);
    return m->rc;
}

/*
 * After a completion that failed or whose answer was lost: is the object at
 * zKey the one this put sent?  Its size and the creation time it carries
 * (x-amz-meta-litestream-timestamp, which names this put) must match; an
 * older object of the same size is not enough.
 */
static int
s3b_is_ours(s3_backend *sb, const char *zKey, uint64_t n, const char *zTime)
{
    s3_call call = {.method = "HEAD", .key = zKey};
    http_resp resp;
    char zLen[32], zMeta[64];
    int ok;

    ok = s3_call_do(&sb->c, &call, &resp, NULL) == SQLITE_OK &&
         http_resp_header(&resp, "Content-Length", zLen, sizeof(zLen)) &&
         strtoull(zLen, NULL, 10) == n &&
         http_resp_header(&resp, "x-amz-meta-litestream-timestamp", zMeta,
                          sizeof(zMeta)) &&
         strcmp(zMeta, zTime) == 0;
    http_resp_clear(&resp);
    return ok;
}

static int
mpu_complete(s3_mpu *m)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    sigv4_pair q[] = {{"uploadId", m->zUpload}};
    http_resp resp;
    char *zBody, *zErr = NULL;
    int rc, i;

    sqlite3_str_appendall(s, "<CompleteMultipartUpload>");
    for (i = 0; i < m->nPart; i++) {
        char *zE = xml_escape(m->azEtag[i]);
        sqlite3_str_appendf(s,
                            "<Part><PartNumber>%d</PartNumber>"
                            "<ETag>%s</ETag></Part>",
                            i + 1, zE ? zE : "");
        sqlite3_free(zE);
    }
    sqlite3_str_appendall(s, "</CompleteMultipartUpload>");
    zBody = sqlite3_str_finish(s);
    if (zBody == NULL)
        return s3b_err(m->sb, SQLITE_NOMEM, NULL);
    s3_call call = {.method = "POST",
                    .key = m->zKey,
                    .query = q,
                    .nquery = 1,
                    .body = zBody,
                    .nbody = strlen(zBody)};
    rc = s3_call_do(&m->sb->c, &call, &resp, &zErr);
    /* S3 may answer 200 with an <Error> body to a completion. */
    if (rc == SQLITE_OK && resp.body && strstr((char *)resp.body, "<Error>")) {
        rc = SQLITE_IOERR;
        zErr = sqlite3_mprintf("litestream: S3 completing the upload of '%s' "
                               "failed: %s",
                               m->zKey, (char *)resp.body);
    }
    if (rc != SQLITE_OK && rc != SQLITE_NOMEM &&
        s3b_is_ours(m->sb, m->zKey, m->body->n, m->zTime)) {
        rc = SQLITE_OK; /* an earlier attempt's completion went through */
    }
    http_resp_clear(&resp);
    sqlite3_free(zBody);
    if (rc != SQLITE_OK)
        return s3b_err(m->sb, rc, zErr);
    sqlite3_free(zErr);
    return SQLITE_OK;
}

static void
mpu_abort(s3_mpu *m)
{
    sigv4_pair q[] = {{"uploadId", m->zUpload}};
    s3_call call = {
        .method = "DELETE", .key = m->zKey, .query = q, .nquery = 1};
    http_resp resp;

    s3_call_do(&m->sb->c, &call, &resp, NULL); /* 405 on s3rver: ignored */
    http_resp_clear(&resp);
}

/* POST ?uploads: the upload id into *pzUpload. */
static int
mpu_start(s3_backend *sb, const char *zKey, const char *zTime, char **pzUpload)
{
    sigv4_pair q[] = {{"uploads", ""}};
    sigv4_pair h[] = {{"x-amz-meta-litestream-timestamp", zTime}};
    s3_call call = {.method = "POST",
                    .key = zKey,
                    .query = q,
                    .nquery = 1,
                    .headers = h,
                    .nheader = 1};
    xml_node *x = NULL;
    http_resp resp;
    const char *zId;
    int rc = s3b_call(sb, &call, &resp);

    *pzUpload = NULL;
    if (rc == SQLITE_OK) {
        zId = xml_parse((char *)resp.body, resp.nbody, &x, NULL) == SQLITE_OK
                  ? xml_text(x, "UploadId")
                  : NULL;
        if (zId == NULL || zId[0] == 0)
            rc = s3b_err(sb, SQLITE_IOERR,
                         sqlite3_mprintf("litestream: S3 did not return an "
                                         "UploadId for '%s'",
                                         zKey));
        else if ((*pzUpload = sqlite3_mprintf("%s", zId)) == NULL)
            rc = SQLITE_NOMEM;
    }
    xml_free(x);
    http_resp_clear(&resp);
    return rc;
}

static int
s3b_put_multipart(s3_backend *sb, const char *zKey, const s3_body *body,
                  const char *zTime)
{
    s3_mpu m = {.sb = sb, .zKey = zKey, .body = body, .zTime = zTime};
    int rc, i;
    char *zUpload = NULL;

    m.nPart = (int)((body->n + sb->c.part_size - 1) / sb->c.part_size);
    if (m.nPart > 10000)
        return s3b_err(sb, SQLITE_TOOBIG,
                       sqlite3_mprintf("litestream: '%s' needs %d parts "
                                       "(S3 allows 10000): raise part_size",
                                       zKey, m.nPart));
    rc = mpu_start(sb, zKey, zTime, &zUpload);
    if (rc != SQLITE_OK)
        return rc;
    m.zUpload = zUpload;
    m.azEtag = sqlite3_malloc64(sizeof(char *) * (uint64_t)m.nPart);
    if (m.azEtag == NULL) {
        rc = s3b_err(sb, SQLITE_NOMEM, NULL);
        goto out;
    }
    memset(m.azEtag, 0, sizeof(char *) * (size_t)m.nPart);
    pthread_mutex_init(&m.mu, NULL);
    rc = mpu_send_parts(&m);
    pthread_mutex_destroy(&m.mu);
    if (rc != SQLITE_OK) {
        s3b_err(sb, rc, m.zErr);
        m.zErr = NULL;
    } else {
        rc = mpu_complete(&m);
    }
out:
    if (rc != SQLITE_OK && rc != SQLITE_NOMEM)
        mpu_abort(&m);
    for (i = 0; m.azEtag && i < m.nPart; i++)
        sqlite3_free(m.azEtag[i]);
    sqlite3_free(m.azEtag);
    sqlite3_free(m.zErr);
    sqlite3_free(zUpload);
    return rc;
}

static int
s3b_put_body(s3_backend *sb, const char *key, const s3_body *body,
             int64_t created_ms)
{
    char zTime[40];
    char *zKey = s3b_key(sb, key);
    int rc;

    if (zKey == NULL)
        return s3b_err(sb, SQLITE_NOMEM, NULL);
    s3_format_time(created_ms > 0 ? created_ms : 0, zTime, sizeof(zTime));
    if (body->n <= sb->c.part_size)
        rc = s3b_put_one(sb, zKey, body, zTime);
    else
        rc = s3b_put_multipart(sb, zKey, body, zTime);
    sqlite3_free(zKey);
    return rc;
}

static int
s3b_put(backend *b, const char *key, const void *data, size_t n,
        int64_t created_ms)
{
    s3_body body = {
        .data = data ? data : (const uint8_t *)"", .fd = -1, .n = n};
    return s3b_put_body((s3_backend *)b, key, &body, created_ms);
}

static int
s3b_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
             int64_t created_ms)
{
    s3_backend *sb = (s3_backend *)b;
    s3_body body = {
        .data = NULL, .fd = open(zSrc, O_RDONLY | O_CLOEXEC), .n = n};
    int rc;

    if (body.fd < 0)
        return s3b_err(sb, SQLITE_IOERR,
                       sqlite3_mprintf("litestream: cannot open '%s' to "
                                       "upload it",
                                       zSrc));
    rc = s3b_put_body(sb, key, &body, created_ms);
    close(body.fd);
    return rc;
}

/* --- get, list, delete ---------------------------------------------------- */

static int
s3b_get(backend *b, const char *key, uint64_t offset, uint64_t len,
        uint8_t **out, size_t *nOut)
{
    s3_backend *sb = (s3_backend *)b;
    char zRange[64];
    sigv4_pair h[1];
    http_resp resp;
    char *zKey = s3b_key(sb, key);
    int rc, ranged = offset > 0 || len != UINT64_MAX;

    *out = NULL;
    *nOut = 0;
    if (zKey == NULL)
        return s3b_err(sb, SQLITE_NOMEM, NULL);
    if (len == 0) { /* an empty range is not expressible in HTTP */
        sqlite3_free(zKey);
        *out = sqlite3_malloc(1);
        return *out ? SQLITE_OK : s3b_err(sb, SQLITE_NOMEM, NULL);
    }
    objstore_range(offset, len, zRange, sizeof(zRange));
    h[0] = (sigv4_pair){"Range", zRange};
    s3_call call = {
        .method = "GET", .key = zKey, .headers = h, .nheader = ranged ? 1 : 0};
    rc = s3b_call(sb, &call, &resp);
    if (rc == SQLITE_ERROR && resp.status == 416) {
        rc = SQLITE_OK; /* range starts past the end: nothing there */
        resp.nbody = 0;
    } else if (rc == SQLITE_NOTFOUND) {
        s3b_err(sb, rc,
                sqlite3_mprintf("litestream: object '%s' not found "
                                "in '%s'",
                                key, backend_url(b)));
    }
    if (rc == SQLITE_OK &&
        objstore_take_body(&resp, ranged, offset, len, out, nOut) != SQLITE_OK)
        rc = s3b_err(sb, SQLITE_NOMEM, NULL);
    http_resp_clear(&resp);
    sqlite3_free(zKey);
    return rc;
}

/* Appends the <Contents> of one ListObjectsV2 page to *objs. */
static int
s3b_list_page(s3_backend *sb, const xml_node *root, size_t nPrefix,
              backend_obj **objs, int *n, int *nAlloc)
{
    const xml_node *x;

    for (x = xml_child(root, "Contents"); x; x = xml_next(x)) {
        const char *zKey = xml_text(x, "Key");
        const char *zSize = xml_text(x, "Size");
        const char *zTime = xml_text(x, "LastModified");
        if (zKey == NULL || strlen(zKey) <= nPrefix)
            continue;
        if (*n == *nAlloc) {
            int k = *nAlloc ? *nAlloc * 2 : 64;
            backend_obj *p =
                sqlite3_realloc64(*objs, sizeof(**objs) * (uint64_t)k);
            if (p == NULL)
                return s3b_err(sb, SQLITE_NOMEM, NULL);
            *objs = p;
            *nAlloc = k;
        }
        backend_obj *o = &(*objs)[*n];
        o->key = sqlite3_mprintf("%s", zKey + nPrefix);
        o->size = zSize ? strtoull(zSize, NULL, 10) : 0;
        if (!zTime || !timefmt_parse_time(zTime, &o->created_ms))
            o->created_ms = -1;
        if (o->key == NULL)
            return s3b_err(sb, SQLITE_NOMEM, NULL);
        (*n)++;
    }
    return SQLITE_OK;
}

/* One ListObjectsV2 request; the continuation token of the next page
 * (or NULL) into *pzNext. */
static int
s3b_list_one(s3_backend *sb, const char *zPrefix, int deep, const char *zToken,
             backend_obj **objs, int *n, int *nAlloc, char **pzNext)
{
    char zMax[16];
    sigv4_pair q[5];
    int nq = 0, rc;
    xml_node *x = NULL;
    http_resp resp;
    char *zErr = NULL;

    *pzNext = NULL;
    q[nq++] = (sigv4_pair){"list-type", "2"};
    q[nq++] = (sigv4_pair){"prefix", zPrefix};
    if (!deep)
        q[nq++] = (sigv4_pair){"delimiter", "/"};
    if (sb->c.max_keys) {
        snprintf(zMax, sizeof(zMax), "%d", sb->c.max_keys);
        q[nq++] = (sigv4_pair){"max-keys", zMax};
    }
    if (zToken)
        q[nq++] = (sigv4_pair){"continuation-token", zToken};
    s3_call call = {.method = "GET", .key = NULL, .query = q, .nquery = nq};
    rc = s3b_call(sb, &call, &resp);
    if (rc == SQLITE_OK &&
        xml_parse((char *)resp.body, resp.nbody, &x, &zErr) != SQLITE_OK)
        rc = s3b_err(sb, SQLITE_IOERR,
                     sqlite3_mprintf("litestream: bad listing from bucket "
                                     "'%s': %s",
                                     sb->c.bucket,
                                     zErr ? zErr : "out of memory"));
    if (rc == SQLITE_OK)
        rc = s3b_list_page(sb, x, strlen(zPrefix), objs, n, nAlloc);
    if (rc == SQLITE_OK) {
        const char *zTrunc = xml_text(x, "IsTruncated");
        const char *zNext = xml_text(x, "NextContinuationToken");
        if (zTrunc && strcmp(zTrunc, "true") == 0 && zNext && zNext[0] &&
            (*pzNext = sqlite3_mprintf("%s", zNext)) == NULL)
            rc = s3b_err(sb, SQLITE_NOMEM, NULL);
    }
    sqlite3_free(zErr);
    xml_free(x);
    http_resp_clear(&resp);
    return rc;
}

/* objstore_page_fn of ListObjectsV2. */
static int
s3b_page(void *ctx, const char *zPrefix, int deep, const char *zToken,
         backend_obj **objs, int *n, int *nAlloc, char **pzNext)
{
    return s3b_list_one(ctx, zPrefix, deep, zToken, objs, n, nAlloc, pzNext);
}

/* Lists prefix directly (deep 0) or at any depth (deep 1), every page. */
static int
s3b_list_pages(backend *b, const char *prefix, int deep, backend_obj **objs,
               int *n)
{
    s3_backend *sb = (s3_backend *)b;
    char *zPrefix = s3b_key(sb, prefix), *zErr = NULL;
    int rc;

    *objs = NULL;
    *n = 0;
    if (zPrefix == NULL)
        return s3b_err(sb, SQLITE_NOMEM, NULL);
    rc = objstore_list_pages(s3b_page, sb, zPrefix, deep, objs, n, &zErr);
    if (zErr)
        s3b_err(sb, rc, zErr);
    sqlite3_free(zPrefix);
    return rc;
}

static int
s3b_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return s3b_list_pages(b, prefix, 0, objs, n);
}

static int
s3b_list_tree(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return s3b_list_pages(b, prefix, 1, objs, n);
}

/* One multi-delete request of keys[0..n). */
static int
s3b_del_batch(s3_backend *sb, const char *const *keys, int n)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    sigv4_pair q[] = {{"delete", ""}};
    char zMd5[25];
    xml_node *x = NULL;
    http_resp resp;
    char *zBody;
    int rc, i;

    sqlite3_str_appendall(s, "<Delete><Quiet>true</Quiet>");
    for (i = 0; i < n; i++) {
        char *zKey = s3b_key(sb, keys[i]);
        char *zE = zKey ? xml_escape(zKey) : NULL;
        sqlite3_str_appendf(s, "<Object><Key>%s</Key></Object>", zE ? zE : "");
        if (zE == NULL)
            sqlite3_str_reset(s); /* fail below as out of memory */
        sqlite3_free(zE);
        sqlite3_free(zKey);
    }
    sqlite3_str_appendall(s, "</Delete>");
    zBody = sqlite3_str_finish(s);
    if (zBody == NULL || strstr(zBody, "<Object>") == NULL) {
        sqlite3_free(zBody);
        return s3b_err(sb, SQLITE_NOMEM, NULL);
    }
    sigv4_md5_base64(zBody, strlen(zBody), zMd5);
    sigv4_pair h[] = {{"Content-MD5", zMd5},
                      {"Content-Type", "application/xml"}};
    s3_call call = {.method = "POST",
                    .key = NULL,
                    .query = q,
                    .nquery = 1,
                    .headers = h,
                    .nheader = 2,
                    .body = zBody,
                    .nbody = strlen(zBody)};
    rc = s3b_call(sb, &call, &resp);
    if (rc == SQLITE_OK && resp.nbody &&
        xml_parse((char *)resp.body, resp.nbody, &x, NULL) == SQLITE_OK) {
        const xml_node *e = xml_child(x, "Error");
        if (e)
            rc = s3b_err(sb, SQLITE_IOERR,
                         sqlite3_mprintf("litestream: S3 could not delete "
                                         "'%s': %s: %s",
                                         xml_text(e, "Key") ?: "?",
                                         xml_text(e, "Code") ?: "?",
                                         xml_text(e, "Message") ?: ""));
    }
    xml_free(x);
    http_resp_clear(&resp);
    sqlite3_free(zBody);
    return rc;
}

static int
s3b_del(backend *b, const char *const *keys, int n)
{
    s3_backend *sb = (s3_backend *)b;
    int rc = SQLITE_OK, i;

    for (i = 0; i < n && rc == SQLITE_OK; i += 1000)
        rc = s3b_del_batch(sb, keys + i, n - i < 1000 ? n - i : 1000);
    return rc;
}

/* Conditional writes: storage/backend/s3_cond.c. */
static int
s3b_get_ver(backend *b, const char *key, uint8_t **out, size_t *nOut,
            char **pzVer)
{
    s3_backend *sb = (s3_backend *)b;
    char *zErr = NULL, *zKey = s3b_key(sb, key);
    int rc =
        zKey ? s3_get_ver(&sb->c, zKey, out, nOut, pzVer, &zErr) : SQLITE_NOMEM;
    sqlite3_free(zKey);
    return rc == SQLITE_OK ? rc : s3b_err(sb, rc, zErr);
}

static int
s3b_put_if(backend *b, const char *key, const void *data, size_t n,
           const char *zVer, char **pzVer)
{
    s3_backend *sb = (s3_backend *)b;
    char *zErr = NULL, *zKey = s3b_key(sb, key);
    int rc = zKey ? s3_put_if(&sb->c, zKey, data, n, zVer, pzVer, &zErr)
                  : SQLITE_NOMEM;
    sqlite3_free(zKey);
    return rc == SQLITE_OK ? rc : s3b_err(sb, rc, zErr);
}

static const char *
s3b_errmsg(backend *b)
{
    s3_backend *sb = (s3_backend *)b;
    return sb->zErr ? sb->zErr : "not an error";
}

static const backend_counters *
s3b_counters(backend *b)
{
    return &((s3_backend *)b)->c.counters;
}

static void
s3b_close(backend *b)
{
    s3_backend *sb = (s3_backend *)b;

    if (sb == NULL)
        return;
    s3_client_clear(&sb->c);
    sqlite3_free(sb->zErr);
    sqlite3_free(sb->base.url);
    sqlite3_free(sb);
}

static int
s3b_open_any(const ls_url *u, backend **out, char **pzErr, int kind,
             const backend_vtab *vt)
{
    s3_backend *sb = sqlite3_malloc64(sizeof(*sb));
    int rc;

    *out = NULL;
    if (sb == NULL)
        return SQLITE_NOMEM;
    memset(sb, 0, sizeof(*sb));
    sb->base.vt = vt;
    rc = s3_client_init(&sb->c, u, kind, pzErr);
    if (rc != SQLITE_OK) {
        s3b_close(&sb->base);
        return rc;
    }
    *out = &sb->base;
    return SQLITE_OK;
}

static int
s3b_open(const ls_url *u, backend **out, char **pzErr)
{
    return s3b_open_any(u, out, pzErr, S3_KIND_AWS, &backend_s3_vtab);
}

static const char *
s3b_credential(backend *b)
{
    return s3_credential(&((s3_backend *)b)->c);
}

static int
gsb_open(const ls_url *u, backend **out, char **pzErr)
{
    return s3b_open_any(u, out, pzErr, S3_KIND_GCS, &backend_gs_vtab);
}

static int
ossb_open(const ls_url *u, backend **out, char **pzErr)
{
    return s3b_open_any(u, out, pzErr, S3_KIND_OSS, &backend_oss_vtab);
}

const backend_vtab backend_s3_vtab = {
    .name = "s3",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC,
    .level_fmt = "%04x/",
    .open = s3b_open,
    .close = s3b_close,
    .put = s3b_put,
    .put_file = s3b_put_file,
    .get = s3b_get,
    .list = s3b_list,
    .list_tree = s3b_list_tree,
    .del = s3b_del,
    .errmsg = s3b_errmsg,
    .counters = s3b_counters,
    .credential = s3b_credential,
    .get_ver = s3b_get_ver,
    .put_if = s3b_put_if,
};

const backend_vtab backend_gs_vtab = {
    .name = "gs",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC,
    .level_fmt = "ltx/%d/",
    .open = gsb_open,
    .close = s3b_close,
    .put = s3b_put,
    .put_file = s3b_put_file,
    .get = s3b_get,
    .list = s3b_list,
    .list_tree = s3b_list_tree,
    .del = s3b_del,
    .errmsg = s3b_errmsg,
    .counters = s3b_counters,
    .credential = s3b_credential,
    .get_ver = s3b_get_ver,
    .put_if = s3b_put_if,
};

const backend_vtab backend_oss_vtab = {
    .name = "oss",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC,
    .level_fmt = "%04x/",
    .open = ossb_open,
    .close = s3b_close,
    .put = s3b_put,
    .put_file = s3b_put_file,
    .get = s3b_get,
    .list = s3b_list,
    .list_tree = s3b_list_tree,
    .del = s3b_del,
    .errmsg = s3b_errmsg,
    .counters = s3b_counters,
    .credential = s3b_credential,
    .get_ver = s3b_get_ver,
    .put_if = s3b_put_if,
};
