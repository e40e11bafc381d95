/*
 * storage/backend/age_keys.c: the age layer's keys (age_keys.h): the URL's
 * age parameters, the identity file, the process-wide payload-key cache.
 *
 * Invariants:
 *   1. A URL that encrypts (age_recipient) also names an identity, so that
 *      the writer can read back what it wrote (compaction, recovery), and
 *      at least one identity belongs to one of its recipients.
 *   2. A cached key serves only handles of the same replica URL with the
 *      same identities: a handle never decrypts with a key it could not
 *      have unwrapped itself.  The cache is direct-mapped by a 64-bit hash;
 *      a collision costs a failed tag and a fresh header read, never
 *      wrong bytes.
 *   3. Identities and keys are wiped when the layer is freed.
 *
 * Threads: see age_keys.h.
 */
#include "storage/backend/age_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/sigv4.h"
#include "storage/backend/url.h"
#include "storage/base/fsutil.h"
#include "storage/base/sqlite.h"

#define ENV_IDENTITY "LITESTREAM_AGE_IDENTITY_FILE"
#define CACHE_SLOTS  1024
#define MAX_ID_FILE  (1 << 20)

/* FNV-1a over n bytes, continuing from h. */
static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *q = p;
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ q[i]) * 0x100000001b3ULL;
    return h;
}

/* 1 if parameter name z is `want` ignoring case, '_' and '-'. */
static int
param_is(const char *z, const char *want)
{
    for (;;) {
        while (*z == '_' || *z == '-')
            z++;
        while (*want == '_')
            want++;
        if (*z == 0 || *want == 0)
            return *z == *want;
        if ((*z | 0x20) != *want)
            return 0;
        z++;
        want++;
    }
}

/* One age_recipient value into L->rcpt. */
static int
add_recipient(age_layer *L, const char *z, char **pzErr)
{
    const char *zWhy = NULL;

    if (L->nrcpt >= AGE_MAX_RECIPIENTS) {
        *pzErr = sqlite3_mprintf("litestream: at most %d age_recipient "
                                 "parameters are supported",
                                 AGE_MAX_RECIPIENTS);
        return SQLITE_ERROR;
    }
    if (age_bech32_decode(z, strlen(z), "age", L->rcpt[L->nrcpt], &zWhy) != 0) {
        *pzErr = sqlite3_mprintf("litestream: age_recipient '%s' is not an "
                                 "age X25519 recipient (age1..., as "
                                 "age-keygen prints it): %s",
                                 z, zWhy);
        return SQLITE_ERROR;
    }
    L->nrcpt++;
    return SQLITE_OK;
}

/* The URL's age parameters into L. */
static int
read_params(const ls_url *u, age_layer *L, char **pzErr)
{
    int i, rc;
    for (i = 0; i < u->nparam; i++) {
        const char *k = u->params[i].key, *v = u->params[i].value;
        if (param_is(k, "age_recipient")) {
            if ((rc = add_recipient(L, v, pzErr)) != SQLITE_OK)
                return rc;
        } else if (param_is(k, "age_identity_file")) {
            if (L->zIdFile || v[0] == 0) {
                *pzErr = sqlite3_mprintf(
                    "litestream: give age_identity_file once, with the "
                    "path of an identity file (as age-keygen writes it)");
                return SQLITE_ERROR;
            }
            L->zIdFile = sqlite3_mprintf("%s", v);
            if (L->zIdFile == NULL)
                return SQLITE_NOMEM;
            L->zIdFrom = "age_identity_file";
        } else if ((k[0] | 0x20) == 'a' && (k[1] | 0x20) == 'g' &&
                   (k[2] | 0x20) == 'e' && k[2] != 0) {
            *pzErr = sqlite3_mprintf("litestream: unknown URL parameter "
                                     "'%s' (the age parameters are "
                                     "age_recipient and age_identity_file)",
                                     k);
            return SQLITE_ERROR;
        }
    }
    return SQLITE_OK;
}

int
age_keys_config(const ls_url *u, const char *zUrl, age_layer **out,
                char **pzErr)
{
    const char *zEnv = getenv(ENV_IDENTITY);
    age_layer *L = sqlite3_malloc(sizeof(*L));
    int rc;

    *out = NULL;
    if (L == NULL)
        return SQLITE_NOMEM;
    memset(L, 0, sizeof(*L));
    rc = read_params(u, L, pzErr);
    if (rc == SQLITE_OK && L->zIdFile == NULL && zEnv && zEnv[0]) {
        L->zIdFile = sqlite3_mprintf("%s", zEnv);
        L->zIdFrom = ENV_IDENTITY;
        rc = L->zIdFile ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK && L->nrcpt > 0 && L->zIdFile == NULL) {
        *pzErr = sqlite3_mprintf(
            "litestream: age_recipient needs an identity too, to read the "
            "replica back (compaction, recovery, restore): add "
            "age_identity_file=PATH to the URL or set " ENV_IDENTITY
            " (the file age-keygen wrote)");
        rc = SQLITE_ERROR;
    }
    if (rc == SQLITE_OK && L->zIdFile) {
        L->zOrigin = sqlite3_mprintf("%s '%s'", L->zIdFrom, L->zIdFile);
        L->url_hash = fnv(0xcbf29ce484222325ULL, zUrl ? zUrl : "",
                          zUrl ? strlen(zUrl) + 1 : 1);
        rc = L->zOrigin ? SQLITE_OK : SQLITE_NOMEM;
        if (rc == SQLITE_OK)
            *out = L;
    }
    if (*out == NULL)
        age_keys_free(L);
    return rc;
}

const char *
age_keys_origin(const age_layer *L)
{
    return L->zOrigin ? L->zOrigin : "age_recipient";
}

/* The identity file's text (sqlite3_malloc'd, *pn bytes) or an errno. */
static int
read_file(const char *zPath, char **pz, size_t *pn)
{
    struct stat st;
    int fd = open(zPath, O_RDONLY | O_CLOEXEC), e = 0;

    *pz = NULL;
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0)
        e = errno;
    else if (!S_ISREG(st.st_mode) || st.st_size > MAX_ID_FILE)
        e = S_ISREG(st.st_mode) ? EFBIG : EISDIR;
    else if ((*pz = sqlite3_malloc64((uint64_t)st.st_size + 1)) == NULL)
        e = ENOMEM;
    else
        e = fs_pread_all(fd, *pz, (size_t)st.st_size, 0);
    close(fd);
    if (e != 0) {
        sqlite3_free(*pz);
        *pz = NULL;
        return e;
    }
    *pn = (size_t)st.st_size;
    return 0;
}

/* 1 if one of the identities belongs to one of the recipients. */
static int
ids_match(const age_layer *L, int nid)
{
    int i, j;
    for (i = 0; i < nid; i++)
        for (j = 0; j < L->nrcpt; j++)
            if (memcmp(L->pk[i], L->rcpt[j], 32) == 0)
                return 1;
    return 0;
}

/* Public keys and the cache namespace of the nid parsed identities. */
static int
ids_finish(age_layer *L, int nid, char **pzWhy)
{
    int i;
    for (i = 0; i < nid; i++)
        if (sigv4_x25519(L->sk[i], NULL, L->pk[i]) != 0) {
            *pzWhy = sqlite3_mprintf("the crypto library cannot derive the "
                                     "public key of an identity in %s",
                                     L->zOrigin);
            return SQLITE_AUTH;
        }
    if (L->nrcpt > 0 && !ids_match(L, nid)) {
        *pzWhy = sqlite3_mprintf(
            "none of the identities in %s belongs to an age_recipient of "
            "the URL, so this process could not read back what it writes "
            "(compaction, recovery): use the identity file of one of the "
            "recipients (age-keygen -y FILE prints its recipient)",
            L->zOrigin);
        return SQLITE_AUTH;
    }
    L->ns = fnv(L->url_hash, L->pk, 32 * (size_t)nid);
    L->nid = nid;
    return SQLITE_OK;
}

int
age_keys_load(age_layer *L, char **pzWhy)
{
    const char *zWhy = NULL;
    char *z = NULL;
    size_t n = 0;
    int e, rc, nid = 0, line = 0;

    *pzWhy = NULL;
    if (L->nid > 0)
        return SQLITE_OK;
    e = read_file(L->zIdFile, &z, &n);
    if (e != 0) {
        *pzWhy = sqlite3_mprintf("cannot read the age identity file (%s): "
                                 "%s; give the path of the file age-keygen "
                                 "wrote",
                                 L->zOrigin, strerror(e));
        return e == ENOMEM ? SQLITE_NOMEM : SQLITE_AUTH;
    }
    rc = age_identities_parse(z, n, L->sk, AGE_MAX_IDENTITIES, &nid, &line,
                              &zWhy);
    age_keys_wipe(z, n);
    sqlite3_free(z);
    if (rc == SQLITE_NOTFOUND)
        *pzWhy = sqlite3_mprintf("the age identity file (%s) holds no "
                                 "identity: expected AGE-SECRET-KEY-1... "
                                 "lines, as age-keygen writes",
                                 L->zOrigin);
    else if (rc != SQLITE_OK)
        *pzWhy = sqlite3_mprintf("line %d of the age identity file (%s) is "
                                 "not an age X25519 identity "
                                 "(AGE-SECRET-KEY-1..., as age-keygen "
                                 "writes): %s",
                                 line, L->zOrigin, zWhy);
    else
        return ids_finish(L, nid, pzWhy);
    age_keys_wipe(L->sk, sizeof(L->sk));
    return *pzWhy ? SQLITE_AUTH : SQLITE_NOMEM;
}

void
age_keys_wipe(void *p, size_t n)
{
    sigv4_cleanse(p, n);
}

void
age_keys_free(age_layer *L)
{
    if (L == NULL)
        return;
    age_keys_wipe(L->sk, sizeof(L->sk));
    sqlite3_free(L->zIdFile);
    sqlite3_free(L->zOrigin);
    sqlite3_free(L);
}

/* --- The payload-key cache ---------------------------------------------- */

static struct {
    uint64_t tag; /* 0: empty */
    uint8_t key[32];
} cache[CACHE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void
cache_prepare(void)
{
    pthread_mutex_lock(&cache_mu);
}

static void
cache_parent(void)
{
    pthread_mutex_unlock(&cache_mu);
}

static void
cache_child(void)
{
    pthread_mutex_init(&cache_mu, NULL);
}

static void
cache_init(void)
{
    pthread_atfork(cache_prepare, cache_parent, cache_child);
}

/* The tag of object key for the layer's replica and identities. */
static uint64_t
cache_tag(const age_layer *L, const char *key)
{
    return fnv(L->ns, key, strlen(key)) | 1;
}

int
age_cache_get(const age_layer *L, const char *key, uint8_t pk[32])
{
    uint64_t tag;
    int hit;

    if (L->nid == 0)
        return 0;
    tag = cache_tag(L, key);
    pthread_once(&cache_once, cache_init);
    pthread_mutex_lock(&cache_mu);
    hit = cache[tag % CACHE_SLOTS].tag == tag;
    if (hit)
        memcpy(pk, cache[tag % CACHE_SLOTS].key, 32);
    pthread_mutex_unlock(&cache_mu);
    return hit;
}

void
age_cache_put(const age_layer *L, const char *key, const uint8_t pk[32])
{
    uint64_t tag;

    if (L->nid == 0)
        return;
    tag = cache_tag(L, key);
    pthread_once(&cache_once, cache_init);
    pthread_mutex_lock(&cache_mu);
    cache[tag % CACHE_SLOTS].tag = tag;
    memcpy(cache[tag % CACHE_SLOTS].key, pk, 32);
    pthread_mutex_unlock(&cache_mu);
}
