/*
 * storage/replicate/batch.c: an upload batch (batch.h): spooled records
 * reduced to the newest copy of each page.
 *
 * Invariants:
 *   1. b->map holds, for each page number seen since the last full image
 *      record, the newest copy; live[k] counts the pages record k is the
 *      newest copy of, and a record whose count drops to 0 is freed.
 *   2. b->pages (after batch_sort) is ascending and holds no page beyond
 *      b->commit.
 *
 * Replicator thread only.
 */
#include "storage/replicate/batch.h"

#include <stdlib.h>
#include <string.h>

#include "storage/base/mem.h"
#include "storage/base/sqlite.h"
#include "storage/ltx/ltx.h"

static void
map_free(batch_map *m)
{
    ls_free(m->key);
    ls_free(m->val);
    memset(m, 0, sizeof(*m));
}

static void
map_clear(batch_map *m)
{
    if (m->key)
        memset(m->key, 0, sizeof(*m->key) * m->cap);
    m->n = 0;
}

static uint32_t
map_slot(const batch_map *m, uint32_t k)
{
    uint32_t i = (k * 2654435761u) & (m->cap - 1);
    while (m->key[i] && m->key[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Doubles the table (1024 slots at first).  0, or -1 out of memory. */
static int
map_grow(batch_map *m)
{
    batch_map g = {0};
    g.cap = m->cap ? m->cap * 2 : 1024;
    g.key = ls_malloc(sizeof(*g.key) * g.cap);
    g.val = ls_malloc(sizeof(*g.val) * g.cap);
    if (!g.key || !g.val) {
        map_free(&g);
        return -1;
    }
    memset(g.key, 0, sizeof(*g.key) * g.cap);
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->key[i]) {
            uint32_t j = map_slot(&g, m->key[i]);
            g.key[j] = m->key[i];
            g.val[j] = m->val[i];
            g.n++;
        }
    map_free(m);
    *m = g;
    return 0;
}

/* Sets k -> v.  1 if k was there (*old = its value), 0 if new, -1 NOMEM. */
static int
map_put(batch_map *m, uint32_t k, uint64_t v, uint64_t *old)
{
    if ((uint64_t)(m->n + 1) * 2 > m->cap && map_grow(m) != 0)
        return -1;
    uint32_t i = map_slot(m, k);
    if (m->key[i]) {
        *old = m->val[i];
        m->val[i] = v;
        return 1;
    }
    m->key[i] = k;
    m->val[i] = v;
    m->n++;
    return 0;
}

/*
 * A full image record (just read into recs[nrec]) supersedes everything
 * before it in this object: the object still covers from..to, its pages
 * are the image and what follows it.  The image moves to recs[0].
 */
static void
restart_at_image(batch *b)
{
    spool_txn *rec = &b->recs[b->nrec];
    for (uint64_t i = 0; i < b->nrec; i++)
        spool_txn_free(&b->recs[i]);
    b->recs[0] = *rec;
    if (b->nrec)
        memset(rec, 0, sizeof(*rec));
    b->nrec = 0;
    map_clear(&b->map);
    b->image_base = 1;
    b->marker = 0;
    b->page_size = 0;
}

/*
 * Makes record recs[nrec] the newest copy of its pages; a record left
 * with no page in the object is released at once.  SQLITE_OK or
 * SQLITE_NOMEM.
 */
static int
add_pages(batch *b)
{
    const spool_txn *rec = &b->recs[b->nrec];
    uint64_t k = b->nrec;

    b->live[k] = 0;
    for (uint32_t j = 0; j < rec->npages; j++) {
        uint64_t old;
        int had = map_put(&b->map, rec->pgnos[j], (k << 32) | j, &old);
        if (had < 0)
            return SQLITE_NOMEM;
        if (had) {
            uint64_t o = old >> 32;
            if (o != k && --b->live[o] == 0)
                spool_txn_free(&b->recs[o]);
        }
        if (!had || (old >> 32) != k)
            b->live[k]++;
    }
    return SQLITE_OK;
}

/*
 * Adds record recs[nrec] (read for TXIDs up to t).  SQLITE_OK (with need_full
 * on a page size change) or SQLITE_NOMEM.
 */
static int
add_record(batch *b, uint64_t t)
{
    spool_txn *rec = &b->recs[b->nrec];

    if (rec->flags & SPOOL_F_IMAGE) {
        restart_at_image(b);
        rec = &b->recs[0];
    } else if (rec->flags & SPOOL_F_FULL) {
        b->marker = 1;
    }
    if (rec->npages) {
        if (b->page_size == 0)
            b->page_size = rec->page_size;
        if (rec->page_size != b->page_size) {
            /* page_size changed (VACUUM): only a full image is right. */
            b->need_full = 1;
            return SQLITE_OK;
        }
    }
    int rc = add_pages(b);
    if (rc != SQLITE_OK)
        return rc;
    b->commit = rec->commit;
    b->last_pos = rec->pos;
    b->nrec++;
    b->to = t;
    return SQLITE_OK;
}

/* Room for more records (a record holds one TXID or a run of them, so
 * their number is not known in advance). */
static int
recs_grow(batch *b)
{
    uint64_t n = b->nalloc ? b->nalloc * 2 : 64;
    spool_txn *recs = ls_realloc(b->recs, sizeof(*recs) * n);
    if (recs)
        b->recs = recs;
    uint32_t *live = recs ? ls_realloc(b->live, sizeof(*live) * n) : NULL;
    if (!live)
        return SQLITE_NOMEM;
    b->live = live;
    memset(b->recs + b->nalloc, 0, sizeof(*recs) * (n - b->nalloc));
    b->nalloc = n;
    return SQLITE_OK;
}

int
batch_read(batch *b, spool *sp, uint64_t from, uint64_t to, uint64_t max_bytes,
           char **pzErr)
{
    memset(b, 0, sizeof(*b));
    b->from = from;
    b->to = from - 1;
    for (uint64_t t = from - 1; t < to;) {
        if (b->nrec == b->nalloc && recs_grow(b) != SQLITE_OK)
            return SQLITE_NOMEM;
        /* A record may hold a run of TXIDs: the next is the one that
         * continues after t (spool.h). */
        int rc = spool_read_next(sp, t, &b->recs[b->nrec]);
        if (rc != SQLITE_OK) {
            *pzErr =
                sqlite3_mprintf("litestream: spool record %llu "
                                "unreadable (%s): taking a full image",
                                (unsigned long long)t + 1, sqlite3_errstr(rc));
            b->need_full = 1;
            return rc;
        }
        t = b->recs[b->nrec].txid_max;
        rc = add_record(b, t);
        if (rc != SQLITE_OK || b->need_full)
            return rc;
        if ((uint64_t)b->map.n * b->page_size > max_bytes && !b->marker)
            break; /* the rest goes in the next object */
    }
    if (b->marker)
        b->need_full = 1; /* needs an image nobody has read yet */
    return SQLITE_OK;
}

static int
page_cmp(const void *a, const void *b)
{
    const batch_page *x = a, *y = b;
    if (x->pgno != y->pgno)
        return x->pgno < y->pgno ? -1 : 1;
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

int
batch_sort(batch *b)
{
    b->pages = ls_malloc(sizeof(*b->pages) * ((uint64_t)b->map.n + 1));
    if (!b->pages)
        return SQLITE_NOMEM;
    b->npages = 0;
    for (uint32_t k = 0; k < b->map.cap; k++)
        if (b->map.key[k] && b->map.key[k] <= b->commit)
            b->pages[b->npages++] =
                (batch_page){b->map.key[k], (uint32_t)(b->map.val[k] >> 32),
                             (uint32_t)b->map.val[k]};
    if (b->npages > 1)
        qsort(b->pages, b->npages, sizeof(*b->pages), page_cmp);
    return SQLITE_OK;
}

int
batch_complete(const batch *b, uint32_t base_commit)
{
    uint32_t expect = base_commit + 1;
    uint32_t lock = ltx_lock_pgno(b->page_size);

    for (uint64_t i = 0; i < b->npages; i++) {
        if (b->pages[i].pgno < expect)
            continue;
        while (expect == lock && expect < b->pages[i].pgno)
            expect++;
        if (b->pages[i].pgno != expect)
            break;
        expect++;
    }
    if (expect == lock)
        expect++;
    return !(b->commit > base_commit && expect <= b->commit);
}

const uint8_t *
batch_page_data(const batch *b, uint64_t i, uint8_t *scratch)
{
    const batch_page *p = &b->pages[i];
    return spool_txn_page(&b->recs[p->rec], p->idx, scratch);
}

void
batch_free(batch *b)
{
    for (uint64_t i = 0; i < b->nalloc && b->recs; i++)
        spool_txn_free(&b->recs[i]);
    ls_free(b->recs);
    ls_free(b->live);
    map_free(&b->map);
    ls_free(b->pages);
    memset(b, 0, sizeof(*b));
}
