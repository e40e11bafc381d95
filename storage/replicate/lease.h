/*
 * storage/replicate/lease.h: the writer lease on a replica path
 * (docs/architecture.md 5.1): before its first upload a replicator claims
 * the path with the lease object "lock.json" (lease_doc.h), written with a
 * conditional create or replace (backend.h backend_put_if), renews it every
 * third of its time to live while it ships, and marks it released at close.
 * A second database (another host, or a copy) pointed at the same path is
 * refused, with the holder named, until the lease is released or expires.
 *
 * URL parameters (docs/urls.md, "Writer lease"): lease=off turns it off;
 * lease_ttl=DURATION (default 30s, at least 1s) is how long a lease lives
 * without renewal, so how long a crashed holder blocks the path.
 *
 * Threads: lease_ok() on its replica's upload pass (targets.c), whose
 * first call claims;
 * a pool task of its own renews (storage/base/pool.h: so a long upload does
 * not let the lease lapse); the status from any thread; lease_close()
 * after the replicator's task was removed.
 */
#ifndef LITESTREAM_LEASE_H
#define LITESTREAM_LEASE_H

#include "storage/backend/url.h"
#include "storage/base/json.h"

typedef struct lease lease;
struct rep_target;

/*
 * Prepares the lease of the replica at u for the database zDbPath (no I/O,
 * no thread yet).  *out is NULL when the URL says lease=off.  SQLITE_ERROR
 * with *pzErr naming a bad lease or lease_ttl parameter; SQLITE_NOMEM.
 */
int lease_open(const ls_url *u, const char *zDbPath, lease **out, char **pzErr);

/*
 * Whether the replicator may upload now.  busy: it has something to
 * upload; the lease must then be ours and renewed within two thirds of
 * its time to live (the first busy call claims, and a lease that lapsed
 * while idle is renewed here, one round of requests on the caller's
 * thread); renewals go on while busy calls keep coming and stop two TTLs
 * after the last one, so an idle database sends no requests.  Not busy: a
 * lease still counts as ours until a busy call finds it taken (lost).  0
 * with *pzWhy (sqlite3_mprintf'd, or NULL: nothing claimed yet) saying who
 * holds the path and what to do, or why the lease could not be checked.
 * A NULL lease (off) always allows.
 */
int lease_ok(lease *l, int busy, char **pzWhy);

/*
 * storage/replicate: lease_ok() for replica t of a replicator (its
 * t->lease), reporting a refusal in its last error (once per distinct
 * message).
 */
int rep_lease_check(struct rep_target *t, int busy);

/* Adds "lease" (state, holder, expiry) to the status object o. */
int lease_status(lease *l, json_t *o);

/* Stops the renewals, marks a held lease released; NULL-safe. */
void lease_close(lease *l);

#endif
