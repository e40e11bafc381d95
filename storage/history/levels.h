/*
 * storage/history/levels.h: the building blocks of compaction
 * (docs/ltx-format.md 1.12, 2.2, 2.3): merging a run of one level into one
 * object of the next, taking a level-9 snapshot of the live database, and
 * choosing what retention deletes.  The schedule that calls them is
 * storage/history/compactor.c.
 *
 * Every object is written to a temporary file in the sidecar directory,
 * decoded again in full (file checksum, index, trailer, post-apply
 * checksum) and only then uploaded, so a replica never receives an object
 * that does not verify.
 *
 * Threads: the compactor thread (each call uses only the handles and
 * buffers it is given).
 */
#ifndef LITESTREAM_COMPACT_H
#define LITESTREAM_COMPACT_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/backend/layout.h"
#include "storage/local/pitr.h"
#include "storage/local/sidecar.h"

struct ls_url;

/*
 * Where compaction and snapshots write their scratch file: an fd, and an
 * optional flag that, once non-zero (read atomically), makes the next
 * write fail, so a compactor being stopped abandons a long merge or
 * snapshot at once.  compact_out_write is an ltx_write_fn over it.
 */
typedef struct compact_out {
    int fd;
    const int *cancel;
} compact_out;
int compact_out_write(void *ctx, const void *buf, size_t n);

/*
 * Chooses what compaction into `level` merges at the boundary bnd (Unix
 * ms), from a listing a[0..n-1] (layout_list_all order): nothing (returns
 * 0) if level's newest object was created at or after bnd, else the run of
 * level-1 objects above level's newest TXID, contiguous or overlapping,
 * ending at the first gap.  Returns the run's length and its first index
 * in *first.  Pure.
 */
int compact_pick_run(const ltx_info *a, int n, int level, int64_t bnd,
                     int *first);

/*
 * Merges the objects in[0..n-1] (one level, sorted, contiguous or
 * overlapping: the caller chose them) into one object at `level` named
 * <in[0].min>-<in[n-1].max>, with the last input's timestamp as header
 * timestamp and creation time.  Inputs are streamed (memory O(page size)),
 * the output goes to "<zTmpDir>/compact.ltx.tmp", is verified, then put.
 * On success *out describes the new object.  Returns SQLITE_OK or an error
 * with *pzErr (sqlite3_mprintf'd) naming the objects.  cancel: see
 * compact_out (may be NULL).
 */
int compact_merge(const struct ls_url *u, backend *b, const char *zTmpDir,
                  const ltx_info *in, int n, int level, const int *cancel,
                  ltx_info *out, char **pzErr);

/*
 * Decodes the finished LTX file zPath in full and checks that it is the
 * object (min, max) with post-apply checksum `post` (0: do not compare).
 * SQLITE_OK or SQLITE_CORRUPT/SQLITE_IOERR with *pzErr.
 */
int compact_verify(const char *zPath, uint64_t min, uint64_t max, uint64_t post,
                   char **pzErr);

/*
 * Takes a snapshot of the live database zDbPath (through VFS zVfs, the one
 * under the litestream shim) inside a private read transaction, so writers
 * never wait, and uploads it verified as level 9 <1>-<txid>.  Gives up
 * with SQLITE_BUSY when no consistent image could be pinned within
 * budget_ms.  Skips (SQLITE_DONE) when the image's TXID is not above
 * `after` (the newest snapshot already there).  *out describes the object.
 */
int snapshot_take(backend *b, const char *zTmpDir, const char *zDbPath,
                  const char *zVfs, sidecar *sc, uint64_t after, int budget_ms,
                  const int *cancel, ltx_info *out, char **pzErr);

/*
 * Retention (docs/ltx-format.md 2.3) over a listing a[0..n-1] (layout_list_all
 * order) at wall-clock time now_ms: snapshots older than the snapshot retention
 * but the newest; below the newest deleted snapshot's TXID, files of
 * levels 1..8 but the newest of each level; L0 files covered by level 1
 * and older than the L0 retention, oldest first, stopping at the first
 * one that must stay, never the newest.  The result is then checked: the
 * latest restore plan over what remains must reach the same TXID as over
 * everything, else nothing is deleted.  *del (sqlite3_free) receives the
 * objects to delete, *ndel their count.  SQLITE_OK (maybe nothing to
 * delete), SQLITE_CORRUPT with *pzErr when the replica itself cannot be
 * restored (a gap: retention then deletes nothing), SQLITE_NOMEM.
 */
int retention_plan(const ltx_info *a, int n, const ls_pitr *o, int64_t now_ms,
                   ltx_info **del, int *ndel, char **pzErr);

#endif
