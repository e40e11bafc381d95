/*
 * vfs/walread.h: the capture's reads of the WAL (vfs/walread.c).  Each
 * takes what it needs from this hold's copy of the WAL writes (d->buf,
 * WAL offsets [d->base, d->end) while d->buf_ok) when the copy holds it,
 * else from the files.  Callers hold the WAL write lock (or the database
 * in exclusive locking mode) and d->mu.
 */
#ifndef LITESTREAM_VFS_WALREAD_H
#define LITESTREAM_VFS_WALREAD_H

#include <stdint.h>

#include "storage/local/wal.h"
#include "storage/replicate/replicator.h"
#include "vfs/registry.h"

/*
 * Exclusive locking mode with a heap wal-index: derives a wal-index header
 * from the WAL itself (the last valid commit frame after the captured
 * position).  1, or 0 if there is no WAL.
 */
int walread_heap_hdr(ls_db *d, shm_hdr *h);

/*
 * The WAL header into *wh (cached in d->wh while d->wh_ok; the cache
 * follows header writes and resets).  1, or 0 when there is none.
 */
int walread_wal_hdr(ls_db *d, wal_hdr *wh);

/*
 * Frames lo..hi (1-based) of the WAL, read from the file into a new
 * ls_malloc'd buffer (ls_free it), validating salts and the checksum chain
 * from seed s (the checksum of frame lo-1; updated).  NULL if they do not
 * validate, cannot be read or memory runs out.
 */
uint8_t *walread_frames(ls_db *d, const wal_hdr *wh, uint32_t lo, uint32_t hi,
                        uint32_t s[2]);

/*
 * A full image as of wal-index header h, read here and now, as a new
 * REP_IMAGE transaction with TXID txid (ownership passes to the caller,
 * normally to replicator_enqueue), or NULL.  Used where nobody else could
 * read a consistent image: exclusive locking mode, or the replicator's
 * recapture.  Costs memory of the size of the database.
 */
rep_txn *walread_image(ls_db *d, sqlite3_file *real, const shm_hdr *h,
                       uint32_t ps, uint64_t txid);

/* Where the WAL ends per a wal-index header: the position of its mxFrame. */
static inline wal_pos
walread_pos(const shm_hdr *h)
{
    return (wal_pos){.salt1 = h->salt[0],
                     .salt2 = h->salt[1],
                     .frame = h->mx_frame,
                     .cksum1 = h->frame_cksum[0],
                     .cksum2 = h->frame_cksum[1]};
}

#endif
