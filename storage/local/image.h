/*
 * storage/local/image.h: a consistent full image of a live database, read
 * without blocking its writers.
 *
 * A private read transaction (on the underlying VFS, never checkpointing on
 * close) pins the WAL: while it is open no checkpoint can copy frames newer
 * than its snapshot into the database file and the WAL cannot restart under
 * it.  The image is then "each page from the newest WAL frame <= mxFrame,
 * else from the database file", at the mxFrame of the captured position, so
 * it belongs to exactly one TXID.  Replicator thread only.
 */
#ifndef LITESTREAM_IMAGE_H
#define LITESTREAM_IMAGE_H

#include <stdint.h>

#include "storage/local/sidecar.h"

#include "storage/base/sqlite.h"

/*
 * A pinned read transaction: a private connection (underlying VFS, never
 * checkpointing on close) holding a read transaction, and the database and
 * WAL files it reads.  While it is open no checkpoint copies frames newer
 * than its snapshot into the database file and the WAL cannot restart.
 */
typedef struct pin {
    sqlite3 *db;
    sqlite3_file *dbf;
    sqlite3_file *walf;
    int forklock; /* holds the read side of the fork lock (image.c) */
} pin;

/* SQLITE_OK, SQLITE_BUSY (try later) or an error with *pzErr set. */
int pin_open(const char *zDbPath, const char *zVfs, pin *p, char **pzErr);
/*
 * As pin_open(), but the transaction is a write transaction (BEGIN
 * IMMEDIATE): it holds the WAL write lock, so nothing can commit until
 * pin_close().  For the rare moments the replicator must capture on behalf
 * of a writer that died.
 */
int pin_write_open(const char *zDbPath, const char *zVfs, pin *p, char **pzErr);
void pin_close(pin *p); /* NULL-safe, idempotent */

/*
 * 1 if the WAL as the pin's transaction sees it ends exactly at the
 * captured position (or both are empty), or if there is no wal-index to
 * tell; 0 if committed frames beyond it were never captured (their writer
 * died first) or the WAL was restarted or emptied since.
 */
int pin_ends_at(pin *p, const ls_cap *cap);

typedef struct image image;

/*
 * Opens an image of zDbPath through VFS zVfs (the VFS the litestream shim
 * wraps).  On success *txid is the TXID the image holds, *commit its size in
 * pages, *page_size its page size.  SQLITE_BUSY if no consistent snapshot
 * could be pinned right now (retry later); other codes with *pzErr set.
 */
int image_open(const char *zDbPath, const char *zVfs, sidecar *sc, image **out,
               uint64_t *txid, uint32_t *commit, uint32_t *page_size,
               char **pzErr);

/* The captured position the image is taken at. */
const ls_cap *image_cap(image *);

/* Reads page pgno (1..commit, not the lock page) into buf. */
int image_page(image *, uint32_t pgno, uint8_t *buf);

/*
 * After the last page: SQLITE_OK if the image is consistent (nothing was
 * captured while it was read), SQLITE_BUSY if it must be taken again.
 */
int image_done(image *);

/*
 * As image_done(), for a reader that accepts transactions captured while
 * it read: valid because image_open() proved the private read transaction
 * pinned exactly the captured position (the wal-index ended there), so no
 * checkpoint can copy a newer frame into the database file under it; only
 * a WAL restart (which a reader on read lock 0 does not prevent) could
 * change what was read, and a restart rewrites the WAL header first.
 * SQLITE_OK, or SQLITE_BUSY if the image must be taken again.  Used for
 * level-9 snapshots, which must succeed while the application writes.
 */
int image_done_pinned(image *);

/* Ends the read transaction.  NULL-safe. */
void image_close(image *);

#endif
