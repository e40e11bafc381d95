/*
 * storage/backend/age_stream.c: the age v1 format (see age_stream.h):
 * unpadded canonical base64, Bech32 keys, HKDF-SHA256, the header (parse,
 * unwrap, build), STREAM chunks, object sizes and identity files.
 *
 * Invariants:
 *   1. Decoders reject what the specification says to reject: padded or
 *      non-canonical base64, mixed-case Bech32, an X25519 stanza with other
 *      than two arguments or a body other than 32 bytes, body lines over 64
 *      columns, a header without stanzas or MAC.
 *   2. The header MAC is checked before the file key is returned; tags and
 *      MACs are compared in constant time.
 *   3. Secrets on the stack (file keys, shared secrets, wrap and MAC keys)
 *      are wiped before returning.
 *
 * Threads: no state; any thread.
 */
#include "storage/backend/age_stream.h"

#include <string.h>

#include "storage/backend/sigv4.h"
#include "storage/base/sqlite.h"

#define X25519_LABEL "age-encryption.org/v1/X25519"
#define PAD_TYPE     "litestream/pad"
#define MAX_STANZAS  64
#define MAX_LINE     4096

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a base64 character, or -1. */
static int
b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Unpadded base64 of n bytes into out (4n/3 rounded up, no terminator);
 * returns the characters written. */
static size_t
b64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_chars[v >> 18];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = b64_chars[(v >> 6) & 63];
        out[o++] = b64_chars[v & 63];
    }
    if (n - i == 1) {
        out[o++] = b64_chars[p[i] >> 2];
        out[o++] = b64_chars[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[o++] = b64_chars[v >> 10];
        out[o++] = b64_chars[(v >> 4) & 63];
        out[o++] = b64_chars[(v & 15) << 2];
    }
    return o;
}

/* Decodes canonical unpadded base64 z[0..n) into out (at most cap bytes);
 * the byte count, or -1. */
static long
b64_decode(const char *z, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    size_t i, o = 0;
    int bits = 0;

    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        int v = b64_val((unsigned char)z[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1; /* non-canonical: leftover bits set */
    return (long)o;
}

/* Constant-time equality of n bytes. */
static int
ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    size_t i;
    for (i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

/* HKDF-SHA256 (RFC 5869) with 32 bytes of output. */
static int
hkdf(const uint8_t *ikm, size_t nikm, const uint8_t *salt, size_t nsalt,
     const char *info, uint8_t out[32])
{
    uint8_t prk[32], msg[64];
    size_t ninfo = strlen(info);
    int rc;

    if (ninfo + 1 > sizeof(msg))
        return -1;
    rc = sigv4_hmac_sha256(salt, nsalt, ikm, nikm, prk);
    memcpy(msg, info, ninfo);
    msg[ninfo] = 1;
    if (rc == 0)
        rc = sigv4_hmac_sha256(prk, 32, msg, ninfo + 1, out);
    sigv4_cleanse(prk, sizeof(prk));
    return rc;
}

/* --- Bech32 ------------------------------------------------------------ */

static const char bech32_chars[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t
bech32_step(uint32_t chk, unsigned v)
{
    static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa,
                                    0x3d4233dd, 0x2a1462b3};
    uint32_t top = chk >> 25;
    int i;
    chk = (chk & 0x1ffffff) << 5 ^ v;
    for (i = 0; i < 5; i++)
        if ((top >> i) & 1)
            chk ^= gen[i];
    return chk;
}

/* Checksum state after the expanded human readable part. */
static uint32_t
bech32_hrp(const char *hrp, size_t n)
{
    uint32_t chk = 1;
    size_t i;
    for (i = 0; i < n; i++)
        chk = bech32_step(chk, (unsigned char)hrp[i] >> 5);
    chk = bech32_step(chk, 0);
    for (i = 0; i < n; i++)
        chk = bech32_step(chk, (unsigned char)hrp[i] & 31);
    return chk;
}

static unsigned char
lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

int
age_bech32_decode(const char *z, size_t nz, const char *hrp, uint8_t out[32],
                  const char **pzWhy)
{
    size_t i, sep = nz, nhrp = strlen(hrp), o = 0;
    int upper = 0, low = 0, bits = 0;
    uint32_t chk, acc = 0;

    for (i = 0; i < nz; i++) {
        unsigned char c = (unsigned char)z[i];
        if (c < 33 || c > 126) {
            *pzWhy = "it holds a character outside Bech32";
            return -1;
        }
        upper |= c >= 'A' && c <= 'Z';
        low |= c >= 'a' && c <= 'z';
        if (c == '1')
            sep = i;
    }
    if (upper && low) {
        *pzWhy = "it mixes upper and lower case";
        return -1;
    }
    if (sep != nhrp) {
        *pzWhy = "it does not begin with the expected prefix";
        return -1;
    }
    if (nz < sep + 7) {
        *pzWhy = "it is too short";
        return -1;
    }
    for (i = 0; i < nhrp; i++)
        if (lower((unsigned char)z[i]) != (unsigned char)hrp[i]) {
            *pzWhy = "it does not begin with the expected prefix";
            return -1;
        }
    chk = bech32_hrp(hrp, nhrp);
    for (i = sep + 1; i < nz; i++) {
        const char *q = strchr(bech32_chars, lower((unsigned char)z[i]));
        unsigned v;
        if (q == NULL || *q == 0) {
            *pzWhy = "it holds a character outside Bech32";
            return -1;
        }
        v = (unsigned)(q - bech32_chars);
        chk = bech32_step(chk, v);
        if (i >= nz - 6)
            continue; /* the checksum */
        acc = (acc << 5 | v) & 0xfff;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o >= 32) {
                *pzWhy = "it is longer than a key";
                return -1;
            }
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (chk != 1) {
        *pzWhy = "its checksum is wrong (a typo?)";
        return -1;
    }
    if (o != 32 || bits >= 5 || (acc & ((1u << bits) - 1)) != 0) {
        *pzWhy = "it does not hold a 32-byte key";
        return -1;
    }
    return 0;
}

int
age_bech32_encode(const char *hrp, const uint8_t data[32], int upper, char *buf,
                  size_t n)
{
    size_t nhrp = strlen(hrp), o = 0, i;
    uint32_t chk = bech32_hrp(hrp, nhrp), acc = 0;
    int bits = 0;

    if (n < nhrp + 1 + 52 + 6 + 1)
        return -1;
    memcpy(buf, hrp, nhrp);
    o = nhrp;
    buf[o++] = '1';
    for (i = 0; i < 32 || bits > 0;) {
        unsigned v;
        if (bits < 5 && i < 32) {
            acc = acc << 8 | data[i++];
            bits += 8;
        }
        if (bits >= 5) {
            bits -= 5;
            v = (acc >> bits) & 31;
        } else {
            v = (acc << (5 - bits)) & 31; /* padding of the last group */
            bits = 0;
        }
        chk = bech32_step(chk, v);
        buf[o++] = bech32_chars[v];
    }
    for (i = 0; i < 6; i++)
        chk = bech32_step(chk, 0);
    chk ^= 1;
    for (i = 0; i < 6; i++)
        buf[o++] = bech32_chars[(chk >> (5 * (5 - i))) & 31];
    buf[o] = 0;
    for (i = 0; upper && i < o; i++)
        buf[i] = (char)(buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i]);
    return 0;
}

/* --- The header ---------------------------------------------------------- */

/* The line starting at p[*pos] (without its LF) in [*pl, *pl + *nl);
 * advances *pos past the LF.  SQLITE_TOOBIG: no LF yet. */
static int
next_line(const uint8_t *p, size_t n, size_t *pos, const char **pl, size_t *nl)
{
    const uint8_t *e = memchr(p + *pos, '\n', n - *pos);
    if (e == NULL)
        return n - *pos > MAX_LINE ? SQLITE_CORRUPT : SQLITE_TOOBIG;
    *pl = (const char *)p + *pos;
    *nl = (size_t)(e - (p + *pos));
    *pos += *nl + 1;
    return *nl > MAX_LINE ? SQLITE_CORRUPT : SQLITE_OK;
}

/* The body of a stanza (lines of 64 base64 characters, then a shorter
 * one), decoded into body (cap bytes; the rest only checked). */
static int
stanza_body(const uint8_t *p, size_t n, size_t *pos, uint8_t *body, size_t cap,
            long *nbody, const char **pzWhy)
{
    uint8_t scratch[48];
    const char *l;
    size_t nl;
    int rc;

    *nbody = 0;
    for (;;) {
        long k;
        if ((rc = next_line(p, n, pos, &l, &nl)) != SQLITE_OK)
            return rc;
        if (nl > 64) {
            *pzWhy = "a stanza body line is longer than 64 columns";
            return SQLITE_CORRUPT;
        }
        k = b64_decode(l, nl, scratch, sizeof(scratch));
        if (k < 0) {
            *pzWhy = "a stanza body is not canonical base64";
            return SQLITE_CORRUPT;
        }
        if (*nbody + k <= (long)cap)
            memcpy(body + *nbody, scratch, (size_t)k);
        *nbody += k;
        if (nl < 64)
            return SQLITE_OK;
    }
}

/* One "-> " stanza whose argument line is l[0..nl) (after "-> "). */
static int
stanza(const uint8_t *p, size_t n, size_t *pos, const char *l, size_t nl,
       age_header *h, const char **pzWhy)
{
    uint8_t body[32];
    size_t i, nargs = 1, a2 = 0;
    long nb;
    int rc, x;

    if (nl == 0 || l[0] == ' ' || l[nl - 1] == ' ') {
        *pzWhy = "a stanza has an empty argument";
        return SQLITE_CORRUPT;
    }
    for (i = 0; i < nl; i++) {
        if (l[i] == ' ') {
            if (l[i - 1] == ' ') {
                *pzWhy = "a stanza has an empty argument";
                return SQLITE_CORRUPT;
            }
            if (++nargs == 2)
                a2 = i + 1;
        } else if ((unsigned char)l[i] < 33 || (unsigned char)l[i] > 126) {
            *pzWhy = "a stanza argument holds a character outside VCHAR";
            return SQLITE_CORRUPT;
        }
    }
    x = (nargs == 1 && nl == 6 && memcmp(l, "X25519", 6) == 0) ||
        (nargs > 1 && a2 == 7 && memcmp(l, "X25519", 6) == 0);
    if (x && (nargs != 2 || nl - a2 != 43 || h->nx >= AGE_MAX_X25519 ||
              b64_decode(l + a2, 43, h->x[h->nx].share, 32) != 32)) {
        *pzWhy = h->nx >= AGE_MAX_X25519
                     ? "the header has too many X25519 stanzas"
                     : "an X25519 stanza's share is not 32 bytes in base64";
        return SQLITE_CORRUPT;
    }
    rc = stanza_body(p, n, pos, body, sizeof(body), &nb, pzWhy);
    if (rc != SQLITE_OK)
        return rc;
    if (!x) {
        h->nother++;
        return SQLITE_OK;
    }
    if (nb != 32) {
        *pzWhy = "an X25519 stanza's body is not 32 bytes";
        return SQLITE_CORRUPT;
    }
    memcpy(h->x[h->nx++].body, body, 32);
    return SQLITE_OK;
}

int
age_header_parse(const uint8_t *p, size_t n, age_header *h, const char **pzWhy)
{
    size_t pos = AGE_MAGIC_LEN, nl;
    const char *l;
    int rc;

    memset(h, 0, sizeof(*h));
    *pzWhy = "it is not an age file";
    if (memcmp(p, AGE_MAGIC, n < AGE_MAGIC_LEN ? n : AGE_MAGIC_LEN) != 0)
        return SQLITE_FORMAT;
    *pzWhy = "the header is incomplete";
    if (n < AGE_MAGIC_LEN)
        return SQLITE_TOOBIG;
    for (;;) {
        size_t start = pos;
        if ((rc = next_line(p, n, &pos, &l, &nl)) != SQLITE_OK) {
            if (rc == SQLITE_CORRUPT)
                *pzWhy = "a header line is too long";
            return rc;
        }
        if (nl >= 3 && memcmp(l, "-> ", 3) == 0) {
            if (h->nx + h->nother >= MAX_STANZAS) {
                *pzWhy = "the header has too many stanzas";
                return SQLITE_CORRUPT;
            }
            rc = stanza(p, n, &pos, l + 3, nl - 3, h, pzWhy);
            if (rc == SQLITE_TOOBIG)
                *pzWhy = "the header is incomplete";
            if (rc != SQLITE_OK)
                return rc;
            continue;
        }
        if (nl >= 3 && memcmp(l, "---", 3) == 0 && h->nx + h->nother > 0) {
            if (nl != 47 || l[3] != ' ' ||
                b64_decode(l + 4, 43, h->mac, 32) != 32) {
                *pzWhy = "the header's MAC line is malformed";
                return SQLITE_CORRUPT;
            }
            h->mac_end = start + 3;
            h->len = pos;
            return SQLITE_OK;
        }
        *pzWhy = h->nx + h->nother == 0 ? "the header has no recipient stanza"
                                        : "the header holds an unexpected line";
        return SQLITE_CORRUPT;
    }
}

/* The file key of stanza s for identity (sk, pk), into fk; 0, 1 when it is
 * not for that identity, -1 when the share is a low-order point. */
static int
unwrap_one(const age_x25519 *s, const uint8_t sk[32], const uint8_t pk[32],
           uint8_t fk[AGE_FILE_KEY])
{
    static const uint8_t zero_nonce[12];
    uint8_t shared[32], salt[64], wrap[32];
    int rc = 1;

    if (sigv4_x25519(sk, s->share, shared) != 0)
        return -1;
    memcpy(salt, s->share, 32);
    memcpy(salt + 32, pk, 32);
    if (hkdf(shared, 32, salt, 64, X25519_LABEL, wrap) == 0 &&
        sigv4_chacha_open(wrap, zero_nonce, s->body, 32, fk) == 0)
        rc = 0;
    sigv4_cleanse(shared, sizeof(shared));
    sigv4_cleanse(wrap, sizeof(wrap));
    return rc;
}

int
age_unwrap(const age_header *h, const uint8_t *p, const uint8_t (*sk)[32],
           const uint8_t (*pk)[32], int nid, uint8_t fk[AGE_FILE_KEY],
           const char **pzWhy)
{
    uint8_t mkey[32], mac[32];
    int i, j, found = 0, ok;

    for (i = 0; i < h->nx && !found; i++)
        for (j = 0; j < nid && !found; j++) {
            int r = unwrap_one(&h->x[i], sk[j], pk[j], fk);
            if (r < 0) {
                *pzWhy = "an X25519 stanza's share is a low-order point";
                return SQLITE_CORRUPT;
            }
            found = r == 0;
        }
    if (!found) {
        *pzWhy = "no identity opens any of its X25519 stanzas";
        return SQLITE_AUTH;
    }
    ok = hkdf(fk, AGE_FILE_KEY, NULL, 0, "header", mkey) == 0 &&
         sigv4_hmac_sha256(mkey, 32, p, h->mac_end, mac) == 0 &&
         ct_equal(mac, h->mac, 32);
    sigv4_cleanse(mkey, sizeof(mkey));
    if (!ok) {
        sigv4_cleanse(fk, AGE_FILE_KEY);
        *pzWhy = "its header MAC is wrong (the header was modified)";
        return SQLITE_CORRUPT;
    }
    return SQLITE_OK;
}

int
age_payload_key(const uint8_t fk[AGE_FILE_KEY], const uint8_t nonce[16],
                uint8_t key[32])
{
    return hkdf(fk, AGE_FILE_KEY, nonce, 16, "payload", key);
}

/* "-> X25519 <share>\n<body>\n" for recipient r and file key fk at out;
 * the bytes written (98), or 0. */
static size_t
stanza_build(const uint8_t r[32], const uint8_t fk[AGE_FILE_KEY], char *out)
{
    static const uint8_t zero_nonce[12];
    uint8_t eph[32], share[32], shared[32], salt[64], wrap[32], body[32];
    size_t o = 0;
    int ok;

    ok = sigv4_random(eph, 32) == 0 && sigv4_x25519(eph, NULL, share) == 0 &&
         sigv4_x25519(eph, r, shared) == 0;
    memcpy(salt, share, 32);
    memcpy(salt + 32, r, 32);
    ok = ok && hkdf(shared, 32, salt, 64, X25519_LABEL, wrap) == 0 &&
         sigv4_chacha_seal(wrap, zero_nonce, fk, AGE_FILE_KEY, body) == 0;
    if (ok) {
        memcpy(out, "-> X25519 ", 10);
        o = 10 + b64_encode(share, 32, out + 10);
        out[o++] = '\n';
        o += b64_encode(body, 32, out + o);
        out[o++] = '\n';
    }
    sigv4_cleanse(eph, sizeof(eph));
    sigv4_cleanse(shared, sizeof(shared));
    sigv4_cleanse(wrap, sizeof(wrap));
    return o;
}

/* The padding stanza of exactly d (>= 21) bytes at out:
 * "-> litestream/pad <A x's>\n" (20 + A), m full lines, an empty line. */
static void
pad_build(size_t d, char *out)
{
    size_t m = (d - 21) / 65, a = d - 20 - 65 * m, o, i;

    memcpy(out, "-> " PAD_TYPE " ", 18);
    memset(out + 18, 'x', a);
    o = 18 + a;
    out[o++] = '\n';
    for (i = 0; i < m; i++) {
        memset(out + o, 'A', 64); /* 48 zero bytes */
        out[o + 64] = '\n';
        o += 65;
    }
    out[o] = '\n';
}

int
age_prefix_build(const uint8_t (*rcpt)[32], int n, uint8_t out[AGE_PREFIX],
                 uint8_t key[32])
{
    uint8_t fk[AGE_FILE_KEY], mkey[32], mac[32];
    char *z = (char *)out;
    size_t o = AGE_MAGIC_LEN, end = AGE_PREFIX - 16 - 48;
    int i, ok;

    if (n < 1 || n > AGE_MAX_RECIPIENTS || sigv4_random(fk, sizeof(fk)) != 0)
        return -1;
    memcpy(z, AGE_MAGIC, AGE_MAGIC_LEN);
    for (i = 0, ok = 1; i < n && ok; i++) {
        size_t k = stanza_build(rcpt[i], fk, z + o);
        ok = k > 0;
        o += k;
    }
    ok = ok && end - o >= 21;
    if (ok) {
        pad_build(end - o, z + o);
        memcpy(z + end, "---", 3);
        ok = hkdf(fk, AGE_FILE_KEY, NULL, 0, "header", mkey) == 0 &&
             sigv4_hmac_sha256(mkey, 32, out, end + 3, mac) == 0;
    }
    if (ok) {
        z[end + 3] = ' ';
        b64_encode(mac, 32, z + end + 4);
        z[end + 47] = '\n';
        ok = sigv4_random(out + AGE_PREFIX - 16, 16) == 0 &&
             age_payload_key(fk, out + AGE_PREFIX - 16, key) == 0;
    }
    sigv4_cleanse(fk, sizeof(fk));
    sigv4_cleanse(mkey, sizeof(mkey));
    return ok ? 0 : -1;
}

/* --- Chunks and sizes ---------------------------------------------------- */

static void
chunk_nonce(uint64_t idx, int last, uint8_t nonce[12])
{
    int i;
    memset(nonce, 0, 12);
    for (i = 0; i < 8; i++)
        nonce[10 - i] = (uint8_t)(idx >> (8 * i));
    nonce[11] = last ? 1 : 0;
}

int
age_chunk_seal(const uint8_t key[32], uint64_t idx, int last, const uint8_t *in,
               size_t n, uint8_t *out)
{
    uint8_t nonce[12];
    chunk_nonce(idx, last, nonce);
    return sigv4_chacha_seal(key, nonce, in, n, out);
}

int
age_chunk_open(const uint8_t key[32], uint64_t idx, int last, const uint8_t *in,
               size_t n, uint8_t *out)
{
    uint8_t nonce[12];
    if (n > AGE_CCHUNK || n < AGE_TAG)
        return -1;
    chunk_nonce(idx, last, nonce);
    return sigv4_chacha_open(key, nonce, in, n, out);
}

int
age_stream_open(const uint8_t pk[32], uint64_t c0, uint64_t nreq, uint8_t *q,
                size_t m, uint8_t *dst, size_t *np, uint64_t *pBad)
{
    size_t at = 0, o = 0;
    uint64_t i;

    for (i = 0; at < m && i < nreq; i++) {
        size_t left = m - at, k = left < AGE_CCHUNK ? left : AGE_CCHUNK;
        *pBad = c0 + i;
        if (k <= AGE_TAG && (k < AGE_TAG || c0 + i > 0))
            return -2;
        if (age_chunk_open(pk, c0 + i, left <= AGE_CCHUNK, q + at, k, q + at))
            return -1;
        memmove(dst + o, q + at, k - AGE_TAG);
        o += k - AGE_TAG;
        at += k;
    }
    *np = o;
    return 0;
}

uint64_t
age_cipher_size(uint64_t plain)
{
    uint64_t chunks = plain == 0 ? 1 : (plain + AGE_CHUNK - 1) / AGE_CHUNK;
    return AGE_PREFIX + plain + AGE_TAG * chunks;
}

int
age_plain_size(uint64_t cipher, uint64_t *plain)
{
    uint64_t x, chunks;
    if (cipher < AGE_PREFIX + AGE_TAG)
        return -1;
    x = cipher - AGE_PREFIX;
    chunks = (x + AGE_CCHUNK - 1) / AGE_CCHUNK;
    /* The last chunk holds a tag and a byte, unless it is the only one. */
    if (chunks > 1 && x - (chunks - 1) * AGE_CCHUNK <= AGE_TAG)
        return -1;
    *plain = x - AGE_TAG * chunks;
    return 0;
}

/* --- Identity files ------------------------------------------------------ */

int
age_identities_parse(const char *z, size_t n, uint8_t (*sk)[32], int max,
                     int *nid, int *pLine, const char **pzWhy)
{
    size_t i = 0;
    int line = 0;

    *nid = 0;
    while (i < n) {
        const char *e = memchr(z + i, '\n', n - i);
        size_t a = i, b = e ? (size_t)(e - z) : n;
        i = b + 1;
        line++;
        while (a < b && (z[a] == ' ' || z[a] == '\t'))
            a++;
        while (b > a &&
               (z[b - 1] == ' ' || z[b - 1] == '\t' || z[b - 1] == '\r'))
            b--;
        if (a == b || z[a] == '#')
            continue;
        *pLine = line;
        if (b - a > 11 && memcmp(z + a, "AGE-PLUGIN-", 11) == 0) {
            *pzWhy = "age plugin identities are not supported";
            return SQLITE_ERROR;
        }
        if (*nid >= max) {
            *pzWhy = "too many identities";
            return SQLITE_TOOBIG;
        }
        if (age_bech32_decode(z + a, b - a, "age-secret-key-", sk[*nid],
                              pzWhy) != 0)
            return SQLITE_ERROR;
        (*nid)++;
    }
    *pzWhy = "it holds no identity";
    return *nid ? SQLITE_OK : SQLITE_NOTFOUND;
}
