/*
 * storage/backend/webdav.c: the webdav and webdavs backends (backend.h)
 * over HTTP (storage/backend/http.c).
 *
 *   webdav://[USER:PASSWORD@]HOST[:PORT]/PATH     (http, port 80)
 *   webdavs://[USER:PASSWORD@]HOST[:PORT]/PATH    (https, port 443)
 *
 * Objects live at "/PATH/ltx/<level>/<min>-<max>.ltx" on the server, the
 * Litestream v0.5 WebDAV layout (docs/ltx-format.md 2.1).  Credentials
 * (HTTP Basic) come from the URL, else LITESTREAM_WEBDAV_USERNAME and
 * LITESTREAM_WEBDAV_PASSWORD, read at every request.
 *
 * Invariants:
 *   1. put() is atomic: PUT to "<key>.<random>.tmp", then MOVE onto the
 *      key with "Overwrite: T"; a reader sees the old object or the new
 *      one.  Missing collections are made with MKCOL, root first, when a
 *      PUT answers 404 or 409 (servers differ), then the PUT is sent again.
 *   2. Listings are one PROPFIND "Depth: 1" per directory, decoded by
 *      webdav_list.c; a missing collection is an empty list.
 *   3. Transport failures, 5xx and 429 are retried with http.c's backoff;
 *      so is a listing whose XML is cut short or followed by an error
 *      (the server's walk failed midway); 401 and 403 fail at once with
 *      what to fix.
 *
 * Threads: one caller thread per handle (backend.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/backend/backend.h"
#include "storage/backend/http.h"
#include "storage/backend/sigv4.h"
#include "storage/backend/url.h"
#include "storage/backend/webdav.h"
#include "storage/base/rand.h"
#include "storage/base/sqlite.h"

#define DAV_MAX_LISTING (64u << 20)

static const char dav_propfind_body[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/>"
    "<D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>";

typedef struct dav_backend {
    backend base;
    http_client *http;
    char *zOrigin; /* "http[s]://host:port" */
    char *zRoot;   /* "PATH/" (decoded), or "" for the server's root */
    char *zUser;   /* from the URL, or NULL */
    char *zPass;
    backend_counters counters;
    char *zErr;
} dav_backend;

static int
dav_err(dav_backend *db, int rc, char *zMsg)
{
    sqlite3_free(db->zErr);
    db->zErr =
        zMsg ? zMsg : sqlite3_mprintf("litestream: %s", sqlite3_errstr(rc));
    return rc;
}

/* "Authorization: Basic <base64 user:pass>", or NULL without credentials. */
static char *
dav_auth(const dav_backend *db)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *zU =
        db->zUser ? db->zUser : getenv("LITESTREAM_WEBDAV_USERNAME");
    const char *zP = db->zUser ? (db->zPass ? db->zPass : "")
                               : getenv("LITESTREAM_WEBDAV_PASSWORD");
    char *zPlain, *z;
    size_t n, i, o;

    if (zU == NULL || zU[0] == 0)
        return NULL;
    zPlain = sqlite3_mprintf("%s:%s", zU, zP ? zP : "");
    if (zPlain == NULL)
        return NULL;
    n = strlen(zPlain);
    z = sqlite3_malloc64(22 + (n + 2) / 3 * 4 + 1);
    if (z) {
        memcpy(z, "Authorization: Basic ", 21);
        o = 21;
        for (i = 0; i < n; i += 3) {
            unsigned v = (unsigned)(unsigned char)zPlain[i] << 16;
            if (i + 1 < n)
                v |= (unsigned)(unsigned char)zPlain[i + 1] << 8;
            if (i + 2 < n)
                v |= (unsigned char)zPlain[i + 2];
            z[o++] = b64[v >> 18 & 63];
            z[o++] = b64[v >> 12 & 63];
            z[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
            z[o++] = i + 2 < n ? b64[v & 63] : '=';
        }
        z[o] = 0;
    }
    sqlite3_free(zPlain);
    return z;
}

/* The URL of a server path (a collection's with a trailing '/'). */
static char *
dav_path_url(const dav_backend *db, const char *zPath)
{
    char *zEnc = sigv4_uri_encode(zPath, 1);
    char *z = zEnc ? sqlite3_mprintf("%s/%s", db->zOrigin, zEnc) : NULL;

    sqlite3_free(zEnc);
    return z;
}

/* The URL of a key (or, with a trailing '/', a collection). */
static char *
dav_url(const dav_backend *db, const char *key)
{
    char *zPath = sqlite3_mprintf("%s%s", db->zRoot, key);
    char *z = zPath ? dav_path_url(db, zPath) : NULL;

    sqlite3_free(zPath);
    return z;
}

/* One call: method on URL with extra headers and a body. */
typedef struct dav_call {
    const char *method;
    const char *url;
    const char *key; /* for messages */
    const char *h1, *h2;
    const void *body;
    int fd;
    uint64_t nbody;
    uint64_t max_response;
    /* MOVE: the destination's URL and the size it must have (the request
     * goes on a new connection, see http_req.fresh). */
    const char *dest;
    uint64_t dest_n;
} dav_call;

static int dav_move_done(dav_backend *db, const dav_call *c);

static void
dav_count(dav_backend *db, const dav_call *c, const http_resp *resp)
{
    backend_counters *k = &db->counters;

    if (strcmp(c->method, "PUT") == 0)
        k->n_put++;
    else if (strcmp(c->method, "GET") == 0)
        k->n_get++;
    else if (strcmp(c->method, "PROPFIND") == 0)
        k->n_list++;
    else if (strcmp(c->method, "DELETE") == 0)
        k->n_delete++;
    k->bytes_up += c->nbody;
    k->bytes_down += resp->nbody;
}

/* The message and code of a failed call. */
static int
dav_fail(dav_backend *db, const dav_call *c, int rc, const http_resp *resp,
         int has_auth)
{
    const char *zFix = "";

    if (rc == SQLITE_IOERR)
        return dav_err(
            db, rc,
            sqlite3_mprintf("litestream: WebDAV %s '%s' on %s "
                            "failed: %s",
                            c->method, c->key, db->zOrigin,
                            resp->transport ? resp->transport : "no response"));
    if (rc != SQLITE_OK)
        return dav_err(db, rc, NULL);
    rc = SQLITE_IOERR;
    if (resp->status == 401) {
        rc = SQLITE_AUTH;
        zFix = has_auth ? ": the server refused the user name or password "
                          "(URL, or LITESTREAM_WEBDAV_USERNAME and "
                          "LITESTREAM_WEBDAV_PASSWORD)"
                        : ": give a user name and password in the URL or in "
                          "LITESTREAM_WEBDAV_USERNAME and "
                          "LITESTREAM_WEBDAV_PASSWORD";
    } else if (resp->status == 403) {
        rc = SQLITE_AUTH;
        zFix = ": give the WebDAV user write access to the replica path";
    } else if (resp->status == 405 && strcmp(c->method, "GET") != 0 &&
               strcmp(c->method, "PROPFIND") != 0) {
        rc = SQLITE_AUTH; /* rclone's answer to a write it may not do */
        zFix = ": the server does not allow writing there: give the WebDAV "
               "user write access to the replica path";
    } else if (resp->status == 409 && strcmp(c->method, "MKCOL") == 0) {
        rc = SQLITE_AUTH; /* its parent was refused just before */
        zFix = ": the parent collection could not be made: give the WebDAV "
               "user write access to the replica path";
    } else if (resp->status == 404) {
        rc = SQLITE_NOTFOUND;
    } else if (resp->status == 507) {
        rc = SQLITE_FULL;
    }
    return dav_err(db, rc,
                   sqlite3_mprintf("litestream: WebDAV %s '%s' on %s failed: "
                                   "HTTP %ld%s",
                                   c->method, c->key, db->zOrigin, resp->status,
                                   zFix));
}

/*
 * Runs a call with retries.  SQLITE_OK with *resp when the status is one
 * of ok[] (zero-terminated), else the error, recorded on the handle; *resp
 * then still holds the last answer (clear it either way).
 */
static int
dav_do(dav_backend *db, const dav_call *c, const long *ok, http_resp *resp)
{
    char *zAuth = dav_auth(db);
    const char *azH[3];
    int nh = 0, rc, attempt, delay, i;

    if (zAuth)
        azH[nh++] = zAuth;
    if (c->h1)
        azH[nh++] = c->h1;
    if (c->h2)
        azH[nh++] = c->h2;
    http_req req = {.method = c->method,
                    .url = c->url,
                    .headers = azH,
                    .nheader = nh,
                    .body = c->body,
                    .body_fd = c->fd,
                    .nbody = c->nbody,
                    .max_response = c->max_response,
                    .fresh = c->dest != NULL};
    memset(resp, 0, sizeof(*resp));
    for (attempt = 1;; attempt++) {
        http_resp_clear(resp);
        rc = http_do(db->http, &req, resp);
        if (rc == SQLITE_NOMEM)
            break;
        if (rc == SQLITE_OK) {
            dav_count(db, c, resp);
            for (i = 0; ok[i]; i++)
                if (resp->status == ok[i])
                    goto out;
        }
        delay = http_retry_delay_ms(db->http, rc, resp, attempt);
        if (delay < 0)
            break;
        http_sleep_ms(delay);
        /* A MOVE sent again after it happened would, with "Overwrite: T",
         * delete the destination first (RFC 4918 9.9.3) and then fail. */
        if (c->dest && dav_move_done(db, c)) {
            rc = SQLITE_OK;
            goto out;
        }
    }
    rc = dav_fail(db, c, rc, resp, zAuth != NULL);
out:
    sqlite3_free(zAuth);
    return rc;
}

/* Makes the collections of key's directory, from the server root down. */
static int
dav_mkcols(dav_backend *db, const char *key)
{
    static const long ok[] = {201, 405, 0}; /* 405: exists already */
    char *zDir = sqlite3_mprintf("%s%s", db->zRoot, key);
    int rc = zDir ? SQLITE_OK : dav_err(db, SQLITE_NOMEM, NULL);
    char *p = zDir;

    while (rc == SQLITE_OK && (p = strchr(p, '/')) != NULL) {
        http_resp resp;
        char c = p[1];
        p[1] = 0;
        char *zUrl = dav_path_url(db, zDir);
        dav_call call = {.method = "MKCOL", .url = zUrl, .key = zDir, .fd = -1};
        rc = zUrl ? dav_do(db, &call, ok, &resp)
                  : dav_err(db, SQLITE_NOMEM, NULL);
        http_resp_clear(&resp);
        sqlite3_free(zUrl);
        p[1] = c;
        p++;
    }
    sqlite3_free(zDir);
    return rc;
}

/*
 * Whether a MOVE whose answer was lost happened after all (its retry found
 * no source): a PROPFIND (Depth: 0; rclone answers no HEAD) finds the
 * object with the size just uploaded.  (A missing permission also answers
 * 403: then the object is not there.)
 */
static int
dav_moved(dav_backend *db, const char *zUrl, const char *key, uint64_t n)
{
    static const long ok[] = {207, 0};
    dav_call find = {.method = "PROPFIND",
                     .url = zUrl,
                     .key = key,
                     .h1 = "Depth: 0",
                     .h2 = "Content-Type: application/xml; charset=utf-8",
                     .body = dav_propfind_body,
                     .fd = -1,
                     .nbody = sizeof(dav_propfind_body) - 1,
                     .max_response = 1 << 20};
    backend_obj *o = NULL;
    http_resp resp;
    int k = 0, moved = 0;

    if (dav_do(db, &find, ok, &resp) == SQLITE_OK &&
        webdav_parse_propfind((const char *)resp.body, resp.nbody, &o, &k,
                              NULL) == SQLITE_OK)
        moved = k == 1 && o[0].size == n;
    backend_objs_free(o, k);
    http_resp_clear(&resp);
    return moved;
}

/* Whether the MOVE c happened: its source is gone, its destination there
 * with the size uploaded. */
static int
dav_move_done(dav_backend *db, const dav_call *c)
{
    static const long ok[] = {404, 0};
    dav_call find = {.method = "PROPFIND",
                     .url = c->url,
                     .key = c->key,
                     .h1 = "Depth: 0",
                     .fd = -1,
                     .max_response = 1 << 20};
    http_resp resp;
    int gone = dav_do(db, &find, ok, &resp) == SQLITE_OK;

    http_resp_clear(&resp);
    return gone && dav_moved(db, c->dest, c->key, c->dest_n);
}

/* PUT to a temporary name (making collections when needed), then MOVE. */
static int
dav_put_body(dav_backend *db, const char *key, const void *data, int fd,
             uint64_t n)
{
    static const long okPut[] = {200, 201, 204, 0};
    char *zTmp =
        sqlite3_mprintf("%s.%016llx.tmp", key, (unsigned long long)ls_rand64());
    char *zTmpUrl = zTmp ? dav_url(db, zTmp) : NULL;
    char *zUrl = dav_url(db, key);
    char *zDest = zUrl ? sqlite3_mprintf("Destination: %s", zUrl) : NULL;
    dav_call put = {.method = "PUT",
                    .url = zTmpUrl,
                    .key = zTmp,
                    .body = data,
                    .fd = fd,
                    .nbody = n};
    dav_call mv = {.method = "MOVE",
                   .url = zTmpUrl,
                   .key = key,
                   .h1 = zDest,
                   .h2 = "Overwrite: T",
                   .fd = -1,
                   .dest = zUrl,
                   .dest_n = n};
    http_resp resp;
    int rc;

    memset(&resp, 0, sizeof(resp));
    if (zTmpUrl == NULL || zDest == NULL) {
        rc = dav_err(db, SQLITE_NOMEM, NULL);
        goto out;
    }
    rc = dav_do(db, &put, okPut, &resp);
    if (rc == SQLITE_NOTFOUND || (rc != SQLITE_OK && resp.status == 409)) {
        http_resp_clear(&resp);
        rc = dav_mkcols(db, key);
        if (rc == SQLITE_OK)
            rc = dav_do(db, &put, okPut, &resp);
    }
    http_resp_clear(&resp);
    if (rc == SQLITE_OK) {
        rc = dav_do(db, &mv, okPut, &resp);
        long st = resp.status;
        http_resp_clear(&resp);
        /* No source: a lost answer of a MOVE that happened (rclone says
         * 403, others 404)? */
        if ((st == 404 || st == 403) && dav_moved(db, zUrl, key, n))
            rc = SQLITE_OK;
        if (rc != SQLITE_OK) { /* best effort: drop the temporary object */
            static const long okDel[] = {200, 204, 404, 0};
            char *zKeep = db->zErr;
            dav_call del = {
                .method = "DELETE", .url = zTmpUrl, .key = zTmp, .fd = -1};
            db->zErr = NULL;
            dav_do(db, &del, okDel, &resp);
            http_resp_clear(&resp);
            sqlite3_free(db->zErr);
            db->zErr = zKeep;
        }
    }
out:
    sqlite3_free(zTmp);
    sqlite3_free(zTmpUrl);
    sqlite3_free(zUrl);
    sqlite3_free(zDest);
    return rc;
}

static int
davb_put(backend *b, const char *key, const void *data, size_t n,
         int64_t created_ms)
{
    (void)created_ms; /* getlastmodified is the upload time */
    return dav_put_body((dav_backend *)b, key, data ? data : "", -1, n);
}

static int
davb_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
              int64_t created_ms)
{
    dav_backend *db = (dav_backend *)b;
    int fd = open(zSrc, O_RDONLY | O_CLOEXEC), rc;

    (void)created_ms;
    if (fd < 0)
        return dav_err(db, SQLITE_IOERR,
                       sqlite3_mprintf("litestream: cannot open '%s' to "
                                       "upload it",
                                       zSrc));
    rc = dav_put_body(db, key, NULL, fd, n);
    close(fd);
    return rc;
}

static int
davb_get(backend *b, const char *key, uint64_t offset, uint64_t len,
         uint8_t **out, size_t *nOut)
{
    static const long ok[] = {200, 206, 416, 0};
    dav_backend *db = (dav_backend *)b;
    char *zUrl = dav_url(db, key);
    char zRange[64];
    dav_call call = {.method = "GET", .url = zUrl, .key = key, .fd = -1};
    http_resp resp;
    int rc;

    *out = NULL;
    *nOut = 0;
    if (zUrl == NULL)
        return dav_err(db, SQLITE_NOMEM, NULL);
    if (len == 0) {
        sqlite3_free(zUrl);
        *out = sqlite3_malloc(1);
        return *out ? SQLITE_OK : dav_err(db, SQLITE_NOMEM, NULL);
    }
    if (offset > 0 || len != UINT64_MAX) {
        if (len == UINT64_MAX)
            snprintf(zRange, sizeof(zRange), "Range: bytes=%llu-",
                     (unsigned long long)offset);
        else
            snprintf(zRange, sizeof(zRange), "Range: bytes=%llu-%llu",
                     (unsigned long long)offset,
                     (unsigned long long)(offset + len - 1));
        call.h1 = zRange;
    }
    rc = dav_do(db, &call, ok, &resp);
    if (rc == SQLITE_OK && resp.status == 416) {
        *out = sqlite3_malloc(1); /* the range is past the end */
        rc = *out ? SQLITE_OK : dav_err(db, SQLITE_NOMEM, NULL);
    } else if (rc == SQLITE_OK) {
        uint64_t skip = resp.status == 200 && call.h1 ? offset : 0;
        if (skip > resp.nbody)
            skip = resp.nbody;
        uint64_t k = resp.nbody - skip < len ? resp.nbody - skip : len;
        if (skip)
            memmove(resp.body, resp.body + skip, (size_t)k);
        *out = resp.body;
        *nOut = (size_t)k;
        resp.body = NULL;
    }
    http_resp_clear(&resp);
    sqlite3_free(zUrl);
    return rc;
}

/* Lists the objects (dirs 0) or the collections (dirs 1) directly under
 * prefix. */
static int
dav_list_kind(backend *b, const char *prefix, int dirs, backend_obj **objs,
              int *n)
{
    static const long ok[] = {207, 0};
    dav_backend *db = (dav_backend *)b;
    char *zUrl = dav_url(db, prefix);
    char *zSelf = sqlite3_mprintf("/%s%s", db->zRoot, prefix);
    dav_call call = {.method = "PROPFIND",
                     .url = zUrl,
                     .key = prefix,
                     .h1 = "Depth: 1",
                     .h2 = "Content-Type: application/xml; charset=utf-8",
                     .body = dav_propfind_body,
                     .fd = -1,
                     .nbody = sizeof(dav_propfind_body) - 1,
                     .max_response = DAV_MAX_LISTING};
    http_resp resp;
    char *zErr = NULL;
    int rc;

    *objs = NULL;
    *n = 0;
    if (zUrl == NULL || zSelf == NULL) {
        sqlite3_free(zUrl);
        sqlite3_free(zSelf);
        return dav_err(db, SQLITE_NOMEM, NULL);
    }
    int parsed = 0;
    for (int attempt = 1;; attempt++) {
        rc = dav_do(db, &call, ok, &resp);
        parsed = rc == SQLITE_OK;
        if (!parsed)
            break;
        rc = dirs ? webdav_parse_dirs((const char *)resp.body, resp.nbody,
                                      zSelf, objs, n, &zErr)
                  : webdav_parse_propfind((const char *)resp.body, resp.nbody,
                                          objs, n, &zErr);
        /* A server whose walk of the collection failed midway (a member
         * gone between its readdir and its stat, as golang.org/x/net/webdav
         * and rclone do) ends the 207 with its error text after the XML:
         * the 500 it could no longer send.  Asked again, as for a 500. */
        http_resp as500 = {.status = 500};
        int delay =
            rc == SQLITE_CORRUPT
                ? http_retry_delay_ms(db->http, SQLITE_OK, &as500, attempt)
                : -1;
        if (delay < 0)
            break;
        sqlite3_free(zErr);
        zErr = NULL;
        http_resp_clear(&resp);
        http_sleep_ms(delay);
    }
    if (rc == SQLITE_NOTFOUND) {
        rc = SQLITE_OK; /* no collection yet: nothing in it */
    } else if (parsed && rc == SQLITE_CORRUPT) {
        rc = dav_err(db, SQLITE_IOERR,
                     sqlite3_mprintf("litestream: WebDAV PROPFIND '%s' on "
                                     "%s: bad answer: %s",
                                     prefix, db->zOrigin,
                                     zErr ? zErr : "malformed"));
    } else if (parsed && rc != SQLITE_OK) {
        dav_err(db, rc, NULL);
    } /* else dav_do's error, recorded on the handle */
    sqlite3_free(zErr);
    http_resp_clear(&resp);
    sqlite3_free(zUrl);
    sqlite3_free(zSelf);
    return rc;
}

static int
davb_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return dav_list_kind(b, prefix, 0, objs, n);
}

static int
davb_list_dirs(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return dav_list_kind(b, prefix, 1, objs, n);
}

static int
davb_del(backend *b, const char *const *keys, int n)
{
    static const long ok[] = {200, 202, 204, 404, 0};
    dav_backend *db = (dav_backend *)b;
    int rc = SQLITE_OK;

    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        char *zUrl = dav_url(db, keys[i]);
        dav_call call = {
            .method = "DELETE", .url = zUrl, .key = keys[i], .fd = -1};
        http_resp resp;
        rc = zUrl ? dav_do(db, &call, ok, &resp)
                  : dav_err(db, SQLITE_NOMEM, NULL);
        if (zUrl)
            http_resp_clear(&resp);
        sqlite3_free(zUrl);
    }
    return rc;
}

/*
 * rename_excl: MOVE with "Overwrite: F" (RFC 4918 9.9.3: 412 when the
 * destination exists; rclone honours it); a missing source answers 404
 * (rclone: 403).
 */
static int
davb_rename_excl(backend *b, const char *zFrom, const char *zTo)
{
    static const long ok[] = {201, 204, 403, 404, 412, 0};
    dav_backend *db = (dav_backend *)b;
    char *zUrl = dav_url(db, zFrom), *zDest = dav_url(db, zTo);
    char *zHdr = zDest ? sqlite3_mprintf("Destination: %s", zDest) : NULL;
    dav_call mv = {.method = "MOVE",
                   .url = zUrl,
                   .key = zFrom,
                   .h1 = zHdr,
                   .h2 = "Overwrite: F",
                   .fd = -1};
    http_resp resp = {0};
    int rc = zUrl && zHdr ? dav_do(db, &mv, ok, &resp)
                          : dav_err(db, SQLITE_NOMEM, NULL);
    if (rc == SQLITE_OK && resp.status == 412)
        rc = SQLITE_CONSTRAINT;
    else if (rc == SQLITE_OK && (resp.status == 403 || resp.status == 404))
        rc = SQLITE_NOTFOUND;
    http_resp_clear(&resp);
    sqlite3_free(zUrl);
    sqlite3_free(zDest);
    sqlite3_free(zHdr);
    return rc;
}

static const char *
davb_errmsg(backend *b)
{
    dav_backend *db = (dav_backend *)b;
    return db->zErr ? db->zErr : "not an error";
}

static const backend_counters *
davb_counters(backend *b)
{
    return &((dav_backend *)b)->counters;
}

static void
davb_close(backend *b)
{
    dav_backend *db = (dav_backend *)b;

    if (db == NULL)
        return;
    http_client_free(db->http);
    sqlite3_free(db->zOrigin);
    sqlite3_free(db->zRoot);
    sqlite3_free(db->zUser);
    sqlite3_free(db->zPass);
    sqlite3_free(db->zErr);
    sqlite3_free(db->base.url);
    sqlite3_free(db);
}

static int
dav_open(const ls_url *u, int tls, const backend_vtab *vt, backend **out,
         char **pzErr)
{
    const char *zSkip = url_param(u, "skip_verify");
    http_opts o = {.skip_verify = zSkip && (strcmp(zSkip, "true") == 0 ||
                                            strcmp(zSkip, "1") == 0)};
    dav_backend *db;
    int v6, rc;

    *out = NULL;
    if (u->host == NULL || u->host[0] == 0) {
        *pzErr = sqlite3_mprintf("litestream: the WebDAV URL '%s' has no host "
                                 "(expected %s://[USER:PASSWORD@]HOST[:PORT]"
                                 "/PATH)",
                                 u->redacted, u->scheme);
        return SQLITE_ERROR;
    }
    db = sqlite3_malloc64(sizeof(*db));
    if (db == NULL)
        return SQLITE_NOMEM;
    memset(db, 0, sizeof(*db));
    db->base.vt = vt;
    v6 = strchr(u->host, ':') != NULL;
    db->zOrigin = sqlite3_mprintf("%s://%s%s%s:%d", tls ? "https" : "http",
                                  v6 ? "[" : "", u->host, v6 ? "]" : "",
                                  u->port ? u->port
                                  : tls   ? 443
                                          : 80);
    db->zRoot = sqlite3_mprintf("%s%s", u->path, u->path[0] ? "/" : "");
    db->zUser = u->user ? sqlite3_mprintf("%s", u->user) : NULL;
    db->zPass = u->password ? sqlite3_mprintf("%s", u->password) : NULL;
    rc = http_client_new(&o, &db->http);
    if (rc == SQLITE_OK &&
        (!db->zOrigin || !db->zRoot || (u->user && !db->zUser) ||
         (u->password && !db->zPass)))
        rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        davb_close(&db->base);
        return rc;
    }
    *out = &db->base;
    return SQLITE_OK;
}

static int
davb_open_http(const ls_url *u, backend **out, char **pzErr)
{
    return dav_open(u, 0, &backend_webdav_vtab, out, pzErr);
}

static int
davb_open_https(const ls_url *u, backend **out, char **pzErr)
{
    return dav_open(u, 1, &backend_webdavs_vtab, out, pzErr);
}

#define DAV_VTAB(zName, xOpen)                                                 \
    {                                                                          \
        .name = zName, .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC,         \
        .level_fmt = "ltx/%d/", .open = xOpen, .close = davb_close,            \
        .put = davb_put, .put_file = davb_put_file, .get = davb_get,           \
        .list = davb_list, .list_tree = NULL, .list_dirs = davb_list_dirs,     \
        .del = davb_del, .errmsg = davb_errmsg, .counters = davb_counters,     \
        .rename_excl = davb_rename_excl,                                       \
    }

const backend_vtab backend_webdav_vtab = DAV_VTAB("webdav", davb_open_http);
const backend_vtab backend_webdavs_vtab = DAV_VTAB("webdavs", davb_open_https);
