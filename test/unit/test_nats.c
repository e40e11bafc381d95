/*
 * test_nats.c: the parts of the nats backend that need no server: the
 * object-store metadata document (storage/backend/nats_meta.c), byte ranges
 * read from chunk messages (storage/backend/nats_read.c) and nats:// URLs.
 * The backend against a real nats-server is test/integration/test_nats.py.
 *
 * What a user relies on: metadata we write is what the NATS clients write
 * and read (names, headers, digest, chunk size); metadata they write is
 * read leniently but never trusted into a bad subject or an inconsistent
 * object; every byte of a range comes from the right chunk, whether the
 * chunks are uniform (read by sequence) or not (walked), and a corrupt or
 * truncated object is an error, not wrong bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/backend.h"
#include "storage/backend/nats_meta.h"
#include "storage/backend/nats_read.h"
#include "storage/backend/url.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

static void
test_b64(void)
{
    char *z = nats_b64url("app/ltx/0/x.ltx", 15);
    uint8_t *p = NULL;
    size_t n = 0;

    ok(z && strcmp(z, "YXBwL2x0eC8wL3gubHR4") == 0, "base64url: %s", z);
    sqlite3_free(z);
    z = nats_b64url("\xfb\xff", 2);
    ok(z && strcmp(z, "-_8=") == 0, "base64url alphabet and padding: %s", z);
    sqlite3_free(z);
    ok(nats_b64url_decode("-_8=", &p, &n) == SQLITE_OK && n == 2 &&
           p[0] == 0xfb && p[1] == 0xff,
       "decodes padded");
    sqlite3_free(p);
    ok(nats_b64url_decode("-_8", &p, &n) == SQLITE_OK && n == 2,
       "decodes unpadded");
    sqlite3_free(p);
    ok(nats_b64url_decode("a+b=", &p, &n) == SQLITE_CORRUPT && p == NULL,
       "refuses characters outside the alphabet");
    ok(nats_b64url_decode("abcde", &p, &n) == SQLITE_CORRUPT,
       "refuses a bad length");
    z = nats_digest("", 0);
    ok(z && strcmp(z, "SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=") ==
                0,
       "digest of nothing as the clients write it: %s", z);
    sqlite3_free(z);
}

static void
test_meta_roundtrip(void)
{
    nats_meta m, d;
    char *zDoc = NULL, *zErr = NULL, nuid[NATS_META_NUID_LEN + 1];
    int rc;

    memset(&m, 0, sizeof(m));
    {
        int i, bad = 0;
        for (i = 0; i < 1000; i++) {
            nats_nuid(nuid);
            if (strlen(nuid) != 22 ||
                strspn(nuid, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz") != 22)
                bad++;
        }
        ok(bad == 0, "1000 nuids: 22 base62 characters each (%d bad; %s)", bad,
           nuid);
    }
    m.name = "app/ltx/0/0000000000000001-0000000000000001.ltx";
    m.nuid = nuid;
    m.size = 300000;
    m.chunks = 3;
    m.chunk_size = 131072;
    m.created_ms = 1796600000123LL;
    m.digest = "SHA-256=abc=";
    rc = nats_meta_encode(&m, "bkt", &zDoc);
    ok(rc == SQLITE_OK && zDoc, "encode");
    ok(zDoc &&
           strstr(zDoc, "\"headers\":{\"Litestream-Timestamp\":["
                        "\"2026-12-06T") &&
           strstr(zDoc, "\"options\":{\"max_chunk_size\":131072}") &&
           strstr(zDoc, "\"bucket\":\"bkt\"") &&
           strstr(zDoc, "\"mtime\":\"0001-01-01T00:00:00Z\"") &&
           !strstr(zDoc, "deleted"),
       "the clients' fields: %s", zDoc);
    rc = nats_meta_decode(zDoc, strlen(zDoc), &d, &zErr);
    ok(rc == SQLITE_OK && !strcmp(d.name, m.name) && !strcmp(d.nuid, nuid) &&
           d.size == 300000 && d.chunks == 3 && d.chunk_size == 131072 &&
           d.created_ms == m.created_ms && !d.deleted &&
           !strcmp(d.digest, m.digest),
       "decodes what it encodes");
    nats_meta_clear(&d);
    sqlite3_free(zDoc);
    m.deleted = 1;
    rc = nats_meta_encode(&m, "bkt", &zDoc);
    ok(rc == SQLITE_OK && strstr(zDoc, "\"deleted\":true") &&
           strstr(zDoc, "\"size\":0") && strstr(zDoc, "\"chunks\":0") &&
           !strstr(zDoc, "digest"),
       "a delete marker has no size, chunks or digest");
    rc = nats_meta_decode(zDoc, strlen(zDoc), &d, &zErr);
    ok(rc == SQLITE_OK && d.deleted, "decodes a delete marker");
    nats_meta_clear(&d);
    sqlite3_free(zDoc);
}

/* Decodes z and expects failure (message containing zWant) or success. */
static void
meta_case(const char *z, const char *zWant, const char *zWhat)
{
    nats_meta d;
    char *zErr = NULL;
    int rc = nats_meta_decode(z, strlen(z), &d, &zErr);

    if (zWant == NULL)
        ok(rc == SQLITE_OK, "%s", zWhat);
    else
        ok(rc == SQLITE_CORRUPT && zErr && strstr(zErr, zWant), "%s: %s", zWhat,
           zErr ? zErr : "(accepted)");
    nats_meta_clear(&d);
    sqlite3_free(zErr);
}

static void
test_meta_bad(void)
{
    meta_case("{\"name\":\"a\",\"nuid\":\"N1\",\"size\":5,\"chunks\":1,"
              "\"headers\":{\"Litestream-Timestamp\":\"2026-01-02T03:04:05Z\"},"
              "\"future\":[1,2]}",
              NULL, "lenient: header as a string, unknown keys");
    meta_case("[1]", "not a JSON object", "an array");
    meta_case("{\"name\":", "not a JSON object", "truncated JSON");
    meta_case("{\"nuid\":\"N\",\"size\":1,\"chunks\":1}", "no object name",
              "no name");
    meta_case("{\"name\":\"a\",\"nuid\":\"a.>\",\"size\":1,\"chunks\":1}",
              "subject token", "a nuid with a wildcard");
    meta_case("{\"name\":\"a\",\"nuid\":\"N\",\"size\":-1,\"chunks\":1}",
              "non-negative", "a negative size");
    meta_case("{\"name\":\"a\",\"nuid\":\"N\",\"size\":1.5,\"chunks\":1}",
              "non-negative", "a fractional size");
    meta_case("{\"name\":\"a\",\"nuid\":\"N\",\"size\":10,\"chunks\":0}",
              "does not match", "bytes without chunks");
    meta_case("{\"name\":\"a\",\"size\":10,\"chunks\":1}", "without a nuid",
              "chunks without a nuid");
    meta_case("{\"name\":\"a\",\"nuid\":\"N\",\"size\":300000,\"chunks\":2,"
              "\"options\":{\"max_chunk_size\":131072}}",
              "fewer chunks", "too few chunks for the size");
    meta_case("{\"name\":\"a\",\"name\":\"b\",\"nuid\":\"N\"}",
              "not a JSON object", "duplicate keys");
}

/* An in-memory chunk source: chunk i of sizes[] at seqs[i]. */
typedef struct mem_src {
    const uint8_t *data;
    const uint64_t *sizes, *seqs;
    int n;
    int gets; /* messages handed out */
    int gone; /* chunks from this index on are missing */
} mem_src;

static int
mem_at(mem_src *s, int i, nats_chunk *c)
{
    uint64_t off = 0;
    int k;

    for (k = 0; k < i; k++)
        off += s->sizes[k];
    c->data = s->data + off;
    c->n = s->sizes[i];
    c->seq = s->seqs[i];
    c->msg = s;
    s->gets++;
    return SQLITE_OK;
}

static int
mem_next(void *ctx, uint64_t seq, nats_chunk *c)
{
    mem_src *s = ctx;
    int i;

    for (i = 0; i < s->n && i < s->gone; i++)
        if (s->seqs[i] >= seq)
            return mem_at(s, i, c);
    return SQLITE_NOTFOUND;
}

static int
mem_last(void *ctx, nats_chunk *c)
{
    mem_src *s = ctx;
    return s->gone < s->n ? SQLITE_NOTFOUND : mem_at(s, s->n - 1, c);
}

static void
mem_release(void *ctx, nats_chunk *c)
{
    (void)ctx;
    memset(c, 0, sizeof(*c));
}

/* Reads every range [off, off + len) of an object and compares. */
static int
all_ranges(nats_meta *m, mem_src *s, const uint8_t *data, int *pUniform)
{
    nats_chunk_src src = {s, mem_next, mem_last, mem_release};
    nats_chunk_idx idx;
    static const uint64_t offs[] = {0, 1, 99, 100, 101, 250, 299};
    static const uint64_t lens[] = {1, 2, 100, 150, 300};
    uint8_t out[300];
    size_t i, j;
    int bad = 0;

    memset(&idx, 0, sizeof(idx));
    for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            uint64_t end = offs[i] + lens[j] > 300 ? 300 : offs[i] + lens[j];
            char *zWhy = NULL;
            memset(out, 0xee, sizeof(out));
            if (nats_read_range(m, &idx, &src, offs[i], end, out, &zWhy) !=
                    SQLITE_OK ||
                memcmp(out, data + offs[i], (size_t)(end - offs[i])) != 0)
                bad++;
            sqlite3_free(zWhy);
        }
    }
    *pUniform = idx.uniform;
    return bad;
}

static void
test_ranges(void)
{
    uint8_t data[300];
    uint64_t uni[] = {100, 100, 100}, useq[] = {7, 8, 9};
    uint64_t odd[] = {50, 100, 100, 50}, oseq[] = {3, 4, 5, 6};
    uint64_t gap[] = {100, 100, 100}, gseq[] = {3, 10, 11};
    nats_meta m;
    mem_src s;
    int i, uniform = -1, bad, rc;
    char *zWhy = NULL;

    for (i = 0; i < 300; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    memset(&m, 0, sizeof(m));
    m.size = 300;
    m.chunks = 3;
    m.chunk_size = 100;
    s = (mem_src){data, uni, useq, 3, 0, 99};
    bad = all_ranges(&m, &s, data, &uniform);
    ok(bad == 0 && uniform == 1,
       "uniform contiguous chunks: read by "
       "sequence (%d bad)",
       bad);
    m.chunks = 4;
    s = (mem_src){data, odd, oseq, 4, 0, 99};
    bad = all_ranges(&m, &s, data, &uniform);
    ok(bad == 0 && uniform == 0, "uneven chunks: walked (%d bad)", bad);
    m.chunks = 3;
    s = (mem_src){data, gap, gseq, 3, 0, 99};
    bad = all_ranges(&m, &s, data, &uniform);
    ok(bad == 0 && uniform == 0,
       "chunks interleaved with other messages: walked (%d bad)", bad);

    {
        nats_chunk_src src = {&s, mem_next, mem_last, mem_release};
        nats_chunk_idx idx;
        uint8_t out[300];
        memset(&idx, 0, sizeof(idx));
        s = (mem_src){data, uni, useq, 3, 0, 2};
        ok(nats_read_range(&m, &idx, &src, 0, 300, out, &zWhy) ==
               SQLITE_NOTFOUND,
           "a missing chunk is SQLITE_NOTFOUND (deleted meanwhile)");
        memset(&idx, 0, sizeof(idx));
        m.size = 350;
        m.chunks = 3;
        s = (mem_src){data, uni, useq, 3, 0, 99};
        rc = nats_read_range(&m, &idx, &src, 0, 350, out, &zWhy);
        ok(rc == SQLITE_CORRUPT && zWhy && strstr(zWhy, "300 bytes"),
           "chunks shorter than the metadata: SQLITE_CORRUPT (%s)", zWhy);
        sqlite3_free(zWhy);
        zWhy = NULL;
        memset(&idx, 0, sizeof(idx));
        m.size = 300;
        m.digest = nats_digest(data, 299);
        rc = nats_read_range(&m, &idx, &src, 0, 300, out, &zWhy);
        ok(rc == SQLITE_CORRUPT && zWhy && strstr(zWhy, "SHA-256"),
           "a whole read that fails the digest: SQLITE_CORRUPT (%s)", zWhy);
        sqlite3_free(zWhy);
        zWhy = NULL;
        ok(nats_read_range(&m, &idx, &src, 0, 299, out, &zWhy) == SQLITE_OK,
           "a part is not checked against the whole's digest");
        sqlite3_free(m.digest);
        m.digest = nats_digest(data, 300);
        m.digest[8 + 10] = m.digest[8 + 10] == 'A' ? 'B' : 'A';
        ok(nats_read_range(&m, &idx, &src, 0, 300, out, &zWhy) ==
               SQLITE_CORRUPT,
           "a changed digest is caught");
        sqlite3_free(zWhy);
        sqlite3_free(m.digest);
    }
}

static void
test_urls(void)
{
    ls_url *u = NULL;
    backend *b = NULL;
    char *zErr = NULL;
    int rc;

    rc = url_parse("nats://me:s3cret@127.0.0.1:4223/bkt/app/db", &u, &zErr);
    ok(rc == SQLITE_OK && !strcmp(u->scheme, "nats") &&
           !strcmp(u->user, "me") && !strcmp(u->password, "s3cret") &&
           !strcmp(u->host, "127.0.0.1") && u->port == 4223 &&
           !strcmp(u->path, "bkt/app/db") && !strstr(u->redacted, "s3cret"),
       "nats://user:pass@host:port/bucket/path parses, redacted %s",
       u ? u->redacted : zErr);
    url_free(u);
    rc = backend_open("nats://127.0.0.1/", &b, &zErr);
    ok(rc == SQLITE_ERROR && zErr && strstr(zErr, "names no bucket"),
       "no bucket: %s", zErr);
    sqlite3_free(zErr);
    rc = backend_open("nats://127.0.0.1/b.x", &b, &zErr);
    ok(rc == SQLITE_ERROR && zErr && strstr(zErr, "bad NATS bucket name"),
       "bad bucket: %s", zErr);
    sqlite3_free(zErr);
    rc = backend_open("nats://127.0.0.1/b?timeout=soon", &b, &zErr);
    ok(rc == SQLITE_ERROR && zErr && strstr(zErr, "bad timeout"),
       "bad timeout: %s", zErr);
    sqlite3_free(zErr);
    rc = backend_open("nats://u:pw@127.0.0.1/b/p?retries=1", &b, &zErr);
    ok(rc == SQLITE_OK && b && !strstr(backend_url(b), ":pw@"),
       "opens without I/O, URL redacted: %s", b ? backend_url(b) : zErr);
    backend_close(b);
}

int
main(void)
{
    api_init();
    test_b64();
    test_meta_roundtrip();
    test_meta_bad();
    test_ranges();
    test_urls();
    return tap_done();
}
