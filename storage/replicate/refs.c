/*
 * storage/replicate/refs.c: the zero-copy capture's side of the queue
 * (refs.h; replicator.h: replicator_enqueue_ref, rep_opts.pAlone).
 *
 * A reference names frames wal_lo..pos.frame of the WAL with salts
 * pos.salt1/2 and the checksum seed of frame wal_lo - 1; consecutive
 * commits extend one open reference (r->slot: the TXIDs txid..txid_max)
 * without the queue's mutex: a compare-and-swap and a few stores.  A pass
 * takes it under the mutex (rep_slot_take); anything else queued first
 * flushes it into the list (rep_slot_flush), so TXIDs stay in order.
 * The replicator reads and validates the frames (spool_txn.c,
 * spool_walref).  Our own WAL restarts wait for them
 * (replicator_before_wal_reset); another process's restarts wait for the
 * fence in the position page (sidecar_refs_wait), bounded: past it the
 * references fail validation and a full image covers their TXIDs.
 */
#include "storage/replicate/refs.h"

#include "storage/base/mem.h"
#include "storage/local/wal.h"

#include <sched.h>
#include <unistd.h>

#define REF_MAX_BYTES (64u << 20) /* frames named by one queued reference */
#define REFS_WAIT_MS  2000        /* another process's fence, at most */

void
rep_queue_added(replicator *r, uint64_t sz, uint64_t last)
{
    r->queued_bytes += sz;
    if (last > __atomic_load_n(&r->last_enqueued, __ATOMIC_RELAXED))
        __atomic_store_n(&r->last_enqueued, last, __ATOMIC_RELAXED);
    /* Waking the thread is a system call: only once the queue holds a few
     * MiB (memory stays bounded at full speed: the thread spools it
     * while the application goes on), and once per pass.  A big queue
     * (a big transaction) is also uploaded right away rather than at the
     * next interval, which keeps lag and the spool down.  References
     * count as their frames: the WAL restart waits for them, so they are
     * spooled as often as copies would be. */
    if (r->queued_bytes >= QUEUE_UPLOAD_BYTES)
        r->upload_now = 1;
    if ((r->queued_bytes >= QUEUE_WAKE_BYTES && !r->woken) || r->idle) {
        r->woken = 1;
        r->idle = 0;
        pool_wake(&r->task, POOL_LIGHT);
    }
}

void
rep_refs_alone(replicator *r, int alone)
{
    if (r->opts.pAlone)
        __atomic_store_n(r->opts.pAlone, alone, __ATOMIC_RELAXED);
}

static uint64_t
ref_bytes(const rep_txn *t)
{
    return (uint64_t)t->nframes * (t->page_size + WAL_FRAME_HDR_SIZE);
}

/* Whether x continues reference t (same WAL, next frame, next TXID);
 * t->txid_max is set in the open reference. */
static int
ref_continues(const rep_txn *t, const rep_txn *x)
{
    return t->pos.frame + 1 == x->wal_lo && t->txid_max + 1 == x->txid &&
           t->pos.cksum1 == x->seed1 && t->pos.cksum2 == x->seed2 &&
           t->pos.salt1 == x->pos.salt1 && t->pos.salt2 == x->pos.salt2 &&
           t->page_size == x->page_size;
}

static void
ref_extend(rep_txn *t, const rep_txn *x)
{
    t->nframes += x->nframes;
    t->commit = x->commit;
    t->pos = x->pos;
    t->txid_max = x->txid;
    t->flags |= x->flags;
}

rep_txn *
rep_slot_take(replicator *r)
{
    int open = SLOT_OPEN;
    while (!__atomic_compare_exchange_n(&r->slot_state, &open, SLOT_BUSY, 0,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        if (open == SLOT_EMPTY)
            return NULL;
        open = SLOT_OPEN;
        sched_yield(); /* the writer is extending it: a few stores */
    }
    rep_txn *t = r->slot_spare;
    r->slot_spare = NULL;
    *t = r->slot;
    t->next = NULL;
    r->slot_unacct = 0; /* (BUSY is ours: the writer cannot add to it) */
    __atomic_store_n(&r->slot_state, SLOT_EMPTY, __ATOMIC_RELEASE);
    return t;
}

void
rep_slot_flush(replicator *r)
{
    rep_txn *t = rep_slot_take(r);
    if (!t)
        return;
    if (r->tail)
        r->tail->next = t;
    else
        r->head = t;
    r->tail = t;
    r->refs_queued++;
}

/* The enqueue under mu: a new open reference (the old one flushed to the
 * list), or the open one extended; its bytes accounted. */
static int
enqueue_ref_locked(replicator *r, const rep_txn *x)
{
    rep_txn *t = &r->slot;
    if (!rep_slot_open(r) || !ref_continues(t, x) ||
        ref_bytes(t) + ref_bytes(x) > REF_MAX_BYTES) {
        rep_slot_flush(r);
        if (!r->slot_spare && !(r->slot_spare = ls_malloc(sizeof(*t))))
            return 0;
        *t = *x;
        t->next = NULL;
        t->frames = NULL;
        t->arena = NULL;
        t->txid_max = x->txid;
        __atomic_store_n(&r->slot_state, SLOT_OPEN, __ATOMIC_RELEASE);
    } else {
        ref_extend(t, x);
    }
    if (!r->fenced) {
        sidecar_refs_fence(r->sc, r->pid);
        r->fenced = 1;
    }
    rep_queue_added(r, r->slot_unacct + ref_bytes(x), x->txid);
    r->slot_unacct = 0;
    return 1;
}

int
replicator_enqueue_ref(replicator *r, const rep_txn *x)
{
    /* The common case, without mu: the open reference, not taken by a
     * pass meanwhile (OPEN -> BUSY), continues into x and the bytes not
     * yet accounted stay under QUEUE_WAKE_BYTES (the wake-up is decided
     * under mu, where REF_MAX_BYTES is checked too). */
    int open = SLOT_OPEN;
    if (__atomic_compare_exchange_n(&r->slot_state, &open, SLOT_BUSY, 0,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        rep_txn *t = &r->slot;
        uint64_t b = r->slot_unacct + ref_bytes(x);
        int fast = b < QUEUE_WAKE_BYTES && ref_continues(t, x);
        if (fast) {
            ref_extend(t, x);
            r->slot_unacct = b;
            __atomic_store_n(&r->last_enqueued, x->txid, __ATOMIC_RELAXED);
        }
        __atomic_store_n(&r->slot_state, SLOT_OPEN, __ATOMIC_RELEASE);
        if (fast)
            return 1;
    }
    pthread_mutex_lock(&r->mu);
    int rc = enqueue_ref_locked(r, x);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void
rep_refs_pass(replicator *r)
{
    rep_refs_alone(r, sidecar_alone(r->sc));
    pthread_mutex_lock(&r->mu);
    if (r->fenced && !rep_refs_pending(r)) {
        sidecar_refs_unfence(r->sc, r->pid);
        r->fenced = 0;
    }
    pthread_mutex_unlock(&r->mu);
}

void
replicator_checkpoint_begins(replicator *r)
{
    pthread_mutex_lock(&r->mu);
    if (rep_refs_pending(r) && !r->woken) {
        r->woken = 1;
        r->idle = 0;
        pool_wake(&r->task, POOL_LIGHT);
    }
    pthread_mutex_unlock(&r->mu);
}

void
rep_refs_wait(replicator *r)
{
    if (!sidecar_refs_wait(r->sc, r->pid, REFS_WAIT_MS))
        sqlite3_log(SQLITE_NOTICE,
                    "litestream: another process still names frames of the "
                    "WAL of '%s' after %d ms: restarting it anyway (that "
                    "process covers them with a full image)",
                    r->zDbPath, REFS_WAIT_MS);
}
