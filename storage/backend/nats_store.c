/*
 * storage/backend/nats_store.c: the nats backend (backend.h): a NATS
 * JetStream object store, over the connection of nats.h.
 *
 *   nats://[USER:PASSWORD@]HOST[:PORT]/BUCKET[/PREFIX]
 *
 * Objects are named "<PREFIX>/ltx/<level>/<min>-<max>.ltx" (level_fmt
 * "ltx/%d/"), as Litestream's NATS client names them, each with its
 * creation time in the Litestream-Timestamp header of its metadata.
 *
 * Invariants:
 *   1. put() is atomic: the metadata is published only after every chunk
 *      was acknowledged, on a fresh nuid, so a reader sees the old object
 *      or the new one, never a part; the chunks of a failed put are purged
 *      (best effort), the chunks an overwrite replaced afterwards.
 *   2. Reads take the newest metadata, except reads of an object whose
 *      metadata and chunk index are cached (same name, NATS_IDX_SLOTS
 *      objects); a chunk that vanished (the object was deleted or replaced)
 *      drops the entry and the read starts over once, afresh.
 *   3. del() publishes metadata with "deleted": true, then purges the
 *      chunks, as the NATS clients delete; listings skip deleted objects.
 *   4. Transient failures (SQLITE_IOERR: server gone, timeouts) are retried
 *      `retries` times with capped exponential backoff and jitter; every
 *      other failure returns at once.
 *   5. Chunks no object refers to are purged: those of a failed put at
 *      once, or, when the connection was lost, at the handle's next
 *      connection (up to NATS_ORPHANS remembered); those of a put whose
 *      metadata publish failed (it may have been stored) once the name's
 *      metadata shows another nuid or none.
 *
 * Threads: one caller thread per handle (backend.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/backend/backend.h"
#include "storage/backend/nats.h"
#include "storage/backend/url.h"
#include "storage/base/rand.h"
#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"

#define NATS_IDX_SLOTS 16
#define NATS_ORPHANS   8 /* chunks to purge later (invariant 5) */

/*
 * Chunks that may belong to no object (invariant 5): nuid "" is a free
 * slot; name NULL means certainly no object's, else the put of name whose
 * metadata publish failed (stored or not: the name's metadata tells).
 */
typedef struct nats_orphan {
    char *name;
    char nuid[65];
} nats_orphan;

/* A cached object: its metadata and chunk index (invariant 2). */
typedef struct nats_idx {
    char *name; /* full name; NULL: free slot */
    nats_meta m;
    nats_chunk_idx ci;
} nats_idx;

typedef struct nats_backend {
    backend base;
    nats_conn *c;
    char *zPrefix; /* "" or "a/b/" */
    int retries;
    nats_idx idx[NATS_IDX_SLOTS];
    int next_idx;
    nats_orphan orphans[NATS_ORPHANS];
    int next_orphan;
    backend_counters counters;
} nats_backend;

static int
nb_err(nats_backend *nb, int rc, char *zMsg)
{
    return nats_conn_err(nb->c, rc, zMsg);
}

/* Sleeps before retry `attempt` (1..): 50 ms doubling to 2 s, jittered. */
static void
nb_backoff(int attempt)
{
    int64_t ms = 50LL << (attempt < 6 ? attempt - 1 : 5);
    struct timespec ts;

    if (ms > 2000)
        ms = 2000;
    ms = ms / 2 + (int64_t)ls_rand_upto((uint64_t)ms / 2 + 1);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Remembers chunks to purge once connected again (invariant 5). */
static void
orphan_add(nats_backend *nb, const char *zName, const char *zNuid)
{
    nats_orphan *o = &nb->orphans[nb->next_orphan];

    if (strlen(zNuid) >= sizeof(o->nuid))
        return; /* not a nuid nats_meta_decode() lets through */
    sqlite3_free(o->name);
    o->name = zName ? sqlite3_mprintf("%s", zName) : NULL;
    memcpy(o->nuid, zNuid, strlen(zNuid) + 1);
    nb->next_orphan = (nb->next_orphan + 1) % NATS_ORPHANS;
}

/* 1 if the chunks of o are no object's, 0 if they are, -1 if unknown. */
static int
orphan_is(nats_backend *nb, const nats_orphan *o)
{
    nats_meta m;
    int rc, live;

    if (o->name == NULL)
        return 1;
    rc = nats_conn_meta(nb->c, o->name, &m);
    live =
        rc == SQLITE_OK && !m.deleted && m.nuid && strcmp(m.nuid, o->nuid) == 0;
    nats_meta_clear(&m);
    if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND)
        return -1;
    return !live;
}

/* Purges the remembered chunks that are no object's; the unsure stay. */
static void
orphan_flush(nats_backend *nb)
{
    int i, is;

    for (i = 0; i < NATS_ORPHANS; i++) {
        nats_orphan *o = &nb->orphans[i];
        if (o->nuid[0] == 0 || (is = orphan_is(nb, o)) < 0)
            continue;
        if (is && nats_conn_purge(nb->c, o->nuid, 1) != SQLITE_OK)
            continue;
        sqlite3_free(o->name);
        o->name = NULL;
        o->nuid[0] = 0;
    }
}

/*
 * Runs op until it succeeds, fails for good or the retries run out.  Only
 * a put creates the bucket (create); for the others a missing bucket is
 * SQLITE_NOTFOUND.
 */
typedef int (*nb_op)(nats_backend *nb, void *arg);

static int
nb_run(nats_backend *nb, nb_op op, void *arg, int create)
{
    int rc, attempt = 0;

    for (;;) {
        rc = nats_conn_ready(nb->c, create);
        if (rc == SQLITE_OK) {
            orphan_flush(nb); /* (a failure there drops the connection) */
            rc = nats_conn_ready(nb->c, create);
        }
        if (rc == SQLITE_OK)
            rc = op(nb, arg);
        if (rc != SQLITE_IOERR || attempt >= nb->retries)
            return rc;
        nb_backoff(++attempt);
    }
}

/* The full name of key: "<prefix><key>". */
static char *
full_name(nats_backend *nb, const char *key)
{
    return sqlite3_mprintf("%s%s", nb->zPrefix, key);
}

/* Forgets the cached entry of zName (every entry when NULL). */
static void
idx_drop(nats_backend *nb, const char *zName)
{
    int i;

    for (i = 0; i < NATS_IDX_SLOTS; i++) {
        nats_idx *x = &nb->idx[i];
        if (x->name && (zName == NULL || strcmp(x->name, zName) == 0)) {
            sqlite3_free(x->name);
            nats_meta_clear(&x->m);
            memset(x, 0, sizeof(*x));
        }
    }
}

/* --- put -------------------------------------------------------------- */

typedef struct put_arg {
    const char *key;
    const uint8_t *data;
    size_t n;
    int64_t created_ms;
} put_arg;

/* Publishes the chunks of the object on a new nuid; purges on failure. */
static int
put_chunks(nats_backend *nb, const put_arg *a, const char *zNuid,
           const char *zWhat)
{
    size_t off;
    int rc = SQLITE_OK;

    for (off = 0; off < a->n && rc == SQLITE_OK; off += NATS_META_CHUNK_SIZE) {
        size_t len = a->n - off < NATS_META_CHUNK_SIZE ? a->n - off
                                                       : NATS_META_CHUNK_SIZE;
        rc = nats_conn_pub(nb->c, "C", zNuid, a->data + off, len, zWhat);
    }
    if (rc != SQLITE_OK && nats_conn_purge(nb->c, zNuid, 1) != SQLITE_OK)
        orphan_add(nb, NULL, zNuid);
    return rc;
}

static int
op_put(nats_backend *nb, void *arg)
{
    const put_arg *a = arg;
    char *zName = full_name(nb, a->key), *zWhat = NULL, *zEnc = NULL;
    char *zDoc = NULL, nuid[NATS_META_NUID_LEN + 1];
    nats_meta old, m;
    int rc;

    memset(&old, 0, sizeof(old));
    memset(&m, 0, sizeof(m));
    nats_nuid(nuid);
    zWhat = sqlite3_mprintf("PUT '%s' in bucket '%s'", zName,
                            nats_conn_bucket(nb->c));
    m.digest = nats_digest(a->data, a->n);
    if (!zName || !zWhat || !m.digest) {
        rc = nb_err(nb, SQLITE_NOMEM, NULL);
        goto out;
    }
    rc = nats_conn_meta(nb->c, zName, &old);
    if (rc == SQLITE_NOTFOUND)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = put_chunks(nb, a, nuid, zWhat);
    if (rc != SQLITE_OK)
        goto out;
    m.name = zName;
    m.nuid = nuid;
    m.size = a->n;
    m.chunks = (a->n + NATS_META_CHUNK_SIZE - 1) / NATS_META_CHUNK_SIZE;
    m.chunk_size = NATS_META_CHUNK_SIZE;
    m.created_ms = a->created_ms;
    zEnc = nats_b64url(zName, strlen(zName));
    if (!zEnc ||
        nats_meta_encode(&m, nats_conn_bucket(nb->c), &zDoc) != SQLITE_OK) {
        rc = nb_err(nb, SQLITE_NOMEM, NULL);
        goto out;
    }
    /* Chunks stay on a failure here: the metadata may be stored. */
    rc = nats_conn_pub(nb->c, "M", zEnc, zDoc, strlen(zDoc), zWhat);
    if (rc != SQLITE_OK) {
        orphan_add(nb, zName, nuid);
        goto out;
    }
    if (old.nuid && !old.deleted && strcmp(old.nuid, nuid) != 0 &&
        nats_conn_purge(nb->c, old.nuid, 1) != SQLITE_OK)
        orphan_add(nb, NULL, old.nuid);
    orphan_flush(nb); /* earlier attempts of this put, if any */
    idx_drop(nb, zName);
    nb->counters.n_put++;
    nb->counters.bytes_up += a->n;
out:
    nats_meta_clear(&old);
    sqlite3_free(m.digest);
    sqlite3_free(zDoc);
    sqlite3_free(zEnc);
    sqlite3_free(zWhat);
    sqlite3_free(zName);
    return rc;
}

static int
nats_put(backend *b, const char *key, const void *data, size_t n,
         int64_t created_ms)
{
    put_arg a = {key, data ? data : (const uint8_t *)"", n, created_ms};
    return nb_run((nats_backend *)b, op_put, &a, 1);
}

/* --- get -------------------------------------------------------------- */

typedef struct get_arg {
    const char *key;
    uint64_t off, len;
    uint8_t *out;
    size_t nOut;
    int cached; /* the last attempt read from a cached entry */
} get_arg;

/*
 * The cache slot of zName (*pCached 1), or a slot filled with its newest
 * metadata (*pCached 0).
 */
static int
get_slot(nats_backend *nb, const char *zName, nats_idx **px, int *pCached)
{
    nats_idx *x;
    int i, rc;

    *pCached = 0;
    for (i = 0; i < NATS_IDX_SLOTS; i++) {
        if (nb->idx[i].name && strcmp(nb->idx[i].name, zName) == 0) {
            *px = &nb->idx[i];
            *pCached = 1;
            return SQLITE_OK;
        }
    }
    x = &nb->idx[nb->next_idx];
    nb->next_idx = (nb->next_idx + 1) % NATS_IDX_SLOTS;
    if (x->name)
        idx_drop(nb, x->name);
    rc = nats_conn_meta(nb->c, zName, &x->m);
    if (rc == SQLITE_OK && (x->m.deleted || x->m.link))
        rc = x->m.deleted ? SQLITE_NOTFOUND : SQLITE_ERROR;
    if (rc == SQLITE_OK && (x->name = sqlite3_mprintf("%s", zName)) == NULL)
        rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        nats_meta_clear(&x->m);
        return rc;
    }
    *px = x;
    return SQLITE_OK;
}

/* One read of the range, from the cached or the newest metadata. */
static int
get_once(nats_backend *nb, get_arg *a, const char *zName)
{
    nats_idx *x = NULL;
    nats_conn_src src;
    char *zWhy = NULL;
    uint64_t end, off;
    int rc = get_slot(nb, zName, &x, &a->cached);

    if (rc != SQLITE_OK)
        return rc;
    off = a->off < x->m.size ? a->off : x->m.size;
    end = a->len >= x->m.size - off ? x->m.size : off + a->len;
    a->out = sqlite3_malloc64(end - off + 1);
    if (a->out == NULL)
        return nb_err(nb, SQLITE_NOMEM, NULL);
    a->nOut = 0;
    if (off == end)
        return SQLITE_OK;
    rc = nats_conn_src_init(nb->c, x->m.nuid ? x->m.nuid : "-", &src);
    if (rc == SQLITE_OK)
        rc = nats_read_range(&x->m, &x->ci, &src.src, off, end, a->out, &zWhy);
    nats_conn_src_clear(&src);
    if (rc == SQLITE_CORRUPT)
        nb_err(nb, rc,
               sqlite3_mprintf("litestream: NATS object '%s' in bucket '%s' "
                               "is corrupt: %s",
                               zName, nats_conn_bucket(nb->c),
                               zWhy ? zWhy : "bad metadata"));
    sqlite3_free(zWhy);
    if (rc != SQLITE_OK) {
        idx_drop(nb, zName);
        sqlite3_free(a->out);
        a->out = NULL;
        return rc;
    }
    a->nOut = (size_t)(end - off);
    return SQLITE_OK;
}

static int
op_get(nats_backend *nb, void *arg)
{
    get_arg *a = arg;
    char *zName = full_name(nb, a->key);
    int rc;

    if (zName == NULL)
        return nb_err(nb, SQLITE_NOMEM, NULL);
    rc = get_once(nb, a, zName);
    if (rc == SQLITE_NOTFOUND && a->cached) /* replaced? once more, afresh */
        rc = get_once(nb, a, zName);
    if (rc == SQLITE_NOTFOUND)
        nb_err(nb, rc,
               sqlite3_mprintf("litestream: NATS object '%s' not found in "
                               "bucket '%s'",
                               zName, nats_conn_bucket(nb->c)));
    else if (rc == SQLITE_ERROR)
        nb_err(nb, rc,
               sqlite3_mprintf("litestream: NATS object '%s' in bucket '%s' "
                               "is a link, which this backend does not "
                               "follow",
                               zName, nats_conn_bucket(nb->c)));
    if (rc == SQLITE_OK) {
        nb->counters.n_get++;
        nb->counters.bytes_down += a->nOut;
    }
    sqlite3_free(zName);
    return rc;
}

static int
nats_get(backend *b, const char *key, uint64_t offset, uint64_t len,
         uint8_t **out, size_t *nOut)
{
    get_arg a = {key, offset, len, NULL, 0, 0};
    int rc = nb_run((nats_backend *)b, op_get, &a, 0);

    *out = a.out;
    *nOut = a.nOut;
    return rc;
}

/* --- list ------------------------------------------------------------- */

typedef struct list_arg {
    const char *prefix;
    int deep;
    backend_obj *objs;
    int n, cap;
} list_arg;

static int
obj_cmp(const void *a, const void *b)
{
    return strcmp(((const backend_obj *)a)->key, ((const backend_obj *)b)->key);
}

/* Adds the object named zName if it is live and under the listed prefix. */
static int
list_one(nats_backend *nb, list_arg *a, const char *zName, size_t nPre)
{
    const char *zRest = zName + nPre;
    nats_meta m;
    int rc;

    if (zRest[0] == 0 || (!a->deep && strchr(zRest, '/')))
        return SQLITE_OK;
    rc = nats_conn_meta(nb->c, zName, &m);
    if (rc == SQLITE_NOTFOUND || (rc == SQLITE_OK && (m.deleted || m.link))) {
        nats_meta_clear(&m);
        return SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        return rc;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 64;
        backend_obj *p = sqlite3_realloc64(a->objs, sizeof(*p) * (size_t)cap);
        if (p == NULL) {
            nats_meta_clear(&m);
            return nb_err(nb, SQLITE_NOMEM, NULL);
        }
        a->objs = p;
        a->cap = cap;
    }
    a->objs[a->n].key = sqlite3_mprintf("%s", zRest);
    a->objs[a->n].size = m.size;
    a->objs[a->n].created_ms = m.created_ms;
    nats_meta_clear(&m);
    if (a->objs[a->n].key == NULL)
        return nb_err(nb, SQLITE_NOMEM, NULL);
    a->n++;
    return SQLITE_OK;
}

static int
op_list(nats_backend *nb, void *arg)
{
    list_arg *a = arg;
    char *zPre = sqlite3_mprintf("%s%s", nb->zPrefix, a->prefix);
    char **azName = NULL;
    int rc, i, nName = 0;

    backend_objs_free(a->objs, a->n);
    a->objs = NULL;
    a->n = a->cap = 0;
    if (zPre == NULL)
        return nb_err(nb, SQLITE_NOMEM, NULL);
    rc = nats_conn_names(nb->c, &azName, &nName);
    for (i = 0; i < nName && rc == SQLITE_OK; i++)
        if (strncmp(azName[i], zPre, strlen(zPre)) == 0)
            rc = list_one(nb, a, azName[i], strlen(zPre));
    if (rc == SQLITE_OK && a->n > 1)
        qsort(a->objs, (size_t)a->n, sizeof(*a->objs), obj_cmp);
    if (rc == SQLITE_OK)
        nb->counters.n_list++;
    nats_conn_names_free(azName, nName);
    sqlite3_free(zPre);
    return rc;
}

static int
nats_list_any(backend *b, const char *prefix, backend_obj **objs, int *n,
              int deep)
{
    list_arg a = {prefix, deep, NULL, 0, 0};
    int rc = nb_run((nats_backend *)b, op_list, &a, 0);

    if (rc == SQLITE_NOTFOUND) { /* no bucket: nothing in it */
        ((nats_backend *)b)->counters.n_list++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        backend_objs_free(a.objs, a.n);
        a.objs = NULL;
        a.n = 0;
    }
    *objs = a.objs;
    *n = a.n;
    return rc;
}

static int
nats_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return nats_list_any(b, prefix, objs, n, 0);
}

static int
nats_list_tree(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return nats_list_any(b, prefix, objs, n, 1);
}

/* --- delete ------------------------------------------------------------ */

typedef struct del_arg {
    const char *const *keys;
    int n, done;
} del_arg;

/* Deletes one object (invariant 3); a missing one is not an error. */
static int
del_one(nats_backend *nb, const char *zName)
{
    char *zEnc = NULL, *zDoc = NULL;
    nats_meta m;
    int rc = nats_conn_meta(nb->c, zName, &m);

    if (rc == SQLITE_NOTFOUND)
        return SQLITE_OK;
    if (rc != SQLITE_OK)
        return rc;
    if (m.deleted) { /* a delete whose purge failed: purge again */
        if (m.nuid && nats_conn_purge(nb->c, m.nuid, 1) != SQLITE_OK)
            orphan_add(nb, NULL, m.nuid);
        nats_meta_clear(&m);
        return SQLITE_OK;
    }
    m.deleted = 1;
    zEnc = nats_b64url(zName, strlen(zName));
    if (!zEnc ||
        nats_meta_encode(&m, nats_conn_bucket(nb->c), &zDoc) != SQLITE_OK)
        rc = nb_err(nb, SQLITE_NOMEM, NULL);
    if (rc == SQLITE_OK)
        rc = nats_conn_pub(nb->c, "M", zEnc, zDoc, strlen(zDoc), "DELETE");
    if (rc == SQLITE_OK && m.nuid)
        rc = nats_conn_purge(nb->c, m.nuid, 0);
    idx_drop(nb, zName);
    sqlite3_free(zDoc);
    sqlite3_free(zEnc);
    nats_meta_clear(&m);
    return rc;
}

static int
op_del(nats_backend *nb, void *arg)
{
    del_arg *a = arg;
    int rc = SQLITE_OK;

    for (; a->done < a->n && rc == SQLITE_OK; a->done++) {
        char *zName = full_name(nb, a->keys[a->done]);
        rc = zName ? del_one(nb, zName) : nb_err(nb, SQLITE_NOMEM, NULL);
        sqlite3_free(zName);
        if (rc != SQLITE_OK)
            break;
        nb->counters.n_delete++;
    }
    return rc;
}

static int
nats_del(backend *b, const char *const *keys, int n)
{
    del_arg a = {keys, n, 0};
    int rc = nb_run((nats_backend *)b, op_del, &a, 0);

    return rc == SQLITE_NOTFOUND ? SQLITE_OK : rc; /* no bucket */
}

/* --- handle ------------------------------------------------------------ */

static const char *
nats_errmsg(backend *b)
{
    return nats_conn_errmsg(((nats_backend *)b)->c);
}

static const backend_counters *
nats_counters(backend *b)
{
    return &((nats_backend *)b)->counters;
}

static const char *
nats_credential(backend *b)
{
    return nats_conn_credential(((nats_backend *)b)->c);
}

static void
nats_close(backend *b)
{
    nats_backend *nb = (nats_backend *)b;

    if (nb == NULL)
        return;
    idx_drop(nb, NULL);
    for (int i = 0; i < NATS_ORPHANS; i++)
        sqlite3_free(nb->orphans[i].name);
    nats_conn_free(nb->c);
    sqlite3_free(nb->zPrefix);
    sqlite3_free(nb->base.url);
    sqlite3_free(nb);
}

/* Reads the URL's parameters into cfg and nb; a message on failure. */
static int
open_params(const ls_url *u, nats_conn_cfg *cfg, nats_backend *nb, char **pzErr)
{
    const char *zTimeout = url_param(u, "timeout");
    const char *zRetries = url_param(u, "retries");
    char *zWhy = NULL;

    cfg->timeout_ms = 10000;
    nb->retries = 4;
    cfg->creds = url_param(u, "creds");
    if (zTimeout && (timefmt_parse_duration(zTimeout, &cfg->timeout_ms,
                                            &zWhy) != SQLITE_OK ||
                     cfg->timeout_ms < 100 || cfg->timeout_ms > 3600000)) {
        *pzErr = sqlite3_mprintf("litestream: bad timeout '%s' in replica "
                                 "URL '%s' (expected a duration from 100ms "
                                 "to 1h, e.g. 10s)",
                                 zTimeout, u->redacted);
        sqlite3_free(zWhy);
        return SQLITE_ERROR;
    }
    if (zRetries) {
        char *zEnd = NULL;
        long v = strtol(zRetries, &zEnd, 10);
        if (zEnd == zRetries || *zEnd || v < 0 || v > 100) {
            *pzErr = sqlite3_mprintf("litestream: bad retries '%s' in replica "
                                     "URL '%s' (expected 0 to 100)",
                                     zRetries, u->redacted);
            return SQLITE_ERROR;
        }
        nb->retries = (int)v;
    }
    return SQLITE_OK;
}

static int
nats_open(const ls_url *u, backend **out, char **pzErr)
{
    nats_backend *nb = sqlite3_malloc64(sizeof(*nb));
    const char *zPath = u->path ? u->path : "";
    const char *zSlash = strchr(zPath, '/');
    char *zBucket = NULL;
    nats_conn_cfg cfg;
    int rc;

    *out = NULL;
    if (nb == NULL)
        return SQLITE_NOMEM;
    memset(nb, 0, sizeof(*nb));
    memset(&cfg, 0, sizeof(cfg));
    nb->base.vt = &backend_nats_vtab;
    zBucket = zSlash ? sqlite3_mprintf("%.*s", (int)(zSlash - zPath), zPath)
                     : sqlite3_mprintf("%s", zPath);
    nb->zPrefix =
        zSlash ? sqlite3_mprintf("%s/", zSlash + 1) : sqlite3_mprintf("");
    if (!zBucket || !nb->zPrefix) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (!nats_bucket_valid(zBucket)) {
        *pzErr = sqlite3_mprintf(
            zBucket[0] ? "litestream: bad NATS bucket name '%s' in replica "
                         "URL '%s' (letters, digits, '-' and '_' only)"
                       : "litestream: NATS replica URL%s '%s' names no "
                         "bucket (expected nats://host:4222/bucket[/path])",
            zBucket, u->redacted);
        rc = SQLITE_ERROR;
        goto out;
    }
    rc = open_params(u, &cfg, nb, pzErr);
    if (rc != SQLITE_OK)
        goto out;
    cfg.host = u->host;
    cfg.port = u->port ? u->port : 4222;
    cfg.user = u->user;
    cfg.password = u->password;
    cfg.bucket = zBucket;
    rc = nats_conn_new(&cfg, &nb->c);
out:
    sqlite3_free(zBucket);
    if (rc != SQLITE_OK) {
        nats_close(&nb->base);
        return rc;
    }
    *out = &nb->base;
    return SQLITE_OK;
}

const backend_vtab backend_nats_vtab = {
    .name = "nats",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC | BACKEND_CAP_EXACT_TIME,
    .level_fmt = "ltx/%d/",
    .open = nats_open,
    .close = nats_close,
    .put = nats_put,
    .get = nats_get,
    .list = nats_list,
    .list_tree = nats_list_tree,
    .del = nats_del,
    .errmsg = nats_errmsg,
    .counters = nats_counters,
    .credential = nats_credential,
};
