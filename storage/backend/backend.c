/*
 * storage/backend/backend.c: the registry of storage backends and the
 * dispatching wrappers of the backend vtable (backend.h).
 *
 * The table below is the only place that knows which backends exist and
 * which URL schemes they serve.  Schemes that parse (url.c) but have no
 * backend in this build are listed with a NULL vtable so the message can
 * say so instead of "unknown scheme".
 *
 * Invariants: every handle returned carries its redacted URL in b->url,
 * which the backend's close() frees.
 *
 * Threads: stateless; a handle belongs to one thread at a time.
 */
#include "storage/backend/backend.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "storage/base/sqlite.h"
#include "storage/backend/age.h"
#include "storage/backend/url.h"

static const struct {
    const char *scheme;
    const backend_vtab *vt; /* NULL: not available in this build */
} backend_registry[] = {
    /* clang-format off */
    {"file", &backend_file_vtab},
    {"s3", &backend_s3_vtab},
    {"gs", &backend_gs_vtab},
    {"abs", &backend_abs_vtab},
    {"sftp", &backend_sftp_vtab},
    {"webdav", &backend_webdav_vtab},
    {"webdavs", &backend_webdavs_vtab},
    {"oss", &backend_oss_vtab},
#if defined(LITESTREAM_NATS)
    {"nats", &backend_nats_vtab},
#else
    {"nats", NULL},
#endif
    /* clang-format on */
};

void
backend_objs_free(backend_obj *objs, int n)
{
    int i;

    if (objs == NULL)
        return;
    for (i = 0; i < n; i++)
        sqlite3_free(objs[i].key);
    sqlite3_free(objs);
}

int
backend_open_url(const ls_url *u, backend **out, char **pzErr)
{
    const backend_vtab *vt = NULL;
    backend *b = NULL;
    char *zErr = NULL;
    size_t i;
    int found = 0, rc;

    *out = NULL;
    for (i = 0; i < sizeof(backend_registry) / sizeof(backend_registry[0]);
         i++) {
        if (strcmp(u->scheme, backend_registry[i].scheme) == 0) {
            vt = backend_registry[i].vt;
            found = 1;
            break;
        }
    }
    if (vt == NULL) {
        rc = SQLITE_ERROR;
        zErr = found ? sqlite3_mprintf("litestream: the '%s' backend is not "
                                       "available in this build",
                                       u->scheme)
                     : sqlite3_mprintf("litestream: no backend for URL "
                                       "scheme '%s'",
                                       u->scheme);
        goto out;
    }
    rc = vt->open(u, &b, &zErr);
    if (rc != SQLITE_OK) {
        if (zErr == NULL)
            zErr = sqlite3_mprintf("litestream: cannot open the %s replica "
                                   "'%s': %s",
                                   vt->name, u->redacted, sqlite3_errstr(rc));
        goto out;
    }
    b->url = sqlite3_mprintf("%s", u->redacted ? u->redacted : "");
    if (b->url == NULL) {
        rc = SQLITE_NOMEM;
        zErr = sqlite3_mprintf("litestream: out of memory");
        goto out;
    }
    rc = age_wrap(b, u, &zErr); /* encryption, when the URL asks */
    if (rc != SQLITE_OK)
        goto out;
    *out = b;
    b = NULL;
out:
    if (b)
        b->vt->close(b);
    if (pzErr)
        *pzErr = zErr;
    else
        sqlite3_free(zErr);
    return rc;
}

int
backend_open(const char *zUrl, backend **out, char **pzErr)
{
    ls_url *u = NULL;
    int rc;

    *out = NULL;
    rc = url_parse(zUrl, &u, pzErr);
    if (rc == SQLITE_OK)
        rc = backend_open_url(u, out, pzErr);
    url_free(u);
    return rc;
}

void
backend_close(backend *b)
{
    if (b)
        b->vt->close(b);
}

int
backend_put(backend *b, const char *key, const void *data, size_t n,
            int64_t created_ms)
{
    return b->vt->put(b, key, data, n, created_ms);
}

int
backend_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
                 int64_t created_ms)
{
    int rc;
    if (b->vt->put_file) {
        rc = b->vt->put_file(b, key, zSrc, n, created_ms);
        unlink(zSrc); /* consumed (renamed) or to be dropped */
        return rc;
    }
    uint8_t *buf = sqlite3_malloc64(n ? n : 1);
    int fd = open(zSrc, O_RDONLY | O_CLOEXEC);
    rc = SQLITE_IOERR;
    if (buf && fd >= 0) {
        uint64_t got = 0;
        while (got < n) {
            ssize_t k = pread(fd, buf + got, (size_t)(n - got), (off_t)got);
            if (k <= 0)
                break;
            got += (uint64_t)k;
        }
        if (got == n)
            rc = b->vt->put(b, key, buf, (size_t)n, created_ms);
    } else if (!buf) {
        rc = SQLITE_NOMEM;
    }
    if (fd >= 0)
        close(fd);
    sqlite3_free(buf);
    unlink(zSrc);
    return rc;
}

int
backend_get(backend *b, const char *key, uint64_t offset, uint64_t len,
            uint8_t **out, size_t *nOut)
{
    return b->vt->get(b, key, offset, len, out, nOut);
}

int
backend_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return b->vt->list(b, prefix, objs, n);
}

/* The first path components of a tree listing, each once (the listing is
 * in key order, so equal components are adjacent). */
static int
dirs_of_tree(backend_obj *t, int nt, backend_obj **objs, int *n)
{
    backend_obj *a = nt ? sqlite3_malloc64(sizeof(*a) * (size_t)nt) : NULL;
    int na = 0;

    if (nt && a == NULL)
        return SQLITE_NOMEM;
    for (int i = 0; i < nt; i++) {
        const char *zSlash = strchr(t[i].key, '/');
        int len = zSlash ? (int)(zSlash - t[i].key) : 0;
        if (len == 0)
            continue; /* an object directly under the prefix */
        if (na > 0 && (int)strlen(a[na - 1].key) == len &&
            memcmp(a[na - 1].key, t[i].key, (size_t)len) == 0) {
            if (t[i].created_ms > a[na - 1].created_ms)
                a[na - 1].created_ms = t[i].created_ms;
            continue;
        }
        a[na].key = sqlite3_mprintf("%.*s", len, t[i].key);
        a[na].size = 0;
        a[na].created_ms = t[i].created_ms;
        if (a[na].key == NULL) {
            backend_objs_free(a, na);
            return SQLITE_NOMEM;
        }
        na++;
    }
    *objs = a;
    *n = na;
    return SQLITE_OK;
}

int
backend_list_dirs(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    backend_obj *t = NULL;
    int nt = 0, rc;

    *objs = NULL;
    *n = 0;
    if (b->vt->list_dirs)
        return b->vt->list_dirs(b, prefix, objs, n);
    if (b->vt->list_tree == NULL)
        return SQLITE_MISUSE;
    rc = b->vt->list_tree(b, prefix, &t, &nt);
    if (rc == SQLITE_OK)
        rc = dirs_of_tree(t, nt, objs, n);
    backend_objs_free(t, nt);
    return rc;
}

int
backend_del(backend *b, const char *const *keys, int n)
{
    return b->vt->del(b, keys, n);
}

const char *
backend_errmsg(backend *b)
{
    return b ? b->vt->errmsg(b) : "litestream: no backend";
}

const char *
backend_why(backend *b)
{
    const char *z = backend_errmsg(b);
    return strncmp(z, "litestream: ", 12) == 0 ? z + 12 : z;
}

const backend_counters *
backend_get_counters(backend *b)
{
    return b->vt->counters(b);
}

const char *
backend_url(const backend *b)
{
    return b && b->url ? b->url : "the replica";
}

const char *
backend_credential(backend *b)
{
    return b && b->vt->credential ? b->vt->credential(b) : NULL;
}
