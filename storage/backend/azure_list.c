/*
 * storage/backend/azure_list.c: decoding a List Blobs answer of Azure Blob
 * Storage (azure_client.h): the blobs with their sizes and creation times,
 * and the marker of the next page.  Input comes from the network: every
 * malformed answer is an error or is skipped, never a crash; fuzz target
 * test/fuzz/fuzz_azure.c.
 *
 * A blob's creation time is its metadata litestreamtimestamp (RFC 3339, as
 * the abs backend and Litestream write it; metadata names are compared
 * ignoring case, as Azure does), else its Last-Modified (an HTTP date),
 * else -1.
 *
 * Threads: pure functions; any thread.
 */
#include "storage/backend/azure_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"
#include "storage/backend/xml.h"

int
az_http_date(const char *z, int64_t *ms)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char zMon[4] = "";
    int d, y, hh, mm, ss, m, n = 0;
    const char *p;

    if (sscanf(z, "%*3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", &d, zMon,
               &y, &hh, &mm, &ss, &n) != 6 ||
        n == 0 || z[n] != 0 || strlen(zMon) != 3 ||
        (p = strstr(months, zMon)) == NULL || (p - months) % 3 != 0 || d < 1 ||
        d > 31 || y < 1970 || hh < 0 || hh > 23 || mm < 0 || mm > 59 ||
        ss < 0 || ss > 60)
        return 0;
    m = (int)(p - months) / 3 + 1;
    y -= m <= 2; /* days from civil (H. Hinnant), years 1969..9999 */
    int era = y / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + (int64_t)doe - 719468;
    *ms = ((days * 24 + hh) * 60 + mm) * 60000 + (int64_t)ss * 1000;
    return 1;
}

/* The text of the blob's metadata litestreamtimestamp (any case), or NULL. */
static const char *
az_meta_time(const xml_node *blob)
{
    const xml_node *m = xml_child(blob, "Metadata");

    for (m = m ? m->child : NULL; m; m = m->next)
        if (sqlite3_stricmp(m->name, "litestreamtimestamp") == 0)
            return m->text;
    return NULL;
}

/* Appends the <Blob>s of a page to *objs. */
static int
az_list_blobs(const xml_node *root, size_t nPrefix, backend_obj **objs, int *n,
              int *nAlloc)
{
    const xml_node *blobs = xml_child(root, "Blobs"), *x;

    for (x = blobs ? xml_child(blobs, "Blob") : NULL; x; x = xml_next(x)) {
        const char *zName = xml_text(x, "Name");
        const char *zSize = xml_text(x, "Properties/Content-Length");
        const char *zMeta = az_meta_time(x);
        const char *zMod = xml_text(x, "Properties/Last-Modified");
        if (zName == NULL || strlen(zName) <= nPrefix)
            continue;
        if (*n == *nAlloc) {
            int k = *nAlloc ? *nAlloc * 2 : 64;
            backend_obj *p =
                sqlite3_realloc64(*objs, sizeof(**objs) * (uint64_t)k);
            if (p == NULL)
                return SQLITE_NOMEM;
            *objs = p;
            *nAlloc = k;
        }
        backend_obj *o = &(*objs)[*n];
        o->key = sqlite3_mprintf("%s", zName + nPrefix);
        o->size = zSize ? strtoull(zSize, NULL, 10) : 0;
        if ((!zMeta || !timefmt_parse_time(zMeta, &o->created_ms)) &&
            (!zMod || !az_http_date(zMod, &o->created_ms)))
            o->created_ms = -1;
        if (o->key == NULL)
            return SQLITE_NOMEM;
        (*n)++;
    }
    return SQLITE_OK;
}

int
az_list_decode(const char *z, size_t nz, size_t nPrefix, backend_obj **objs,
               int *n, int *nAlloc, char **pzNext, char **pzErr)
{
    xml_node *x = NULL;
    int rc = xml_parse(z ? z : "", z ? nz : 0, &x, pzErr);

    *pzNext = NULL;
    if (rc == SQLITE_OK)
        rc = az_list_blobs(x, nPrefix, objs, n, nAlloc);
    if (rc == SQLITE_OK) {
        const char *zNext = xml_text(x, "NextMarker");
        if (zNext && zNext[0] &&
            (*pzNext = sqlite3_mprintf("%s", zNext)) == NULL)
            rc = SQLITE_NOMEM;
    }
    xml_free(x);
    return rc;
}
