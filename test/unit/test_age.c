/*
 * test_age.c: the age layer (storage/backend/age.c, age_keys.c,
 * age_stream.c) over the real file backend: Bech32 keys (the vectors of
 * the age specification), a file written by Go's age 1.1.1 (Debian's
 * `age -r`) read by our parser, every plaintext range of objects around
 * the 64 KiB chunk boundaries, listed sizes, put_file, the key cache
 * (a replaced object), and every error the layer reports: corrupt,
 * truncated, wrong identity, plaintext under age options, identity files
 * that cannot be used, bad URL parameters.  The vfs suite's `age` test
 * checks the other direction against Debian's `age -d`.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/age.h"
#include "storage/backend/age_stream.h"
#include "storage/backend/backend.h"
#include "storage/backend/sigv4.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

/* The identity and recipient of the age specification's examples. */
#define SPEC_SK                                                                \
    "AGE-SECRET-KEY-"                                                          \
    "1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
#define SPEC_PK "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"

/* `printf 'age interop vector: hello from Go age' | age -r SPEC_PK`. */
static const char go_vector[] =
    "age-encryption.org/v1\n"
    "-> X25519 v7uSjSrrZ1eDLxFb9XfndwS4R16wB5myvAgmX64pHBI\n"
    "Z3xtIrPkGHtuVEFt71JK9UaAqrxo16HPuegUGn6HC4E\n"
    "--- hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n"
    "\x14\x11\x86\x44\x41\x47\x39\xed\x5d\xa6\xda\xeb\x21\x59\x0a\x4f"
    "\x8b\xe5\x9e\x24\xd6\x9d\xd0\x90\xdb\xa1\x21\xb9\x46\x79\xd7\xff"
    "\x6a\x7d\xa0\xbc\xa3\x7a\x09\x81\xfb\x3d\xb3\x10\x99\x78\xf0\xea"
    "\x21\x24\xfe\xad\xf2\x5b\x0c\x8b\x0f\xdc\x62\x57\xb5\x86\xd1\xb8"
    "\x88\x6b\x52\x94\xa8";

static char dir[256];

static void
write_text(const char *zPath, const char *z)
{
    FILE *f = fopen(zPath, "wb");
    fputs(z, f);
    fclose(f);
}

/* A new identity: its file text (uppercase line) and recipient. */
static void
new_identity(char sk_text[128], char pk_text[128])
{
    uint8_t sk[32], pk[32];
    sigv4_random(sk, 32);
    sigv4_x25519(sk, NULL, pk);
    age_bech32_encode("age-secret-key-", sk, 1, sk_text, 128);
    age_bech32_encode("age", pk, 0, pk_text, 128);
}

static void
test_bech32(void)
{
    uint8_t sk[32], pk[32], back[32];
    char z[128];
    const char *zWhy = NULL;

    ok(age_bech32_decode(SPEC_SK, strlen(SPEC_SK), "age-secret-key-", sk,
                         &zWhy) == 0,
       "the specification's identity decodes");
    ok(sigv4_x25519(sk, NULL, pk) == 0 &&
           age_bech32_encode("age", pk, 0, z, sizeof(z)) == 0 &&
           strcmp(z, SPEC_PK) == 0,
       "its recipient is the specification's: %s", z);
    ok(age_bech32_decode(SPEC_PK, strlen(SPEC_PK), "age", back, &zWhy) == 0 &&
           memcmp(back, pk, 32) == 0,
       "the recipient decodes back");
    ok(age_bech32_encode("age-secret-key-", sk, 1, z, sizeof(z)) == 0 &&
           strcmp(z, SPEC_SK) == 0,
       "the identity encodes back (uppercase)");
    static const struct {
        const char *z, *hrp, *why;
    } bad[] = {
        {"age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk",
         "age", "checksum"},
        {"age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73EQUNUJWJ",
         "age", "case"},
        {"age1xyz", "age", "short"},
        {"agf1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
         "age", "prefix"},
        {"age1zvkyb2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj",
         "age", "Bech32"},
        {"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqar9jk6", "age",
         "32-byte key"},
        {"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqzhlqeg",
         "age", "longer than a key"},
        {SPEC_PK, "age-secret-key-", "prefix"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        zWhy = "";
        ok(age_bech32_decode(bad[i].z, strlen(bad[i].z), bad[i].hrp, back,
                             &zWhy) != 0 &&
               strstr(zWhy, bad[i].why) != NULL,
           "bad key %d refused: %s", (int)i, zWhy);
    }
}

/* Decrypts a whole age file with the identity sk; 0 and out/np. */
static int
decrypt_all(const uint8_t *p, size_t n, const uint8_t sk[32], uint8_t *out,
            size_t *np, const char **pzWhy)
{
    uint8_t pk[32], fk[16], key[32], *q;
    uint64_t bad = 0;
    age_header h;
    int rc = age_header_parse(p, n, &h, pzWhy);

    if (rc != SQLITE_OK || n < h.len + 16)
        return rc ? rc : SQLITE_CORRUPT;
    sigv4_x25519(sk, NULL, pk);
    rc = age_unwrap(&h, p, (const uint8_t(*)[32])sk, (const uint8_t(*)[32])pk,
                    1, fk, pzWhy);
    if (rc != SQLITE_OK)
        return rc;
    age_payload_key(fk, p + h.len, key);
    q = malloc(n - h.len - 16 + 1);
    memcpy(q, p + h.len + 16, n - h.len - 16);
    rc = age_stream_open(key, 0, UINT64_MAX, q, n - h.len - 16, q, np, &bad);
    memcpy(out, q, *np);
    free(q);
    return rc;
}

static void
test_go_vector(void)
{
    static const char want[] = "age interop vector: hello from Go age";
    uint8_t sk[32], out[256], *mod;
    size_t n = sizeof(go_vector) - 1, np = 0;
    const char *zWhy = "";
    age_header h;

    age_bech32_decode(SPEC_SK, strlen(SPEC_SK), "age-secret-key-", sk, &zWhy);
    ok(age_header_parse((const uint8_t *)go_vector, n, &h, &zWhy) == 0 &&
           h.nx == 1 && h.nother == 0 && h.len == 22 + 98 + 48,
       "Go age's header parses: one X25519 stanza, %d bytes", (int)h.len);
    ok(decrypt_all((const uint8_t *)go_vector, n, sk, out, &np, &zWhy) == 0 &&
           np == strlen(want) && memcmp(out, want, np) == 0,
       "Go age's file decrypts: '%.*s'", (int)np, out);
    for (size_t k = 0; k < 168; k++)
        if (age_header_parse((const uint8_t *)go_vector, k, &h, &zWhy) !=
            SQLITE_TOOBIG) {
            ok(0, "prefix of %d bytes: %s", (int)k, zWhy);
            return;
        }
    ok(1, "every prefix of the header is incomplete (SQLITE_TOOBIG)");
    mod = malloc(n);
    for (size_t k = 0; k < n; k += 7) {
        int rc;
        memcpy(mod, go_vector, n);
        mod[k] ^= 0x01;
        rc = decrypt_all(mod, n, sk, out, &np, &zWhy);
        if (rc == 0) {
            ok(0, "a flipped bit at %d goes unnoticed", (int)k);
            free(mod);
            return;
        }
    }
    free(mod);
    ok(1, "a flipped bit anywhere (every 7th byte) fails: header, MAC, "
          "payload");
}

static void
test_header_rejects(void)
{
    static const char *const bad[] = {
        "age-encryption.org/v1\n--- aaa\n",
        "age-encryption.org/v1\n-> X25519\nAAAA\n--- "
        "hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n",
        "age-encryption.org/v1\n-> X25519 "
        "v7uSjSrrZ1eDLxFb9XfndwS4R16wB5myvAgmX64pHBI extra\n"
        "Z3xtIrPkGHtuVEFt71JK9UaAqrxo16HPuegUGn6HC4E\n--- "
        "hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n",
        "age-encryption.org/v1\n-> X25519 "
        "v7uSjSrrZ1eDLxFb9XfndwS4R16wB5myvAgmX64pHBJ\n"
        "Z3xtIrPkGHtuVEFt71JK9UaAqrxo16HPuegUGn6HC4E\n--- "
        "hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n",
        "age-encryption.org/v1\n-> X25519 "
        "v7uSjSrrZ1eDLxFb9XfndwS4R16wB5myvAgmX64pHBI\n"
        "Z3xtIrPkGHtuVEFt71JK9UaAqrxo16HPuegUGn6HC4E=\n--- "
        "hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n",
        "age-encryption.org/v1\n->  x\n\n--- "
        "hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n",
        "age-encryption.org/v1\n-> x\n"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        "\n--- hS9RumjujtcXt/V/F+ir3oPElTqQb9WGxG6IbQI3YBs\n",
        "age-encryption.org/v1\n-> x\n\n---hS9RumjujtcXt/V/F+ir3oPElTqQb9WG\n",
        "age-encryption.org/v1\nhello\n",
    };
    age_header h;
    const char *zWhy;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        zWhy = "";
        ok(age_header_parse((const uint8_t *)bad[i], strlen(bad[i]), &h,
                            &zWhy) == SQLITE_CORRUPT,
           "malformed header %d refused: %s", (int)i, zWhy);
    }
    ok(age_header_parse((const uint8_t *)"LTX1xxxxxxxxxxxxxxxxxxxxxxxxx", 28,
                        &h, &zWhy) == SQLITE_FORMAT,
       "an LTX file is not an age file (SQLITE_FORMAT)");
}

static uint8_t *
pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
    return p;
}

static backend *
open_url(const char *zUrl, char **pzErr)
{
    backend *b = NULL;
    char *zErr = NULL;
    int rc = backend_open(zUrl, &b, &zErr);
    if (pzErr)
        *pzErr = zErr;
    else
        sqlite3_free(zErr);
    return rc == SQLITE_OK ? b : NULL;
}

/* Every range of interest of a put object of n bytes reads back right. */
static int
check_ranges(backend *b, const char *key, const uint8_t *p, size_t n)
{
    static const uint64_t offs[] = {0,      1,      65535,  65536,  65537,
                                    131071, 131072, 200000, 1 << 20};
    static const uint64_t lens[] = {1,     100,    65535,     65536,
                                    65537, 131073, UINT64_MAX};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            uint64_t off = offs[i], len = lens[j];
            size_t want = off >= n ? 0 : n - off, got = 0;
            uint8_t *out = NULL;
            if (len < want)
                want = (size_t)len;
            int rc = backend_get(b, key, off, len, &out, &got);
            int good = rc == SQLITE_OK && got == want &&
                       (want == 0 || memcmp(out, p + off, want) == 0);
            sqlite3_free(out);
            if (!good) {
                diag("size %zu [%llu, +%llu): rc %d, %zu bytes (want %zu) %s",
                     n, (unsigned long long)off, (unsigned long long)len, rc,
                     got, want, backend_errmsg(b));
                return 0;
            }
        }
    return 1;
}

static char url[1024], sk1[128], pk1[128], sk2[128], pk2[128];

static void
test_roundtrip(void)
{
    static const size_t sizes[] = {0,     1,      100,    65535, 65536,
                                   65537, 131072, 131073, 200000};
    char zId[300], key[64];
    backend *b;
    backend_obj *objs = NULL;
    int nobj = 0, good = 1;

    snprintf(zId, sizeof(zId), "%s/id.txt", dir);
    snprintf(url, sizeof(url),
             "file://%s/rep?age_recipient=%s&age_identity_file=%s", dir, pk1,
             zId);
    b = open_url(url, NULL);
    ok(b && age_active(b), "age_recipient + age_identity_file: the layer");
    if (!b)
        return;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = pattern(sizes[i], (unsigned)i);
        snprintf(key, sizeof(key), "ltx/0/%02d.ltx", (int)i);
        good &= backend_put(b, key, p, sizes[i], 1000) == SQLITE_OK &&
                check_ranges(b, key, p, sizes[i]);
        free(p);
    }
    ok(good, "objects of 0..200000 bytes around the chunk boundaries: every "
             "range reads back");
    good = backend_list(b, "ltx/0/", &objs, &nobj) == SQLITE_OK &&
           nobj == (int)(sizeof(sizes) / sizeof(sizes[0]));
    for (int i = 0; good && i < nobj; i++)
        good = objs[i].size == sizes[i];
    backend_objs_free(objs, nobj);
    ok(good, "listed sizes are the plaintext sizes");
    /* On disk: ciphertext of the computed size, an age file. */
    char zPath[512];
    struct stat st;
    snprintf(zPath, sizeof(zPath), "%s/rep/ltx/0/08.ltx", dir);
    ok(stat(zPath, &st) == 0 && (uint64_t)st.st_size == age_cipher_size(200000),
       "the stored object is %lld bytes (512 + plaintext + 16 per chunk)",
       (long long)st.st_size);
    backend_close(b);
}

static void
test_put_file(void)
{
    char zSrc[300];
    size_t n = 150000;
    uint8_t *p = pattern(n, 9);
    backend *b = open_url(url, NULL);
    FILE *f;

    snprintf(zSrc, sizeof(zSrc), "%s/src.tmp", dir);
    f = fopen(zSrc, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
    ok(b && backend_put_file(b, "ltx/1/f.ltx", zSrc, n, 5) == SQLITE_OK &&
           check_ranges(b, "ltx/1/f.ltx", p, n),
       "put_file encrypts a local file; it reads back");
    snprintf(zSrc, sizeof(zSrc), "%s/src.tmp.age", dir);
    ok(access(zSrc, F_OK) != 0, "no temporary file is left");
    free(p);
    backend_close(b);
}

/* Sets byte `off` of the object file key to c (-1: its complement). */
static void
poke(const char *key, long off, int c)
{
    char zPath[512];
    FILE *f;
    snprintf(zPath, sizeof(zPath), "%s/rep/%s", dir, key);
    f = fopen(zPath, "r+b");
    fseek(f, off, SEEK_SET);
    if (c < 0)
        c = fgetc(f) ^ 0xff;
    fseek(f, off, SEEK_SET);
    fputc(c, f);
    fclose(f);
}

static int
get_fails(backend *b, const char *key, uint64_t off, uint64_t len, int want,
          const char *zNeedle)
{
    uint8_t *out = NULL;
    size_t n = 0;
    int rc = backend_get(b, key, off, len, &out, &n);
    sqlite3_free(out);
    diag("%s", backend_errmsg(b));
    return rc == want && out == NULL &&
           strstr(backend_errmsg(b), zNeedle) != NULL;
}

static void
test_corrupt(void)
{
    backend *b = open_url(url, NULL);
    uint8_t *p = pattern(200000, 3);
    char zPath[1200];

    backend_put(b, "ltx/2/a.ltx", p, 200000, 1);
    poke("ltx/2/a.ltx", 512 + 65552 + 10, -1); /* chunk 1 */
    ok(get_fails(b, "ltx/2/a.ltx", 70000, 10, SQLITE_CORRUPT,
                 "chunk 1 of its age payload does not authenticate"),
       "a modified chunk: SQLITE_CORRUPT naming the chunk");
    uint8_t *out = NULL;
    size_t n = 0;
    ok(backend_get(b, "ltx/2/a.ltx", 100, 60000, &out, &n) == SQLITE_OK &&
           n == 60000 && memcmp(out, p + 100, n) == 0,
       "the chunk before it still reads");
    sqlite3_free(out);
    backend_put(b, "ltx/2/b.ltx", p, 200000, 1);
    /* A base64 character of the padding stanza, under the MAC; read by a
     * handle without the key in the cache (another URL). */
    poke("ltx/2/b.ltx", 300, 'B');
    snprintf(zPath, sizeof(zPath), "%s&region=b", url);
    backend *o = open_url(zPath, NULL);
    ok(get_fails(o, "ltx/2/b.ltx", 0, 100, SQLITE_CORRUPT, "header MAC"),
       "a modified header: SQLITE_CORRUPT (header MAC)");
    poke("ltx/2/b.ltx", 13, 'X');
    ok(get_fails(o, "ltx/2/b.ltx", 0, 100, SQLITE_AUTH, "is not encrypted"),
       "a modified version line: not an age file");
    backend_close(o);
    backend_put(b, "ltx/2/c.ltx", p, 200000, 1);
    snprintf(zPath, sizeof(zPath), "%s/rep/ltx/2/c.ltx", dir);
    ok(truncate(zPath, 512 + 2 * 65552) == 0 &&
           get_fails(b, "ltx/2/c.ltx", 65536, UINT64_MAX, SQLITE_CORRUPT,
                     "chunk 1 of its age payload does not authenticate"),
       "an object cut at a chunk boundary: its new last chunk is no final "
       "one");
    backend_put(b, "ltx/2/d.ltx", p, 1000, 1);
    snprintf(zPath, sizeof(zPath), "%s/rep/ltx/2/d.ltx", dir);
    ok(truncate(zPath, 300) == 0 &&
           get_fails(b, "ltx/2/d.ltx", 0, 10, SQLITE_CORRUPT, "truncated"),
       "an object cut inside its header: SQLITE_CORRUPT (truncated)");
    free(p);
    backend_close(b);
}

static void
test_identities(void)
{
    char u2[1024], zId[300];
    backend *b = open_url(url, NULL), *w;
    uint8_t p[100] = {1, 2, 3};

    backend_put(b, "ltx/3/a.ltx", p, sizeof(p), 1);
    backend_close(b);
    snprintf(zId, sizeof(zId), "%s/id2.txt", dir);
    snprintf(u2, sizeof(u2), "file://%s/rep?age_identity_file=%s", dir, zId);
    w = open_url(u2, NULL);
    ok(w && get_fails(w, "ltx/3/a.ltx", 0, 10, SQLITE_AUTH,
                      "none of the identities"),
       "a wrong identity: SQLITE_AUTH, use a recipient's identity file");
    backend_close(w);
    static const struct {
        const char *text, *why;
    } files[] = {
        {"# only a comment\n\n", "holds no identity"},
        {"AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZ\n", "line 1"},
        {"# c\nAGE-PLUGIN-YUBIKEY-1QQQQ\n", "plugin"},
        {"age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj\n",
         "expected prefix"},
        {NULL, "No such file"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(zId, sizeof(zId), "%s/bad%d.txt", dir, (int)i);
        if (files[i].text)
            write_text(zId, files[i].text);
        snprintf(u2, sizeof(u2), "file://%s/rep?age_identity_file=%s", dir,
                 zId);
        w = open_url(u2, NULL);
        ok(w && get_fails(w, "ltx/3/a.ltx", 0, 10, SQLITE_AUTH, files[i].why),
           "unusable identity file %d: SQLITE_AUTH (%s)", (int)i, files[i].why);
        backend_close(w);
    }
    /* CRLF, comments, several identities: the second one is ours. */
    snprintf(zId, sizeof(zId), "%s/multi.txt", dir);
    snprintf(u2, sizeof(u2), "# created: x\r\n%s\r\n\r\n  %s  \r\n", sk2, sk1);
    write_text(zId, u2);
    snprintf(u2, sizeof(u2), "file://%s/rep?age_identity_file=%s", dir, zId);
    w = open_url(u2, NULL);
    uint8_t *out = NULL;
    size_t n = 0;
    ok(w && backend_get(w, "ltx/3/a.ltx", 0, 100, &out, &n) == SQLITE_OK &&
           n == 100 && memcmp(out, p, 100) == 0,
       "an identity file with CRLF, comments and two identities");
    sqlite3_free(out);
    backend_close(w);
    /* Recipients none of the identities belongs to. */
    snprintf(u2, sizeof(u2),
             "file://%s/rep2?age_recipient=%s&age_identity_file=%s/id2.txt",
             dir, pk1, dir);
    w = open_url(u2, NULL);
    ok(w && backend_put(w, "ltx/0/x.ltx", p, 10, 1) == SQLITE_AUTH &&
           strstr(backend_errmsg(w), "age-keygen -y"),
       "recipients without their identity: the put fails, saying why");
    diag("%s", w ? backend_errmsg(w) : "");
    backend_close(w);
}

static void
test_plaintext(void)
{
    char u2[1024];
    uint8_t p[200] = {'L', 'T', 'X', '1'}, *out = NULL;
    size_t n = 0;
    char *zErr = NULL;
    backend *plain, *b;

    snprintf(u2, sizeof(u2), "file://%s/rep", dir);
    plain = open_url(u2, NULL);
    ok(plain && !age_active(plain), "no age options: no layer");
    backend_put(plain, "ltx/4/p.ltx", p, sizeof(p), 1);
    b = open_url(url, NULL);
    ok(get_fails(b, "ltx/4/p.ltx", 0, 10, SQLITE_AUTH, "is not encrypted"),
       "a plaintext object under age options: SQLITE_AUTH");
    ok(age_check_object(b, "ltx/4/p.ltx", &zErr) == SQLITE_AUTH && zErr &&
           strstr(zErr, "holds plaintext"),
       "age_check_object: plaintext under age options");
    sqlite3_free(zErr);
    ok(age_check_object(plain, "ltx/3/a.ltx", &zErr) == SQLITE_AUTH && zErr &&
           strstr(zErr, "is encrypted with age"),
       "age_check_object: an age file without age options");
    sqlite3_free(zErr);
    ok(age_check_object(b, "ltx/3/a.ltx", &zErr) == SQLITE_OK &&
           age_check_object(plain, "ltx/4/p.ltx", &zErr) == SQLITE_OK &&
           age_check_object(b, "ltx/9/none.ltx", &zErr) == SQLITE_OK,
       "age_check_object: agreeing objects and a missing one are fine");
    ok(backend_get(plain, "ltx/3/a.ltx", 0, 22, &out, &n) == SQLITE_OK &&
           n == 22 && memcmp(out, "age-encryption.org/v1\n", 22) == 0,
       "without the layer the object is an age file");
    sqlite3_free(out);
    backend_close(plain);
    backend_close(b);
}

/* An object replaced by another writer: the cached key fails, the header
 * is read again. */
static void
test_cache(void)
{
    char u2[1100];
    uint8_t *a = pattern(70000, 1), *c = pattern(70000, 2), *out = NULL;
    size_t n = 0;
    backend *b = open_url(url, NULL), *o;

    backend_put(b, "ltx/5/r.ltx", a, 70000, 1);
    snprintf(u2, sizeof(u2), "%s&region=x", url); /* another cache space */
    o = open_url(u2, NULL);
    backend_put(o, "ltx/5/r.ltx", c, 70000, 1);
    backend_close(o);
    ok(backend_get(b, "ltx/5/r.ltx", 66000, 100, &out, &n) == SQLITE_OK &&
           n == 100 && memcmp(out, c + 66000, 100) == 0,
       "an object replaced meanwhile: read with its new key");
    sqlite3_free(out);
    free(a);
    free(c);
    backend_close(b);
}

static void
test_params(void)
{
    static const struct {
        const char *q, *why;
    } bad[] = {
        {"age_recipient=age1xyz&age_identity_file=/k", "not an age X25519"},
        {"age_recipient=" SPEC_PK, "needs an identity"},
        {"age_identity=/k", "unknown URL parameter 'age_identity'"},
        {"age_identity_file=", "give age_identity_file once"},
        {"age_identity_file=/a&age_identity_file=/b",
         "give age_identity_file once"},
        {"age_recipient=" SPEC_PK "&age_recipient=" SPEC_PK
         "&age_recipient=" SPEC_PK "&age_recipient=" SPEC_PK
         "&age_recipient=" SPEC_PK "&age_identity_file=/k",
         "at most 4"},
    };
    char u2[2048], *zErr;
    backend *b;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(u2, sizeof(u2), "file://%s/rep?%s", dir, bad[i].q);
        zErr = NULL;
        b = open_url(u2, &zErr);
        ok(b == NULL && zErr && strstr(zErr, bad[i].why),
           "bad parameters %d refused: %s", (int)i, zErr ? zErr : "(none)");
        sqlite3_free(zErr);
        backend_close(b);
    }
    snprintf(u2, sizeof(u2), "%s/id.txt", dir);
    setenv("LITESTREAM_AGE_IDENTITY_FILE", u2, 1);
    snprintf(u2, sizeof(u2), "file://%s/rep", dir);
    b = open_url(u2, NULL);
    uint8_t *out = NULL, p[10] = {0};
    size_t n = 0;
    ok(b && age_active(b) &&
           backend_get(b, "ltx/3/a.ltx", 0, 3, &out, &n) == SQLITE_OK &&
           n == 3 && out[0] == 1,
       "LITESTREAM_AGE_IDENTITY_FILE alone: the layer decrypts");
    sqlite3_free(out);
    ok(b && backend_put(b, "ltx/0/y.ltx", p, 10, 1) == SQLITE_AUTH &&
           strstr(backend_errmsg(b), "no age_recipient"),
       "... and refuses to write without a recipient");
    backend_close(b);
    snprintf(u2, sizeof(u2), "file://%s/rep?age_recipient=%s", dir, pk1);
    b = open_url(u2, NULL);
    ok(b && backend_put(b, "ltx/0/y.ltx", p, 10, 1) == SQLITE_OK,
       "age_recipient with the identity from the environment");
    backend_close(b);
    unsetenv("LITESTREAM_AGE_IDENTITY_FILE");
}

int
main(void)
{
    char zId[300], zCmd[400];

    api_init();
    snprintf(dir, sizeof(dir), "/tmp/test_age.%d", (int)getpid());
    mkdir(dir, 0700);
    new_identity(sk1, pk1);
    new_identity(sk2, pk2);
    snprintf(zId, sizeof(zId), "%s/id.txt", dir);
    snprintf(zCmd, sizeof(zCmd), "# public key: %s\n%s\n", pk1, sk1);
    write_text(zId, zCmd);
    snprintf(zId, sizeof(zId), "%s/id2.txt", dir);
    snprintf(zCmd, sizeof(zCmd), "%s\n", sk2);
    write_text(zId, zCmd);
    test_bech32();
    test_go_vector();
    test_header_rejects();
    test_roundtrip();
    test_put_file();
    test_corrupt();
    test_identities();
    test_plaintext();
    test_cache();
    test_params();
    snprintf(zCmd, sizeof(zCmd), "rm -rf '%s'", dir);
    if (system(zCmd) != 0)
        diag("could not remove %s", dir);
    return tap_done();
}
