/*
 * test_watch.c: storage/base/watch.c, the process's directory watcher.
 *
 * A write, a new name and a change of the directory's times call the
 * watches that asked for them; a watch for one name ignores the others;
 * two watches of one directory share it, and removing one leaves the
 * other working and never calls the removed one again; a directory
 * removed calls its watches and they turn not live.  Absence is checked
 * by order, not by waiting: events of one directory arrive in order, so
 * once a later event's watch was called, an earlier one would have been.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/base/clock.h"
#include "storage/base/watch.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
} counter;

static void
counter_init(counter *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void
hit(void *ctx)
{
    counter *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->n++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int
count(counter *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Waits up to 10 s for c->n > n. */
static int
wait_more(counter *c, int n)
{
    struct timespec dl;
    clock_deadline(&dl, 10000);
    pthread_mutex_lock(&c->mu);
    while (c->n <= n)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) != 0)
            break;
    int more = c->n > n;
    pthread_mutex_unlock(&c->mu);
    return more;
}

static void
write_file(const char *zDir, const char *zName, const char *text)
{
    char z[512];
    snprintf(z, sizeof(z), "%s/%s", zDir, zName);
    int fd = open(z, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0)
            perror("write");
        close(fd);
    }
}

int
main(void)
{
    api_init();
    char zDir[] = "/tmp/litestream-watch-XXXXXX";
    if (!mkdtemp(zDir)) {
        ok(0, "mkdtemp");
        return tap_done();
    }
    counter any, named, sentinel;
    counter_init(&any);
    counter_init(&named);
    counter_init(&sentinel);
    watch *wa = NULL, *wn = NULL, *ws = NULL;

    int rc = watch_add(zDir, NULL, WATCH_WRITTEN | WATCH_ADDED, hit, &any, &wa);
    ok(rc == SQLITE_OK && wa && watch_live(wa), "a directory is watched");
    write_file(zDir, "seg", "x");
    ok(wait_more(&any, 0), "a file created and written calls the watch");

    rc = watch_add(zDir, "app.db", WATCH_ADDED | WATCH_REMOVED, hit, &named,
                   &wn);
    ok(rc == SQLITE_OK, "a second watch of the same directory, for one name");
    int n_any = count(&any);
    write_file(zDir, "app.db-wal", "x");
    write_file(zDir, "app.db", "x");
    ok(wait_more(&named, 0) && count(&named) == 1,
       "the named watch is called for its name, not for another (%d)",
       count(&named));
    ok(wait_more(&any, n_any), "the first watch still sees every name");

    /* Removed: never called again (the sentinel sees the later event). */
    watch_remove(wa);
    rc = watch_add(zDir, NULL, WATCH_WRITTEN, hit, &sentinel, &ws);
    n_any = count(&any);
    write_file(zDir, "seg", "more");
    ok(rc == SQLITE_OK && wait_more(&sentinel, 0) && count(&any) == n_any,
       "a removed watch is not called; the other of its directory is");

    /* utimensat on the directory: the ring of ship.c. */
    watch *wt = NULL;
    counter touched;
    counter_init(&touched);
    rc = watch_add(zDir, NULL, WATCH_TOUCHED, hit, &touched, &wt);
    ok(rc == SQLITE_OK && utimensat(AT_FDCWD, zDir, NULL, 0) == 0 &&
           wait_more(&touched, 0),
       "a change of the directory's times calls a WATCH_TOUCHED watch");

    /* The directory removed: every watch of it is called, none is live. */
    int n_named = count(&named), n_s = count(&sentinel);
    char z[512];
    const char *names[] = {"seg", "app.db", "app.db-wal"};
    for (int i = 0; i < 3; i++) {
        snprintf(z, sizeof(z), "%s/%s", zDir, names[i]);
        unlink(z);
    }
    rmdir(zDir);
    ok(wait_more(&named, n_named) && wait_more(&sentinel, n_s),
       "a removed directory calls its watches");
    struct timespec ts = {0, 20000000};
    for (int i = 0; i < 500 && (watch_live(wn) || watch_live(ws)); i++)
        nanosleep(&ts, NULL);
    ok(!watch_live(wn) && !watch_live(ws) && !watch_live(wt),
       "... and they are no longer live (add them again)");
    watch_remove(wn);
    watch_remove(ws);
    watch_remove(wt);
    watch_remove(NULL);

    rc =
        watch_add("/nonexistent/litestream", NULL, WATCH_ADDED, hit, &any, &wa);
    ok(rc != SQLITE_OK && wa == NULL,
       "a directory that does not exist: an error (the caller polls)");
    return tap_done();
}
