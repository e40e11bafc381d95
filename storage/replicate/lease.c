/*
 * storage/replicate/lease.c: the writer lease on a replica path (lease.h;
 * docs/architecture.md 5.1).
 *
 * The lease is the object "lock.json" at the replica root (lease_doc.h).
 * One round (lease_round) reads it with its version and decides:
 *   - absent: create it (backend_put_if, condition "absent");
 *   - ours (our instance id): replace it (condition: its version);
 *   - released, expired, or left by this very database file (db_id: the
 *     machine's boot id, the file's device and inode; the sidecar's ship
 *     lock, which this process holds, already fences the processes that
 *     share the file): take it over, generation + 1;
 *   - anyone else's, live: refused, the holder named.
 * A held lease is renewed by replacing it with the version we wrote; if
 * that fails because someone else's lease is there, ours was taken over
 * (we were cut off past its expiry): the state is LOST for good, and this
 * replicator never uploads again, so the replica never receives TXIDs
 * from two databases interleaved.  A condition that fails races another
 * writer: the round reads again (three times at most).
 *
 * Invariants:
 *   1. lease_ok() allows an upload (busy) only while the lease is HELD and
 *      our last successful write was sent less than 2/3 of the TTL ago;
 *      renewals are due every 1/3, so a third of the TTL is left as margin
 *      for clock skew between hosts and for an upload already under way.
 *      Renewals stop once nothing was uploaded for two TTLs (an idle
 *      database sends nothing); the next upload renews first, and finds
 *      out then if another writer took the path meanwhile (LOST).
 *   2. One round at a time does I/O on l->be: the first claim and a
 *      renewal after idling on its replica's upload pass (lease_ok), the
 *      renewals otherwise on the lease's pool task, which is not due
 *      while those run (it sleeps while idle, and the claim precedes it);
 *      the state is written under mu; lease_close() after removing the
 *      task.
 *
 * Threads: see lease.h.
 */
#include "storage/replicate/lease.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/backend/backend.h"
#include "storage/base/clock.h"
#include "storage/base/pool.h"
#include "storage/base/rand.h"
#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"
#include "storage/replicate/lease_doc.h"
#include "storage/replicate/lease_opts.h"
#include "storage/replicate/replicator_int.h"

/* Renewals stop this long after the replicator last had work (2 TTLs): an
 * idle database sends no requests; its next upload renews first. */
#define LEASE_IDLE_MS(l) (2 * (l)->ttl_ms)

enum { L_CLAIMING, L_HELD, L_REFUSED, L_LOST, L_ERROR };
static const char *const state_name[] = {"claiming", "held", "refused", "lost",
                                         "error"};

struct lease {
    backend *be;
    char *zUrl; /* redacted, for messages */
    int64_t ttl_ms;
    int by_renewal;       /* renewals go to our renewal object ("rename") */
    char *zRenewKey;      /* that object's key */
    int64_t contested_ms; /* takeover_confirm(): ours not trusted before */
    lease_doc mine;       /* what we write (expires_ms set per write) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pool_task task;  /* the renewals (storage/base/pool.h) */
    int started;     /* the first round ran and the task was added */
    int64_t busy_ms; /* the replicator last had something to upload */
    int idle;        /* renewals stopped: nothing to upload for a while */
    /* Guarded by mu (written by the lease thread only). */
    int stop, want, state;
    uint64_t verdicts;
    char *zVer;       /* version of our lease object */
    int64_t sent_ms;  /* when our last successful write was sent */
    lease_doc holder; /* someone else's lease (refused, lost) */
    char *zErr;       /* why the last round failed (L_ERROR) */
    int64_t next_ms;  /* the next round */
};

/* ---- one round ---------------------------------------------------------- */

/* What a round found: the state it leads to. */
typedef struct round_out {
    int state;
    char *zVer;
    int64_t sent_ms;
    lease_doc holder;
    char *zErr;
} round_out;

/* An object's bytes as read (sqlite3_malloc'd; n 0 and p NULL: absent). */
typedef struct raw_doc {
    uint8_t *p;
    size_t n;
} raw_doc;

/* Writes our document (condition zVer, NULL: absent). */
static int
lease_write(lease *l, const char *zVer, int released, round_out *o)
{
    int64_t now = clock_now_ms();
    l->mine.expires_ms = released ? now : now + l->ttl_ms;
    l->mine.released = released;
    char *z = lease_doc_text(&l->mine);
    char *zNew = NULL;
    int rc = z ? backend_put_if(l->be, LEASE_KEY, z, strlen(z), zVer, &zNew)
               : SQLITE_NOMEM;
    sqlite3_free(z);
    if (rc == SQLITE_OK) {
        sqlite3_free(o->zVer);
        o->zVer = zNew;
        o->sent_ms = now;
        o->state = L_HELD;
    }
    return rc;
}

/* Whether doc may be taken over without waiting for its expiry. */
static int
lease_free(const lease *l, const lease_doc *d, int64_t now)
{
    if (d->released || d->expires_ms <= now)
        return 1;
    return d->zDbId && l->mine.zDbId && strcmp(d->zDbId, l->mine.zDbId) == 0;
}

/* Reads the lease; SQLITE_NOTFOUND when absent.  pRaw (may be NULL) gets
 * its bytes, to put back as they were (takeover_confirm). */
static int
lease_read(lease *l, lease_doc *d, char **pzVer, round_out *o, raw_doc *pRaw)
{
    uint8_t *p = NULL;
    size_t n = 0;
    char *zWhy = NULL;
    int rc = backend_get_ver(l->be, LEASE_KEY, &p, &n, pzVer);

    if (rc == SQLITE_OK && lease_doc_parse(p, n, d, &zWhy) != SQLITE_OK) {
        rc = SQLITE_CORRUPT;
        o->zErr = sqlite3_mprintf(
            "litestream: the writer lease '%s' on %s cannot be read (%s): no "
            "upload until it is fixed; if no other writer uses this path, "
            "delete it",
            LEASE_KEY, l->zUrl, zWhy ? zWhy : "out of memory");
    }
    sqlite3_free(zWhy);
    if (rc == SQLITE_OK && pRaw) {
        pRaw->p = p;
        pRaw->n = n;
        p = NULL;
    }
    sqlite3_free(p);
    return rc;
}

/* ---- renewals through a renewal object ("rename" backends) ------------- */

/*
 * On a backend whose conditions are exclusive renames (cond.c), replacing
 * lock.json renames it aside for a moment: a writer reading then finds it
 * absent and may create it.  So a holder never replaces it to renew:
 * lock.json stays as claimed, and each renewal writes the holder's renewal
 * object "lock.json.<instance>.renewal.tmp" (a plain put), then reads
 * lock.json to check it still names this holder.  A writer judging a lease
 * reads the holder's renewal object too (the later expiry counts); one
 * that takes an expired lease over reads it again after its swap and, if
 * it changed meanwhile (the holder renewed between the two reads), puts
 * the holder's lock.json back and is refused.  Either the holder's check
 * follows the swap (it sees the taker: lost) or its renewal precedes the
 * second read (the taker backs off).
 */

/* The renewal object's key for instance z (NULL: none, or not a plain
 * hexadecimal id: a name from a foreign document never becomes a path). */
static char *
renewal_key(const char *z)
{
    size_t n = z ? strlen(z) : 0;
    if (n == 0 || n > 32 || strspn(z, "0123456789abcdef") != n)
        return NULL;
    return sqlite3_mprintf("%s.%s.renewal.tmp", LEASE_KEY, z);
}

/* The renewal object of d's holder, raw (empty when absent or unknown);
 * o (may be NULL) gets the message of a failure. */
static int
renewal_get(lease *l, const lease_doc *d, raw_doc *r, round_out *o)
{
    char *zKey = renewal_key(d->zInstance);
    memset(r, 0, sizeof(*r));
    if (zKey == NULL)
        return SQLITE_OK;
    int rc = backend_get(l->be, zKey, 0, UINT64_MAX, &r->p, &r->n);
    if (rc == SQLITE_NOTFOUND)
        rc = SQLITE_OK;
    else if (rc != SQLITE_OK && o && !o->zErr)
        o->zErr = sqlite3_mprintf("litestream: cannot read the writer "
                                  "lease's renewal object '%s' on %s: %s",
                                  zKey, l->zUrl, backend_why(l->be));
    sqlite3_free(zKey);
    return rc;
}

/* d as its renewal object r extends it: the later expiry, released if
 * either says so.  An unreadable or foreign renewal object is ignored. */
static void
renewal_merge(lease_doc *d, const raw_doc *r)
{
    lease_doc h = {0};
    if (r->p && lease_doc_parse(r->p, r->n, &h, NULL) == SQLITE_OK &&
        h.zInstance && d->zInstance && strcmp(h.zInstance, d->zInstance) == 0) {
        if (h.expires_ms > d->expires_ms)
            d->expires_ms = h.expires_ms;
        d->released |= h.released;
    }
    lease_doc_clear(&h);
}

static int
raw_same(const raw_doc *a, const raw_doc *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

static void
raw_clear(raw_doc *r)
{
    sqlite3_free(r->p);
    memset(r, 0, sizeof(*r));
}

/*
 * A renewal by the holder: our renewal object, then lock.json checked.
 * SQLITE_OK with o's verdict (held, or lost to its holder); SQLITE_CONSTRAINT
 * when lock.json is absent (the caller decides); another code on failure.
 */
static int
renew_by_object(lease *l, int released, round_out *o)
{
    int64_t now = clock_now_ms();
    l->mine.expires_ms = released ? now : now + l->ttl_ms;
    l->mine.released = released;
    char *z = lease_doc_text(&l->mine);
    int rc =
        z ? backend_put(l->be, l->zRenewKey, z, strlen(z), now) : SQLITE_NOMEM;
    sqlite3_free(z);
    if (rc != SQLITE_OK || released)
        return rc;
    lease_doc d = {0};
    char *zVer = NULL;
    rc = lease_read(l, &d, &zVer, o, NULL);
    if (rc == SQLITE_NOTFOUND) {
        rc = SQLITE_CONSTRAINT;
    } else if (rc == SQLITE_OK && d.zInstance &&
               strcmp(d.zInstance, l->mine.zInstance) == 0) {
        sqlite3_free(o->zVer);
        o->zVer = zVer; /* unchanged since the claim */
        zVer = NULL;
        o->sent_ms = now;
        o->state = L_HELD;
        l->contested_ms = 0;
    } else if (rc == SQLITE_OK) {
        o->state = L_LOST;
        o->holder = d;
        memset(&d, 0, sizeof(d));
    }
    lease_doc_clear(&d);
    sqlite3_free(zVer);
    return rc;
}

/* The verdict while our lease is contested (l->contested_ms). */
static int
contested(lease *l, round_out *o)
{
    o->state = L_ERROR;
    o->zErr = sqlite3_mprintf("litestream: the writer lease on %s is "
                              "contested: no upload until its previous "
                              "holder's time has surely run out",
                              l->zUrl);
    return SQLITE_OK;
}

/*
 * After taking d's lease over (raw: lock.json as it was; before: d's
 * renewal object as read before the swap; o->zVer: our lock.json's
 * version): if d's holder renewed meanwhile, or that cannot be told, its
 * lock.json goes back and o says refused.  If it cannot be put back, the
 * lease counts as contested for a TTL (the old holder may believe in its
 * own that long): no claim meanwhile, o says error.
 */
static int
takeover_confirm(lease *l, lease_doc *d, const raw_doc *raw,
                 const raw_doc *before, round_out *o)
{
    raw_doc after;
    int rc = renewal_get(l, d, &after, NULL);
    int renewed = rc != SQLITE_OK || !raw_same(before, &after);
    if (rc == SQLITE_OK && renewed) {
        renewal_merge(d, &after);
        renewed = !d->released && d->expires_ms > clock_now_ms();
    }
    raw_clear(&after);
    if (!renewed) {
        char *zKey = renewal_key(d->zInstance);
        if (zKey) /* the old holder's: no longer of use */
            backend_del(l->be, (const char *const *)&zKey, 1);
        sqlite3_free(zKey);
        return SQLITE_OK;
    }
    char *zVer = NULL;
    rc = backend_put_if(l->be, LEASE_KEY, raw->p, raw->n, o->zVer, &zVer);
    sqlite3_free(zVer);
    if (rc == SQLITE_OK) {
        o->state = L_REFUSED;
        o->holder = *d;
        memset(d, 0, sizeof(*d));
        return SQLITE_OK;
    }
    /* Not given back (an error, or lock.json changed again meanwhile):
     * whoever holds it now, the old holder may believe in its lease for a
     * TTL yet. */
    l->contested_ms = clock_now_ms() + l->ttl_ms;
    return contested(l, o);
}

/*
 * One decision on what the object holds now.  SQLITE_CONSTRAINT: a race,
 * read again; another code: o says the verdict or the error.
 */
static int
lease_decide(lease *l, int held, round_out *o)
{
    lease_doc d = {0};
    char *zVer = NULL;
    raw_doc raw = {0}, renewed = {0};
    int64_t now = clock_now_ms();
    if (!held && now < l->contested_ms)
        return contested(l, o); /* takeover_confirm(): no round meanwhile */
    int rc = lease_read(l, &d, &zVer, o, l->by_renewal ? &raw : NULL);

    if (rc == SQLITE_NOTFOUND) {
        /* Absent while held: moved aside by a writer taking it over
         * (cond.c), or deleted; ours to create again only while valid. */
        if (held && now >= l->sent_ms + l->ttl_ms) {
            o->state = L_LOST;
            rc = SQLITE_OK;
        } else {
            if (!held) {
                l->mine.since_ms = now;
                l->mine.generation = 1; /* as Litestream's first */
            }
            rc = lease_write(l, NULL, 0, o);
        }
    } else if (rc == SQLITE_OK) {
        int ours = d.zInstance && strcmp(d.zInstance, l->mine.zInstance) == 0;
        if (!ours && !held && l->by_renewal &&
            (rc = renewal_get(l, &d, &renewed, o)) == SQLITE_OK)
            renewal_merge(&d, &renewed);
        if (rc != SQLITE_OK) {
            /* the holder's renewal object could not be read (o says) */
        } else if (ours && !held && l->by_renewal && !l->contested_ms) {
            /* Our own lease found while not holding it: a write of ours
             * that landed though it failed here, or a takeover never
             * confirmed.  Its previous holder may still believe in its
             * own for a TTL. */
            l->contested_ms = now + l->ttl_ms;
            rc = contested(l, o);
        } else if (ours && l->by_renewal) {
            rc = renew_by_object(l, 0, o);
        } else if (ours || (!held && lease_free(l, &d, now))) {
            if (!ours) {
                l->mine.generation = d.generation + 1;
                l->mine.since_ms = now;
            }
            rc = lease_write(l, zVer, 0, o);
            if (rc == SQLITE_OK && !ours && l->by_renewal)
                rc = takeover_confirm(l, &d, &raw, &renewed, o);
        } else {
            o->state = held ? L_LOST : L_REFUSED;
            o->holder = d;
            memset(&d, 0, sizeof(d));
        }
    }
    lease_doc_clear(&d);
    sqlite3_free(zVer);
    raw_clear(&raw);
    raw_clear(&renewed);
    return rc;
}

/* One round: renew (held) or claim. */
static void
lease_round(lease *l, int held, round_out *o)
{
    int rc = SQLITE_CONSTRAINT, i;

    memset(o, 0, sizeof(*o));
    o->state = L_ERROR;
    if (held)
        rc = l->by_renewal ? renew_by_object(l, 0, o)
                           : lease_write(l, l->zVer, 0, o);
    for (i = 0; i < 3 && rc == SQLITE_CONSTRAINT; i++) {
        lease_doc_clear(&o->holder);
        sqlite3_free(o->zVer);
        o->zVer = NULL;
        o->state = L_ERROR; /* each decision says its own */
        rc = lease_decide(l, held, o);
    }
    if (rc == SQLITE_OK || o->zErr)
        return;
    o->state = L_ERROR;
    o->zErr =
        rc == SQLITE_CONSTRAINT
            ? sqlite3_mprintf("litestream: the writer lease '%s' on %s keeps "
                              "changing under this writer: retrying",
                              LEASE_KEY, l->zUrl)
            : sqlite3_mprintf("litestream: cannot check the writer lease "
                              "'%s' on %s: %s",
                              LEASE_KEY, l->zUrl, backend_why(l->be));
}

/* ---- the thread ---------------------------------------------------------- */

/* Takes the round's verdict (mu held). */
static void
lease_apply(lease *l, int held, round_out *o, int64_t now)
{
    int64_t third = l->ttl_ms / 3;
    sqlite3_free(l->zErr);
    l->zErr = o->zErr;
    lease_doc_clear(&l->holder);
    l->holder = o->holder;
    if (o->state == L_HELD) {
        sqlite3_free(l->zVer);
        l->zVer = o->zVer;
        l->sent_ms = o->sent_ms;
        l->state = L_HELD;
        l->next_ms = o->sent_ms + third;
        return;
    }
    sqlite3_free(o->zVer);
    /* A failed renewal keeps the lease (it may still be ours) until its
     * time runs out: lease_ok() stops uploads at 2/3 of it. */
    l->state = held && o->state == L_ERROR ? L_HELD : o->state;
    l->next_ms = now + (o->state == L_ERROR ? 1000 : third);
    if (o->state == L_REFUSED && l->holder.expires_ms > now &&
        l->holder.expires_ms + 100 < l->next_ms)
        l->next_ms = l->holder.expires_ms + 100;
}

/* The renewals: a pool task whose heavy pass runs a round when due. */
static void
lease_pass(void *ctx, int heavy, int64_t due[2])
{
    lease *l = ctx;
    due[POOL_LIGHT] = POOL_NEVER;
    pthread_mutex_lock(&l->mu);
    int64_t now = clock_now_ms();
    if (heavy && !l->stop && l->state == L_HELD && now >= l->next_ms &&
        now - l->busy_ms > LEASE_IDLE_MS(l)) {
        l->idle = 1; /* let it lapse: lease_ok() renews before the next
                      * upload */
    } else if (heavy && !l->stop && l->state != L_LOST && now >= l->next_ms) {
        int held = l->state == L_HELD;
        round_out o;
        pthread_mutex_unlock(&l->mu);
        lease_round(l, held, &o);
        pthread_mutex_lock(&l->mu);
        lease_apply(l, held, &o, clock_now_ms());
        l->verdicts++;
        pthread_cond_broadcast(&l->cv);
    }
    due[POOL_HEAVY] =
        l->stop || l->idle || l->state == L_LOST ? POOL_NEVER : l->next_ms;
    pthread_mutex_unlock(&l->mu);
}

/* ---- API ----------------------------------------------------------------- */

/* The holder as a phrase: "database '/x.db' on host h (pid 1, since T)". */
static char *
holder_text(const lease_doc *d)
{
    char zSince[40];
    if (d->zDatabase && d->zHost)
        return sqlite3_mprintf(
            "database '%s' on host %s (pid %lld, holding it since %s)",
            d->zDatabase, d->zHost, (long long)d->pid,
            timefmt_time(d->since_ms, zSince, sizeof(zSince)));
    return sqlite3_mprintf("%s", d->zOwner ? d->zOwner : "an unnamed writer");
}

/* Why lease_ok() says no (mu held). */
static char *
lease_why(lease *l)
{
    char zTtl[32];
    char *zWho = NULL, *z = NULL;
    timefmt_duration(l->ttl_ms, zTtl, sizeof(zTtl));
    switch (l->state) {
    case L_REFUSED:
        zWho = holder_text(&l->holder);
        z = sqlite3_mprintf(
            "litestream: the replica %s is held by another writer, %s: this "
            "database is not uploaded there (its writes go on locally); close "
            "that writer (if it crashed, its lease expires %s after its last "
            "renewal) or point this database at another path",
            l->zUrl, zWho, zTtl);
        break;
    case L_LOST:
        zWho = holder_text(&l->holder);
        z = sqlite3_mprintf(
            "litestream: the writer lease on %s was taken over by %s after "
            "this writer could not renew it for %s: this process stopped "
            "uploading there so that TXIDs never interleave; point this "
            "database at another path, or open it again once that writer is "
            "gone",
            l->zUrl, zWho, zTtl);
        break;
    case L_HELD:
        /* No running count in it: the status reports a message once. */
        z = sqlite3_mprintf("litestream: the writer lease on %s could not "
                            "be renewed within %s: uploads wait until it is "
                            "(%s)",
                            l->zUrl, zTtl, l->zErr ? l->zErr : "no answer");
        break;
    case L_ERROR:
        z = sqlite3_mprintf("%s", l->zErr ? l->zErr : "litestream: error");
        break;
    default:
        z = sqlite3_mprintf("litestream: the writer lease on %s is still "
                            "being claimed",
                            l->zUrl);
    }
    sqlite3_free(zWho);
    return z;
}

/* One round on the caller's thread (mu held, released meanwhile). */
static void
lease_round_here(lease *l, int held)
{
    round_out o;
    pthread_mutex_unlock(&l->mu);
    lease_round(l, held, &o);
    pthread_mutex_lock(&l->mu);
    lease_apply(l, held, &o, clock_now_ms());
    l->verdicts++;
}

int
lease_ok(lease *l, int busy, char **pzWhy)
{
    int ok;
    *pzWhy = NULL;
    if (l == NULL)
        return 1;
    pthread_mutex_lock(&l->mu);
    if (!l->started) {
        /* The claim runs here, on the replica's upload pass (which may use the
         * network): waiting for a pool worker from a pool worker could
         * wait for ever.  Renewals are a pool task from then on. */
        char *zErr = NULL;
        if (!busy) {
            pthread_mutex_unlock(&l->mu);
            return 0; /* nothing to upload: no claim yet */
        }
        l->busy_ms = clock_now_ms();
        lease_round_here(l, 0);
        int64_t due[2] = {POOL_NEVER, l->next_ms};
        l->started =
            pool_add(&l->task, lease_pass, l, POOL_FG, due, &zErr) == SQLITE_OK;
        if (!l->started) {
            pthread_mutex_unlock(&l->mu);
            *pzWhy = zErr ? zErr
                          : sqlite3_mprintf("litestream: cannot schedule the "
                                            "writer lease's renewals");
            return 0;
        }
    } else if (busy) {
        int64_t now = clock_now_ms();
        l->busy_ms = now;
        /* Lapsed while idle: renewed before anything is written (while
         * the task sleeps, so one round at a time: invariant 2). */
        if (l->idle && l->state == L_HELD &&
            now >= l->sent_ms + l->ttl_ms * 2 / 3)
            lease_round_here(l, 1);
        if (l->idle) {
            l->idle = 0;
            pool_wake(&l->task, POOL_HEAVY);
        }
    }
    /* Idle, a held lease stays ours until someone else takes it: the next
     * upload finds out (lost).  Busy, it must be fresh. */
    int64_t now = clock_now_ms();
    ok = l->state == L_HELD && (!busy || now < l->sent_ms + l->ttl_ms * 2 / 3);
    if (!ok)
        *pzWhy = lease_why(l);
    pthread_mutex_unlock(&l->mu);
    return ok;
}

int
rep_lease_check(rep_target *t, int busy)
{
    replicator *r = t->r;
    char *zWhy = NULL;
    if (lease_ok(t->lease, busy, &zWhy))
        return 1;
    pthread_mutex_lock(&r->mu);
    int same = zWhy && t->last_error && strcmp(zWhy, t->last_error) == 0;
    pthread_mutex_unlock(&r->mu);
    if (same || zWhy == NULL)
        sqlite3_free(zWhy);
    else
        rep_error(r, t, zWhy); /* once per distinct message */
    return 0;
}

/* The holder's members for the status. */
static json_t *
holder_json(const lease_doc *d)
{
    char z[40];
    int bad = 0;
    json_t *o = json_object();
    ls_json_set(o, "owner", ls_json_text(d->zOwner), &bad);
    ls_json_set(o, "host", ls_json_text(d->zHost), &bad);
    ls_json_set(o, "pid", json_integer(d->pid), &bad);
    ls_json_set(o, "database", ls_json_text(d->zDatabase), &bad);
    ls_json_set(o, "since",
                d->since_ms
                    ? ls_json_text(timefmt_time(d->since_ms, z, sizeof(z)))
                    : json_null(),
                &bad);
    ls_json_set(o, "expires_at",
                ls_json_text(timefmt_time(d->expires_ms, z, sizeof(z))), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int
lease_status(lease *l, json_t *o)
{
    char z[40];
    int bad = 0;
    json_t *j = json_object();
    if (l == NULL) {
        ls_json_set(j, "state", ls_json_text("off"), &bad);
        ls_json_set(o, "lease", j, &bad);
        return bad ? SQLITE_NOMEM : SQLITE_OK;
    }
    pthread_mutex_lock(&l->mu);
    int s = l->state;
    ls_json_set(j, "state", ls_json_text(state_name[s]), &bad);
    ls_json_set(j, "conditions", ls_json_text(backend_cond_kind(l->be)), &bad);
    ls_json_set(j, "ttl_ms", json_integer(l->ttl_ms), &bad);
    ls_json_set(j, "instance", ls_json_text(l->mine.zInstance), &bad);
    ls_json_set(j, "expires_at",
                s == L_HELD ? ls_json_text(timefmt_time(l->sent_ms + l->ttl_ms,
                                                        z, sizeof(z)))
                            : json_null(),
                &bad);
    ls_json_set(j, "holder",
                s == L_REFUSED || s == L_LOST ? holder_json(&l->holder)
                                              : json_null(),
                &bad);
    pthread_mutex_unlock(&l->mu);
    ls_json_set(o, "lease", j, &bad);
    return bad ? SQLITE_NOMEM : SQLITE_OK;
}

int
lease_open(const ls_url *u, const char *zDbPath, lease **out, char **pzErr)
{
    char zHost[256];
    int off, rc;
    int64_t ttl;
    *out = NULL;
    rc = lease_opts_params(u, &off, &ttl, pzErr);
    if (rc != SQLITE_OK || off)
        return rc;
    lease *l = sqlite3_malloc64(sizeof(*l));
    if (l == NULL)
        return SQLITE_NOMEM;
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->ttl_ms = ttl;
    if (gethostname(zHost, sizeof(zHost)) != 0)
        zHost[0] = 0;
    zHost[sizeof(zHost) - 1] = 0;
    l->mine.pid = (int64_t)getpid();
    l->mine.zHost = sqlite3_mprintf("%s", zHost[0] ? zHost : "localhost");
    l->mine.zOwner =
        sqlite3_mprintf("%s:%lld", l->mine.zHost, (long long)l->mine.pid);
    l->mine.zInstance = sqlite3_mprintf(
        "%016llx", (unsigned long long)(ls_rand64() ^ (uint64_t)getpid() ^
                                        (uint64_t)clock_now_ms() << 20));
    l->mine.zDatabase = sqlite3_mprintf("%s", zDbPath);
    l->mine.zDbId = lease_opts_db_id(zDbPath);
    l->zUrl = sqlite3_mprintf("%s", u->redacted);
    rc = l->mine.zHost && l->mine.zOwner && l->mine.zInstance &&
                 l->mine.zDatabase && l->zUrl
             ? backend_open_url(u, &l->be, pzErr)
             : SQLITE_NOMEM;
    if (rc == SQLITE_OK &&
        strcmp(backend_cond_kind(l->be), "rename") == 0) { /* see above */
        l->by_renewal = 1;
        l->zRenewKey = renewal_key(l->mine.zInstance);
        rc = l->zRenewKey ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK) {
        lease_close(l);
        return rc;
    }
    *out = l;
    return SQLITE_OK;
}

void
lease_close(lease *l)
{
    if (l == NULL)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_mutex_unlock(&l->mu);
        pool_remove(&l->task); /* its pass, if running, ends first */
    }
    if (l->state == L_HELD && l->be) {
        round_out o;
        memset(&o, 0, sizeof(o));
        /* released: free to take.  On "rename" backends through the
         * renewal object only: replacing lock.json would leave it absent
         * for a moment, and another writer reading then would create it
         * while a holder may be alive (ours may have been taken over). */
        if (l->by_renewal)
            renew_by_object(l, 1, &o);
        else
            lease_write(l, l->zVer, 1, &o);
        sqlite3_free(o.zVer);
    }
    backend_close(l->be);
    lease_doc_clear(&l->mine);
    lease_doc_clear(&l->holder);
    sqlite3_free(l->zVer);
    sqlite3_free(l->zErr);
    sqlite3_free(l->zUrl);
    sqlite3_free(l->zRenewKey);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    sqlite3_free(l);
}
