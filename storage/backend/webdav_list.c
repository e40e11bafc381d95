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

/* The decoded last segment of an href (trailing '/' ignored), or NULL when
 * it is not a clean name; *nomem on allocation failure. */
static char *
dav_name(const char *zHref, int *nomem)
{
    size_t n = strlen(zHref), i, o = 0;
    const char *zSeg;
    char *z;

    if (n > 0 && zHref[n - 1] == '/')
        return NULL; /* a collection */
    zSeg = zHref + n;
    while (zSeg > zHref && zSeg[-1] != '/')
        zSeg--;
    n = strlen(zSeg);
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

/* Fills *o from one <response>; 1 if it is an object (key allocated). */
static int
dav_member(const xml_node *r, backend_obj *o, int *nomem)
{
    const xml_node *ps, *prop = NULL;
    uint64_t size = 0;
    int has_size = 0;
    int64_t t = 0;

    for (ps = xml_child(r, "propstat"); ps; ps = xml_next(ps)) {
        const char *zSt = xml_text(ps, "status");
        prop = xml_child(ps, "prop");
        if (prop == NULL || (zSt && strstr(zSt, " 200") == NULL))
            continue;
        const xml_node *rt = xml_child(prop, "resourcetype");
        if (rt && xml_child(rt, "collection"))
            return 0;
        if (dav_size(xml_text(prop, "getcontentlength"), &size))
            has_size = 1;
        if (t == 0)
            t = dav_time(xml_text(prop, "getlastmodified"));
    }
    const char *zHref = xml_text(r, "href");
    if (!has_size || zHref == NULL)
        return 0;
    o->key = dav_name(zHref, nomem);
    if (o->key == NULL)
        return 0;
    o->size = size;
    o->created_ms = t;
    return 1;
}

int
webdav_parse_propfind(const char *z, size_t n, backend_obj **objs, int *nObj,
                      char **pzErr)
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
        else if (dav_member(r, o, &nomem))
            l.n++;
    }
    xml_free(root);
    return objlist_finish(&l, nomem ? SQLITE_NOMEM : SQLITE_OK, objs, nObj);
}
