/*
 * storage/reader/reader.c: the read replica's open and read path (reader.h).
 *
 * Invariants:
 *   1. A page handed out is either the lock page (zeros) or the frame the
 *      page map names, decoded; a cache entry is keyed by the object's uid,
 *      so it can never be a frame of another object.
 *   2. Read-ahead only takes frames of the same object that follow the
 *      requested one in the file (one contiguous byte range), at most
 *      READER_RA_MAX_PAGES / READER_RA_MAX_BYTES and a quarter of the
 *      cache; a miss that is not near the end of the previous run resets
 *      the window to one page, so random lookups fetch one frame each.
 *   3. A frame that cannot be fetched (object gone) or decoded (object
 *      replaced) makes one re-plan for exactly the TXID served and one
 *      retry; if that TXID is no longer restorable the read fails and the
 *      next poll re-plans (stale).
 *
 * Threads: the reader's owner thread.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/reader/reader_int.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"

int
reader_open(const char *zUrl, const reader_opts *o, reader **out, char **pzErr)
{
    reader *r = sqlite3_malloc64(sizeof(*r));
    int rc = SQLITE_NOMEM;

    *out = NULL;
    *pzErr = NULL;
    if (r == NULL)
        goto out;
    memset(r, 0, sizeof(*r));
    r->next_uid = 1;
    r->ra_pages = 1;
    r->poll_ms = o->poll_ms;
    rc = url_parse(zUrl, &r->u, pzErr);
    if (rc == SQLITE_OK)
        rc = backend_open_url(r->u, &r->b, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    rc = pagecache_open(o->cache_bytes, &r->cache);
    if (rc != SQLITE_OK)
        goto out;
    rc = reader_build(r, o->target_txid, o->target_ms, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    r->target_txid = o->target_txid;
    r->target_ms = o->target_txid ? 0 : o->target_ms;
    r->last_poll = reader_now_ms();
    if (o->hydrate &&
        (rc = reader_hydrate_start(r, o->hydrate_path)) != SQLITE_OK)
        goto out;
    *out = r;
    r = NULL;
out:
    if (rc == SQLITE_NOMEM && *pzErr == NULL)
        *pzErr = sqlite3_mprintf("litestream: out of memory");
    reader_close(r);
    return rc;
}

void
reader_close(reader *r)
{
    if (r == NULL)
        return;
    hydrator_close(r->hyd); /* joins its thread, which uses r->u */
    pagemap_clear(&r->map);
    pagecache_close(r->cache);
    backend_close(r->b);
    url_free(r->u);
    sqlite3_free(r->page);
    sqlite3_free(r->zErr);
    sqlite3_free(r);
}

/* The last page of the read-ahead run starting at pgno (invariant 2);
 * *end is the byte offset after its frame. */
static uint32_t
read_run(reader *r, uint32_t pgno, const pm_object *obj, const pm_page *pg,
         uint64_t *end)
{
    uint32_t ps = r->map.page_size, lock = ltx_lock_pgno(ps);
    uint32_t last = pgno, n = 1, max = r->ra_pages;
    uint32_t quarter = pagecache_capacity(r->cache, ps) / 4;

    if (max > READER_RA_MAX_PAGES)
        max = READER_RA_MAX_PAGES;
    if (max > quarter)
        max = quarter ? quarter : 1;
    *end = pg->offset + pg->size;
    while (n < max) {
        const pm_object *o2;
        const pm_page *p2;
        uint32_t next = last + 1 == lock ? last + 2 : last + 1;
        if (pagemap_lookup(&r->map, next, &o2, &p2) != SQLITE_OK ||
            o2->uid != obj->uid || p2->offset != *end ||
            *end + p2->size - pg->offset > READER_RA_MAX_BYTES)
            break;
        last = next;
        *end += p2->size;
        n++;
    }
    return last;
}

/* Decodes page q of the run held in buf (starting at byte start) straight
 * into a new cache entry. */
static int
read_decode(reader *r, const char *key, const uint8_t *buf, uint64_t start,
            uint32_t q, char **pzErr)
{
    const pm_object *o;
    const pm_page *p;
    uint32_t ps = r->map.page_size;
    char zLtx[256];
    uint8_t *dst;
    int rc;

    pagemap_lookup(&r->map, q, &o, &p);
    dst = pagecache_reserve(r->cache, o->uid, q, ps);
    if (dst == NULL)
        return SQLITE_NOMEM;
    rc = ltx_frame_decode(buf + (p->offset - start), p->size, ps, q, dst, zLtx,
                          sizeof(zLtx));
    if (rc != SQLITE_OK) {
        pagecache_drop(r->cache, o->uid, q);
        *pzErr = sqlite3_mprintf("litestream: corrupt LTX object '%s' in "
                                 "'%s': %s",
                                 key, backend_url(r->b), zLtx);
        return SQLITE_CORRUPT;
    }
    r->st.pages_fetched++;
    return SQLITE_OK;
}

/* Fetches pgno (and the read-ahead run after it) with one GET. */
static int
read_fetch(reader *r, uint32_t pgno, const pm_object *obj, const pm_page *pg,
           char **pzErr)
{
    char key[LAYOUT_KEY_SIZE];
    uint32_t lock = ltx_lock_pgno(r->map.page_size), last, q;
    uint64_t end;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc;

    if (r->ra_next && pgno >= r->ra_next && pgno <= r->ra_next + 8)
        r->ra_pages =
            r->ra_pages < READER_RA_MAX_PAGES ? r->ra_pages * 2 : r->ra_pages;
    else
        r->ra_pages = 1;
    last = read_run(r, pgno, obj, pg, &end);
    reader_key(r, &obj->info, key);
    rc = backend_get(r->b, key, pg->offset, end - pg->offset, &buf, &n);
    if (rc == SQLITE_OK && n != end - pg->offset)
        rc = SQLITE_NOTFOUND;
    if (rc != SQLITE_OK) {
        const char *zWhy = n ? "it changed" : backend_why(r->b);
        *pzErr = sqlite3_mprintf("litestream: cannot read page %u from '%s' "
                                 "in '%s': %s",
                                 pgno, key, backend_url(r->b), zWhy);
        goto out;
    }
    /* The run's other pages first: the requested one is the most recent
     * entry, never evicted before the caller copies it. */
    for (q = pgno + 1; q <= last && rc == SQLITE_OK; q++)
        if (q != lock)
            rc = read_decode(r, key, buf, pg->offset, q, pzErr);
    if (rc == SQLITE_OK)
        rc = read_decode(r, key, buf, pg->offset, pgno, pzErr);
    r->ra_next = last + 1;
out:
    sqlite3_free(buf);
    return rc;
}

/* One attempt at page pgno. */
static int
read_once(reader *r, uint32_t pgno, const uint8_t **out, char **pzErr)
{
    const pm_object *obj;
    const pm_page *pg;
    const uint8_t *c;
    int rc;

    if (pagemap_lookup(&r->map, pgno, &obj, &pg) != SQLITE_OK) {
        *pzErr = sqlite3_mprintf("litestream: page %u is missing from the "
                                 "replica '%s' at TXID %016llx",
                                 pgno, backend_url(r->b),
                                 (unsigned long long)r->map.txid);
        return SQLITE_CORRUPT;
    }
    c = pagecache_get(r->cache, obj->uid, pgno, r->map.page_size);
    if (c) {
        r->st.cache_hits++;
        *out = c;
        return SQLITE_OK;
    }
    r->st.cache_misses++;
    rc = read_fetch(r, pgno, obj, pg, pzErr);
    if (rc == SQLITE_OK) /* decoded last: still cached (quarter rule) */
        *out = pagecache_get(r->cache, obj->uid, pgno, r->map.page_size);
    return rc;
}

int
reader_read(reader *r, uint32_t pgno, const uint8_t **page)
{
    uint32_t ps = r->map.page_size;
    char *zErr = NULL;
    int rc, again;

    *page = NULL;
    if (pgno == 0 || pgno > r->map.npages)
        return SQLITE_IOERR_SHORT_READ;
    if (r->page_cap < ps) {
        sqlite3_free(r->page);
        r->page = sqlite3_malloc64(ps);
        r->page_cap = r->page ? ps : 0;
        if (r->page == NULL)
            return SQLITE_NOMEM;
    }
    if (pgno == ltx_lock_pgno(ps)) {
        memset(r->page, 0, ps);
        *page = r->page;
        return SQLITE_OK;
    }
    if (reader_hydrate_read(r, pgno, r->page)) {
        *page = r->page;
        return SQLITE_OK;
    }
    rc = read_once(r, pgno, page, &zErr);
    again = rc == SQLITE_CORRUPT || rc == SQLITE_NOTFOUND;
    if (again) {
        /* Invariant 3: the same TXID from whatever objects hold it now. */
        uint64_t txid = r->map.txid;
        char *zPlan = NULL;
        int rc2 = reader_build(r, txid, 0, &zPlan);
        if (rc2 == SQLITE_OK && r->map.npages >= pgno) {
            sqlite3_free(zErr);
            zErr = NULL;
            rc = read_once(r, pgno, page, &zErr);
        } else if (rc2 != SQLITE_OK && rc == SQLITE_NOTFOUND) {
            r->stale = 1;
            sqlite3_free(zErr);
            zErr = sqlite3_mprintf("litestream: TXID %016llx is no longer "
                                   "available from '%s' (compacted or "
                                   "removed meanwhile): retry the "
                                   "transaction; %s",
                                   (unsigned long long)txid, backend_url(r->b),
                                   zPlan ? zPlan : "");
            rc = SQLITE_IOERR;
        }
        sqlite3_free(zPlan);
    }
    if (rc == SQLITE_NOTFOUND)
        rc = SQLITE_IOERR;
    if (rc != SQLITE_OK) {
        sqlite3_log(rc, "%s", zErr ? zErr : "litestream: read failed");
        return reader_seterr(r, rc, zErr);
    }
    sqlite3_free(zErr);
    return SQLITE_OK;
}

int
reader_retarget(reader *r, uint64_t target_txid, int64_t target_ms,
                char **pzErr)
{
    int rc;

    if (target_txid)
        target_ms = 0;
    rc = reader_build(r, target_txid, target_ms, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    r->target_txid = target_txid;
    r->target_ms = target_ms;
    r->travel = target_txid != 0 || target_ms != 0; /* pauses hydration */
    r->stale = 0;
    r->last_poll = reader_now_ms();
    return SQLITE_OK;
}

int
reader_wait_txid(reader *r, uint64_t txid, int timeout_ms, char **pzErr)
{
    int64_t deadline = reader_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int step = r->poll_ms > 0 && r->poll_ms < 100 ? r->poll_ms : 100;

    *pzErr = NULL;
    for (;;) {
        if (r->map.txid >= txid)
            return SQLITE_OK;
        int64_t left = deadline - reader_now_ms();
        if (left <= 0 || r->target_txid || r->target_ms)
            break;
        usleep((useconds_t)(left < step ? left : step) * 1000);
        reader_poll(r, 1);
    }
    *pzErr = sqlite3_mprintf("litestream: TXID %016llx is not visible in "
                             "'%s' after %d ms (it serves %016llx)%s%s",
                             (unsigned long long)txid, backend_url(r->b),
                             timeout_ms, (unsigned long long)r->map.txid,
                             r->zErr ? ": " : "", r->zErr ? r->zErr : "");
    return SQLITE_BUSY;
}

uint32_t
reader_page_size(const reader *r)
{
    return r->map.page_size;
}

uint32_t
reader_npages(const reader *r)
{
    return r->map.npages;
}

uint64_t
reader_txid(const reader *r)
{
    return r->map.txid;
}

int64_t
reader_txid_ms(const reader *r)
{
    return r->map.txid_ms;
}

int64_t
reader_newest_ms(const reader *r)
{
    return r->map.newest_ms;
}

int
reader_pinned(const reader *r)
{
    return r->target_txid != 0 || r->target_ms != 0;
}

const char *
reader_url(const reader *r)
{
    return backend_url(r->b);
}

const char *
reader_errmsg(const reader *r)
{
    return r->zErr ? r->zErr : "";
}

void
reader_get_stats(reader *r, reader_stats *out)
{
    const backend_counters *c = backend_get_counters(r->b);

    *out = r->st;
    out->requests = *c;
    out->requests.n_get += r->extra.n_get;
    out->requests.n_list += r->extra.n_list;
    out->requests.bytes_down += r->extra.bytes_down;
}
