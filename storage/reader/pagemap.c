/*
 * storage/reader/pagemap.c: the read replica's page index (pagemap.h).
 *
 * Invariants:
 *   1. pages[0 .. npages) describe the database at TXID txid; every
 *      pages[i].obj is 0 or a valid index + 1 into objs, and objs[k].refs
 *      counts the pages pointing at object k.
 *   2. pagemap_apply either applies the whole object or changes nothing:
 *      it allocates everything it needs before the first change.
 *   3. Objects with no reference are removed (the array compacted and the
 *      pages renumbered) once they are more than half of the array, so a
 *      reader following a replica for days keeps only what it uses.
 *
 * Threads: one owner thread.
 */
#include "storage/reader/pagemap.h"

#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"

void
pagemap_clear(pagemap *pm)
{
    sqlite3_free(pm->objs);
    sqlite3_free(pm->pages);
    memset(pm, 0, sizeof(*pm));
}

void
pagemap_loaded_free(pm_loaded *o)
{
    if (o == NULL)
        return;
    free(o->index);
    memset(o, 0, sizeof(*o));
}

int
pagemap_is_full(const pm_loaded *o)
{
    uint32_t lock = ltx_lock_pgno(o->hdr.page_size);
    uint32_t want = o->hdr.commit - (o->hdr.commit >= lock ? 1 : 0);

    /* The index is strictly ascending (ltx_index_parse checks it), so n
     * distinct pages, none above commit, none the lock page, are all. */
    return o->hdr.commit > 0 && o->n == want &&
           o->index[o->n - 1].pgno <= o->hdr.commit;
}

/* Grows the arrays so that o can be applied without failing. */
static int
pm_reserve(pagemap *pm, uint32_t npages)
{
    if (pm->nobj == pm->capobj) {
        uint32_t n = pm->capobj ? pm->capobj * 2 : 16;
        pm_object *a = sqlite3_realloc64(pm->objs, sizeof(*a) * n);
        if (a == NULL)
            return SQLITE_NOMEM;
        pm->objs = a;
        pm->capobj = n;
    }
    if (npages > pm->cappages) {
        uint64_t n = pm->cappages ? pm->cappages : 64;
        while (n < npages)
            n *= 2;
        pm_page *a = sqlite3_realloc64(pm->pages, sizeof(*a) * n);
        if (a == NULL)
            return SQLITE_NOMEM;
        pm->pages = a;
        pm->cappages = (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n);
    }
    return SQLITE_OK;
}

/* Drops pages [from, npages) and their references. */
static void
pm_truncate(pagemap *pm, uint32_t from)
{
    uint32_t i;

    for (i = from; i < pm->npages; i++)
        if (pm->pages[i].obj)
            pm->objs[pm->pages[i].obj - 1].refs--;
    pm->npages = from;
}

/* Removes unreferenced objects, renumbering the pages (invariant 3). */
static void
pm_compact(pagemap *pm)
{
    uint32_t *remap, i, k = 0, dead = 0;

    for (i = 0; i < pm->nobj; i++)
        dead += pm->objs[i].refs == 0;
    if (dead < 8 || dead * 2 < pm->nobj)
        return;
    remap = sqlite3_malloc64(sizeof(uint32_t) * pm->nobj);
    if (remap == NULL)
        return; /* best effort */
    for (i = 0; i < pm->nobj; i++) {
        remap[i] = 0;
        if (pm->objs[i].refs == 0)
            continue;
        pm->objs[k] = pm->objs[i];
        remap[i] = ++k;
    }
    pm->nobj = k;
    for (i = 0; i < pm->npages; i++)
        if (pm->pages[i].obj)
            pm->pages[i].obj = remap[pm->pages[i].obj - 1];
    sqlite3_free(remap);
}

/* Checks that o may be applied to pm; SQLITE_OK or SQLITE_CORRUPT. */
static int
pm_check(const pagemap *pm, const pm_loaded *o, int full, char **pzErr)
{
    const char *zWhy = NULL;

    if (!full && pm->page_size == 0)
        zWhy = "the first object of a chain must hold every page";
    else if (!full && o->hdr.page_size != pm->page_size)
        zWhy = "its page size differs and it is not a full image";
    else if (!full &&
             (o->info.min_txid > pm->txid + 1 || o->info.max_txid <= pm->txid))
        zWhy = "it does not continue the TXIDs already applied";
    if (zWhy == NULL)
        return SQLITE_OK;
    if (pzErr)
        *pzErr = sqlite3_mprintf(
            "litestream: LTX object %016llx-%016llx (level %d) cannot "
            "follow TXID %016llx: %s",
            (unsigned long long)o->info.min_txid,
            (unsigned long long)o->info.max_txid, o->info.level,
            (unsigned long long)pm->txid, zWhy);
    return SQLITE_CORRUPT;
}

int
pagemap_apply(pagemap *pm, const pm_loaded *o, uint64_t uid, char **pzErr)
{
    int full = pagemap_is_full(o), rc;
    uint32_t i, k, commit = o->hdr.commit;
    pm_object *obj;

    if (pzErr)
        *pzErr = NULL;
    rc = pm_check(pm, o, full, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    rc = pm_reserve(pm, commit);
    if (rc != SQLITE_OK)
        return rc;
    if (full) {
        pm_truncate(pm, 0);
        pm->page_size = o->hdr.page_size;
    } else if (commit < pm->npages) {
        pm_truncate(pm, commit); /* shrink */
    }
    for (i = pm->npages; i < commit; i++)
        pm->pages[i] = (pm_page){0, 0, 0};
    pm->npages = commit;
    k = pm->nobj++;
    obj = &pm->objs[k];
    obj->uid = uid;
    obj->info = o->info;
    obj->timestamp = o->hdr.timestamp;
    obj->refs = 0;
    for (i = 0; i < o->n; i++) {
        pm_page *p;
        if (o->index[i].pgno > commit)
            break; /* ascending: the rest is beyond too */
        p = &pm->pages[o->index[i].pgno - 1];
        if (p->obj)
            pm->objs[p->obj - 1].refs--;
        p->obj = k + 1;
        p->offset = o->index[i].offset;
        p->size = o->index[i].size;
        obj->refs++;
    }
    pm->txid = o->info.max_txid;
    pm->txid_ms = o->hdr.timestamp;
    pm->checksum = o->post_apply;
    if (o->info.created_ms > pm->newest_ms)
        pm->newest_ms = o->info.created_ms;
    pm_compact(pm);
    return SQLITE_OK;
}

int
pagemap_lookup(const pagemap *pm, uint32_t pgno, const pm_object **obj,
               const pm_page **page)
{
    const pm_page *p;

    if (pgno == 0 || pgno > pm->npages)
        return SQLITE_NOTFOUND;
    p = &pm->pages[pgno - 1];
    if (p->obj == 0)
        return SQLITE_NOTFOUND;
    *obj = &pm->objs[p->obj - 1];
    *page = p;
    return SQLITE_OK;
}
