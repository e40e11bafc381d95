/*
 * test_backend.c: the file backend (storage/backend/file.c), the backend
 * registry (backend.c) and the object layout (layout.c).
 *
 * What a user relies on: objects written are read back exactly, in ranges
 * too; listings show only finished objects (no .tmp, no dotfiles), sorted,
 * with the creation time given at put; deletes are idempotent; keys cannot
 * escape the root; LTX names and levels follow docs/ltx-format.md 2.1; schemes
 * without a backend say so.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/backend.h"
#include "storage/restore/fetch.h"
#include "storage/backend/layout.h"
#include "storage/backend/url.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

static char dir[256];

static void
test_put_get_list_del(void)
{
    char root[300], path[400];
    backend *b = NULL;
    backend_obj *objs = NULL;
    uint8_t *p = NULL;
    size_t n = 0;
    int nobj = 0, rc;
    struct stat st;
    char *zErr = NULL;

    snprintf(root, sizeof(root), "file://%s/r%%20oot", dir);
    rc = backend_open(root, &b, &zErr);
    if (!ok(rc == SQLITE_OK && b, "open %s", root)) {
        diag("%s", zErr);
        return;
    }
    ok(!strcmp(backend_url(b), root), "handle keeps the redacted URL");
    rc = backend_put(b, "ltx/0/a", "hello world", 11, 1600000000123LL);
    ok(rc == SQLITE_OK, "put creates directories: %s", backend_errmsg(b));
    snprintf(path, sizeof(path), "%s/r oot/ltx/0/a", dir);
    ok(stat(path, &st) == 0 && st.st_size == 11 &&
           st.st_mtim.tv_sec == 1600000000 &&
           st.st_mtim.tv_nsec / 1000000 == 123,
       "object file exists with mtime = created_ms (percent-decoded root)");

    rc = backend_get(b, "ltx/0/a", 0, UINT64_MAX, &p, &n);
    ok(rc == SQLITE_OK && n == 11 && !memcmp(p, "hello world", 11),
       "get whole object");
    sqlite3_free(p);
    rc = backend_get(b, "ltx/0/a", 6, 3, &p, &n);
    ok(rc == SQLITE_OK && n == 3 && !memcmp(p, "wor", 3), "get a range");
    sqlite3_free(p);
    rc = backend_get(b, "ltx/0/a", 9, 100, &p, &n);
    ok(rc == SQLITE_OK && n == 2 && !memcmp(p, "ld", 2),
       "range past the end is truncated");
    sqlite3_free(p);
    rc = backend_get(b, "ltx/0/a", 50, 10, &p, &n);
    ok(rc == SQLITE_OK && n == 0 && p != NULL, "range after the end: empty");
    sqlite3_free(p);
    rc = backend_get(b, "ltx/0/missing", 0, UINT64_MAX, &p, &n);
    ok(rc == SQLITE_NOTFOUND && p == NULL &&
           strstr(backend_errmsg(b), "'ltx/0/missing' not found"),
       "missing object: %s", backend_errmsg(b));

    /* Overwrite is atomic replacement. */
    ok(backend_put(b, "ltx/0/a", "bye", 3, 0) == SQLITE_OK &&
           backend_get(b, "ltx/0/a", 0, UINT64_MAX, &p, &n) == SQLITE_OK &&
           n == 3 && !memcmp(p, "bye", 3),
       "put replaces an object");
    sqlite3_free(p);

    /* Listing skips temporaries, dotfiles and directories; sorted. */
    backend_put(b, "ltx/0/c", "3", 1, 0);
    backend_put(b, "ltx/0/b", "22", 2, 0);
    backend_put(b, "ltx/0/sub/x", "x", 1, 0);
    snprintf(path, sizeof(path), "%s/r oot/ltx/0/d.ltx.123-4.tmp", dir);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof(path), "%s/r oot/ltx/0/.hidden", dir);
    fclose(fopen(path, "w"));
    rc = backend_list(b, "ltx/0/", &objs, &nobj);
    ok(rc == SQLITE_OK && nobj == 3 && !strcmp(objs[0].key, "a") &&
           !strcmp(objs[1].key, "b") && !strcmp(objs[2].key, "c") &&
           objs[1].size == 2,
       "list: a b c only (%d entries)", nobj);
    backend_objs_free(objs, nobj);
    rc = backend_list(b, "ltx/7/", &objs, &nobj);
    ok(rc == SQLITE_OK && nobj == 0 && objs == NULL,
       "missing prefix lists empty");

    /* Delete: idempotent. */
    const char *keys[] = {"ltx/0/a", "ltx/0/nope", "ltx/0/b"};
    rc = backend_del(b, keys, 3);
    ok(rc == SQLITE_OK, "delete with a missing key succeeds");
    rc = backend_list(b, "ltx/0/", &objs, &nobj);
    ok(rc == SQLITE_OK && nobj == 1 && !strcmp(objs[0].key, "c"),
       "deleted objects are gone");
    backend_objs_free(objs, nobj);

    /* Keys cannot escape the root. */
    ok(backend_put(b, "../evil", "x", 1, 0) == SQLITE_MISUSE &&
           backend_put(b, "/abs", "x", 1, 0) == SQLITE_MISUSE &&
           backend_put(b, "a/../../x", "x", 1, 0) == SQLITE_MISUSE &&
           backend_get(b, "..", 0, 1, &p, &n) == SQLITE_MISUSE,
       "'..' and absolute keys refused");

    const backend_counters *c = backend_get_counters(b);
    ok(c->n_put >= 5 && c->n_get >= 5 && c->n_list >= 3 && c->n_delete == 2 &&
           c->bytes_up == 18,
       "counters: put %llu get %llu list %llu delete %llu",
       (unsigned long long)c->n_put, (unsigned long long)c->n_get,
       (unsigned long long)c->n_list, (unsigned long long)c->n_delete);

    /* A file where a directory should be. */
    snprintf(path, sizeof(path), "%s/blocker", dir);
    fclose(fopen(path, "w"));
    backend_close(b);
    b = NULL;
    backend_open(path, &b, NULL);
    rc = backend_put(b, "ltx/0/x", "x", 1, 0);
    ok(rc != SQLITE_OK && strstr(backend_errmsg(b), "blocker"),
       "unwritable root reported: %s", backend_errmsg(b));
    backend_close(b);
}

static void
test_registry(void)
{
    backend *b = NULL;
    char *zErr = NULL;

    /* Every scheme of the registry is built in now (no "not available in
     * this build" entry is left to test). */
    /* s3/gs open without touching the network; configuration errors name
     * the parameter. */
    ok(backend_open("s3://bucket/p?endpoint=http://127.0.0.1:1", &b, &zErr) ==
               SQLITE_OK &&
           b && strcmp(b->vt->level_fmt, "%04x/") == 0,
       "s3 backend opens offline, S3 layout");
    backend_close(b);
    ok(backend_open("gs://bucket/p", &b, &zErr) == SQLITE_OK && b &&
           strcmp(b->vt->level_fmt, "ltx/%d/") == 0,
       "gs backend opens offline, ltx/<level>/ layout");
    backend_close(b);
    b = NULL;
    ok(backend_open("s3://b/p", &b, &zErr) == SQLITE_ERROR && !b && zErr &&
           strstr(zErr, "bucket name"),
       "s3 bucket name checked: %s", zErr);
    sqlite3_free(zErr);
    ok(backend_open("s3://bucket/p?part_size=1KiB", &b, &zErr) ==
               SQLITE_ERROR &&
           zErr && strstr(zErr, "part_size"),
       "part_size below 5 MiB refused for AWS: %s", zErr);
    sqlite3_free(zErr);
    /* abs and oss: offline too, with their own layouts and name checks. */
    b = NULL;
    ok(backend_open("abs://acct1@my-container/p", &b, &zErr) == SQLITE_OK &&
           b && strcmp(b->vt->level_fmt, "ltx/%d/") == 0 &&
           (b->vt->caps & BACKEND_CAP_EXACT_TIME),
       "abs backend opens offline, ltx/<level>/ layout, exact times");
    backend_close(b);
    b = NULL;
    ok(backend_open("abs://my-container@acct1/p", &b, &zErr) == SQLITE_ERROR &&
           !b && zErr && strstr(zErr, "old order"),
       "abs in the old order refused: %s", zErr);
    sqlite3_free(zErr);
    ok(backend_open("oss://bkt.oss-cn-beijing.aliyuncs.com/p", &b, &zErr) ==
               SQLITE_OK &&
           b && strcmp(b->vt->level_fmt, "%04x/") == 0,
       "oss backend opens offline (host in OSS's form), %%04x layout");
    backend_close(b);
    b = NULL;
    /* sftp, webdav(s): offline too, ltx/<level>/; a user is required. */
    ok(backend_open("sftp://u@h/p", &b, &zErr) == SQLITE_OK && b &&
           strcmp(b->vt->level_fmt, "ltx/%d/") == 0,
       "sftp backend opens offline, ltx/<level>/ layout");
    backend_close(b);
    b = NULL;
    ok(backend_open("sftp://h/p", &b, &zErr) == SQLITE_ERROR && !b && zErr &&
           strstr(zErr, "no user"),
       "sftp without a user: %s", zErr);
    sqlite3_free(zErr);
    ok(backend_open("webdav://h/p", &b, &zErr) == SQLITE_OK && b &&
           strcmp(b->vt->level_fmt, "ltx/%d/") == 0,
       "webdav backend opens offline, ltx/<level>/ layout");
    backend_close(b);
    ok(backend_open("webdavs://u:p@h:8443/p", &b, &zErr) == SQLITE_OK && b,
       "webdavs backend opens offline");
    backend_close(b);
    ok(backend_open("ftp://x", &b, &zErr) == SQLITE_ERROR && zErr &&
           strstr(zErr, "unknown URL scheme"),
       "URL errors pass through");
    sqlite3_free(zErr);
    backend_close(NULL);
}

static void
test_layout(void)
{
    char root[300], key[LAYOUT_KEY_SIZE];
    backend *b = NULL;
    ltx_info *a = NULL;
    uint64_t mn = 0, mx = 0;
    int n = 0, rc;

    snprintf(root, sizeof(root), "%s/layout", dir);
    backend_open(root, &b, NULL);
    rc = layout_key(b, 0, 1, 5, key, sizeof(key));
    ok(rc == SQLITE_OK &&
           !strcmp(key, "ltx/0/0000000000000001-0000000000000005.ltx"),
       "L0 key: %s", key);
    rc = layout_key(b, 9, 1, 0xabcdef, key, sizeof(key));
    ok(rc == SQLITE_OK &&
           !strcmp(key, "ltx/9/0000000000000001-0000000000abcdef.ltx"),
       "L9 key: %s", key);
    ok(layout_key(b, 10, 1, 1, key, sizeof(key)) == SQLITE_MISUSE &&
           layout_key(b, 0, 5, 4, key, sizeof(key)) == SQLITE_MISUSE &&
           layout_key(b, 0, 0, 4, key, sizeof(key)) == SQLITE_MISUSE &&
           layout_key(b, 0, 1, 1, key, 10) == SQLITE_TOOBIG && key[0] == 0,
       "bad keys refused");

    ok(layout_parse_name("0000000000000001-00000000000000ff.ltx", &mn, &mx) &&
           mn == 1 && mx == 255,
       "name parsed");
    ok(!layout_parse_name("0000000000000001-00000000000000FF.ltx", &mn, &mx) &&
           !layout_parse_name("0000000000000001-0000000000000001.ltx.tmp", &mn,
                              &mx) &&
           !layout_parse_name("000000000000001-0000000000000001.ltx", &mn,
                              &mx) &&
           !layout_parse_name("0000000000000002-0000000000000001.ltx", &mn,
                              &mx) &&
           !layout_parse_name("0000000000000000-0000000000000001.ltx", &mn,
                              &mx) &&
           !layout_parse_name("0000000000000001_0000000000000001.ltx", &mn,
                              &mx) &&
           !layout_parse_name("", &mn, &mx),
       "non-LTX names rejected");

    /* Unsorted puts, foreign names: listing parses and sorts. */
    const uint64_t r[][2] = {{6, 9}, {1, 5}, {6, 6}, {10, 10}};
    size_t i;
    for (i = 0; i < 4; i++) {
        layout_key(b, 1, r[i][0], r[i][1], key, sizeof(key));
        backend_put(b, key, "x", 1, 1000 + (int64_t)i);
    }
    layout_key(b, 9, 1, 9, key, sizeof(key));
    backend_put(b, key, "snap", 4, 5000);
    backend_put(b, "ltx/1/README", "x", 1, 0);
    backend_put(b, "ltx/1/0000000000000001-0000000000000005.ltx.1-1.tmp", "x",
                1, 0);
    rc = layout_list_level(b, 1, &a, &n);
    ok(rc == SQLITE_OK && n == 4 && a[0].min_txid == 1 && a[1].min_txid == 6 &&
           a[1].max_txid == 6 && a[2].max_txid == 9 && a[3].min_txid == 10 &&
           a[0].level == 1 && a[0].size == 1 && a[0].created_ms == 1001,
       "level 1 listed sorted by (min, max), foreign names skipped");
    sqlite3_free(a);
    rc = layout_list_all(b, &a, &n);
    ok(rc == SQLITE_OK && n == 5 && a[4].level == 9 && a[4].size == 4 &&
           a[4].created_ms == 5000,
       "all levels listed");
    sqlite3_free(a);
    rc = layout_list_level(b, 3, &a, &n);
    ok(rc == SQLITE_OK && n == 0 && a == NULL, "empty level");
    ok(layout_list_level(b, -1, &a, &n) == SQLITE_MISUSE, "bad level");
    backend_close(b);
}

/* Reads every stream of a fetcher to the end in small, odd-sized reads,
 * round robin, as the k-way merge does. */
static int
drain(fetcher *f, int n, uint8_t **bufs, size_t *lens, size_t cap)
{
    int i, live = n, done[8] = {0};

    for (i = 0; i < n; i++)
        lens[i] = 0;
    while (live > 0) {
        for (i = 0; i < n; i++) {
            size_t got = 0;
            if (done[i])
                continue;
            if (fetch_read(fetch_stream_at(f, i), bufs[i] + lens[i],
                           lens[i] + 7777 <= cap ? 7777 : cap - lens[i],
                           &got) != 0)
                return i + 1;
            lens[i] += got;
            if (got < 7777 || lens[i] == cap) {
                done[i] = 1;
                live--;
            }
        }
    }
    return 0;
}

static void
test_fetch(void)
{
    char root[300];
    backend *b = NULL;
    ls_url *u = NULL;
    size_t big = (size_t)FETCH_CHUNK * FETCH_DEPTH * 2 + 12345, i;
    uint8_t *data = malloc(big), *bufs[4];
    size_t lens[4];
    const char *keys[4] = {"o/big", "o/small", "o/empty", "o/big"};
    uint64_t sizes[4] = {big, 5, 0, 1000};
    int nThread, rc;

    for (i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    snprintf(root, sizeof(root), "%s/fetch", dir);
    url_parse(root, &u, NULL);
    backend_open_url(u, &b, NULL);
    backend_put(b, "o/big", data, big, 0);
    backend_put(b, "o/small", "small", 5, 0);
    backend_put(b, "o/empty", "", 0, 0);
    for (i = 0; i < 4; i++)
        bufs[i] = malloc(big + 1);
    for (nThread = 0; nThread <= 3; nThread += 3) {
        fetcher *f = NULL;
        rc = fetch_open(u, b, keys, sizes, 4, nThread, &f, NULL);
        rc = rc == SQLITE_OK ? drain(f, 4, bufs, lens, big + 1) : -1;
        ok(rc == 0 && lens[0] == big && !memcmp(bufs[0], data, big) &&
               lens[1] == 5 && !memcmp(bufs[1], "small", 5) && lens[2] == 0 &&
               lens[3] == 1000 && !memcmp(bufs[3], data, 1000),
           "fetch with %d threads: every stream read exactly", nThread);
        fetch_close(f);

        /* An object listed larger than it is ends early; a missing one
         * fails with its key. */
        const char *k2[2] = {"o/small", "o/gone"};
        uint64_t s2[2] = {FETCH_CHUNK * 3ull, 10};
        f = NULL;
        rc = fetch_open(u, b, k2, s2, 2, nThread, &f, NULL);
        size_t got = 0;
        uint8_t tmp[64];
        int r0 = rc == SQLITE_OK
                     ? fetch_read(fetch_stream_at(f, 0), tmp, sizeof(tmp), &got)
                     : -1;
        ok(r0 == 0 && got == 5 && !memcmp(tmp, "small", 5),
           "short object ends at its real size (%zu)", got);
        int r1 = rc == SQLITE_OK
                     ? fetch_read(fetch_stream_at(f, 1), tmp, 4, &got)
                     : -1;
        const char *zErr =
            rc == SQLITE_OK ? fetch_stream_err(fetch_stream_at(f, 1)) : NULL;
        ok(r1 != 0 && zErr && strstr(zErr, "cannot fetch 'o/gone'") &&
               strstr(zErr, "not found"),
           "missing object: %s", zErr ? zErr : "(none)");
        fetch_close(f);
    }
    for (i = 0; i < 4; i++)
        free(bufs[i]);
    free(data);
    backend_close(b);
    url_free(u);
}

int
main(void)
{
    const char *tmp = getenv("TMPDIR");

    api_init();
    snprintf(dir, sizeof(dir), "%s/test_backend.XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_put_get_list_del();
    test_registry();
    test_layout();
    test_fetch();
    if (tap_failed == 0) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            diag("could not remove %s", dir);
    }
    return tap_done();
}
