/*
 * storage/replicate/replicator_int.h: the replicator's state, shared by its two
 * halves: replicator.c (queue, spool, thread, application-side API) and
 * upload.c (building and uploading LTX objects).  Not for use outside
 * those two files.
 */
#ifndef LITESTREAM_REPLICATOR_INT_H
#define LITESTREAM_REPLICATOR_INT_H

#include <pthread.h>

#include "storage/backend/backend.h"
#include "storage/local/cktab.h"
#include "storage/replicate/replicator.h"
#include "storage/local/spool.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"

struct replicator {
    char *zDbPath;
    char *zUrl;
    char *zVfs;
    ls_url *url;
    backend *be;
    sidecar *sc;
    spool *sp;
    rep_opts opts;

    pthread_t thread;
    int started;
    struct compactor *cp; /* the compaction thread (compactor.c) */
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* the thread waits here */
    pthread_cond_t changed; /* waiters of persist/sync wait here */

    /* Guarded by mu. */
    rep_txn *head, *tail;
    uint64_t last_enqueued; /* highest TXID this process captured */
    uint64_t queued_bytes;
    uint64_t persist_req, persist_done; /* tickets */
    int persist_rc;
    int stop;
    int upload_now;
    char *last_error;
    int64_t last_error_ms;
    int64_t last_upload_ms;
    uint64_t n_uploads, n_full_images, n_errors;
    uint64_t spooled_bytes;
    backend_counters counters;
    int shipping;

    /* Thread side. */
    cktab ck;             /* per-page checksums at the replicated TXID */
    int pre_known;        /* ck.sum is right even though ck is not valid */
    wal_pos rep_pos;      /* where the replicated TXID ended in the WAL */
    int64_t gap_since_ms; /* captured TXIDs missing from the spool since */
    int64_t full_busy_since_ms; /* full images failing since */
    int want_image;        /* atomic: the capture should read a full image */
    int spool_full;        /* the spool reached its limit (thread side) */
    void *scratch_refs;    /* rep_spool_txn's sort array (thread side) */
    uint32_t *scratch_u32; /* its page and frame lists: 2 x scratch_cap */
    uint64_t scratch_cap;
    int replica_checked;
    int need_full;
    int64_t next_upload_ms;
    int backoff_ms;
};

/* Wall-clock milliseconds. */
int64_t rep_now_ms(void);

/* Records (or with NULL clears) the error shown by status; takes mu. */
void rep_set_error(replicator *r, char *zMsg);

/*
 * Converts captured WAL frames into one spool record (newest copy of each
 * page wins, pages beyond the commit dropped) and appends it.
 */
int rep_spool_txn(replicator *r, const rep_txn *t, int do_sync, char **pzErr);

/*
 * Uploads a full image covering replicated+1 .. the image's TXID (upload.c).
 * SQLITE_BUSY: no consistent image right now, try again.
 */
int rep_upload_full(replicator *r);

/*
 * recover.c.  rep_fill_gap(): captured TXIDs after `to` that no spool
 * holds; after a grace period they are re-read from the WAL, else a full
 * image covers them.  rep_recapture_if_stale(): full images keep failing
 * because the captured position does not match the WAL; after a grace
 * period the capture runs under a private write lock.
 */
int rep_fill_gap(replicator *r, uint64_t to);
void rep_recapture_if_stale(replicator *r);

/*
 * One upload step of the ship-lock holder (upload.c): learns the replica's
 * position on first use, then uploads the spooled TXIDs after the
 * replicated one as one L0 object, or a full image when the checksums or
 * the spool cannot continue incrementally.  SQLITE_OK (including "nothing
 * to do" and "retry next tick") or the failure, already recorded for
 * status.
 */
int rep_upload_once(replicator *r);

#endif
