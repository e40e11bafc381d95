/*
 * test/bench/cg_driver.c: the writer that test/bench/callgrind.sh runs under
 * valgrind --tool=callgrind --separate-threads=yes.
 *
 *   cg_driver -db PATH -n COMMITS [-ext PATH_WITHOUT_SO] [-interval MS]
 *             [-value BYTES]
 *
 * Opens PATH (WAL, synchronous=NORMAL), optionally loads the extension and
 * replicates to file://PATH-replica at the given sync interval, creates a
 * table and commits COMMITS one-row transactions (INSERT of a BYTES-byte
 * blob, default 100).  Callgrind's counters are zeroed just before the
 * first commit and dumped right after the last (part "commits": the writer
 * thread's cost per commit), then again after litestream_sync() has
 * uploaded everything (part "drain": what the replicator still had to do).
 * Without valgrind the client requests do nothing.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <valgrind/callgrind.h>

static void
die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "cg_driver: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void
exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "cg_driver: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

int
main(int argc, char **argv)
{
    const char *zDb = NULL, *zExt = NULL;
    long n = 20000, interval = 1000, value = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-db"))
            zDb = argv[i + 1];
        else if (!strcmp(argv[i], "-ext"))
            zExt = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-interval"))
            interval = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-value"))
            value = atol(argv[i + 1]);
    }
    if (!zDb || n < 0 || value <= 0 || value > 4096) {
        fprintf(stderr, "usage: cg_driver -db PATH -n N [-ext PATH] "
                        "[-interval MS] [-value BYTES]\n");
        return 2;
    }
    sqlite3 *db = NULL;
    if (zExt) {
        char *err = NULL;
        if (sqlite3_open(":memory:", &db) != SQLITE_OK)
            die(db, "open :memory:");
        sqlite3_enable_load_extension(db, 1);
        if (sqlite3_load_extension(db, zExt, NULL, &err) != SQLITE_OK) {
            fprintf(stderr, "cg_driver: load %s: %s\n", zExt, err);
            return 1;
        }
        sqlite3_close(db);
    }
    if (sqlite3_open(zDb, &db) != SQLITE_OK)
        die(db, zDb);
    exec_sql(db, "PRAGMA journal_mode=WAL");
    exec_sql(db, "PRAGMA synchronous=NORMAL");
    if (zExt) {
        char *s =
            sqlite3_mprintf("PRAGMA litestream_url='file://%q-replica'", zDb);
        exec_sql(db, s);
        sqlite3_free(s);
        s = sqlite3_mprintf("PRAGMA litestream_sync_interval=%ld", interval);
        exec_sql(db, s);
        sqlite3_free(s);
    }
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    if (zExt)
        exec_sql(db, "SELECT litestream_sync(60000)");

    unsigned char val[8192];
    srand(1234);
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (unsigned char)rand();
    sqlite3_stmt *ins = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &ins, NULL) !=
        SQLITE_OK)
        die(db, "prepare");

    CALLGRIND_ZERO_STATS;
    for (long i = 0; i < n; i++) {
        sqlite3_bind_blob(ins, 1, val + (i * 37) % (sizeof val - value),
                          (int)value, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die(db, "insert");
        sqlite3_reset(ins);
    }
    CALLGRIND_DUMP_STATS_AT("commits");
    if (zExt)
        exec_sql(db, "SELECT litestream_sync(600000)");
    CALLGRIND_DUMP_STATS_AT("drain");
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return 0;
}
