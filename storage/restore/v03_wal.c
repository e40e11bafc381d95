/*
 * storage/restore/v03_wal.c: applies the objects of a Litestream v0.3
 * replica to a database file (v03.h): the snapshot, copied as it is, then
 * each WAL index, as SQLite's checkpoint would apply that WAL.
 *
 * A WAL index is the concatenation of its segments (offsets contiguous
 * from 0): a 32-byte WAL header, then frames of 24 + page size bytes.  Each
 * frame must carry the header's salts and continue the checksum chain
 * (storage/local/wal.h); a frame that does not is damage, not the end of
 * the log (v0.3 uploads only frames it has validated).  Frames are kept in
 * a scratch file until their transaction's commit frame (a non-zero
 * "database size after commit"), then written in order into the database,
 * whose size becomes that commit's.  Frames after the last commit frame of
 * an index are not applied.
 *
 * Invariants:
 *   1. Only committed transactions reach the database file, in WAL order.
 *   2. Memory is one frame and one read buffer; a transaction of any size
 *      goes through the scratch file.
 *   3. Every failure names the object (and the WAL index, frame and offset
 *      where it applies).
 *
 * Threads: the restoring thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "storage/base/sqlite.h"
#include "storage/local/wal.h"
#include "storage/ltx/ltx.h"
#include "storage/restore/v03.h"

#define V03_CHUNK 65536
#define V03_MAXPS 65536

struct v03_apply {
    int fd, sfd;
    uint32_t page_size, pages;
    uint32_t index;
    uint64_t pos; /* WAL bytes of the index so far */
    int have_hdr;
    wal_hdr h;
    uint32_t s[2]; /* the checksum chain */
    uint32_t frame_no;
    size_t nhave;     /* bytes of the header or frame being assembled */
    uint64_t pending; /* frames in the scratch file */
    uint8_t frame[WAL_FRAME_HDR_SIZE + V03_MAXPS];
    uint8_t chunk[V03_CHUNK]; /* content being fed (ap_stream) */
    uint8_t page[V03_MAXPS];  /* a page read back from the scratch file */
    char *zErr;
};

static int
ap_err(v03_apply *a, int rc, char *z)
{
    if (a->zErr == NULL)
        a->zErr = z;
    else
        sqlite3_free(z);
    return rc;
}

static int
ap_errno(v03_apply *a, const char *zWhat)
{
    int e = errno;
    return ap_err(a, e == ENOSPC ? SQLITE_FULL : SQLITE_IOERR,
                  sqlite3_mprintf("litestream: cannot %s during the v0.3 "
                                  "restore: %s",
                                  zWhat, strerror(e)));
}

static int
ap_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int
ap_pread(int fd, void *p, size_t n, uint64_t off)
{
    uint8_t *b = p;

    while (n > 0) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        b += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int
v03_apply_open(int fd, const char *zScratch, v03_apply **out, char **pzErr)
{
    v03_apply *a = sqlite3_malloc64(sizeof(*a));

    *out = NULL;
    if (a == NULL) {
        *pzErr = sqlite3_mprintf("litestream: out of memory");
        return SQLITE_NOMEM;
    }
    memset(a, 0, sizeof(*a));
    a->fd = fd;
    unlink(zScratch);
    a->sfd = open(zScratch, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (a->sfd < 0) {
        int e = errno;
        *pzErr = sqlite3_mprintf("litestream: cannot create '%s': %s", zScratch,
                                 strerror(e));
        sqlite3_free(a);
        return e == ENOSPC ? SQLITE_FULL : SQLITE_CANTOPEN;
    }
    unlink(zScratch); /* anonymous from now on: nothing left behind */
    *out = a;
    return SQLITE_OK;
}

/* Reads the LZ4 object through the frame reader, handing each chunk of
 * content to xSink. */
static int
ap_stream(v03_apply *a, ltx_read_fn xRead, void *ctx, const char *zKey,
          int (*xSink)(v03_apply *, const uint8_t *, size_t, const char *))
{
    ltx_lz4_reader *r = NULL;
    size_t got = 0;
    int rc = ltx_lz4_reader_open(xRead, ctx, &r);

    while (rc == SQLITE_OK) {
        rc = ltx_lz4_reader_read(r, a->chunk, sizeof(a->chunk), &got);
        if (rc == SQLITE_OK && got > 0)
            rc = xSink(a, a->chunk, got, zKey);
        if (got < sizeof(a->chunk))
            break;
    }
    if (rc != SQLITE_OK && r && a->zErr == NULL)
        ap_err(a, rc,
               sqlite3_mprintf("litestream: corrupt object '%s': %s", zKey,
                               ltx_lz4_reader_errmsg(r)));
    ltx_lz4_reader_free(r);
    if (rc == SQLITE_NOMEM && a->zErr == NULL)
        ap_err(a, rc, sqlite3_mprintf("litestream: out of memory"));
    return rc;
}

/* The snapshot's bytes, at a->pos in the database file. */
static int
snap_sink(v03_apply *a, const uint8_t *p, size_t n, const char *zKey)
{
    if (a->pos < 100) {
        size_t k = 100 - a->pos < n ? 100 - (size_t)a->pos : n;
        memcpy(a->frame + a->pos, p, k);
        if (a->pos + k == 100) {
            uint32_t ps = (uint32_t)a->frame[16] << 8 | a->frame[17];
            if (ps == 1)
                ps = 65536;
            if (memcmp(a->frame, "SQLite format 3", 16) != 0 || ps < 512 ||
                ps > 65536 || (ps & (ps - 1)) != 0)
                return ap_err(a, SQLITE_CORRUPT,
                              sqlite3_mprintf("litestream: snapshot '%s' is "
                                              "not an SQLite database",
                                              zKey));
            a->page_size = ps;
        }
    }
    if (ap_pwrite(a->fd, p, n, a->pos) != 0)
        return ap_errno(a, "write the database");
    a->pos += n;
    return SQLITE_OK;
}

int
v03_apply_snapshot(v03_apply *a, ltx_read_fn xRead, void *ctx, const char *zKey)
{
    int rc;

    a->pos = 0;
    rc = ap_stream(a, xRead, ctx, zKey, snap_sink);
    if (rc == SQLITE_OK && (a->page_size == 0 || a->pos % a->page_size))
        rc = ap_err(a, SQLITE_CORRUPT,
                    sqlite3_mprintf("litestream: snapshot '%s' holds %llu "
                                    "bytes: not an SQLite database (or "
                                    "truncated)",
                                    zKey, (unsigned long long)a->pos));
    if (rc == SQLITE_OK)
        a->pages = (uint32_t)(a->pos / a->page_size);
    a->pos = 0;
    return rc;
}

void
v03_apply_index_begin(v03_apply *a, uint32_t index)
{
    a->index = index;
    a->pos = 0;
    a->have_hdr = 0;
    a->nhave = 0;
    a->pending = 0;
    a->frame_no = 0;
}

/* Writes the frames of the scratch file, then the commit frame in
 * a->frame, into the database. */
static int
ap_commit(v03_apply *a, uint32_t commit)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + a->page_size;
    static const size_t hs = WAL_FRAME_HDR_SIZE;

    for (uint64_t i = 0; i < a->pending; i++) {
        uint8_t hdr[WAL_FRAME_HDR_SIZE];
        uint64_t off = i * fsz;
        if (ap_pread(a->sfd, hdr, hs, off) != 0 ||
            ap_pread(a->sfd, a->page, a->page_size, off + hs) != 0)
            return ap_errno(a, "read the scratch file");
        if (ap_pwrite(a->fd, a->page, a->page_size,
                      (uint64_t)(wal_get32(hdr) - 1) * a->page_size) != 0)
            return ap_errno(a, "write the database");
    }
    if (ap_pwrite(a->fd, a->frame + hs, a->page_size,
                  (uint64_t)(wal_get32(a->frame) - 1) * a->page_size) != 0)
        return ap_errno(a, "write the database");
    a->pending = 0;
    a->pages = commit;
    return SQLITE_OK;
}

/* A complete frame in a->frame: check it, keep it, commit on a commit
 * frame. */
static int
ap_frame(v03_apply *a, const char *zKey)
{
    size_t fsz = WAL_FRAME_HDR_SIZE + a->page_size;
    uint64_t at = a->pos - fsz;
    wal_frame_hdr fh;

    a->frame_no++;
    wal_frame_hdr_parse(a->frame, &fh);
    if (!wal_frame_valid(&a->h, a->frame, a->s) || fh.pgno == 0)
        return ap_err(a, SQLITE_CORRUPT,
                      sqlite3_mprintf("litestream: corrupt object '%s': WAL "
                                      "index %08x, frame %u at WAL offset "
                                      "%llu fails its salt or checksum "
                                      "check",
                                      zKey, a->index, a->frame_no,
                                      (unsigned long long)at));
    if (fh.commit != 0)
        return ap_commit(a, fh.commit);
    if (ap_pwrite(a->sfd, a->frame, fsz, a->pending * fsz) != 0)
        return ap_errno(a, "write the scratch file");
    a->pending++;
    return SQLITE_OK;
}

/* The WAL header in a->frame. */
static int
ap_header(v03_apply *a, const char *zKey)
{
    if (!wal_hdr_parse(a->frame, &a->h))
        return ap_err(a, SQLITE_CORRUPT,
                      sqlite3_mprintf("litestream: corrupt object '%s': no "
                                      "valid WAL header at the start of WAL "
                                      "index %08x",
                                      zKey, a->index));
    if (a->h.page_size != a->page_size)
        return ap_err(a, SQLITE_CORRUPT,
                      sqlite3_mprintf("litestream: WAL index %08x ('%s') has "
                                      "page size %u, the snapshot %u",
                                      a->index, zKey, a->h.page_size,
                                      a->page_size));
    a->s[0] = a->h.cksum1;
    a->s[1] = a->h.cksum2;
    a->have_hdr = 1;
    return SQLITE_OK;
}

static int
wal_sink(v03_apply *a, const uint8_t *p, size_t n, const char *zKey)
{
    int rc = SQLITE_OK;

    while (n > 0 && rc == SQLITE_OK) {
        size_t need =
            a->have_hdr ? WAL_FRAME_HDR_SIZE + a->page_size : WAL_HDR_SIZE;
        size_t k = need - a->nhave < n ? need - a->nhave : n;
        memcpy(a->frame + a->nhave, p, k);
        a->nhave += k;
        a->pos += k;
        p += k;
        n -= k;
        if (a->nhave < need)
            break;
        a->nhave = 0;
        rc = a->have_hdr ? ap_frame(a, zKey) : ap_header(a, zKey);
    }
    return rc;
}

int
v03_apply_segment(v03_apply *a, ltx_read_fn xRead, void *ctx, const char *zKey,
                  uint64_t offset)
{
    if (offset != a->pos)
        return ap_err(a, SQLITE_CORRUPT,
                      sqlite3_mprintf("litestream: WAL segment '%s' starts at "
                                      "offset %llu, but the segments of WAL "
                                      "index %08x before it end at %llu (a "
                                      "segment is missing or damaged)",
                                      zKey, (unsigned long long)offset,
                                      a->index, (unsigned long long)a->pos));
    return ap_stream(a, xRead, ctx, zKey, wal_sink);
}

int
v03_apply_index_end(v03_apply *a)
{
    if (a->nhave != 0 || !a->have_hdr)
        return ap_err(a, SQLITE_CORRUPT,
                      sqlite3_mprintf("litestream: WAL index %08x ends inside "
                                      "a %s (%llu bytes): its last segment "
                                      "is truncated",
                                      a->index,
                                      a->have_hdr ? "frame" : "WAL header",
                                      (unsigned long long)a->pos));
    a->pending = 0; /* frames after the last commit frame: never committed */
    return SQLITE_OK;
}

void
v03_apply_state(const v03_apply *a, uint32_t *page_size, uint32_t *pages,
                uint64_t *wal_bytes)
{
    *page_size = a->page_size;
    *pages = a->pages;
    *wal_bytes = a->pos;
}

char *
v03_apply_take_err(v03_apply *a)
{
    char *z = a->zErr;
    a->zErr = NULL;
    return z;
}

void
v03_apply_free(v03_apply *a)
{
    if (a == NULL)
        return;
    if (a->sfd >= 0)
        close(a->sfd);
    sqlite3_free(a->zErr);
    sqlite3_free(a);
}
