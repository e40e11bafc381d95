/*
 * storage/backend/objstore.c: ranged reads and paged listings shared by the
 * HTTP object-store backends (objstore.h).
 *
 * Threads: pure functions; any thread.
 */
#include "storage/backend/objstore.h"

#include <stdio.h>
#include <string.h>

#include "storage/base/sqlite.h"

#define OBJSTORE_MAX_PAGES 100000

void
objstore_range(uint64_t offset, uint64_t len, char *buf, size_t n)
{
    if (len == UINT64_MAX)
        snprintf(buf, n, "bytes=%llu-", (unsigned long long)offset);
    else
        snprintf(buf, n, "bytes=%llu-%llu", (unsigned long long)offset,
                 (unsigned long long)(offset + len - 1));
}

int
objstore_take_body(http_resp *resp, int ranged, uint64_t offset, uint64_t len,
                   uint8_t **out, size_t *nOut)
{
    size_t skip = 0, n = resp->nbody;

    *out = NULL;
    *nOut = 0;
    if (ranged && resp->status == 200) { /* the server ignored the range */
        skip = offset < n ? (size_t)offset : n;
        n -= skip;
    }
    if (ranged && len != UINT64_MAX && n > len)
        n = (size_t)len;
    if (resp->body == NULL || resp->nbody == 0 || skip > 0) {
        uint8_t *p = sqlite3_malloc64(n + 1);
        if (p == NULL)
            return SQLITE_NOMEM;
        if (n)
            memcpy(p, resp->body + skip, n);
        p[n] = 0;
        sqlite3_free(resp->body);
        resp->body = p;
    }
    *out = resp->body;
    *nOut = n;
    resp->body = NULL;
    resp->nbody = 0;
    return SQLITE_OK;
}

int
objstore_list_pages(objstore_page_fn fn, void *ctx, const char *zPrefix,
                    int deep, backend_obj **objs, int *n, char **pzErr)
{
    char *zToken = NULL, *zNext = NULL;
    int rc, nAlloc = 0, pages = 0;

    *objs = NULL;
    *n = 0;
    do {
        rc = fn(ctx, zPrefix, deep, zToken, objs, n, &nAlloc, &zNext);
        sqlite3_free(zToken);
        zToken = zNext;
        zNext = NULL;
        if (rc == SQLITE_OK && zToken && ++pages > OBJSTORE_MAX_PAGES) {
            rc = SQLITE_IOERR;
            *pzErr = sqlite3_mprintf("litestream: listing of '%s' never "
                                     "ends",
                                     zPrefix);
        }
    } while (rc == SQLITE_OK && zToken);
    sqlite3_free(zToken);
    if (rc != SQLITE_OK) {
        backend_objs_free(*objs, *n);
        *objs = NULL;
        *n = 0;
    }
    return rc;
}
