/*
 * storage/replicate/replicator_int.h: the replicator's state, shared by the
 * files of storage/replicate/ (types only: each file declares its
 * functions in its own header).  Not for use outside replicate/.
 *
 * The files call each other downward only:
 *   replicator.c (queue, pool task, API) -> ship.c (the upload pass:
 *     whether this process ships, idle) -> targets.c (each replica's
 *     upload task) -> upload.c (L0 objects, full images)
 *     -> batch.c (spooled records -> newest page of each pgno)
 *     -> recover.c (verdicts on missing TXIDs) -> spool_txn.c (records,
 *     the spool's lock)
 *
 * Locks, in the order they may be taken: the replicator's spool_mu (the
 * spool handle), then its mu, then a replica's lease's (lease.c, asked
 * without I/O), then the pool's.  A private connection (a
 * pin, storage/local/image.h) may be opened under spool_mu, never the
 * reverse; nothing that waits for the capture (a recapture) runs under
 * spool_mu.
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
#define QUEUE_WAKE_BYTES   (1u << 20)
#define QUEUE_UPLOAD_BYTES (16u << 20) /* ... and to upload at once */

/*
 * One replica of a URL list (PRAGMA litestream_url = 'URL1 URL2'): its
 * backend, checksum table and position.  Every replica is fed from the
 * one spool and numbered by the one TXID sequence; each continues from its
 * own replicated TXID (sidecar_replicated_n), uploads in a pool task of its
 * own (targets.c) and backs off alone.  Its task side (the members without
 * a mark) belongs to its task's passes, one at a time; the members marked
 * "mu" are guarded by the replicator's mu, those marked "atomic" are.
 */
typedef struct rep_target {
    struct replicator *r;
    int idx;    /* 0: the first URL (position page and `checksums`) */
    char *zUrl; /* this replica's URL as given */
    ls_url *url;
    backend *be;
    struct lease *lease;  /* the writer lease (lease.h), NULL: off */
    struct compactor *cp; /* its compaction task (compactor.c) */
    pool_task task;       /* its uploads (targets.c, tg_pass) */
    int task_added;       /* the task is in the pool */
    cktab ck;             /* per-page checksums at its replicated TXID */
    int pre_known;        /* ck.sum is right even though ck is not valid */
    wal_pos rep_pos;      /* where its replicated TXID ended in the WAL */
    int64_t gap_since_ms; /* captured TXIDs missing from the spool since */
    int64_t full_busy_since_ms; /* full images failing since */
    uint64_t full_busy_txid;    /* ... with the position at this TXID */
    int replica_checked;
    int need_full;
    uint64_t foreign_upto; /* the replica's TXIDs up to here are not this
                            * database's (check_replica): spooled records
                            * at or below are never uploaded there */
    int backoff_ms;        /* atomic: 0 unless its last pass failed */
    int released;    /* atomic: failing while the spool filled: the spool no
                      * longer keeps its TXIDs (it continues with a full
                      * image) */
    int rewrite_ck;  /* atomic: the sidecar was created again: its checksum
                      * table is written in full at the next save */
    int cp_shipping; /* its compactor was told this process ships to it
                      * (ship.c, the replicator's task) */
    /* mu */
    int64_t next_upload_ms; /* its next upload pass is due */
    int leased;             /* its lease was held at the last check */
    int failing;  /* its last pass failed (an error, or no lease while it
                   * had work): its retries are shy (pool_shy_enter) */
    int inflight; /* woken for an upload whose pass has not ended */
    int again;    /* asked again meanwhile: it runs once more at once */
    int settled;  /* its last pass succeeded with the replica checked and
                   * no full image due: with nothing captured beyond its
                   * replicated TXID a pass would do nothing */
    int64_t dispatched_ms; /* when the running pass was woken */
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
    sidecar *sc;
    spool *sp; /* under spool_mu: spooling, scans, reads, drops */
    rep_opts opts;
    /* The spool handle is shared by the replicator's own task (spooling
     * the queue) and every replica's upload task (reading it, dropping
     * what all have): one at a time.  Held while records are read and
     * encoded, never across network I/O. */
    pthread_mutex_t spool_mu;

    pool_task task; /* its task in the process's pool (rep_pass) */
    int started;
    pthread_mutex_t mu;
    pthread_cond_t changed; /* waiters of persist/sync wait here */

    /* Guarded by mu. */
    rep_txn *head, *tail;
    uint64_t last_enqueued; /* highest TXID this process captured (atomic:
                             * the zero-copy capture sets it without mu) */
    uint64_t queued_bytes;
    int woken;              /* the application woke the task for this queue */
    uint32_t refs_queued;   /* REP_WALREF elements in head's list */
    uint32_t refs_spooling; /* ... in the list a pass took (spooling) */
    int spooling; /* a pass took the queue and has not spooled it all yet
                   * (replicator_persist() must not return early then) */
    int idle;     /* no light pass is due (the task waits for the next upload
                   * pass): the first enqueue wakes it */
    uint64_t persist_req, persist_done; /* tickets */
    int persist_rc;
    int spool_missed; /* a pass found spool_mu taken: wake it at unlock */
    int stop;
    int upload_now;
    int fenced; /* this process's pid is in the position page's fence */
    char *last_error;
    int64_t last_error_ms;
    int64_t last_upload_ms;
    uint64_t n_uploads, n_full_images, n_errors;
    uint64_t spooled_bytes;
    backend_counters counters;
    int shipping;           /* this process holds the ship lock */
    int64_t next_upload_ms; /* the earliest replica's next upload pass
                             * (atomic: the watch function reads it) */

    /* Task side (its passes, one at a time: storage/base/pool.h). */
    sidecar_seen seen;     /* config.json as last checked */
    int64_t started_ns;    /* wall clock at open */
    int want_image;        /* atomic: the capture should read a full image */
    int spool_full;        /* the spool reached its limit (mu) */
    void *scratch_refs;    /* rep_spool_txn's sort array (spool_mu) */
    uint32_t *scratch_u32; /* its page and frame lists: 2 x scratch_cap */
    const uint8_t **scratch_ptrs; /* frames in, pages out: 2 x scratch_cap */
    uint64_t scratch_cap;
    uint64_t db_dev, db_ino; /* the database file's identity at open
                              * (atomic) */
    int db_replaced; /* atomic: it was renamed over or deleted: stopped */
    /* The zero-copy capture's open reference (refs.c): the writer extends
     * it without mu while OPEN; a pass takes it under mu.  OPEN implies
     * slot_spare (where it goes when taken or flushed). */
    rep_txn slot;
    int slot_state;       /* atomic: SLOT_EMPTY, SLOT_OPEN, SLOT_BUSY */
    uint64_t slot_unacct; /* its bytes not yet counted in queued_bytes */
    rep_txn *slot_spare;
    int32_t pid; /* getpid() at open (the fence's owner) */
    /* Idle (ship.c): the directories watched, and the ring. */
    struct watch *w[3]; /* the spool, the sidecar, the database's directory */
    int watching;       /* all three are watched: an idle pass may sleep */
    uint64_t ring_rep;  /* replicated TXID at the last pass that waited */
    int64_t rang_ms;    /* when this process last rang the spool */
};

#define SLOT_EMPTY 0
#define SLOT_OPEN  1
#define SLOT_BUSY  2

/* Whether the zero-copy capture's open reference holds TXIDs (queued,
 * like r->head's). */
static inline int
rep_slot_open(replicator *r)
{
    return __atomic_load_n(&r->slot_state, __ATOMIC_ACQUIRE) != SLOT_EMPTY;
}

/* Whether anything queued or being spooled names WAL frames (a WAL
 * restart must wait for it).  Caller holds mu. */
static inline int
rep_refs_pending(replicator *r)
{
    return rep_slot_open(r) || r->refs_queued || r->refs_spooling;
}

/* The last TXID a queued transaction holds (several: a reference). */
static inline uint64_t
rep_txn_last(const rep_txn *t)
{
    return (t->flags & REP_WALREF) && t->txid_max > t->txid ? t->txid_max
                                                            : t->txid;
}

/* The clock of base/clock.h under the name the status code uses. */
#define rep_now_ms clock_now_ms

/*
 * Records (or with NULL clears) the error shown by status, counts it and
 * logs it (sqlite3_log); takes mu.  t: the replica whose upload failed
 * (its error too), or NULL.  zMsg is sqlite3_mprintf'd and owned by the
 * replicator from here on.  Inline: every file of replicate/ reports
 * errors, and none of them may call upward into replicator.c for it.
 */
static inline void
rep_error(replicator *r, rep_target *t, char *zMsg)
{
    pthread_mutex_lock(&r->mu);
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

/* An error of the replicator itself, not of one replica's upload. */
static inline void
rep_set_error(replicator *r, char *zMsg)
{
    rep_error(r, NULL, zMsg);
}

/* The replicated TXID of replica t. */
static inline uint64_t
rep_replicated(const rep_target *t)
{
    return sidecar_replicated_n(t->r->sc, t->idx);
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
 * fed from the spool holds (released ones continue with a full image).
 * Caller holds spool_mu (the drop follows under it). */
static inline uint64_t
rep_spool_floor(replicator *r)
{
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < r->ntg; i++) {
        uint64_t v = sidecar_replicated_n(r->sc, i);
        if (!__atomic_load_n(&r->tg[i].released, __ATOMIC_ACQUIRE) && v < m)
            m = v;
    }
    return m == UINT64_MAX ? rep_min_replicated(r) : m;
}

#endif
