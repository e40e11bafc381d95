/*
 * storage/backend/webdav_list.c: the decoder of WebDAV PROPFIND answers
 * (webdav.h), over the XML reader (storage/backend/xml.h).
 *
 * Invariants:
 *   1. Only the local names matter (DAV: under any prefix): multistatus,
 *      response, href, propstat, prop, resourcetype, collection,
 *      getcontentlength, getlastmodified.
 *   2. A member is returned only with a decimal size and a clean name (no
 *      '/', no control character, not empty); anything else in the answer
 *      is skipped, never trusted (the input comes from the network).
 *      webdav_parse_dirs() returns the collections instead, with the same
 *      clean names, except the listed collection itself.
 *
 * Threads: pure functions; any thread.
 */
#include "storage/backend/webdav.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "storage/backend/objlist.h"
#include "storage/backend/xml.h"
#include "storage/base/sqlite.h"

static int
dav_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The decoded last segment of an href, or NULL when it is not a clean
 * name; *nomem on allocation failure.  A trailing '/' (a collection) is
 * stripped when dirs, else the href is no object. */
static char *
dav_name(const char *zHref, int dirs, int *nomem)
{
    size_t n = strlen(zHref), i, o = 0;
    const char *zSeg;
    char *z;

    if (n > 0 && zHref[n - 1] == '/') {
        if (!dirs)
            return NULL; /* a collection */
        n--;
    }
    zSeg = zHref + n;
    while (zSeg > zHref && zSeg[-1] != '/')
        zSeg--;
    n -= (size_t)(zSeg - zHref);
    if (n == 0)
        return NULL;
    z = sqlite3_malloc64(n + 1);
    if (z == NULL) {
        *nomem = 1;
        return NULL;
    }
    for (i = 0; i < n; i++) {
        int c = (unsigned char)zSeg[i];
        if (c == '%') {
            int hi = i + 2 < n ? dav_hex(zSeg[i + 1]) : -1;
            int lo = i + 2 < n ? dav_hex(zSeg[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                goto bad;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || c == '/')
            goto bad;
        z[o++] = (char)c;
    }
    z[o] = 0;
    return z;
bad:
    sqlite3_free(z);
    return NULL;
}

/* Whether an href (a path or an absolute URL) names the server path zSelf
 * (decoded), once percent-decoded and without trailing '/'. */
static int
dav_is_self(const char *zHref, const char *zSelf)
{
    const char *p = strstr(zHref, "://");
    size_t n, m = strlen(zSelf), i, j = 0;

    if (zHref[0] != '/' && p) {
        zHref = strchr(p + 3, '/');
        if (zHref == NULL)
            zHref = "";
    }
    n = strlen(zHref);
    while (n > 0 && zHref[n - 1] == '/')
        n--;
    while (m > 0 && zSelf[m - 1] == '/')
        m--;
    for (i = 0; i < n; i++, j++) {
        int c = (unsigned char)zHref[i];
        if (c == '%' && i + 2 < n && dav_hex(zHref[i + 1]) >= 0 &&
            dav_hex(zHref[i + 2]) >= 0) {
            c = dav_hex(zHref[i + 1]) * 16 + dav_hex(zHref[i + 2]);
            i += 2;
        }
        if (j >= m || (unsigned char)zSelf[j] != c)
            return 0;
    }
    return j == m;
}

/* Unix ms of "Mon, 07 Dec 2026 01:45:56 GMT"; 0 if malformed. */
static int64_t
dav_time(const char *z)
{
    static const char azMon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char zMon[4] = {0};
    int d, y, h, mi, s, m, used = 0;
    struct tm tm;

    if (z == NULL)
        return 0;
    while (*z == ' ' || *z == '\t' || *z == '\n' || *z == '\r')
        z++;
    if (strlen(z) < 29 ||
        sscanf(z + 5, "%2d %3c %4d %2d:%2d:%2d GMT%n", &d, zMon, &y, &h, &mi,
               &s, &used) != 6 ||
        used == 0)
        return 0;
    for (m = 0; m < 12; m++)
        if (memcmp(azMon + 3 * m, zMon, 3) == 0)
            break;
    if (m == 12 || d < 1 || d > 31 || y < 1970 || y > 9999 || h > 23 ||
        mi > 59 || s > 60 || h < 0 || mi < 0 || s < 0)
        return 0;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000;
}

/* Parses a decimal size; 1 on success. */
static int
dav_size(const char *z, uint64_t *v)
{
    size_t n = 0;

    if (z == NULL)
        return 0;
    while (*z == ' ' || *z == '\t' || *z == '\n' || *z == '\r')
        z++;
    *v = 0;
    for (; z[n] >= '0' && z[n] <= '9'; n++) {
        if (n >= 19)
            return 0;
        *v = *v * 10 + (uint64_t)(z[n] - '0');
    }
    return n > 0;
}

/* Fills *o from one <response>; 1 if it is an object (zSelf NULL) or a
 * collection other than zSelf (key allocated). */
static int
dav_member(const xml_node *r, const char *zSelf, backend_obj *o, int *nomem)
{
    const xml_node *ps, *prop = NULL;
    uint64_t size = 0;
    int has_size = 0, coll = 0;
    int64_t t = 0;

    for (ps = xml_child(r, "propstat"); ps; ps = xml_next(ps)) {
        const char *zSt = xml_text(ps, "status");
        prop = xml_child(ps, "prop");
        if (prop == NULL || (zSt && strstr(zSt, " 200") == NULL))
            continue;
        const xml_node *rt = xml_child(prop, "resourcetype");
        if (rt && xml_child(rt, "collection"))
            coll = 1;
        if (dav_size(xml_text(prop, "getcontentlength"), &size))
            has_size = 1;
        if (t == 0)
            t = dav_time(xml_text(prop, "getlastmodified"));
    }
    const char *zHref = xml_text(r, "href");
    if (zHref == NULL ||
        (zSelf ? !coll || dav_is_self(zHref, zSelf) : coll || !has_size))
        return 0;
    o->key = dav_name(zHref, zSelf != NULL, nomem);
    if (o->key == NULL)
        return 0;
    o->size = zSelf ? 0 : size;
    o->created_ms = t;
    return 1;
}

/* webdav_parse_propfind(), or with zSelf webdav_parse_dirs(). */
static int
dav_parse(const char *z, size_t n, const char *zSelf, backend_obj **objs,
          int *nObj, char **pzErr)
{
    xml_node *root = NULL;
    const xml_node *r;
    objlist l = {0};
    backend_obj *o;
    int nomem = 0, rc;

    *objs = NULL;
    *nObj = 0;
    if (pzErr)
        *pzErr = NULL;
    rc = xml_parse(z, n, &root, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    if (strcmp(root->name, "multistatus") != 0) {
        if (pzErr)
            *pzErr = sqlite3_mprintf("litestream: the PROPFIND answer is "
                                     "<%.40s>, not a <multistatus>",
                                     root->name);
        xml_free(root);
        return SQLITE_CORRUPT;
    }
    for (r = xml_child(root, "response"); r && !nomem; r = xml_next(r)) {
        if ((o = objlist_slot(&l)) == NULL)
            nomem = 1;
        else if (dav_member(r, zSelf, o, &nomem))
            l.n++;
    }
    xml_free(root);
    return objlist_finish(&l, nomem ? SQLITE_NOMEM : SQLITE_OK, objs, nObj);
}

int
webdav_parse_propfind(const char *z, size_t n, backend_obj **objs, int *nObj,
                      char **pzErr)
{
    return dav_parse(z, n, NULL, objs, nObj, pzErr);
}

int
webdav_parse_dirs(const char *z, size_t n, const char *zSelf,
                  backend_obj **objs, int *nObj, char **pzErr)
{
    return dav_parse(z, n, zSelf, objs, nObj, pzErr);
}
