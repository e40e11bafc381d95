/*
 * storage/restore/restore.c: restore a replica into a database file
 * (restore.h).
 *
 * Steps: parse the URL and open the backend; refuse an existing
 * destination (unless overwrite); compute the plan; stream the plan's
 * objects through the fetcher (parallel read-ahead) into one decoder each;
 * merge them newest-page-wins straight into "<path>.tmp" with large
 * pwrites (ltx_merge_expand); check the database checksum against the last
 * object's post-apply checksum (when it has one); truncate it to commit *
 * page size; fsync it while PRAGMA quick_check reads it; rename it over the
 * destination; fsync the directory.
 *
 * Invariants:
 *   1. The destination is only ever replaced by rename(2) of a verified,
 *      fsynced file; on any failure it is untouched and the temporary file
 *      (with any -wal/-shm/-journal SQLite made for it) is removed.
 *   2. Memory is bounded by the fetcher's budget plus the codec's O(page
 *      size) per input: a database of any size restores.
 *   3. Every message names what failed: the object key and the codec's
 *      message for a corrupt object, the path and errno text for the file
 *      system.
 *
 * Threads: the calling thread, plus the fetcher's pool and one fsync
 * thread during the check.
 */
#include "storage/restore/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/base/json.h"
#include "storage/base/timefmt.h"
#include "storage/restore/fetch.h"
#include "storage/restore/v03.h"
#include "storage/ltx/ltx.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"

#define RESTORE_DEFAULT_PARALLEL 8

/* State of one restore_run(). */
typedef struct restore_job {
    const char *zPath;
    char *zTmp;
    ls_url *u;
    backend *b;
    restore_plan plan;
    char **keys;
    fetcher *f;
    ltx_decoder **dec;
    int fd;
    int werr;           /* errno of the first failed write */
    uint64_t unflushed; /* bytes written since writeback was last started */
    int serr;           /* errno of the failed truncate or fsync */
    ltx_header hdr;
    uint64_t cksum;
    int vanished; /* an object of the plan was gone when fetched */
    int v03;      /* a Litestream v0.3 replica was restored (v03.h) */
    v03_result v3;
    char *zErr;
} restore_job;

static int
job_err(restore_job *j, int rc, const char *zFmt, ...)
{
    va_list ap;

    if (j->zErr == NULL) {
        va_start(ap, zFmt);
        j->zErr = sqlite3_vmprintf(zFmt, ap);
        va_end(ap);
    }
    return rc;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ltx_pwrite_fn on j->fd, remembering errno. */
static int
restore_pwrite(void *ctx, const void *buf, size_t n, uint64_t offset)
{
    restore_job *j = ctx;
    const char *p = buf;

    while (n > 0) {
        ssize_t w = pwrite(j->fd, p, n, (off_t)offset);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (j->werr == 0)
                j->werr = errno;
            return 1;
        }
        p += w;
        n -= (size_t)w;
        offset += (uint64_t)w;
        j->unflushed += (uint64_t)w;
    }
    /* Start writing back every 32 MiB, so the final fsync (which the
     * restore waits for) has little left to do. */
    if (j->unflushed >= (32u << 20)) {
        j->unflushed = 0;
        (void)sync_file_range(j->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
    return 0;
}

/* Removes the files SQLite may keep beside zDb. */
static void
remove_sqlite_sidefiles(const char *zDb)
{
    static const char *const suffix[] = {"-wal", "-shm", "-journal"};
    size_t i;

    for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        char *z = sqlite3_mprintf("%s%s", zDb, suffix[i]);
        if (z)
            unlink(z);
        sqlite3_free(z);
    }
}

/* fsyncs the directory holding zPath; 0 or errno. */
static int
fsync_parent(const char *zPath)
{
    const char *zSlash = strrchr(zPath, '/');
    char *zDir;
    int fd, e = 0;

    if (zSlash == NULL)
        zDir = sqlite3_mprintf(".");
    else if (zSlash == zPath)
        zDir = sqlite3_mprintf("/");
    else
        zDir = sqlite3_mprintf("%.*s", (int)(zSlash - zPath), zPath);
    if (zDir == NULL)
        return ENOMEM;
    fd = open(zDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        e = errno;
    if (fd >= 0)
        close(fd);
    sqlite3_free(zDir);
    return e;
}

/* Refuses an existing destination unless overwrite. */
static int
restore_check_dest(restore_job *j, int overwrite)
{
    struct stat st;

    if (j->zPath == NULL || j->zPath[0] == 0)
        return job_err(j, SQLITE_MISUSE,
                       "litestream: restore needs a "
                       "destination path");
    if (stat(j->zPath, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return job_err(j, SQLITE_CANTOPEN,
                           "litestream: restore target "
                           "'%s' is a directory",
                           j->zPath);
        if (!overwrite)
            return job_err(j, SQLITE_CANTOPEN,
                           "litestream: restore target "
                           "'%s' exists; remove it first, or pass 1 as "
                           "litestream_restore's 4th argument (overwrite)",
                           j->zPath);
    } else if (errno != ENOENT) {
        return job_err(j, SQLITE_CANTOPEN,
                       "litestream: cannot check restore "
                       "target '%s': %s",
                       j->zPath, strerror(errno));
    }
    return SQLITE_OK;
}

/* Computes the object keys of the plan and starts fetching them. */
static int
restore_fetch_start(restore_job *j, int parallel)
{
    uint64_t *sizes;
    int i, rc = SQLITE_OK;

    j->keys = sqlite3_malloc64(sizeof(char *) * (size_t)j->plan.n);
    sizes = sqlite3_malloc64(sizeof(uint64_t) * (size_t)j->plan.n);
    if (j->keys == NULL || sizes == NULL) {
        rc = job_err(j, SQLITE_NOMEM, "litestream: out of memory");
        goto out;
    }
    memset(j->keys, 0, sizeof(char *) * (size_t)j->plan.n);
    for (i = 0; i < j->plan.n && rc == SQLITE_OK; i++) {
        const ltx_info *fi = &j->plan.files[i];
        j->keys[i] = sqlite3_malloc64(LAYOUT_KEY_SIZE);
        sizes[i] = fi->size;
        if (j->keys[i] == NULL)
            rc = job_err(j, SQLITE_NOMEM, "litestream: out of memory");
        else
            rc = layout_key(j->b, fi->level, fi->min_txid, fi->max_txid,
                            j->keys[i], LAYOUT_KEY_SIZE);
    }
    if (rc == SQLITE_OK)
        rc = fetch_open(j->u, j->b, (const char *const *)j->keys, sizes,
                        j->plan.n, parallel, &j->f, &j->zErr);
out:
    sqlite3_free(sizes);
    return rc;
}

/*
 * After a codec failure: the message naming the object at fault (fetch
 * error or corrupt object), else the codec's own message.
 */
static int
restore_blame(restore_job *j, int rc, const char *zCodec)
{
    int i;

    for (i = 0; i < j->plan.n; i++) {
        fetch_stream *s = fetch_stream_at(j->f, i);
        const char *zFetch = fetch_stream_err(s);
        if (zFetch) {
            j->vanished = fetch_stream_rc(s) == SQLITE_NOTFOUND;
            return job_err(j, rc == SQLITE_NOMEM ? rc : SQLITE_IOERR, "%s",
                           zFetch);
        }
    }
    for (i = 0; i < j->plan.n; i++) {
        const char *zDec = j->dec[i] ? ltx_decoder_errmsg(j->dec[i]) : "";
        if (zDec && zDec[0])
            return job_err(j, rc, "litestream: corrupt object '%s': %s",
                           j->keys[i], zDec);
    }
    if (j->werr)
        return job_err(j, j->werr == ENOSPC ? SQLITE_FULL : SQLITE_IOERR,
                       "litestream: cannot write '%s': %s", j->zTmp,
                       strerror(j->werr));
    return job_err(j, rc, "litestream: restore of '%s' failed: %s",
                   backend_url(j->b), zCodec && zCodec[0] ? zCodec : "?");
}

/* Opens one decoder per plan object and merges them into j->fd. */
static int
restore_merge(restore_job *j)
{
    char zCodec[512] = "";
    ltx_trailer tr;
    int i, rc = SQLITE_OK;

    j->dec = sqlite3_malloc64(sizeof(ltx_decoder *) * (size_t)j->plan.n);
    if (j->dec == NULL)
        return job_err(j, SQLITE_NOMEM, "litestream: out of memory");
    memset(j->dec, 0, sizeof(ltx_decoder *) * (size_t)j->plan.n);
    for (i = 0; i < j->plan.n && rc == SQLITE_OK; i++)
        rc = ltx_decoder_open(fetch_read, fetch_stream_at(j->f, i), &j->dec[i]);
    if (rc == SQLITE_OK)
        rc = ltx_merge_expand(j->dec, j->plan.n, restore_pwrite, j, &j->hdr,
                              &j->cksum, zCodec, sizeof(zCodec));
    if (rc != SQLITE_OK)
        return restore_blame(j, rc, zCodec);
    rc = ltx_decoder_close(j->dec[j->plan.n - 1], &tr);
    if (rc == SQLITE_OK && tr.post_apply != 0 && tr.post_apply != j->cksum)
        return job_err(j, SQLITE_CORRUPT,
                       "litestream: restored database "
                       "checksum %016llx does not match the post-apply "
                       "checksum %016llx of '%s'",
                       (unsigned long long)j->cksum,
                       (unsigned long long)tr.post_apply,
                       j->keys[j->plan.n - 1]);
    return rc == SQLITE_OK ? SQLITE_OK : restore_blame(j, rc, "");
}

/* Runs PRAGMA quick_check on the temporary file; it must say "ok". */
static int
restore_quick_check(restore_job *j)
{
    const char *zVfs = sqlite3_vfs_find("unix") ? "unix" : NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc;

    remove_sqlite_sidefiles(j->zTmp);
    rc = sqlite3_open_v2(j->zTmp, &db, SQLITE_OPEN_READWRITE, zVfs);
    if (rc == SQLITE_OK) /* read through mmap: no copy per page */
        sqlite3_exec(db, "PRAGMA mmap_size=2147418112", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *z = (const char *)sqlite3_column_text(st, 0);
            rc = z && strcmp(z, "ok") == 0
                     ? SQLITE_OK
                     : job_err(j, SQLITE_CORRUPT,
                               "litestream: restored "
                               "database fails PRAGMA quick_check: %s",
                               z ? z : "(null)");
        }
    }
    if (rc != SQLITE_OK && j->zErr == NULL)
        job_err(j, rc,
                "litestream: cannot check the restored database "
                "'%s': %s",
                j->zTmp, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_sqlite_sidefiles(j->zTmp);
    return rc;
}

/* fsync of the temporary file, run beside the quick_check. */
static void *
restore_fsync(void *arg)
{
    restore_job *j = arg;

    if (fsync(j->fd) != 0)
        j->serr = errno;
    return NULL;
}

/*
 * Truncates the temporary file to its size, then fsyncs it (on a thread of
 * its own) while PRAGMA quick_check reads it, and closes it.  The two
 * overlap: the check reads the page cache while the flush writes the disk.
 */
static int
restore_sync_and_check(restore_job *j)
{
    off_t size = (off_t)j->hdr.commit * (off_t)j->hdr.page_size;
    pthread_t tid;
    int threaded, rc, e;

    if (ftruncate(j->fd, size) != 0)
        j->serr = errno;
    threaded =
        j->serr == 0 && pthread_create(&tid, NULL, restore_fsync, j) == 0;
    if (!threaded && j->serr == 0)
        restore_fsync(j);
    rc = j->serr == 0 ? restore_quick_check(j) : SQLITE_OK;
    if (threaded)
        pthread_join(tid, NULL);
    e = j->serr;
    if (close(j->fd) != 0 && e == 0)
        e = errno;
    j->fd = -1;
    if (e != 0) {
        sqlite3_free(j->zErr); /* a write failure explains any check error */
        j->zErr = NULL;
        return job_err(j, e == ENOSPC ? SQLITE_FULL : SQLITE_IOERR,
                       "litestream: cannot write '%s': %s", j->zTmp,
                       strerror(e));
    }
    return rc;
}

/* Renames the verified file into place and fsyncs the directory. */
static int
restore_install(restore_job *j)
{
    int e;

    remove_sqlite_sidefiles(j->zPath);
    if (rename(j->zTmp, j->zPath) != 0)
        return job_err(j, SQLITE_IOERR,
                       "litestream: cannot rename '%s' to "
                       "'%s': %s",
                       j->zTmp, j->zPath, strerror(errno));
    e = fsync_parent(j->zPath);
    if (e != 0)
        return job_err(j, SQLITE_IOERR,
                       "litestream: cannot fsync the "
                       "directory of '%s': %s",
                       j->zPath, strerror(e));
    return SQLITE_OK;
}

/* The summary of a v0.3 restore (docs/sql.md): no TXID or checksum, the
 * generation and WAL position instead. */
static char *
restore_json_v03(const restore_job *j, int64_t elapsed)
{
    char pos[32], at[40];
    json_t *o = json_object();
    char *z;
    int bad = 0;

    snprintf(pos, sizeof(pos), "%08x/%08llx", j->v3.index,
             (unsigned long long)j->v3.offset);
    ls_json_set(o, "path", ls_json_text(j->zPath), &bad);
    ls_json_set(o, "format", json_string("litestream-v0.3"), &bad);
    ls_json_set(o, "generation", json_string(j->v3.gen), &bad);
    ls_json_set(o, "position", json_string(pos), &bad);
    ls_json_set(o, "created",
                json_string(timefmt_time(j->v3.created_ms, at, sizeof(at))),
                &bad);
    ls_json_set(o, "files", json_integer(j->v3.files), &bad);
    ls_json_set(o, "pages", json_integer(j->v3.pages), &bad);
    ls_json_set(o, "page_size", json_integer(j->v3.page_size), &bad);
    ls_json_set(o, "size", ls_json_u64((uint64_t)j->v3.pages * j->v3.page_size),
                &bad);
    ls_json_set(o, "elapsed_ms", json_integer(elapsed), &bad);
    z = bad ? NULL : ls_json_dump(o);
    json_decref(o);
    return z;
}

/* The summary litestream_restore() returns (docs/sql.md), sqlite3_malloc'd;
 * NULL when out of memory. */
static char *
restore_json(const restore_job *j, int64_t elapsed)
{
    char txid[17], cksum[17];
    json_t *o = json_object();
    char *z;
    int bad = 0;

    if (j->v03)
        return restore_json_v03(j, elapsed);
    snprintf(txid, sizeof(txid), "%016llx", (unsigned long long)j->plan.txid);
    snprintf(cksum, sizeof(cksum), "%016llx", (unsigned long long)j->cksum);
    ls_json_set(o, "path", ls_json_text(j->zPath), &bad);
    ls_json_set(o, "txid", json_string(txid), &bad);
    ls_json_set(o, "files", json_integer(j->plan.n), &bad);
    ls_json_set(o, "pages", json_integer(j->hdr.commit), &bad);
    ls_json_set(o, "page_size", json_integer(j->hdr.page_size), &bad);
    ls_json_set(o, "size",
                ls_json_u64((uint64_t)j->hdr.commit * j->hdr.page_size), &bad);
    ls_json_set(o, "checksum", json_string(cksum), &bad);
    ls_json_set(o, "elapsed_ms", json_integer(elapsed), &bad);
    z = bad ? NULL : ls_json_dump(o);
    json_decref(o);
    return z;
}

/* The steps after the destination check, up to a verified .tmp. */
static int
restore_build(restore_job *j, const restore_opts *o)
{
    int parallel = o->parallel > 0 ? o->parallel : RESTORE_DEFAULT_PARALLEL;
    int rc;

    rc = restore_plan_make(j->b, o->target_txid, o->target_ms, &j->plan,
                           &j->zErr);
    if (rc == SQLITE_NOTFOUND) /* no LTX file: a Litestream v0.3 replica? */
        v03_detect(j->b, &j->v03);
    if (rc == SQLITE_OK)
        rc = restore_fetch_start(j, parallel);
    else if (j->v03) {
        sqlite3_free(j->zErr);
        j->zErr = NULL;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return rc;
    unlink(j->zTmp);
    remove_sqlite_sidefiles(j->zTmp);
    j->fd = open(j->zTmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (j->fd < 0)
        return job_err(j, errno == ENOSPC ? SQLITE_FULL : SQLITE_CANTOPEN,
                       "litestream: cannot create '%s': %s", j->zTmp,
                       strerror(errno));
    if (j->v03) {
        rc = v03_restore(j->u, j->b, j->fd, j->zTmp, o->target_txid,
                         o->target_ms, parallel, &j->v3, &j->zErr);
        j->hdr.commit = j->v3.pages;
        j->hdr.page_size = j->v3.page_size;
        return rc == SQLITE_OK ? restore_sync_and_check(j) : rc;
    }
    rc = restore_merge(j);
    if (rc == SQLITE_OK)
        rc = restore_sync_and_check(j);
    return rc;
}

/*
 * Forgets one attempt of restore_build(): its plan, streams, decoders,
 * output and message, keeping the URL, backend and paths.
 */
static void
restore_reset(restore_job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    unlink(j->zTmp);
    remove_sqlite_sidefiles(j->zTmp);
    for (int i = 0; j->dec && i < j->plan.n; i++)
        ltx_decoder_free(j->dec[i]);
    sqlite3_free(j->dec);
    j->dec = NULL;
    fetch_close(j->f);
    j->f = NULL;
    for (int i = 0; j->keys && i < j->plan.n; i++)
        sqlite3_free(j->keys[i]);
    sqlite3_free(j->keys);
    j->keys = NULL;
    restore_plan_free(&j->plan);
    memset(&j->plan, 0, sizeof(j->plan));
    sqlite3_free(j->zErr);
    j->zErr = NULL;
    j->werr = j->serr = j->vanished = j->v03 = 0;
    j->unflushed = 0;
    j->cksum = 0;
}

/* Frees everything of j but zErr; removes the temporary file if tmpMade. */
static void
restore_job_free(restore_job *j, int tmpMade)
{
    int i;

    if (j->fd >= 0)
        close(j->fd);
    if (tmpMade && j->zTmp) {
        unlink(j->zTmp);
        remove_sqlite_sidefiles(j->zTmp);
    }
    for (i = 0; j->dec && i < j->plan.n; i++)
        ltx_decoder_free(j->dec[i]);
    sqlite3_free(j->dec);
    fetch_close(j->f);
    for (i = 0; j->keys && i < j->plan.n; i++)
        sqlite3_free(j->keys[i]);
    sqlite3_free(j->keys);
    restore_plan_free(&j->plan);
    backend_close(j->b);
    url_free(j->u);
    sqlite3_free(j->zTmp);
}

int
restore_run(const char *zUrl, const char *zPath, const restore_opts *opts,
            char **pzJson, char **pzErr)
{
    static const restore_opts dflt = {0, 0, 0, RESTORE_DEFAULT_PARALLEL};
    int64_t t0 = now_ms();
    restore_job j;
    int rc, tmpMade = 0;

    memset(&j, 0, sizeof(j));
    j.fd = -1;
    j.zPath = zPath;
    *pzJson = NULL;
    if (pzErr)
        *pzErr = NULL;
    if (opts == NULL)
        opts = &dflt;
    rc = restore_check_dest(&j, opts->overwrite);
    if (rc == SQLITE_OK)
        rc = url_parse(zUrl, &j.u, &j.zErr);
    if (rc == SQLITE_OK)
        rc = backend_open_url(j.u, &j.b, &j.zErr);
    if (rc == SQLITE_OK) {
        j.zTmp = sqlite3_mprintf("%s.tmp", zPath);
        rc = j.zTmp ? SQLITE_OK
                    : job_err(&j, SQLITE_NOMEM, "litestream: out of memory");
    }
    if (rc == SQLITE_OK) {
        tmpMade = 1;
        rc = restore_build(&j, opts);
        /* An object of the plan vanished while it was read (compaction or
         * retention moved on): plan again from a new listing. */
        for (int tries = 1; rc != SQLITE_OK && j.vanished && tries < 4;
             tries++) {
            restore_reset(&j);
            rc = restore_build(&j, opts);
        }
    }
    if (rc == SQLITE_OK)
        rc = restore_install(&j);
    if (rc == SQLITE_OK) {
        tmpMade = 0;
        *pzJson = restore_json(&j, now_ms() - t0);
        if (*pzJson == NULL)
            rc = job_err(&j, SQLITE_NOMEM, "litestream: out of memory");
    }
    restore_job_free(&j, tmpMade);
    if (rc != SQLITE_OK && j.zErr == NULL)
        j.zErr = sqlite3_mprintf("litestream: restore failed: %s",
                                 sqlite3_errstr(rc));
    if (pzErr)
        *pzErr = j.zErr;
    else
        sqlite3_free(j.zErr);
    return rc;
}
