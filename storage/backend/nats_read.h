/*
 * storage/backend/nats_read.h: reading a byte range of a NATS object-store
 * object from its chunk messages (used by storage/backend/nats_store.c;
 * storage/backend/nats.c supplies the messages; nothing here touches the
 * network).
 *
 * The chunks of an object are the messages of one subject, in stream
 * order.  An index (nats_chunk_idx) is built from chunk 0 and the last
 * chunk: when it proves the chunks uniform and contiguous (chunk 0 has the
 * object's chunk size M, the last chunk's sequence is first + chunks - 1,
 * and (chunks - 1) * M + size of the last == object size; every chunk
 * being at most M, all but the last then hold exactly M bytes), chunk k is
 * read at sequence first + k.  Otherwise the chunks are walked in order.
 *
 * Threads: the caller's; no state of its own.
 */
#ifndef LITESTREAM_NATS_READ_H
#define LITESTREAM_NATS_READ_H

#include <stdint.h>

#include "storage/backend/nats_meta.h"

/* One chunk message lent by the source. */
typedef struct nats_chunk {
    const uint8_t *data;
    uint64_t n;
    uint64_t seq; /* its stream sequence */
    void *msg;    /* the source's handle, for xRelease */
} nats_chunk;

/*
 * Where chunks come from.  xNext: the first chunk at or after sequence
 * seq; xLast: the last chunk.  Both return SQLITE_OK with *c filled (give
 * it back with xRelease), SQLITE_NOTFOUND when there is none, or another
 * code (its message kept by the source).
 */
typedef struct nats_chunk_src {
    void *ctx;
    int (*xNext)(void *ctx, uint64_t seq, nats_chunk *c);
    int (*xLast)(void *ctx, nats_chunk *c);
    void (*xRelease)(void *ctx, nats_chunk *c);
} nats_chunk_src;

/* What is known of an object's chunks; zero it before the first read. */
typedef struct nats_chunk_idx {
    int valid;      /* built */
    int uniform;    /* chunk k is at first + k, chunk size cs */
    uint64_t first; /* sequence of chunk 0 */
    uint64_t cs;    /* bytes of every chunk but the last (when uniform) */
} nats_chunk_idx;

/*
 * Reads [off, end) of the object m (off < end <= m->size) into out,
 * building *idx first when it is not valid.  Returns SQLITE_OK;
 * SQLITE_NOTFOUND when a chunk is missing (the object was deleted or
 * replaced meanwhile: drop the index and start over); SQLITE_CORRUPT with
 * *pzWhy (sqlite3_mprintf'd) when the chunks disagree with the metadata or
 * a whole-object read fails its SHA-256 digest; the source's other codes.
 */
int nats_read_range(const nats_meta *m, nats_chunk_idx *idx,
                    const nats_chunk_src *src, uint64_t off, uint64_t end,
                    uint8_t *out, char **pzWhy);

#endif
