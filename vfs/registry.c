/*
 * vfs/registry.c: the per-database registry of the litestream VFS
 * (registry.h): lookup by path, reference counts, starting and stopping
 * replication, the last start's error.
 *
 * Invariants:
 *   1. One ls_db per path in the process; it lives while a file of its
 *      database is open through the VFS (nRef > 0).
 *   2. d->rep changes only under d->mu; a replicator being replaced is
 *      detached under d->mu and closed without it (its thread may need
 *      d->mu to finish a recapture), after the SQL functions borrowing it
 *      (rep_users) gave it back.
 *   3. Lock order: registry_mu, then d->mu (fork handlers take them all).
 *
 * Threads: application threads; the fork handlers in the forking thread.
 */
#include "vfs/registry.h"
#include "storage/base/mem.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#define CLOSE_GRACE_MS 2000 /* last close: wait this long for the upload */

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static ls_db *registry;
static const char *registry_vfs;
static registry_recapture_fn registry_recapture;

/* Records (or with NULL clears) why d is not replicating.  Caller holds
 * d->mu. */
static void
set_error(ls_db *d, char *z)
{
    sqlite3_free(d->zError);
    d->zError = z;
    if (z)
        sqlite3_log(SQLITE_WARNING, "%s", z);
}

/* Starts replication of d as c says.  Caller holds d->mu. */
/* The commit path reads these without a lock (vfs/durability.c). */
static void
set_durability(ls_db *d, const ls_config *c)
{
    __atomic_store_n(&d->durability_ms, c->durability_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&d->durability, c->durability, __ATOMIC_RELEASE);
}

static int
start(ls_db *d, const ls_config *c, char **pzErr)
{
    int rc = SQLITE_OK;
    rep_opts o = {.sync_interval_ms = c->sync_ms,
                  .spool_limit = c->spool_limit,
                  .zVfs = registry_vfs,
                  .xRecapture = registry_recapture,
                  .pRecaptureCtx = d,
                  .pAlone = &d->rep_alone,
                  .pitr = c->pitr};
    set_durability(d, c);
    if (!d->sc) {
        rc = sidecar_open(d->zPath, &d->sc, pzErr);
        if (rc != SQLITE_OK)
            return rc;
    }
    return replicator_open(d->zPath, c->zUrl, &o, d->sc, &d->rep, pzErr);
}

/* Replication configured earlier resumes at the first open. */
static void
resume(ls_db *d)
{
    ls_config c;
    char *zErr = NULL;
    if (d->rep || !sidecar_exists(d->zPath))
        return;
    sidecar_config_read(d->zPath, &c);
    pthread_mutex_lock(&d->mu);
    if (c.zUrl && !d->rep && start(d, &c, &zErr) != SQLITE_OK)
        set_error(d, zErr);
    pthread_mutex_unlock(&d->mu);
    sqlite3_free(c.zUrl);
}

/* A new ls_db for zPath (not yet listed), or NULL. */
static ls_db *
db_new(const char *zPath)
{
    ls_db *d = sqlite3_malloc64(sizeof(*d));
    if (!d)
        return NULL;
    memset(d, 0, sizeof(*d));
    d->zPath = sqlite3_mprintf("%s", zPath);
    if (!d->zPath) {
        sqlite3_free(d);
        return NULL;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->rep_idle, NULL);
    d->nRef = 1;
    return d;
}

ls_db *
registry_acquire(const char *zPath)
{
    ls_db *d;
    pthread_mutex_lock(&registry_mu);
    for (d = registry; d; d = d->next)
        if (strcmp(d->zPath, zPath) == 0)
            break;
    if (d) {
        d->nRef++;
    } else if ((d = db_new(zPath)) != NULL) {
        d->next = registry;
        registry = d;
    }
    pthread_mutex_unlock(&registry_mu);
    if (d)
        resume(d);
    return d;
}

int
registry_each(int (*xEach)(ls_db *, void *), void *pCtx)
{
    ls_db **a = NULL;
    size_t n = 0, cap = 0;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&registry_mu);
    for (ls_db *d = registry; d && rc == SQLITE_OK; d = d->next) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            ls_db **p = sqlite3_realloc64(a, nc * sizeof(*a));
            if (!p) {
                rc = SQLITE_NOMEM;
                break;
            }
            a = p;
            cap = nc;
        }
        d->nRef++; /* kept alive while the callback runs */
        a[n++] = d;
    }
    pthread_mutex_unlock(&registry_mu);
    for (size_t i = 0; i < n; i++) {
        if (rc == SQLITE_OK)
            rc = xEach(a[i], pCtx);
        registry_release(a[i]);
    }
    sqlite3_free(a);
    return rc;
}

void
registry_ref(ls_db *d)
{
    pthread_mutex_lock(&registry_mu);
    d->nRef++;
    pthread_mutex_unlock(&registry_mu);
}

void
registry_release(ls_db *d)
{
    pthread_mutex_lock(&registry_mu);
    if (--d->nRef > 0) {
        pthread_mutex_unlock(&registry_mu);
        return;
    }
    for (ls_db **pp = &registry; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    replicator_close(d->rep, CLOSE_GRACE_MS);
    d->rep = NULL;
    txarena_retire(&d->arena);
    sidecar_close(d->sc);
    ls_free(d->heap);
    sqlite3_free(d->zError);
    sqlite3_free(d->zPath);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->rep_idle);
    sqlite3_free(d);
}

ls_db *
registry_find_wal(const char *zWal)
{
    size_t n = strlen(zWal);
    ls_db *d = NULL;
    if (n <= 4 || strcmp(zWal + n - 4, "-wal") != 0)
        return NULL;
    pthread_mutex_lock(&registry_mu);
    for (d = registry; d; d = d->next)
        if (strlen(d->zPath) == n - 4 && memcmp(d->zPath, zWal, n - 4) == 0)
            break;
    pthread_mutex_unlock(&registry_mu);
    return d;
}

/* The URL is unchanged: apply the other settings in place.  Caller holds
 * d->mu. */
static int
reconfigure(ls_db *d, const ls_config *c, char **pzErr)
{
    replicator_set_interval(d->rep, c->sync_ms);
    replicator_set_spool_limit(d->rep, c->spool_limit);
    replicator_set_pitr(d->rep, &c->pitr);
    set_durability(d, c);
    return sidecar_config_write(d->sc, c, pzErr);
}

/*
 * d->rep = NULL, then waits out a zero-copy capture that runs without
 * d->mu and may still use the replicator (capture_hold_end_zc: it
 * announces itself in d->capturing before it loads d->rep; both sides
 * sequentially consistent, so one of them sees the other).  Caller holds
 * d->mu; the capture never waits for it meanwhile.
 */
static void
detach(ls_db *d)
{
    __atomic_store_n(&d->rep, NULL, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&d->capturing, __ATOMIC_SEQ_CST))
        sched_yield();
}

int
registry_configure(ls_db *d, const ls_config *c, char **pzErr)
{
    int rc = SQLITE_OK;
    replicator *old = NULL;
    int want = c->zUrl && c->zUrl[0];

    pthread_mutex_lock(&d->mu);
    if (want && d->rep && replicator_has_url(d->rep, c->zUrl)) {
        /* Already replicating there (e.g. the URL set again at every
         * start of the application): nothing to restart. */
        rc = reconfigure(d, c, pzErr);
        pthread_mutex_unlock(&d->mu);
        return rc;
    }
    old = d->rep; /* detached here, closed below without the mutex */
    detach(d);    /* (invariant 2) */
    while (old && d->rep_users > 0)
        pthread_cond_wait(&d->rep_idle, &d->mu);
    pthread_mutex_unlock(&d->mu);
    replicator_close(old, 0);
    old = NULL;

    pthread_mutex_lock(&d->mu);
    if (!want) {
        if (!d->sc)
            rc = sidecar_open(d->zPath, &d->sc, pzErr);
        if (rc == SQLITE_OK)
            rc = sidecar_config_write(d->sc, c, pzErr);
    } else if (!d->rep) {
        rc = start(d, c, pzErr);
        if (rc == SQLITE_OK)
            rc = sidecar_config_write(d->sc, c, pzErr);
        if (rc != SQLITE_OK) {
            old = d->rep;
            detach(d);
        }
    }
    if (rc == SQLITE_OK)
        set_error(d, NULL);
    pthread_mutex_unlock(&d->mu);
    replicator_close(old, 0);
    return rc;
}

replicator *
registry_replicator(ls_db *d)
{
    pthread_mutex_lock(&d->mu);
    replicator *r = d->rep;
    if (r)
        d->rep_users++;
    pthread_mutex_unlock(&d->mu);
    return r;
}

void
registry_replicator_done(ls_db *d, replicator *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&d->mu);
    if (--d->rep_users == 0)
        pthread_cond_broadcast(&d->rep_idle);
    pthread_mutex_unlock(&d->mu);
}

sidecar *
registry_sidecar(ls_db *d)
{
    return d->sc;
}

const char *
registry_path(ls_db *d)
{
    return d->zPath;
}

char *
registry_error(ls_db *d)
{
    pthread_mutex_lock(&d->mu);
    char *z = d->zError ? sqlite3_mprintf("%s", d->zError) : NULL;
    pthread_mutex_unlock(&d->mu);
    return z;
}

void
registry_note_error(ls_db *d, char *zErr)
{
    pthread_mutex_lock(&d->mu);
    if (d->rep)
        sqlite3_free(zErr); /* replicating after all: nothing to report */
    else
        set_error(d, zErr);
    pthread_mutex_unlock(&d->mu);
}

uint64_t
registry_full_images(ls_db *d)
{
    pthread_mutex_lock(&d->mu); /* the capture counts under it */
    uint64_t n = d->n_full;
    pthread_mutex_unlock(&d->mu);
    return n;
}

/*
 * fork(): every mutex is taken around it, so the child's copies are
 * consistent; in the child the replicators are dropped (their threads do
 * not exist there; their memory is abandoned) and a later open of the
 * database starts a fresh one.  SQLite itself forbids carrying a
 * connection across fork, so the child's own connections are new ones.
 */
/*
 * SQLite's own global mutexes that the extension's worker threads take
 * (the allocator's, the unix VFS's): held across fork, so that none is
 * copied locked into the child, whose first sqlite3_open() or
 * sqlite3_malloc() would then wait for ever.  Outer before inner: SQLite
 * allocates while holding the VFS mutex, never the other way round.
 */
static sqlite3_mutex *fork_mutex[2];

static void
atfork_prepare(void)
{
    pthread_mutex_lock(&registry_mu);
    for (ls_db *d = registry; d; d = d->next)
        pthread_mutex_lock(&d->mu);
    fork_mutex[0] = sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS1);
    fork_mutex[1] = sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_MEM);
    for (int i = 0; i < 2; i++)
        sqlite3_mutex_enter(fork_mutex[i]); /* NULL-safe: no mutexing */
}

static void
fork_mutex_leave(void)
{
    for (int i = 1; i >= 0; i--)
        sqlite3_mutex_leave(fork_mutex[i]);
}

static void
atfork_parent(void)
{
    fork_mutex_leave();
    for (ls_db *d = registry; d; d = d->next)
        pthread_mutex_unlock(&d->mu);
    pthread_mutex_unlock(&registry_mu);
}

static void
atfork_child(void)
{
    fork_mutex_leave();
    for (ls_db *d = registry; d; d = d->next) {
        d->rep = NULL;
        d->hold = 0;
        d->arena = NULL;
        if (d->sc)
            sidecar_after_fork(d->sc);
        pthread_mutex_unlock(&d->mu);
    }
    pthread_mutex_unlock(&registry_mu);
}

void
registry_init(const char *zVfs, registry_recapture_fn xRecapture)
{
    registry_vfs = zVfs;
    registry_recapture = xRecapture;
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}
