/*
 * litestream.h: the public header, for applications that embed litestream
 * instead of loading litestream.so (installed by `meson install`).
 *
 * An application that links SQLite statically (a bundled SQLite in Rust or
 * Go, a mobile app) cannot load a shared extension.  It links
 * liblitestream.a instead and registers the entry point as an automatic
 * extension, before it opens the databases it replicates:
 *
 *     #include <sqlite3.h>
 *     #include <litestream.h>
 *
 *     sqlite3_auto_extension((void (*)(void))sqlite3_litestream_init);
 *     sqlite3_open(":memory:", &boot);  // installs the VFS (see below)
 *     sqlite3_close(boot);
 *     sqlite3_open("app.db", &db);      // replicated once it is told where:
 *     sqlite3_exec(db, "PRAGMA litestream_url = 's3://bucket/app'", ...);
 *
 * Build: cc app.c $(pkg-config --cflags --libs litestream) plus the
 * application's SQLite (docs/install.md, "Embedding").
 *
 * Invariants:
 *   1. liblitestream.a calls the application's own SQLite directly (it is
 *      compiled with SQLITE_CORE), so it works with any SQLite >= 3.37 the
 *      application links, including one built with SQLITE_OMIT_LOAD_EXTENSION,
 *      and defines no sqlite3_api symbol of its own.
 *   2. Its only global symbol is sqlite3_litestream_init: every internal
 *      symbol is local to the library, so it cannot collide with the
 *      application's or another embedded extension's.
 *   3. The first connection opened after the registration installs the VFS
 *      and the SQL functions process-wide; that connection itself was
 *      opened before the VFS existed, so it cannot be replicated (PRAGMA
 *      litestream_url on it fails with "not authorized", the reason in
 *      sqlite3_log()).  Every later connection can.
 *
 * This header includes nothing: it names SQLite's types by their struct
 * tags, so it can be included before or after <sqlite3.h>.
 */
#ifndef LITESTREAM_H
#define LITESTREAM_H

#ifdef __cplusplus
extern "C" {
#endif

struct sqlite3;
struct sqlite3_api_routines;

/*
 * The entry point, of SQLite's extension-entry type.  Loaded as
 * litestream.so it returns SQLITE_OK_LOAD_PERMANENTLY; linked from
 * liblitestream.a (as an automatic extension) it returns SQLITE_OK, which
 * sqlite3_auto_extension() requires.  On failure it returns an SQLite
 * error code and sets *pzErrMsg to a message allocated with sqlite3_malloc.
 * Any number of calls, from any thread, on any connection, are safe.
 */
int sqlite3_litestream_init(struct sqlite3 *db, char **pzErrMsg,
                            const struct sqlite3_api_routines *pApi);

/*
 * The result code of a COMMIT in PRAGMA litestream_durability = 'remote'
 * mode that the replica did not confirm within the timeout: the
 * transaction IS committed locally and will be replicated (docs/sql.md).
 * SQLITE_WARNING (28) with an extended code of its own.
 */
#define LITESTREAM_UNCONFIRMED (28 | (0x4c << 8))

#ifdef __cplusplus
}
#endif

#endif
