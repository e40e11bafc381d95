/*
 * storage/reader/load.c: fetching the header and page index of the LTX
 * objects a read replica's page map is built from (reader_int.h).
 *
 * Invariants:
 *   1. Every object's header must agree with its name (TXIDs) and its
 *      index must parse (ltx_index_parse checks that every frame lies
 *      inside the file), else SQLITE_CORRUPT naming the object.
 *   2. A GET that returns fewer bytes than asked means the object was
 *      replaced meanwhile: SQLITE_NOTFOUND, like a missing object, so the
 *      caller re-plans.
 *   3. reader_load_all() fetches up to READER_LOAD_THREADS objects at
 *      once, each extra thread on its own backend handle (handles are
 *      single-threaded, backend.h); the results are in plan order and the
 *      reported error is that of the first object that failed.
 *
 * Threads: the reader's owner thread, plus the loader threads that
 * reader_load_all() starts and joins.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "storage/reader/reader_int.h"
#include "storage/base/sqlite.h"
#include "storage/backend/url.h"

/* "litestream: corrupt LTX object ..." for object key. */
static int
load_corrupt(backend *b, const char *key, const char *zWhy, char **pzErr)
{
    *pzErr = sqlite3_mprintf("litestream: corrupt LTX object '%s' in '%s': "
                             "%s",
                             key, backend_url(b), zWhy);
    return SQLITE_CORRUPT;
}

/* GET [off, off+len) of key; a short answer means the object changed. */
static int
load_get(backend *b, const char *key, uint64_t off, uint64_t len, uint8_t **out,
         size_t *n, char **pzErr)
{
    const char *zWhy;
    int rc = backend_get(b, key, off, len, out, n);

    if (rc == SQLITE_OK && *n == len)
        return SQLITE_OK;
    if (rc == SQLITE_OK) {
        sqlite3_free(*out);
        *out = NULL;
        *pzErr = sqlite3_mprintf("litestream: LTX object '%s' changed while "
                                 "being read",
                                 key);
        return SQLITE_NOTFOUND;
    }
    zWhy = backend_why(b);
    *pzErr = sqlite3_mprintf("litestream: cannot read '%s' from '%s': %s", key,
                             backend_url(b), zWhy);
    return rc;
}

/* Parses the index from the tail [size - nTail, size), refetching it once
 * at the size the index needs. */
static int
load_index(backend *b, const char *key, const ltx_info *f, uint8_t **tail,
           size_t nTail, pm_loaded *o, char **pzErr)
{
    char zLtx[256];
    ltx_trailer trailer = {0, 0};
    uint64_t need = 0;
    int rc;

    rc = ltx_index_parse(*tail, nTail, f->size, &o->index, &o->n, &trailer,
                         &need, zLtx, sizeof(zLtx));
    if (rc == SQLITE_TOOBIG && need > nTail && need <= f->size) {
        sqlite3_free(*tail);
        *tail = NULL;
        rc = load_get(b, key, f->size - need, need, tail, &nTail, pzErr);
        if (rc != SQLITE_OK)
            return rc;
        rc = ltx_index_parse(*tail, nTail, f->size, &o->index, &o->n, &trailer,
                             &need, zLtx, sizeof(zLtx));
    }
    if (rc != SQLITE_OK)
        return rc == SQLITE_NOMEM ? rc : load_corrupt(b, key, zLtx, pzErr);
    o->post_apply = trailer.post_apply;
    return SQLITE_OK;
}

/*
 * Fetches the header and page index of object f: one GET of the whole
 * object when small, else a header GET and a tail GET (a third one if the
 * index is larger than READER_TAIL_GUESS).
 */
static int
load_object(backend *b, const ltx_info *f, pm_loaded *o, char **pzErr)
{
    char key[LAYOUT_KEY_SIZE], zLtx[256];
    uint8_t *head = NULL, *tail = NULL;
    size_t nHead = 0, nTail = 0;
    int small = f->size <= READER_SMALL_OBJECT, rc;

    memset(o, 0, sizeof(*o));
    o->info = *f;
    layout_key(b, f->level, f->min_txid, f->max_txid, key, sizeof(key));
    if (f->size < LTX_MIN_FILE_SIZE) {
        rc = load_corrupt(b, key, "shorter than any LTX file", pzErr);
        goto out;
    }
    rc = load_get(b, key, 0, small ? f->size : LTX_HEADER_SIZE, &head, &nHead,
                  pzErr);
    if (rc != SQLITE_OK)
        goto out;
    rc = ltx_header_decode(head, &o->hdr, zLtx, sizeof(zLtx));
    if (rc == SQLITE_OK &&
        (o->hdr.min_txid != f->min_txid || o->hdr.max_txid != f->max_txid)) {
        snprintf(zLtx, sizeof(zLtx), "its header holds TXIDs %016llx-%016llx",
                 (unsigned long long)o->hdr.min_txid,
                 (unsigned long long)o->hdr.max_txid);
        rc = SQLITE_CORRUPT;
    }
    if (rc != SQLITE_OK) {
        rc = load_corrupt(b, key, zLtx, pzErr);
        goto out;
    }
    if (small) {
        tail = head;
        head = NULL;
        nTail = nHead;
    } else {
        uint64_t n = f->size < READER_TAIL_GUESS ? f->size : READER_TAIL_GUESS;
        rc = load_get(b, key, f->size - n, n, &tail, &nTail, pzErr);
        if (rc != SQLITE_OK)
            goto out;
    }
    rc = load_index(b, key, f, &tail, nTail, o, pzErr);
out:
    sqlite3_free(head);
    sqlite3_free(tail);
    if (rc != SQLITE_OK)
        pagemap_loaded_free(o);
    return rc;
}

typedef struct load_job {
    const ls_url *u;
    const ltx_info *files;
    pm_loaded *out;
    int *rcs;
    char **errs;
    int n, next;
    pthread_mutex_t mu;
    backend_counters sum; /* requests of the extra handles */
} load_job;

/* Loads objects off the shared counter until none is left. */
static void
load_loop(load_job *j, backend *b)
{
    for (;;) {
        int i;
        pthread_mutex_lock(&j->mu);
        i = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n)
            break;
        j->rcs[i] = load_object(b, &j->files[i], &j->out[i], &j->errs[i]);
    }
}

static void *
load_worker(void *arg)
{
    load_job *j = arg;
    backend *b = NULL;
    char *zErr = NULL;

    if (backend_open_url(j->u, &b, &zErr) != SQLITE_OK) {
        sqlite3_free(zErr); /* the other threads do the work */
        return NULL;
    }
    load_loop(j, b);
    const backend_counters *c = backend_get_counters(b);
    pthread_mutex_lock(&j->mu);
    j->sum.n_get += c->n_get;
    j->sum.n_list += c->n_list;
    j->sum.bytes_down += c->bytes_down;
    pthread_mutex_unlock(&j->mu);
    backend_close(b);
    return NULL;
}

int
reader_load_all(reader *r, const ltx_info *files, int n, pm_loaded *out,
                char **pzErr)
{
    load_job j;
    pthread_t tid[READER_LOAD_THREADS];
    int nt = 0, i, rc = SQLITE_OK;

    memset(&j, 0, sizeof(j));
    memset(out, 0, sizeof(pm_loaded) * (size_t)n);
    j.u = r->u;
    j.files = files;
    j.out = out;
    j.n = n;
    j.rcs = sqlite3_malloc64(sizeof(int) * (size_t)n + 1);
    j.errs = sqlite3_malloc64(sizeof(char *) * (size_t)n + 1);
    if (j.rcs == NULL || j.errs == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(j.errs, 0, sizeof(char *) * (size_t)n);
    pthread_mutex_init(&j.mu, NULL);
    /* Threads only pay off for several objects (each a round trip). */
    for (nt = 0; nt < READER_LOAD_THREADS && nt < n / 2; nt++)
        if (pthread_create(&tid[nt], NULL, load_worker, &j) != 0)
            break;
    load_loop(&j, r->b);
    for (i = 0; i < nt; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&j.mu);
    r->extra.n_get += j.sum.n_get;
    r->extra.n_list += j.sum.n_list;
    r->extra.bytes_down += j.sum.bytes_down;
    for (i = 0; i < n && rc == SQLITE_OK; i++)
        if (j.rcs[i] != SQLITE_OK) {
            rc = j.rcs[i];
            *pzErr = j.errs[i];
            j.errs[i] = NULL;
        }
    for (i = 0; i < n; i++)
        sqlite3_free(j.errs[i]);
out:
    sqlite3_free(j.rcs);
    sqlite3_free(j.errs);
    if (rc != SQLITE_OK)
        for (i = 0; i < n; i++)
            pagemap_loaded_free(&out[i]);
    return rc;
}
