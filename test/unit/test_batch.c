/*
 * test_batch.c: storage/replicate/batch.c, the first steps of an
 * incremental upload, over a real spool: the newest copy of each page
 * wins, a full image record supersedes what came before it, pages beyond
 * the commit are dropped, a marker or a page size change or an unreadable
 * record asks for a full image, the byte limit ends a batch early, and
 * completeness of a growing database (the lock page is never expected).
 */
#include <stdlib.h>
#include <string.h>

#include "storage/replicate/batch.h"
#include "test/tap.h"
#include "test/unit/reptest.h"

#define PS 512

static char *zDir;

/* A fresh replicator (only its spool is used) per case. */
static replicator *
fresh(const char *name)
{
    char *zDb = sqlite3_mprintf("%s/%s.db", zDir, name);
    replicator *r = rt_replicator(zDb, NULL);
    sqlite3_free(zDb);
    return r;
}

/* Whether b->pages[i] holds pgno at `version`. */
static int
page_is(const batch *b, uint64_t i, uint32_t pgno, uint32_t version)
{
    uint8_t want[PS], scratch[PS];
    const uint8_t *p = batch_page_data(b, i, scratch);
    rt_page(want, PS, pgno, version);
    return b->pages[i].pgno == pgno && p && memcmp(p, want, PS) == 0;
}

static void
test_newest_wins(void)
{
    replicator *r = fresh("newest");
    batch b;
    char *zErr = NULL;
    static const uint32_t t1[] = {1, 2, 3}, t2[] = {2, 4}, t3[] = {2};

    rt_spool(r, 1, 0, PS, 3, t1, 3, 1);
    rt_spool(r, 2, 0, PS, 4, t2, 2, 2);
    rt_spool(r, 3, 0, PS, 4, t3, 1, 3);
    spool_scan(r->sp);
    int rc = batch_read(&b, r->sp, 1, 3, 1 << 30, &zErr);
    ok(rc == SQLITE_OK && !b.need_full && b.to == 3 && b.commit == 4,
       "three records read: to %llu, commit %u", (unsigned long long)b.to,
       b.commit);
    ok(b.map.n == 4, "four distinct pages (%u)", b.map.n);
    ok(b.live[0] == 2 && b.live[1] == 1 && b.live[2] == 1,
       "each record owns the pages it is the newest copy of (%u %u %u)",
       b.live[0], b.live[1], b.live[2]);
    ok(batch_sort(&b) == SQLITE_OK && b.npages == 4, "sorted: 4 pages");
    ok(page_is(&b, 0, 1, 1) && page_is(&b, 1, 2, 3) && page_is(&b, 2, 3, 1) &&
           page_is(&b, 3, 4, 2),
       "ascending, newest copy of each page (page 2 from TXID 3)");
    ok(batch_complete(&b, 3), "growth 3 -> 4 pages with page 4 present");
    batch_free(&b);
    rt_replicator_free(r);
}

static void
test_truncate_and_image(void)
{
    replicator *r = fresh("image");
    batch b;
    char *zErr = NULL;
    static const uint32_t t1[] = {5, 6}, img[] = {1, 2, 3}, t3[] = {3};

    rt_spool(r, 1, 0, PS, 6, t1, 2, 1);
    rt_spool(r, 2, SPOOL_F_FULL | SPOOL_F_IMAGE, PS, 3, img, 3, 2);
    rt_spool(r, 3, 0, PS, 3, t3, 1, 3);
    spool_scan(r->sp);
    int rc = batch_read(&b, r->sp, 1, 3, 1 << 30, &zErr);
    ok(rc == SQLITE_OK && b.image_base && !b.need_full && b.nrec == 2,
       "an image record restarts the batch (image_base %d, %llu records)",
       b.image_base, (unsigned long long)b.nrec);
    batch_sort(&b);
    ok(b.npages == 3 && page_is(&b, 0, 1, 2) && page_is(&b, 2, 3, 3),
       "pages before the image are gone, later copies win");
    ok(batch_complete(&b, 0), "an image is complete from page 1");
    batch_free(&b);

    /* Pages beyond the commit (the database shrank) are dropped. */
    static const uint32_t t4[] = {1, 7, 8};
    rt_spool(r, 4, 0, PS, 7, t4, 3, 4);
    spool_scan(r->sp);
    batch_read(&b, r->sp, 4, 4, 1 << 30, &zErr);
    batch_sort(&b);
    ok(b.npages == 2 && b.pages[1].pgno == 7, "page 8 beyond commit 7 dropped");
    batch_free(&b);
    rt_replicator_free(r);
}

static void
test_needs_full(void)
{
    replicator *r = fresh("full");
    batch b;
    char *zErr = NULL;
    static const uint32_t p1[] = {1};

    rt_spool(r, 1, 0, PS, 1, p1, 1, 1);
    rt_spool(r, 2, SPOOL_F_FULL, PS, 1, NULL, 0, 0);
    spool_scan(r->sp);
    int rc = batch_read(&b, r->sp, 1, 2, 1 << 30, &zErr);
    ok(rc == SQLITE_OK && b.need_full && b.marker,
       "a marker that no image follows asks for a full image");
    batch_free(&b);

    replicator *r2 = fresh("pagesize");
    rt_spool(r2, 1, 0, PS, 1, p1, 1, 1);
    rt_spool(r2, 2, 0, 1024, 1, p1, 1, 1);
    spool_scan(r2->sp);
    rc = batch_read(&b, r2->sp, 1, 2, 1 << 30, &zErr);
    ok(rc == SQLITE_OK && b.need_full && !b.marker,
       "a page size change (VACUUM) asks for one too");
    batch_free(&b);
    rt_replicator_free(r2);

    rc = batch_read(&b, r->sp, 2, 5, 1 << 30, &zErr);
    ok(rc != SQLITE_OK && b.need_full && zErr && strstr(zErr, "record 3"),
       "a record the spool lacks: error and full image (%s)",
       zErr ? zErr : "no message");
    sqlite3_free(zErr);
    batch_free(&b);
    rt_replicator_free(r);
}

static void
test_limit_and_complete(void)
{
    replicator *r = fresh("limit");
    batch b;
    char *zErr = NULL;
    uint32_t pg[4];

    for (uint32_t t = 1; t <= 4; t++) {
        for (uint32_t i = 0; i < 4; i++)
            pg[i] = (t - 1) * 4 + i + 1;
        rt_spool(r, t, 0, PS, t * 4, pg, 4, t);
    }
    spool_scan(r->sp);
    int rc = batch_read(&b, r->sp, 1, 4, 6 * PS, &zErr);
    ok(rc == SQLITE_OK && b.to == 2 && b.commit == 8,
       "the byte limit ends the batch after the record passing it (to %llu)",
       (unsigned long long)b.to);
    batch_free(&b);

    /* Growth with a page missing. */
    static const uint32_t gap[] = {9, 11};
    rt_spool(r, 5, 0, PS, 11, gap, 2, 5);
    spool_scan(r->sp);
    batch_read(&b, r->sp, 5, 5, 1 << 30, &zErr);
    batch_sort(&b);
    ok(!batch_complete(&b, 8), "growth 8 -> 11 without page 10: incomplete");
    ok(batch_complete(&b, 10), "... complete over a database of 10 pages");
    batch_free(&b);

    /* The lock page (pgno 2097153 at 512-byte pages) is never expected. */
    static const uint32_t lk[] = {2097152, 2097154};
    rt_spool(r, 6, 0, PS, 2097154, lk, 2, 6);
    spool_scan(r->sp);
    batch_read(&b, r->sp, 6, 6, 1 << 30, &zErr);
    batch_sort(&b);
    ok(batch_complete(&b, 2097151), "growth over the lock page is complete");
    batch_free(&b);
    rt_replicator_free(r);
}

int
main(void)
{
    rt_init();
    zDir = rt_tmpdir();
    test_newest_wins();
    test_truncate_and_image();
    test_needs_full();
    test_limit_and_complete();
    rt_rmrf(zDir);
    free(zDir);
    return tap_done();
}
