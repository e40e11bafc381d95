/*
 * storage/reader/hydrate.c: the hydrator's thread and file (hydrate.h).
 *
 * An order runs as: (full: truncate, then reserve the whole size with
 * posix_fallocate so a full disk shows at once) -> for each object, its
 * frames in ranges of at most HYD_RANGE bytes, one GET each, decoded and
 * written -> set the file size -> fdatasync -> (verify: read the file back
 * and compare its database checksum) -> write "<file>.meta" (temporary
 * name, fsync, rename) -> publish F.
 *
 * The meta file holds one JSON object:
 *   {"url":"s3://bucket/app","txid":"000000000000002a","page_size":4096,
 *    "pages":1058,"checksum":"8f3e..."}
 *
 * Threads: see hydrate.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/base/fsutil.h"
#include "storage/base/json.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"
#include "storage/ltx/ltx.h"
#include "storage/reader/hydrate.h"

#define HYD_RETRY_MAX_MS 60000

struct hydrator {
    const ls_url *u; /* the reader's (outlives the hydrator) */
    char *zUrl;      /* redacted, for the meta file */
    char *zPath;     /* NULL: anonymous */
    char *zMeta;     /* "<zPath>.meta" */
    int fd;          /* -1: none (failed) */
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: */
    hyd_order *order; /* submitted or running */
    int stop;
    int result, nretry;
    int64_t retry_ms; /* HYD_RETRY: wait this long */
    int state, write_failed;
    char zErr[512];
    uint64_t orders;
    backend_counters c;
    /* Atomics: */
    uint64_t file_txid;
    uint64_t done, total;
    /* The reader's thread only: */
    int meta_ok;
    hyd_meta meta;
};

void
hydrator_order_free(hyd_order *o)
{
    if (o == NULL)
        return;
    sqlite3_free(o->keys);
    sqlite3_free(o->key_max);
    sqlite3_free(o->pages);
    sqlite3_free(o);
}

/* Records a failure for good (invariant 3); under mu. */
static void
fail_locked(hydrator *h, const char *zFmt, const char *zArg, int err)
{
    char zWhat[384];
    snprintf(zWhat, sizeof(zWhat), zFmt, zArg);
    snprintf(h->zErr, sizeof(h->zErr),
             "litestream-remote: hydration stopped: %s: %s; reads continue "
             "from the replica",
             zWhat, strerror(err));
    h->state = HYD_FAILED;
    h->result = HYD_STOPPED;
    __atomic_store_n(&h->file_txid, 0, __ATOMIC_RELEASE);
    sqlite3_log(SQLITE_CANTOPEN, "%s", h->zErr);
}

static void
fail(hydrator *h, const char *zFmt, const char *zArg, int err)
{
    pthread_mutex_lock(&h->mu);
    fail_locked(h, zFmt, zArg, err);
    pthread_mutex_unlock(&h->mu);
}

/* ---- the meta file ------------------------------------------------------ */

/* Reads "<path>.meta" into h->meta when it names this replica and the
 * file has the size it records. */
static void
meta_load(hydrator *h)
{
    int fd = open(h->zMeta, O_RDONLY | O_CLOEXEC);
    char *z = NULL;
    size_t n = 0;
    struct stat st;

    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0 &&
        st.st_size <= (1 << 16) && (z = sqlite3_malloc64(st.st_size)) &&
        fs_pread_all(fd, z, (size_t)st.st_size, 0) == 0)
        n = (size_t)st.st_size;
    if (fd >= 0)
        close(fd);
    h->meta_ok =
        n && hydrator_meta_parse(z, n, h->zUrl, &h->meta) &&
        fstat(h->fd, &st) == 0 &&
        (uint64_t)st.st_size == (uint64_t)h->meta.page_size * h->meta.npages;
    sqlite3_free(z);
}

/* Writes the meta of order o, atomically; 0 or errno. */
static int
meta_write(hydrator *h, const hyd_order *o)
{
    char *zTmp = sqlite3_mprintf("%s.tmp", h->zMeta);
    char zTx[17], zCk[17];
    json_t *j = json_object();
    char *z;
    int bad = 0, fd, err = 0;

    snprintf(zTx, sizeof(zTx), "%016llx", (unsigned long long)o->txid);
    snprintf(zCk, sizeof(zCk), "%016llx", (unsigned long long)o->checksum);
    ls_json_set(j, "url", ls_json_text(h->zUrl), &bad);
    ls_json_set(j, "txid", ls_json_text(zTx), &bad);
    ls_json_set(j, "page_size", ls_json_u64(o->page_size), &bad);
    ls_json_set(j, "pages", ls_json_u64(o->npages), &bad);
    ls_json_set(j, "checksum", ls_json_text(zCk), &bad);
    z = bad ? NULL : ls_json_dump(j);
    json_decref(j);
    if (z == NULL || zTmp == NULL) {
        err = ENOMEM;
        goto out;
    }
    fd = open(zTmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = errno;
        goto out;
    }
    err = fs_write_all(fd, z, strlen(z));
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    close(fd);
    if (err == 0 && rename(zTmp, h->zMeta) != 0)
        err = errno;
    if (err)
        unlink(zTmp);
out:
    sqlite3_free(z);
    sqlite3_free(zTmp);
    return err;
}

/* ---- running an order --------------------------------------------------- */

static int
stopping(hydrator *h)
{
    pthread_mutex_lock(&h->mu);
    int s = h->stop;
    pthread_mutex_unlock(&h->mu);
    return s;
}

/* A fetch failed: abandon the order (invariant 3). */
static int
fetch_failed(hydrator *h, int rc, const char *key, backend *b)
{
    pthread_mutex_lock(&h->mu);
    if (rc == SQLITE_NOTFOUND) {
        h->result = HYD_VANISHED;
    } else {
        int64_t wait = 1000ll << (h->nretry < 6 ? h->nretry : 6);
        h->result = HYD_RETRY;
        h->nretry++;
        h->retry_ms = wait < HYD_RETRY_MAX_MS ? wait : HYD_RETRY_MAX_MS;
    }
    pthread_mutex_unlock(&h->mu);
    sqlite3_log(rc,
                "litestream-remote: hydration: cannot read '%s' from "
                "'%s': %s (will try again)",
                key, backend_url(b), backend_why(b));
    return rc;
}

/* Fetches pages [i, j) of o (one object, one range) and writes them.
 * page: a page_size buffer. */
static int
run_range(hydrator *h, backend *b, const hyd_order *o, uint32_t i, uint32_t j,
          uint8_t *page)
{
    const hyd_page *p = o->pages;
    const char *key = o->keys[p[i].obj];
    uint64_t start = p[i].offset, end = p[j - 1].offset + p[j - 1].size;
    uint8_t *buf = NULL;
    size_t n = 0;
    char zLtx[256];
    int rc = backend_get(b, key, start, end - start, &buf, &n);

    if (rc == SQLITE_OK && n != end - start)
        rc = SQLITE_NOTFOUND; /* replaced meanwhile */
    if (rc != SQLITE_OK) {
        sqlite3_free(buf);
        return fetch_failed(h, rc, key, b);
    }
    for (uint32_t k = i; k < j && rc == SQLITE_OK; k++) {
        rc =
            ltx_frame_decode(buf + (p[k].offset - start), p[k].size,
                             o->page_size, p[k].pgno, page, zLtx, sizeof(zLtx));
        if (rc != SQLITE_OK) {
            /* Not what was listed (replaced): like a vanished object. */
            sqlite3_log(rc, "litestream-remote: hydration: '%s': %s", key,
                        zLtx);
            pthread_mutex_lock(&h->mu);
            h->result = HYD_VANISHED;
            pthread_mutex_unlock(&h->mu);
            break;
        }
        int err = fs_pwrite_all(h->fd, page, o->page_size,
                                (uint64_t)(p[k].pgno - 1) * o->page_size);
        if (err) {
            h->write_failed = 1;
            fail(h, "cannot write the hydration file '%s'",
                 h->zPath ? h->zPath : "(temporary)", err);
            rc = SQLITE_IOERR;
            break;
        }
        __atomic_add_fetch(&h->done, 1, __ATOMIC_RELAXED);
    }
    sqlite3_free(buf);
    return rc;
}

/* Every frame of the order, in ranges of one object up to HYD_RANGE. */
static int
run_frames(hydrator *h, backend *b, const hyd_order *o)
{
    uint8_t *page = sqlite3_malloc64(o->page_size);
    uint32_t i = 0;
    int rc = page ? SQLITE_OK : SQLITE_NOMEM;

    while (i < o->n && rc == SQLITE_OK) {
        uint32_t j = i + 1;
        if (o->since && o->key_max[o->pages[i].obj] <= o->since) {
            i++; /* unchanged since the file's TXID */
            continue;
        }
        while (j < o->n && o->pages[j].obj == o->pages[i].obj &&
               o->pages[j].offset + o->pages[j].size - o->pages[i].offset <=
                   HYD_RANGE)
            j++;
        if (stopping(h))
            rc = SQLITE_INTERRUPT;
        else
            rc = run_range(h, b, o, i, j, page);
        i = j;
    }
    sqlite3_free(page);
    return rc;
}

/* The database checksum of the file's npages pages: 0 and *c, or errno. */
static int
file_checksum(hydrator *h, const hyd_order *o, uint64_t *c)
{
    uint32_t ps = o->page_size, lock = ltx_lock_pgno(ps), per = (1u << 20) / ps;
    uint8_t *buf = sqlite3_malloc64((uint64_t)ps * (per ? per : 1));
    int err = buf ? 0 : ENOMEM;

    per = per ? per : 1;
    *c = LTX_CHECKSUM_FLAG;
    for (uint32_t pg = 1; pg <= o->npages && err == 0; pg += per) {
        uint32_t k = o->npages - pg + 1 < per ? o->npages - pg + 1 : per;
        err = fs_pread_all(h->fd, buf, (size_t)k * ps, (uint64_t)(pg - 1) * ps);
        for (uint32_t q = 0; q < k && err == 0; q++)
            if (pg + q != lock)
                *c = ltx_checksum_fold(
                    *c, ltx_page_checksum(pg + q, buf + (size_t)q * ps, ps));
    }
    sqlite3_free(buf);
    return err;
}

/* After the frames: size, fsync, verify, meta, publish. */
static int
run_finish(hydrator *h, const hyd_order *o)
{
    const char *zP = h->zPath ? h->zPath : "(temporary)";
    uint64_t c = 0;
    int err = 0;

    if (ftruncate(h->fd, (off_t)o->page_size * o->npages) != 0 ||
        fdatasync(h->fd) != 0)
        err = errno;
    if (err) {
        h->write_failed = 1;
        fail(h, "cannot write the hydration file '%s'", zP, err);
        return SQLITE_IOERR;
    }
    if (o->verify && o->checksum && (err = file_checksum(h, o, &c)) != 0) {
        fail(h, "cannot read the hydration file '%s' back", zP, err);
        return SQLITE_IOERR;
    }
    if (o->verify && o->checksum && c != o->checksum) {
        sqlite3_log(SQLITE_CORRUPT,
                    "litestream-remote: hydration file '%s' does not match "
                    "the replica at TXID %016llx (checksum %016llx, "
                    "expected %016llx)%s",
                    zP, (unsigned long long)o->txid, (unsigned long long)c,
                    (unsigned long long)o->checksum,
                    o->since ? ": rewriting it" : "");
        pthread_mutex_lock(&h->mu);
        if (!o->since) {
            snprintf(h->zErr, sizeof(h->zErr),
                     "litestream-remote: hydration stopped: the copy of TXID "
                     "%016llx has checksum %016llx, the replica says %016llx; "
                     "reads continue from the replica",
                     (unsigned long long)o->txid, (unsigned long long)c,
                     (unsigned long long)o->checksum);
            h->state = HYD_FAILED;
            h->result = HYD_STOPPED;
        }
        pthread_mutex_unlock(&h->mu);
        return SQLITE_CORRUPT;
    }
    if (h->zPath && (err = meta_write(h, o)) != 0) {
        fail(h, "cannot write '%s'", h->zMeta, err);
        return SQLITE_IOERR;
    }
    __atomic_store_n(&h->file_txid, o->txid, __ATOMIC_RELEASE);
    return SQLITE_OK;
}

/* Runs order o once; SQLITE_CORRUPT: the check found the file differs. */
static int
run_pass(hydrator *h, backend *b, const hyd_order *o)
{
    const char *zP = h->zPath ? h->zPath : "(temporary)";
    int rc = SQLITE_OK, err;

    __atomic_store_n(&h->total, o->npages, __ATOMIC_RELAXED);
    __atomic_store_n(&h->done, o->npages - (o->since ? o->nwrite : o->npages),
                     __ATOMIC_RELAXED);
    if (!o->since) {
        if (h->zPath)
            unlink(h->zMeta);
        if (ftruncate(h->fd, 0) != 0) {
            err = errno;
        } else {
            err = posix_fallocate(h->fd, 0, (off_t)o->page_size * o->npages);
            if (err == EINVAL || err == EOPNOTSUPP)
                err = 0; /* not supported here: the writes will tell */
        }
        if (err) {
            h->write_failed = 1;
            fail(h, "cannot make room for the hydration file '%s'", zP, err);
            rc = SQLITE_FULL;
        }
    }
    if (rc == SQLITE_OK)
        rc = run_frames(h, b, o);
    if (rc == SQLITE_OK)
        rc = run_finish(h, o);
    return rc;
}

/* Runs order o (and, when a resumed file fails the check, again as a full
 * rewrite); the outcome goes to h->result and h->state. */
static void
run_order(hydrator *h, backend *b, hyd_order *o)
{
    int rc = run_pass(h, b, o);

    if (rc == SQLITE_CORRUPT && o->since && o->verify) {
        pthread_mutex_lock(&h->mu);
        h->state = HYD_RESTORING;
        pthread_mutex_unlock(&h->mu);
        o->since = 0;
        rc = run_pass(h, b, o);
    }
    pthread_mutex_lock(&h->mu);
    if (rc != SQLITE_OK && h->result == HYD_RUNNING) { /* e.g. NOMEM */
        h->result = HYD_RETRY;
        h->retry_ms = 1000;
    }
    if (rc == SQLITE_OK) {
        h->result = HYD_DONE;
        h->state = HYD_COMPLETE;
        h->nretry = 0;
        h->orders++;
        __atomic_store_n(&h->done, o->npages, __ATOMIC_RELAXED);
    }
    h->c = *backend_get_counters(b);
    h->order = NULL; /* the reader may submit the next one */
    pthread_mutex_unlock(&h->mu);
}

static void *
hyd_thread(void *arg)
{
    hydrator *h = arg;
    backend *b = NULL;
    char *zErr = NULL;
    int rc = backend_open_url(h->u, &b, &zErr);

    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (!h->stop && (h->order == NULL || h->result != HYD_RUNNING))
            pthread_cond_wait(&h->cv, &h->mu);
        hyd_order *o = h->stop ? NULL : h->order;
        pthread_mutex_unlock(&h->mu);
        if (o == NULL)
            break;
        if (rc == SQLITE_OK) {
            run_order(h, b, o);
        } else {
            pthread_mutex_lock(&h->mu);
            snprintf(h->zErr, sizeof(h->zErr),
                     "litestream-remote: hydration stopped: %s",
                     zErr ? zErr : "cannot open the replica");
            h->state = HYD_FAILED;
            h->result = HYD_STOPPED;
            h->order = NULL;
            pthread_mutex_unlock(&h->mu);
        }
        hydrator_order_free(o); /* run_order took it off h->order */
    }
    sqlite3_free(zErr);
    backend_close(b);
    return NULL;
}

/* ---- the reader's side -------------------------------------------------- */

/* Opens (or creates) the file and locks it (invariant 4); 0 or errno with
 * *zWhat saying which step. */
static int
file_open(hydrator *h, const char **zWhat)
{
    struct stat st;

    if (h->zPath == NULL) {
        const char *zDir = getenv("TMPDIR");
        char *zT = sqlite3_mprintf("%s/litestream-hydrate-XXXXXX",
                                   zDir && *zDir ? zDir : "/tmp");
        *zWhat = "cannot create a temporary hydration file in '%s'";
        if (zT == NULL)
            return ENOMEM;
        h->fd = mkostemp(zT, O_CLOEXEC);
        int err = h->fd < 0 ? errno : 0;
        if (h->fd >= 0)
            unlink(zT); /* anonymous: gone with the last descriptor */
        sqlite3_free(zT);
        return err;
    }
    *zWhat = "cannot open the hydration file '%s'";
    h->fd = open(h->zPath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (h->fd < 0)
        return errno;
    if (fstat(h->fd, &st) != 0)
        return errno;
    if (!S_ISREG(st.st_mode)) {
        *zWhat = "the hydration path '%s' is not a regular file";
        return EINVAL;
    }
    if (flock(h->fd, LOCK_EX | LOCK_NB) != 0) {
        *zWhat = "the hydration file '%s' is in use by another connection "
                 "(give each its own hydration_path)";
        return errno;
    }
    return 0;
}

int
hydrator_open(const ls_url *u, const char *zRedacted, const char *zPath,
              hydrator **out)
{
    hydrator *h = sqlite3_malloc64(sizeof(*h));
    const char *zWhat = NULL;
    int err;

    *out = NULL;
    if (h == NULL)
        return SQLITE_NOMEM;
    memset(h, 0, sizeof(*h));
    h->u = u;
    h->fd = -1;
    h->zUrl = sqlite3_mprintf("%s", zRedacted);
    h->zPath = zPath ? sqlite3_mprintf("%s", zPath) : NULL;
    h->zMeta = zPath ? sqlite3_mprintf("%s.meta", zPath) : NULL;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (h->zUrl == NULL || (zPath && (h->zPath == NULL || h->zMeta == NULL))) {
        hydrator_close(h);
        return SQLITE_NOMEM;
    }
    err = file_open(h, &zWhat);
    if (err) {
        if (h->fd >= 0)
            close(h->fd);
        h->fd = -1;
        const char *zDir = getenv("TMPDIR");
        fail(h, zWhat, zPath ? zPath : zDir && *zDir ? zDir : "/tmp", err);
    } else if (zPath) {
        meta_load(h);
    }
    if (h->fd >= 0 && pthread_create(&h->th, NULL, hyd_thread, h) == 0)
        h->started = 1;
    else if (h->fd >= 0)
        fail(h, "cannot start the hydration thread for '%s'",
             zPath ? zPath : "(temporary)", EAGAIN);
    *out = h;
    return SQLITE_OK;
}

void
hydrator_close(hydrator *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->started)
        pthread_join(h->th, NULL);
    hydrator_order_free(h->order);
    if (h->fd >= 0) {
        if (h->write_failed) { /* give the space back (disk full) */
            if (ftruncate(h->fd, 0) != 0)
                sqlite3_log(SQLITE_IOERR, "litestream-remote: cannot empty "
                                          "the hydration file");
            if (h->zMeta)
                unlink(h->zMeta);
        }
        close(h->fd);
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    sqlite3_free(h->zUrl);
    sqlite3_free(h->zPath);
    sqlite3_free(h->zMeta);
    sqlite3_free(h);
}

int
hydrator_meta(hydrator *h, hyd_meta *m)
{
    int ok = h->meta_ok;
    h->meta_ok = 0;
    if (ok)
        *m = h->meta;
    return ok;
}

int
hydrator_submit(hydrator *h, hyd_order *o)
{
    int rc = SQLITE_OK;

    pthread_mutex_lock(&h->mu);
    if (h->state == HYD_FAILED || !h->started)
        rc = SQLITE_MISUSE;
    else if (h->order)
        rc = SQLITE_BUSY;
    if (rc == SQLITE_OK) {
        h->order = o;
        h->result = HYD_RUNNING;
        h->state = o->since ? HYD_CATCHING_UP : HYD_RESTORING;
        __atomic_store_n(&h->total, o->npages, __ATOMIC_RELAXED);
        __atomic_store_n(&h->done,
                         o->npages - (o->since ? o->nwrite : o->npages),
                         __ATOMIC_RELAXED);
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    if (rc != SQLITE_OK)
        hydrator_order_free(o);
    return rc;
}

int
hydrator_result(hydrator *h, int64_t *retry_ms)
{
    pthread_mutex_lock(&h->mu);
    int r = h->result;
    *retry_ms = h->retry_ms;
    if (r == HYD_VANISHED || r == HYD_RETRY)
        h->result = HYD_DONE;
    pthread_mutex_unlock(&h->mu);
    return r;
}

uint64_t
hydrator_file_txid(hydrator *h)
{
    return __atomic_load_n(&h->file_txid, __ATOMIC_ACQUIRE);
}

void
hydrator_invalidate(hydrator *h)
{
    __atomic_store_n(&h->file_txid, 0, __ATOMIC_RELEASE);
}

int
hydrator_read(hydrator *h, uint32_t pgno, uint32_t page_size, void *buf)
{
    return fs_pread_all(h->fd, buf, page_size,
                        (uint64_t)(pgno - 1) * page_size) == 0
               ? 0
               : -1;
}

const char *
hydrator_path(const hydrator *h)
{
    return h->zPath;
}

void
hydrator_status(hydrator *h, hyd_status *out)
{
    memset(out, 0, sizeof(*out));
    out->file_txid = hydrator_file_txid(h);
    out->pages_done = __atomic_load_n(&h->done, __ATOMIC_RELAXED);
    out->pages_total = __atomic_load_n(&h->total, __ATOMIC_RELAXED);
    pthread_mutex_lock(&h->mu);
    out->state = h->state;
    out->n_get = h->c.n_get;
    out->bytes_down = h->c.bytes_down;
    out->orders = h->orders;
    memcpy(out->zErr, h->zErr, sizeof(out->zErr));
    pthread_mutex_unlock(&h->mu);
}

double
hydrator_progress(const hyd_status *s, uint64_t txid)
{
    double f;
    if (s->state == HYD_COMPLETE && s->file_txid && s->file_txid == txid)
        return 1.0;
    if (s->pages_total == 0)
        return 0.0;
    f = (double)s->pages_done / (double)s->pages_total;
    return f < 0.999 ? f : 0.999;
}
