/*
 * storage/local/sidecar.h: the `<db>-litestream/` directory beside a replicated
 * database (docs/architecture.md section 4), shared by every process that opens
 * the database with the extension loaded:
 *
 *   config.json   the replica URL and options (mode 0600)
 *   position      one memory-mapped page: the shared TXID counter and the
 *                 captured position (seqlock, written under the WAL write
 *                 lock), plus the spooled and replicated TXIDs
 *   spool/        the spool segments (storage/local/spool.c)
 *   ship.lock     flock()ed by the process that uploads
 *   checksums     per-page checksums of the replicated state
 *
 * Reads and writes of the captured position are plain memory accesses (no
 * system call); the seqlock makes a reader in another process retry while a
 * writer is mid-update, and a writer that died mid-update leaves the
 * sequence odd, which every later reader treats as a lost position.
 */
#ifndef LITESTREAM_SIDECAR_H
#define LITESTREAM_SIDECAR_H

#include <stdint.h>

#include "storage/local/pitr.h"

/* Flags of the captured position. */
#define CAP_VALID 0x1 /* the fields describe a captured position */
#define CAP_RESET                                                              \
    0x2 /* the WAL was reset cleanly after `txid` (db holds all) */

/* The captured position: the last TXID and where it ended in the WAL. */
typedef struct ls_cap {
    uint64_t txid;
    uint32_t flags;
    uint32_t salt1, salt2;   /* WAL salts */
    uint32_t frame;          /* mxFrame after txid (0 = WAL empty) */
    uint32_t cksum1, cksum2; /* cumulative checksum of `frame` */
    uint32_t page_size;
    uint32_t commit; /* database size in pages after txid */
    uint32_t pad;
    uint64_t db_ino; /* database identity when CAP_RESET was set */
    int64_t db_size;
    int64_t db_mtime_ns;
} ls_cap;

typedef struct sidecar sidecar;

/*
 * Opens (creating if needed) the sidecar of the database at zDbPath.
 * SQLITE_OK, or SQLITE_CANTOPEN/SQLITE_IOERR/SQLITE_NOMEM with *pzErr set
 * (sqlite3_mprintf'd) naming the path and the system error.
 */
int sidecar_open(const char *zDbPath, sidecar **out, char **pzErr);
void sidecar_close(sidecar *);

/* Does the sidecar directory of zDbPath exist?  (No creation.) */
int sidecar_exists(const char *zDbPath);

/* Does its config.json exist (replication was configured once, perhaps
 * to stop: PRAGMA litestream_url = '')?  (No creation.) */
int sidecar_config_exists(const char *zDbPath);

/* Path of the sidecar directory and of a file inside it (owned by sc). */
const char *sidecar_dir(const sidecar *);

/*
 * Reads the captured position.  Returns 1 with *out filled if consistent,
 * 0 if a writer died mid-update or the page was never written (lost).
 */
int sidecar_cap_read(sidecar *, ls_cap *out);

/* Publishes a new captured position (caller holds the WAL write lock). */
void sidecar_cap_write(sidecar *, const ls_cap *cap);

/* Shared counters, atomically accessed. */
uint64_t sidecar_spooled(sidecar *);
void sidecar_set_spooled(sidecar *, uint64_t txid); /* only raises it */
uint64_t sidecar_replicated(sidecar *);
void sidecar_set_replicated(sidecar *, uint64_t txid, int64_t at_ms);
int64_t sidecar_replicated_at(sidecar *);
/* The same for replica n (0-based) of a URL list: n = 0 is the above. */
#define LS_MAX_REPLICAS 8
uint64_t sidecar_replicated_n(sidecar *, int n);
int64_t sidecar_replicated_at_n(sidecar *, int n);
void sidecar_set_replicated_n(sidecar *, int n, uint64_t txid, int64_t at_ms);
/* The highest of the TXID floor, the spooled and the replicated TXID (one
 * call: the capture asks at every hold). */
uint64_t sidecar_txid_above(sidecar *);
/* TXIDs must continue above this floor (the replica's newest TXID). */
uint64_t sidecar_txid_floor(sidecar *);
void sidecar_set_txid_floor(sidecar *, uint64_t txid);

/*
 * Whether this process is the only one with the sidecar open (a read lock
 * on users.lock per opener, tested without waiting: one system call).
 * The zero-copy capture is used only then (docs/architecture.md 2.3).
 */
int sidecar_alone(sidecar *);

/*
 * The restart fence of the zero-copy capture: a process whose queue names
 * WAL frames by reference publishes its pid (fence) until they are spooled
 * (unfence: only its own); a process about to restart the WAL first waits
 * up to timeout_ms for another live process's fence to drop.  Returns 1 if
 * no other process's references are outstanding, 0 on timeout (its
 * references then fail validation and a full image covers them).
 */
void sidecar_refs_fence(sidecar *, int32_t pid);
void sidecar_refs_unfence(sidecar *, int32_t pid);
int sidecar_refs_wait(sidecar *, int32_t self, int timeout_ms);

/* In a child after fork(): drops the parent's ship lock (not ours). */
void sidecar_after_fork(sidecar *);

/*
 * Tries to take the ship lock without blocking.  Returns 1 if this process
 * now holds it (or already did), 0 if another process does.
 */
int sidecar_ship_trylock(sidecar *);

/* Gives the ship lock up (another process may take it). */
void sidecar_ship_unlock(sidecar *);

/*
 * Whether config.json still names zUrl as the replica (re-read only when
 * the file changed since the last call on this *seen).  0 when another
 * process set another URL (or stopped replication) at or after since_ns
 * (wall clock; a file written before, e.g. just before this URL's own
 * write, does not count); *pzNow then receives the URL it names,
 * redacted (free it), if pzNow is given.
 */
typedef struct sidecar_seen {
    int64_t mtime_ns, size, ino;
    int current;
} sidecar_seen;
int sidecar_url_current(sidecar *, const char *zDbPath, const char *zUrl,
                        int64_t since_ns, sidecar_seen *seen, char **pzNow);

/* The replication settings stored in config.json. */
#define LS_DEFAULT_SYNC_MS       1000
#define LS_DEFAULT_SPOOL_LIMIT   (1ll << 30)
#define LS_DEFAULT_DURABILITY_MS 10000

/* PRAGMA litestream_durability: when COMMIT returns (docs/sql.md). */
#define LS_DURABILITY_LOCAL      0 /* at once: replicated within the interval */
#define LS_DURABILITY_REMOTE     1 /* once the replica holds the TXID */
#define LS_DURABILITY_REMOTE_ALL 2 /* once every replica holds it */
typedef struct ls_config {
    char *zUrl;          /* sqlite3_malloc'd; NULL or "" = not replicating */
    int sync_ms;         /* PRAGMA litestream_sync_interval */
    int64_t spool_limit; /* PRAGMA litestream_spool_limit (bytes) */
    ls_pitr pitr;        /* levels, snapshots, retention */
    int durability;      /* LS_DURABILITY_* (PRAGMA litestream_durability) */
    int durability_ms;   /* PRAGMA litestream_durability_timeout */
} ls_config;

/* Fills c with the defaults (no URL). */
void sidecar_config_defaults(ls_config *c);

/*
 * Reads `<zDbPath>-litestream/config.json` into c (defaults for anything
 * missing; a missing or unreadable file is all defaults).  Free c->zUrl.
 */
void sidecar_config_read(const char *zDbPath, ls_config *c);

/* Writes config.json atomically (mode 0600).  SQLITE_OK or SQLITE_IOERR. */
int sidecar_config_write(sidecar *, const ls_config *c, char **pzErr);

/*
 * The sidecar directory was removed (or replaced) while the database is
 * open: creates it again (spool/, the position page as this process knows
 * it, ship.lock, config.json from c when missing) and maps the new
 * position file in place of the old one.  *pAgain = 1 if it did that
 * (also when only the config.json write then failed);
 * nothing happens while the directory is the one opened.  SQLITE_OK, or
 * an error with *pzErr set.
 */
int sidecar_recreate(sidecar *, const ls_config *c, int *pAgain, char **pzErr);

#endif
