/*
 * sql/sql.h: the SQL functions of the extension.
 */
#ifndef LITESTREAM_SQL_H
#define LITESTREAM_SQL_H

#include "storage/base/sqlite.h"

/*
 * Registers every litestream_* SQL function on db, once: a connection that
 * has them already (an earlier load, the auto-extension) keeps them and
 * SQLITE_OK is returned, so that loading again from inside a statement
 * (SELECT load_extension(...)) never meets SQLITE_BUSY.  Returns SQLITE_OK
 * or the error of the first registration that failed.  Called for the
 * connection that loads the extension and, through sqlite3_auto_extension,
 * for every connection opened afterwards; the caller holds db's mutex
 * (SQLite does, around both).
 */
int sql_register(sqlite3 *db);

/*
 * Registers the point-in-time recovery surface (sql/pitr.c): the
 * litestream_ltx table-valued function and litestream_snapshot().  Called
 * by sql_register().  SQLITE_OK or the first registration error.
 */
int sql_register_pitr(sqlite3 *db);

/* litestream_txid(), _time(), _lag(), _set_time(): Litestream's VFS's
 * functions, on a read replica (sql/replica.c). */
int sql_register_replica(sqlite3 *db);

/* litestream_metrics(): Prometheus text (sql/metrics.c). */
int sql_register_metrics(sqlite3 *db);

/* litestream_auto([dir[, url[, pattern]]]): the rules of vfs/auto.h
 * (sql/auto.c). */
int sql_register_auto(sqlite3 *db);

#endif
