/*
 * storage/history/levels.c: merging a run of objects into the next level, and
 * the verification every compactor output passes before it is uploaded
 * (levels.h, docs/ltx-format.md 1.12 and 2.2).
 *
 * Invariants:
 *   1. Inputs are streamed through the fetcher (2 MiB range reads on the
 *      caller's handle), so memory stays O(page size) whatever their size.
 *   2. The output is a local temporary file; it is decoded in full again
 *      (compact_verify) and only then put, so the replica never holds an
 *      object that does not verify; the file is gone afterwards whatever
 *      the outcome.
 *
 * Threads: the compactor thread.
 */
#include "storage/history/levels.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/restore/fetch.h"
#include "storage/ltx/ltx.h"
#include "storage/base/sqlite.h"
#include "storage/base/killpoint.h"

int
compact_out_write(void *ctx, const void *buf, size_t n)
{
    compact_out *w = ctx;
    if (w->cancel && __atomic_load_n(w->cancel, __ATOMIC_RELAXED))
        return 1;
    return ltx_fd_write(&w->fd, buf, n);
}

int
compact_pick_run(const ltx_info *a, int n, int level, int64_t bnd, int *first)
{
    const ltx_info *dst = NULL;
    int count = 0;

    *first = -1;
    for (int i = 0; i < n; i++)
        if (a[i].level == level && (!dst || a[i].max_txid >= dst->max_txid))
            dst = &a[i];
    if (dst && dst->created_ms >= bnd)
        return 0; /* too early: done since the boundary */
    for (int i = 0; i < n; i++) {
        const ltx_info *f = &a[i], *prev;
        if (f->level != level - 1 || (dst && f->min_txid <= dst->max_txid))
            continue;
        if (count == 0) {
            *first = i;
            count = 1;
            continue;
        }
        prev = &a[*first + count - 1];
        if (i != *first + count || f->min_txid > prev->max_txid + 1 ||
            f->max_txid <= prev->max_txid)
            break;
        count++;
    }
    return count;
}

int
compact_verify(const char *zPath, uint64_t min, uint64_t max, uint64_t post,
               char **pzErr)
{
    int fd = open(zPath, O_RDONLY | O_CLOEXEC);
    ltx_decoder *dec = NULL;
    ltx_trailer tr;
    uint8_t *page = NULL;
    uint32_t pgno;
    int rc;

    if (fd < 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot open '%s': %s", zPath,
                                 strerror(errno));
        return SQLITE_IOERR;
    }
    rc = ltx_decoder_open(ltx_fd_read, &fd, &dec);
    if (rc == SQLITE_OK) {
        const ltx_header *h = ltx_decoder_header(dec);
        page = sqlite3_malloc64(h->page_size);
        if (page == NULL)
            rc = SQLITE_NOMEM;
        else if (h->min_txid != min || h->max_txid != max)
            rc = SQLITE_CORRUPT;
    }
    while (rc == SQLITE_OK)
        rc = ltx_decoder_page(dec, &pgno, page);
    if (rc == SQLITE_DONE)
        rc = ltx_decoder_close(dec, &tr);
    if (rc == SQLITE_OK && post != 0 && tr.post_apply != post)
        rc = SQLITE_CORRUPT;
    if (rc != SQLITE_OK)
        *pzErr =
            sqlite3_mprintf("litestream: compaction output %016llx-"
                            "%016llx does not verify: %s",
                            (unsigned long long)min, (unsigned long long)max,
                            dec && ltx_decoder_errmsg(dec)[0]
                                ? ltx_decoder_errmsg(dec)
                                : "wrong TXIDs or post-apply checksum");
    sqlite3_free(page);
    ltx_decoder_free(dec);
    close(fd);
    return rc;
}

/* Keys of the inputs (sqlite3_free each and the array). */
static int
merge_keys(backend *b, const ltx_info *in, int n, char ***pKeys,
           uint64_t **pSizes)
{
    char **keys = sqlite3_malloc64(sizeof(char *) * (size_t)n);
    uint64_t *sizes = sqlite3_malloc64(sizeof(uint64_t) * (size_t)n);
    int rc = keys && sizes ? SQLITE_OK : SQLITE_NOMEM;

    if (keys)
        memset(keys, 0, sizeof(char *) * (size_t)n);
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        keys[i] = sqlite3_malloc64(LAYOUT_KEY_SIZE);
        sizes[i] = in[i].size;
        rc = keys[i] ? layout_key(b, in[i].level, in[i].min_txid,
                                  in[i].max_txid, keys[i], LAYOUT_KEY_SIZE)
                     : SQLITE_NOMEM;
    }
    *pKeys = keys;
    *pSizes = sizes;
    return rc;
}

/* Blames the input whose fetch or decode failed, else the codec. */
static char *
merge_blame(fetcher *f, ltx_decoder **dec, char **keys, int n,
            const char *zCodec)
{
    for (int i = 0; f && i < n; i++) {
        const char *z = fetch_stream_err(fetch_stream_at(f, i));
        if (z)
            return sqlite3_mprintf("%s", z);
    }
    for (int i = 0; i < n; i++)
        if (dec[i] && ltx_decoder_errmsg(dec[i])[0])
            return sqlite3_mprintf("litestream: compaction input '%s' is "
                                   "corrupt: %s",
                                   keys[i], ltx_decoder_errmsg(dec[i]));
    return sqlite3_mprintf("litestream: compaction failed: %s",
                           zCodec[0] ? zCodec : "?");
}

/* Verifies the temporary file and puts it; the file is consumed. */
static int
merge_publish(backend *b, const char *zTmp, int fd, const ltx_header *oh,
              const ltx_trailer *ot, int level, ltx_info *out, char **pzErr)
{
    char key[LAYOUT_KEY_SIZE];
    struct stat st;
    int rc;

    /* No fsync here: the file is scratch; the backend makes the object
     * durable (the file backend fsyncs before its rename). */
    if (fstat(fd, &st) != 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot write '%s': %s", zTmp,
                                 strerror(errno));
        return SQLITE_IOERR;
    }
    rc =
        compact_verify(zTmp, oh->min_txid, oh->max_txid, ot->post_apply, pzErr);
    if (rc == SQLITE_OK)
        rc = layout_key(b, level, oh->min_txid, oh->max_txid, key, sizeof(key));
    if (rc != SQLITE_OK)
        return rc;
    rc = backend_put_file(b, key, zTmp, (uint64_t)st.st_size, oh->timestamp);
    if (rc != SQLITE_OK) {
        *pzErr = sqlite3_mprintf("litestream: upload of %s failed: %s", key,
                                 backend_why(b));
        return rc;
    }
    KILLPOINT("compaction-mid");
    out->level = level;
    out->min_txid = oh->min_txid;
    out->max_txid = oh->max_txid;
    out->size = (uint64_t)st.st_size;
    out->created_ms = oh->timestamp;
    return SQLITE_OK;
}

int
compact_merge(const struct ls_url *u, backend *b, const char *zTmpDir,
              const ltx_info *in, int n, int level, const int *cancel,
              ltx_info *out, char **pzErr)
{
    char **keys = NULL, zCodec[512] = "";
    uint64_t *sizes = NULL;
    fetcher *f = NULL;
    ltx_decoder **dec = NULL;
    ltx_header oh;
    ltx_trailer ot;
    char *zTmp = sqlite3_mprintf("%s/compact.ltx.tmp", zTmpDir);
    compact_out w = {-1, cancel};
    int rc, i;

    *pzErr = NULL;
    dec = sqlite3_malloc64(sizeof(*dec) * (size_t)n);
    rc = zTmp && dec ? merge_keys(b, in, n, &keys, &sizes) : SQLITE_NOMEM;
    if (dec)
        memset(dec, 0, sizeof(*dec) * (size_t)n);
    if (rc == SQLITE_OK)
        rc =
            fetch_open(u, b, (const char *const *)keys, sizes, n, 0, &f, pzErr);
    for (i = 0; i < n && rc == SQLITE_OK; i++)
        rc = ltx_decoder_open(fetch_read, fetch_stream_at(f, i), &dec[i]);
    if (rc == SQLITE_OK) {
        w.fd = open(zTmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w.fd < 0) {
            *pzErr = sqlite3_mprintf("litestream: cannot create '%s': %s", zTmp,
                                     strerror(errno));
            rc = SQLITE_CANTOPEN;
            goto out;
        }
        rc = ltx_merge(dec, n, 0, ltx_decoder_header(dec[n - 1])->timestamp,
                       compact_out_write, &w, &oh, &ot, zCodec, sizeof(zCodec));
    }
    if (rc != SQLITE_OK && *pzErr == NULL && rc != SQLITE_NOMEM)
        *pzErr = merge_blame(f, dec, keys, n, zCodec);
    if (rc == SQLITE_OK)
        rc = merge_publish(b, zTmp, w.fd, &oh, &ot, level, out, pzErr);
out:
    if (w.fd >= 0)
        close(w.fd);
    if (zTmp)
        unlink(zTmp);
    for (i = 0; dec && i < n; i++)
        ltx_decoder_free(dec[i]);
    fetch_close(f);
    for (i = 0; keys && i < n; i++)
        sqlite3_free(keys[i]);
    sqlite3_free(keys);
    sqlite3_free(sizes);
    sqlite3_free(dec);
    sqlite3_free(zTmp);
    return rc;
}
