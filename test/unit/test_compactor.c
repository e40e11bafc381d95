/*
 * test_compactor.c: storage/history/compactor.c through its environment
 * (compactor_env), over an in-memory backend: nothing happens while the
 * owner says this process does not ship, and a snapshot asked for then is
 * refused naming the reason; once it ships, the L0 run is merged into one
 * level-1 object that verifies (pages, post-apply checksum); the settings
 * round-trip.  Idle: the pass that merged lists the replica once (its
 * retention and snapshot steps use that picture), and a caught-up level
 * is not listed again at its next boundaries; an upload it is told about
 * (compactor_notify) is merged at the next boundary.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/backend/layout.h"
#include "storage/backend/url.h"
#include "storage/history/compactor.h"
#include "test/tap.h"
#include "test/unit/membackend.h"
#include "test/unit/membuf.h"
#include "test/unit/reptest.h"

#define PS 512

static int shipping;

static void
nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Waits up to 5 s for key to be in s. */
static int
wait_key(mem_store *s, const char *key)
{
    size_t n = 0;
    uint8_t *p = NULL;
    for (int i = 0; i < 500 && !p; i++) {
        nap(10);
        p = mem_store_get(s, key, &n);
    }
    free(p);
    return p != NULL;
}
static uint8_t db[4][PS];

static int
is_shipping(void *ctx)
{
    (void)ctx;
    return __atomic_load_n(&shipping, __ATOMIC_ACQUIRE);
}

/*
 * Puts L0 object txid-txid: pages pgnos[] at version txid over db
 * (commit 4), pre-apply *chain (0 for TXID 1); *chain becomes its
 * post-apply checksum.
 */
static void
put_l0(mem_store *s, backend *b, uint64_t txid, const uint32_t *pgnos,
       uint32_t n, uint64_t *chain)
{
    membuf m = {0};
    ltx_encoder *enc = NULL;
    char key[64];
    ltx_header h = {.page_size = PS,
                    .commit = 4,
                    .min_txid = txid,
                    .max_txid = txid,
                    .timestamp = clock_now_ms(),
                    .pre_apply = *chain};
    for (uint32_t i = 0; i < n; i++)
        rt_page(db[pgnos[i] - 1], PS, pgnos[i], (uint32_t)txid);
    ltx_encoder_open(&h, mem_write, &m, &enc);
    for (uint32_t i = 0; i < n; i++)
        ltx_encoder_page(enc, pgnos[i], db[pgnos[i] - 1]);
    *chain = ltx_db_checksum(db, PS, 4);
    ltx_encoder_finish(enc, *chain, NULL);
    ltx_encoder_free(enc);
    layout_key(b, 0, txid, txid, key, sizeof(key));
    mem_store_put(s, key, m.p, m.n, h.timestamp);
    free(m.p);
}

int
main(void)
{
    rt_init();
    char *zDir = rt_tmpdir();
    char *zDb = sqlite3_mprintf("%s/c.db", zDir);
    mem_store *s = mem_store_new();
    backend *probe = membackend_open(s);
    sidecar *sc = NULL;
    ls_url *u = NULL;
    compactor *c = NULL;
    char *zErr = NULL;
    uint64_t chain = 0, txid = 0;
    static const uint32_t all[] = {1, 2, 3, 4}, p2[] = {2}, p34[] = {3, 4};

    sidecar_open(zDb, &sc, &zErr);
    url_parse("file:///unused", &u, &zErr);
    put_l0(s, probe, 1, all, 4, &chain);
    put_l0(s, probe, 2, p2, 1, &chain);
    put_l0(s, probe, 3, p34, 2, &chain);
    sidecar_set_replicated(sc, 3, clock_now_ms());

    ls_pitr o;
    pitr_defaults(&o);
    o.levels[0] = 100; /* L1 every 100 ms */
    o.nlevels = 1;
    o.l0_retention_ms = PITR_OFF;
    compactor_env env = {.url = u,
                         .zDbPath = zDb,
                         .zVfs = "unix",
                         .sc = sc,
                         .xShipping = is_shipping,
                         .be = membackend_open(s)};
    int rc = compactor_start(&env, &o, &c, &zErr);
    ok(rc == SQLITE_OK, "started over the env's backend");

    ls_pitr q;
    compactor_get(c, &q);
    ok(q.levels[0] == 100 && q.nlevels == 1 && q.l0_retention_ms == PITR_OFF,
       "settings round-trip");

    rc = compactor_snapshot_now(c, 5000, &txid, &zErr);
    ok(rc == SQLITE_BUSY && zErr && strstr(zErr, "another process"),
       "not shipping: a snapshot is refused (%s)", zErr ? zErr : "");
    sqlite3_free(zErr);
    zErr = NULL;
    ok(mem_store_count(s) == 3, "not shipping: nothing merged");

    char key[64];
    layout_key(probe, 1, 1, 3, key, sizeof(key));
    /* The list() calls of one listing of the replica. */
    int l0 = mem_store_lists(s);
    ltx_info *objs = NULL;
    int nall = 0;
    layout_list_all(probe, &objs, &nall);
    sqlite3_free(objs);
    int one = mem_store_lists(s) - l0;
    l0 = mem_store_lists(s);
    __atomic_store_n(&shipping, 1, __ATOMIC_RELEASE);
    compactor_set(c, &o); /* wakes it */
    uint8_t *p = NULL;
    size_t n = 0;
    for (int i = 0; i < 500 && !p; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        p = mem_store_get(s, key, &n);
    }
    ok(p != NULL, "shipping: L0 1..3 merged into level 1 (%s)", key);
    static uint8_t got[4][PS];
    ltx_header h = {0};
    ltx_trailer tr = {0};
    rc = p ? rt_apply(p, n, got[0], 4, &h, &tr) : SQLITE_NOTFOUND;
    ok(rc == SQLITE_OK && h.min_txid == 1 && h.max_txid == 3 &&
           memcmp(got, db, sizeof(db)) == 0 && tr.post_apply == chain,
       "the merge holds the newest pages and the last post-apply checksum");
    free(p);

    /* Ten level-1 boundaries (100 ms) later: still that one listing. */
    nap(1000);
    int lists = mem_store_lists(s) - l0;
    ok(lists == one,
       "idle: one listing for the merge and everything after it, none at "
       "the next boundaries (%d list calls, %d per listing)",
       lists, one);

    /* An upload it is told about: merged at the next boundary. */
    static const uint32_t p1[] = {1};
    put_l0(s, probe, 4, p1, 1, &chain);
    sidecar_set_replicated(sc, 4, clock_now_ms());
    compactor_notify(c);
    layout_key(probe, 1, 4, 4, key, sizeof(key));
    ok(wait_key(s, key), "an upload it was told about is merged (%s)", key);

    compactor_stop(c);
    backend_close(probe);
    url_free(u);
    sidecar_close(sc);
    mem_store_free(s);
    rt_rmrf(zDir);
    sqlite3_free(zDb);
    free(zDir);
    return tap_done();
}
