/*
 * storage/backend/age_stream.h: the age v1 file format
 * (https://age-encryption.org/v1, also c2sp.org/age) as the age layer
 * (storage/backend/age.c) writes and reads it: X25519 recipients and
 * identities in Bech32, the textual header with its HMAC-SHA256 MAC, and the
 * payload in ChaCha20-Poly1305 STREAM chunks of 64 KiB.  The primitives are
 * OpenSSL's, through storage/backend/sigv4.h.
 *
 * Every object the layer writes has the same layout, so that a listed
 * (ciphertext) size gives the plaintext size without reading the object:
 *
 *   [0, AGE_PREFIX)   the header, padded to AGE_PREFIX - 16 bytes with a
 *                     stanza of type "litestream/pad" (age implementations
 *                     ignore stanzas of a type they do not know), then the
 *                     16-byte payload nonce
 *   then              chunk i: AGE_CHUNK bytes of plaintext (the last one
 *                     1..AGE_CHUNK bytes, or 0 for an empty object) and the
 *                     16-byte Poly1305 tag, nonce = 11-byte big-endian i ||
 *                     0x01 for the last chunk, 0x00 before
 *
 * The parser (age_header_parse) reads any age v1 header, not only ours.
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_AGE_STREAM_H
#define LITESTREAM_AGE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define AGE_MAGIC          "age-encryption.org/v1\n"
#define AGE_MAGIC_LEN      22
#define AGE_CHUNK          65536 /* plaintext bytes per chunk */
#define AGE_TAG            16
#define AGE_CCHUNK         (AGE_CHUNK + AGE_TAG) /* ciphertext per chunk */
#define AGE_PREFIX         512 /* header + nonce of every object we write */
#define AGE_MAX_RECIPIENTS 4   /* what fits in AGE_PREFIX */
#define AGE_MAX_X25519     16  /* X25519 stanzas a header may carry */
#define AGE_MAX_IDENTITIES 64  /* identities in one identity file */
#define AGE_FILE_KEY       16
#define AGE_HDR_MAX        (64 * 1024) /* longest header we read */

/* One X25519 recipient stanza: the ephemeral share and the wrapped key. */
typedef struct age_x25519 {
    uint8_t share[32];
    uint8_t body[32];
} age_x25519;

/* A parsed header. */
typedef struct age_header {
    size_t len;     /* bytes up to and including the MAC line's LF */
    size_t mac_end; /* bytes the MAC covers: up to the end of "---" */
    uint8_t mac[32];
    int nx; /* X25519 stanzas (x[0..nx)) */
    age_x25519 x[AGE_MAX_X25519];
    int nother; /* stanzas of other types (ignored) */
} age_header;

/*
 * Parses the age v1 header at the start of p[0..n).  SQLITE_OK and *h;
 * SQLITE_FORMAT when p does not begin with the age v1 version line (not an
 * age file); SQLITE_TOOBIG when p ends inside the header (read more, up to
 * AGE_HDR_MAX bytes); SQLITE_CORRUPT when the header is malformed.  *pzWhy
 * (static) says what is wrong.
 */
int age_header_parse(const uint8_t *p, size_t n, age_header *h,
                     const char **pzWhy);

/*
 * The file key of a parsed header (p: its bytes, for the MAC) from the
 * first of the nid identities (secret keys sk[], public keys pk[]) that
 * unwraps an X25519 stanza; then checks the header MAC.  SQLITE_OK and
 * fk; SQLITE_AUTH when no identity unwraps any stanza; SQLITE_CORRUPT when
 * the MAC is wrong (*pzWhy says which).
 */
int age_unwrap(const age_header *h, const uint8_t *p, const uint8_t (*sk)[32],
               const uint8_t (*pk)[32], int nid, uint8_t fk[AGE_FILE_KEY],
               const char **pzWhy);

/* The payload key of a file key and the payload's nonce; 0 or -1. */
int age_payload_key(const uint8_t fk[AGE_FILE_KEY], const uint8_t nonce[16],
                    uint8_t key[32]);

/*
 * Our prefix (header, padding, nonce) for n (1..AGE_MAX_RECIPIENTS)
 * recipients into out, with a new random file key; key: its payload key.
 * 0, or -1 (a recipient that is not a valid point, no randomness).
 */
int age_prefix_build(const uint8_t (*rcpt)[32], int n, uint8_t out[AGE_PREFIX],
                     uint8_t key[32]);

/* Seals chunk idx (n <= AGE_CHUNK bytes) into out (n + AGE_TAG). */
int age_chunk_seal(const uint8_t key[32], uint64_t idx, int last,
                   const uint8_t *in, size_t n, uint8_t *out);
/*
 * Opens chunk idx (n bytes, tag included) into out (n - AGE_TAG bytes; out
 * may be in); -1 when it does not authenticate as chunk idx with that
 * last flag.
 */
int age_chunk_open(const uint8_t key[32], uint64_t idx, int last,
                   const uint8_t *in, size_t n, uint8_t *out);

/*
 * Opens the chunks c0, c0+1, ... of a payload in q[0..m) in place, moving
 * each plaintext down to dst (<= q); at most nreq chunks (UINT64_MAX: all).
 * A chunk followed by nothing in q is taken as the final one: pass the
 * bytes of the chunks wanted plus one more when the payload goes on.  *np:
 * plaintext bytes.  0; -1 when a chunk does not authenticate (*pBad: its
 * index); -2 for a chunk too short (an empty chunk other than an empty
 * payload's only one).
 */
int age_stream_open(const uint8_t key[32], uint64_t c0, uint64_t nreq,
                    uint8_t *q, size_t m, uint8_t *dst, size_t *np,
                    uint64_t *pBad);

/* Ciphertext size of our object of `plain` bytes. */
uint64_t age_cipher_size(uint64_t plain);
/* Plaintext size of our object of `cipher` bytes; -1 if none has it. */
int age_plain_size(uint64_t cipher, uint64_t *plain);

/*
 * Bech32 (BIP 173, no length limit) of 32 bytes with the lowercase human
 * readable part hrp ("age", "age-secret-key-").  Decode: z all lowercase
 * or all uppercase; 0 and out, or -1 with *pzWhy.  Encode: into buf
 * (lowercase; upper != 0: uppercase), 0 or -1 if n is too small.
 */
int age_bech32_decode(const char *z, size_t nz, const char *hrp,
                      uint8_t out[32], const char **pzWhy);
int age_bech32_encode(const char *hrp, const uint8_t data[32], int upper,
                      char *buf, size_t n);

/*
 * The X25519 identities of an identity file's text (as age-keygen writes
 * it: AGE-SECRET-KEY-1... lines; '#' comments and blank lines skipped)
 * into sk[0..*nid), at most max.  SQLITE_OK; SQLITE_ERROR with *pLine (1
 * based) and *pzWhy for a line that is not one; SQLITE_TOOBIG for more
 * than max; SQLITE_NOTFOUND when there is none.
 */
int age_identities_parse(const char *z, size_t n, uint8_t (*sk)[32], int max,
                         int *nid, int *pLine, const char **pzWhy);

#endif
