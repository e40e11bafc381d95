/*
 * test_restore.c: restore plans and restores from a file replica
 * (storage/restore/restore.c, plan.c, fetch.c over file.c).
 *
 * A real SQLite database goes through ten transactions (rollback journal
 * mode, so the file after each commit is that TXID's image; the last ones
 * shrink it with DELETE and VACUUM).  From those images the test writes
 * replicas by hand with the codec's encoder: snapshots at L9, compacted
 * files at L1, single-TXID files at L0.  What a user relies on:
 *   - latest, TXID and time restores produce the database byte for byte;
 *   - the plan prefers snapshots and compacted files, as docs/ltx-format.md 2.4
 * says;
 *   - unrestorable targets, gaps, missing snapshots, empty/missing replicas,
 *     corrupt objects and existing destinations fail with a message that
 *     says what exists or which object is bad, and the destination is left
 *     untouched with no temporary file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/backend.h"
#include "storage/backend/layout.h"
#include "storage/ltx/ltx.h"
#include "storage/restore/restore.h"
#include "storage/backend/url.h"
#include "test/tap.h"
#include "test/unit/api_init.h"
#include "test/unit/membuf.h"

#define PS  4096
#define NTX 10
#define T0  1700000000000LL /* creation time of TXID t: T0 + t * 1000 */

/* The database image after each TXID (1..NTX). */
static struct {
    uint8_t *p;
    uint32_t npages;
} img[NTX + 1];

static char dir[256]; /* scratch directory of this run */

/* ---- building the database states ---------------------------------- */

static uint8_t *
read_file(const char *zPath, size_t *n)
{
    FILE *f = fopen(zPath, "rb");
    uint8_t *p;
    long len;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

static void
make_states(void)
{
    static const char *const sql[NTX + 1] = {
        NULL,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)",
        "INSERT INTO t(v) SELECT randomblob(900) FROM generate_series(1,20)",
        "INSERT INTO t(v) SELECT randomblob(1500) FROM generate_series(1,20)",
        "UPDATE t SET v = zeroblob(100) WHERE id % 3 = 0",
        "INSERT INTO t(v) SELECT randomblob(5000) FROM generate_series(1,10)",
        "CREATE INDEX t_v ON t(length(v))",
        "INSERT INTO t(v) VALUES (x'00'), (x'01')",
        "INSERT INTO t(v) SELECT randomblob(3000) FROM generate_series(1,30)",
        "DELETE FROM t WHERE id % 2 = 0",
        "VACUUM",
    };
    char path[512];
    sqlite3 *db;
    int t;

    snprintf(path, sizeof(path), "%s/source.db", dir);
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=DELETE", NULL,
                 NULL, NULL);
    for (t = 1; t <= NTX; t++) {
        size_t n = 0;
        char *zErr = NULL;
        if (sqlite3_exec(db, sql[t], NULL, NULL, &zErr) != SQLITE_OK) {
            /* generate_series is not in every build: fall back. */
            sqlite3_free(zErr);
            char *z = sqlite3_mprintf("%s", sql[t]);
            char *g = strstr(z, "FROM generate_series");
            if (g) {
                int cnt = atoi(strchr(g, ',') + 1);
                *g = 0;
                char *loop = sqlite3_mprintf(
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 "
                    "FROM c WHERE i < %d) %s FROM c",
                    cnt, z);
                sqlite3_exec(db, loop, NULL, NULL, NULL);
                sqlite3_free(loop);
            }
            sqlite3_free(z);
        }
        img[t].p = read_file(path, &n);
        img[t].npages = (uint32_t)(n / PS);
    }
    sqlite3_close(db);
}

/* ---- writing LTX objects --------------------------------------------- */

/*
 * Encodes the change from TXID min-1 to TXID max (a snapshot of max when
 * min is 1) and stores it at level in the replica root.
 */
static int
put_ltx(const char *root, int level, uint64_t min, uint64_t max, int cksums)
{
    ltx_header h;
    ltx_encoder *enc = NULL;
    membuf m = {0};
    uint32_t pg, n = img[max].npages;
    const uint8_t *prev = min > 1 ? img[min - 1].p : NULL;
    uint32_t nprev = min > 1 ? img[min - 1].npages : 0;
    backend *b = NULL;
    char key[LAYOUT_KEY_SIZE];
    int rc;

    memset(&h, 0, sizeof(h));
    h.flags = cksums ? 0 : LTX_FLAG_NO_CHECKSUM;
    h.page_size = PS;
    h.commit = n;
    h.min_txid = min;
    h.max_txid = max;
    h.timestamp = T0 + (int64_t)max * 1000;
    if (cksums && min > 1)
        h.pre_apply = ltx_db_checksum(prev, PS, nprev);
    rc = ltx_encoder_open(&h, mem_write, &m, &enc);
    for (pg = 1; rc == SQLITE_OK && pg <= n; pg++) {
        const uint8_t *page = img[max].p + (size_t)(pg - 1) * PS;
        if (prev && pg <= nprev &&
            memcmp(page, prev + (size_t)(pg - 1) * PS, PS) == 0)
            continue;
        rc = ltx_encoder_page(enc, pg, page);
    }
    if (rc == SQLITE_OK)
        rc = ltx_encoder_finish(
            enc, cksums ? ltx_db_checksum(img[max].p, PS, n) : 0, NULL);
    if (rc != SQLITE_OK)
        diag("encode %llu-%llu: %s", (unsigned long long)min,
             (unsigned long long)max, ltx_encoder_errmsg(enc));
    ltx_encoder_free(enc);
    if (rc == SQLITE_OK)
        rc = backend_open(root, &b, NULL);
    if (rc == SQLITE_OK)
        rc = layout_key(b, level, min, max, key, sizeof(key));
    if (rc == SQLITE_OK)
        rc = backend_put(b, key, m.p, m.n, h.timestamp);
    backend_close(b);
    free(m.p);
    return rc;
}

static char *
mkpath(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
    return buf[k];
}

static int
file_equals(const char *zPath, int t)
{
    size_t n = 0;
    uint8_t *p = read_file(zPath, &n);
    int same =
        p && n == (size_t)img[t].npages * PS && memcmp(p, img[t].p, n) == 0;
    free(p);
    return same;
}

static int
exists(const char *zPath)
{
    struct stat st;
    return stat(zPath, &st) == 0;
}

/* restore_run() with a target; returns rc, sets *pzErr and *pzJson. */
static int
run(const char *zUrl, const char *zOut, uint64_t txid, int64_t ms,
    int overwrite, char **pzJson, char **pzErr)
{
    restore_opts o = {txid, ms, overwrite, 4};
    *pzJson = NULL;
    *pzErr = NULL;
    return restore_run(zUrl, zOut, &o, pzJson, pzErr);
}

/* ---- the tests -------------------------------------------------------- */

static const char *main_root;

static void
build_main_replica(void)
{
    uint64_t t;
    int rc = SQLITE_OK;

    main_root = strdup(mkpath("main"));
    for (t = 1; t <= NTX; t++)
        rc |= put_ltx(main_root, 0, t, t, 1);
    rc |= put_ltx(main_root, 1, 1, 5, 1);
    rc |= put_ltx(main_root, 1, 6, 8, 1);
    rc |= put_ltx(main_root, 9, 1, 4, 1);
    ok(rc == SQLITE_OK, "main replica written (L0 1..10, L1 1-5 6-8, L9 1-4)");
}

static void
test_plans(void)
{
    backend *b = NULL;
    restore_plan p;
    char *zErr = NULL;
    int rc;

    backend_open(main_root, &b, NULL);
    rc = restore_plan_make(b, 0, 0, &p, &zErr);
    ok(rc == SQLITE_OK && p.n == 5 && p.txid == 10,
       "latest plan: %d files "
       "to %llu",
       p.n, (unsigned long long)p.txid);
    if (rc == SQLITE_OK && p.n == 5)
        ok(p.files[0].level == 9 && p.files[0].max_txid == 4 &&
               p.files[1].level == 1 && p.files[1].max_txid == 5 &&
               p.files[2].level == 1 && p.files[2].min_txid == 6 &&
               p.files[3].level == 0 && p.files[3].min_txid == 9 &&
               p.files[4].level == 0 && p.files[4].min_txid == 10,
           "latest plan: L9 1-4, L1 1-5, L1 6-8, L0 9, L0 10");
    restore_plan_free(&p);

    rc = restore_plan_make(b, 7, 0, &p, &zErr);
    ok(rc == SQLITE_OK && p.n == 4 && p.txid == 7 && p.files[1].level == 1 &&
           p.files[3].min_txid == 7,
       "TXID 7 plan: L9 1-4, L1 1-5, L0 6, L0 7");
    restore_plan_free(&p);

    rc = restore_plan_make(b, 3, 0, &p, &zErr);
    ok(rc == SQLITE_OK && p.n == 3 && p.files[0].level == 0 && p.txid == 3,
       "TXID 3 plan: no snapshot old enough, L0 1, 2, 3");
    restore_plan_free(&p);

    rc = restore_plan_make(b, 0, T0 + 7500, &p, &zErr);
    ok(rc == SQLITE_OK && p.txid == 7, "time plan stops at TXID 7 (%llu)",
       (unsigned long long)p.txid);
    restore_plan_free(&p);

    rc = restore_plan_make(b, 0, T0 + 10, &p, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr &&
           strstr(zErr, "nothing to restore at or before 2023-11-14T22:13:20"
                        ".010Z: the earliest restorable point was created "
                        "at 2023-11-14T22:13:21.000Z"),
       "time before everything: %s", zErr);
    sqlite3_free(zErr);
    zErr = NULL;

    rc = restore_plan_make(b, 11, 0, &p, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr &&
           !strcmp(zErr, "litestream: TXID 000000000000000b is not a "
                         "restorable point; nearest available: "
                         "000000000000000a (the latest)"),
       "TXID past the end: %s", zErr);
    sqlite3_free(zErr);
    backend_close(b);
}

static void
test_restore_latest_and_points(void)
{
    char *zJson, *zErr;
    char buf[512];
    int rc;
    uint64_t t;

    rc = run(main_root, mkpath("latest.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK, "latest restore: %s", zErr ? zErr : zJson);
    ok(file_equals(mkpath("latest.db"), NTX), "latest restore is byte-exact");
    snprintf(buf, sizeof(buf),
             "{\"path\":\"%s\",\"txid\":\"000000000000000a\",\"files\":5,"
             "\"pages\":%u,\"page_size\":4096,\"size\":%u,\"checksum\":\"",
             mkpath("latest.db"), img[NTX].npages, img[NTX].npages * PS);
    ok(zJson && strncmp(zJson, buf, strlen(buf)) == 0 &&
           strstr(zJson, "\"elapsed_ms\":"),
       "JSON summary: %s", zJson);
    ok(!exists(mkpath("latest.db.tmp")), "no temporary file left");
    sqlite3_free(zJson);
    sqlite3_free(zErr);

    for (t = 1; t <= NTX; t++) {
        char name[32];
        snprintf(name, sizeof(name), "at%llu.db", (unsigned long long)t);
        rc = run(main_root, mkpath(name), t, 0, 0, &zJson, &zErr);
        ok(rc == SQLITE_OK && file_equals(mkpath(name), (int)t),
           "restore at TXID %llu is byte-exact %s", (unsigned long long)t,
           zErr ? zErr : "");
        sqlite3_free(zJson);
        sqlite3_free(zErr);
    }

    rc = run(main_root, mkpath("time.db"), 0, T0 + 8999, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("time.db"), 8),
       "restore at a time gives TXID 8 %s", zErr ? zErr : "");
    sqlite3_free(zJson);
    sqlite3_free(zErr);

    /* The restored database works. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int count = -1;
    sqlite3_open(mkpath("latest.db"), &db);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        count = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    ok(count > 0, "restored database answers queries (%d rows)", count);
}

static void
test_not_restorable(void)
{
    const char *root = strdup(mkpath("coarse"));
    char *zJson, *zErr;
    int rc = SQLITE_OK;

    rc |= put_ltx(root, 9, 1, 4, 1);
    rc |= put_ltx(root, 1, 5, 8, 1);
    rc |= put_ltx(root, 0, 9, 9, 1);
    rc |= put_ltx(root, 0, 10, 10, 1);
    ok(rc == SQLITE_OK, "coarse replica written");
    rc = run(root, mkpath("c6.db"), 6, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr &&
           !strcmp(zErr, "litestream: TXID 0000000000000006 is not a "
                         "restorable point; nearest available: "
                         "0000000000000004 and 0000000000000008"),
       "TXID 6 refused: %s", zErr);
    ok(!exists(mkpath("c6.db")) && !exists(mkpath("c6.db.tmp")),
       "nothing written");
    sqlite3_free(zErr);
    rc = run(root, mkpath("c8.db"), 8, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("c8.db"), 8),
       "TXID 8 restores from L9 + L1");
    sqlite3_free(zJson);
    sqlite3_free(zErr);
    free((void *)root);
}

static void
test_gap_and_no_snapshot(void)
{
    const char *root = strdup(mkpath("gap"));
    const char *root2 = strdup(mkpath("nosnap"));
    char *zJson, *zErr;
    int rc = SQLITE_OK;

    rc |= put_ltx(root, 0, 1, 1, 1);
    rc |= put_ltx(root, 0, 2, 2, 1);
    rc |= put_ltx(root, 0, 4, 4, 1);
    rc = run(root, mkpath("g.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_CORRUPT && zErr &&
           !strcmp(zErr, "litestream: replica has a gap after TXID "
                         "0000000000000002: next file starts at "
                         "0000000000000004"),
       "gap refused: %s", zErr);
    ok(!exists(mkpath("g.db")), "nothing written");
    sqlite3_free(zErr);
    rc = run(root, mkpath("g2.db"), 2, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("g2.db"), 2),
       "TXID before the gap still restores");
    sqlite3_free(zJson);
    sqlite3_free(zErr);

    rc = put_ltx(root2, 0, 3, 3, 1);
    rc = run(root2, mkpath("n.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_CORRUPT && zErr &&
           strstr(zErr, "replica has no snapshot: no LTX file starts at TXID "
                        "0000000000000001 (the earliest starts at "
                        "0000000000000003)"),
       "no snapshot refused: %s", zErr);
    sqlite3_free(zErr);
    free((void *)root);
    free((void *)root2);
}

/* Copies the main replica's objects into a new root (via the backend). */
static const char *
copy_replica(const char *name)
{
    const char *root = strdup(mkpath(name));
    backend *src = NULL, *dst = NULL;
    ltx_info *a = NULL;
    int n = 0, i;

    backend_open(main_root, &src, NULL);
    backend_open(root, &dst, NULL);
    layout_list_all(src, &a, &n);
    for (i = 0; i < n; i++) {
        char key[LAYOUT_KEY_SIZE];
        uint8_t *p = NULL;
        size_t np = 0;
        layout_key(src, a[i].level, a[i].min_txid, a[i].max_txid, key,
                   sizeof(key));
        backend_get(src, key, 0, UINT64_MAX, &p, &np);
        backend_put(dst, key, p, np, a[i].created_ms);
        sqlite3_free(p);
    }
    sqlite3_free(a);
    backend_close(src);
    backend_close(dst);
    return root;
}

static void
test_corrupt(void)
{
    const char *root = copy_replica("corrupt");
    char path[512], *zJson, *zErr;
    int rc, fd;
    uint8_t byte;

    /* Flip a byte inside the first page frame of L0 TXID 10. */
    snprintf(path, sizeof(path),
             "%s/ltx/0/000000000000000a-000000000000000a.ltx", root);
    fd = open(path, O_RDWR);
    if (fd < 0 || pread(fd, &byte, 1, 120) != 1 ||
        (byte ^= 0x55, pwrite(fd, &byte, 1, 120)) != 1)
        diag("cannot corrupt %s", path);
    if (fd >= 0)
        close(fd);

    rc = run(root, mkpath("bad.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc != SQLITE_OK && zErr &&
           strstr(zErr, "litestream: corrupt object "
                        "'ltx/0/000000000000000a-000000000000000a.ltx': ltx:"),
       "corrupt object named: %s", zErr);
    ok(!exists(mkpath("bad.db")) && !exists(mkpath("bad.db.tmp")),
       "no output and no temporary file");
    sqlite3_free(zErr);

    /* An existing destination survives a failed overwrite. */
    FILE *f = fopen(mkpath("keep.db"), "w");
    fputs("precious", f);
    fclose(f);
    rc = run(root, mkpath("keep.db"), 0, 0, 1, &zJson, &zErr);
    size_t n = 0;
    uint8_t *p = read_file(mkpath("keep.db"), &n);
    ok(rc != SQLITE_OK && p && n == 8 && !memcmp(p, "precious", 8) &&
           !exists(mkpath("keep.db.tmp")),
       "failed overwrite leaves the destination untouched");
    free(p);
    sqlite3_free(zErr);

    /* Still restorable before the corrupt object. */
    rc = run(root, mkpath("bad9.db"), 9, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("bad9.db"), 9),
       "TXID 9 avoids the corrupt object");
    sqlite3_free(zJson);
    sqlite3_free(zErr);

    /* A truncated object. */
    if (truncate(path, 60) != 0)
        diag("cannot truncate %s", path);
    rc = run(root, mkpath("trunc.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc != SQLITE_OK && zErr && strstr(zErr, "000000000000000a.ltx"),
       "truncated object named: %s", zErr);
    sqlite3_free(zErr);
    free((void *)root);
}

static void
test_destination(void)
{
    char *zJson, *zErr, buf[600];
    int rc;
    FILE *f = fopen(mkpath("exists.db"), "w");

    fputs("old", f);
    fclose(f);
    rc = run(main_root, mkpath("exists.db"), 0, 0, 0, &zJson, &zErr);
    snprintf(buf, sizeof(buf),
             "litestream: restore target '%s' exists; "
             "remove it first, or pass 1 as litestream_restore's 4th "
             "argument (overwrite)",
             mkpath("exists.db"));
    ok(rc != SQLITE_OK && zErr && !strcmp(zErr, buf), "existing refused: %s",
       zErr);
    sqlite3_free(zErr);

    /* Overwrite replaces it, and a stale -wal is removed. */
    f = fopen(mkpath("exists.db-wal"), "w");
    fputs("stale wal", f);
    fclose(f);
    rc = run(main_root, mkpath("exists.db"), 0, 0, 1, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("exists.db"), NTX) &&
           !exists(mkpath("exists.db-wal")),
       "overwrite replaces the database and drops its stale -wal");
    sqlite3_free(zJson);
    sqlite3_free(zErr);

    rc = run(main_root, dir, 0, 0, 1, &zJson, &zErr);
    ok(rc != SQLITE_OK && zErr && strstr(zErr, "is a directory"),
       "a directory is never a target: %s", zErr);
    sqlite3_free(zErr);

    rc = run(main_root, mkpath("no/such/dir/x.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc != SQLITE_OK && zErr && strstr(zErr, "cannot create"),
       "missing destination directory: %s", zErr);
    sqlite3_free(zErr);
}

static void
test_empty_and_bad_urls(void)
{
    char *zJson, *zErr, buf[600];
    int rc;

    mkdir(mkpath("empty"), 0755);
    rc = run(mkpath("empty"), mkpath("e.db"), 0, 0, 0, &zJson, &zErr);
    snprintf(buf, sizeof(buf),
             "litestream: replica is empty or does not "
             "exist (no LTX files under '%s'): check the URL",
             mkpath("empty"));
    ok(rc == SQLITE_NOTFOUND && zErr && !strcmp(zErr, buf), "empty: %s", zErr);
    sqlite3_free(zErr);

    snprintf(buf, sizeof(buf), "file://%s", mkpath("missing"));
    rc = run(buf, mkpath("e.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr && strstr(zErr, "replica is empty") &&
           strstr(zErr, buf),
       "missing: %s", zErr);
    sqlite3_free(zErr);

    rc = run("abs://container/db", mkpath("e.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc != SQLITE_OK && zErr && strstr(zErr, "no storage account"),
       "abs without an account: %s", zErr);
    sqlite3_free(zErr);

    rc = run("ftp://x/y", mkpath("e.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_ERROR && zErr && strstr(zErr, "unknown URL scheme"),
       "bad URL: %s", zErr);
    sqlite3_free(zErr);
    ok(!exists(mkpath("e.db")) && !exists(mkpath("e.db.tmp")),
       "nothing written");
}

static void
test_nochecksum_and_big(void)
{
    const char *root = strdup(mkpath("nock"));
    char *zJson, *zErr;
    int rc = SQLITE_OK;
    uint64_t t;

    for (t = 1; t <= NTX; t++)
        rc |= put_ltx(root, 0, t, t, 0);
    rc |= run(root, mkpath("nock.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("nock.db"), NTX),
       "NoChecksum replica (as Litestream writes) restores %s",
       zErr ? zErr : "");
    ok(zJson && strstr(zJson, "\"files\":10"), "ten L0 files merged");
    sqlite3_free(zJson);
    sqlite3_free(zErr);
    free((void *)root);

    /* A database larger than several fetch chunks (incompressible). */
    char path[512];
    sqlite3 *db;
    size_t n = 0;
    snprintf(path, sizeof(path), "%s/big-source.db", dir);
    sqlite3_open(path, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=4096; PRAGMA journal_mode=DELETE;"
                 "CREATE TABLE b(v);"
                 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM "
                 "c WHERE i < 2500) INSERT INTO b SELECT randomblob(3500) "
                 "FROM c",
                 NULL, NULL, NULL);
    sqlite3_close(db);
    free(img[1].p);
    img[1].p = read_file(path, &n);
    img[1].npages = (uint32_t)(n / PS);
    root = strdup(mkpath("big"));
    rc = put_ltx(root, 9, 1, 1, 1);
    restore_opts o = {0, 0, 0, 1};
    rc |= restore_run(root, mkpath("big.db"), &o, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("big.db"), 1),
       "%u-page incompressible database restores with one thread %s",
       img[1].npages, zErr ? zErr : "");
    sqlite3_free(zJson);
    sqlite3_free(zErr);
    o.parallel = 0; /* default */
    o.overwrite = 1;
    rc = restore_run(root, mkpath("big.db"), &o, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("big.db"), 1),
       "and with the default thread count %s", zErr ? zErr : "");
    sqlite3_free(zJson);
    sqlite3_free(zErr);
    free((void *)root);
}

/* A WAL-mode image (what the replicator ships) passes quick_check too. */
static void
test_wal_mode(void)
{
    const char *root = strdup(mkpath("walmode"));
    char path[512], *zJson = NULL, *zErr = NULL;
    sqlite3 *db;
    size_t n = 0;
    int rc;

    snprintf(path, sizeof(path), "%s/wal-source.db", dir);
    sqlite3_open(path, &db);
    sqlite3_exec(db,
                 "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;"
                 "CREATE TABLE w(v); INSERT INTO w VALUES (randomblob(9000));"
                 "PRAGMA wal_checkpoint(TRUNCATE)",
                 NULL, NULL, NULL);
    free(img[1].p);
    img[1].p = read_file(path, &n);
    img[1].npages = (uint32_t)(n / PS);
    sqlite3_close(db);
    ok(img[1].p && n > 20 && img[1].p[18] == 2 && img[1].p[19] == 2,
       "source is a WAL-mode database");
    rc = put_ltx(root, 9, 1, 1, 1);
    if (rc == SQLITE_OK)
        rc = run(root, mkpath("wal.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc == SQLITE_OK && file_equals(mkpath("wal.db"), 1),
       "WAL-mode database restores byte-exact %s", zErr ? zErr : "");
    ok(!exists(mkpath("wal.db.tmp-wal")) && !exists(mkpath("wal.db.tmp-shm")) &&
           !exists(mkpath("wal.db-wal")) && !exists(mkpath("wal.db-shm")),
       "the check leaves no -wal or -shm behind");
    sqlite3_free(zJson);
    sqlite3_free(zErr);
    free((void *)root);
}

/* Pages that are valid LTX but not a database: quick_check refuses them. */
static void
test_not_a_database(void)
{
    const char *root = strdup(mkpath("garbage"));
    char *zJson = NULL, *zErr = NULL;
    uint32_t i;
    int rc;

    free(img[1].p);
    img[1].npages = 3;
    img[1].p = malloc(3 * PS);
    for (i = 0; i < 3 * PS; i++)
        img[1].p[i] = (uint8_t)(i * 7 + 3);
    rc = put_ltx(root, 9, 1, 1, 1);
    if (rc == SQLITE_OK)
        rc = run(root, mkpath("garbage.db"), 0, 0, 0, &zJson, &zErr);
    ok(rc != SQLITE_OK && zErr &&
           strstr(zErr, "cannot check the restored database") &&
           strstr(zErr, "not a database"),
       "a non-database image is refused: %s", zErr);
    ok(!exists(mkpath("garbage.db")) && !exists(mkpath("garbage.db.tmp")),
       "and nothing is left behind");
    sqlite3_free(zJson);
    sqlite3_free(zErr);
    free((void *)root);
}

int
main(void)
{
    const char *tmp = getenv("TMPDIR");
    int t;

    api_init();
    snprintf(dir, sizeof(dir), "%s/test_restore.XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    make_states();
    ok(img[NTX].p && img[NTX].npages > 0 &&
           img[NTX].npages < img[NTX - 1].npages,
       "source states built (%u pages at TXID 9, %u after VACUUM)",
       img[NTX - 1].npages, img[NTX].npages);
    build_main_replica();
    test_plans();
    test_restore_latest_and_points();
    test_not_restorable();
    test_gap_and_no_snapshot();
    test_corrupt();
    test_destination();
    test_empty_and_bad_urls();
    test_nochecksum_and_big();
    test_wal_mode();
    test_not_a_database();
    for (t = 0; t <= NTX; t++)
        free(img[t].p);
    free((void *)main_root);
    if (tap_failed == 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            diag("could not remove %s", dir);
    } else {
        diag("files kept in %s", dir);
    }
    return tap_done();
}
