/*
 * test_replicator.c: storage/replicate/replicator.c, the application-side
 * API and the thread: a queued transaction is spooled and uploaded, and
 * litestream_sync's wait (replicator_sync) returns once the replica holds
 * it; replicator_persist() makes the queue durable in the spool; a sync
 * that cannot be satisfied times out with SQLITE_BUSY and says why;
 * before a WAL reset nothing waits when only copies are queued; the
 * settings round-trip, the PITR ones through the compactor; a big queue
 * wakes the thread at once; with everything uploaded no pass runs per
 * sync interval, and a record another process spools (another spool
 * handle on the same directory) wakes the task, which uploads it without
 * being asked; close uploads within its grace.  Over a file:// replica
 * (replicator_open opens the backend from the URL).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "storage/base/pool.h"
#include "storage/local/wal.h"
#include "storage/replicate/replicator.h"
#include "test/tap.h"
#include "test/unit/reptest.h"

#define PS 512

/* A queued transaction of copied frames (pages from..to at version). */
static void
nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Spools record `txid` (pages 2..3 at that version, 3 pages) through a
 * spool handle of its own, as another process would, and publishes it as
 * captured.  SQLITE_OK or the spool's error. */
static int
foreign_record(sidecar *sc, const char *zSpool, uint64_t txid)
{
    static const uint32_t pgnos[] = {2, 3};
    static uint8_t pages[2][PS];
    spool *sp = NULL;
    char *zErr = NULL;
    int rc = spool_open(zSpool, &sp, &zErr);
    for (uint32_t i = 0; i < 2; i++)
        rt_page(pages[i], PS, pgnos[i], (uint32_t)txid);
    spool_txn t = {.txid = txid,
                   .page_size = PS,
                   .commit = 3,
                   .npages = 2,
                   .pgnos = pgnos,
                   .pages = pages[0],
                   .pos = {1, 2, (uint32_t)txid, 3, 4}};
    if (rc == SQLITE_OK)
        rc = spool_append(sp, &t, 0, &zErr);
    ls_cap cap = {
        .txid = txid, .flags = CAP_VALID, .page_size = PS, .commit = 3};
    if (rc == SQLITE_OK)
        sidecar_cap_write(sc, &cap);
    sqlite3_free(zErr);
    spool_close(sp);
    return rc;
}

static rep_txn *
txn(uint64_t txid, uint32_t flags, uint32_t from, uint32_t to, uint32_t version)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + PS;
    rep_txn *t = calloc(1, sizeof(*t));
    t->txid = txid;
    t->flags = flags;
    t->page_size = PS;
    t->commit = to;
    t->nframes = to - from + 1;
    t->frames = calloc(t->nframes, fsz);
    for (uint32_t i = 0; i < t->nframes; i++) {
        uint8_t *f = t->frames + i * fsz;
        uint32_t pg = from + i;
        f[0] = (uint8_t)(pg >> 24);
        f[1] = (uint8_t)(pg >> 16);
        f[2] = (uint8_t)(pg >> 8);
        f[3] = (uint8_t)pg;
        rt_page(f + WAL_FRAME_HDR_SIZE, PS, pg, version);
    }
    t->pos = (wal_pos){1, 2, (uint32_t)txid, 3, 4};
    return t;
}

int
main(void)
{
    rt_init();
    char *zDir = rt_tmpdir();
    char *zDb = sqlite3_mprintf("%s/app.db", zDir);
    char *zUrl = sqlite3_mprintf("file://%s/replica", zDir);
    char *zErr = NULL;
    sidecar *sc = NULL;
    replicator *r = NULL;
    rep_opts o = {.sync_interval_ms = 50, .zVfs = "unix"};
    pitr_defaults(&o.pitr);

    int rc = sidecar_open(zDb, &sc, &zErr);
    if (rc == SQLITE_OK)
        rc = replicator_open(zDb, zUrl, &o, sc, &r, &zErr);
    ok(rc == SQLITE_OK && replicator_has_url(r, zUrl) &&
           !replicator_has_url(r, "file:///elsewhere"),
       "opened over %s (%s)", zUrl, zErr ? zErr : "");
    if (rc != SQLITE_OK)
        return tap_done();

    replicator_enqueue(r, txn(1, REP_IMAGE, 1, 3, 1));
    uint64_t rep = 0;
    rc = replicator_sync(r, 1, 10000, &rep, &zErr);
    char *zObj = sqlite3_mprintf(
        "%s/replica/ltx/0/0000000000000001-0000000000000001.ltx", zDir);
    struct stat st;
    ok(rc == SQLITE_OK && rep == 1 && stat(zObj, &st) == 0,
       "a queued image: sync returns once the replica holds TXID 1");
    ok(sidecar_replicated(sc) == 1 && sidecar_spooled(sc) >= 1,
       "spooled and replicated positions advanced");

    replicator_enqueue(r, txn(2, 0, 2, 3, 2));
    ok(replicator_before_wal_reset(r) == SQLITE_OK,
       "before a WAL reset: queued copies need no wait");
    ok(replicator_persist(r) == SQLITE_OK && sidecar_spooled(sc) >= 2,
       "persist: the queue is in the spool when it returns");
    rc = replicator_sync(r, 2, 10000, &rep, &zErr);
    ok(rc == SQLITE_OK && rep == 2, "sync to TXID 2");

    rc = replicator_sync(r, 99, 100, &rep, &zErr);
    ok(rc == SQLITE_BUSY && rep == 2 && zErr &&
           strstr(zErr, "did not reach TXID 99"),
       "a TXID nobody captured: SQLITE_BUSY after the timeout (%s)",
       zErr ? zErr : "no message");
    sqlite3_free(zErr);
    zErr = NULL;

    replicator_set_interval(r, 250);
    replicator_set_spool_limit(r, 12345);
    ok(replicator_interval(r) == 250 && replicator_spool_limit(r) == 12345,
       "interval and spool limit round-trip");
    replicator_set_spool_limit(r, 0); /* the default again */
    ls_pitr p = o.pitr, q;
    p.levels[0] = 10000;
    p.l0_retention_ms = PITR_OFF;
    replicator_set_pitr(r, &p);
    replicator_pitr(r, &q);
    ok(q.levels[0] == 10000 && q.l0_retention_ms == PITR_OFF,
       "PITR settings reach the compactor and come back");

    /* A big queue wakes the thread and uploads at once, whatever the
     * interval: after this sync the next upload is an hour away. */
    replicator_set_interval(r, 3600000);
    replicator_sync(r, 2, 10000, &rep, NULL);
    uint32_t big = (16u << 20) / (PS + WAL_FRAME_HDR_SIZE) + 1;
    replicator_enqueue(r, txn(3, 0, 1, big, 3));
    for (int i = 0; i < 1000 && sidecar_replicated(sc) < 3; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    ok(sidecar_replicated(sc) == 3,
       "a 16 MiB queue is uploaded at once, not at the next interval");

    /* Idle at a 50 ms interval: the pool runs (almost) no pass, where an
     * upload pass per interval would be 20 a second. */
    replicator_set_interval(r, 50);
    /* No level-1 boundary (every 10 s above) inside the window: the
     * compactor's merge of the upload above would run there. */
    p.levels[0] = 3600000;
    replicator_set_pitr(r, &p);
    /* The passes after the last upload (the replicator's, the replica's,
     * the compactor's) end within a few intervals; on a loaded machine
     * later: wait until 300 ms pass without one (at most 10 s). */
    pool_info a, b;
    pool_get_info(&a);
    for (int i = 0; i < 33; i++) {
        nap(300);
        pool_get_info(&b);
        if (b.passes == a.passes)
            break;
        a = b;
    }
    pool_get_info(&a);
    nap(1000);
    pool_get_info(&b);
    ok(b.passes - a.passes <= 4,
       "idle: %llu pool passes in 1 s at a 50 ms sync interval",
       (unsigned long long)(b.passes - a.passes));
    char *zSpool = sqlite3_mprintf("%s/app.db-litestream/spool", zDir);
    rc = foreign_record(sc, zSpool, 4);
    for (int i = 0; i < 1000 && sidecar_replicated(sc) < 4; i++)
        nap(10);
    ok(rc == SQLITE_OK && sidecar_replicated(sc) == 4,
       "a record another process spooled wakes the idle task: uploaded "
       "without a sync");
    sqlite3_free(zSpool);

    replicator_enqueue(r, txn(5, 0, 1, 3, 5));
    replicator_close(r, 10000);
    ok(sidecar_replicated(sc) == 5,
       "close: what this process captured is uploaded within the grace");
    sidecar_close(sc);
    rt_rmrf(zDir);
    sqlite3_free(zObj);
    sqlite3_free(zUrl);
    sqlite3_free(zDb);
    free(zDir);
    return tap_done();
}
