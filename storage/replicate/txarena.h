/*
 * storage/replicate/txarena.h: where captured transactions live between the
 * commit and the spool.
 *
 * A capture allocates one rep_txn plus its frames per commit on the
 * application thread, and the replicator thread frees it a moment later:
 * with malloc that is a cross-thread free per commit, which keeps the C
 * allocator trimming and faulting pages back in.  Instead transactions are
 * carved out of 1 MiB chunks with a bump pointer; each chunk counts the
 * transactions in it (plus one while it is the current chunk) and is freed
 * when the last is released.  One atomic add on each side per transaction.
 *
 * Threads: txarena_alloc() and txarena_retire() by the capturing thread
 * (under the per-database capture mutex); txarena_release() by whoever
 * frees the transaction.
 */
#ifndef LITESTREAM_TXARENA_H
#define LITESTREAM_TXARENA_H

#include <stddef.h>

#include "storage/replicate/replicator.h"

typedef struct txchunk txchunk;

/*
 * A zeroed rep_txn with room for `frames_bytes` bytes at t->frames, from
 * *cur (a new chunk replaces it when full).  NULL if it is too big for a
 * chunk or memory is short: the caller then uses ls_malloc for both.
 */
rep_txn *txarena_alloc(txchunk **cur, size_t frames_bytes);

/*
 * Capturing straight into the arena: the free space of the current chunk
 * (a new chunk if less than min_avail is left), after room for a rep_txn.
 * Valid until the next call on *cur.  *avail receives its size.
 */
uint8_t *txarena_reserve(txchunk **cur, size_t min_avail, size_t *avail);

/*
 * Turns the first `used` bytes of the reservation at buf (from
 * txarena_reserve on the same chunk, nothing allocated since) into a
 * zeroed rep_txn whose frames point at buf.
 */
rep_txn *txarena_commit(txchunk *cur, uint8_t *buf, size_t used);

/* Releases a transaction from txarena_alloc() or txarena_commit(). */
void txarena_release(rep_txn *t);

/* Drops the capturing side's hold on its current chunk (at close). */
void txarena_retire(txchunk **cur);

#endif
