/*
 * storage/backend/nats_meta.c: the object-store metadata document, names
 * and ids of the NATS layout (see nats_meta.h).
 *
 * Invariants:
 *   1. A decoded nuid is a usable subject token: 1..64 characters of
 *      [A-Za-z0-9_-], so "$O.<bucket>.C.<nuid>" names one subject and no
 *      wildcard, whatever the document said.
 *   2. A decoded live object is consistent: chunks == 0 iff size == 0, a
 *      nuid whenever there are chunks.  The reader of chunks relies on it.
 *   3. Documents are read leniently (unknown keys ignored, "headers" values
 *      a string or an array of strings), as the other clients write them.
 *
 * Threads: pure functions; any thread.
 */
#include "storage/backend/nats_meta.h"

#include <string.h>

#include "storage/backend/sigv4.h"
#include "storage/base/json.h"
#include "storage/base/rand.h"
#include "storage/base/timefmt.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
nats_b64url(const void *data, size_t n)
{
    const uint8_t *p = data;
    char *out = sqlite3_malloc64((uint64_t)(n + 2) / 3 * 4 + 1);
    size_t i, o = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64url_alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return out;
}

static int
b64url_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int
nats_b64url_decode(const char *z, uint8_t **pOut, size_t *pn)
{
    size_t n = strlen(z), i, o = 0;
    uint32_t acc = 0;
    int bits = 0;
    uint8_t *out;

    *pOut = NULL;
    *pn = 0;
    while (n > 0 && z[n - 1] == '=')
        n--;
    if (n % 4 == 1 || strlen(z) - n > 2)
        return SQLITE_CORRUPT;
    out = sqlite3_malloc64(n / 4 * 3 + 3);
    if (out == NULL)
        return SQLITE_NOMEM;
    for (i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)z[i]);
        if (v < 0) {
            sqlite3_free(out);
            return SQLITE_CORRUPT;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    out[o] = 0;
    *pOut = out;
    *pn = o;
    return SQLITE_OK;
}

void
nats_nuid(char out[NATS_META_NUID_LEN + 1])
{
    static const char digits[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    int i;

    for (i = 0; i < NATS_META_NUID_LEN; i++)
        out[i] = digits[ls_rand_upto(61)]; /* [0, 61] */
    out[NATS_META_NUID_LEN] = 0;
}

char *
nats_digest(const void *data, size_t n)
{
    char hex[65];
    uint8_t raw[32];
    char *b64, *z;
    int i;

    sigv4_sha256_hex(data, n, hex);
    for (i = 0; i < 32; i++) {
        int hi = hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10;
        int lo = hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0'
                                       : hex[2 * i + 1] - 'a' + 10;
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
    b64 = nats_b64url(raw, sizeof(raw));
    z = b64 ? sqlite3_mprintf("SHA-256=%s", b64) : NULL;
    sqlite3_free(b64);
    return z;
}

/* 1 if z is 1..64 characters of [A-Za-z0-9_-]. */
static int
token_valid(const char *z)
{
    size_t i;

    for (i = 0; z[i]; i++) {
        char c = z[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return i >= 1 && i <= 64;
}

int
nats_bucket_valid(const char *z)
{
    return token_valid(z);
}

void
nats_meta_clear(nats_meta *m)
{
    if (m == NULL)
        return;
    sqlite3_free(m->name);
    sqlite3_free(m->nuid);
    sqlite3_free(m->digest);
    memset(m, 0, sizeof(*m));
}

/* A copy of a JSON string member, or NULL (absent or not a string). */
static int
dup_member(json_t *o, const char *zKey, char **pz)
{
    json_t *v = json_object_get(o, zKey);

    *pz = NULL;
    if (!json_is_string(v))
        return SQLITE_OK;
    *pz = sqlite3_mprintf("%s", json_string_value(v));
    return *pz ? SQLITE_OK : SQLITE_NOMEM;
}

/* A non-negative integer member (absent: 0); -1 when it is not one. */
static int64_t
uint_member(json_t *o, const char *zKey)
{
    json_t *v = json_object_get(o, zKey);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

/* The creation time from the headers object, or -1. */
static int64_t
header_time(json_t *o)
{
    json_t *h = json_object_get(o, "headers"), *v;
    const char *zKey;
    int64_t ms;

    if (!json_is_object(h))
        return -1;
    json_object_foreach(h, zKey, v)
    {
        if (sqlite3_stricmp(zKey, NATS_META_TIME_HEADER) != 0)
            continue;
        if (json_is_array(v))
            v = json_array_get(v, 0);
        if (json_is_string(v) &&
            timefmt_parse_time(json_string_value(v), &ms) && ms >= 0)
            return ms; /* (a time before 1970 counts as none) */
    }
    return -1;
}

/* The checks of invariants 1 and 2; a message or NULL. */
static const char *
meta_check(json_t *o, nats_meta *m)
{
    int64_t size = uint_member(o, "size"), chunks = uint_member(o, "chunks");
    json_t *opts = json_object_get(o, "options");
    int64_t cs = json_is_object(opts) ? uint_member(opts, "max_chunk_size") : 0;

    if (m->name == NULL || m->name[0] == 0)
        return "no object name";
    if (size < 0 || chunks < 0 || cs < 0)
        return "size, chunks or max_chunk_size is not a non-negative integer";
    m->size = (uint64_t)size;
    m->chunks = (uint64_t)chunks;
    m->chunk_size = (uint64_t)cs;
    m->deleted = json_is_true(json_object_get(o, "deleted"));
    m->link =
        json_is_object(opts) && json_is_object(json_object_get(opts, "link"));
    m->created_ms = header_time(o);
    if (m->nuid && !token_valid(m->nuid))
        return "the nuid is not a subject token";
    if (m->deleted || m->link)
        return NULL;
    if ((m->size == 0) != (m->chunks == 0))
        return "the chunk count does not match the size";
    if (m->chunks > 0 && m->nuid == NULL)
        return "chunks without a nuid";
    if (m->chunk_size > 0 && m->chunks > 0 &&
        (m->size + m->chunk_size - 1) / m->chunk_size > m->chunks)
        return "fewer chunks than the size needs";
    return NULL;
}

int
nats_meta_decode(const void *data, size_t n, nats_meta *m, char **pzErr)
{
    json_error_t jerr;
    json_t *o = json_loadb(data, n, JSON_REJECT_DUPLICATES, &jerr);
    const char *zWhy = NULL;
    int rc = SQLITE_OK;

    memset(m, 0, sizeof(*m));
    *pzErr = NULL;
    if (!json_is_object(o)) {
        rc = SQLITE_CORRUPT;
        *pzErr = sqlite3_mprintf("litestream: object-store metadata is not "
                                 "a JSON object: %s",
                                 o ? "another JSON value" : jerr.text);
        goto out;
    }
    if (dup_member(o, "name", &m->name) != SQLITE_OK ||
        dup_member(o, "nuid", &m->nuid) != SQLITE_OK ||
        dup_member(o, "digest", &m->digest) != SQLITE_OK) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    zWhy = meta_check(o, m);
    if (zWhy) {
        rc = SQLITE_CORRUPT;
        *pzErr = sqlite3_mprintf("litestream: bad object-store metadata "
                                 "for '%s': %s",
                                 m->name ? m->name : "?", zWhy);
    }
out:
    if (rc == SQLITE_NOMEM && *pzErr == NULL)
        *pzErr = sqlite3_mprintf("litestream: out of memory");
    if (rc != SQLITE_OK)
        nats_meta_clear(m);
    json_decref(o);
    return rc;
}

/* {"Litestream-Timestamp":["…"]}, or NULL when there is no time. */
static json_t *
meta_headers(const nats_meta *m, int *pBad)
{
    char zTime[40];
    json_t *h, *a;

    if (m->created_ms < 0)
        return NULL;
    timefmt_time(m->created_ms, zTime, sizeof(zTime));
    h = json_object();
    a = json_array();
    if (h == NULL || a == NULL || json_array_append_new(a, ls_json_text(zTime)))
        *pBad = 1;
    ls_json_set(h, NATS_META_TIME_HEADER, a, pBad);
    return h;
}

int
nats_meta_encode(const nats_meta *m, const char *zBucket, char **pzOut)
{
    json_t *o = json_object(), *opts = json_object(), *h;
    int bad = o == NULL || opts == NULL;

    *pzOut = NULL;
    ls_json_set(o, "name", ls_json_text(m->name), &bad);
    h = meta_headers(m, &bad);
    if (h)
        ls_json_set(o, "headers", h, &bad);
    ls_json_set(
        opts, "max_chunk_size",
        ls_json_u64(m->chunk_size ? m->chunk_size : NATS_META_CHUNK_SIZE),
        &bad);
    ls_json_set(o, "options", opts, &bad);
    opts = NULL;
    ls_json_set(o, "bucket", ls_json_text(zBucket), &bad);
    ls_json_set(o, "nuid", ls_json_text(m->nuid ? m->nuid : ""), &bad);
    ls_json_set(o, "size", ls_json_u64(m->deleted ? 0 : m->size), &bad);
    ls_json_set(o, "mtime", ls_json_text("0001-01-01T00:00:00Z"), &bad);
    ls_json_set(o, "chunks", ls_json_u64(m->deleted ? 0 : m->chunks), &bad);
    if (m->digest && !m->deleted)
        ls_json_set(o, "digest", ls_json_text(m->digest), &bad);
    if (m->deleted)
        ls_json_set(o, "deleted", json_true(), &bad);
    if (!bad)
        *pzOut = ls_json_dump(o);
    json_decref(o);
    json_decref(opts);
    return *pzOut ? SQLITE_OK : SQLITE_NOMEM;
}
