/*
 * storage/base/watch.c: the process's watcher of directories (watch.h).
 *
 * One inotify descriptor for the process; a directory watched for several
 * owners (databases in one directory) is one inotify watch, its mask the
 * union of theirs (IN_MASK_ADD), removed from the kernel with its last
 * owner.  Watches are found by inotify's watch descriptor in a small hash
 * table.  The thread reads a batch of events, marks the watches they
 * concern, then calls each marked watch's function once.
 *
 * Threads: any thread adds and removes; the thread "ls-watch" (started by
 * the first watch_add, for the life of the process) reads and calls.
 * Everything is guarded by W.mu, held while the functions run (invariant
 * 1 of watch.h).
 */
#include "storage/base/watch.h"

#include "storage/base/sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define NBUCKET 256 /* a power of two */
#define SELF    (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)
#define GONE    (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)

struct watch {
    int wd;        /* inotify's watch descriptor */
    uint32_t mask; /* the inotify events it reports */
    char *zName;   /* NULL: any name */
    watch_fn xFn;
    void *ctx;
    int live; /* 0: its directory went away */
    int hit;  /* its function is due in this batch */
    watch *next;
};

static struct {
    pthread_mutex_t mu;
    int fd; /* -1: not started */
    watch *b[NBUCKET];
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

/* fork(): the child has no watcher thread; its watches belong to owners the
 * child abandons.  It starts again, empty (the memory is left behind). */
static void
watch_child(void)
{
    pthread_mutex_init(&W.mu, NULL);
    if (W.fd >= 0)
        close(W.fd);
    W.fd = -1;
    memset(W.b, 0, sizeof(W.b));
}

static void
watch_init(void)
{
    pthread_atfork(NULL, NULL, watch_child);
}

static watch **
bucket(int wd)
{
    return &W.b[(unsigned)wd & (NBUCKET - 1)];
}

static uint32_t
to_mask(unsigned kinds)
{
    uint32_t m = 0;
    if (kinds & WATCH_WRITTEN)
        m |= IN_MODIFY;
    if (kinds & WATCH_CLOSED)
        m |= IN_CLOSE_WRITE;
    if (kinds & WATCH_ADDED)
        m |= IN_CREATE | IN_MOVED_TO;
    if (kinds & WATCH_REMOVED)
        m |= IN_DELETE | IN_MOVED_FROM;
    if (kinds & WATCH_TOUCHED)
        m |= IN_ATTRIB;
    return m;
}

/* Marks the watches one event concerns (W.mu held). */
static void
mark(const struct inotify_event *ev)
{
    if (ev->wd < 0) { /* the queue overflowed: anything may have happened */
        for (int i = 0; i < NBUCKET; i++)
            for (watch *w = W.b[i]; w; w = w->next)
                w->hit = 1;
        return;
    }
    for (watch *w = *bucket(ev->wd); w; w = w->next) {
        if (w->wd != ev->wd || !w->live)
            continue;
        if (ev->mask & SELF) {
            w->hit = 1;
            if (ev->mask & GONE)
                w->live = 0;
        } else if ((ev->mask & w->mask) &&
                   (!w->zName || !ev->len || strcmp(ev->name, w->zName) == 0)) {
            w->hit = 1;
        }
    }
}

/* Calls the marked watches' functions (W.mu held). */
static void
fire(void)
{
    for (int i = 0; i < NBUCKET; i++)
        for (watch *w = W.b[i]; w; w = w->next)
            if (w->hit) {
                w->hit = 0;
                w->xFn(w->ctx);
            }
}

static void *
watch_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    union {
        struct inotify_event ev;
        char buf[16384];
    } u;
    pthread_setname_np(pthread_self(), "ls-watch");
    for (;;) {
        ssize_t n = read(fd, u.buf, sizeof(u.buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* closed (a forked child's copy): nothing to watch */
        pthread_mutex_lock(&W.mu);
        if (W.fd != fd) { /* not this process's watcher any more */
            pthread_mutex_unlock(&W.mu);
            break;
        }
        for (ssize_t off = 0;
             off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ev =
                (const struct inotify_event *)(u.buf + off);
            mark(ev);
            off += (ssize_t)sizeof(*ev) + ev->len;
        }
        fire();
        pthread_mutex_unlock(&W.mu);
    }
    return NULL;
}

/* The descriptor and its thread, started once per process (W.mu held). */
static int
start(void)
{
    if (W.fd >= 0)
        return SQLITE_OK;
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0)
        return SQLITE_CANTOPEN;
    pthread_t tid;
    pthread_attr_t at;
    int ok = pthread_attr_init(&at) == 0;
    ok = ok && pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0;
    ok = ok && pthread_create(&tid, &at, watch_main, (void *)(intptr_t)fd) == 0;
    pthread_attr_destroy(&at);
    if (!ok) {
        close(fd);
        return SQLITE_ERROR;
    }
    W.fd = fd;
    return SQLITE_OK;
}

int
watch_add(const char *zDir, const char *zName, unsigned kinds, watch_fn xFn,
          void *ctx, watch **out)
{
    *out = NULL;
    pthread_once(&watch_once, watch_init);
    watch *w = sqlite3_malloc64(sizeof(*w));
    char *z = zName ? sqlite3_mprintf("%s", zName) : NULL;
    if (!w || (zName && !z)) {
        sqlite3_free(w);
        sqlite3_free(z);
        return SQLITE_NOMEM;
    }
    memset(w, 0, sizeof(*w));
    w->mask = to_mask(kinds);
    w->zName = z;
    w->xFn = xFn;
    w->ctx = ctx;
    w->live = 1;
    pthread_mutex_lock(&W.mu);
    int rc = start();
    if (rc == SQLITE_OK) {
        w->wd = inotify_add_watch(W.fd, zDir,
                                  w->mask | IN_ONLYDIR | IN_MASK_ADD |
                                      IN_DELETE_SELF | IN_MOVE_SELF);
        if (w->wd < 0)
            rc = SQLITE_CANTOPEN;
    }
    if (rc == SQLITE_OK) {
        watch **b = bucket(w->wd);
        w->next = *b;
        *b = w;
        *out = w;
    }
    pthread_mutex_unlock(&W.mu);
    if (rc != SQLITE_OK) {
        sqlite3_free(z);
        sqlite3_free(w);
    }
    return rc;
}

void
watch_remove(watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&W.mu);
    int shared = 0;
    for (watch **p = bucket(w->wd); *p;) {
        if (*p == w) {
            *p = w->next;
            continue;
        }
        shared |= (*p)->wd == w->wd && (*p)->live;
        p = &(*p)->next;
    }
    if (w->live && !shared && W.fd >= 0)
        inotify_rm_watch(W.fd, w->wd); /* EINVAL if already gone: fine */
    pthread_mutex_unlock(&W.mu);
    sqlite3_free(w->zName);
    sqlite3_free(w);
}

int
watch_live(watch *w)
{
    pthread_mutex_lock(&W.mu);
    int v = w->live;
    pthread_mutex_unlock(&W.mu);
    return v;
}
