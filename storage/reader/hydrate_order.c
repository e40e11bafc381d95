/*
 * storage/reader/hydrate_order.c: the reader's side of hydration
 * (hydrate.h, docs/remote.md "Hydration"): which orders to give the
 * hydrator, and which pages to read from its file.
 *
 * Let T be the TXID served, F the TXID the file holds (0: none) and G the
 * TXID of the last order submitted (F <= G).
 *
 * Invariants:
 *   1. A page is read from the file only when F > 0, T >= G and the
 *      page's newest frame (its object in the page map at T) ends at or
 *      before F.  Such a page has not changed in (F, T]; an order in
 *      flight (to G <= T) only writes pages changed after F; so the file
 *      holds it as it is at T.  Every other page comes from the cache or
 *      the replica as without hydration.
 *   2. Orders are made only here, on the reader's thread, when the
 *      hydrator is idle: incremental (the pages whose newest frame ends
 *      after F) when 0 < F < T; else a full rewrite of every page, after
 *      setting F to 0.  A file left by an earlier run is resumed like an
 *      incremental order from the TXID its meta file records (when that is
 *      <= T and the page size matches), and then checked whole against the
 *      replica's checksum at T; F stays 0 until that passes, and a
 *      mismatch rewrites it whole.  A full rewrite is checked the same
 *      way.
 *   3. Time travel by PRAGMA (reader_retarget() with a target) pauses
 *      hydration: no orders until the reader follows the latest state
 *      again; the file keeps its TXID and serves what invariant 1 allows.
 *      A target given at open is hydrated like the latest state.
 *
 * Threads: the reader's owner thread.
 */
#include <string.h>

#include "storage/reader/reader_int.h"
#include "storage/base/sqlite.h"

int
reader_hydrate_start(reader *r, const char *zPath)
{
    int rc = hydrator_open(r->u, backend_url(r->b), zPath, &r->hyd);
    if (rc == SQLITE_OK)
        reader_hydrate_kick(r);
    return rc;
}

/* 1 if page p goes into an order of pages changed after since (0: all;
 * all: every page, the hydrator filters). */
static int
order_has(const pagemap *pm, const pm_page *p, uint64_t since, int all)
{
    return p->obj && (all || pm->objs[p->obj - 1].info.max_txid > since);
}

/* The order of the pages whose newest frame ends after `since` (0: all),
 * or of every page when all; grouped by object.  NULL: out of memory. */
static hyd_order *
order_build(reader *r, uint64_t since, int all)
{
    const pagemap *pm = &r->map;
    hyd_order *o = sqlite3_malloc64(sizeof(*o));
    uint32_t *pos = sqlite3_malloc64(sizeof(uint32_t) * (pm->nobj + 1ull));
    uint32_t pg, k;

    if (o == NULL || pos == NULL)
        goto nomem;
    memset(o, 0, sizeof(*o));
    memset(pos, 0, sizeof(uint32_t) * (pm->nobj + 1ull));
    o->txid = pm->txid;
    o->checksum = pm->checksum;
    o->page_size = pm->page_size;
    o->npages = pm->npages;
    o->since = since;
    for (pg = 0; pg < pm->npages; pg++) /* pages per object */
        if (order_has(pm, &pm->pages[pg], since, all))
            pos[pm->pages[pg].obj - 1]++;
    o->keys = sqlite3_malloc64(sizeof(*o->keys) * (pm->nobj + 1ull));
    o->key_max = sqlite3_malloc64(sizeof(uint64_t) * (pm->nobj + 1ull));
    if (o->keys == NULL || o->key_max == NULL)
        goto nomem;
    for (k = 0; k < pm->nobj; k++) { /* key, max and first slot */
        uint32_t c = pos[k];
        pos[k] = o->n;
        o->n += c;
        o->key_max[k] = pm->objs[k].info.max_txid;
        if (o->key_max[k] > since)
            o->nwrite += c;
        if (c)
            reader_key(r, &pm->objs[k].info, o->keys[k]);
    }
    o->nkeys = pm->nobj;
    o->pages = sqlite3_malloc64(sizeof(hyd_page) * (o->n + 1ull));
    if (o->pages == NULL)
        goto nomem;
    for (pg = 0; pg < pm->npages; pg++) { /* ascending offset per object */
        const pm_page *p = &pm->pages[pg];
        if (order_has(pm, p, since, all))
            o->pages[pos[p->obj - 1]++] =
                (hyd_page){pg + 1, p->obj - 1, p->size, p->offset};
    }
    sqlite3_free(pos);
    return o;
nomem:
    sqlite3_free(pos);
    hydrator_order_free(o);
    return NULL;
}

/* What the last order's result asks of the reader; 0 if no order now. */
static int
kick_ready(reader *r)
{
    int64_t wait = 0;

    switch (hydrator_result(r->hyd, &wait)) {
    case HYD_RUNNING:
    case HYD_STOPPED:
        return 0;
    case HYD_VANISHED:
        r->stale = 1; /* the next poll re-plans, then a new order */
        return 0;
    case HYD_RETRY:
        r->hyd_retry_at = reader_now_ms() + wait;
        return 0;
    default:
        break;
    }
    return !r->travel && !r->stale && r->map.page_size &&
           reader_now_ms() >= r->hyd_retry_at;
}

void
reader_hydrate_kick(reader *r)
{
    uint64_t T = r->map.txid, F, since = 0;
    hyd_meta m;
    hyd_order *o;

    if (r->hyd == NULL || !kick_ready(r))
        return;
    F = hydrator_file_txid(r->hyd);
    if (F && F == T)
        return;
    if (F && F < T)
        since = F; /* incremental (invariant 2) */
    else if (!F && hydrator_meta(r->hyd, &m) &&
             m.page_size == r->map.page_size && m.txid <= T)
        since = m.txid; /* resume an earlier run's file, then check it */
    /* A resume lists every page: if the check fails, the hydrator
     * rewrites the file whole from the same order. */
    o = order_build(r, since, F == 0 && since != 0);
    if (o == NULL)
        return; /* out of memory: try again at the next transaction */
    o->verify = F == 0;
    if (since == 0)
        hydrator_invalidate(r->hyd);
    r->hyd_goal = T;
    hydrator_submit(r->hyd, o);
}

int
reader_hydrate_read(reader *r, uint32_t pgno, uint8_t *buf)
{
    const pm_object *obj;
    const pm_page *pg;
    uint64_t F;

    if (r->hyd == NULL)
        return 0;
    F = hydrator_file_txid(r->hyd);
    if (F == 0 || r->map.txid < F || r->map.txid < r->hyd_goal ||
        pagemap_lookup(&r->map, pgno, &obj, &pg) != SQLITE_OK ||
        obj->info.max_txid > F) /* invariant 1 */
        return 0;
    if (hydrator_read(r->hyd, pgno, r->map.page_size, buf) != 0)
        return 0;
    r->st.file_reads++;
    return 1;
}

void
reader_get_hydration(reader *r, reader_hydration *out)
{
    static const char *const azState[] = {"idle", "restoring", "catching_up",
                                          "complete", "failed"};
    hyd_status s;

    memset(out, 0, sizeof(*out));
    if (r->hyd == NULL) {
        out->zState = "idle";
        return;
    }
    hydrator_status(r->hyd, &s);
    out->enabled = 1;
    out->zState = azState[s.state];
    if (s.state == HYD_COMPLETE && s.file_txid != r->map.txid)
        out->zState = r->travel ? "paused" : "catching_up";
    out->progress = hydrator_progress(&s, r->map.txid);
    out->file_txid = s.file_txid;
    out->n_get = s.n_get;
    out->bytes_down = s.bytes_down;
    out->zPath = hydrator_path(r->hyd);
    if (out->zPath == NULL)
        out->zPath = "";
    memcpy(out->zErr, s.zErr, sizeof(out->zErr));
}

struct hydrator *
reader_hydrator(reader *r)
{
    return r->hyd;
}
