/*
 * storage/base/sqlite_api.c: the one definition of the SQLite API table
 * pointer.
 *
 * Set by sqlite3_litestream_init() (ext/litestream.c) before anything else
 * runs; test hosts that link the core library directly set it through
 * litestream_api_set().  Read-only afterwards, so any thread may use it.
 */
#include "storage/base/sqlite.h"

SQLITE_EXTENSION_INIT1

/* Installs the API table; called once, first thing, by the entry point. */
void
litestream_api_set(const sqlite3_api_routines *pApi)
{
    SQLITE_EXTENSION_INIT2(pApi);
}
