/*
 * storage/base/sqlite.h: how every translation unit of the extension reaches
 * SQLite.
 *
 * The extension is loaded into hosts that carry their own copy of SQLite
 * (better-sqlite3, many language bindings), so it must call SQLite only
 * through the API table handed to sqlite3_litestream_init() and never link
 * libsqlite3.  sqlite3ext.h turns every sqlite3_xxx() call into a call
 * through that table; the table pointer is defined once, in sqlite_api.c.
 * Include this header instead of <sqlite3.h> everywhere except the LTX codec
 * (which uses result-code constants only).
 */
#ifndef LITESTREAM_SQLITE_H
#define LITESTREAM_SQLITE_H

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3

/*
 * Installs the API table handed to the entry point (or, in a test host that
 * links the core library, the table obtained from an auto-extension).  Must
 * run before any other function of the extension.
 */
void litestream_api_set(const sqlite3_api_routines *pApi);

/* Symbols visible outside the .so (only the entry point). */
#define LITESTREAM_EXPORT __attribute__((visibility("default")))

#endif
