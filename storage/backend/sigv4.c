/*
 * storage/backend/sigv4.c: AWS Signature Version 4 (see sigv4.h), and the other
 * digests the object-store backends need (SHA-256 hex, Content-MD5, base64,
 * Azure's Shared Key HMAC, the RS256 signature of a Google service-account
 * JWT), and the primitives of the age layer (X25519, HMAC-SHA256,
 * ChaCha20-Poly1305, random bytes; storage/backend/age_stream.c).
 *
 * The only file of the project that includes OpenSSL.  It uses OpenSSL's
 * one-shot EVP_Digest() and HMAC() and never touches OpenSSL's allocator;
 * every string it returns comes from sqlite3_malloc/sqlite3_mprintf.
 *
 * The signer follows the published algorithm step by step:
 *   canonical request = METHOD \n path \n query \n canonical headers \n
 *                       signed headers \n payload hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n amz_date \n scope \n
 *                       hex(SHA-256(canonical request))
 *   signing key       = HMAC chain "AWS4"+secret -> date -> region ->
 *                       service -> "aws4_request"
 * The path and query are used exactly as given (the caller encodes them
 * with sigv4_uri_encode / sigv4_canonical_query, and sends the same bytes).
 *
 * Invariants:
 *   1. What is signed is what the caller passed: no path normalisation, no
 *      re-encoding (S3 signs the path as sent, encoded once).
 *   2. Header names are lowercased, values trimmed and inner runs of blanks
 *      (space, tab) collapsed to one space; headers of the same name are
 *      joined with ',' in the order given; the list is sorted by name.
 *   3. A header value holding CR or LF, or a name that is empty or holds
 *      a blank, a control byte or ':', makes sigv4_sign() return NULL
 *      rather than sign a line other than the one sent.
 *   4. Secret-derived bytes on the stack are wiped before returning.
 *   5. Every function is NULL-safe and leaks nothing on failure.
 *
 * Threads: no shared state; any thread.
 */
#include "storage/backend/sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "storage/base/sqlite.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

static const char sigv4_hexdigits[] = "0123456789abcdef";

/* Lowercase hex of n bytes into out (2n + 1 bytes incl. the terminator). */
static void
sigv4_hex(const unsigned char *p, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = sigv4_hexdigits[p[i] >> 4];
        out[2 * i + 1] = sigv4_hexdigits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int
sigv4_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

char *
sigv4_uri_encode(const char *z, int keep_slash)
{
    static const char upper[] = "0123456789ABCDEF";
    const unsigned char *p;
    char *out, *o;

    if (z == NULL)
        return NULL;
    out = sqlite3_malloc64(strlen(z) * 3 + 1);
    if (out == NULL)
        return NULL;
    o = out;
    for (p = (const unsigned char *)z; *p; p++) {
        if (sigv4_is_unreserved(*p) || (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = upper[*p >> 4];
            *o++ = upper[*p & 15];
        }
    }
    *o = 0;
    return out;
}

/* One encoded query parameter, for sorting. */
typedef struct sigv4_qparam {
    char *name;
    char *value;
} sigv4_qparam;

static int
sigv4_qparam_cmp(const void *a, const void *b)
{
    const sigv4_qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Joins the sorted parameters "a=1&b=2"; NULL if out of memory. */
static char *
sigv4_join_query(const sigv4_qparam *q, int n)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    int i;

    for (i = 0; i < n; i++)
        sqlite3_str_appendf(s, "%s%s=%s", i ? "&" : "", q[i].name, q[i].value);
    if (sqlite3_str_errcode(s) != SQLITE_OK) {
        sqlite3_free(sqlite3_str_finish(s));
        return NULL;
    }
    return sqlite3_str_finish(s); /* never empty: each holds '=' */
}

char *
sigv4_canonical_query(const sigv4_pair *params, int n)
{
    sigv4_qparam *q = NULL;
    char *out = NULL;
    int i, ok = 1;

    if (n <= 0)
        return sqlite3_mprintf("%s", "");
    if (params == NULL)
        return NULL;
    q = sqlite3_malloc64(sizeof(*q) * (size_t)n);
    if (q == NULL)
        return NULL;
    memset(q, 0, sizeof(*q) * (size_t)n);
    for (i = 0; i < n && ok; i++) {
        q[i].name = sigv4_uri_encode(params[i].name, 0);
        q[i].value =
            sigv4_uri_encode(params[i].value ? params[i].value : "", 0);
        ok = q[i].name != NULL && q[i].value != NULL;
    }
    if (!ok)
        goto out;
    qsort(q, (size_t)n, sizeof(*q), sigv4_qparam_cmp);
    out = sigv4_join_query(q, n);
out:
    for (i = 0; i < n; i++) {
        sqlite3_free(q[i].name);
        sqlite3_free(q[i].value);
    }
    sqlite3_free(q);
    return out;
}

/* The want-byte digest of data into md; 1 on success, 0 if the input is
 * missing or the algorithm unavailable (MD5 in a FIPS-only OpenSSL). */
static int
sigv4_digest(const EVP_MD *type, const void *data, size_t n,
             unsigned char md[EVP_MAX_MD_SIZE], unsigned int want)
{
    unsigned int len = 0;

    if (data == NULL && n > 0)
        return 0;
    return EVP_Digest(data ? data : "", n, md, &len, type, NULL) && len == want;
}

void
sigv4_sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];

    if (out == NULL)
        return;
    out[0] = 0;
    if (sigv4_digest(EVP_sha256(), data, n, md, 32))
        sigv4_hex(md, 32, out);
}

void
sigv4_md5_base64(const void *data, size_t n, char out[25])
{
    unsigned char md[EVP_MAX_MD_SIZE];

    if (out == NULL)
        return;
    out[0] = 0;
    if (sigv4_digest(EVP_md5(), data, n, md, 16))
        EVP_EncodeBlock((unsigned char *)out, md, 16); /* 24 chars + NUL */
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant). */
static void
sigv4_civil(long long days, long long *y, int *m, int *d)
{
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

void
sigv4_amz_date(long long t, char out[17])
{
    long long days, secs, y;
    int m, d;

    if (out == NULL)
        return;
    out[0] = 0;
    /* Years 0000..9999 only: the format has four digits for the year. */
    if (t < -62167219200LL || t > 253402300799LL)
        return;
    days = t / 86400;
    secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    sigv4_civil(days, &y, &m, &d);
    sqlite3_snprintf(17, out, "%04d%02d%02dT%02d%02d%02dZ", (int)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60),
                     (int)(secs % 60));
}

/* ---- sigv4_sign() ---------------------------------------------------- */

/* One header after normalisation. */
typedef struct sigv4_hdr {
    char *name;  /* lowercase */
    char *value; /* trimmed, blanks collapsed */
    int idx;     /* position given, so equal names keep their order */
} sigv4_hdr;

static int
sigv4_hdr_cmp(const void *a, const void *b)
{
    const sigv4_hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int
sigv4_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* A lowercase copy of a header name; NULL if empty, invalid or OOM. */
static char *
sigv4_header_name(const char *z)
{
    size_t i, n = z ? strlen(z) : 0;
    char *out;

    if (n == 0)
        return NULL;
    out = sqlite3_malloc64(n + 1);
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)z[i];
        if (c <= ' ' || c == ':' || c == 0x7f) {
            sqlite3_free(out);
            return NULL;
        }
        out[i] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
    }
    out[n] = 0;
    return out;
}

/* Trimmed copy, inner blank runs collapsed; NULL on CR/LF or OOM. */
static char *
sigv4_header_value(const char *z)
{
    size_t n = z ? strlen(z) : 0;
    char *out = sqlite3_malloc64(n + 1), *o = out;
    int pending = 0;

    if (out == NULL)
        return NULL;
    for (; z && *z; z++) {
        if (*z == '\r' || *z == '\n') {
            sqlite3_free(out);
            return NULL;
        }
        if (sigv4_is_blank(*z)) {
            pending = o != out;
            continue;
        }
        if (pending)
            *o++ = ' ';
        pending = 0;
        *o++ = *z;
    }
    *o = 0;
    return out;
}

/* Normalised, sorted copy of r's headers into *pa; SQLITE_* code. */
static int
sigv4_headers_sorted(const sigv4_request *r, sigv4_hdr **pa)
{
    sigv4_hdr *a;
    int i;

    *pa = NULL;
    a = sqlite3_malloc64(sizeof(*a) * (size_t)r->nheader);
    if (a == NULL)
        return SQLITE_NOMEM;
    memset(a, 0, sizeof(*a) * (size_t)r->nheader);
    *pa = a;
    for (i = 0; i < r->nheader; i++) {
        a[i].idx = i;
        a[i].name = sigv4_header_name(r->headers[i].name);
        a[i].value = sigv4_header_value(r->headers[i].value);
        if (a[i].name == NULL || a[i].value == NULL)
            return SQLITE_MISUSE; /* or OOM: the caller gets NULL either way */
    }
    qsort(a, (size_t)r->nheader, sizeof(*a), sigv4_hdr_cmp);
    return SQLITE_OK;
}

static void
sigv4_headers_free(sigv4_hdr *a, int n)
{
    int i;
    if (a == NULL)
        return;
    for (i = 0; i < n; i++) {
        sqlite3_free(a[i].name);
        sqlite3_free(a[i].value);
    }
    sqlite3_free(a);
}

/*
 * Canonical headers ("name:v1,v2\n" per name) into *pzCanon and the signed
 * header list ("a;b;c") into *pzSigned, from sorted headers.
 */
static int
sigv4_headers_text(const sigv4_hdr *a, int n, char **pzCanon, char **pzSigned)
{
    sqlite3_str *c = sqlite3_str_new(NULL);
    sqlite3_str *s = sqlite3_str_new(NULL);
    int i, rc;

    for (i = 0; i < n; i++) {
        if (i > 0 && strcmp(a[i].name, a[i - 1].name) == 0) {
            sqlite3_str_appendf(c, ",%s", a[i].value);
            continue;
        }
        if (i > 0)
            sqlite3_str_appendchar(c, 1, '\n');
        sqlite3_str_appendf(c, "%s:%s", a[i].name, a[i].value);
        sqlite3_str_appendf(s, "%s%s", i ? ";" : "", a[i].name);
    }
    sqlite3_str_appendchar(c, 1, '\n');
    rc = sqlite3_str_errcode(c);
    if (rc == SQLITE_OK)
        rc = sqlite3_str_errcode(s);
    *pzCanon = sqlite3_str_finish(c);
    *pzSigned = sqlite3_str_finish(s);
    if (rc == SQLITE_OK && (*pzCanon == NULL || *pzSigned == NULL))
        rc = SQLITE_NOMEM;
    return rc;
}

/* HMAC-SHA256(key, msg) into out[32]; 0 on failure. */
static int
sigv4_hmac(const unsigned char *key, size_t nkey, const char *msg,
           unsigned char out[32])
{
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key, (int)nkey, (const unsigned char *)msg,
             strlen(msg), out, &len) == NULL)
        return 0;
    return len == 32;
}

/* Hex signature of zSts (out: 65 bytes); SQLITE_* code. */
static int
sigv4_signature(const sigv4_request *r, const char *zSts, char out[65])
{
    unsigned char k[32];
    char date[9];
    char *zKey;
    int ok;

    memcpy(date, r->amz_date, 8);
    date[8] = 0;
    zKey = sqlite3_mprintf("AWS4%s", r->secret_key);
    if (zKey == NULL)
        return SQLITE_NOMEM;
    ok = sigv4_hmac((unsigned char *)zKey, strlen(zKey), date, k) &&
         sigv4_hmac(k, 32, r->region, k) && sigv4_hmac(k, 32, r->service, k) &&
         sigv4_hmac(k, 32, "aws4_request", k) && sigv4_hmac(k, 32, zSts, k);
    OPENSSL_cleanse(zKey, strlen(zKey));
    sqlite3_free(zKey);
    if (ok)
        sigv4_hex(k, 32, out);
    OPENSSL_cleanse(k, sizeof(k));
    return ok ? SQLITE_OK : SQLITE_ERROR;
}

/* Are all the inputs there, and amz_date of the form YYYYMMDDTHHMMSSZ? */
static int
sigv4_request_ok(const sigv4_request *r)
{
    int i;

    if (r == NULL || !r->method || !r->path || !r->payload_hash ||
        !r->amz_date || !r->region || !r->service || !r->access_key ||
        !r->secret_key || !r->headers || r->nheader <= 0)
        return 0;
    if (strlen(r->amz_date) != 16 || r->amz_date[8] != 'T' ||
        r->amz_date[15] != 'Z')
        return 0;
    for (i = 0; i < 8; i++)
        if (r->amz_date[i] < '0' || r->amz_date[i] > '9')
            return 0;
    return 1;
}

char *
sigv4_sign(const sigv4_request *r, char **pzCanonical, char **pzStringToSign)
{
    sigv4_hdr *hdrs = NULL;
    char *zCanonHdrs = NULL, *zSigned = NULL, *zCreq = NULL, *zSts = NULL;
    char *zAuth = NULL;
    char hash[65], sig[65];
    int rc;

    if (pzCanonical)
        *pzCanonical = NULL;
    if (pzStringToSign)
        *pzStringToSign = NULL;
    if (!sigv4_request_ok(r))
        return NULL;
    rc = sigv4_headers_sorted(r, &hdrs);
    if (rc == SQLITE_OK)
        rc = sigv4_headers_text(hdrs, r->nheader, &zCanonHdrs, &zSigned);
    if (rc != SQLITE_OK)
        goto out;
    zCreq = sqlite3_mprintf("%s\n%s\n%s\n%s\n%s\n%s", r->method, r->path,
                            r->query ? r->query : "", zCanonHdrs, zSigned,
                            r->payload_hash);
    if (zCreq == NULL)
        goto out;
    sigv4_sha256_hex(zCreq, strlen(zCreq), hash);
    zSts =
        sqlite3_mprintf(SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s",
                        r->amz_date, r->amz_date, r->region, r->service, hash);
    if (zSts == NULL || hash[0] == 0 ||
        sigv4_signature(r, zSts, sig) != SQLITE_OK)
        goto out;
    zAuth = sqlite3_mprintf(
        SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/"
                        "aws4_request, SignedHeaders=%s, Signature=%s",
        r->access_key, r->amz_date, r->region, r->service, zSigned, sig);
out:
    if (zAuth && pzCanonical) {
        *pzCanonical = zCreq;
        zCreq = NULL;
    }
    if (zAuth && pzStringToSign) {
        *pzStringToSign = zSts;
        zSts = NULL;
    }
    sqlite3_free(zCreq);
    sqlite3_free(zSts);
    sqlite3_free(zCanonHdrs);
    sqlite3_free(zSigned);
    sigv4_headers_free(hdrs, r->nheader);
    return zAuth;
}

/* --- Base64, Azure Shared Key, RS256 (the other backends' crypto) ---- */

char *
sigv4_base64(const void *data, size_t n, int url)
{
    char *z = sqlite3_malloc64(4 * ((uint64_t)n + 2) / 3 + 4);
    size_t k;

    if (z == NULL || (n > 0 && data == NULL)) {
        sqlite3_free(z);
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)z, data ? data : (const void *)"", (int)n);
    if (url) {
        for (k = 0; z[k]; k++)
            z[k] = z[k] == '+' ? '-' : z[k] == '/' ? '_' : z[k];
        while (k > 0 && z[k - 1] == '=')
            z[--k] = 0;
    }
    return z;
}

int
sigv4_base64_decode(const char *z, uint8_t **out, size_t *nOut)
{
    size_t n = z ? strlen(z) : 0, i, pad = 0;
    uint8_t *p;
    int k;

    *out = NULL;
    *nOut = 0;
    if (n == 0 || n % 4 != 0 || n > 1 << 20)
        return SQLITE_ERROR;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)z[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9');
        if (c == '=' && i >= n - 2 && (i == n - 1 || z[n - 1] == '='))
            pad++;
        else if (!alnum && c != '+' && c != '/')
            return SQLITE_ERROR;
    }
    p = sqlite3_malloc64(n / 4 * 3 + 1);
    if (p == NULL)
        return SQLITE_NOMEM;
    k = EVP_DecodeBlock(p, (const unsigned char *)z, (int)n);
    if (k < 0 || (size_t)k < pad) {
        sqlite3_free(p);
        return SQLITE_ERROR;
    }
    *out = p;
    *nOut = (size_t)k - pad;
    return SQLITE_OK;
}

char *
sigv4_hmac_base64(const void *key, size_t nkey, const char *msg)
{
    unsigned char mac[32];
    char *z;

    if (key == NULL || msg == NULL || !sigv4_hmac(key, nkey, msg, mac))
        return NULL;
    z = sigv4_base64(mac, sizeof(mac), 0);
    OPENSSL_cleanse(mac, sizeof(mac));
    return z;
}

/* The private key of a PEM text (PKCS#8 or PKCS#1), or NULL. */
static EVP_PKEY *
sigv4_pem_key(const char *zPem)
{
    BIO *bio = BIO_new_mem_buf(zPem, -1);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    ERR_clear_error(); /* leave no queued error to the host's OpenSSL use */
    return k;
}

int
sigv4_rs256(const char *zPem, const char *zMsg, char **pzSig)
{
    EVP_PKEY *k;
    EVP_MD_CTX *md = NULL;
    unsigned char *sig = NULL;
    size_t nsig = 0;
    int rc = SQLITE_ERROR;

    *pzSig = NULL;
    if (zPem == NULL || zMsg == NULL || (k = sigv4_pem_key(zPem)) == NULL)
        return SQLITE_ERROR;
    if (EVP_PKEY_base_id(k) != EVP_PKEY_RSA)
        goto out;
    md = EVP_MD_CTX_new();
    if (md == NULL ||
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestSign(md, NULL, &nsig, (const unsigned char *)zMsg,
                       strlen(zMsg)) != 1)
        goto out;
    sig = sqlite3_malloc64(nsig ? nsig : 1);
    if (sig == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (EVP_DigestSign(md, sig, &nsig, (const unsigned char *)zMsg,
                       strlen(zMsg)) != 1)
        goto out;
    *pzSig = sigv4_base64(sig, nsig, 1);
    rc = *pzSig ? SQLITE_OK : SQLITE_NOMEM;
out:
    ERR_clear_error();
    sqlite3_free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return rc;
}

/* --- The primitives of the age layer (storage/backend/age_stream.c) ---- */

int
sigv4_hmac_sha256(const void *key, size_t nkey, const void *msg, size_t n,
                  uint8_t out[32])
{
    unsigned int len = 0;
    static const unsigned char empty = 0;
    if (HMAC(EVP_sha256(), key ? key : &empty, (int)nkey, msg ? msg : &empty, n,
             out, &len) == NULL ||
        len != 32)
        return -1;
    return 0;
}

int
sigv4_x25519(const uint8_t scalar[32], const uint8_t *point, uint8_t out[32])
{
    static const uint8_t zero[32];
    EVP_PKEY *k = NULL, *peer = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    size_t len = 32;
    int rc = -1;

    k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, scalar, 32);
    if (k == NULL)
        goto out;
    if (point == NULL) {
        rc = EVP_PKEY_get_raw_public_key(k, out, &len) == 1 && len == 32 ? 0
                                                                         : -1;
        goto out;
    }
    peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, point, 32);
    ctx = peer ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    if (ctx && EVP_PKEY_derive_init(ctx) == 1 &&
        EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
        EVP_PKEY_derive(ctx, out, &len) == 1 && len == 32)
        rc = CRYPTO_memcmp(out, zero, 32) == 0 ? -1 : 0;
out:
    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(k);
    return rc;
}

/* ChaCha20-Poly1305 of n bytes: seal appends the tag, open checks it. */
static int
sigv4_chacha(int seal, const uint8_t key[32], const uint8_t nonce[12],
             const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok;

    ok = c && n <= (size_t)1 << 30 &&
         EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, key, nonce,
                           seal) == 1;
    if (ok && !seal)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16,
                                 (void *)(in + n)) == 1;
    if (ok && n > 0)
        ok = EVP_CipherUpdate(c, out, &len, in, (int)n) == 1;
    if (ok)
        ok = EVP_CipherFinal_ex(c, out + len, &len) == 1;
    if (ok && seal)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + n) == 1;
    EVP_CIPHER_CTX_free(c);
    ERR_clear_error();
    return ok ? 0 : -1;
}

int
sigv4_chacha_seal(const uint8_t key[32], const uint8_t nonce[12],
                  const uint8_t *in, size_t n, uint8_t *out)
{
    return sigv4_chacha(1, key, nonce, in, n, out);
}

int
sigv4_chacha_open(const uint8_t key[32], const uint8_t nonce[12],
                  const uint8_t *in, size_t n, uint8_t *out)
{
    if (n < 16)
        return -1;
    return sigv4_chacha(0, key, nonce, in, n - 16, out);
}

int
sigv4_random(void *buf, size_t n)
{
    int ok = RAND_bytes(buf, (int)n) == 1;
    ERR_clear_error();
    return ok ? 0 : -1;
}

void
sigv4_cleanse(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}
