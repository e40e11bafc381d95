/*
 * storage/backend/layout.c: object naming and level listings (layout.h).
 *
 * The level directory format comes from the backend (vt->level_fmt), the
 * only per-backend difference in the layout; nothing here branches on a
 * backend's name.  The name parser is our own (not the codec's) so the
 * layout does not depend on the codec.
 *
 * Threads: the thread owning the backend handle.
 */
#include "storage/ltx/ltx.h"
#include "storage/backend/layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"

/* Writes the level directory ("ltx/3/") into buf; SQLITE_OK or error. */
static int
layout_dir(const backend *b, int level, char *buf, size_t n)
{
    int w;

    if (level < 0 || level > LAYOUT_MAX_LEVEL)
        return SQLITE_MISUSE;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    w = snprintf(buf, n, b->vt->level_fmt, level);
#pragma GCC diagnostic pop
    if (w < 0 || (size_t)w >= n)
        return SQLITE_TOOBIG;
    return SQLITE_OK;
}

int
layout_key(const backend *b, int level, uint64_t min, uint64_t max, char *buf,
           size_t n)
{
    char dir[32];
    int rc, w;

    if (n > 0)
        buf[0] = 0;
    if (min == 0 || min > max)
        return SQLITE_MISUSE;
    rc = layout_dir(b, level, dir, sizeof(dir));
    if (rc != SQLITE_OK)
        return rc;
    w = snprintf(buf, n, "%s%016llx-%016llx.ltx", dir, (unsigned long long)min,
                 (unsigned long long)max);
    if (w < 0 || (size_t)w >= n) {
        if (n > 0)
            buf[0] = 0;
        return SQLITE_TOOBIG;
    }
    return SQLITE_OK;
}

int
layout_parse_name(const char *zName, uint64_t *min, uint64_t *max)
{
    uint64_t a, b;
    /* The codec knows the name format; a listing also wants it sane. */
    if (!ltx_parse_name(zName, &a, &b) || a == 0 || a > b)
        return 0;
    *min = a;
    *max = b;
    return 1;
}

static int
info_cmp(const void *pa, const void *pb)
{
    const ltx_info *a = pa, *b = pb;
    if (a->min_txid != b->min_txid)
        return a->min_txid < b->min_txid ? -1 : 1;
    if (a->max_txid != b->max_txid)
        return a->max_txid < b->max_txid ? -1 : 1;
    return 0;
}

/* Appends the LTX objects of one level to *pA (*pN entries). */
static int
layout_append_level(backend *b, int level, ltx_info **pA, int *pN)
{
    backend_obj *objs = NULL;
    ltx_info *a;
    char dir[32];
    int nobj = 0, i, first = *pN, rc;

    rc = layout_dir(b, level, dir, sizeof(dir));
    if (rc == SQLITE_OK)
        rc = b->vt->list(b, dir, &objs, &nobj);
    if (rc != SQLITE_OK || nobj == 0)
        goto out;
    a = sqlite3_realloc64(*pA, sizeof(ltx_info) * (size_t)(*pN + nobj));
    if (a == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    *pA = a;
    for (i = 0; i < nobj; i++) {
        ltx_info *f = &a[*pN];
        if (!layout_parse_name(objs[i].key, &f->min_txid, &f->max_txid))
            continue;
        f->level = level;
        f->size = objs[i].size;
        f->created_ms = objs[i].created_ms;
        (*pN)++;
    }
    if (*pN - first > 1)
        qsort(a + first, (size_t)(*pN - first), sizeof(ltx_info), info_cmp);
out:
    backend_objs_free(objs, nobj);
    return rc;
}

int
layout_list_level(backend *b, int level, ltx_info **out, int *n)
{
    ltx_info *a = NULL;
    int na = 0, rc;

    *out = NULL;
    *n = 0;
    rc = layout_append_level(b, level, &a, &na);
    if (rc != SQLITE_OK || na == 0) {
        sqlite3_free(a);
        return rc;
    }
    *out = a;
    *n = na;
    return SQLITE_OK;
}

/* Orders by level, then as info_cmp. */
static int
info_level_cmp(const void *pa, const void *pb)
{
    const ltx_info *a = pa, *b = pb;

    if (a->level != b->level)
        return a->level < b->level ? -1 : 1;
    return info_cmp(pa, pb);
}

/* layout_list_all() through one listing of the whole tree. */
static int
layout_list_tree(backend *b, ltx_info **pA, int *pN)
{
    char dirs[LAYOUT_MAX_LEVEL + 1][32];
    backend_obj *objs = NULL;
    int nobj = 0, rc, level;

    for (level = 0; level <= LAYOUT_MAX_LEVEL; level++)
        if (layout_dir(b, level, dirs[level], sizeof(dirs[level])) != SQLITE_OK)
            return SQLITE_MISUSE;
    rc = b->vt->list_tree(b, "", &objs, &nobj);
    if (rc != SQLITE_OK || nobj == 0)
        goto out;
    *pA = sqlite3_malloc64(sizeof(ltx_info) * (size_t)nobj);
    if (*pA == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    for (int i = 0; i < nobj; i++) {
        ltx_info *f = &(*pA)[*pN];
        const char *zName = strrchr(objs[i].key, '/');
        size_t nDir = zName ? (size_t)(zName + 1 - objs[i].key) : 0;
        for (level = 0; level <= LAYOUT_MAX_LEVEL; level++)
            if (strlen(dirs[level]) == nDir &&
                memcmp(dirs[level], objs[i].key, nDir) == 0)
                break;
        if (level > LAYOUT_MAX_LEVEL || !zName ||
            !layout_parse_name(zName + 1, &f->min_txid, &f->max_txid))
            continue; /* not an LTX object of a level */
        f->level = level;
        f->size = objs[i].size;
        f->created_ms = objs[i].created_ms;
        (*pN)++;
    }
    if (*pN > 1)
        qsort(*pA, (size_t)*pN, sizeof(ltx_info), info_level_cmp);
out:
    backend_objs_free(objs, nobj);
    return rc;
}

int
layout_list_all(backend *b, ltx_info **out, int *n)
{
    ltx_info *a = NULL;
    int na = 0, level, rc = SQLITE_OK;

    *out = NULL;
    *n = 0;
    if (b->vt->list_tree)
        rc = layout_list_tree(b, &a, &na);
    else
        for (level = 0; level <= LAYOUT_MAX_LEVEL && rc == SQLITE_OK; level++)
            rc = layout_append_level(b, level, &a, &na);
    if (rc != SQLITE_OK || na == 0) {
        sqlite3_free(a);
        return rc;
    }
    *out = a;
    *n = na;
    return SQLITE_OK;
}
