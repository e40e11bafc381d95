/*
 * storage/replicate/replicator_int.h: the replicator's state, shared by the
 * files of storage/replicate/ (types only: each file declares its
 * functions in its own header).  Not for use outside replicate/.
 *
 * The files call each other downward only:
 *   replicator.c (queue, pool task, API) -> ship.c (the upload pass, idle)
 *     -> upload.c (L0 objects, full images)
 *     -> batch.c (spooled records -> newest page of each pgno)
 *     -> recover.c (verdicts on missing TXIDs) -> spool_txn.c (records)
 */
#ifndef LITESTREAM_REPLICATOR_INT_H
#define LITESTREAM_REPLICATOR_INT_H

#include <pthread.h>

#include "storage/backend/backend.h"
#include "storage/backend/url.h"
#include "storage/base/clock.h"
#include "storage/base/pool.h"
#include "storage/base/sqlite.h"
#include "storage/local/cktab.h"
#include "storage/local/spool.h"
#include "storage/replicate/replicator.h"

/* The application wakes the task to spool once this much is queued
 * (memory stays bounded at full speed). */
#define QUEUE_WAKE_BYTES (1u << 20)

/*
 * One replica of a URL list (PRAGMA litestream_url = 'URL1 URL2'): its
 * backend, checksum table and position.  Every replica is fed from the
 * one spool and numbered by the one TXID sequence; each continues from its
 * own replicated TXID (sidecar_replicated_n) and backs off alone.
 * Task side, but for the members marked "mu".
 */
typedef struct rep_target {
    struct replicator *r;
    int idx;    /* 0: the first URL (position page and `checksums`) */
    char *zUrl; /* this replica's URL as given */
    ls_url *url;
    backend *be;
    struct lease *lease;  /* the writer lease (lease.h), NULL: off */
    struct compactor *cp; /* its compaction task (compactor.c) */
    cktab ck;             /* per-page checksums at its replicated TXID */
    int pre_known;        /* ck.sum is right even though ck is not valid */
    wal_pos rep_pos;      /* where its replicated TXID ended in the WAL */
    int64_t gap_since_ms; /* captured TXIDs missing from the spool since */
    int64_t full_busy_since_ms; /* full images failing since */
    uint64_t full_busy_txid;    /* ... with the position at this TXID */
    int replica_checked;
    int need_full;
    uint64_t foreign_upto;  /* the replica's TXIDs up to here are not this
                             * database's (check_replica): spooled records
                             * at or below are never uploaded there */
    int64_t next_upload_ms; /* its next upload pass is due */
    int backoff_ms;         /* atomic: 0 unless its last pass failed */
    int leased;             /* its lease was held at the last check (mu) */
    int released;    /* failing while the spool filled: the spool no longer
                      * keeps its TXIDs (it continues with a full image) */
    int cp_shipping; /* its compactor was told this process ships to it */
    /* mu */
    char *last_error;
    int64_t last_error_ms;
    int64_t last_upload_ms;
    uint64_t n_uploads, n_full_images, n_errors;
    backend_counters counters;
} rep_target;

struct replicator {
    char *zDbPath;
    char *zUrl; /* the whole list, as given */
    char *zUrlRedacted;
    char *zVfs;
    rep_target tg[LS_MAX_REPLICAS];
    int ntg;
    rep_target *t; /* the replica being uploaded to (task side; mu) */
    sidecar *sc;
    spool *sp;
    rep_opts opts;

    pool_task task; /* its task in the process's pool (rep_pass) */
    int started;
    pthread_mutex_t mu;
    pthread_cond_t changed; /* waiters of persist/sync wait here */

    /* Guarded by mu. */
    rep_txn *head, *tail;
    uint64_t last_enqueued; /* highest TXID this process captured */
    uint64_t queued_bytes;
    int woken;    /* the application woke the task for this queue */
    int spooling; /* a pass took the queue and has not spooled it all yet
                   * (replicator_persist() must not return early then) */
    int idle;     /* no light pass is due (the task waits for the next upload
                   * pass): the first enqueue wakes it */
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
    int64_t next_upload_ms; /* the earliest replica's next upload pass (task;
                             * atomic: the watch function reads it) */

    /* Task side (its passes, one at a time: storage/base/pool.h). */
    sidecar_seen seen;     /* config.json as last checked */
    int64_t started_ns;    /* wall clock at open */
    int want_image;        /* atomic: the capture should read a full image */
    int spool_full;        /* the spool reached its limit (thread side) */
    void *scratch_refs;    /* rep_spool_txn's sort array (thread side) */
    uint32_t *scratch_u32; /* its page and frame lists: 2 x scratch_cap */
    const uint8_t **scratch_ptrs; /* frames in, pages out: 2 x scratch_cap */
    uint64_t scratch_cap;
    uint64_t db_dev, db_ino; /* the database file's identity at open */
    int db_replaced;         /* it was renamed over or deleted: stopped */
    /* Idle (ship.c): the directories watched, and the ring. */
    struct watch *w[3]; /* the spool, the sidecar, the database's directory */
    int watching;       /* all three are watched: an idle pass may sleep */
    uint64_t ring_rep;  /* replicated TXID at the last pass that waited */
    int64_t rang_ms;    /* when this process last rang the spool */
};

/* The clock of base/clock.h under the name the status code uses. */
#define rep_now_ms clock_now_ms

/*
 * Records (or with NULL clears) the error shown by status, counts it and
 * logs it (sqlite3_log); takes mu.  zMsg is sqlite3_mprintf'd and owned
 * by the replicator from here on.  Inline: every file of replicate/ reports
 * errors, and none of them may call upward into replicator.c for it.
 */
static inline void
rep_set_error(replicator *r, char *zMsg)
{
    pthread_mutex_lock(&r->mu);
    rep_target *t = r->t;
    if (t) { /* during a replica's upload: that replica's error too */
        sqlite3_free(t->last_error);
        t->last_error = zMsg ? sqlite3_mprintf("%s", zMsg) : NULL;
        t->last_error_ms = clock_now_ms();
        if (zMsg)
            t->n_errors++;
    }
    sqlite3_free(r->last_error);
    r->last_error = zMsg;
    r->last_error_ms = clock_now_ms();
    if (zMsg && !t)
        r->n_errors++;
    pthread_mutex_unlock(&r->mu);
    if (zMsg)
        sqlite3_log(SQLITE_WARNING, "%s", zMsg);
}

/* The replicated TXID of the replica being uploaded to (r->t). */
static inline uint64_t
rep_replicated(replicator *r)
{
    return sidecar_replicated_n(r->sc, r->t->idx);
}

/* The TXID every replica holds (the spool keeps what is above). */
static inline uint64_t
rep_min_replicated(replicator *r)
{
    uint64_t m = sidecar_replicated_n(r->sc, 0);
    for (int i = 1; i < r->ntg; i++) {
        uint64_t v = sidecar_replicated_n(r->sc, i);
        if (v < m)
            m = v;
    }
    return m;
}

/* Below which TXID the spool may drop records: what every replica still
 * fed from the spool holds (released ones continue with a full image). */
static inline uint64_t
rep_spool_floor(replicator *r)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < r->ntg; i++) {
        uint64_t v = sidecar_replicated_n(r->sc, i);
        if (!r->tg[i].released && v < m)
            m = v;
    }
    return m == UINT64_MAX ? rep_min_replicated(r) : m;
}

#endif
