/*
 * sql/sql.h: the SQL functions of the extension.
 */
#ifndef LITESTREAM_SQL_H
#define LITESTREAM_SQL_H

#include "storage/sqlite.h"

/*
 * Registers every litestream_* SQL function on db.  Returns SQLITE_OK or the
 * error of the first registration that failed.  Called for the connection
 * that loads the extension and, through sqlite3_auto_extension, for every
 * connection opened afterwards.
 */
int sql_register(sqlite3 *db);

#endif
