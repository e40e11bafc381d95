/*
 * vfs/durability.c: PRAGMA litestream_durability = 'remote' (durability.h).
 *
 * SQLite calls a connection's WAL hook after every commit, once the write
 * lock is released, and a non-zero return becomes the statement's result:
 * the one place after a commit where SQLite lets an extension both wait
 * without blocking other writers and report an error.  The capture notes
 * the TXID a commit became on the committing connection's main file
 * (vfs/replicate.c); the hook asks that file for it (LS_FCNTL_COMMIT_TXID)
 * and waits with replicator_sync(), which uploads at once: every commit
 * that arrives while an upload is in flight shares the next one (group
 * commit).
 *
 * The hook stands in for SQLite's own, the auto-checkpoint, from the
 * commit to the hook call: it checkpoints too, at the connection's
 * threshold, and then installs SQLite's hook again, so between commits the
 * connection is as the application left it (PRAGMA wal_autocheckpoint
 * reads and sets the threshold there).  SQLite's hook argument is that
 * threshold; ours carries it with the top bit set (no user-space pointer
 * has it), which tells a second schema's arming in the same commit that
 * the hook is ours already.
 *
 * Invariants:
 *   1. Local mode changes nothing: the hook is armed only by commits of a
 *      database in remote mode.
 *   2. A timeout never loses the transaction: it is committed and queued;
 *      COMMIT returns LITESTREAM_UNCONFIRMED and sqlite3_log says why.
 */
#include "vfs/durability.h"

#include <limits.h>

#define ARG_TAG      ((uintptr_t)1 << (sizeof(uintptr_t) * 8 - 1))
#define DEFAULT_CKPT 1000 /* SQLite's SQLITE_DEFAULT_WAL_AUTOCHECKPOINT */

/* Waits until the replica holds txid, at most the database's timeout. */
static int
wait_remote(ls_db *d, uint64_t txid)
{
    if (!__atomic_load_n(&d->durability, __ATOMIC_ACQUIRE))
        return SQLITE_OK;
    int ms = __atomic_load_n(&d->durability_ms, __ATOMIC_RELAXED);
    replicator *r = registry_replicator(d);
    if (!r)
        return SQLITE_OK; /* replication stopped: nothing to wait for */
    uint64_t got = 0;
    char *zErr = NULL;
    /* 'remote': the first replica to get there; 'remote-all': every one. */
    int need = __atomic_load_n(&d->durability, __ATOMIC_ACQUIRE) ==
                       LS_DURABILITY_REMOTE_ALL
                   ? REP_SYNC_ALL
                   : 1;
    int rc = replicator_sync_n(r, txid, need, ms, &got, &zErr);
    registry_replicator_done(d, r);
    if (rc == SQLITE_OK)
        return SQLITE_OK;
    __atomic_add_fetch(&d->n_unconfirmed, 1, __ATOMIC_RELAXED);
    sqlite3_log(LS_UNCONFIRMED,
                "litestream: COMMIT of TXID %llu in '%s' is durable locally, "
                "but the replica did not confirm it within %d ms (PRAGMA "
                "litestream_durability_timeout); it stays queued and will "
                "be replicated; the replica holds TXID %llu%s%s",
                (unsigned long long)txid, registry_path(d), ms,
                (unsigned long long)got, zErr ? ": " : "", zErr ? zErr : "");
    sqlite3_free(zErr);
    return LS_UNCONFIRMED;
}

/* Commits of this thread whose TXID no hook call has taken yet (one
 * statement can commit several schemas; the hook runs once per schema). */
static __thread int pending;

static int
hook(void *arg, sqlite3 *db, const char *zDb, int nFrame)
{
    int n = (int)((uintptr_t)arg & ~ARG_TAG);
    ls_commit c = {0};
    int rc = SQLITE_OK;
    if (sqlite3_file_control(db, zDb, LS_FCNTL_COMMIT_TXID, &c) == SQLITE_OK &&
        c.d && c.txid) {
        pending--;
        rc = wait_remote(c.d, c.txid);
    }
    if (n > 0 && nFrame >= n)
        sqlite3_wal_checkpoint(db, zDb); /* what SQLite's hook does */
    if (pending <= 0) {
        /* Hand the connection back to SQLite's own hook, as it was (PRAGMA
         * wal_autocheckpoint reads the threshold from it). */
        pending = 0;
        sqlite3_wal_autocheckpoint(db, n);
    }
    return rc;
}

void
durability_arm(sqlite3 *conn, int fresh)
{
    if (fresh)
        pending++;
    void *prev = sqlite3_wal_hook(conn, hook, (void *)ARG_TAG);
    uintptr_t v = (uintptr_t)prev;
    int n;
    if (v & ARG_TAG)
        n = (int)(v & ~ARG_TAG); /* ours: armed by another schema */
    else if (v <= INT_MAX)
        n = (int)v; /* SQLite's: the threshold (NULL: none) */
    else {
        n = DEFAULT_CKPT;
        sqlite3_log(SQLITE_WARNING,
                    "litestream: PRAGMA litestream_durability = 'remote' "
                    "replaced the application's WAL hook on this connection "
                    "(sqlite3_wal_hook) with SQLite's auto-checkpoint");
    }
    sqlite3_wal_hook(conn, hook, (void *)(ARG_TAG | (uintptr_t)n));
}

void
durability_dropped(void)
{
    if (pending > 0)
        pending--;
}
