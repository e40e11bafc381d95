/*
 * test_upload.c: storage/replicate/upload.c over an in-memory backend:
 * spooled records become one L0 object holding the newest copy of each
 * page; the checksum chain runs from one object to the next (pre-apply =
 * the previous post-apply, post-apply = the checksum of the resulting
 * database, pages truncated away folded out); a failed put changes
 * nothing and is retried; a gap in a growing database asks for a full
 * image instead of uploading; a replica ahead of the sidecar makes TXIDs
 * continue above it; the full image of a real database covers
 * replicated+1 .. the captured TXID with exactly the database's pages.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/layout.h"
#include "storage/replicate/upload.h"
#include "test/tap.h"
#include "test/unit/membackend.h"
#include "test/unit/reptest.h"

#define PS 512

static char *zDir;
static uint8_t want[8][PS]; /* the replicated database as it should be */

/* Records pages pgnos[] at version into `want`, and spools them. */
static void
write_txn(replicator *r, uint64_t txid, uint32_t flags, uint32_t commit,
          const uint32_t *pgnos, uint32_t n, uint32_t version)
{
    for (uint32_t i = 0; i < n; i++)
        rt_page(want[pgnos[i] - 1], PS, pgnos[i], version);
    rt_spool(r, txid, flags, PS, commit, pgnos, n, version);
}

/*
 * Fetches L0 object min-max and applies it over db (8 pages); returns its
 * header and trailer.  0 if it is absent or does not decode.
 */
static int
fetch(mem_store *s, replicator *r, uint64_t min, uint64_t max, uint8_t *db,
      ltx_header *h, ltx_trailer *tr)
{
    char key[LAYOUT_KEY_SIZE];
    size_t n = 0;
    layout_key(r->tg[0].be, 0, min, max, key, sizeof(key));
    uint8_t *p = mem_store_get(s, key, &n);
    int rc = p ? rt_apply(p, n, db, 8, h, tr) : SQLITE_NOTFOUND;
    free(p);
    return rc == SQLITE_OK;
}

static void
test_incremental(void)
{
    mem_store *s = mem_store_new();
    char *zDb = sqlite3_mprintf("%s/inc.db", zDir);
    replicator *r = rt_replicator(zDb, membackend_open(s));
    static uint8_t db[8][PS];
    ltx_header h;
    ltx_trailer tr;
    static const uint32_t img[] = {1, 2, 3, 4}, t2[] = {2, 5};

    /* 1: a full image record; 2: page 2 changes, page 5 is added. */
    write_txn(r, 1, SPOOL_F_FULL | SPOOL_F_IMAGE, 4, img, 4, 1);
    write_txn(r, 2, 0, 5, t2, 2, 2);
    int rc = rep_upload_once(r->tg);
    ok(rc == SQLITE_OK && mem_store_count(s) == 1 &&
           sidecar_replicated(r->sc) == 2,
       "first upload: one object, replicated TXID 2 (rc %d, %d objects)", rc,
       mem_store_count(s));
    ok(fetch(s, r, 1, 2, db[0], &h, &tr) && h.min_txid == 1 &&
           h.max_txid == 2 && h.commit == 5 && h.pre_apply == 0,
       "object 1-2: a snapshot of 5 pages");
    ok(memcmp(db, want, 5 * PS) == 0, "... holding the newest copy of each");
    ok(tr.post_apply == ltx_db_checksum(want, PS, 5) && r->tg[0].ck.valid &&
           r->tg[0].ck.sum == tr.post_apply && !r->tg[0].need_full,
       "post-apply = checksum of the database = the table's");
    ok(r->tg[0].n_uploads == 1 && r->last_upload_ms > 0 &&
           r->tg[0].rep_pos.frame == 2,
       "counted; the replicated position is where TXID 2 ended");
    uint64_t post12 = tr.post_apply;

    /* 3: page 3; 4: the database shrinks to 4 pages, page 1 changes. */
    static const uint32_t t3[] = {3}, t4[] = {1};
    write_txn(r, 3, 0, 5, t3, 1, 3);
    write_txn(r, 4, 0, 4, t4, 1, 4);
    rc = rep_upload_once(r->tg);
    ok(rc == SQLITE_OK && fetch(s, r, 3, 4, db[0], &h, &tr) && h.commit == 4,
       "object 3-4 uploaded, commit 4");
    ok(h.pre_apply == post12, "its pre-apply is the previous post-apply");
    ok(tr.post_apply == ltx_db_checksum(want, PS, 4) &&
           r->tg[0].ck.commit == 4 && r->tg[0].ck.c[5] == 0,
       "post-apply folds page 5 out: the 4-page database's checksum");
    uint64_t post34 = tr.post_apply;

    /* 5: a put that fails changes nothing; the retry uploads it. */
    static const uint32_t t5[] = {2};
    write_txn(r, 5, 0, 4, t5, 1, 5);
    mem_store_fail_put(s, 1);
    rc = rep_upload_once(r->tg);
    ok(rc != SQLITE_OK && sidecar_replicated(r->sc) == 4 &&
           r->tg[0].ck.sum == post34 && r->last_error && spool_has(r->sp, 5),
       "failed put: position, table and spool unchanged, error recorded");
    rc = rep_upload_once(r->tg);
    ok(rc == SQLITE_OK && fetch(s, r, 5, 5, db[0], &h, &tr) &&
           h.pre_apply == post34 &&
           tr.post_apply == ltx_db_checksum(want, PS, 4) && !r->last_error,
       "the retry uploads 5-5 on the chain and clears the error");

    /* 6: growth to 7 pages without page 6: no object, a full image. */
    static const uint32_t t6[] = {7};
    write_txn(r, 6, 0, 7, t6, 1, 6);
    int before = mem_store_count(s);
    rc = rep_upload_once(r->tg);
    ok(rc == SQLITE_OK && r->tg[0].need_full && mem_store_count(s) == before &&
           sidecar_replicated(r->sc) == 5,
       "a gap in the growth: nothing uploaded, a full image is needed");

    rt_replicator_free(r);
    mem_store_free(s);
    sqlite3_free(zDb);
}

/*
 * Another database's history already in the replica (a restored database,
 * a lost sidecar): the first upload learns the replica's newest TXID and
 * post-apply checksum, continues above it, and asks for a full image.
 */
static void
test_replica_ahead(void)
{
    mem_store *s = mem_store_new();
    char *zA = sqlite3_mprintf("%s/a.db", zDir);
    char *zB = sqlite3_mprintf("%s/b.db", zDir);
    replicator *a = rt_replicator(zA, membackend_open(s));
    static const uint32_t img[] = {1, 2, 3};
    static uint8_t db[8][PS];
    ltx_header h;
    ltx_trailer tr;

    write_txn(a, 1, SPOOL_F_FULL | SPOOL_F_IMAGE, 3, img, 3, 1);
    write_txn(a, 2, 0, 3, img + 1, 1, 2);
    rep_upload_once(a->tg);
    ok(fetch(s, a, 1, 2, db[0], &h, &tr), "replica holds 1-2");

    replicator *b = rt_replicator(zB, membackend_open(s));
    int rc = rep_upload_once(b->tg);
    ok(rc == SQLITE_OK && sidecar_txid_floor(b->sc) == 2 &&
           b->tg[0].foreign_upto == 2,
       "a replica ahead: TXIDs continue above its newest (2)");
    ok(sidecar_replicated(b->sc) == 0,
       "... while its own replicated TXID stays 0 (a sync waits for the "
       "image above them)");
    ok(b->tg[0].need_full && !b->tg[0].ck.valid && b->tg[0].pre_known &&
           b->tg[0].ck.sum == tr.post_apply,
       "a full image next, its pre-apply read from the newest trailer");
    ok(mem_store_count(s) == 1, "nothing uploaded without an image");
    rt_replicator_free(b);
    rt_replicator_free(a);
    mem_store_free(s);
    sqlite3_free(zA);
    sqlite3_free(zB);
}

/* A real database in WAL mode, checkpointed (empty WAL), kept open. */
static sqlite3 *
make_db(const char *zDb)
{
    sqlite3 *db = NULL;
    sqlite3_open(zDb, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=1024; PRAGMA journal_mode=WAL;"
                 "CREATE TABLE t(x);"
                 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c"
                 " WHERE i<200) INSERT INTO t SELECT randomblob(100) FROM c;"
                 "PRAGMA wal_checkpoint(TRUNCATE);",
                 NULL, NULL, NULL);
    return db;
}

static void
test_full_image(void)
{
    mem_store *s = mem_store_new();
    char *zDb = sqlite3_mprintf("%s/full.db", zDir);
    sqlite3 *db = make_db(zDb);
    replicator *r = rt_replicator(zDb, membackend_open(s));
    struct stat st;
    stat(zDb, &st);
    uint32_t npages = (uint32_t)(st.st_size / 1024);
    uint8_t *file = malloc((size_t)st.st_size), *got = calloc(npages, 1024);
    int fd = open(zDb, O_RDONLY);
    ok(read(fd, file, (size_t)st.st_size) == st.st_size && npages > 20,
       "a real database of %u pages", npages);
    close(fd);

    ls_cap cap = {
        .txid = 9, .flags = CAP_VALID, .page_size = 1024, .commit = npages};
    sidecar_cap_write(r->sc, &cap);
    sidecar_set_replicated(r->sc, 3, 1);
    r->tg[0].replica_checked = 1;
    r->tg[0].need_full = 1;
    int rc = rep_upload_once(r->tg);
    char key[LAYOUT_KEY_SIZE];
    size_t n = 0;
    layout_key(r->tg[0].be, 0, 4, 9, key, sizeof(key));
    uint8_t *p = mem_store_get(s, key, &n);
    ltx_header h = {0};
    ltx_trailer tr = {0};
    ok(rc == SQLITE_OK && p && rt_apply(p, n, got, npages, &h, &tr) == 0,
       "full image fallback: object 4-9 (replicated+1 .. captured)");
    ok(h.commit == npages && memcmp(got, file, (size_t)st.st_size) == 0,
       "its pages are the database file's");
    ok(tr.post_apply == ltx_db_checksum(file, 1024, npages) &&
           r->tg[0].ck.valid && r->tg[0].ck.sum == tr.post_apply &&
           !r->tg[0].need_full && sidecar_replicated(r->sc) == 9 &&
           r->tg[0].n_full_images == 1,
       "checksums adopted, replicated TXID 9, counted as a full image");
    free(p);

    /* Nothing captured beyond the replica: no image (SQLITE_BUSY). */
    r->tg[0].need_full = 1;
    ok(rep_upload_full(r->tg) == SQLITE_BUSY && mem_store_count(s) == 1,
       "no image when nothing was captured beyond the replica");

    rt_replicator_free(r);
    sqlite3_close(db);
    free(file);
    free(got);
    mem_store_free(s);
    sqlite3_free(zDb);
}

int
main(void)
{
    rt_init();
    zDir = rt_tmpdir();
    test_incremental();
    test_replica_ahead();
    test_full_image();
    rt_rmrf(zDir);
    free(zDir);
    return tap_done();
}
