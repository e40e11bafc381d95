/*
 * storage/backend/s3_cond.c: conditional writes of the s3, gs and oss
 * backends (backend.h get_ver / put_if; s3_client.h s3_get_ver, s3_put_if).
 *
 *   s3, oss  the version is the ETag; a put sends If-None-Match: * (create)
 *            or If-Match: ETAG (replace); S3 answers 412 PreconditionFailed
 *            (or 409 ConditionalRequestConflict to a concurrent one)
 *   gs       the version is the generation (x-goog-generation) and a put
 *            sends x-goog-if-generation-match: 0 (create) or : GEN; when
 *            the server sends no generation (an S3 stand-in) the ETag and
 *            If-Match / If-None-Match as for s3
 *
 * Servers that ignore the headers (s3rver, the test server: docs/urls.md
 * "Writer lease") make every put succeed: the lease then only checks by
 * reading first.
 *
 * Threads: as the client (s3_client.h).
 */
#include <stdio.h>
#include <string.h>

#include "storage/backend/objstore.h"
#include "storage/backend/s3_client.h"
#include "storage/base/sqlite.h"

/* The version of an answer: "gen:N" (gs) or the ETag; NULL if none. */
static char *
s3_ver_of(const s3_client *c, const http_resp *resp)
{
    char z[256];
    if (c->gcs && http_resp_header(resp, "x-goog-generation", z, sizeof(z)))
        return sqlite3_mprintf("gen:%s", z);
    if (http_resp_header(resp, "ETag", z, sizeof(z)))
        return sqlite3_mprintf("%s", z);
    return NULL;
}

int
s3_get_ver(s3_client *c, const char *zKey, uint8_t **out, size_t *nOut,
           char **pzVer, char **pzErr)
{
    http_resp resp;
    s3_call call = {.method = "GET", .key = zKey};
    int rc = s3_call_do(c, &call, &resp, pzErr);

    *out = NULL;
    *nOut = 0;
    *pzVer = NULL;
    if (rc == SQLITE_OK && (*pzVer = s3_ver_of(c, &resp)) == NULL) {
        rc = SQLITE_IOERR;
        *pzErr = sqlite3_mprintf("litestream: the server sent no ETag for "
                                 "'%s'",
                                 zKey);
    }
    if (rc == SQLITE_OK &&
        objstore_take_body(&resp, 0, 0, UINT64_MAX, out, nOut) != SQLITE_OK)
        rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        sqlite3_free(*pzVer);
        *pzVer = NULL;
    }
    http_resp_clear(&resp);
    return rc;
}

int
s3_put_if(s3_client *c, const char *zKey, const void *data, size_t n,
          const char *zVer, char **pzVer, char **pzErr)
{
    http_resp resp;
    sigv4_pair h[2] = {{"Content-Type", "application/json"}, {NULL, NULL}};
    if (zVer && strncmp(zVer, "gen:", 4) == 0)
        h[1] = (sigv4_pair){"x-goog-if-generation-match", zVer + 4};
    else if (zVer)
        h[1] = (sigv4_pair){"If-Match", zVer};
    else if (c->gcs)
        h[1] = (sigv4_pair){"x-goog-if-generation-match", "0"};
    else
        h[1] = (sigv4_pair){"If-None-Match", "*"};
    s3_call call = {.method = "PUT",
                    .key = zKey,
                    .headers = h,
                    .nheader = 2,
                    .body = data,
                    .body_fd = -1,
                    .nbody = n};
    int rc = s3_call_do(c, &call, &resp, pzErr);

    *pzVer = NULL;
    if (rc != SQLITE_OK &&
        (resp.status == 412 || resp.status == 409 || rc == SQLITE_NOTFOUND)) {
        rc = SQLITE_CONSTRAINT;
    } else if (rc == SQLITE_OK && (*pzVer = s3_ver_of(c, &resp)) == NULL) {
        rc = SQLITE_IOERR;
        *pzErr = sqlite3_mprintf("litestream: the server sent no ETag for "
                                 "'%s'",
                                 zKey);
    }
    http_resp_clear(&resp);
    return rc;
}
