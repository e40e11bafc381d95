/*
 * test_lz4frame.c: unit tests of the streaming LZ4 frame reader
 * (storage/ltx/lz4frame.c) and of XXH32 (storage/ltx/xxh32.c).
 *
 * Proves: XXH32 matches the published vectors and streams to the same
 * value however the input is split; frames with several blocks (compressed,
 * stored, independent or linked, with or without block checksums, content
 * size and content checksum) decode to their content whatever the read
 * sizes; concatenated and skippable frames; the frames of the lz4 command
 * line tool and of Litestream v0.3.13 in the fuzz corpus; and that every
 * damage (each checksum, block lengths, content size, magic, reserved bits,
 * every truncation, an empty or age-encrypted object) is refused with a
 * message saying what is wrong.
 *
 * Single-threaded; reads the corpus under $LITESTREAM_SRCDIR.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "storage/ltx/ltx.h"
#include "storage/ltx/ltx_int.h"
#include "test/tap.h"

typedef struct mem {
    const uint8_t *p;
    size_t n, off;
} mem;

static int
mem_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    mem *m = ctx;
    size_t k = m->n - m->off < n ? m->n - m->off : n;

    memcpy(buf, m->p + m->off, k);
    m->off += k;
    *nRead = k;
    return 0;
}

/* Decodes p[0..n) reading `ask` bytes at a time; the content in *out
 * (malloc'd, *nout), the reader's message in zErr.  Returns the code. */
static int
decode(const uint8_t *p, size_t n, size_t ask, uint8_t **out, size_t *nout,
       char *zErr, size_t nErr)
{
    mem m = {p, n, 0};
    ltx_lz4_reader *r = NULL;
    size_t cap = 1024, len = 0, got;
    uint8_t *o = malloc(cap);
    int rc = ltx_lz4_reader_open(mem_read, &m, &r);

    while (rc == SQLITE_OK) {
        if (len + ask > cap) {
            cap = (len + ask) * 2;
            o = realloc(o, cap);
        }
        rc = ltx_lz4_reader_read(r, o + len, ask, &got);
        len += got;
        if (got < ask)
            break;
    }
    snprintf(zErr, nErr, "%s", r ? ltx_lz4_reader_errmsg(r) : "nomem");
    ltx_lz4_reader_free(r);
    if (out) {
        *out = o;
        *nout = len;
    } else {
        free(o);
    }
    return rc;
}

static void
put32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

struct blk {
    int raw;
    const uint8_t *p;
    uint32_t n;
};

/* A frame with FLG flg, block maximum id bd (4..7) and the given blocks
 * of content[0..ncontent). */
static size_t
frame(uint8_t *out, uint8_t flg, int bd, uint64_t csize, const struct blk *b,
      int nb, const uint8_t *content, size_t ncontent)
{
    size_t k = 4, d;

    put32le(out, 0x184D2204u);
    out[k++] = flg;
    out[k++] = (uint8_t)(bd << 4);
    if (flg & 0x08)
        for (int i = 0; i < 8; i++)
            out[k++] = (uint8_t)(csize >> (8 * i));
    if (flg & 0x01)
        for (int i = 0; i < 4; i++)
            out[k++] = 0x11; /* a dictionary id */
    d = k - 4;
    out[k] = (uint8_t)(ltx_xxh32(out + 4, d) >> 8);
    k++;
    for (int i = 0; i < nb; i++) {
        put32le(out + k, b[i].n | (b[i].raw ? 0x80000000u : 0));
        memcpy(out + k + 4, b[i].p, b[i].n);
        k += 4 + b[i].n;
        if (flg & 0x10) {
            put32le(out + k, ltx_xxh32(b[i].p, b[i].n));
            k += 4;
        }
    }
    put32le(out + k, 0);
    k += 4;
    if (flg & 0x04) {
        put32le(out + k, ltx_xxh32(content, ncontent));
        k += 4;
    }
    return k;
}

#define BLK      65536u
#define NCONTENT (2 * BLK + 10000)

static uint8_t content[NCONTENT];
static uint8_t comp[3][BLK + BLK / 255 + 64];
static struct blk blocks[3];
static uint8_t buf[NCONTENT + 4096];

static void
test_xxh32(void)
{
    ltx_xxh32_state s;
    int good = 1;

    ok(ltx_xxh32("", 0) == 0x02CC5D05u, "XXH32('') = 02cc5d05");
    ok(ltx_xxh32("abc", 3) == 0x32D153FFu, "XXH32('abc') = 32d153ff");
    for (size_t split = 1; split < 40; split += 3) {
        ltx_xxh32_init(&s);
        for (size_t i = 0; i < 1000; i += split)
            ltx_xxh32_update(&s, content + i,
                             i + split > 1000 ? 1000 - i : split);
        good &= ltx_xxh32_digest(&s) == ltx_xxh32(content, 1000);
    }
    ok(good, "streamed XXH32 equals one-shot for every split");
}

/* Content and its three blocks (two compressed, the last stored). */
static void
setup(void)
{
    void *st = ltx_block_state_new();

    for (size_t i = 0; i < NCONTENT; i++)
        content[i] = (uint8_t)((i / 7) ^ (i % 13 == 0 ? i >> 5 : 0));
    for (int b = 0; b < 2; b++) {
        size_t n = ltx_block_encode(st, content + b * BLK, BLK, comp[b],
                                    sizeof(comp[b]));
        blocks[b] = (struct blk){0, comp[b], (uint32_t)n};
    }
    blocks[2] = (struct blk){1, content + 2 * BLK, 10000};
    free(st);
}

static void
expect_ok(const uint8_t *f, size_t n, const uint8_t *want, size_t nwant,
          const char *zWhat)
{
    static const size_t asks[] = {1, 777, 65536, 1 << 20};
    char zErr[256];
    int good = 1;

    for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
        uint8_t *o;
        size_t no;
        int rc = decode(f, n, asks[i], &o, &no, zErr, sizeof(zErr));
        good &= rc == SQLITE_OK && no == nwant && memcmp(o, want, no) == 0;
        if (rc != SQLITE_OK)
            diag("%s: %s", zWhat, zErr);
        free(o);
    }
    ok(good, "%s decodes to its %zu bytes at every read size", zWhat, nwant);
}

static void
expect_err(const uint8_t *f, size_t n, int want_rc, const char *zWant,
           const char *zWhat)
{
    char zErr[256];
    int rc = decode(f, n, 4096, NULL, NULL, zErr, sizeof(zErr));

    ok(rc == want_rc && strstr(zErr, zWant) != NULL, "%s: refused (%d): %s",
       zWhat, rc, zErr);
}

static void
test_frames(void)
{
    size_t n;

    n = frame(buf, 0x64, 4, 0, blocks, 3, content, NCONTENT);
    expect_ok(buf, n, content, NCONTENT, "independent blocks + checksum");
    n = frame(buf, 0x60 | 0x10 | 0x08 | 0x04, 4, NCONTENT, blocks, 3, content,
              NCONTENT);
    expect_ok(buf, n, content, NCONTENT,
              "block checksums + content size + checksum");
    n = frame(buf, 0x40, 7, 0, blocks, 3, content, NCONTENT);
    expect_ok(buf, n, content, NCONTENT, "linked flag, 4 MiB maximum");
    /* Two frames and a skippable one between them. */
    n = frame(buf, 0x64, 4, 0, blocks, 1, content, BLK);
    put32le(buf + n, 0x184D2A5Au);
    put32le(buf + n + 4, 3);
    n += 11;
    n += frame(buf + n, 0x64, 4, 0, blocks + 1, 1, content + BLK, BLK);
    expect_ok(buf, n, content, 2 * BLK, "two frames around a skippable one");
}

/* A block that copies the previous block through a match: only valid when
 * linked (the reader keeps a 64 KiB window). */
static void
test_linked(void)
{
    uint8_t b2[16], half[512];
    struct blk b[2];
    size_t k = 0, n;

    for (int i = 0; i < 512; i++)
        half[i] = content[i];
    b2[k++] = 0x0F; /* no literals, match of 4+15+255+233 = 507 */
    b2[k++] = 0x00; /* offset 512 */
    b2[k++] = 0x02;
    b2[k++] = 255;
    b2[k++] = 233;
    b2[k++] = 0x50; /* 5 final literals */
    memcpy(b2 + k, half + 507, 5);
    k += 5;
    b[0] = (struct blk){1, half, 512};
    b[1] = (struct blk){0, b2, (uint32_t)k};
    static uint8_t want[1024];
    memcpy(want, half, 512);
    memcpy(want + 512, half, 512);
    n = frame(buf, 0x44, 4, 0, b, 2, want, 1024);
    expect_ok(buf, n, want, 1024, "linked blocks (a match into the previous)");
    n = frame(buf, 0x64, 4, 0, b, 2, want, 1024);
    expect_err(buf, n, SQLITE_CORRUPT, "not valid LZ4",
               "the same blocks marked independent");
}

static void
test_damage(void)
{
    size_t n = frame(buf, 0x60 | 0x10 | 0x08 | 0x04, 4, NCONTENT, blocks, 3,
                     content, NCONTENT);
    size_t first = 4 + 2 + 8 + 1; /* first block size field */
    static uint8_t d[sizeof(buf)];
    int all = 1;

#define DAMAGE(off, val, rc, msg, what)                                        \
    do {                                                                       \
        memcpy(d, buf, n);                                                     \
        d[off] = (uint8_t)(val);                                               \
        expect_err(d, n, rc, msg, what);                                       \
    } while (0)
    DAMAGE(n - 1, buf[n - 1] ^ 1, SQLITE_CORRUPT, "content checksum",
           "content checksum");
    DAMAGE(first + 4 + blocks[0].n, buf[first + 4 + blocks[0].n] ^ 1,
           SQLITE_CORRUPT, "block at offset", "block checksum");
    DAMAGE(14, buf[14] ^ 1, SQLITE_CORRUPT, "header checksum",
           "header checksum");
    DAMAGE(0, 0x05, SQLITE_CORRUPT, "not an LZ4 frame", "magic");
    DAMAGE(first + 2, 0x01, SQLITE_CORRUPT, "has length", "block length");
    DAMAGE(4, buf[4] | 0x02, SQLITE_CORRUPT, "invalid descriptor",
           "reserved FLG bit");
    DAMAGE(5, 0x30, SQLITE_CORRUPT, "invalid descriptor", "block max id 3");
#undef DAMAGE
    n = frame(buf, 0x60 | 0x08 | 0x04, 4, NCONTENT + 1, blocks, 3, content,
              NCONTENT);
    expect_err(buf, n, SQLITE_CORRUPT, "its header says", "content size");
    n = frame(buf, 0x60 | 0x01, 4, 0, blocks, 1, content, BLK);
    expect_err(buf, n, SQLITE_FORMAT, "dictionary", "dictionary id");
    n = frame(buf, 0x64, 4, 0, blocks, 3, content, NCONTENT);
    for (size_t cut = 0; cut < n; cut += (cut < 64 || cut > n - 64) ? 1 : 997) {
        char zErr[256];
        int rc = decode(buf, cut, 4096, NULL, NULL, zErr, sizeof(zErr));
        if (rc != SQLITE_CORRUPT || !zErr[0]) {
            all = 0;
            diag("truncated to %zu: rc %d '%s'", cut, rc, zErr);
        }
    }
    ok(all, "every truncation is refused with a message");
}

/* Frames of the lz4 tool and of Litestream v0.3.13 (the fuzz corpus). */
static void
test_corpus(void)
{
    static const struct {
        const char *name;
        int rc;
        long size; /* -1: any */
        const char *msg;
    } c[] = {
        {"linked-64k", SQLITE_OK, 70000, ""},
        {"blockcksum-size", SQLITE_OK, 70000, ""},
        {"nocrc", SQLITE_OK, 70000, ""},
        {"two-frames", SQLITE_OK, 10, ""},
        {"skippable-then-frame", SQLITE_OK, 5, ""},
        {"v03-snapshot", SQLITE_OK, 16384, ""},
        {"v03-wal-header", SQLITE_OK, 32 + 24 + 4096, ""},
        {"v03-truncated", SQLITE_CORRUPT, -1, "truncated"},
        {"age", SQLITE_FORMAT, -1, "age-encrypted"},
        {"empty", SQLITE_CORRUPT, -1, "empty"},
    };
    const char *zSrc = getenv("LITESTREAM_SRCDIR");

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char path[4096], zErr[256];
        uint8_t *f = NULL, *o = NULL;
        size_t nf = 0, no = 0;
        FILE *fp;
        snprintf(path, sizeof(path), "%s/test/fuzz/corpus/lz4frame/%s",
                 zSrc ? zSrc : ".", c[i].name);
        fp = fopen(path, "rb");
        if (!ok(fp != NULL, "corpus file %s", path))
            continue;
        f = malloc(1 << 20);
        nf = fread(f, 1, 1 << 20, fp);
        fclose(fp);
        int rc = decode(f, nf, 5000, &o, &no, zErr, sizeof(zErr));
        ok(rc == c[i].rc && (c[i].size < 0 || (long)no == c[i].size) &&
               strstr(zErr, c[i].msg) != NULL,
           "%s: rc %d, %zu bytes, '%s'", c[i].name, rc, no, zErr);
        if (strncmp(c[i].name, "v03-snapshot", 12) == 0)
            ok(no >= 16 && memcmp(o, "SQLite format 3", 16) == 0,
               "the v0.3 snapshot is a database file");
        free(f);
        free(o);
    }
}

int
main(void)
{
    setup();
    test_xxh32();
    test_frames();
    test_linked();
    test_damage();
    test_corpus();
    return tap_done();
}
