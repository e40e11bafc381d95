/*
 * storage/replicate/lease_opts.h: what the writer lease (lease.h) takes
 * from outside: the URL's lease parameters and the database file's
 * identity on this machine (lease_doc.h, db_id).
 *
 * Any thread; lease_opts_db_id() reads the boot id and stats the file.
 */
#ifndef LITESTREAM_LEASE_OPTS_H
#define LITESTREAM_LEASE_OPTS_H

#include <stdint.h>

#include "storage/backend/url.h"

/*
 * The URL's lease parameters: lease=off|on (*off) and lease_ttl=DURATION
 * (*ttl, default 30 s, at least 1 s).  SQLITE_ERROR with *pzErr saying
 * what to write instead.
 */
int lease_opts_params(const ls_url *u, int *off, int64_t *ttl, char **pzErr);

/* "<boot id>:<dev>:<ino>" of the database file zDbPath (sqlite3_free it),
 * or NULL when unknown: the db_id member. */
char *lease_opts_db_id(const char *zDbPath);

#endif
