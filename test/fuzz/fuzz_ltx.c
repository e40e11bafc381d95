/*
 * fuzz_ltx.c: libFuzzer target for the LTX codec (storage/ltx*.c).
 *
 * Each input is run through, in turn:
 *   1. the streaming decoder: header, every page, close (index, trailer,
 *      checksums);
 *   2. ltx_index_parse over the input as the tail of a file of its size,
 *      then ltx_frame_decode of every frame it lists;
 *   3. ltx_frame_decode of the input as a lone frame (the first byte picks
 *      the page size);
 *   4. when the input is a valid file: ltx_merge of it alone (its output must
 *      decode and verify) and ltx_expand if it is a snapshot.
 * Oracles besides the sanitizers: a file the decoder accepts must also pass
 * the random-access path, and what the merge writes must decode.  Any
 * violation aborts.  Replayed over test/fuzz/corpus/ltx by replay.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "storage/ltx/ltx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
    uint8_t *p;
    size_t n, cap;
};

static int
out_write(void *ctx, const void *buf, size_t n)
{
    struct out *o = ctx;

    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->n + n)
            cap *= 2;
        uint8_t *p = realloc(o->p, cap);
        if (!p)
            return 1;
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->n, buf, n);
    o->n += n;
    return 0;
}

static int
discard_pwrite(void *ctx, const void *buf, size_t n, uint64_t off)
{
    (void)ctx;
    (void)buf;
    (void)n;
    (void)off;
    return 0;
}

/* The whole streaming decode; returns its result code. */
static int
decode_all(const uint8_t *data, size_t size, ltx_header *hdr)
{
    struct ltx_membuf mb = {data, size, 0};
    ltx_decoder *d = NULL;
    uint8_t *page = NULL;
    ltx_trailer t;
    uint32_t pgno;
    int rc = ltx_decoder_open(ltx_membuf_read, &mb, &d);

    if (rc != SQLITE_OK)
        goto out;
    *hdr = *ltx_decoder_header(d);
    if (!(page = malloc(hdr->page_size))) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    while ((rc = ltx_decoder_page(d, &pgno, page)) == SQLITE_OK)
        ;
    if (rc == SQLITE_DONE)
        rc = ltx_decoder_close(d, &t);
    if (rc != SQLITE_OK && ltx_decoder_errmsg(d)[0] == 0)
        abort(); /* every error carries a message */
out:
    free(page);
    ltx_decoder_free(d);
    return rc;
}

/* Random access over the input; returns SQLITE_OK if every frame listed
 * decodes. */
static int
random_access(const uint8_t *data, size_t size, uint32_t page_size)
{
    ltx_index_entry *e = NULL;
    ltx_trailer t;
    uint32_t count = 0;
    uint64_t need = 0;
    uint8_t *page = malloc(page_size);
    char err[256];
    int rc;

    rc = ltx_index_parse(data, size, size, &e, &count, &t, &need, err,
                         sizeof(err));
    if (rc == SQLITE_TOOBIG && need <= size)
        abort(); /* the whole file is always enough */
    for (uint32_t i = 0; rc == SQLITE_OK && page && i < count; i++) {
        if (e[i].offset > size || e[i].size > size - e[i].offset)
            abort(); /* entries stay inside the file */
        rc = ltx_frame_decode(data + e[i].offset, e[i].size, page_size,
                              e[i].pgno, page, err, sizeof(err));
    }
    free(e);
    free(page);
    return rc;
}

static void
lone_frame(const uint8_t *data, size_t size)
{
    uint32_t page_size, pgno;
    uint8_t *page;
    char err[256];

    if (size < 5)
        return;
    page_size = 512u << (data[0] & 7);
    pgno = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 |
           (uint32_t)data[3] << 8 | data[4];
    if ((page = malloc(page_size)) != NULL)
        ltx_frame_decode(data + 1, size - 1, page_size, pgno, page, err,
                         sizeof(err));
    free(page);
}

/* Merges the (valid) input alone and checks the output decodes. */
static void
merge_and_expand(const uint8_t *data, size_t size, const ltx_header *h)
{
    struct ltx_membuf mb = {data, size, 0};
    struct out o = {0};
    ltx_decoder *d = NULL;
    ltx_header oh, g;
    ltx_trailer ot;
    uint64_t ck;
    char err[256];
    int rc;

    if (ltx_decoder_open(ltx_membuf_read, &mb, &d) != SQLITE_OK)
        abort();
    rc = ltx_merge(&d, 1, 0, h->timestamp, out_write, &o, &oh, &ot, err,
                   sizeof(err));
    ltx_decoder_free(d);
    d = NULL;
    if (rc == SQLITE_OK && decode_all(o.p, o.n, &g) != SQLITE_OK)
        abort();
    if (rc != SQLITE_OK && rc != SQLITE_NOMEM && rc != SQLITE_MISUSE)
        abort(); /* a verified file always merges (commit-0 NoChecksum
                    files cannot be re-encoded: MISUSE) */
    free(o.p);
    if (!ltx_is_snapshot(h))
        return;
    mb.off = 0;
    if (ltx_decoder_open(ltx_membuf_read, &mb, &d) != SQLITE_OK)
        abort();
    rc = ltx_expand(d, discard_pwrite, NULL, &ck, err, sizeof(err));
    if (rc != SQLITE_OK && rc != SQLITE_NOMEM)
        abort();
    ltx_decoder_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ltx_header h;
    int rc = decode_all(data, size, &h);

    if (rc == SQLITE_OK && random_access(data, size, h.page_size))
        abort(); /* a verified file must be randomly accessible */
    if (rc != SQLITE_OK)
        random_access(data, size, 4096);
    lone_frame(data, size);
    if (rc == SQLITE_OK)
        merge_and_expand(data, size, &h);
    return 0;
}
