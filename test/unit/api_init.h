/*
 * test/unit/api_init.h: gives a test host the SQLite API table.
 *
 * The core library calls SQLite only through the extension API table
 * (storage/base/sqlite.h).  A test executable links the real libsqlite3 and the
 * core library; api_init() registers an auto-extension that hands the
 * table of the real SQLite to litestream_api_set(), and opens (and closes)
 * one :memory: connection so that it runs.  Call it once, first thing; it
 * is idempotent.  Header only.
 *
 * Include it from test .c files that include <sqlite3.h>, not
 * storage/base/sqlite.h (whose macros would route these very calls through the
 * table that is not set yet).
 */
#ifndef LITESTREAM_TEST_API_INIT_H
#define LITESTREAM_TEST_API_INIT_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

struct sqlite3_api_routines;
void litestream_api_set(const struct sqlite3_api_routines *pApi);

static inline int
api_init_hook(sqlite3 *db, char **pzErrMsg,
              const struct sqlite3_api_routines *pApi)
{
    (void)db;
    (void)pzErrMsg;
    litestream_api_set(pApi);
    return SQLITE_OK;
}

/* Installs the API table; exits the test on failure. */
static inline void
api_init(void)
{
    static int done;
    sqlite3 *db = NULL;

    if (done)
        return;
    if (sqlite3_auto_extension((void (*)(void))api_init_hook) != SQLITE_OK ||
        sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "api_init: cannot set up the SQLite API table\n");
        exit(2);
    }
    sqlite3_close(db);
    sqlite3_cancel_auto_extension((void (*)(void))api_init_hook);
    done = 1;
}

#endif
