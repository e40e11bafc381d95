/*
 * storage/replicate/lease_doc.h: the writer lease document, "lock.json" at
 * the root of a replica (docs/architecture.md 5.1).
 *
 * The JSON object Litestream v0.5's leaser writes and reads (generation,
 * expires_at, owner "host:pid"), plus what names the holder to a refused
 * writer: host, pid, instance (a random id per lease holder), database (its
 * path), since (when this holder first took the lease), released (set on
 * close), db_id (the database file's identity on its machine).
 * Litestream ignores the extra members; a document written by
 * Litestream parses here with only its three.
 *
 *   {"generation":3,"expires_at":"2026-11-22T14:01:30.123Z",
 *    "owner":"web1:4242","host":"web1","pid":4242,
 *    "instance":"8c1f0e2a9b3d4c5e","database":"/srv/app.db",
 *    "since":"2026-11-22T14:00:00.5Z","released":false,
 *    "db_id":"0c6d...:2049:1835012"}
 *
 * Pure functions, any thread.
 */
#ifndef LITESTREAM_LEASE_DOC_H
#define LITESTREAM_LEASE_DOC_H

#include <stddef.h>
#include <stdint.h>

/* The name of the lease object under the replica root (Litestream's). */
#define LEASE_KEY "lock.json"

typedef struct lease_doc {
    int64_t generation; /* raised by each new holder */
    int64_t expires_ms; /* Unix ms */
    int64_t since_ms;   /* Unix ms, 0 if unknown */
    int64_t pid;        /* 0 if unknown */
    int released;       /* its holder closed: free to take */
    /* sqlite3_malloc'd, NULL if absent. */
    char *zOwner;
    char *zHost;
    char *zInstance;
    char *zDatabase;
    /* The database file's identity, "<boot id>:<dev>:<ino>": a lease with
     * ours is this very file's (its ship lock fences this machine). */
    char *zDbId;
} lease_doc;

/*
 * Parses a lease document (n bytes at z, not NUL-terminated).  SQLITE_OK;
 * SQLITE_CORRUPT with *pzErr (sqlite3_mprintf'd; pzErr may be NULL) when it
 * is not JSON, not an object, or lacks a valid expires_at; SQLITE_NOMEM.
 * On failure d is zeroed.  Free with lease_doc_clear().
 */
int lease_doc_parse(const uint8_t *z, size_t n, lease_doc *d, char **pzErr);

/* The document as compact JSON (sqlite3_free it), or NULL (no memory). */
char *lease_doc_text(const lease_doc *d);

/* Frees the strings of d and zeroes it; NULL-safe. */
void lease_doc_clear(lease_doc *d);

#endif
