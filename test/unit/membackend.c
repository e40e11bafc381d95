/*
 * test/unit/membackend.c: the in-memory backend (membackend.h).  Objects
 * are kept sorted by key; a store-wide mutex serialises every call.
 */
#include "test/unit/membackend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storage/base/sqlite.h"

typedef struct mem_obj {
    char *key;
    uint8_t *p;
    size_t n;
    int64_t created_ms;
} mem_obj;

struct mem_store {
    pthread_mutex_t mu;
    mem_obj *a;
    int n, cap;
    int fail_put; /* countdown */
    int lists;    /* list() calls of every handle */
};

typedef struct membackend {
    backend base;
    mem_store *s;
    backend_counters counters;
    char err[128];
} membackend;

mem_store *
mem_store_new(void)
{
    mem_store *s = calloc(1, sizeof(*s));
    if (s)
        pthread_mutex_init(&s->mu, NULL);
    return s;
}

void
mem_store_free(mem_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        free(s->a[i].key);
        free(s->a[i].p);
    }
    free(s->a);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Index of key, or -(insertion point) - 1. */
static int
find(mem_store *s, const char *key)
{
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(s->a[mid].key, key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

/* Stores under s->mu.  0, or -1 out of memory. */
static int
store(mem_store *s, const char *key, const void *p, size_t n, int64_t created)
{
    uint8_t *copy = malloc(n ? n : 1);
    int i = find(s, key);
    if (!copy)
        return -1;
    memcpy(copy, p, n);
    if (i < 0) {
        if (s->n == s->cap) {
            int nc = s->cap ? s->cap * 2 : 16;
            mem_obj *a = realloc(s->a, sizeof(*a) * (size_t)nc);
            if (!a) {
                free(copy);
                return -1;
            }
            s->a = a;
            s->cap = nc;
        }
        i = -i - 1;
        memmove(&s->a[i + 1], &s->a[i], sizeof(*s->a) * (size_t)(s->n - i));
        s->a[i].key = strdup(key);
        s->a[i].p = NULL;
        s->n++;
    }
    free(s->a[i].p);
    s->a[i].p = copy;
    s->a[i].n = n;
    s->a[i].created_ms = created;
    return 0;
}

void
mem_store_put(mem_store *s, const char *key, const void *p, size_t n,
              int64_t created_ms)
{
    pthread_mutex_lock(&s->mu);
    store(s, key, p, n, created_ms);
    pthread_mutex_unlock(&s->mu);
}

int
mem_store_count(mem_store *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int
mem_store_lists(mem_store *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->lists;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const char *
mem_store_key(mem_store *s, int i)
{
    pthread_mutex_lock(&s->mu);
    const char *z = i < s->n ? s->a[i].key : NULL;
    pthread_mutex_unlock(&s->mu);
    return z;
}

uint8_t *
mem_store_get(mem_store *s, const char *key, size_t *n)
{
    uint8_t *p = NULL;
    pthread_mutex_lock(&s->mu);
    int i = find(s, key);
    if (i >= 0 && (p = malloc(s->a[i].n ? s->a[i].n : 1)) != NULL) {
        memcpy(p, s->a[i].p, s->a[i].n);
        *n = s->a[i].n;
    }
    pthread_mutex_unlock(&s->mu);
    return p;
}

void
mem_store_fail_put(mem_store *s, int n)
{
    pthread_mutex_lock(&s->mu);
    s->fail_put = n;
    pthread_mutex_unlock(&s->mu);
}

static int
mem_put(backend *b, const char *key, const void *data, size_t n,
        int64_t created_ms)
{
    membackend *m = (membackend *)b;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&m->s->mu);
    if (m->s->fail_put > 0 && --m->s->fail_put == 0) {
        strcpy(m->err, "litestream: mem: injected put failure");
        rc = SQLITE_IOERR;
    } else if (store(m->s, key, data, n, created_ms) != 0) {
        rc = SQLITE_NOMEM;
    } else {
        m->counters.n_put++;
        m->counters.bytes_up += n;
    }
    pthread_mutex_unlock(&m->s->mu);
    return rc;
}

static int
mem_get(backend *b, const char *key, uint64_t offset, uint64_t len,
        uint8_t **out, size_t *nOut)
{
    membackend *m = (membackend *)b;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&m->s->mu);
    int i = find(m->s, key);
    if (i < 0) {
        rc = SQLITE_NOTFOUND;
        strcpy(m->err, "litestream: mem: no such object");
        goto out;
    }
    const mem_obj *o = &m->s->a[i];
    uint64_t off = offset < o->n ? offset : o->n;
    uint64_t n = o->n - off < len ? o->n - off : len;
    *out = sqlite3_malloc64(n ? n : 1);
    if (!*out) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memcpy(*out, o->p + off, (size_t)n);
    *nOut = (size_t)n;
    m->counters.n_get++;
    m->counters.bytes_down += n;
out:
    pthread_mutex_unlock(&m->s->mu);
    return rc;
}

static int
mem_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    membackend *m = (membackend *)b;
    size_t np = strlen(prefix);
    int rc = SQLITE_OK;
    *objs = NULL;
    *n = 0;
    pthread_mutex_lock(&m->s->mu);
    m->counters.n_list++;
    m->s->lists++;
    backend_obj *a = sqlite3_malloc64(sizeof(*a) * ((size_t)m->s->n + 1));
    if (!a) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    for (int i = 0; i < m->s->n; i++) {
        const mem_obj *o = &m->s->a[i];
        if (strncmp(o->key, prefix, np) != 0 || strchr(o->key + np, '/'))
            continue;
        a[*n].key = sqlite3_mprintf("%s", o->key + np);
        a[*n].size = o->n;
        a[*n].created_ms = o->created_ms;
        (*n)++;
    }
    *objs = a;
out:
    pthread_mutex_unlock(&m->s->mu);
    return rc;
}

static int
mem_del(backend *b, const char *const *keys, int n)
{
    membackend *m = (membackend *)b;
    pthread_mutex_lock(&m->s->mu);
    for (int k = 0; k < n; k++) {
        int i = find(m->s, keys[k]);
        if (i < 0)
            continue;
        free(m->s->a[i].key);
        free(m->s->a[i].p);
        memmove(&m->s->a[i], &m->s->a[i + 1],
                sizeof(*m->s->a) * (size_t)(m->s->n - i - 1));
        m->s->n--;
        m->counters.n_delete++;
    }
    pthread_mutex_unlock(&m->s->mu);
    return SQLITE_OK;
}

static const char *
mem_errmsg(backend *b)
{
    return ((membackend *)b)->err;
}

static const backend_counters *
mem_counters(backend *b)
{
    return &((membackend *)b)->counters;
}

static void
mem_close(backend *b)
{
    if (b) {
        sqlite3_free(b->url);
        free(b);
    }
}

static const backend_vtab mem_vtab = {
    .name = "mem",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC | BACKEND_CAP_EXACT_TIME,
    .level_fmt = "ltx/%d/",
    .close = mem_close,
    .put = mem_put,
    .get = mem_get,
    .list = mem_list,
    .del = mem_del,
    .errmsg = mem_errmsg,
    .counters = mem_counters,
};

backend *
membackend_open(mem_store *s)
{
    membackend *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->base.vt = &mem_vtab;
    m->base.url = sqlite3_mprintf("mem://test");
    m->s = s;
    strcpy(m->err, "litestream: mem: no error");
    return &m->base;
}
