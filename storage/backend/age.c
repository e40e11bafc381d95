/*
 * storage/backend/age.c: the age layer over a backend handle (age.h): the
 * vtable it installs, ranged reads through the STREAM chunks, encrypted
 * puts, plaintext sizes in listings, and its messages.  The identities and
 * the key cache are in age_keys.c, the format in age_stream.c.
 *
 * Invariants:
 *   1. No LTX object (a key ending in ".ltx") reaches the backend through
 *      put or put_file unencrypted, and get returns only bytes of one whose
 *      chunk authenticated (as chunk i, with the right final flag: a
 *      truncated object fails).  Other objects (lock.json) pass as they
 *      are: metadata, like the names.
 *   2. A get asks the backend for the chunks covering the range plus one
 *      byte: a chunk followed by nothing is the final one.
 *   3. Every failure of the layer leaves a message saying what to do on
 *      the handle; codes: SQLITE_AUTH (no identity, wrong identity,
 *      plaintext where ciphertext was expected), SQLITE_CORRUPT (an
 *      object that does not decrypt), SQLITE_NOMEM.
 *
 * Threads: a handle is used by one thread at a time (backend.h).
 */
#include "storage/backend/age.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/backend/age_keys.h"
#include "storage/backend/age_stream.h"
#include "storage/backend/url.h"
#include "storage/base/fsutil.h"
#include "storage/base/sqlite.h"

/* The layer of a handle whose vtable is ours (L->vt is the first member). */
static age_layer *
layer_of(backend *b)
{
    return (age_layer *)(void *)b->vt;
}

static const char *
url_of(backend *b)
{
    return b->url ? b->url : "the replica";
}

/* Sets the layer's message; returns rc. */
static int
age_err(age_layer *L, int rc, const char *zFmt, ...)
{
    va_list ap;
    va_start(ap, zFmt);
    sqlite3_vsnprintf(sizeof(L->err), L->err, zFmt, ap);
    va_end(ap);
    return rc;
}

/* The message of an identity that could not be loaded. */
static int
ids_needed(backend *b, age_layer *L)
{
    char *zWhy = NULL;
    int rc = age_keys_load(L, &zWhy);
    if (rc != SQLITE_OK)
        age_err(L, rc, "litestream: %s (replica '%s')",
                zWhy ? zWhy : "out of memory", url_of(b));
    sqlite3_free(zWhy);
    return rc;
}

/* --- Reads --------------------------------------------------------------- */

/* The payload key of object key from its first bytes p[0..n). */
static int
open_header(backend *b, age_layer *L, const char *key, const uint8_t *p,
            size_t n, uint8_t pk[32])
{
    uint8_t fk[AGE_FILE_KEY];
    age_header h;
    const char *zWhy;
    int rc = age_header_parse(p, n < AGE_PREFIX ? n : AGE_PREFIX, &h, &zWhy);

    if (rc == SQLITE_FORMAT)
        return age_err(L, SQLITE_AUTH,
                       "litestream: object '%s' of '%s' is not encrypted, "
                       "but age options are set (%s): the replica holds "
                       "plaintext.  Read it without them, or replicate "
                       "into a new, empty location to encrypt",
                       key, url_of(b), age_keys_origin(L));
    if (rc == SQLITE_OK && (h.len != AGE_PREFIX - 16 || n < AGE_PREFIX))
        rc = SQLITE_TOOBIG;
    if (rc == SQLITE_TOOBIG)
        return age_err(L, SQLITE_CORRUPT,
                       "litestream: object '%s' of '%s' is an age file "
                       "not written by litestream (its header is not %d "
                       "bytes) or is truncated",
                       key, url_of(b), AGE_PREFIX - 16);
    if (rc != SQLITE_OK)
        return age_err(L, SQLITE_CORRUPT,
                       "litestream: object '%s' of '%s' is corrupt: %s", key,
                       url_of(b), zWhy);
    if ((rc = ids_needed(b, L)) != SQLITE_OK)
        return rc;
    rc = age_unwrap(&h, p, (const uint8_t(*)[32])L->sk,
                    (const uint8_t(*)[32])L->pk, L->nid, fk, &zWhy);
    if (rc == SQLITE_AUTH)
        return age_err(L, SQLITE_AUTH,
                       "litestream: cannot decrypt object '%s' of '%s': "
                       "none of the identities in %s is one of its %d "
                       "recipients.  Use the identity file of a recipient "
                       "the replica was written for",
                       key, url_of(b), age_keys_origin(L), h.nx);
    if (rc != SQLITE_OK)
        return age_err(L, SQLITE_CORRUPT,
                       "litestream: object '%s' of '%s' is corrupt: %s", key,
                       url_of(b), zWhy);
    rc = age_payload_key(fk, p + AGE_PREFIX - 16, pk) == 0 ? SQLITE_OK
                                                           : SQLITE_NOMEM;
    age_keys_wipe(fk, sizeof(fk));
    if (rc == SQLITE_OK)
        age_cache_put(L, key, pk);
    return rc;
}

/* The ranges of a plaintext read. */
typedef struct age_range {
    uint64_t off, end; /* plaintext [off, end); end UINT64_MAX: to the end */
    uint64_t c0, nreq; /* first chunk, chunks (UINT64_MAX: to the end) */
    uint64_t cs, clen; /* ciphertext [cs, cs + clen) (clen may be MAX) */
} age_range;

/* Fills r; -1 when the range starts beyond any possible object. */
static int
range_of(uint64_t off, uint64_t len, age_range *r)
{
    const uint64_t cmax = (UINT64_MAX - AGE_PREFIX) / AGE_CCHUNK - 2;
    r->off = off;
    r->end = (len == UINT64_MAX || off + len < off) ? UINT64_MAX : off + len;
    r->c0 = off / AGE_CHUNK;
    if (r->c0 > cmax)
        return -1;
    r->cs = AGE_PREFIX + r->c0 * AGE_CCHUNK;
    r->nreq = UINT64_MAX;
    r->clen = UINT64_MAX;
    if (r->end != UINT64_MAX && (r->end - 1) / AGE_CHUNK <= cmax) {
        r->nreq = (r->end - 1) / AGE_CHUNK - r->c0 + 1;
        r->clen = r->nreq * AGE_CCHUNK + 1; /* invariant 2 */
    }
    return 0;
}

/*
 * One attempt at reading range r of key; pk: a cached payload key, or NULL
 * to read the header.  SQLITE_OK and *out (sqlite3_malloc'd) / *nOut; -1
 * when the cached key failed (read the header and try again).
 */
static int
get_once(backend *b, age_layer *L, const char *key, const age_range *r,
         const uint8_t *cached, uint8_t **out, size_t *nOut)
{
    uint8_t pk[32], *buf = NULL, *q;
    size_t n = 0, m, np = 0, s, want;
    uint64_t bad = 0;
    int rc, e;

    if (cached)
        memcpy(pk, cached, 32);
    if (cached || r->c0 > 0) {
        if (!cached) {
            rc = L->inner->get(b, key, 0, AGE_PREFIX, &buf, &n);
            if (rc == SQLITE_OK)
                rc = open_header(b, L, key, buf, n, pk);
            sqlite3_free(buf);
            buf = NULL;
            if (rc != SQLITE_OK)
                return rc;
        }
        rc = L->inner->get(b, key, r->cs, r->clen, &buf, &n);
        q = buf;
        m = n;
    } else {
        uint64_t clen =
            r->clen == UINT64_MAX ? UINT64_MAX : AGE_PREFIX + r->clen;
        rc = L->inner->get(b, key, 0, clen, &buf, &n);
        if (rc == SQLITE_OK)
            rc = open_header(b, L, key, buf, n, pk);
        q = buf + AGE_PREFIX;
        m = n - AGE_PREFIX;
    }
    if (rc != SQLITE_OK)
        goto out;
    e = m == 0 && r->c0 == 0
            ? -2
            : age_stream_open(pk, r->c0, r->nreq, q, m, buf, &np, &bad);
    if (e == -1 && cached) {
        rc = -1;
        goto out;
    }
    if (e != 0) {
        rc = age_err(L, SQLITE_CORRUPT,
                     "litestream: object '%s' of '%s' is corrupt: chunk %llu "
                     "of its age payload %s (the object was modified or "
                     "truncated)",
                     key, url_of(b), (unsigned long long)bad,
                     e == -1 ? "does not authenticate" : "is missing");
        goto out;
    }
    s = (size_t)(r->off - r->c0 * AGE_CHUNK);
    want = s >= np ? 0 : np - s;
    if (r->end != UINT64_MAX && want > r->end - r->off)
        want = (size_t)(r->end - r->off);
    memmove(buf, buf + s, want);
    *out = buf;
    *nOut = want;
    buf = NULL;
out:
    age_keys_wipe(pk, sizeof(pk));
    sqlite3_free(buf);
    return rc;
}

/*
 * Only LTX objects are encrypted: what else a replica holds (the writer
 * lease lock.json, which Litestream v0.5 reads too) is metadata, stored as
 * it is, like the object names.
 */
static int
is_ltx(const char *key)
{
    size_t n = strlen(key);
    return n >= 4 && memcmp(key + n - 4, ".ltx", 4) == 0;
}

static int
age_get(backend *b, const char *key, uint64_t off, uint64_t len, uint8_t **out,
        size_t *nOut)
{
    age_layer *L = layer_of(b);
    uint8_t pk[32];
    age_range r;
    int rc, cached;

    L->err[0] = 0;
    if (!is_ltx(key))
        return L->inner->get(b, key, off, len, out, nOut);
    *out = NULL;
    *nOut = 0;
    if (len == 0 || range_of(off, len, &r) != 0) {
        /* Nothing to decrypt: only whether the object exists. */
        rc = L->inner->get(b, key, 0, 0, out, nOut);
        *nOut = 0;
        return rc;
    }
    cached = age_cache_get(L, key, pk);
    rc = get_once(b, L, key, &r, cached ? pk : NULL, out, nOut);
    if (rc == -1) /* the object was replaced since its key was cached */
        rc = get_once(b, L, key, &r, NULL, out, nOut);
    age_keys_wipe(pk, sizeof(pk));
    return rc;
}

/* --- Writes -------------------------------------------------------------- */

/* Checks that the handle can encrypt (recipients, identities loaded). */
static int
can_write(backend *b, age_layer *L, const char *key)
{
    if (L->nrcpt == 0)
        return age_err(L, SQLITE_AUTH,
                       "litestream: cannot write '%s' to '%s': an age "
                       "identity is set (%s) but the URL names no "
                       "age_recipient to encrypt to.  Add "
                       "?age_recipient=age1... (age-keygen -y FILE prints "
                       "it), or unset LITESTREAM_AGE_IDENTITY_FILE to "
                       "replicate unencrypted",
                       key, url_of(b), age_keys_origin(L));
    return ids_needed(b, L);
}

/*
 * Encrypts the n bytes that xRead(ctx, off, buf, k) yields into out
 * (age_cipher_size(n) bytes, or written to fd >= 0 piece by piece) and
 * sets pk to the payload key.
 */
typedef int (*age_reader)(void *ctx, uint64_t off, uint8_t *buf, size_t k);

static int
seal_all(age_layer *L, uint64_t n, age_reader xRead, void *ctx, uint8_t *out,
         int fd, uint8_t pk[32])
{
    uint8_t prefix[AGE_PREFIX], *piece = NULL;
    uint64_t i, nch = n == 0 ? 1 : (n + AGE_CHUNK - 1) / AGE_CHUNK;
    int rc = SQLITE_OK;

    if (age_prefix_build((const uint8_t(*)[32])L->rcpt, L->nrcpt, prefix, pk) !=
        0)
        return SQLITE_ERROR;
    if (out)
        memcpy(out, prefix, AGE_PREFIX);
    else if (fs_write_all(fd, prefix, AGE_PREFIX) != 0)
        return SQLITE_IOERR;
    if (!out && (piece = sqlite3_malloc(AGE_CCHUNK)) == NULL)
        return SQLITE_NOMEM;
    for (i = 0; i < nch && rc == SQLITE_OK; i++) {
        size_t k = (size_t)(i + 1 < nch ? AGE_CHUNK : n - i * AGE_CHUNK);
        uint8_t *dst = out ? out + AGE_PREFIX + i * AGE_CCHUNK : piece;
        if (xRead(ctx, i * AGE_CHUNK, dst, k) != 0)
            rc = SQLITE_IOERR;
        else if (age_chunk_seal(pk, i, i + 1 == nch, dst, k, dst) != 0)
            rc = SQLITE_ERROR;
        else if (!out && fs_write_all(fd, piece, k + AGE_TAG) != 0)
            rc = SQLITE_IOERR;
    }
    sqlite3_free(piece);
    return rc;
}

static int
read_mem(void *ctx, uint64_t off, uint8_t *buf, size_t k)
{
    memcpy(buf, (const uint8_t *)ctx + off, k);
    return 0;
}

static int
read_fd(void *ctx, uint64_t off, uint8_t *buf, size_t k)
{
    return fs_pread_all(*(int *)ctx, buf, k, off);
}

/* The message of a failed encryption; returns rc. */
static int
seal_failed(backend *b, age_layer *L, const char *key, int rc)
{
    return age_err(L, rc == SQLITE_ERROR ? SQLITE_IOERR : rc,
                   "litestream: cannot encrypt '%s' for '%s': %s", key,
                   url_of(b),
                   rc == SQLITE_NOMEM   ? "out of memory"
                   : rc == SQLITE_IOERR ? "cannot read or write the local copy"
                                        : "the crypto library failed");
}

static int
age_put(backend *b, const char *key, const void *data, size_t n,
        int64_t created_ms)
{
    age_layer *L = layer_of(b);
    uint64_t cn = age_cipher_size(n);
    uint8_t pk[32], *buf = NULL;
    int rc;

    L->err[0] = 0;
    if (!is_ltx(key))
        return L->inner->put(b, key, data, n, created_ms);
    if ((rc = can_write(b, L, key)) != SQLITE_OK)
        return rc;
    buf = sqlite3_malloc64(cn);
    rc = buf ? seal_all(L, n, read_mem, (void *)data, buf, -1, pk)
             : SQLITE_NOMEM;
    if (rc != SQLITE_OK)
        rc = seal_failed(b, L, key, rc);
    else if ((rc = L->inner->put(b, key, buf, (size_t)cn, created_ms)) ==
             SQLITE_OK)
        age_cache_put(L, key, pk);
    age_keys_wipe(pk, sizeof(pk));
    sqlite3_free(buf);
    return rc;
}

/*
 * put_file: the file zSrc (n bytes) encrypted into zSrc".age" for the
 * backend's put_file, or into memory for its put.  backend_put_file()
 * removes zSrc afterwards.
 */
static int
age_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
             int64_t created_ms)
{
    age_layer *L = layer_of(b);
    uint64_t cn = age_cipher_size(n);
    uint8_t pk[32], *buf = NULL;
    char *zTmp = NULL;
    int rc, src = -1, dst = -1;

    L->err[0] = 0;
    src = open(zSrc, O_RDONLY | O_CLOEXEC);
    if (!is_ltx(key)) {
        if (L->inner->put_file)
            rc = L->inner->put_file(b, key, zSrc, n, created_ms);
        else if (!(buf = sqlite3_malloc64(n ? n : 1)))
            rc = SQLITE_NOMEM;
        else
            rc = src < 0 || read_fd(&src, 0, buf, (size_t)n) != 0
                     ? SQLITE_IOERR
                     : L->inner->put(b, key, buf, (size_t)n, created_ms);
        if (src >= 0)
            close(src);
        sqlite3_free(buf);
        return rc;
    }
    if ((rc = can_write(b, L, key)) != SQLITE_OK) {
        if (src >= 0)
            close(src);
        return rc;
    }
    if (L->inner->put_file) {
        zTmp = sqlite3_mprintf("%s.age", zSrc);
        if (zTmp)
            dst = open(zTmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        rc = src < 0 || dst < 0 ? (zTmp ? SQLITE_IOERR : SQLITE_NOMEM)
                                : seal_all(L, n, read_fd, &src, NULL, dst, pk);
    } else {
        buf = sqlite3_malloc64(cn);
        rc = src < 0 ? SQLITE_IOERR
             : buf   ? seal_all(L, n, read_fd, &src, buf, -1, pk)
                     : SQLITE_NOMEM;
    }
    if (src >= 0)
        close(src);
    if (dst >= 0 && close(dst) != 0 && rc == SQLITE_OK)
        rc = SQLITE_IOERR;
    if (rc != SQLITE_OK)
        rc = seal_failed(b, L, key, rc);
    else if (zTmp)
        rc = L->inner->put_file(b, key, zTmp, cn, created_ms);
    else
        rc = L->inner->put(b, key, buf, (size_t)cn, created_ms);
    if (rc == SQLITE_OK)
        age_cache_put(L, key, pk);
    if (zTmp)
        unlink(zTmp);
    age_keys_wipe(pk, sizeof(pk));
    sqlite3_free(zTmp);
    sqlite3_free(buf);
    return rc;
}

/* --- Listings, messages, close ------------------------------------------ */

/* Plaintext sizes of listed objects (a size no object of ours can have is
 * left as it is: reading the object says what it is). */
static void
map_sizes(backend_obj *objs, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        uint64_t p;
        if (is_ltx(objs[i].key) && age_plain_size(objs[i].size, &p) == 0)
            objs[i].size = p;
    }
}

static int
age_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    age_layer *L = layer_of(b);
    int rc;
    L->err[0] = 0;
    rc = L->inner->list(b, prefix, objs, n);
    if (rc == SQLITE_OK)
        map_sizes(*objs, *n);
    return rc;
}

static int
age_list_tree(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    age_layer *L = layer_of(b);
    int rc;
    L->err[0] = 0;
    rc = L->inner->list_tree(b, prefix, objs, n);
    if (rc == SQLITE_OK)
        map_sizes(*objs, *n);
    return rc;
}

static const char *
age_errmsg(backend *b)
{
    age_layer *L = layer_of(b);
    return L->err[0] ? L->err : L->inner->errmsg(b);
}

static void
age_close(backend *b)
{
    age_layer *L = layer_of(b);
    const backend_vtab *inner = L->inner;
    b->vt = inner;
    age_keys_free(L);
    inner->close(b);
}

/* --- Installing the layer ------------------------------------------------ */

int
age_active(const backend *b)
{
    return b && b->vt->close == age_close;
}

int
age_wrap(backend *b, const ls_url *u, char **pzErr)
{
    age_layer *L = NULL;
    int rc = age_keys_config(u, b->url, &L, pzErr);

    if (rc != SQLITE_OK || L == NULL)
        return rc;
    L->inner = b->vt;
    L->vt = *b->vt;
    L->vt.put = age_put;
    L->vt.put_file = age_put_file;
    L->vt.get = age_get;
    L->vt.list = age_list;
    L->vt.list_tree = b->vt->list_tree ? age_list_tree : NULL;
    L->vt.errmsg = age_errmsg;
    L->vt.close = age_close;
    b->vt = &L->vt;
    return SQLITE_OK;
}

int
age_check_object(backend *b, const char *key, char **pzErr)
{
    int active = age_active(b), enc;
    const backend_vtab *vt = active ? layer_of(b)->inner : b->vt;
    uint8_t *buf = NULL;
    size_t n = 0;

    *pzErr = NULL;
    if (vt->get(b, key, 0, AGE_MAGIC_LEN, &buf, &n) != SQLITE_OK)
        return SQLITE_OK;
    enc = n == AGE_MAGIC_LEN && memcmp(buf, AGE_MAGIC, AGE_MAGIC_LEN) == 0;
    sqlite3_free(buf);
    if (active && !enc)
        *pzErr = sqlite3_mprintf(
            "litestream: the replica '%s' holds plaintext (object '%s' is "
            "not encrypted) but age options are set (%s): replicate into a "
            "new, empty location to encrypt, or remove the age options",
            url_of(b), key, age_keys_origin(layer_of(b)));
    else if (!active && enc)
        *pzErr = sqlite3_mprintf(
            "litestream: the replica '%s' is encrypted with age (object '%s' "
            "is an age file): add ?age_recipient=age1...&age_identity_file="
            "PATH to the URL (docs/urls.md, \"Encryption\")",
            url_of(b), key);
    else
        return SQLITE_OK;
    return *pzErr ? SQLITE_AUTH : SQLITE_NOMEM;
}
