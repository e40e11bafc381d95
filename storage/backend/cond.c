/*
 * storage/backend/cond.c: conditional writes on every backend
 * (backend.h: backend_get_ver, backend_put_if), for the writer lease
 * (storage/replicate/lease.c).
 *
 * Three ways, by what the backend offers:
 *   native  its own get_ver/put_if: the store checks the condition
 *           (S3 If-None-Match/If-Match, GCS generation preconditions,
 *           Azure If-None-Match/If-Match);
 *   rename  an exclusive rename (rename_excl: the file backend's
 *           renameat2(RENAME_NOREPLACE), SFTP v3's rename, WebDAV's MOVE
 *           with "Overwrite: F"); the version is the content's CRC-64.
 *           Creating: put to a temporary key, rename it onto the key.
 *           Replacing: put the new content to a temporary key, rename the
 *           current object aside (only one renamer gets it), compare it
 *           with the version, rename the new content into place (fails
 *           if someone created the key meanwhile), drop the old one; on a
 *           mismatch the old object is renamed back.  While the object is
 *           aside the key is absent: a writer that finds it absent may
 *           create it (it then holds the condition, the others fail).
 *   none    read, compare, write (nats): two writers at the same moment
 *           may both succeed; the lease says so in litestream_status().
 *
 * Temporary keys end in ".tmp" ("<key>.<16 hex>.tmp", "<key>.<16 hex>.
 * old.tmp"): the file backend never lists them and layout.c keeps LTX
 * names only.  A crash may leave one behind.
 *
 * Threads: as the backend handle (one caller at a time).
 */
#include <stdio.h>
#include <string.h>

#include "storage/backend/backend.h"
#include "storage/base/clock.h"
#include "storage/base/rand.h"
#include "storage/base/sqlite.h"
#include "storage/ltx/crc64.h"

/* The version of content the backend has no version for. */
static char *
cond_crc_ver(const uint8_t *p, size_t n)
{
    return sqlite3_mprintf("crc64:%016llx",
                           (unsigned long long)crc64_update(0, p, n));
}

const char *
backend_cond_kind(const backend *b)
{
    if (b->vt->put_if && b->vt->get_ver)
        return "native";
    return b->vt->rename_excl ? "rename" : "none";
}

int
backend_get_ver(backend *b, const char *key, uint8_t **out, size_t *nOut,
                char **pzVer)
{
    int rc;

    *pzVer = NULL;
    if (b->vt->put_if && b->vt->get_ver)
        return b->vt->get_ver(b, key, out, nOut, pzVer);
    rc = b->vt->get(b, key, 0, UINT64_MAX, out, nOut);
    if (rc == SQLITE_OK && (*pzVer = cond_crc_ver(*out, *nOut)) == NULL) {
        sqlite3_free(*out);
        *out = NULL;
        rc = SQLITE_NOMEM;
    }
    return rc;
}

/* Whether key's current content has version zVer (NULL: is absent). */
static int
cond_holds(backend *b, const char *key, const char *zVer)
{
    uint8_t *p = NULL;
    size_t n = 0;
    char *zNow = NULL;
    int rc = backend_get_ver(b, key, &p, &n, &zNow);

    if (rc == SQLITE_NOTFOUND)
        rc = zVer == NULL ? SQLITE_OK : SQLITE_CONSTRAINT;
    else if (rc == SQLITE_OK && (zVer == NULL || strcmp(zNow, zVer) != 0))
        rc = SQLITE_CONSTRAINT;
    sqlite3_free(p);
    sqlite3_free(zNow);
    return rc;
}

/* Replaces key (now renamed to zOld) by zTmp if zOld has version zVer. */
static int
cond_swap(backend *b, const char *key, const char *zTmp, const char *zOld,
          const char *zVer)
{
    uint8_t *p = NULL;
    size_t n = 0;
    int rc = b->vt->get(b, zOld, 0, UINT64_MAX, &p, &n);

    if (rc == SQLITE_OK) {
        char *zNow = cond_crc_ver(p, n);
        rc = zNow == NULL              ? SQLITE_NOMEM
             : strcmp(zNow, zVer) != 0 ? SQLITE_CONSTRAINT
                                       : SQLITE_OK;
        sqlite3_free(zNow);
    }
    sqlite3_free(p);
    if (rc == SQLITE_OK) {
        rc = b->vt->rename_excl(b, zTmp, key);
        if (rc == SQLITE_NOTFOUND)
            rc = SQLITE_IOERR; /* our own temporary object vanished */
    } else if (b->vt->rename_excl(b, zOld, key) == SQLITE_OK) {
        return rc; /* not ours to replace: put back */
    }
    /* Replaced, or someone created the key meanwhile: the old one goes. */
    b->vt->del(b, &zOld, 1);
    return rc;
}

static int
cond_put_rename(backend *b, const char *key, const void *data, size_t n,
                const char *zVer)
{
    unsigned long long r = (unsigned long long)ls_rand64();
    char *zTmp = sqlite3_mprintf("%s.%016llx.tmp", key, r);
    char *zOld = sqlite3_mprintf("%s.%016llx.old.tmp", key, r);
    int rc = zTmp && zOld ? SQLITE_OK : SQLITE_NOMEM;

    if (rc == SQLITE_OK)
        rc = b->vt->put(b, zTmp, data, n, clock_now_ms());
    if (rc != SQLITE_OK)
        goto out;
    if (zVer == NULL) {
        rc = b->vt->rename_excl(b, zTmp, key);
        if (rc == SQLITE_NOTFOUND)
            rc = SQLITE_IOERR;
    } else {
        rc = b->vt->rename_excl(b, key, zOld);
        if (rc == SQLITE_NOTFOUND || rc == SQLITE_CONSTRAINT)
            rc = SQLITE_CONSTRAINT; /* gone (or being replaced) */
        else if (rc == SQLITE_OK)
            rc = cond_swap(b, key, zTmp, zOld, zVer);
    }
    if (rc != SQLITE_OK)
        b->vt->del(b, (const char *const *)&zTmp, 1);
out:
    sqlite3_free(zTmp);
    sqlite3_free(zOld);
    return rc;
}

int
backend_put_if(backend *b, const char *key, const void *data, size_t n,
               const char *zVer, char **pzVer)
{
    int rc;

    *pzVer = NULL;
    if (b->vt->put_if && b->vt->get_ver)
        return b->vt->put_if(b, key, data, n, zVer, pzVer);
    if (b->vt->rename_excl) {
        rc = cond_put_rename(b, key, data, n, zVer);
    } else {
        rc = cond_holds(b, key, zVer);
        if (rc == SQLITE_OK)
            rc = b->vt->put(b, key, data, n, clock_now_ms());
    }
    if (rc == SQLITE_OK && (*pzVer = cond_crc_ver(data, n)) == NULL)
        rc = SQLITE_NOMEM;
    return rc;
}
