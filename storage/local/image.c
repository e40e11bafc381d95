/*
 * storage/local/image.c: consistent full images of a live database (image.h).
 *
 * Invariants: the private connection holds its read transaction from
 * image_open() to image_close(); every page is read from the WAL frame the
 * map names (validated salts) or from the database file.  Replicator
 * thread only.
 *
 * fork(): SQLite's unix VFS keeps the locks of every connection of the
 * process in memory that a child inherits, so a child forked while a pin
 * holds a transaction sees a lock that no connection of its own will ever
 * release (its checkpoints and writes wait until they time out).  A pin
 * therefore holds the read side of pin_fork_lock from open to close, and a
 * fork waits for the write side.  Pins cover local work only (an image is
 * read and encoded, then closed before its upload): a fork waits at most
 * that long (milliseconds for small databases, seconds for gigabytes).
 */
#include "storage/local/image.h"
#include "storage/ltx/ltx.h"
#include "storage/base/sqlite.h"
#include "storage/local/wal.h"

#include <pthread.h>
#include <string.h>

struct image {
    pin pin;
    sqlite3_file *dbf;
    sqlite3_file *walf;
    uint32_t page_size;
    uint32_t commit;
    uint32_t *frame_of; /* pgno -> WAL frame (0 = database file) */
    ls_cap cap;         /* the captured position the image is taken at */
    sidecar *sc;
};

static int pin_open_mode(const char *zDbPath, const char *zVfs, pin *p,
                         int write, char **pzErr);

static pthread_rwlock_t pin_fork_lock;
static pthread_once_t pin_fork_once = PTHREAD_ONCE_INIT;

static void
pin_fork_prepare(void)
{
    pthread_rwlock_wrlock(&pin_fork_lock);
}

static void
pin_fork_release(void)
{
    pthread_rwlock_unlock(&pin_fork_lock);
}

static void
pin_fork_lock_init(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* A waiting fork holds back new pins. */
    pthread_rwlockattr_setkind_np(&a,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&pin_fork_lock, &a);
    pthread_rwlockattr_destroy(&a);
}

/* In the child the lock is made anew: threads of the parent that were
 * waiting for it are counted in its state but do not exist here. */
static void
pin_fork_child(void)
{
    pin_fork_lock_init();
}

/* Registered at the first pin, after the VFS's own fork handlers, so this
 * prepare handler runs before theirs (no pin waits for their mutexes). */
static void
pin_fork_init(void)
{
    pin_fork_lock_init();
    pthread_atfork(pin_fork_prepare, pin_fork_release, pin_fork_child);
}

int
pin_open(const char *zDbPath, const char *zVfs, pin *p, char **pzErr)
{
    return pin_open_mode(zDbPath, zVfs, p, 0, pzErr);
}

int
pin_write_open(const char *zDbPath, const char *zVfs, pin *p, char **pzErr)
{
    return pin_open_mode(zDbPath, zVfs, p, 1, pzErr);
}

static int
pin_open_mode(const char *zDbPath, const char *zVfs, pin *p, int write,
              char **pzErr)
{
    int rc;
    memset(p, 0, sizeof(*p));
    pthread_once(&pin_fork_once, pin_fork_init);
    pthread_rwlock_rdlock(&pin_fork_lock);
    p->forklock = 1;
    rc = sqlite3_open_v2(zDbPath, &p->db, SQLITE_OPEN_READWRITE, zVfs);
    if (rc != SQLITE_OK) {
        *pzErr = sqlite3_mprintf("litestream: cannot open '%s': %s", zDbPath,
                                 sqlite3_errmsg(p->db));
        goto out;
    }
    /* Never checkpoint (nor delete the WAL) when this connection closes. */
    sqlite3_db_config(p->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(p->db, 100);
    rc = sqlite3_exec(p->db,
                      write ? "BEGIN IMMEDIATE; SELECT count(*) FROM "
                              "sqlite_schema;"
                            : "BEGIN; SELECT count(*) FROM sqlite_schema;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        rc = SQLITE_BUSY; /* e.g. an exclusive-mode writer: later */
        goto out;
    }
    sqlite3_file_control(p->db, "main", SQLITE_FCNTL_FILE_POINTER, &p->dbf);
    sqlite3_file_control(p->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &p->walf);
    if (!p->dbf || !p->walf || !p->walf->pMethods) {
        *pzErr =
            sqlite3_mprintf("litestream: '%s' is not in WAL mode", zDbPath);
        rc = SQLITE_ERROR;
    }
out:
    if (rc != SQLITE_OK)
        pin_close(p);
    return rc;
}

void
pin_close(pin *p)
{
    if (p->db) {
        sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(p->db);
    }
    if (p->forklock)
        pthread_rwlock_unlock(&pin_fork_lock);
    memset(p, 0, sizeof(*p));
}

void
image_close(image *im)
{
    if (!im)
        return;
    pin_close(&im->pin);
    sqlite3_free(im->frame_of);
    sqlite3_free(im);
}

/*
 * The wal-index must end exactly at the captured position: committed
 * frames beyond it (a writer died before capturing them) could be
 * checkpointed into the database file while the image is read, mixing two
 * states.  Those are captured first (the replicator's recapture).
 * SQLITE_OK or SQLITE_BUSY.
 */
int
pin_ends_at(pin *p, const ls_cap *cap)
{
    volatile void *shm = NULL;
    shm_hdr h0;
    if (p->dbf->pMethods->iVersion < 2 ||
        p->dbf->pMethods->xShmMap(p->dbf, 0, 32768, 0, &shm) != SQLITE_OK ||
        !shm)
        return 1; /* no wal-index to compare with */
    if (wal_index_hdr_read_stable(shm, &h0) < 0)
        return 0; /* being written: cannot say it ends there */
    if (h0.mx_frame == 0 && (cap->frame == 0 || (cap->flags & CAP_RESET)))
        return 1; /* an empty WAL and the database file alone (after a
                   * clean WAL reset the file is the position's state) */
    return h0.mx_frame == cap->frame && h0.salt[0] == cap->salt1 &&
           h0.salt[1] == cap->salt2;
}

static int
image_check_index(image *im)
{
    return pin_ends_at(&im->pin, &im->cap) ? SQLITE_OK : SQLITE_BUSY;
}

/*
 * The image's page size and page count: from the WAL header and the
 * captured position, or, with an empty WAL, from the database file (an
 * empty WAL's wal-index header carries no page size or count).
 * SQLITE_OK, SQLITE_BUSY (the WAL moved), SQLITE_CORRUPT with *pzErr.
 */
static int
image_geometry(image *im, const char *zDbPath, char **pzErr)
{
    const ls_cap *cap = &im->cap;
    uint8_t whb[WAL_HDR_SIZE];
    wal_hdr wh;

    if (cap->frame > 0) {
        int rc = im->walf->pMethods->xRead(im->walf, whb, WAL_HDR_SIZE, 0);
        if (rc != SQLITE_OK || !wal_hdr_parse(whb, &wh) ||
            wh.salt1 != cap->salt1 || wh.salt2 != cap->salt2)
            return SQLITE_BUSY;
        im->page_size = wh.page_size;
        im->commit = cap->commit;
        return SQLITE_OK;
    }
    uint8_t dh[2];
    sqlite3_int64 sz = 0;
    if (im->dbf->pMethods->xRead(im->dbf, dh, 2, 16) != SQLITE_OK ||
        im->dbf->pMethods->xFileSize(im->dbf, &sz) != SQLITE_OK)
        return SQLITE_BUSY;
    im->page_size = ((uint32_t)dh[0] << 8 | dh[1]) == 1
                        ? 65536
                        : ((uint32_t)dh[0] << 8 | dh[1]);
    if (!ltx_page_size_valid(im->page_size)) {
        *pzErr = sqlite3_mprintf("litestream: '%s' has no valid page "
                                 "size in its header",
                                 zDbPath);
        return SQLITE_CORRUPT;
    }
    im->commit = (uint32_t)(sz / im->page_size);
    return SQLITE_OK;
}

/*
 * frame_of: for each page, its newest WAL frame up to the captured
 * position (0: the database file).  SQLITE_OK, SQLITE_BUSY (the WAL
 * restarted under us), or the read error.
 */
static int
image_map_frames(image *im)
{
    uint8_t fh[WAL_FRAME_HDR_SIZE];

    im->frame_of = sqlite3_malloc64(((uint64_t)im->commit + 1) * 4);
    if (!im->frame_of)
        return SQLITE_NOMEM;
    memset(im->frame_of, 0, ((size_t)im->commit + 1) * 4);
    for (uint32_t i = 1; i <= im->cap.frame; i++) {
        wal_frame_hdr f;
        int rc = im->walf->pMethods->xRead(
            im->walf, fh, sizeof(fh),
            (sqlite3_int64)wal_frame_offset(i, im->page_size));
        if (rc != SQLITE_OK)
            return rc;
        wal_frame_hdr_parse(fh, &f);
        if (f.salt1 != im->cap.salt1 || f.salt2 != im->cap.salt2)
            return SQLITE_BUSY; /* restarted under us (read lock 0): retry */
        if (f.pgno <= im->commit)
            im->frame_of[f.pgno] = i;
    }
    return SQLITE_OK;
}

int
image_open(const char *zDbPath, const char *zVfs, sidecar *sc, image **out,
           uint64_t *txid, uint32_t *commit, uint32_t *page_size, char **pzErr)
{
    int rc;
    image *im = sqlite3_malloc64(sizeof(*im));
    *out = NULL;
    if (!im)
        return SQLITE_NOMEM;
    memset(im, 0, sizeof(*im));
    im->sc = sc;
    if (!sidecar_cap_read(sc, &im->cap)) {
        rc = SQLITE_BUSY;
        goto out;
    }
    rc = pin_open(zDbPath, zVfs, &im->pin, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    im->dbf = im->pin.dbf;
    im->walf = im->pin.walf;
    /* Optimistic: the image is taken at the captured position read
     * before the read transaction began, and is only accepted if no
     * transaction was captured meanwhile (image_done()): then nothing newer
     * than that position exists, so no checkpoint can have copied newer
     * pages into the database file under us. */
    rc = image_check_index(im);
    if (rc == SQLITE_OK)
        rc = image_geometry(im, zDbPath, pzErr);
    if (rc == SQLITE_OK)
        rc = image_map_frames(im);
    if (rc != SQLITE_OK)
        goto out;
    *txid = im->cap.txid;
    *commit = im->commit;
    *page_size = im->page_size;
out:
    if (rc != SQLITE_OK) {
        image_close(im);
        return rc;
    }
    *out = im;
    return SQLITE_OK;
}

int
image_page(image *im, uint32_t pgno, uint8_t *buf)
{
    uint32_t fr = pgno <= im->commit ? im->frame_of[pgno] : 0;
    int rc;
    if (fr) {
        rc = im->walf->pMethods->xRead(
            im->walf, buf, (int)im->page_size,
            (sqlite3_int64)(wal_frame_offset(fr, im->page_size) +
                            WAL_FRAME_HDR_SIZE));
    } else {
        rc =
            im->dbf->pMethods->xRead(im->dbf, buf, (int)im->page_size,
                                     (sqlite3_int64)(pgno - 1) * im->page_size);
        if (rc == SQLITE_IOERR_SHORT_READ)
            rc = SQLITE_OK; /* zero-filled by the VFS */
    }
    return rc;
}

int
image_done(image *im)
{
    ls_cap now;
    if (!sidecar_cap_read(im->sc, &now) || now.txid != im->cap.txid ||
        now.frame != im->cap.frame || now.salt1 != im->cap.salt1)
        return SQLITE_BUSY;
    /* A reader on read lock 0 does not stop a WAL restart: a restart
     * writes the new header before any frame, so an unchanged header after
     * the last page means every frame read was the one we meant. */
    if (im->cap.frame > 0) {
        uint8_t hb[WAL_HDR_SIZE];
        wal_hdr wh;
        if (im->walf->pMethods->xRead(im->walf, hb, WAL_HDR_SIZE, 0) !=
                SQLITE_OK ||
            !wal_hdr_parse(hb, &wh) || wh.salt1 != im->cap.salt1 ||
            wh.salt2 != im->cap.salt2)
            return SQLITE_BUSY;
    }
    return SQLITE_OK;
}

int
image_done_pinned(image *im)
{
    uint8_t hb[WAL_HDR_SIZE];
    wal_hdr wh;

    if (im->cap.frame == 0)
        return SQLITE_OK; /* read lock 0 also blocks every backfill */
    if (im->walf->pMethods->xRead(im->walf, hb, WAL_HDR_SIZE, 0) != SQLITE_OK ||
        !wal_hdr_parse(hb, &wh) || wh.salt1 != im->cap.salt1 ||
        wh.salt2 != im->cap.salt2)
        return SQLITE_BUSY;
    return SQLITE_OK;
}

const ls_cap *
image_cap(image *im)
{
    return &im->cap;
}
