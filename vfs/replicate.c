/*
 * vfs/replicate.c: the `litestream` VFS, a shim over the default VFS that
 * captures every committed WAL transaction of a replicated database.
 *
 * How it is used: the extension registers it as the default VFS, so every
 * database opened afterwards goes through it.  Nothing changes for a
 * database until `PRAGMA litestream_url = 'URL'` (stored in the sidecar
 * `<db>-litestream/`, so replication resumes at every later open).
 *
 * Invariants (docs/architecture.md):
 *   1. Only main databases and their WALs are wrapped; every other file
 *      (journals, temp files, ...) is the underlying VFS's own object.
 *   2. While a connection holds the WAL write lock, xWrite on the WAL keeps a
 *      byte copy of what it writes (`buf`, WAL offsets [base, end)).
 *   3. The capture runs when the write lock is released (before forwarding
 *      the unlock) or, in exclusive locking mode, on
 *      SQLITE_FCNTL_COMMIT_PHASETWO: the frames between the captured
 *      position and the wal-index mxFrame become one TXID per commit.  If
 *      they are not all in `buf` they are re-read from the WAL and validated
 *      (salts + checksum chain); if the WAL no longer matches the position
 *      the next TXID is a full image.  No system call on the fast path.
 *   4. Before anything that overwrites or removes WAL content (a new WAL
 *      header, a truncation, deleting the WAL) nothing queued may still
 *      depend on it: transactions queued by reference (big ones) are
 *      spooled first.  Those queued as copies need no wait: a restart
 *      follows a complete checkpoint, so if the process died before they
 *      reach the spool the database file still holds their data and the
 *      uploader covers the missing TXIDs with one full image.
 *   5. No checkpoints of our own, no read transactions of our own here.
 *
 * Threads: VFS methods run on application threads under SQLite's locks; the
 * per-database state is shared by the connections of this process and
 * guarded by `mu` where two connections could meet.
 */
#include "vfs/replicate.h"
#include "vfs/capture.h"
#include "vfs/durability.h"
#include "vfs/pragma.h"
#include "vfs/registry.h"

#include <pthread.h>
#include <string.h>

#define WAL_WRITE_LOCK 0 /* the wal-index lock slot of the write lock */

/*
 * A file opened through the VFS: the real file (the underlying VFS's)
 * lives directly after it (szOsFile is enlarged), so no allocation.
 */
typedef struct ls_file {
    sqlite3_file base;
    ls_db *db;
    int is_wal;
    sqlite3 *conn;        /* main file: the owning connection, if known */
    struct ls_file *main; /* WAL file: its main database file */
    struct ls_file *wal;  /* main file: its connection's WAL file */
    volatile void *shm0;  /* main file: its wal-index region 0, once mapped */
    uint64_t commit_txid; /* main file, remote durability: the TXID its
                           * connection's last commit became, until the
                           * WAL hook takes it (vfs/durability.c) */
} ls_file;

#define REAL(p) ((sqlite3_file *)(((ls_file *)(p)) + 1))

static sqlite3_vfs litestream_vfs;
#define ORIG ((sqlite3_vfs *)litestream_vfs.pAppData)
static sqlite3_io_methods main_methods;

/* ---- io methods: main database ----------------------------------------- */

/* A commit of p's connection became TXID txid (0: none): in remote
 * durability the WAL hook waits for it (vfs/durability.c). */
static void
commit_done(ls_file *p, uint64_t txid)
{
    if (txid && __atomic_load_n(&p->db->durability, __ATOMIC_RELAXED) &&
        p->conn) {
        durability_arm(p->conn, p->commit_txid == 0);
        p->commit_txid = txid;
    }
}

static int
m_close(sqlite3_file *pFile)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->main && p->main->wal == p)
        p->main->wal = NULL;
    if (p->commit_txid)
        durability_dropped();
    if (p->is_wal && p->db) {
        pthread_mutex_lock(&p->db->mu);
        if (p->db->walf == REAL(pFile))
            p->db->walf = NULL;
        pthread_mutex_unlock(&p->db->mu);
    }
    int rc = REAL(pFile)->pMethods->xClose(REAL(pFile));
    if (p->db)
        registry_release(p->db);
    return rc;
}

static int
m_read(sqlite3_file *pFile, void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    return REAL(pFile)->pMethods->xRead(REAL(pFile), zBuf, iAmt, iOfst);
}

static int
m_write(sqlite3_file *pFile, const void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->db && p->db->rep) {
        ls_db *d = p->db;
        /* No mutex here (twice per frame): only the connection holding the
         * WAL write lock writes the WAL, and the capture state is that
         * connection's until it releases the lock. */
        if (!d->hold && p->main) { /* exclusive locking mode: no xShmLock */
            pthread_mutex_lock(&d->mu);
            capture_hold_begin(d, REAL(p->main), 0);
            d->hold_owner = p->main;
            pthread_mutex_unlock(&d->mu);
        }
        d->walf = REAL(pFile);
        if (iOfst == 0) {
            /* A new WAL header: frames are about to be overwritten. */
            pthread_mutex_lock(&d->mu);
            capture_before_wal_reset(d);
            pthread_mutex_unlock(&d->mu);
            capture_buf_reset(d);
            d->wh_ok = 0;
        }
        if (d->buf_ok) /* not a zero-copy hold */
            capture_buf_write(d, zBuf, iAmt, iOfst);
    } else if (!p->is_wal && p->db && p->db->rep &&
               !__atomic_load_n(&p->db->ckpt_hinted, __ATOMIC_RELAXED)) {
        /* In WAL mode only a checkpoint writes the database file: a WAL
         * restart may follow (once per checkpoint: the flag drops at the
         * database's sync and at the restart). */
        __atomic_store_n(&p->db->ckpt_hinted, 1, __ATOMIC_RELAXED);
        capture_checkpoint_begins(p->db);
    }
    return REAL(pFile)->pMethods->xWrite(REAL(pFile), zBuf, iAmt, iOfst);
}

static int
m_truncate(sqlite3_file *pFile, sqlite3_int64 size)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->db && p->db->rep) {
        pthread_mutex_lock(&p->db->mu);
        capture_before_wal_reset(p->db);
        pthread_mutex_unlock(&p->db->mu);
        p->db->wh_ok = 0;
    }
    return REAL(pFile)->pMethods->xTruncate(REAL(pFile), size);
}

static int
m_sync(sqlite3_file *pFile, int flags)
{
    ls_file *p = (ls_file *)pFile;
    if (p->is_wal && p->db && p->db->hold)
        p->db->wal_synced = 1; /* a plain store: the writer holds the lock */
    else if (!p->is_wal && p->db)
        __atomic_store_n(&p->db->ckpt_hinted, 0, __ATOMIC_RELAXED); /* end */
    return REAL(pFile)->pMethods->xSync(REAL(pFile), flags);
}

static int
m_file_size(sqlite3_file *pFile, sqlite3_int64 *pSize)
{
    return REAL(pFile)->pMethods->xFileSize(REAL(pFile), pSize);
}

static int
m_lock(sqlite3_file *pFile, int eLock)
{
    return REAL(pFile)->pMethods->xLock(REAL(pFile), eLock);
}

static int
m_unlock(sqlite3_file *pFile, int eLock)
{
    return REAL(pFile)->pMethods->xUnlock(REAL(pFile), eLock);
}

static int
m_check_reserved(sqlite3_file *pFile, int *pResOut)
{
    return REAL(pFile)->pMethods->xCheckReservedLock(REAL(pFile), pResOut);
}

static int
m_file_control(sqlite3_file *pFile, int op, void *pArg)
{
    ls_file *p = (ls_file *)pFile;
    if (!p->is_wal && p->db) {
        if (op == LS_FCNTL_COMMIT_TXID) {
            ls_commit *c = pArg;
            c->d = p->db;
            c->txid = p->commit_txid;
            p->commit_txid = 0;
            return SQLITE_OK;
        }
        if (op == SQLITE_FCNTL_PRAGMA) {
            int rc = vfs_pragma(p->db, p->conn, REAL(pFile), (char **)pArg);
            if (rc != SQLITE_NOTFOUND)
                return rc;
        } else if (op == SQLITE_FCNTL_COMMIT_PHASETWO && p->db->hold) {
            /* Exclusive locking mode: no xShmLock, capture here; only the
             * connection's own hold (another may hold the lock by now). */
            uint64_t txid = 0;
            pthread_mutex_lock(&p->db->mu);
            if (p->db->hold && !p->db->hold_locked && p->db->hold_owner == p)
                txid = capture_hold_end(p->db, REAL(pFile));
            pthread_mutex_unlock(&p->db->mu);
            commit_done(p, txid);
        }
    }
    return REAL(pFile)->pMethods->xFileControl(REAL(pFile), op, pArg);
}

static int
m_sector_size(sqlite3_file *pFile)
{
    return REAL(pFile)->pMethods->xSectorSize(REAL(pFile));
}

static int
m_device_characteristics(sqlite3_file *pFile)
{
    return REAL(pFile)->pMethods->xDeviceCharacteristics(REAL(pFile));
}

static int
m_shm_map(sqlite3_file *pFile, int iPg, int pgsz, int bExtend,
          void volatile **pp)
{
    ls_file *p = (ls_file *)pFile;
    if (p->db && !p->db->shm_seen)
        p->db->shm_seen = 1;
    int rc =
        REAL(pFile)->pMethods->xShmMap(REAL(pFile), iPg, pgsz, bExtend, pp);
    /* Region 0 stays mapped where it is until this file unmaps it: the
     * capture reads the wal-index header there without asking again. */
    if (rc == SQLITE_OK && iPg == 0 && *pp)
        p->shm0 = *pp;
    return rc;
}

/* The write lock of a replicated database: a hold begins after taking it
 * and the capture runs before releasing it (invariant 3). */
static int __attribute__((noinline))
shm_lock_write(ls_file *p, int n, int flags)
{
    ls_db *d = p->db;
    sqlite3_file *real = REAL(p);
    if (flags & SQLITE_SHM_UNLOCK) {
        uint64_t txid;
        if (d->zc) { /* (the write lock is ours: d->zc is this hold's) */
            txid = capture_hold_end_zc(d, real);
        } else {
            pthread_mutex_lock(&d->mu);
            txid = capture_hold_end(d, real);
            pthread_mutex_unlock(&d->mu);
        }
        commit_done(p, txid);
        return real->pMethods->xShmLock(real, WAL_WRITE_LOCK, n, flags);
    }
    int rc = real->pMethods->xShmLock(real, WAL_WRITE_LOCK, n, flags);
    if (rc == SQLITE_OK) {
        /* No mutex: the capture state is the write lock holder's, and
         * the hold's beginning only reads positions (capture.h). */
        if (p->wal)
            d->walf = REAL(p->wal); /* the holder's own WAL handle */
        d->hold_shm = p->shm0;
        capture_hold_begin(d, real, 1);
        d->hold_owner = p;
        d->hold_locked = 1;
    }
    return rc;
}

static int
m_shm_lock(sqlite3_file *pFile, int offset, int n, int flags)
{
    ls_file *p = (ls_file *)pFile;
    /* SQLite takes and releases shared locks several times per
     * transaction: only the write lock (slot 0, exclusive) of a replicated
     * database concerns the capture; the rest is passed straight on. */
    if (offset != WAL_WRITE_LOCK || !(flags & SQLITE_SHM_EXCLUSIVE) || !p->db ||
        !p->db->rep)
        return REAL(pFile)->pMethods->xShmLock(REAL(pFile), offset, n, flags);
    return shm_lock_write(p, n, flags);
}

static void
m_shm_barrier(sqlite3_file *pFile)
{
    REAL(pFile)->pMethods->xShmBarrier(REAL(pFile));
}

static int
m_shm_unmap(sqlite3_file *pFile, int deleteFlag)
{
    ((ls_file *)pFile)->shm0 = NULL;
    return REAL(pFile)->pMethods->xShmUnmap(REAL(pFile), deleteFlag);
}

static int
m_fetch(sqlite3_file *pFile, sqlite3_int64 iOfst, int iAmt, void **pp)
{
    return REAL(pFile)->pMethods->xFetch(REAL(pFile), iOfst, iAmt, pp);
}

static int
m_unfetch(sqlite3_file *pFile, sqlite3_int64 iOfst, void *pPage)
{
    return REAL(pFile)->pMethods->xUnfetch(REAL(pFile), iOfst, pPage);
}

static sqlite3_io_methods main_methods = {
    .iVersion = 3,
    .xClose = m_close,
    .xRead = m_read,
    .xWrite = m_write,
    .xTruncate = m_truncate,
    .xSync = m_sync,
    .xFileSize = m_file_size,
    .xLock = m_lock,
    .xUnlock = m_unlock,
    .xCheckReservedLock = m_check_reserved,
    .xFileControl = m_file_control,
    .xSectorSize = m_sector_size,
    .xDeviceCharacteristics = m_device_characteristics,
    .xShmMap = m_shm_map,
    .xShmLock = m_shm_lock,
    .xShmBarrier = m_shm_barrier,
    .xShmUnmap = m_shm_unmap,
    .xFetch = m_fetch,
    .xUnfetch = m_unfetch,
};

/* ---- VFS methods ------------------------------------------------------- */

static int
v_open(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *pFile, int flags,
       int *pOutFlags)
{
    ls_file *p = (ls_file *)pFile;
    int rc;
    int is_main = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    int is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    if ((!is_main && !is_wal) || !zName)
        return ORIG->xOpen(ORIG, zName, pFile, flags, pOutFlags);
    memset(p, 0, sizeof(*p));
    rc = ORIG->xOpen(ORIG, zName, REAL(pFile), flags, pOutFlags);
    if (rc != SQLITE_OK)
        return rc;
    p->is_wal = is_wal;
    if (is_main) {
        p->db = registry_acquire(zName); /* resumes replication */
    } else {
        sqlite3_file *m = sqlite3_database_file_object(zName);
        if (m && m->pMethods == &main_methods) {
            ls_file *mf = (ls_file *)m;
            p->main = mf;
            mf->wal = p;
            if (mf->db) {
                registry_ref(mf->db);
                p->db = mf->db;
                if (!p->db->walf)
                    p->db->walf = REAL(pFile);
            }
        }
    }
    pFile->pMethods = &main_methods;
    return SQLITE_OK;
}

static int
v_delete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    ls_db *d = registry_find_wal(zName);
    int clean = 0;
    if (d && d->rep) {
        pthread_mutex_lock(&d->mu);
        capture_before_wal_reset(d);
        d->wh_ok = 0;
        clean = capture_wal_ends_at_cap(d, zName);
        pthread_mutex_unlock(&d->mu);
    }
    int rc = ORIG->xDelete(ORIG, zName, syncDir);
    if (d && d->rep && rc == SQLITE_OK && clean)
        capture_after_wal_delete(d);
    return rc;
}

static int
v_access(sqlite3_vfs *pVfs, const char *zName, int flags, int *pResOut)
{
    return ORIG->xAccess(ORIG, zName, flags, pResOut);
}

static int
v_full_pathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    return ORIG->xFullPathname(ORIG, zName, nOut, zOut);
}

static void *
v_dlopen(sqlite3_vfs *pVfs, const char *zPath)
{
    return ORIG->xDlOpen(ORIG, zPath);
}

static void
v_dlerror(sqlite3_vfs *pVfs, int nByte, char *zErrMsg)
{
    ORIG->xDlError(ORIG, nByte, zErrMsg);
}

static void (*v_dlsym(sqlite3_vfs *pVfs, void *p, const char *zSym))(void)
{
    return ORIG->xDlSym(ORIG, p, zSym);
}

static void
v_dlclose(sqlite3_vfs *pVfs, void *pHandle)
{
    ORIG->xDlClose(ORIG, pHandle);
}

static int
v_randomness(sqlite3_vfs *pVfs, int nByte, char *zOut)
{
    return ORIG->xRandomness(ORIG, nByte, zOut);
}

static int
v_sleep(sqlite3_vfs *pVfs, int micro)
{
    return ORIG->xSleep(ORIG, micro);
}

static int
v_current_time(sqlite3_vfs *pVfs, double *p)
{
    return ORIG->xCurrentTime(ORIG, p);
}

static int
v_get_last_error(sqlite3_vfs *pVfs, int n, char *z)
{
    return ORIG->xGetLastError ? ORIG->xGetLastError(ORIG, n, z) : 0;
}

static int
v_current_time_int64(sqlite3_vfs *pVfs, sqlite3_int64 *p)
{
    return ORIG->xCurrentTimeInt64(ORIG, p);
}

static int
v_set_system_call(sqlite3_vfs *pVfs, const char *zName,
                  sqlite3_syscall_ptr pCall)
{
    return ORIG->xSetSystemCall(ORIG, zName, pCall);
}

static sqlite3_syscall_ptr
v_get_system_call(sqlite3_vfs *pVfs, const char *zName)
{
    return ORIG->xGetSystemCall(ORIG, zName);
}

static const char *
v_next_system_call(sqlite3_vfs *pVfs, const char *zName)
{
    return ORIG->xNextSystemCall(ORIG, zName);
}

static sqlite3_vfs litestream_vfs = {
    .iVersion = 3,
    .zName = "litestream",
    .xOpen = v_open,
    .xDelete = v_delete,
    .xAccess = v_access,
    .xFullPathname = v_full_pathname,
    .xDlOpen = v_dlopen,
    .xDlError = v_dlerror,
    .xDlSym = v_dlsym,
    .xDlClose = v_dlclose,
    .xRandomness = v_randomness,
    .xSleep = v_sleep,
    .xCurrentTime = v_current_time,
    .xGetLastError = v_get_last_error,
    .xCurrentTimeInt64 = v_current_time_int64,
    .xSetSystemCall = v_set_system_call,
    .xGetSystemCall = v_get_system_call,
    .xNextSystemCall = v_next_system_call,
};

int
vfs_replicate_register(void)
{
    sqlite3_vfs *orig = sqlite3_vfs_find(NULL);
    if (!orig)
        return SQLITE_ERROR;
    if (orig == &litestream_vfs)
        return SQLITE_OK;
    litestream_vfs.iVersion = orig->iVersion < 3 ? orig->iVersion : 3;
    litestream_vfs.szOsFile = (int)sizeof(ls_file) + orig->szOsFile;
    litestream_vfs.mxPathname = orig->mxPathname;
    litestream_vfs.pAppData = orig;
    registry_init(orig->zName, capture_recapture);
    main_methods.iVersion = 3;
    return sqlite3_vfs_register(&litestream_vfs, 1);
}

int
vfs_is_litestream_file(sqlite3_file *f)
{
    return f && f->pMethods == &main_methods && !((ls_file *)f)->is_wal;
}

void
vfs_set_connection(sqlite3_file *f, sqlite3 *conn)
{
    if (vfs_is_litestream_file(f))
        ((ls_file *)f)->conn = conn;
}

ls_db *
vfs_db_of_file(sqlite3_file *f)
{
    return vfs_is_litestream_file(f) ? ((ls_file *)f)->db : NULL;
}

void
vfs_image_now(sqlite3_file *f)
{
    ls_db *d = vfs_db_of_file(f);
    int lock = 0;
    if (!d)
        return;
    /* Only the connection holding the exclusive lock may read the files
     * as they are without a write lock of its own. */
    if (REAL(f)->pMethods->xFileControl(REAL(f), SQLITE_FCNTL_LOCKSTATE,
                                        &lock) != SQLITE_OK ||
        lock != SQLITE_LOCK_EXCLUSIVE)
        return;
    capture_image_now(d, REAL(f));
}
