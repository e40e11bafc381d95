/*
 * vfs/remote_list.c: the process's list of open `litestream-remote`
 * databases, for litestream_metrics() (sql/metrics.c, docs/sql.md
 * "Metrics").
 *
 * Invariants:
 *   1. A file is listed from the end of a successful open until the start
 *      of its close, before its reader is freed; the list and every
 *      file's published counters (remote_pub) are under one mutex.
 *   2. A file's reader belongs to its connection's thread: other threads
 *      only read what is fixed at open (its URL, its hydrator).  The
 *      connection copies its counters into the list at the start and end
 *      of each read transaction; only the hydrator (which has its own
 *      lock) is asked live.
 *
 * Threads: any (the mutex).
 */
#include <pthread.h>

#include "storage/reader/hydrate.h"
#include "vfs/remote.h"
#include "vfs/remote_pragma.h"

static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static remote_file *list_head, *list_tail; /* under list_mu */
static uint64_t list_next_conn = 1;        /* under list_mu */

/* The counters of p, from p's own thread. */
static void
snapshot(remote_file *p, remote_pub *out)
{
    out->txid = reader_txid(p->r);
    out->newest_ms = reader_newest_ms(p->r);
    reader_get_stats(p->r, &out->st);
}

void
remote_list_add(remote_file *p)
{
    remote_pub pub;

    snapshot(p, &pub);
    pthread_mutex_lock(&list_mu);
    p->pub = pub;
    p->conn = list_next_conn++;
    p->next = NULL;
    p->prev = list_tail;
    if (list_tail)
        list_tail->next = p;
    else
        list_head = p;
    list_tail = p;
    pthread_mutex_unlock(&list_mu);
}

void
remote_list_remove(remote_file *p)
{
    if (p->conn == 0)
        return;
    pthread_mutex_lock(&list_mu);
    if (p->prev)
        p->prev->next = p->next;
    else
        list_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        list_tail = p->prev;
    p->next = p->prev = NULL;
    p->conn = 0;
    pthread_mutex_unlock(&list_mu);
}

void
remote_list_publish(remote_file *p)
{
    remote_pub pub;

    if (p->conn == 0 || p->r == NULL)
        return;
    snapshot(p, &pub);
    pthread_mutex_lock(&list_mu);
    p->pub = pub;
    pthread_mutex_unlock(&list_mu);
}

int
vfs_remote_each(int (*x)(const remote_metrics *m, void *ctx), void *ctx)
{
    int rc = SQLITE_OK;

    pthread_mutex_lock(&list_mu);
    for (remote_file *p = list_head; p && rc == SQLITE_OK; p = p->next) {
        struct hydrator *h = reader_hydrator(p->r);
        remote_metrics m = {
            .zUrl = reader_url(p->r),
            .conn = p->conn,
            .txid = p->pub.txid,
            .newest_ms = p->pub.newest_ms,
            .st = p->pub.st,
        };
        if (h) {
            hyd_status s;
            hydrator_status(h, &s);
            m.hydrating = 1;
            m.progress = hydrator_progress(&s, m.txid);
            m.hyd_get = s.n_get;
            m.hyd_bytes = s.bytes_down;
        }
        rc = x(&m, ctx);
    }
    pthread_mutex_unlock(&list_mu);
    return rc;
}
