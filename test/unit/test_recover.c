/*
 * test_recover.c: storage/replicate/recover.c, the verdicts on captured
 * TXIDs that no spool holds, over a real WAL: none while nothing is
 * missing, while the gap is young (grace period) or while this process
 * still has transactions queued; once the grace period is over, the
 * missing TXIDs re-read from the WAL into the spool (each ending where its
 * commit frame is), or, when the WAL cannot supply them, the verdict that a
 * full image is needed.  Recovery never uploads.  And the recapture of a
 * stale captured position under a private write lock, after its own grace
 * period.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/replicate/recover.h"
#include "test/tap.h"
#include "test/unit/membackend.h"
#include "test/unit/reptest.h"

static char *zDir;
static int n_recaptures;

static void
count_recapture(void *ctx, sqlite3_file *db, sqlite3_file *wal)
{
    (void)ctx;
    if (db && wal)
        n_recaptures++;
}

/* The commit frames of w, in order: c[0..n-1].  Returns n. */
static int
commits(const rt_wal *w, uint32_t *c)
{
    int n = 0;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->f[i].commit)
            c[n++] = i + 1;
    return n;
}

static void
test_verdicts(void)
{
    char *zDb = sqlite3_mprintf("%s/gap.db", zDir);
    char *zWal = sqlite3_mprintf("%s-wal", zDb);
    mem_store *s = mem_store_new();
    sqlite3 *db = NULL;
    rt_wal w;
    uint32_t c[256];
    rep_gap v = REP_GAP_IMAGE;

    sqlite3_open(zDb, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=1024; PRAGMA journal_mode=WAL;"
                 "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);"
                 "INSERT INTO t VALUES(randomblob(1500));"
                 "INSERT INTO t VALUES(randomblob(500));"
                 "UPDATE t SET x=randomblob(800) WHERE rowid=1;",
                 NULL, NULL, NULL);
    rt_wal_read(zWal, &w);
    int nc = commits(&w, c);
    ok(nc == 4, "a real WAL with 4 transactions (%d)", nc);
    replicator *r = rt_replicator(zDb, membackend_open(s));

    /* TXID 10 (the CREATE) is replicated; 11..13 were captured only. */
    sidecar_set_replicated(r->sc, 10, 1);
    r->tg[0].rep_pos = rt_wal_pos(&w, c[0]);
    ls_cap cap = {.txid = 10, .flags = CAP_VALID};
    sidecar_cap_write(r->sc, &cap);
    int rc = rep_fill_gap(r->tg, 10, &v);
    ok(rc == SQLITE_OK && v == REP_GAP_NONE && r->tg[0].gap_since_ms == 0,
       "nothing captured beyond: no gap");

    wal_pos end = rt_wal_pos(&w, c[3]);
    cap = (ls_cap){.txid = 13,
                   .flags = CAP_VALID,
                   .salt1 = end.salt1,
                   .salt2 = end.salt2,
                   .frame = end.frame,
                   .cksum1 = end.cksum1,
                   .cksum2 = end.cksum2,
                   .page_size = w.page_size,
                   .commit = w.f[c[3] - 1].commit};
    sidecar_cap_write(r->sc, &cap);
    rc = rep_fill_gap(r->tg, 10, &v);
    ok(rc == SQLITE_OK && v == REP_GAP_NONE && r->tg[0].gap_since_ms > 0,
       "a new gap: no verdict yet, its age starts");
    /* A gap first seen "later than now": young on any machine. */
    r->tg[0].gap_since_ms = clock_now_ms() + 60000;
    rc = rep_fill_gap(r->tg, 10, &v);
    ok(rc == SQLITE_OK && v == REP_GAP_NONE && !spool_has(r->sp, 11),
       "within the grace period: still waiting");

    rep_txn queued = {.txid = 14};
    r->head = r->tail = &queued;
    r->tg[0].gap_since_ms = 1;
    rc = rep_fill_gap(r->tg, 10, &v);
    ok(rc == SQLITE_OK && v == REP_GAP_NONE && r->tg[0].gap_since_ms == 0,
       "transactions still queued here: not a gap");
    r->head = r->tail = NULL;

    r->tg[0].gap_since_ms = 1; /* long ago */
    rc = rep_fill_gap(r->tg, 10, &v);
    spool_scan(r->sp);
    ok(rc == SQLITE_OK && v == REP_GAP_RECOVERED && r->tg[0].gap_since_ms == 0,
       "after the grace period: TXIDs re-read from the WAL (rc %d, v %d)", rc,
       (int)v);
    int good = 1;
    for (int i = 1; i <= 3; i++) {
        spool_txn rec;
        good = good && spool_read(r->sp, 10 + (uint64_t)i, &rec) == SQLITE_OK &&
               rec.pos.frame == c[i] && rec.commit == w.f[c[i] - 1].commit &&
               rec.npages == c[i] - c[i - 1];
        spool_txn_free(&rec);
    }
    ok(good, "spooled as 11..13, each ending at its commit frame");
    ok(mem_store_count(s) == 0, "recovery uploaded nothing");

    /* The WAL cannot supply TXID 14: a full image is the verdict. */
    cap.txid = 14;
    sidecar_cap_write(r->sc, &cap);
    r->tg[0].gap_since_ms = 1;
    rc = rep_fill_gap(r->tg, 13, &v);
    ok(rc == SQLITE_OK && v == REP_GAP_IMAGE && r->tg[0].gap_since_ms == 1 &&
           mem_store_count(s) == 0,
       "a WAL that does not hold the missing TXIDs: a full image is needed, "
       "and left to the caller");

    rt_replicator_free(r);
    sqlite3_close(db);
    mem_store_free(s);
    sqlite3_free(zWal);
    sqlite3_free(zDb);
}

static void
test_recapture(void)
{
    char *zDb = sqlite3_mprintf("%s/stale.db", zDir);
    sqlite3 *db = NULL;

    sqlite3_open(zDb, &db);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(x);", NULL, NULL,
                 NULL);
    replicator *r = rt_replicator(zDb, NULL);
    rep_recapture_if_stale(r->tg);
    ok(r->tg[0].full_busy_since_ms == 0, "no recapture hook: nothing happens");
    r->opts.xRecapture = count_recapture;
    rep_recapture_if_stale(r->tg);
    ok(r->tg[0].full_busy_since_ms > 0 && n_recaptures == 0,
       "first failure: the grace period starts");
    r->tg[0].full_busy_since_ms = clock_now_ms() + 60000; /* young anywhere */
    rep_recapture_if_stale(r->tg);
    ok(n_recaptures == 0, "within it: no recapture");
    r->tg[0].full_busy_since_ms = 1;
    rep_recapture_if_stale(r->tg);
    ok(n_recaptures == 1 && r->tg[0].full_busy_since_ms == 0,
       "past it: the capture runs once on a private write lock");
    rt_replicator_free(r);
    sqlite3_close(db);
    sqlite3_free(zDb);
}

int
main(void)
{
    rt_init();
    zDir = rt_tmpdir();
    test_verdicts();
    test_recapture();
    rt_rmrf(zDir);
    free(zDir);
    return tap_done();
}
