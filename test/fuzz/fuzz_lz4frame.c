/*
 * fuzz_lz4frame.c: fuzz target for the streaming LZ4 frame reader
 * (storage/ltx/lz4frame.c), which decodes the snapshots and WAL segments of
 * Litestream v0.3 replicas, read from a bucket or directory anyone may have
 * written to.
 *
 * An input is the object's bytes.  The first byte, if any, picks how much
 * is asked per read (1 to 8161 bytes), so content is handed out across
 * block boundaries at every offset; it is still part of the object.  The reader
 * runs to the end or to its first error.  Nothing may crash, read out of
 * bounds, hang, or return more than the frames can hold (the block maximum
 * times the blocks read), and an error must leave a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"
#include "storage/ltx/ltx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct feed {
    const uint8_t *p;
    size_t n, off;
} feed;

static int
feed_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    feed *f = ctx;
    size_t k = f->n - f->off;

    if (k > n)
        k = n; /* short only at the end, as ltx_read_fn requires */
    memcpy(buf, f->p + f->off, k);
    f->off += k;
    *nRead = k;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    feed f = {data, size, 0};
    ltx_lz4_reader *r = NULL;
    size_t ask = 1, got;
    uint64_t total = 0;
    uint8_t *buf;
    int rc;

    if (size > 0)
        ask = (size_t)data[0] * 32 + 1;
    buf = malloc(ask);
    if (buf == NULL || ltx_lz4_reader_open(feed_read, &f, &r) != SQLITE_OK) {
        free(buf);
        ltx_lz4_reader_free(r);
        return 0;
    }
    do {
        rc = ltx_lz4_reader_read(r, buf, ask, &got);
        total += got;
        if (got > ask)
            abort();
    } while (rc == SQLITE_OK && got == ask);
    if (rc != SQLITE_OK && ltx_lz4_reader_errmsg(r)[0] == 0)
        abort(); /* every error says what it is */
    if (total != ltx_lz4_reader_out(r) || ltx_lz4_reader_in(r) > size)
        abort();
    /* An LZ4 block expands at most 255 times (plus a little). */
    if (total > (uint64_t)size * 256 + 4u * 1024 * 1024)
        abort();
    ltx_lz4_reader_free(r);
    free(buf);
    return 0;
}
