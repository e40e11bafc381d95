/*
 * storage/replicate/upload.h: the uploader, the ship-lock holder's half of
 * the replicator: L0 LTX objects from the spool, full images when the
 * replica cannot be continued incrementally, and the action on recovery's
 * verdicts.  For one replica t of a URL list, on its upload task
 * (targets.c); the replicas' uploads run at the same time, sharing the
 * spool under the replicator's spool_mu (never held across network I/O).
 */
#ifndef LITESTREAM_UPLOAD_H
#define LITESTREAM_UPLOAD_H

#include "storage/replicate/replicator_int.h"

/*
 * One upload step of the ship-lock holder for replica t: learns the replica's
 * position on first use, then uploads the spooled TXIDs after the replicated
 * one as one L0 object, or a full image when the checksums or the spool cannot
 * continue incrementally; then asks recovery about captured TXIDs no
 * spool holds.  SQLITE_OK (including "nothing to do" and "retry next
 * tick") or the failure, already recorded for status.
 */
int rep_upload_once(rep_target *t);

/*
 * Uploads a full image of the database (read through opts.zVfs, pinned
 * consistent with the captured position) as one object covering
 * replicated+1 .. the image's TXID, and adopts its checksums.  SQLITE_OK;
 * SQLITE_BUSY: no consistent image right now (or nothing captured beyond
 * the replica), try again; other errors are recorded for status.
 */
int rep_upload_full(rep_target *t);

#endif
