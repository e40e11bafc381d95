/*
 * storage/replicate/recover.h: the recovery path of the uploader
 * (docs/architecture.md 2.9): TXIDs some process captured but never spooled (it
 * died), and a captured position left behind by a writer that died.  Recovery
 * decides and re-reads; it never uploads: its caller (upload.c) acts on the
 * verdict.  A replica's upload task (targets.c), but rep_capture_pending().
 */
#ifndef LITESTREAM_RECOVER_H
#define LITESTREAM_RECOVER_H

#include "storage/replicate/replicator_int.h"

/* Verdicts of rep_fill_gap(). */
typedef enum rep_gap {
    REP_GAP_NONE,      /* nothing missing, or still waiting (grace period) */
    REP_GAP_RECOVERED, /* the missing TXIDs were re-read from the WAL and
                        * spooled: the next upload takes them */
    REP_GAP_IMAGE      /* the WAL no longer holds them: only a full image
                        * covers them (the caller resets gap_since_ms once
                        * it is uploaded) */
} rep_gap;

/*
 * For replica t: captured TXIDs after `to` that no spool holds yet: normally
 * some process's queue, spooled within a tick (REP_GAP_NONE).  Missing past a
 * grace period, their process died: they are re-read from the WAL from
 * where `to` ended (REP_GAP_RECOVERED), or the verdict is REP_GAP_IMAGE.
 * Returns SQLITE_OK with *verdict, or the error of a recovery that could
 * neither finish nor rule itself out (SQLITE_BUSY: try later; others are
 * already recorded for status).
 */
int rep_fill_gap(rep_target *t, uint64_t to, rep_gap *verdict);

/*
 * Called when a full image keeps failing with SQLITE_BUSY because the
 * captured position does not match the WAL.  The first call starts a grace
 * period.  If the position moved during it, a live writer keeps overtaking
 * the image: its next capture is asked to read the image (want_image),
 * never its write lock taken (that would hand it SQLITE_BUSY).  If the
 * position stood still, its writer died between moving the WAL and
 * capturing: the capture runs under a private write lock
 * (opts.xRecapture), or, locked out by a writer in exclusive locking mode,
 * the image is asked of that writer's capture too.
 */
void rep_recapture_if_stale(rep_target *t);

/*
 * For litestream_sync() after a crash: committed WAL frames beyond the
 * captured position that stay there (their writer died between commit and
 * capture) are captured now, under a private write lock, so that the sync
 * waits for them too.  Any thread.  SQLITE_OK (also when nothing was
 * pending), or SQLITE_BUSY when the write lock could not be had (a writer
 * in exclusive locking mode, or one holding it): that writer's own capture
 * then covers them.
 */
int rep_capture_pending(replicator *r);

#endif
