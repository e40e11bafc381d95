/*
 * storage/backend/sigv4.h: AWS Signature Version 4 (the S3 backend and GCS's
 * S3-compatible XML API).  Our own signer: curl 7.88's built-in one
 * mis-signs unsorted queries.  OpenSSL's SHA-256/HMAC only.
 *
 * Usage: build the request's query with sigv4_canonical_query() and send
 * exactly that string as the URL's query (it is sorted and encoded the way
 * SigV4 wants, so what is signed is what is sent); encode the path with
 * sigv4_uri_encode(..., keep_slash=1); then sigv4_sign() gives the value of
 * the Authorization header.
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_SIGV4_H
#define LITESTREAM_SIGV4_H

#include <stddef.h>
#include <stdint.h>

/* One header or query parameter (decoded: not yet URI-encoded). */
typedef struct sigv4_pair {
    const char *name;
    const char *value; /* "" for a bare query key */
} sigv4_pair;

/* The signing inputs. */
typedef struct sigv4_request {
    const char *method; /* "GET", "PUT", ... */
    const char *path;   /* already URI-encoded (sigv4_uri_encode, keep '/') */
    const char *query;  /* canonical query (sigv4_canonical_query) or "" */
    /*
     * Headers to sign, any order and case; values are trimmed and inner
     * runs of spaces collapsed as SigV4 requires.  Must include "host" and
     * "x-amz-date" (and for S3 "x-amz-content-sha256").
     */
    const sigv4_pair *headers;
    int nheader;
    const char *payload_hash; /* lowercase hex SHA-256, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;     /* "YYYYMMDDTHHMMSSZ" (same as x-amz-date) */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "s3" */
    const char *access_key;
    const char *secret_key;
} sigv4_request;

/*
 * RFC 3986 encoding as SigV4 wants it: unreserved characters
 * (A-Z a-z 0-9 - _ . ~) kept, everything else %XX uppercase; '/' kept when
 * keep_slash.  Returns a sqlite3_malloc'd string, NULL if out of memory.
 */
char *sigv4_uri_encode(const char *z, int keep_slash);

/*
 * The canonical query string of the decoded parameters: each name and
 * value encoded with sigv4_uri_encode(.., 0), sorted by encoded name then
 * encoded value, joined "a=1&b=&c=3".  Returns a sqlite3_malloc'd string
 * ("" when n == 0), NULL if out of memory.
 */
char *sigv4_canonical_query(const sigv4_pair *params, int n);

/* Lowercase hex SHA-256 of data (out: 65 bytes incl. the terminator). */
void sigv4_sha256_hex(const void *data, size_t n, char out[65]);

/*
 * The Authorization header value:
 *   "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
 *    SignedHeaders=a;b;c, Signature=<64 hex>"
 * sqlite3_malloc'd; NULL if out of memory or an input is missing.  When
 * pzCanonical / pzStringToSign are not NULL they receive the intermediate
 * strings (sqlite3_malloc'd), for tests and for debugging signature
 * mismatches.
 */
char *sigv4_sign(const sigv4_request *r, char **pzCanonical,
                 char **pzStringToSign);

/*
 * Base64 of the MD5 of data into out[25] (the Content-MD5 header that S3's
 * multi-delete requires).  Here because this file is the OpenSSL user.
 */
void sigv4_md5_base64(const void *data, size_t n, char out[25]);

/* "YYYYMMDDTHHMMSSZ" of the Unix time t (UTC) into out[17]. */
void sigv4_amz_date(long long t, char out[17]);

/*
 * Base64 of n bytes (url: the URL-safe alphabet without padding, as JWTs
 * use).  sqlite3_malloc'd; NULL if out of memory.
 */
char *sigv4_base64(const void *data, size_t n, int url);

/*
 * Decodes standard base64 (padding required, no whitespace).  SQLITE_OK
 * and *out (sqlite3_malloc'd) / *nOut; SQLITE_ERROR if z is empty or not
 * base64; SQLITE_NOMEM.
 */
int sigv4_base64_decode(const char *z, uint8_t **out, size_t *nOut);

/*
 * Base64 of HMAC-SHA256(key, msg): an Azure Shared Key signature (the key
 * is the decoded account key).  sqlite3_malloc'd; NULL on failure.
 */
char *sigv4_hmac_base64(const void *key, size_t nkey, const char *msg);

/*
 * The RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of zMsg with the
 * RSA private key in PEM text zPem, base64url without padding, into *pzSig
 * (sqlite3_malloc'd).  SQLITE_ERROR if the PEM holds no RSA private key;
 * SQLITE_NOMEM.
 */
int sigv4_rs256(const char *zPem, const char *zMsg, char **pzSig);

/*
 * The primitives of the age layer (storage/backend/age_stream.c), here
 * because this file is the OpenSSL user.  Each returns 0, or -1 on failure.
 */
/* HMAC-SHA256(key, msg) into out. */
int sigv4_hmac_sha256(const void *key, size_t nkey, const void *msg, size_t n,
                      uint8_t out[32]);
/*
 * X25519 (RFC 7748) of the scalar and the point (NULL: the base point, which
 * gives the public key of the scalar); -1 also for an all-zero result.
 */
int sigv4_x25519(const uint8_t scalar[32], const uint8_t *point,
                 uint8_t out[32]);
/*
 * ChaCha20-Poly1305 (RFC 8439), no associated data.  Seal: n bytes of in
 * into n + 16 bytes of out (the tag last).  Open: n >= 16 bytes of in
 * (ciphertext and tag) into n - 16 bytes of out; -1 when the tag does not
 * verify.  out may be in.
 */
int sigv4_chacha_seal(const uint8_t key[32], const uint8_t nonce[12],
                      const uint8_t *in, size_t n, uint8_t *out);
int sigv4_chacha_open(const uint8_t key[32], const uint8_t nonce[12],
                      const uint8_t *in, size_t n, uint8_t *out);
/* n bytes from OpenSSL's CSPRNG. */
int sigv4_random(void *buf, size_t n);
/* Wipes n bytes (a write the compiler keeps). */
void sigv4_cleanse(void *p, size_t n);

#endif
