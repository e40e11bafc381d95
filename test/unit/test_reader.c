/*
 * test_reader.c: the read replica's engine without SQLite's VFS in the way
 * (storage/reader/reader.c, plan.c, pagemap.c, pagecache.c),
 * under the sanitizers with leak checking.
 *
 * Replicas are written by hand with the codec's encoder; page pgno at TXID
 * t holds a pattern naming (pgno, t), so every read says which version it
 * got.  What a user relies on:
 *   - the state at the latest TXID, at a TXID, after polls, across a
 *     shrink, a growth and a page size change, page for page;
 *   - the cache is bounded; a sequential read takes few requests;
 *   - an index larger than the first tail guess is fetched whole;
 *   - an object that moved to another level is found again, one that
 *     vanished or is corrupt gives an error naming it;
 *   - timestamps parse and print as RFC 3339.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/backend.h"
#include "storage/backend/layout.h"
#include "storage/ltx/ltx.h"
#include "storage/reader/pagecache.h"
#include "storage/reader/pagemap.h"
#include "storage/reader/reader.h"
#include "test/tap.h"
#include "test/unit/api_init.h"
#include "test/unit/membuf.h"

static char dir[256];

static void
fill(uint8_t *p, uint32_t ps, uint32_t pgno, uint64_t t)
{
    memset(p, (int)((pgno * 7 + t) & 0xff), ps);
    memcpy(p, &pgno, 4);
    memcpy(p + 4, &t, 8);
}

static int
is_version(const uint8_t *p, uint32_t ps, uint32_t pgno, uint64_t t)
{
    uint8_t *want = malloc(ps);
    int same;
    fill(want, ps, pgno, t);
    same = memcmp(p, want, ps) == 0;
    free(want);
    return same;
}

/*
 * Stores object (level, min, max) holding pages pgs[0..n) (n == 0: all of
 * 1..commit) at version max, in replica root.
 */
static int put_legacy; /* write the legacy page encoding (LZ4 frames) */

static int
put(const char *root, int level, uint64_t min, uint64_t max, uint32_t ps,
    uint32_t commit, const uint32_t *pgs, int n)
{
    ltx_header h;
    ltx_encoder *enc = NULL;
    membuf m = {0};
    uint8_t *page = malloc(ps);
    backend *b = NULL;
    char key[LAYOUT_KEY_SIZE];
    uint32_t lock = ltx_lock_pgno(ps);
    int rc, i, total = n ? n : (int)commit;

    memset(&h, 0, sizeof(h));
    h.flags = LTX_FLAG_NO_CHECKSUM;
    h.page_size = ps;
    h.commit = commit;
    h.min_txid = min;
    h.max_txid = max;
    h.timestamp = 1700000000000LL + (int64_t)max * 1000;
    rc = ltx_encoder_open(&h, mem_write, &m, &enc);
    if (rc == SQLITE_OK && put_legacy)
        rc = ltx_encoder_set_legacy(enc, 1);
    for (i = 0; rc == SQLITE_OK && i < total; i++) {
        uint32_t pg = n ? pgs[i] : (uint32_t)i + 1;
        if (pg == lock)
            continue;
        fill(page, ps, pg, max);
        rc = ltx_encoder_page(enc, pg, page);
    }
    if (rc == SQLITE_OK)
        rc = ltx_encoder_finish(enc, 0, NULL);
    ltx_encoder_free(enc);
    if (rc == SQLITE_OK)
        rc = backend_open(root, &b, NULL);
    if (rc == SQLITE_OK)
        rc = layout_key(b, level, min, max, key, sizeof(key));
    if (rc == SQLITE_OK)
        rc = backend_put(b, key, m.p, m.n, h.timestamp);
    backend_close(b);
    free(m.p);
    free(page);
    return rc;
}

static char *
path(const char *a, const char *b)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s%s%s", dir, a, b[0] ? "/" : "", b);
    return buf[k];
}

/* Reads page pgno and checks it is version t. */
static int
page_is(reader *r, uint32_t pgno, uint64_t t)
{
    const uint8_t *p = NULL;
    return reader_read(r, pgno, &p) == SQLITE_OK &&
           is_version(p, reader_page_size(r), pgno, t);
}

static void
test_pagecache(void)
{
    pagecache *c = NULL;
    uint8_t a[512], b[1024];

    memset(a, 1, sizeof(a));
    memset(b, 2, sizeof(b));
    ok(pagecache_open(3 * 512, &c) == SQLITE_OK, "cache of 3 small pages");
    for (uint32_t i = 1; i <= 3; i++)
        pagecache_put(c, 1, i, 512, a);
    pagecache_get(c, 1, 1, 512); /* 1 is now the most recent */
    pagecache_put(c, 1, 4, 512, a);
    ok(pagecache_get(c, 1, 2, 512) == NULL && pagecache_get(c, 1, 1, 512) &&
           pagecache_count(c) == 3,
       "the least recently used page is evicted");
    ok(pagecache_get(c, 2, 1, 512) == NULL, "keys include the object uid");
    pagecache_put(c, 1, 9, 1024, b);
    ok(pagecache_bytes(c) <= 3 * 512 && pagecache_get(c, 1, 9, 1024) &&
           pagecache_get(c, 1, 9, 1024)[0] == 2,
       "a bigger page evicts as many as needed (%llu bytes)",
       (unsigned long long)pagecache_bytes(c));
    for (uint32_t i = 1; i <= 5000; i++)
        pagecache_put(c, 7, i, 512, a);
    ok(pagecache_count(c) == 3, "budget holds over many puts");
    pagecache_close(c);
}

static void
loaded(pm_loaded *o, uint64_t min, uint64_t max, uint32_t ps, uint32_t commit,
       const uint32_t *pgs, uint32_t n)
{
    memset(o, 0, sizeof(*o));
    o->info.min_txid = min;
    o->info.max_txid = max;
    o->hdr.page_size = ps;
    o->hdr.commit = commit;
    o->n = n;
    o->index = malloc(sizeof(ltx_index_entry) * (n ? n : 1));
    for (uint32_t i = 0; i < n; i++)
        o->index[i] = (ltx_index_entry){pgs[i], 100 + i * 20, 20};
}

static void
test_pagemap(void)
{
    pagemap pm;
    pm_loaded o;
    const pm_object *obj;
    const pm_page *pg;
    char *zErr = NULL;
    static const uint32_t all[] = {1, 2, 3, 4, 5, 6};
    static const uint32_t two[] = {2, 6};
    int rc;

    memset(&pm, 0, sizeof(pm));
    loaded(&o, 2, 2, 4096, 3, two, 1);
    rc = pagemap_apply(&pm, &o, 1, &zErr);
    ok(rc == SQLITE_CORRUPT && zErr && strstr(zErr, "every page"),
       "a chain must start with a full object: %s", zErr);
    sqlite3_free(zErr);
    pagemap_loaded_free(&o);
    loaded(&o, 1, 1, 4096, 5, all, 5);
    ok(pagemap_apply(&pm, &o, 1, NULL) == SQLITE_OK && pm.npages == 5 &&
           pm.txid == 1,
       "snapshot of 5 pages");
    pagemap_loaded_free(&o);
    loaded(&o, 2, 3, 4096, 6, two, 2);
    ok(pagemap_apply(&pm, &o, 2, NULL) == SQLITE_OK && pm.npages == 6 &&
           pagemap_lookup(&pm, 2, &obj, &pg) == SQLITE_OK && obj->uid == 2 &&
           pagemap_lookup(&pm, 3, &obj, &pg) == SQLITE_OK && obj->uid == 1,
       "an increment replaces its pages only, and grows the database");
    pagemap_loaded_free(&o);
    loaded(&o, 5, 5, 4096, 2, two, 1);
    rc = pagemap_apply(&pm, &o, 3, &zErr);
    ok(rc == SQLITE_CORRUPT && pm.txid == 3 && pm.npages == 6,
       "a gap is refused and changes nothing: %s", zErr);
    sqlite3_free(zErr);
    pagemap_loaded_free(&o);
    loaded(&o, 4, 4, 4096, 2, two, 1);
    ok(pagemap_apply(&pm, &o, 3, NULL) == SQLITE_OK && pm.npages == 2 &&
           pagemap_lookup(&pm, 3, &obj, &pg) == SQLITE_NOTFOUND,
       "a smaller commit drops the pages beyond it (shrink)");
    pagemap_loaded_free(&o);
    loaded(&o, 5, 5, 8192, 3, all, 3);
    ok(pagemap_apply(&pm, &o, 4, NULL) == SQLITE_OK && pm.page_size == 8192 &&
           pm.npages == 3 && pagemap_lookup(&pm, 1, &obj, &pg) == SQLITE_OK &&
           obj->uid == 4,
       "a full object of another page size replaces everything");
    pagemap_loaded_free(&o);
    for (uint64_t t = 6; t < 106; t++) {
        loaded(&o, t, t, 8192, 3, all, 1);
        pagemap_apply(&pm, &o, t, NULL);
        pagemap_loaded_free(&o);
    }
    ok(pm.nobj < 20 && pm.txid == 105,
       "objects no page refers to are forgotten (%u kept)", pm.nobj);
    pagemap_clear(&pm);
}

static void
test_reader_basic(void)
{
    const char *root = path("r1", "");
    reader_opts o = {.cache_bytes = 1 << 20, .poll_ms = 0};
    reader *r = NULL;
    reader_stats st;
    char *zErr = NULL, url[600];
    static const uint32_t p2[] = {2}, p3[] = {3}, p14[] = {1, 4};
    const uint8_t *pg;
    int rc;

    snprintf(url, sizeof(url), "file://%s", root);
    put(root, 0, 1, 1, 4096, 5, NULL, 0);
    put(root, 0, 2, 2, 4096, 5, p2, 1);
    put(root, 0, 3, 4, 4096, 3, p3, 1);
    rc = reader_open(url, &o, &r, &zErr);
    ok(rc == SQLITE_OK && reader_txid(r) == 4 && reader_npages(r) == 3,
       "latest: TXID 4, 3 pages after the shrink (%s)", zErr ? zErr : "");
    ok(page_is(r, 1, 1) && page_is(r, 2, 2) && page_is(r, 3, 4),
       "each page is its newest version");
    ok(reader_read(r, 4, &pg) == SQLITE_IOERR_SHORT_READ,
       "a page beyond the shrunk database is a short read");
    reader_get_stats(r, &st);
    ok(page_is(r, 1, 1) && (reader_get_stats(r, &st), st.cache_hits == 1),
       "a page read again comes from the cache");
    put(root, 0, 5, 5, 4096, 4, p14, 2);
    reader_poll(r, 0);
    ok(reader_txid(r) == 4, "poll_ms=0: no poll unless forced");
    reader_poll(r, 1);
    ok(reader_txid(r) == 5 && reader_npages(r) == 4 && page_is(r, 1, 5) &&
           page_is(r, 4, 5) && page_is(r, 2, 2),
       "a forced poll applies TXID 5 (growth and an update)");
    ok(reader_retarget(r, 2, 0, &zErr) == SQLITE_OK && reader_txid(r) == 2 &&
           reader_npages(r) == 5 && page_is(r, 5, 1) && reader_pinned(r),
       "time travel to TXID 2");
    rc = reader_retarget(r, 3, 0, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr &&
           strstr(zErr, "not a restorable point") && reader_txid(r) == 2,
       "TXID 3 is inside an object: refused, state kept: %s", zErr);
    sqlite3_free(zErr);
    zErr = NULL;
    ok(reader_retarget(r, 0, 1700000000000LL + 2500, &zErr) == SQLITE_OK &&
           reader_txid(r) == 2,
       "time travel to a time between objects");
    ok(reader_retarget(r, 0, 0, &zErr) == SQLITE_OK && reader_txid(r) == 5 &&
           !reader_pinned(r),
       "back to the latest");
    /* The objects move to level 1 (as compaction would put them). */
    mkdir(path("r1/ltx/1", ""), 0755);
    rename(path("r1/ltx/0", "0000000000000001-0000000000000001.ltx"),
           path("r1/ltx/1", "0000000000000001-0000000000000001.ltx"));
    rename(path("r1/ltx/0", "0000000000000002-0000000000000002.ltx"),
           path("r1/ltx/1", "0000000000000002-0000000000000002.ltx"));
    reader_get_stats(r, &st);
    uint64_t replans = st.replans;
    ok(page_is(r, 3, 4) && page_is(r, 2, 2) &&
           (reader_get_stats(r, &st), st.replans == replans + 1),
       "objects moved to level 1: re-planned at the same TXID and read on");
    unlink(path("r1/ltx/1", "0000000000000002-0000000000000002.ltx"));
    unlink(path("r1/ltx/0", "0000000000000003-0000000000000004.ltx"));
    rc = reader_read(r, 5, &pg);
    ok(rc == SQLITE_IOERR_SHORT_READ, "beyond the end still a short read");
    reader_close(r);
    r = NULL;
    rc = reader_open(url, &o, &r, &zErr);
    ok(rc != SQLITE_OK && zErr && strstr(zErr, "gap"),
       "objects deleted for good: the open says why: %s", zErr);
    sqlite3_free(zErr);
    reader_close(r);
}

static void
test_reader_big(void)
{
    const char *root = path("r2", "");
    reader_opts o = {.cache_bytes = 64 << 20};
    reader *r = NULL;
    reader_stats st;
    char *zErr = NULL, url[600];
    int good = 1, rc;
    uint32_t n = 12000, i;

    snprintf(url, sizeof(url), "file://%s", root);
    put(root, 9, 1, 1, 512, n, NULL, 0);
    rc = reader_open(url, &o, &r, &zErr);
    reader_get_stats(r, &st);
    ok(rc == SQLITE_OK && reader_npages(r) == n && st.requests.n_get == 3,
       "an object whose index exceeds the tail guess: 3 GETs to open (%s)",
       zErr ? zErr : "");
    for (i = 1; i <= n; i++)
        good &= page_is(r, i, 1);
    reader_get_stats(r, &st);
    ok(good && st.requests.n_get - 3 < 60,
       "a sequential read of %u pages: %llu GETs", n,
       (unsigned long long)st.requests.n_get - 3);
    reader_close(r);
    r = NULL;

    /* The legacy page encoding (Litestream < 0.5.16) reads the same. */
    put_legacy = 1;
    put(path("r3", ""), 0, 1, 1, 4096, 300, NULL, 0);
    put_legacy = 0;
    snprintf(url, sizeof(url), "file://%s", path("r3", ""));
    rc = reader_open(url, &o, &r, &zErr);
    for (i = 1, good = rc == SQLITE_OK; i <= 300 && good; i++)
        good = page_is(r, i, 1);
    reader_get_stats(r, &st);
    ok(good && st.requests.n_get < 20,
       "legacy page encoding (LZ4 frames): 300 pages in %llu GETs",
       (unsigned long long)st.requests.n_get);
    reader_close(r);
    r = NULL;
    snprintf(url, sizeof(url), "file://%s", root);

    /* A corrupt frame: the read fails naming the object. */
    {
        char *f = path("r2/ltx/9", "0000000000000001-0000000000000001.ltx");
        FILE *fp = fopen(f, "r+b");
        fseek(fp, 5000, SEEK_SET);
        fwrite("\xff\xff\xff\xff\xff\xff\xff\xff", 1, 8, fp);
        fclose(fp);
    }
    rc = reader_open(url, &o, &r, &zErr);
    for (i = 1, good = 1; i <= n && good; i++) {
        const uint8_t *pg;
        good = reader_read(r, i, &pg) == SQLITE_OK;
    }
    ok(!good && strstr(reader_errmsg(r), "corrupt LTX object") &&
           strstr(reader_errmsg(r), "0000000000000001-0000000000000001.ltx"),
       "corrupt frame: %s", reader_errmsg(r));
    reader_close(r);
    sqlite3_free(zErr);
}

int
main(void)
{
    api_init();
    snprintf(dir, sizeof(dir), "/tmp/ls-test-reader-%d", (int)getpid());
    mkdir(dir, 0755);
    test_pagecache();
    test_pagemap();
    test_reader_basic();
    test_reader_big();
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return tap_done();
}
