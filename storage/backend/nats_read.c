/*
 * storage/backend/nats_read.c: a byte range of an object-store object from
 * its chunk messages (see nats_read.h).
 *
 * Invariants:
 *   1. Every byte of [off, end) comes from the chunk that holds it, placed
 *      by the sum of the sizes before it (walk) or by k * cs when the index
 *      proved the chunks uniform; a chunk read by sequence that is not the
 *      one expected (another subject's, or another size) sends the read
 *      back to the walk, never into the output.
 *   2. Chunks that end before the metadata's size is reached are an error
 *      (SQLITE_CORRUPT), not a short read.
 *   3. A whole-object read is compared with the metadata's SHA-256 digest
 *      (base64 or base64url, with or without padding, as clients write it).
 *
 * Threads: the caller's.
 */
#include "storage/backend/nats_read.h"

#include <string.h>

#include "storage/base/sqlite.h"

typedef struct read_ctx {
    const nats_meta *m;
    nats_chunk_idx *idx;
    const nats_chunk_src *src;
    uint64_t off, end;
    uint8_t *out;
} read_ctx;

/* Copies the part of the chunk at [pos, pos + c->n) inside the range. */
static void
copy_part(read_ctx *r, uint64_t pos, const nats_chunk *c)
{
    uint64_t lo = pos > r->off ? pos : r->off;
    uint64_t hi = pos + c->n < r->end ? pos + c->n : r->end;

    if (lo < hi)
        memcpy(r->out + (lo - r->off), c->data + (lo - pos), (size_t)(hi - lo));
}

/* Builds the index from chunk 0 (kept in *c0) and the last chunk. */
static int
build_index(read_ctx *r, nats_chunk *c0)
{
    const nats_meta *m = r->m;
    uint64_t M = m->chunk_size ? m->chunk_size : NATS_META_CHUNK_SIZE;
    nats_chunk last;
    int rc = r->src->xNext(r->src->ctx, 1, c0);

    if (rc != SQLITE_OK)
        return rc;
    r->idx->first = c0->seq;
    r->idx->cs = c0->n;
    r->idx->uniform = m->chunks == 1 && c0->n == m->size;
    if (m->chunks > 1) {
        memset(&last, 0, sizeof(last));
        rc = r->src->xLast(r->src->ctx, &last);
        if (rc != SQLITE_OK) {
            r->src->xRelease(r->src->ctx, c0);
            return rc;
        }
        r->idx->uniform = c0->n == M && last.seq > c0->seq &&
                          last.seq - c0->seq == m->chunks - 1 && last.n > 0 &&
                          last.n <= M &&
                          (m->chunks - 1) * M + last.n == m->size;
        r->src->xRelease(r->src->ctx, &last);
    }
    r->idx->valid = 1;
    return SQLITE_OK;
}

/* Reads by sequence numbers; SQLITE_DONE when a chunk is not as indexed. */
static int
read_uniform(read_ctx *r, nats_chunk *c0)
{
    const nats_chunk_idx *x = r->idx;
    uint64_t k, kEnd = (r->end - 1) / x->cs;
    int rc = SQLITE_OK;

    for (k = r->off / x->cs; k <= kEnd && rc == SQLITE_OK; k++) {
        uint64_t want = k + 1 < r->m->chunks ? x->cs : r->m->size - k * x->cs;
        nats_chunk c;
        if (k == 0 && c0->msg) {
            copy_part(r, 0, c0);
            continue;
        }
        memset(&c, 0, sizeof(c));
        rc = r->src->xNext(r->src->ctx, x->first + k, &c);
        if (rc != SQLITE_OK)
            break;
        if (c.seq != x->first + k || c.n != want)
            rc = SQLITE_DONE;
        else
            copy_part(r, k * x->cs, &c);
        r->src->xRelease(r->src->ctx, &c);
    }
    return rc;
}

/* Reads by walking the chunks in order from chunk 0. */
static int
read_walk(read_ctx *r, nats_chunk *c0, char **pzWhy)
{
    uint64_t pos = 0, seq = r->idx->first, i;
    int rc = SQLITE_OK;

    for (i = 0; i < r->m->chunks && pos < r->end; i++) {
        nats_chunk c;
        memset(&c, 0, sizeof(c));
        if (i == 0 && c0->msg)
            c = *c0;
        else
            rc = r->src->xNext(r->src->ctx, i ? seq + 1 : seq, &c);
        if (rc != SQLITE_OK)
            return rc;
        seq = c.seq;
        copy_part(r, pos, &c);
        pos += c.n;
        if (c.msg != c0->msg)
            r->src->xRelease(r->src->ctx, &c);
    }
    if (pos < r->end) {
        *pzWhy = sqlite3_mprintf("its chunks hold %llu bytes, its metadata "
                                 "says %llu",
                                 (unsigned long long)pos,
                                 (unsigned long long)r->m->size);
        return SQLITE_CORRUPT;
    }
    return SQLITE_OK;
}

/* The digest's value normalized to unpadded base64url, into buf. */
static void
digest_norm(const char *z, char *buf, size_t n)
{
    const char *v = strchr(z, '=');
    size_t o = 0;

    for (v = v ? v + 1 : z; *v && o + 1 < n; v++) {
        char c = *v == '+' ? '-' : *v == '/' ? '_' : *v;
        if (c != '=')
            buf[o++] = c;
    }
    buf[o] = 0;
}

static int
check_digest(read_ctx *r, char **pzWhy)
{
    char *zGot;
    char a[64], b[64];
    int same;

    if (r->off != 0 || r->end != r->m->size || r->m->digest == NULL ||
        sqlite3_strnicmp(r->m->digest, "SHA-256=", 8) != 0)
        return SQLITE_OK;
    zGot = nats_digest(r->out, (size_t)r->m->size);
    if (zGot == NULL)
        return SQLITE_NOMEM;
    digest_norm(zGot, a, sizeof(a));
    digest_norm(r->m->digest, b, sizeof(b));
    same = strcmp(a, b) == 0;
    sqlite3_free(zGot);
    if (same)
        return SQLITE_OK;
    *pzWhy = sqlite3_mprintf("its content does not match its SHA-256 digest "
                             "(%s)",
                             r->m->digest);
    return SQLITE_CORRUPT;
}

int
nats_read_range(const nats_meta *m, nats_chunk_idx *idx,
                const nats_chunk_src *src, uint64_t off, uint64_t end,
                uint8_t *out, char **pzWhy)
{
    read_ctx r = {m, idx, src, off, end, out};
    nats_chunk c0;
    int rc = SQLITE_OK;

    *pzWhy = NULL;
    memset(&c0, 0, sizeof(c0));
    if (off >= end)
        return SQLITE_OK;
    if (!idx->valid)
        rc = build_index(&r, &c0);
    if (rc == SQLITE_OK && idx->uniform && idx->cs > 0) {
        rc = read_uniform(&r, &c0);
        if (rc == SQLITE_DONE)
            idx->uniform = 0;
    }
    if (rc == SQLITE_OK && !idx->uniform)
        rc = read_walk(&r, &c0, pzWhy);
    if (c0.msg)
        src->xRelease(src->ctx, &c0);
    if (rc == SQLITE_OK)
        rc = check_digest(&r, pzWhy);
    return rc;
}
