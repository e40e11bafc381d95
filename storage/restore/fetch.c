/*
 * storage/restore/fetch.c: parallel read-ahead of replica objects (fetch.h).
 *
 * Each stream keeps a ring of up to FETCH_DEPTH chunk requests in object
 * order; ring[head] is the chunk being read.  A request is queued (FIFO)
 * for the pool; a pool thread runs the range get on its own backend handle
 * and marks the chunk done.  When the reader finishes a chunk it frees it
 * and tops its ring up again, within the global budget.
 *
 * Invariants:
 *   1. Chunk state, data and result are written by a pool thread under mu;
 *      the request fields (offset, length, key) are written by the consumer
 *      before the chunk is queued under mu and not touched until it is done.
 *      Everything else of a stream belongs to the consumer.
 *   2. A stream whose ring is empty may always request one chunk, whatever
 *      the budget: readers never wait for memory held by other streams.
 *   3. fetch_close() joins the pool before freeing anything.
 *
 * Threads: one consumer thread, nThread pool threads.
 */
#include "storage/restore/fetch.h"

#include <pthread.h>
#include <string.h>

#include "storage/base/sqlite.h"

enum { CHUNK_EMPTY, CHUNK_QUEUED, CHUNK_RUNNING, CHUNK_DONE };

typedef struct fetch_chunk {
    uint64_t off;  /* request: object offset */
    size_t len;    /* request: bytes */
    uint8_t *data; /* result (sqlite3_malloc'd) */
    size_t n;      /* result: bytes got (< len at the end of the object) */
    int state;
    int rc;
    char *zErr; /* the backend's message when rc != SQLITE_OK */
} fetch_chunk;

struct fetch_stream {
    fetcher *f;
    char *key;
    uint64_t size;     /* listed size */
    uint64_t next_off; /* offset of the next chunk to request */
    fetch_chunk ring[FETCH_DEPTH];
    int head, count; /* ring[head] is read; count chunks requested */
    size_t pos;      /* bytes of ring[head] already read */
    int eof;         /* a short chunk ended the object */
    char *zErr;      /* fetch failure, for fetch_stream_err() */
    int rc;          /* ... and its result code */
};

typedef struct fetch_job {
    fetch_stream *s;
    fetch_chunk *c;
} fetch_job;

typedef struct fetch_thread {
    fetcher *f;
    backend *h; /* this thread's own handle */
    pthread_t tid;
} fetch_thread;

struct fetcher {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* a job was queued, or stop */
    pthread_cond_t cv_done; /* a chunk is done */
    fetch_stream *streams;
    int n;
    fetch_job *queue; /* ring of qcap jobs */
    int qcap, qhead, qlen;
    int stop;
    backend *b; /* the consumer's handle (inline fetches) */
    fetch_thread *threads;
    int nThread;
    uint64_t inflight; /* bytes requested and not yet consumed */
};

/* Runs one range get; fills the chunk's result fields (not its state). */
static void
fetch_do(backend *h, const fetch_stream *s, fetch_chunk *c, uint8_t **data,
         size_t *n, int *rc, char **zErr)
{
    *data = NULL;
    *n = 0;
    *zErr = NULL;
    *rc = backend_get(h, s->key, c->off, c->len, data, n);
    if (*rc != SQLITE_OK)
        *zErr = sqlite3_mprintf("%s", backend_errmsg(h));
}

static void *
fetch_worker(void *arg)
{
    fetch_thread *t = arg;
    fetcher *f = t->f;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        fetch_job job;
        uint8_t *data;
        size_t n;
        int rc;
        char *zErr;

        while (!f->stop && f->qlen == 0)
            pthread_cond_wait(&f->cv_work, &f->mu);
        if (f->stop)
            break;
        job = f->queue[f->qhead];
        f->qhead = (f->qhead + 1) % f->qcap;
        f->qlen--;
        job.c->state = CHUNK_RUNNING;
        pthread_mutex_unlock(&f->mu);
        fetch_do(t->h, job.s, job.c, &data, &n, &rc, &zErr);
        pthread_mutex_lock(&f->mu);
        job.c->data = data;
        job.c->n = n;
        job.c->rc = rc;
        job.c->zErr = zErr;
        job.c->state = CHUNK_DONE;
        pthread_cond_broadcast(&f->cv_done);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Requests the next chunk of s. */
static void
fetch_request(fetcher *f, fetch_stream *s)
{
    fetch_chunk *c = &s->ring[(s->head + s->count) % FETCH_DEPTH];
    uint64_t left = s->size - s->next_off;

    memset(c, 0, sizeof(*c));
    c->off = s->next_off;
    c->len = left < FETCH_CHUNK ? (size_t)left : FETCH_CHUNK;
    c->state = CHUNK_QUEUED;
    s->count++;
    s->next_off += c->len;
    f->inflight += c->len;
    if (f->nThread == 0)
        return; /* fetched inline when read */
    pthread_mutex_lock(&f->mu);
    f->queue[(f->qhead + f->qlen) % f->qcap] = (fetch_job){s, c};
    f->qlen++;
    pthread_cond_signal(&f->cv_work);
    pthread_mutex_unlock(&f->mu);
}

/* Fills s's ring as far as depth and budget allow (invariant 2). */
static void
fetch_topup(fetcher *f, fetch_stream *s)
{
    while (s->count < FETCH_DEPTH && s->next_off < s->size && !s->eof) {
        uint64_t left = s->size - s->next_off;
        uint64_t len = left < FETCH_CHUNK ? left : FETCH_CHUNK;
        if (s->count > 0 && f->inflight + len > FETCH_BUDGET)
            break;
        fetch_request(f, s);
    }
}

/* Waits until c is done (fetching it here if there is no pool). */
static int
fetch_wait(fetcher *f, fetch_stream *s, fetch_chunk *c)
{
    if (f->nThread == 0 && c->state == CHUNK_QUEUED) {
        fetch_do(f->b, s, c, &c->data, &c->n, &c->rc, &c->zErr);
        c->state = CHUNK_DONE;
    }
    pthread_mutex_lock(&f->mu);
    while (c->state != CHUNK_DONE)
        pthread_cond_wait(&f->cv_done, &f->mu);
    pthread_mutex_unlock(&f->mu);
    if (c->rc != SQLITE_OK) {
        const char *zWhy = c->zErr ? c->zErr : "";
        if (strncmp(zWhy, "litestream: ", 12) == 0)
            zWhy += 12;
        if (s->zErr == NULL) {
            s->zErr = sqlite3_mprintf("litestream: cannot fetch '%s': %s",
                                      s->key, zWhy);
            s->rc = c->rc;
        }
        return 1;
    }
    return 0;
}

/* Frees the fully read ring[head] and tops the ring up. */
static void
fetch_consumed(fetcher *f, fetch_stream *s, fetch_chunk *c)
{
    if (c->n < c->len)
        s->eof = 1; /* the object is shorter than listed */
    f->inflight -= c->len;
    sqlite3_free(c->data);
    sqlite3_free(c->zErr);
    memset(c, 0, sizeof(*c));
    s->head = (s->head + 1) % FETCH_DEPTH;
    s->count--;
    s->pos = 0;
    fetch_topup(f, s);
}

int
fetch_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    fetch_stream *s = ctx;
    fetcher *f = s->f;
    size_t got = 0;

    *nRead = 0;
    while (got < n && !s->eof) {
        fetch_chunk *c;
        size_t take;

        if (s->zErr)
            return 1;
        if (s->count == 0) {
            if (s->next_off >= s->size)
                break;
            fetch_topup(f, s);
        }
        c = &s->ring[s->head];
        if (fetch_wait(f, s, c) != 0)
            return 1;
        take = c->n - s->pos;
        if (take > n - got)
            take = n - got;
        memcpy((uint8_t *)buf + got, c->data + s->pos, take);
        got += take;
        s->pos += take;
        if (s->pos == c->n)
            fetch_consumed(f, s, c);
    }
    *nRead = got;
    return 0;
}

fetch_stream *
fetch_stream_at(fetcher *f, int i)
{
    return &f->streams[i];
}

const char *
fetch_stream_err(const fetch_stream *s)
{
    return s->zErr;
}

int
fetch_stream_rc(const fetch_stream *s)
{
    return s->zErr ? s->rc : SQLITE_OK;
}

/* Opens handles and starts up to nThread pool threads. */
static int
fetch_start(fetcher *f, const struct ls_url *u, int nThread, char **pzErr)
{
    int i, rc;

    f->threads = sqlite3_malloc64(sizeof(fetch_thread) * (size_t)nThread);
    if (f->threads == NULL)
        return SQLITE_NOMEM;
    for (i = 0; i < nThread; i++) {
        fetch_thread *t = &f->threads[i];
        t->f = f;
        rc = backend_open_url(u, &t->h, pzErr);
        if (rc != SQLITE_OK)
            return rc;
        if (pthread_create(&t->tid, NULL, fetch_worker, t) != 0) {
            backend_close(t->h);
            break; /* run with the threads we have */
        }
        f->nThread++;
    }
    return SQLITE_OK;
}

int
fetch_open(const struct ls_url *u, backend *b, const char *const *keys,
           const uint64_t *sizes, int n, int nThread, fetcher **out,
           char **pzErr)
{
    fetcher *f;
    int i, rc = SQLITE_NOMEM;

    *out = NULL;
    if (pzErr)
        *pzErr = NULL;
    f = sqlite3_malloc64(sizeof(*f));
    if (f == NULL)
        goto out;
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv_work, NULL);
    pthread_cond_init(&f->cv_done, NULL);
    f->b = b;
    f->n = n;
    f->qcap = n * FETCH_DEPTH;
    f->streams = sqlite3_malloc64(sizeof(fetch_stream) * (size_t)(n + 1));
    f->queue = sqlite3_malloc64(sizeof(fetch_job) * (size_t)(f->qcap + 1));
    if (f->streams == NULL || f->queue == NULL)
        goto out;
    memset(f->streams, 0, sizeof(fetch_stream) * (size_t)n);
    for (i = 0; i < n; i++) {
        f->streams[i].f = f;
        f->streams[i].size = sizes[i];
        f->streams[i].key = sqlite3_mprintf("%s", keys[i]);
        if (f->streams[i].key == NULL)
            goto out;
    }
    if (nThread > f->qcap)
        nThread = f->qcap;
    rc = nThread > 0 ? fetch_start(f, u, nThread, pzErr) : SQLITE_OK;
    if (rc != SQLITE_OK)
        goto out;
    for (i = 0; i < n; i++)
        fetch_topup(f, &f->streams[i]);
    *out = f;
    f = NULL;
out:
    if (rc == SQLITE_NOMEM && pzErr && *pzErr == NULL)
        *pzErr = sqlite3_mprintf("litestream: out of memory");
    fetch_close(f);
    return rc;
}

void
fetch_close(fetcher *f)
{
    int i, j;

    if (f == NULL)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv_work);
    pthread_mutex_unlock(&f->mu);
    for (i = 0; i < f->nThread; i++) {
        pthread_join(f->threads[i].tid, NULL);
        backend_close(f->threads[i].h);
    }
    sqlite3_free(f->threads);
    for (i = 0; f->streams && i < f->n; i++) {
        for (j = 0; j < FETCH_DEPTH; j++) {
            sqlite3_free(f->streams[i].ring[j].data);
            sqlite3_free(f->streams[i].ring[j].zErr);
        }
        sqlite3_free(f->streams[i].key);
        sqlite3_free(f->streams[i].zErr);
    }
    sqlite3_free(f->streams);
    sqlite3_free(f->queue);
    pthread_cond_destroy(&f->cv_done);
    pthread_cond_destroy(&f->cv_work);
    pthread_mutex_destroy(&f->mu);
    sqlite3_free(f);
}
