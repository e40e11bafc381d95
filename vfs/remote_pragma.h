/*
 * vfs/remote_pragma.h: the state of a database file opened through the
 * `litestream-remote` VFS, shared by vfs/remote.c (the VFS) and
 * vfs/remote_pragma.c (its PRAGMAs and URI options).  Internal to vfs/.
 */
#ifndef LITESTREAM_VFS_REMOTE_PRAGMA_H
#define LITESTREAM_VFS_REMOTE_PRAGMA_H

#include <stdint.h>

#include "storage/reader/reader.h"
#include "storage/base/sqlite.h"

#define REMOTE_VFS_NAME   "litestream-remote"
#define REMOTE_POLL_MS    1000  /* default poll_ms */
#define REMOTE_CACHE_MB   64    /* default cache_mb */
#define REMOTE_TIMEOUT_MS 30000 /* default timeout_ms (min_txid) */

/* What litestream_metrics() shows of a file (vfs/remote_list.c):
 * copied by the file's own thread, read by any under the list's lock. */
typedef struct remote_pub {
    uint64_t txid;
    int64_t newest_ms;
    reader_stats st;
} remote_pub;

/* A main database file of the remote VFS. */
typedef struct remote_file {
    sqlite3_file base;
    reader *r;      /* NULL if the open failed */
    int lock;       /* SQLITE_LOCK_* held by the connection */
    int rcOpen;     /* why the open failed (r is NULL), else SQLITE_OK */
    char *zOpenErr; /* ... and the message */
    /* The process's list of open replicas (remote_list.c, its lock): */
    struct remote_file *next, *prev;
    uint64_t conn; /* process-unique number, 0: not listed */
    remote_pub pub;
} remote_file;

/* remote_list.c: adds p (opened) to the process's list of read replicas,
 * removes it (before its reader is closed), and publishes its counters
 * (at the start and end of each read transaction). */
void remote_list_add(remote_file *p);
void remote_list_remove(remote_file *p);
void remote_list_publish(remote_file *p);

/* The URI options of one open (remote_options()). */
typedef struct remote_opts {
    const char *zUrl; /* points into the URI or the environment */
    reader_opts ro;
    uint64_t min_txid;
    int timeout_ms;
} remote_opts;

/*
 * Reads the options of main database file zName (URI parameters url,
 * poll_ms, cache_mb, txid, time, min_txid, timeout_ms; the URL falls back
 * to $LITESTREAM_REPLICA_URL).  SQLITE_OK, or SQLITE_CANTOPEN/SQLITE_MISUSE
 * with *pzErr saying which option is wrong and what it expects.
 */
int remote_options(const char *zName, remote_opts *o, char **pzErr);

/*
 * Parses a TXID: decimal, or 16 hex digits.  1 and *txid, or 0.
 */
int remote_parse_txid(const char *z, uint64_t *txid);

/*
 * Handles SQLITE_FCNTL_PRAGMA for a remote file (azArg as SQLite passes
 * it): litestream_txid, litestream_lag, litestream_time,
 * litestream_requests, litestream_url.  SQLITE_NOTFOUND for other pragmas.
 */
int remote_pragma(remote_file *p, char **azArg);

#endif
