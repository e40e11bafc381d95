/*
 * vfs/remote.c: the `litestream-remote` VFS, a read-only database served
 * straight from a replica (docs/architecture.md section 8).
 *
 *     .open file:app.db?vfs=litestream-remote&url=file%3A%2F%2F%2Fbackups%2Fapp
 *     (or url= omitted and LITESTREAM_REPLICA_URL set)
 *
 * The file name ("app.db") only names the connection's database; nothing is
 * read or written locally.  The engine is storage/reader/reader.h (restore
 * plan, page index, page cache, read-ahead, polling); this file adapts it to
 * SQLite: URI options, locking, page 1, errors.
 *
 * Invariants:
 *   1. State is per file (per connection): its own backend handle, page map
 *      and cache.  SQLite calls a connection's file from one thread at a
 *      time, so nothing here locks, and no connection ever waits for
 *      another's request.  (The price: connections to one replica do not
 *      share their caches; see docs/remote.md.)
 *   2. The page map changes only when the connection holds no lock: polling
 *      runs when a read transaction starts (xLock NONE -> SHARED), before
 *      SQLite reads anything, and time travel is refused inside a
 *      transaction.  So every read transaction sees one TXID.
 *   3. Page 1 is served as a rollback-journal database (bytes 18-19 = 1, so
 *      SQLite never looks for a WAL) whose change counter (bytes 24-27) and
 *      version-valid-for number (92-95) are the low 32 bits of the TXID and
 *      whose in-header size (28-31) is the database size in pages: SQLite
 *      drops its page cache whenever the TXID changed.
 *   4. The file is opened SQLITE_OPEN_READONLY; any lock above SHARED and
 *      any write fail with SQLITE_READONLY.  Journals and WALs of a remote
 *      database do not exist (xAccess) and cannot be opened; temporary
 *      files go to the underlying VFS untouched.
 *   5. An open that fails (no URL, bad option, unreachable or empty
 *      replica, corrupt object) still returns a file, which reads as empty
 *      and refuses every lock with the failure's code.  SQLite gives a VFS
 *      no way to attach a message to xOpen's error, so the extension's
 *      auto-extension (which runs inside sqlite3_open_v2(), after xOpen)
 *      calls vfs_remote_fail_open(): it leaves the failure's code and
 *      message as the connection's error, and openDatabase() returns any
 *      error an auto-extension left, unprefixed.  sqlite3_open_v2() thus
 *      fails with "litestream-remote: <why>" and SQLITE_CANTOPEN.
 *
 * Threads: application threads, one per connection at a time.
 */
#include <string.h>

#include "vfs/remote_pragma.h"
#include "vfs/remote.h"

static sqlite3_vfs remote_vfs;
#define ORIG ((sqlite3_vfs *)remote_vfs.pAppData)
static const sqlite3_io_methods remote_methods;

/* ---- page 1 (invariant 3) ------------------------------------------------ */

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Overlays the patched header fields on a read of [iOfst, iOfst+iAmt). */
static void
patch_header(remote_file *p, uint8_t *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    uint8_t h[100];
    static const struct {
        int at, n;
    } fields[] = {{18, 2}, {24, 8}, {92, 4}};
    uint32_t txid32 = (uint32_t)reader_txid(p->r);

    h[18] = h[19] = 1;
    put32(h + 24, txid32);
    put32(h + 28, reader_npages(p->r));
    put32(h + 92, txid32);
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
        for (int i = fields[f].at; i < fields[f].at + fields[f].n; i++)
            if (i >= iOfst && i < iOfst + iAmt)
                zBuf[i - iOfst] = h[i];
}

/* ---- io methods ---------------------------------------------------------- */

static int
r_close(sqlite3_file *pFile)
{
    remote_file *p = (remote_file *)pFile;
    remote_list_remove(p);
    reader_close(p->r);
    sqlite3_free(p->zOpenErr);
    p->r = NULL;
    p->zOpenErr = NULL;
    return SQLITE_OK;
}

static int
r_read(sqlite3_file *pFile, void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    remote_file *p = (remote_file *)pFile;
    uint8_t *out = zBuf;
    uint32_t ps;
    int done = 0, rc = SQLITE_OK;

    if (p->r == NULL) { /* invariant 5: reads as empty */
        memset(zBuf, 0, (size_t)iAmt);
        return SQLITE_IOERR_SHORT_READ;
    }
    ps = reader_page_size(p->r);
    while (done < iAmt) {
        sqlite3_int64 off = iOfst + done;
        uint32_t in = (uint32_t)(off % ps), n = ps - in;
        const uint8_t *page;
        if (n > (uint32_t)(iAmt - done))
            n = (uint32_t)(iAmt - done);
        rc = reader_read(p->r, (uint32_t)(off / ps) + 1, &page);
        if (rc == SQLITE_IOERR_SHORT_READ) {
            memset(out + done, 0, (size_t)(iAmt - done));
            break;
        }
        if (rc != SQLITE_OK)
            return rc == SQLITE_CORRUPT ? SQLITE_CORRUPT
                   : rc == SQLITE_NOMEM ? SQLITE_IOERR_NOMEM
                                        : SQLITE_IOERR_READ;
        memcpy(out + done, page + in, n);
        done += (int)n;
    }
    if (iOfst < 100)
        patch_header(p, out, iAmt, iOfst);
    return rc;
}

static int
r_readonly(const char *zWhat)
{
    sqlite3_log(SQLITE_READONLY,
                "litestream-remote: %s refused: a read replica is read-only "
                "(write to the primary database instead)",
                zWhat);
    return SQLITE_READONLY;
}

static int
r_write(sqlite3_file *pFile, const void *zBuf, int iAmt, sqlite3_int64 iOfst)
{
    return r_readonly("write");
}

static int
r_truncate(sqlite3_file *pFile, sqlite3_int64 size)
{
    return r_readonly("truncate");
}

static int
r_sync(sqlite3_file *pFile, int flags)
{
    return SQLITE_OK; /* nothing was ever written */
}

static int
r_file_size(sqlite3_file *pFile, sqlite3_int64 *pSize)
{
    remote_file *p = (remote_file *)pFile;
    *pSize = p->r ? (sqlite3_int64)reader_npages(p->r) *
                        (sqlite3_int64)reader_page_size(p->r)
                  : 0;
    return SQLITE_OK;
}

static int
r_lock(sqlite3_file *pFile, int eLock)
{
    remote_file *p = (remote_file *)pFile;

    if (p->r == NULL)
        return p->rcOpen;
    if (eLock > SQLITE_LOCK_SHARED)
        return r_readonly("a write lock");
    if (p->lock == SQLITE_LOCK_NONE && eLock == SQLITE_LOCK_SHARED) {
        reader_poll(p->r, 0); /* invariant 2; a failure keeps the state */
        remote_list_publish(p);
    }
    p->lock = eLock;
    return SQLITE_OK;
}

static int
r_unlock(sqlite3_file *pFile, int eLock)
{
    remote_file *p = (remote_file *)pFile;
    if (eLock == SQLITE_LOCK_NONE && p->lock != SQLITE_LOCK_NONE && p->r)
        remote_list_publish(p);
    if (eLock < p->lock)
        p->lock = eLock;
    return SQLITE_OK;
}

static int
r_check_reserved(sqlite3_file *pFile, int *pResOut)
{
    *pResOut = 0;
    return SQLITE_OK;
}

static int
r_file_control(sqlite3_file *pFile, int op, void *pArg)
{
    remote_file *p = (remote_file *)pFile;

    switch (op) {
    case SQLITE_FCNTL_PRAGMA:
        return p->r ? remote_pragma(p, (char **)pArg) : SQLITE_NOTFOUND;
    case SQLITE_FCNTL_VFSNAME:
        *(char **)pArg = sqlite3_mprintf("%s", REMOTE_VFS_NAME);
        return SQLITE_OK;
    default:
        return SQLITE_NOTFOUND;
    }
}

static int
r_sector_size(sqlite3_file *pFile)
{
    return 4096;
}

static int
r_device_characteristics(sqlite3_file *pFile)
{
    return 0; /* not IMMUTABLE: the content follows the replica */
}

static const sqlite3_io_methods remote_methods = {
    .iVersion = 1,
    .xClose = r_close,
    .xRead = r_read,
    .xWrite = r_write,
    .xTruncate = r_truncate,
    .xSync = r_sync,
    .xFileSize = r_file_size,
    .xLock = r_lock,
    .xUnlock = r_unlock,
    .xCheckReservedLock = r_check_reserved,
    .xFileControl = r_file_control,
    .xSectorSize = r_sector_size,
    .xDeviceCharacteristics = r_device_characteristics,
};

/* ---- vfs methods --------------------------------------------------------- */

/* The open's error message (takes zErr): "litestream-remote: <why>". */
static char *
open_message(char *zErr, int rc)
{
    char *z;
    if (zErr && strncmp(zErr, "litestream-remote: ", 19) == 0)
        return zErr;
    if (zErr == NULL)
        z = sqlite3_mprintf("litestream-remote: cannot open the replica: %s",
                            sqlite3_errstr(rc));
    else
        z = sqlite3_mprintf("litestream-remote: %s",
                            strncmp(zErr, "litestream: ", 12) == 0 ? zErr + 12
                                                                   : zErr);
    sqlite3_free(zErr);
    return z;
}

/* Opens the reader for the main database file p (invariant 5). */
static void
remote_open_main(remote_file *p, const char *zName)
{
    remote_opts o;
    char *zErr = NULL;
    int rc;

    rc = remote_options(zName, &o, &zErr);
    if (rc == SQLITE_OK)
        rc = reader_open(o.zUrl, &o.ro, &p->r, &zErr);
    /* min_txid on a replica still empty: wait for its first objects. */
    for (int waited = 0;
         rc == SQLITE_NOTFOUND && o.min_txid && !o.ro.target_txid &&
         !o.ro.target_ms && waited < o.timeout_ms;
         waited += 100) {
        sqlite3_free(zErr);
        zErr = NULL;
        ORIG->xSleep(ORIG, 100000);
        rc = reader_open(o.zUrl, &o.ro, &p->r, &zErr);
    }
    if (rc == SQLITE_OK && o.min_txid)
        rc = reader_wait_txid(p->r, o.min_txid, o.timeout_ms, &zErr);
    if (rc != SQLITE_OK) {
        reader_close(p->r);
        p->r = NULL;
        p->rcOpen = rc == SQLITE_NOMEM ? SQLITE_NOMEM : SQLITE_CANTOPEN;
        p->zOpenErr = open_message(zErr, rc);
        sqlite3_log(p->rcOpen, "%s", p->zOpenErr ? p->zOpenErr : "");
        return;
    }
    sqlite3_free(zErr);
    remote_list_add(p);
}

static int
remote_open(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *pFile,
            int flags, int *pOutFlags)
{
    remote_file *p = (remote_file *)pFile;

    if (!(flags & SQLITE_OPEN_MAIN_DB)) {
        if (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL))
            return SQLITE_CANTOPEN; /* invariant 4 */
        return ORIG->xOpen(ORIG, zName, pFile, flags, pOutFlags);
    }
    memset(p, 0, sizeof(*p));
    remote_open_main(p, zName);
    p->base.pMethods = &remote_methods;
    if (pOutFlags)
        *pOutFlags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) |
                     SQLITE_OPEN_READONLY;
    return SQLITE_OK;
}

static int
ends_with(const char *z, const char *zSuffix)
{
    size_t n = strlen(z), m = strlen(zSuffix);
    return n >= m && strcmp(z + n - m, zSuffix) == 0;
}

static int
remote_access(sqlite3_vfs *pVfs, const char *zName, int flags, int *pResOut)
{
    if (ends_with(zName, "-journal") || ends_with(zName, "-wal")) {
        *pResOut = 0; /* invariant 4 */
        return SQLITE_OK;
    }
    return ORIG->xAccess(ORIG, zName, flags, pResOut);
}

static int
remote_delete(sqlite3_vfs *pVfs, const char *zName, int syncDir)
{
    return ORIG->xDelete(ORIG, zName, syncDir);
}

static int
remote_full_pathname(sqlite3_vfs *pVfs, const char *zName, int nOut, char *zOut)
{
    return ORIG->xFullPathname(ORIG, zName, nOut, zOut);
}

static void *
remote_dl_open(sqlite3_vfs *pVfs, const char *zPath)
{
    return ORIG->xDlOpen(ORIG, zPath);
}

static void
remote_dl_error(sqlite3_vfs *pVfs, int nByte, char *zErrMsg)
{
    ORIG->xDlError(ORIG, nByte, zErrMsg);
}

static void (*remote_dl_sym(sqlite3_vfs *pVfs, void *p, const char *zSym))(void)
{
    return ORIG->xDlSym(ORIG, p, zSym);
}

static void
remote_dl_close(sqlite3_vfs *pVfs, void *pHandle)
{
    ORIG->xDlClose(ORIG, pHandle);
}

static int
remote_randomness(sqlite3_vfs *pVfs, int nByte, char *zOut)
{
    return ORIG->xRandomness(ORIG, nByte, zOut);
}

static int
remote_sleep(sqlite3_vfs *pVfs, int us)
{
    return ORIG->xSleep(ORIG, us);
}

static int
remote_current_time(sqlite3_vfs *pVfs, double *pOut)
{
    return ORIG->xCurrentTime(ORIG, pOut);
}

static int
remote_get_last_error(sqlite3_vfs *pVfs, int n, char *z)
{
    return ORIG->xGetLastError ? ORIG->xGetLastError(ORIG, n, z) : 0;
}

static int
remote_current_time_int64(sqlite3_vfs *pVfs, sqlite3_int64 *pOut)
{
    return ORIG->xCurrentTimeInt64(ORIG, pOut);
}

static int
remote_set_system_call(sqlite3_vfs *pVfs, const char *zName,
                       sqlite3_syscall_ptr pCall)
{
    return ORIG->xSetSystemCall(ORIG, zName, pCall);
}

static sqlite3_syscall_ptr
remote_get_system_call(sqlite3_vfs *pVfs, const char *zName)
{
    return ORIG->xGetSystemCall(ORIG, zName);
}

static const char *
remote_next_system_call(sqlite3_vfs *pVfs, const char *zName)
{
    return ORIG->xNextSystemCall(ORIG, zName);
}

static sqlite3_vfs remote_vfs = {
    .iVersion = 1,
    .szOsFile = 0, /* set at registration */
    .mxPathname = 1024,
    .zName = REMOTE_VFS_NAME,
    .xOpen = remote_open,
    .xDelete = remote_delete,
    .xAccess = remote_access,
    .xFullPathname = remote_full_pathname,
    .xDlOpen = remote_dl_open,
    .xDlError = remote_dl_error,
    .xDlSym = remote_dl_sym,
    .xDlClose = remote_dl_close,
    .xRandomness = remote_randomness,
    .xSleep = remote_sleep,
    .xCurrentTime = remote_current_time,
    .xGetLastError = remote_get_last_error,
    .xCurrentTimeInt64 = remote_current_time_int64,
    .xSetSystemCall = remote_set_system_call,
    .xGetSystemCall = remote_get_system_call,
    .xNextSystemCall = remote_next_system_call,
};

int
vfs_remote_register(void)
{
    sqlite3_vfs *orig;

    if (sqlite3_vfs_find(REMOTE_VFS_NAME))
        return SQLITE_OK;
    orig = sqlite3_vfs_find(NULL);
    if (orig == NULL)
        return SQLITE_ERROR;
    remote_vfs.pAppData = orig;
    remote_vfs.iVersion = orig->iVersion; /* forward the system calls */
    remote_vfs.mxPathname = orig->mxPathname;
    remote_vfs.szOsFile = orig->szOsFile > (int)sizeof(remote_file)
                              ? orig->szOsFile
                              : (int)sizeof(remote_file);
    return sqlite3_vfs_register(&remote_vfs, 0);
}

int
vfs_is_remote_file(sqlite3_file *f)
{
    return f && f->pMethods == &remote_methods;
}

/* The function vfs_remote_fail_open() runs: fails with the open's error
 * (user data: the failed file). */
static void
open_error_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    remote_file *p = sqlite3_user_data(ctx);
    sqlite3_result_error(ctx, p->zOpenErr ? p->zOpenErr : "", -1);
    sqlite3_result_error_code(ctx, p->rcOpen);
}

int
vfs_remote_fail_open(sqlite3 *db)
{
    static const char zFn[] = "litestream_remote_open_error";
    sqlite3_file *f = NULL;
    sqlite3_stmt *st = NULL;
    remote_file *p;

    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) !=
            SQLITE_OK ||
        !vfs_is_remote_file(f))
        return 0;
    p = (remote_file *)f;
    if (p->r != NULL)
        return 0;
    /* Invariant 5: a statement that reads no schema fails with the message
     * and code; sqlite3_open_v2() then returns them as they are. */
    if (sqlite3_create_function_v2(db, zFn, 0, SQLITE_UTF8 | SQLITE_DIRECTONLY,
                                   p, open_error_fn, NULL, NULL,
                                   NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_prepare_v2(db, "SELECT litestream_remote_open_error()", -1, &st,
                           NULL) == SQLITE_OK)
        sqlite3_step(st);
    sqlite3_finalize(st); /* leaves the error on db */
    sqlite3_create_function_v2(db, zFn, 0, SQLITE_UTF8, NULL, NULL, NULL, NULL,
                               NULL);
    return sqlite3_errcode(db) != SQLITE_OK;
}
