/*
 * vfs/durability.h: PRAGMA litestream_durability = 'remote': a COMMIT that
 * returns once the replica holds its transaction (vfs/durability.c).
 */
#ifndef LITESTREAM_VFS_DURABILITY_H
#define LITESTREAM_VFS_DURABILITY_H

#include <stdint.h>

#include "storage/base/sqlite.h"
#include "vfs/registry.h"

/*
 * The result code of a COMMIT that is durable locally but that the replica
 * did not confirm within PRAGMA litestream_durability_timeout: the
 * transaction is committed (and stays queued: it will be replicated).
 * SQLITE_WARNING with an extended code of its own; LITESTREAM_UNCONFIRMED
 * in ext/litestream.h (docs/sql.md).
 */
#define LS_UNCONFIRMED (SQLITE_WARNING | (0x4c << 8))

/*
 * A private file control of the litestream VFS: the main database file of
 * a schema hands over (and forgets) the TXID its connection's last commit
 * became.  pArg: an ls_commit.
 */
#define LS_FCNTL_COMMIT_TXID 0x4c537401
typedef struct ls_commit {
    ls_db *d;
    uint64_t txid;
} ls_commit;

/*
 * After a commit on conn became a TXID of a database in remote mode:
 * installs our WAL hook on conn until SQLite calls it (it waits for the
 * replica, does SQLite's auto-checkpoint, and gives the connection back to
 * SQLite's hook).  fresh: the file had no TXID waiting yet.  Application
 * thread, inside the commit (conn's mutex held).
 */
void durability_arm(sqlite3 *conn, int fresh);

/* A file closed with a TXID no hook call took. */
void durability_dropped(void);

#endif
