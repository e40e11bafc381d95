/*
 * test/dist/embed.c: the embedding example, an application that links SQLite
 * statically (Debian's libsqlite3.a) and liblitestream.a, registers the
 * extension with sqlite3_auto_extension(), replicates a database to a
 * directory and restores it (TAP).  Built by test/dist/embed.sh from an
 * installed tree, with pkg-config, the way an application would build; and
 * again with a bundled SQLite amalgamation instead of libsqlite3.a.
 *
 * Usage: embed DIR VERSION   (DIR: an empty scratch directory)
 */
#include <litestream.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n, failed;

static void
check(int ok, const char *what, const char *detail)
{
    n++;
    if (!ok)
        failed++;
    printf("%s %d - embed: %s%s%s\n", ok ? "ok" : "not ok", n, what,
           detail ? ": " : "", detail ? detail : "");
}

/* The first column of the first row of zSql, copied into out; 0 or an rc. */
static int
one(sqlite3 *db, const char *zSql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, zSql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *z = sqlite3_column_text(st, 0);
        snprintf(out, cap, "%s", z ? (const char *)z : "NULL");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        snprintf(out, cap, "(no row)");
        rc = SQLITE_OK;
    } else {
        snprintf(out, cap, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* How many rows of kv a and b both have, equal; -1 if they differ. */
static int
same_rows(sqlite3 *a, sqlite3 *b)
{
    const char *q = "SELECT k, v FROM kv ORDER BY k";
    sqlite3_stmt *sa = NULL, *sb = NULL;
    int rows = 0;

    sqlite3_prepare_v2(a, q, -1, &sa, NULL);
    sqlite3_prepare_v2(b, q, -1, &sb, NULL);
    for (;;) {
        int ra = sqlite3_step(sa), rb = sqlite3_step(sb);
        if (ra != rb || (ra != SQLITE_ROW && ra != SQLITE_DONE)) {
            rows = -1;
            break;
        }
        if (ra == SQLITE_DONE)
            break;
        int len = sqlite3_column_bytes(sa, 1);
        if (sqlite3_column_int64(sa, 0) != sqlite3_column_int64(sb, 0) ||
            len != sqlite3_column_bytes(sb, 1) ||
            memcmp(sqlite3_column_blob(sa, 1), sqlite3_column_blob(sb, 1),
                   len) != 0) {
            rows = -1;
            break;
        }
        rows++;
    }
    sqlite3_finalize(sa);
    sqlite3_finalize(sb);
    return rows;
}

int
main(int argc, char **argv)
{
    char sql[1024], got[1024], path[512], url[600];
    sqlite3 *boot = NULL, *db = NULL, *copy = NULL;
    char *err = NULL;

    if (argc != 3) {
        fprintf(stderr, "usage: embed DIR VERSION\n");
        return 2;
    }
    int rc = sqlite3_auto_extension((void (*)(void))sqlite3_litestream_init);
    check(rc == SQLITE_OK, "sqlite3_auto_extension(sqlite3_litestream_init)",
          NULL);

    /* The first connection installs the VFS; it was opened before, so it
     * cannot itself be replicated: the PRAGMA is denied (the reason goes
     * to sqlite3_log). */
    snprintf(path, sizeof path, "%s/boot.db", argv[1]);
    rc = sqlite3_open(path, &boot);
    check(rc == SQLITE_OK, "the first open runs the automatic extension",
          sqlite3_errmsg(boot));
    one(boot, "SELECT litestream_version()", got, sizeof got);
    check(strcmp(got, argv[2]) == 0, "litestream_version()", got);
    snprintf(sql, sizeof sql, "PRAGMA litestream_url = 'file://%s/x'", argv[1]);
    rc = one(boot, sql, got, sizeof got);
    check(rc != SQLITE_OK && strstr(got, "not authorized"),
          "PRAGMA litestream_url on that first connection is refused", got);
    sqlite3_close(boot);

    snprintf(path, sizeof path, "%s/app.db", argv[1]);
    snprintf(url, sizeof url, "file://%s/replica", argv[1]);
    rc = sqlite3_open(path, &db);
    snprintf(sql, sizeof sql, "PRAGMA litestream_url = '%s'", url);
    if (rc == SQLITE_OK)
        rc = one(db, sql, got, sizeof got);
    check(rc == SQLITE_OK && strcmp(got, url) == 0,
          "a later connection replicates", got);
    rc = sqlite3_exec(db,
                      "CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB);"
                      "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL "
                      "SELECT i + 1 FROM s WHERE i < 500) "
                      "INSERT INTO kv SELECT i, randomblob(100) FROM s;"
                      "UPDATE kv SET v = zeroblob(10) WHERE k % 7 = 0;",
                      NULL, NULL, &err);
    check(rc == SQLITE_OK, "writes", err);
    sqlite3_free(err);
    rc = one(db, "SELECT litestream_sync()", got, sizeof got);
    check(rc == SQLITE_OK && atoi(got) > 0, "litestream_sync()", got);

    snprintf(sql, sizeof sql,
             "SELECT json_extract(litestream_restore('%s', '%s/copy.db'),"
             " '$.pages') > 0",
             url, argv[1]);
    rc = one(db, sql, got, sizeof got);
    check(rc == SQLITE_OK && strcmp(got, "1") == 0, "litestream_restore()",
          got);

    snprintf(path, sizeof path, "%s/copy.db", argv[1]);
    sqlite3_open_v2(path, &copy, SQLITE_OPEN_READONLY, NULL);
    int rows = same_rows(db, copy);
    snprintf(got, sizeof got, "%d rows", rows);
    check(rows == 500, "the restored copy is identical", got);
    one(copy, "PRAGMA integrity_check", got, sizeof got);
    check(strcmp(got, "ok") == 0, "the restored copy passes integrity_check",
          got);
    sqlite3_close(copy);
    sqlite3_close(db);
    printf("# SQLite %s, linked in%s\n", sqlite3_libversion(),
           sqlite3_compileoption_used("OMIT_LOAD_EXTENSION")
               ? ", with SQLITE_OMIT_LOAD_EXTENSION"
               : "");
    printf("1..%d\n", n);
    return failed ? 1 : 0;
}
