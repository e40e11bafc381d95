/*
 * storage/replicate/heartbeat.h: the process's heartbeat, a GET of a URL
 * (a dead-man's switch: healthchecks.io, Cronitor, Uptime Kuma push
 * monitors) once per interval while every database this process replicates
 * is in its replica: nothing pending, or the replica advanced within the
 * interval.  Set by PRAGMA litestream_heartbeat_url and
 * litestream_heartbeat_interval (vfs/pragma.c, docs/sql.md).
 *
 * Threads: any; one process-wide state behind a mutex.
 */
#ifndef LITESTREAM_HEARTBEAT_H
#define LITESTREAM_HEARTBEAT_H

#include <stdint.h>

#include "storage/replicate/replicator_int.h"

/* Watches r (replicator_open) / stops watching it (replicator_close).
 * The first heartbeat_add() of the process adds the heartbeat's pool task,
 * due once per interval only while there is a URL and a database. */
void heartbeat_add(replicator *r);
void heartbeat_remove(replicator *r);

/*
 * Sets the URL (NULL: unchanged; "": no heartbeat) and the interval in ms
 * (<= 0: unchanged; default 5 minutes).  SQLITE_OK or SQLITE_NOMEM.
 */
int heartbeat_set(const char *zUrl, int64_t interval_ms);

/* The URL (sqlite3_malloc'd, NULL when none), the interval and the
 * counts of successful and failed GETs. */
char *heartbeat_get(int64_t *interval_ms, uint64_t *n_ok, uint64_t *n_fail);

#endif
