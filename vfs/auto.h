/*
 * vfs/auto.h: replicating every database under a directory
 * (litestream_auto(dir, url[, pattern]), LITESTREAM_AUTO_DIR and
 * LITESTREAM_AUTO_URL; docs/sql.md, "litestream_auto").
 *
 * A rule names a directory (absolute, symlinks resolved when it is set),
 * a replica URL and an optional glob pattern.  A connection opened later
 * whose main database lies under the directory (its real path: symlinks
 * and '..' resolved, so nothing escapes) and has never been configured
 * (no URL, and no PRAGMA litestream_url = '' either) gets, on that
 * connection, PRAGMA main.litestream_url = '<url>/<path relative to
 * dir>'.  One rule per directory: setting a directory again replaces its
 * rule; the most specific directory whose pattern matches wins.
 *
 * Threads: any application thread; the rules are guarded by a mutex of
 * this file (never held while SQL runs).
 */
#ifndef LITESTREAM_VFS_AUTO_H
#define LITESTREAM_VFS_AUTO_H

#include "storage/base/sqlite.h"

/*
 * Sets the rule of directory zDir: replica zUrl, optional glob zPattern
 * (NULL: every database).  zUrl NULL removes zDir's rule; zDir NULL
 * removes every rule.  Checks everything first (an absolute, existing
 * directory; a URL the parser accepts; a relative pattern) and changes
 * nothing on an error.  SQLITE_OK, or an error with *pzErr
 * (sqlite3_malloc'd, starting "litestream_auto: ").
 */
int vfs_auto_set(const char *zDir, const char *zUrl, const char *zPattern,
                 char **pzErr);

/*
 * The rules in effect as a JSON array of {"dir", "url" (redacted),
 * "pattern"} (sqlite3_malloc'd), or NULL when out of memory.
 */
char *vfs_auto_rules_json(void);

/*
 * Reads LITESTREAM_AUTO_DIR, LITESTREAM_AUTO_URL and the optional
 * LITESTREAM_AUTO_PATTERN (at the extension's first load) and sets that
 * rule.  Neither set: SQLITE_OK, nothing done.  Only one of the two, or a
 * bad value: an error with *pzErr naming the variable.
 */
int vfs_auto_env(char **pzErr);

/*
 * Applies the rules to db, a connection just opened whose main database
 * is f (a litestream file): runs PRAGMA main.litestream_url on it when a
 * rule matches and the database was never configured.  Never fails the
 * open: a database that cannot be configured (a read-only connection, no
 * WAL mode to be had) keeps why in litestream_status() (last_error) and
 * the SQLite log, and the next connection that opens it tries again.
 */
void vfs_auto_attach(sqlite3 *db, sqlite3_file *f);

#endif
