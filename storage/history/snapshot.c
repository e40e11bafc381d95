/*
 * storage/history/snapshot.c: level-9 snapshots of the live database (levels.h,
 * docs/ltx-format.md 2.2).
 *
 * The image is read through a private read transaction (storage/local/image.c)
 * pinned at the captured position, so it is exactly one TXID's database and
 * the application's writers never wait: they keep appending to the WAL,
 * and checkpoints simply cannot pass the pinned frame until the snapshot is
 * read.  Pinning needs a moment between two commits where the wal-index
 * ends at the captured position; under continuous writes that takes a few
 * attempts, each a fresh read transaction, within a time budget.
 *
 * Threads: the compactor thread.
 */
#include "storage/history/levels.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/base/clock.h"
#include "storage/local/image.h"
#include "storage/ltx/ltx.h"
#include "storage/base/sqlite.h"

static void
snap_sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Encodes every page of the pinned image into fd; *post its checksum. */
static int
snap_encode(image *im, uint64_t txid, uint32_t commit, uint32_t ps,
            compact_out *w, int64_t ts, uint64_t *post, char **pzErr)
{
    ltx_header h = {.page_size = ps,
                    .commit = commit,
                    .min_txid = 1,
                    .max_txid = txid,
                    .timestamp = ts};
    ltx_encoder *enc = NULL;
    uint8_t *page = sqlite3_malloc64(ps);
    uint32_t lock = ltx_lock_pgno(ps);
    int rc =
        page ? ltx_encoder_open(&h, compact_out_write, w, &enc) : SQLITE_NOMEM;

    for (uint32_t p = 1; p <= commit && rc == SQLITE_OK; p++) {
        if (p == lock)
            continue;
        rc = image_page(im, p, page);
        if (rc != SQLITE_OK)
            *pzErr = sqlite3_mprintf("litestream: snapshot: cannot read "
                                     "page %u",
                                     p);
        else
            rc = ltx_encoder_page(enc, p, page);
    }
    if (rc == SQLITE_OK)
        rc = image_done_pinned(im);
    if (rc == SQLITE_OK) {
        *post = ltx_encoder_checksum(enc);
        rc = ltx_encoder_finish(enc, *post, NULL);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && *pzErr == NULL)
        *pzErr =
            sqlite3_mprintf("litestream: snapshot encoding failed: %s",
                            enc ? ltx_encoder_errmsg(enc) : "out of memory");
    ltx_encoder_free(enc);
    sqlite3_free(page);
    return rc;
}

/* One attempt: pin, encode to zTmp.  SQLITE_BUSY: try again. */
static int
snap_attempt(const char *zDbPath, const char *zVfs, sidecar *sc,
             const char *zTmp, uint64_t after, const int *cancel,
             uint64_t *txid, uint64_t *post, int64_t *ts, char **pzErr)
{
    image *im = NULL;
    uint32_t commit = 0, ps = 0;
    compact_out w = {-1, cancel};
    int rc;

    rc = image_open(zDbPath, zVfs, sc, &im, txid, &commit, &ps, pzErr);
    if (rc == SQLITE_OK && *txid <= after)
        rc = SQLITE_DONE;
    if (rc == SQLITE_OK) {
        w.fd = open(zTmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w.fd < 0) {
            *pzErr = sqlite3_mprintf("litestream: cannot create '%s': %s", zTmp,
                                     strerror(errno));
            rc = SQLITE_CANTOPEN;
        }
    }
    if (rc == SQLITE_OK) {
        *ts = clock_now_ms();
        rc = snap_encode(im, *txid, commit, ps, &w, *ts, post, pzErr);
    }
    image_close(im);
    if (w.fd >= 0)
        close(w.fd);
    return rc;
}

int
snapshot_take(backend *b, const char *zTmpDir, const char *zDbPath,
              const char *zVfs, sidecar *sc, uint64_t after, int budget_ms,
              const int *cancel, ltx_info *out, char **pzErr)
{
    char *zTmp = sqlite3_mprintf("%s/snapshot.ltx.tmp", zTmpDir);
    char key[LAYOUT_KEY_SIZE];
    int64_t deadline = clock_now_ms() + budget_ms, ts = 0;
    uint64_t txid = 0, post = 0;
    struct stat st;
    int rc = zTmp ? SQLITE_BUSY : SQLITE_NOMEM, tries = 0;

    *pzErr = NULL;
    while (rc == SQLITE_BUSY && clock_now_ms() < deadline &&
           !(cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED))) {
        if (tries++)
            snap_sleep_us(200 + (tries % 8) * 150);
        rc = snap_attempt(zDbPath, zVfs, sc, zTmp, after, cancel, &txid, &post,
                          &ts, pzErr);
    }
    if (rc == SQLITE_BUSY && *pzErr == NULL)
        *pzErr = sqlite3_mprintf("litestream: no consistent snapshot of '%s' "
                                 "could be pinned within %d ms (%d "
                                 "attempts)",
                                 zDbPath, budget_ms, tries);
    if (rc == SQLITE_OK)
        rc = compact_verify(zTmp, 1, txid, post, pzErr);
    if (rc == SQLITE_OK && stat(zTmp, &st) != 0)
        rc = SQLITE_IOERR;
    if (rc == SQLITE_OK)
        rc = layout_key(b, LAYOUT_MAX_LEVEL, 1, txid, key, sizeof(key));
    if (rc == SQLITE_OK) {
        rc = backend_put_file(b, key, zTmp, (uint64_t)st.st_size, ts);
        if (rc != SQLITE_OK)
            *pzErr = sqlite3_mprintf("litestream: upload of %s failed: %s", key,
                                     backend_why(b));
    }
    if (rc == SQLITE_OK) {
        out->level = LAYOUT_MAX_LEVEL;
        out->min_txid = 1;
        out->max_txid = txid;
        out->size = (uint64_t)st.st_size;
        out->created_ms = ts;
    }
    if (zTmp)
        unlink(zTmp);
    sqlite3_free(zTmp);
    return rc;
}
