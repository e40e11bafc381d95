/*
 * fuzz_age.c: fuzz target for the age decoders (storage/backend/age_stream.c),
 * which read objects from the replica and identity files from the disk.
 *
 * The first byte of an input picks what the rest is:
 *   0: an age file, decrypted with the identity of the age specification's
 *      examples (AGE-SECRET-KEY-1GFPYY...): the header must parse into a
 *      consistent result (length within the input, MAC offset inside it)
 *      or fail with SQLITE_TOOBIG / SQLITE_FORMAT / SQLITE_CORRUPT; an
 *      unwrapped key must open the payload or fail cleanly.  Then the
 *      same bytes are encrypted as plaintext with our layout and must
 *      decrypt back to themselves, at the size age_cipher_size() says,
 *      which age_plain_size() maps back.
 *   1: a STREAM payload under a fixed payload key, opened from chunk
 *      data[1] % 4, at most data[2] chunks (0: all): 0 with at most the
 *      input's bytes, or -1 / -2.
 *   2: an identity file: parsed, each identity within bounds.
 * Never a crash, a leak or a read outside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/age_stream.h"
#include "storage/backend/sigv4.h"
#include "storage/base/sqlite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SPEC_SK                                                                \
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EG"  \
    "AEX"

static void
fuzz_file(const uint8_t *p, size_t n)
{
    uint8_t sk[32], pk[32], fk[AGE_FILE_KEY], key[32], *q;
    const char *zWhy = NULL;
    uint64_t bad = 0;
    size_t np = 0;
    age_header h;
    int rc;

    rc = age_header_parse(p, n, &h, &zWhy);
    if (rc != SQLITE_OK && rc != SQLITE_TOOBIG && rc != SQLITE_FORMAT &&
        rc != SQLITE_CORRUPT)
        abort();
    if (rc != SQLITE_OK)
        return;
    if (h.len > n || h.mac_end >= h.len || h.nx > AGE_MAX_X25519 ||
        h.nx + h.nother == 0)
        abort();
    age_bech32_decode(SPEC_SK, strlen(SPEC_SK), "age-secret-key-", sk, &zWhy);
    sigv4_x25519(sk, NULL, pk);
    rc = age_unwrap(&h, p, (const uint8_t(*)[32])sk, (const uint8_t(*)[32])pk,
                    1, fk, &zWhy);
    if (rc != SQLITE_OK || n < h.len + 16)
        return;
    age_payload_key(fk, p + h.len, key);
    q = malloc(n - h.len - 16 + 1);
    memcpy(q, p + h.len + 16, n - h.len - 16);
    if (age_stream_open(key, 0, UINT64_MAX, q, n - h.len - 16, q, &np, &bad) ==
            0 &&
        np > n - h.len - 16)
        abort();
    free(q);
}

/* Our layout around p[0..n): encrypt, check the size, decrypt back. */
static void
fuzz_roundtrip(const uint8_t *p, size_t n)
{
    uint8_t sk[32], rcpt[1][32], key[32], *c, *out;
    const char *zWhy = NULL;
    uint64_t cn = age_cipher_size(n), plain = 0, i, bad = 0;
    uint64_t nch = n == 0 ? 1 : (n + AGE_CHUNK - 1) / AGE_CHUNK;
    size_t np = 0;

    if (n > 200000)
        return;
    age_bech32_decode(SPEC_SK, strlen(SPEC_SK), "age-secret-key-", sk, &zWhy);
    sigv4_x25519(sk, NULL, rcpt[0]);
    c = malloc(cn);
    if (age_prefix_build((const uint8_t(*)[32])rcpt, 1, c, key) != 0)
        abort();
    for (i = 0; i < nch; i++) {
        size_t k = (size_t)(i + 1 < nch ? AGE_CHUNK : n - i * AGE_CHUNK);
        if (age_chunk_seal(key, i, i + 1 == nch, p + i * AGE_CHUNK, k,
                           c + AGE_PREFIX + i * AGE_CCHUNK) != 0)
            abort();
    }
    if (age_plain_size(cn, &plain) != 0 || plain != n)
        abort();
    out = malloc(cn);
    memcpy(out, c, cn);
    fuzz_file(out, cn); /* a header of ours parses and unwraps */
    if (age_stream_open(key, 0, UINT64_MAX, c + AGE_PREFIX, cn - AGE_PREFIX, c,
                        &np, &bad) != 0 ||
        np != n || memcmp(c, p, n) != 0)
        abort();
    free(out);
    free(c);
}

static void
fuzz_stream(const uint8_t *p, size_t n)
{
    uint8_t key[32], *q;
    uint64_t bad = 0, c0, nreq;
    size_t np = 0;

    if (n < 2)
        return;
    memset(key, 0x42, sizeof(key));
    c0 = p[0] % 4;
    nreq = p[1] ? p[1] : UINT64_MAX;
    q = malloc(n - 2 + 1);
    memcpy(q, p + 2, n - 2);
    if (age_stream_open(key, c0, nreq, q, n - 2, q, &np, &bad) == 0 &&
        np > n - 2)
        abort();
    free(q);
}

static void
fuzz_identities(const uint8_t *p, size_t n)
{
    uint8_t sk[4][32];
    const char *zWhy = NULL;
    int nid = -1, line = 0, rc;

    rc = age_identities_parse((const char *)p, n, sk, 4, &nid, &line, &zWhy);
    if (nid < 0 || nid > 4 || (rc == SQLITE_OK && nid == 0) ||
        (rc == SQLITE_ERROR && (line < 1 || zWhy == NULL)))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_file(data + 1, size - 1);
        fuzz_roundtrip(data + 1, size - 1);
        break;
    case 1:
        fuzz_stream(data + 1, size - 1);
        break;
    default:
        fuzz_identities(data + 1, size - 1);
        break;
    }
    return 0;
}
