/*
 * test_spool_txn.c: storage/replicate/spool_txn.c: a captured
 * transaction becomes one spool record.  From copied frames: the newest
 * copy of each page wins, pages beyond the commit are dropped, the
 * position is kept; REP_FULL becomes a marker, REP_IMAGE an image record.
 * By reference to a real WAL (REP_WALREF): the pages are the newest frames
 * of the transaction's range, kept from the scan or (beyond what a scan
 * keeps) read again; a range with a frame of other salts, or whose last
 * frame's checksum or size is not the reference's, turns the TXID into a
 * full-image marker.
 * Runs: consecutive copies become one record of TXIDs first..last with the
 * newest copy of each page as of the last; the spool reads runs in order
 * (a full-image marker starting where a run would continue wins; a run
 * overlapping what was already read still continues the walk) and finds
 * the record that ends at a TXID.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/local/wal.h"
#include "storage/replicate/spool_txn.h"
#include "test/tap.h"
#include "test/unit/reptest.h"

#define PS 512

static char *zDir;

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A captured transaction of copied frames: pgnos[i] at versions[i]. */
static rep_txn
copied(uint64_t txid, uint32_t commit, const uint32_t *pgnos,
       const uint32_t *versions, uint32_t n, uint8_t *buf)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + PS;
    for (uint32_t i = 0; i < n; i++) {
        memset(buf + i * fsz, 0, WAL_FRAME_HDR_SIZE);
        put32(buf + i * fsz, pgnos[i]);
        rt_page(buf + i * fsz + WAL_FRAME_HDR_SIZE, PS, pgnos[i], versions[i]);
    }
    rep_txn t = {.txid = txid,
                 .page_size = PS,
                 .commit = commit,
                 .nframes = n,
                 .frames = buf,
                 .pos = {7, 8, 40 + (uint32_t)txid, 9, 10}};
    return t;
}

static int
page_is(const spool_txn *rec, uint32_t i, uint32_t pgno, uint32_t version)
{
    uint8_t want[PS], scratch[PS];
    const uint8_t *p = spool_txn_page(rec, i, scratch);
    rt_page(want, PS, pgno, version);
    return rec->pgnos[i] == pgno && p && memcmp(p, want, PS) == 0;
}

static void
test_copied(void)
{
    char *zDb = sqlite3_mprintf("%s/copied.db", zDir);
    replicator *r = rt_replicator(zDb, NULL);
    uint8_t *buf = malloc((WAL_FRAME_HDR_SIZE + PS) * 8);
    char *zErr = NULL;
    spool_txn rec;
    static const uint32_t pg[] = {3, 2, 5, 2, 1}, ver[] = {1, 1, 1, 2, 1};

    rep_txn t = copied(1, 4, pg, ver, 5, buf);
    int rc = rep_spool_txn(r, &t, 0, &zErr);
    spool_scan(r->sp);
    ok(rc == SQLITE_OK && spool_read(r->sp, 1, &rec) == SQLITE_OK,
       "a transaction of 5 frames spooled as TXID 1");
    ok(rec.npages == 3 && rec.commit == 4 && rec.flags == 0 &&
           rec.pos.frame == 41 && rec.pos.salt1 == 7,
       "3 pages, commit 4, the position kept (%u pages)", rec.npages);
    ok(page_is(&rec, 0, 1, 1) && page_is(&rec, 1, 2, 2) &&
           page_is(&rec, 2, 3, 1),
       "ascending; the later copy of page 2 wins; page 5 > commit dropped");
    spool_txn_free(&rec);

    t = copied(2, 4, pg, ver, 2, buf);
    t.flags = REP_FULL;
    rep_spool_txn(r, &t, 0, &zErr);
    t = copied(3, 2, pg + 3, ver + 3, 2, buf);
    t.flags = REP_IMAGE;
    rep_spool_txn(r, &t, 1, &zErr);
    spool_scan(r->sp);
    ok(spool_read(r->sp, 2, &rec) == SQLITE_OK && rec.flags == SPOOL_F_FULL &&
           rec.npages == 0,
       "REP_FULL: a full-image marker without pages");
    spool_txn_free(&rec);
    ok(spool_read(r->sp, 3, &rec) == SQLITE_OK &&
           rec.flags == (SPOOL_F_FULL | SPOOL_F_IMAGE) && rec.npages == 2,
       "REP_IMAGE: an image record with its pages");
    spool_txn_free(&rec);
    free(buf);
    rt_replicator_free(r);
    sqlite3_free(zDb);
}

/* Whether record page i is WAL frame f's page. */
static int
is_frame(const char *zWal, const rt_wal *w, const spool_txn *rec, uint32_t i,
         uint32_t f)
{
    uint8_t *want = malloc(w->page_size), *scratch = malloc(w->page_size);
    int fd = open(zWal, O_RDONLY);
    int r = pread(fd, want, w->page_size,
                  (off_t)(wal_frame_offset(f, w->page_size) +
                          WAL_FRAME_HDR_SIZE)) == (ssize_t)w->page_size;
    const uint8_t *p = spool_txn_page(rec, i, scratch);
    r = r && p && rec->pgnos[i] == w->f[f - 1].pgno &&
        memcmp(p, want, w->page_size) == 0;
    close(fd);
    free(want);
    free(scratch);
    return r;
}

/* Spools t as TXID txid: whether it became a bare full-image marker. */
static int
becomes_marker(replicator *r, rep_txn *t, uint64_t txid)
{
    char *zErr = NULL;
    spool_txn rec;
    t->txid = txid;
    int rc = rep_spool_txn(r, t, 0, &zErr);
    spool_scan(r->sp);
    int m = rc == SQLITE_OK && spool_read(r->sp, txid, &rec) == SQLITE_OK;
    if (m) {
        m = rec.flags == SPOOL_F_FULL && rec.npages == 0;
        spool_txn_free(&rec);
    }
    return m;
}

/* becomes_marker() while WAL frame f carries other salts (as after a
 * restart that overwrote it); the frame is put back after. */
static int
marker_with_frame_spoiled(replicator *r, rep_txn *t, uint64_t txid,
                          const char *zWal, uint32_t f)
{
    int fd = open(zWal, O_RDWR);
    uint8_t salt[4], other[4];
    off_t at = (off_t)wal_frame_offset(f, t->page_size) + 8;
    int io = fd >= 0 && pread(fd, salt, 4, at) == 4;
    memcpy(other, salt, 4);
    other[0] ^= 0x80;
    io = io && pwrite(fd, other, 4, at) == 4;
    int m = io && becomes_marker(r, t, txid);
    io = io && pwrite(fd, salt, 4, at) == 4;
    if (fd >= 0)
        close(fd);
    return io && m;
}

static void
test_walref(void)
{
    char *zDb = sqlite3_mprintf("%s/walref.db", zDir);
    char *zWal = sqlite3_mprintf("%s-wal", zDb);
    sqlite3 *db = NULL;
    rt_wal w;
    char *zErr = NULL;
    spool_txn rec;

    sqlite3_open(zDb, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=1024; PRAGMA journal_mode=WAL;"
                 "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);"
                 "BEGIN; INSERT INTO t VALUES(randomblob(3000));"
                 "UPDATE t SET x=randomblob(2000); COMMIT;",
                 NULL, NULL, NULL);
    replicator *r = rt_replicator(zDb, NULL);
    int rw = rt_wal_read(zWal, &w);
    ok(rw == 0 && w.n >= 3 && w.f[w.n - 1].commit, "a real WAL of %u frames",
       w.n);
    /* The last transaction: from the frame after the previous commit. */
    uint32_t lo = w.n - 1;
    while (lo > 0 && !w.f[lo - 1].commit)
        lo--;
    lo++;
    wal_pos seed = rt_wal_pos(&w, lo - 1);
    rep_txn t = {.txid = 5,
                 .flags = REP_WALREF,
                 .page_size = w.page_size,
                 .commit = w.f[w.n - 1].commit,
                 .pos = rt_wal_pos(&w, w.n),
                 .wal_lo = lo,
                 .seed1 = seed.cksum1,
                 .seed2 = seed.cksum2};
    int rc = rep_spool_txn(r, &t, 0, &zErr);
    spool_scan(r->sp);
    if (rc == SQLITE_OK)
        rc = spool_read(r->sp, 5, &rec);
    ok(rc == SQLITE_OK && rec.flags == 0 && rec.npages > 0,
       "frames %u-%u spooled from the WAL (%u pages)", lo, w.n, rec.npages);
    int same = 1;
    for (uint32_t i = 0; i < rec.npages; i++) {
        uint32_t f = w.n; /* the newest frame of the page in lo..n */
        while (f >= lo && w.f[f - 1].pgno != rec.pgnos[i])
            f--;
        same = same && f >= lo && is_frame(zWal, &w, &rec, i, f);
    }
    ok(same, "each page is its newest frame in the range");
    spool_txn_free(&rec);

    /* A frame of the range rewritten with other salts, as after a restart
     * of the WAL: the range is no longer the transaction's. */
    ok(marker_with_frame_spoiled(r, &t, 6, zWal, lo),
       "a range holding a frame of other salts becomes a full-image marker");
    t.seed1 ^= 1; /* the range does not start where the last capture ended */
    ok(becomes_marker(r, &t, 8), "a range whose seed is not the checksum "
                                 "before it: a full-image marker");
    t.seed1 ^= 1;
    t.commit++; /* the commit frame says another size */
    ok(becomes_marker(r, &t, 7),
       "a range whose commit frame has another size: a full-image marker");
    rt_replicator_free(r);
    sqlite3_close(db);
    sqlite3_free(zWal);
    sqlite3_free(zDb);
}

/* A transaction bigger than what a scan keeps (1 MiB of frames): its
 * pages are read from the WAL again, and are still its newest frames. */
static void
test_walref_big(void)
{
    char *zDb = sqlite3_mprintf("%s/walbig.db", zDir);
    char *zWal = sqlite3_mprintf("%s-wal", zDb);
    sqlite3 *db = NULL;
    rt_wal w;
    char *zErr = NULL;
    spool_txn rec;

    sqlite3_open(zDb, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=1024; PRAGMA journal_mode=WAL;"
                 "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=100;"
                 "CREATE TABLE t(x); BEGIN;"
                 "INSERT INTO t VALUES(randomblob(5000000));"
                 "UPDATE t SET x=randomblob(4000000); COMMIT;",
                 NULL, NULL, NULL);
    replicator *r = rt_replicator(zDb, NULL);
    int rw = rt_wal_read(zWal, &w);
    if (rw != 0 || w.n == 0) {
        ok(0, "a real WAL (%d)", rw);
        return;
    }
    uint32_t lo = 1;
    for (uint32_t i = 0; rw == 0 && i + 1 < w.n; i++)
        if (w.f[i].commit)
            lo = i + 2;
    uint64_t bytes = (uint64_t)(w.n - lo + 1) * (WAL_FRAME_HDR_SIZE + 1024);
    ok(rw == 0 && w.n < RT_WAL_MAX && bytes > (5u << 20),
       "one transaction of %llu frame bytes", (unsigned long long)bytes);
    wal_pos seed = rt_wal_pos(&w, lo - 1);
    rep_txn t = {.txid = 9,
                 .flags = REP_WALREF,
                 .page_size = w.page_size,
                 .commit = w.f[w.n - 1].commit,
                 .pos = rt_wal_pos(&w, w.n),
                 .wal_lo = lo,
                 .seed1 = seed.cksum1,
                 .seed2 = seed.cksum2};
    int rc = rep_spool_txn(r, &t, 0, &zErr);
    spool_scan(r->sp);
    if (rc == SQLITE_OK)
        rc = spool_read(r->sp, 9, &rec);
    ok(rc == SQLITE_OK && rec.flags == 0 && rec.npages > 4000,
       "frames %u-%u spooled from the WAL (%u pages)", lo, w.n,
       rc == SQLITE_OK ? rec.npages : 0);
    int same = rc == SQLITE_OK;
    uint32_t *newest = calloc(t.commit + 1, 4);
    for (uint32_t f = lo; f <= w.n; f++)
        if (w.f[f - 1].pgno <= t.commit)
            newest[w.f[f - 1].pgno] = f;
    for (uint32_t i = 0; same && i < rec.npages; i++)
        same = newest[rec.pgnos[i]] &&
               is_frame(zWal, &w, &rec, i, newest[rec.pgnos[i]]);
    ok(same, "each page is its newest frame in the range");
    if (rc == SQLITE_OK)
        spool_txn_free(&rec);
    free(newest);
    /* Its last frame spoiled with other salts: found past the first 1 MiB
     * scanned. */
    ok(marker_with_frame_spoiled(r, &t, 10, zWal, w.n),
       "the same range with its last frame of other salts: a full-image "
       "marker");
    rt_replicator_free(r);
    sqlite3_close(db);
    sqlite3_free(zWal);
    sqlite3_free(zDb);
}

/* The zero-copy capture's reference: one range of the WAL holding several
 * commits, TXIDs txid..txid_max (storage/replicate/refs.c). */
static void
test_walref_run(void)
{
    char *zDb = sqlite3_mprintf("%s/walrun.db", zDir);
    char *zWal = sqlite3_mprintf("%s-wal", zDb);
    sqlite3 *db = NULL;
    rt_wal w;
    char *zErr = NULL;
    spool_txn rec;

    sqlite3_open(zDb, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=1024; PRAGMA journal_mode=WAL;"
                 "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);"
                 "INSERT INTO t VALUES(randomblob(3000));"
                 "UPDATE t SET x=randomblob(2000);"
                 "INSERT INTO t VALUES(1);",
                 NULL, NULL, NULL);
    replicator *r = rt_replicator(zDb, NULL);
    int rw = rt_wal_read(zWal, &w);
    uint32_t commits = 0;
    for (uint32_t i = 0; rw == 0 && i < w.n; i++)
        commits += w.f[i].commit != 0;
    ok(rw == 0 && commits == 4 && w.f[w.n - 1].commit,
       "a real WAL of %u frames, %u commits", w.n, commits);
    wal_pos seed = rt_wal_pos(&w, 0); /* the WAL header's checksum */
    rep_txn t = {.txid = 20,
                 .txid_max = 20 + commits - 1,
                 .flags = REP_WALREF,
                 .page_size = w.page_size,
                 .commit = w.f[w.n - 1].commit,
                 .pos = rt_wal_pos(&w, w.n),
                 .wal_lo = 1,
                 .seed1 = seed.cksum1,
                 .seed2 = seed.cksum2};
    int rc = rep_spool_txn(r, &t, 0, &zErr);
    spool_scan(r->sp);
    if (rc == SQLITE_OK)
        rc = spool_read(r->sp, 20, &rec);
    ok(rc == SQLITE_OK && rec.flags == 0 && rec.txid == 20 &&
           rec.txid_max == t.txid_max && rec.pos.frame == w.n,
       "one record for TXIDs 20..%llu, ending at frame %u",
       (unsigned long long)rec.txid_max, rec.pos.frame);
    int same = 1;
    for (uint32_t i = 0; rc == SQLITE_OK && i < rec.npages; i++) {
        uint32_t f = w.n;
        while (f >= 1 && w.f[f - 1].pgno != rec.pgnos[i])
            f--;
        same = same && f >= 1 && is_frame(zWal, &w, &rec, i, f);
    }
    ok(rc == SQLITE_OK && same && spool_contiguous(r->sp, 20) == t.txid_max,
       "each page is its newest frame; the spool is contiguous through "
       "TXID %llu",
       (unsigned long long)t.txid_max);
    spool_txn_free(&rec);

    t.txid = 30;
    t.txid_max = 30 + commits - 1;
    t.pos.cksum1 ^= 1; /* the chain does not end where the reference says */
    rc = rep_spool_txn(r, &t, 0, &zErr);
    spool_scan(r->sp);
    ok(rc == SQLITE_OK && spool_read(r->sp, 30, &rec) == SQLITE_OK &&
           rec.flags == SPOOL_F_FULL && rec.txid_max == t.txid_max &&
           spool_contiguous(r->sp, 30) == t.txid_max,
       "a reference the WAL does not validate: one full-image marker for "
       "all its TXIDs");
    spool_txn_free(&rec);
    rt_replicator_free(r);
    sqlite3_close(db);
    sqlite3_free(zWal);
    sqlite3_free(zDb);
}

/* Three consecutive copies, then a marker, then two more: 1..3, 4, 5..6. */
static void
test_runs(void)
{
    char *zDb = sqlite3_mprintf("%s/runs.db", zDir);
    replicator *r = rt_replicator(zDb, NULL);
    size_t fsz = WAL_FRAME_HDR_SIZE + PS;
    uint8_t *buf = malloc(fsz * 16);
    char *zErr = NULL;
    spool_txn rec;
    static const uint32_t pa[] = {1, 2}, va[] = {1, 1}, pb[] = {2, 3, 4},
                          vb[] = {2, 1, 1}, pc[] = {3, 1}, vc[] = {2, 2};

    /* TXID 1 writes 1,2; 2 writes 2,3,4 (commit 4); 3 rewrites 3 and 1 and
     * truncates to 3 pages. */
    rep_txn t[6];
    t[0] = copied(1, 2, pa, va, 2, buf);
    t[1] = copied(2, 4, pb, vb, 3, buf + 2 * fsz);
    t[2] = copied(3, 3, pc, vc, 2, buf + 5 * fsz);
    t[0].next = &t[1];
    t[1].next = &t[2];
    int rc = rep_spool_run(r, &t[0], 3, 0, &zErr);
    spool_scan(r->sp);
    ok(rc == SQLITE_OK && spool_read(r->sp, 1, &rec) == SQLITE_OK &&
           rec.txid == 1 && rec.txid_max == 3,
       "three consecutive copies: one record of TXIDs 1..3");
    ok(rec.npages == 3 && rec.commit == 3 && rec.pos.frame == 43 &&
           page_is(&rec, 0, 1, 2) && page_is(&rec, 1, 2, 2) &&
           page_is(&rec, 2, 3, 2),
       "newest copy of pages 1-3 as of TXID 3, page 4 (beyond its commit) "
       "dropped, TXID 3's position");
    spool_txn_free(&rec);
    ok(spool_contiguous(r->sp, 1) == 3 && !spool_has(r->sp, 2),
       "contiguous 1..3 through the run; no record starts at 2");

    t[3] = copied(4, 3, pa, va, 2, buf + 7 * fsz);
    t[3].flags = REP_FULL;
    rep_spool_txn(r, &t[3], 0, &zErr);
    t[4] = copied(5, 3, pa, vb, 2, buf + 9 * fsz);
    t[5] = copied(6, 3, pc, vc, 2, buf + 11 * fsz);
    t[4].next = &t[5];
    rep_spool_run(r, &t[4], 2, 0, &zErr);
    spool_scan(r->sp);
    ok(spool_contiguous(r->sp, 1) == 6, "1..3, the marker at 4, 5..6");
    ok(spool_read_next(r->sp, 3, &rec) == SQLITE_OK && rec.txid == 4 &&
           rec.flags == SPOOL_F_FULL,
       "after 3 comes the marker");
    spool_txn_free(&rec);
    ok(spool_read_end(r->sp, 6, &rec) == SQLITE_OK && rec.txid == 5 &&
           rec.pos.frame == 46,
       "the record ending at 6 says where 6 ended");
    spool_txn_free(&rec);
    ok(spool_read_end(r->sp, 2, &rec) == SQLITE_NOTFOUND,
       "no record ends at 2 (inside a run)");

    /* 7..8, then a run 8..9 overlapping it (TXID 8 spooled twice, as
     * after a recapture): the walk continues through both. */
    t[1].next = &t[2];
    t[2].next = NULL;
    rep_txn u[4] = {t[1], t[2], t[1], t[2]};
    u[0].txid = 7;
    u[1].txid = 8;
    u[0].next = &u[1];
    rep_spool_run(r, &u[0], 2, 0, &zErr);
    u[2].txid = 8;
    u[3].txid = 9;
    u[2].next = &u[3];
    rep_spool_run(r, &u[2], 2, 0, &zErr);
    spool_scan(r->sp);
    ok(spool_contiguous(r->sp, 1) == 9 &&
           spool_read_next(r->sp, 6, &rec) == SQLITE_OK && rec.txid == 7 &&
           rec.txid_max == 8,
       "7..8 continues after 6");
    spool_txn_free(&rec);
    ok(spool_read_next(r->sp, 8, &rec) == SQLITE_OK && rec.txid == 8 &&
           rec.txid_max == 9,
       "the overlapping run 8..9 continues after 8");
    spool_txn_free(&rec);
    spool_drop_upto(r->sp, 6);
    ok(spool_contiguous(r->sp, 7) == 9 &&
           spool_read_end(r->sp, 6, &rec) == SQLITE_OK,
       "dropped below 6: the run ending at 6 is kept, 7..9 still indexed");
    spool_txn_free(&rec);

    /* A record appended after the last scan (spooled while an upload
     * runs) keeps its segment when everything scanned is dropped. */
    rep_txn v = t[1];
    v.txid = 11;
    v.next = NULL;
    rep_spool_run(r, &v, 1, 0, &zErr); /* a new segment */
    spool_scan(r->sp);
    v.txid = 12;
    rep_spool_run(r, &v, 1, 0, &zErr); /* the same segment, not scanned */
    spool_drop_upto(r->sp, 12);        /* everything scanned is < 12 */
    spool_scan(r->sp);
    ok(spool_has(r->sp, 12),
       "a record appended after the scan survives spool_drop_upto");
    free(buf);
    rt_replicator_free(r);
    sqlite3_free(zDb);
}

int
main(void)
{
    rt_init();
    zDir = rt_tmpdir();
    test_copied();
    test_runs();
    test_walref();
    test_walref_big();
    test_walref_run();
    rt_rmrf(zDir);
    free(zDir);
    return tap_done();
}
