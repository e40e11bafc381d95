/*
 * storage/restore/v03.c: listing and restoring Litestream v0.3 replicas
 * (v03.h): object names, the listing, the choice of generation, snapshot
 * and WAL segments, and the restore's sequence (the bytes are applied by
 * v03_wal.c).
 *
 * Invariants:
 *   1. Only names v0.3 itself writes are read (16-hex generations, 8-hex
 *      indexes, 8- to 16-hex offsets, lowercase); anything else under
 *      generations/ is ignored, as v0.3 ignores it.
 *   2. A restore never applies a WAL index unless every index from the
 *      snapshot's on is there, each from offset 0 with contiguous segments
 *      (v03_wal.c checks the offsets against the bytes).
 *   3. Messages name the generation, index or object at fault and say what
 *      is available.
 *
 * Threads: the calling thread; the fetcher's pool downloads ahead.
 */
#include "storage/restore/v03.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/layout.h"
#include "storage/base/clock.h"
#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"
#include "storage/restore/fetch.h"

/* n lowercase hex digits at z, then the end of the digits; -1 if not. */
static int
hex_run(const char *z, int min, int max, uint64_t *v)
{
    int i = 0;

    *v = 0;
    for (; i < max &&
           ((z[i] >= '0' && z[i] <= '9') || (z[i] >= 'a' && z[i] <= 'f'));
         i++)
        *v = *v << 4 | (uint64_t)(z[i] <= '9' ? z[i] - '0' : z[i] - 'a' + 10);
    return i >= min ? i : -1;
}

int
v03_parse_key(const char *zKey, v03_obj *o)
{
    uint64_t v, w;
    int k;

    if (hex_run(zKey, 16, 16, &v) != 16 || zKey[16] != '/')
        return 0;
    memset(o, 0, sizeof(*o));
    memcpy(o->gen, zKey, 16);
    zKey += 17;
    if (strncmp(zKey, "snapshots/", 10) == 0) {
        zKey += 10;
        if (hex_run(zKey, 8, 8, &v) != 8 ||
            strcmp(zKey + 8, ".snapshot.lz4") != 0)
            return 0;
        o->snapshot = 1;
        o->index = (uint32_t)v;
        return 1;
    }
    if (strncmp(zKey, "wal/", 4) != 0)
        return 0;
    zKey += 4;
    if (hex_run(zKey, 8, 8, &v) != 8 || zKey[8] != '_')
        return 0;
    k = hex_run(zKey + 9, 8, 16, &w);
    if (k < 0 || strcmp(zKey + 9 + k, ".wal.lz4") != 0)
        return 0;
    o->index = (uint32_t)v;
    o->offset = w;
    return 1;
}

void
v03_key(const v03_obj *o, char *buf, size_t n)
{
    if (o->snapshot)
        snprintf(buf, n, V03_PREFIX "%s/snapshots/%08x.snapshot.lz4", o->gen,
                 o->index);
    else
        snprintf(buf, n, V03_PREFIX "%s/wal/%08x_%08llx.wal.lz4", o->gen,
                 o->index, (unsigned long long)o->offset);
}

static int
obj_cmp(const void *x, const void *y)
{
    const v03_obj *a = x, *b = y;
    int c = strcmp(a->gen, b->gen);

    if (c)
        return c;
    if (a->snapshot != b->snapshot)
        return b->snapshot - a->snapshot; /* snapshots first */
    if (a->index != b->index)
        return a->index < b->index ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Appends the parseable objects of a listing (keys prefixed by zPre). */
static int
add_objs(v03_obj **pA, int *pN, const backend_obj *objs, int n,
         const char *zPre)
{
    v03_obj *a = sqlite3_realloc64(*pA, sizeof(v03_obj) * (size_t)(*pN + n));

    if (a == NULL && *pN + n > 0)
        return SQLITE_NOMEM;
    *pA = a;
    for (int i = 0; i < n; i++) {
        char *z = sqlite3_mprintf("%s%s", zPre, objs[i].key);
        if (z == NULL)
            return SQLITE_NOMEM;
        if (v03_parse_key(z, &a[*pN])) {
            a[*pN].size = objs[i].size;
            a[*pN].created_ms = objs[i].created_ms;
            (*pN)++;
        }
        sqlite3_free(z);
    }
    return SQLITE_OK;
}

/* Without list_tree: the generation directories, then their two lists. */
static int
list_by_dirs(backend *b, v03_obj **pA, int *pN)
{
    static const char *const sub[] = {"snapshots/", "wal/"};
    backend_obj *g = NULL, *o = NULL;
    int ng = 0, no = 0, rc = backend_list_dirs(b, V03_PREFIX, &g, &ng);
    uint64_t v;

    for (int i = 0; i < ng && rc == SQLITE_OK; i++) {
        if (strlen(g[i].key) != 16 || hex_run(g[i].key, 16, 16, &v) != 16)
            continue;
        for (int s = 0; s < 2 && rc == SQLITE_OK; s++) {
            char *zPre = sqlite3_mprintf("%s/%s", g[i].key, sub[s]);
            char *zDir = zPre ? sqlite3_mprintf(V03_PREFIX "%s", zPre) : NULL;
            rc = zDir ? backend_list(b, zDir, &o, &no) : SQLITE_NOMEM;
            if (rc == SQLITE_OK)
                rc = add_objs(pA, pN, o, no, zPre);
            backend_objs_free(o, no);
            o = NULL;
            no = 0;
            sqlite3_free(zPre);
            sqlite3_free(zDir);
        }
    }
    backend_objs_free(g, ng);
    return rc;
}

int
v03_list(backend *b, v03_obj **out, int *n, char **pzErr)
{
    v03_obj *a = NULL;
    backend_obj *t = NULL;
    int na = 0, nt = 0, rc;

    *out = NULL;
    *n = 0;
    if (b->vt->list_tree) {
        rc = b->vt->list_tree(b, V03_PREFIX, &t, &nt);
        if (rc == SQLITE_OK)
            rc = add_objs(&a, &na, t, nt, "");
        backend_objs_free(t, nt);
    } else {
        rc = list_by_dirs(b, &a, &na);
    }
    if (rc == SQLITE_MISUSE) {
        *pzErr = sqlite3_mprintf("litestream: the '%s' backend cannot list "
                                 "the generations of a Litestream v0.3 "
                                 "replica",
                                 b->vt->name);
    } else if (rc == SQLITE_NOMEM) {
        *pzErr = sqlite3_mprintf("litestream: out of memory");
    } else if (rc != SQLITE_OK) {
        *pzErr =
            sqlite3_mprintf("litestream: cannot list '%s" V03_PREFIX "': %s",
                            backend_url(b), backend_why(b));
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(a);
        return rc;
    }
    if (na > 1)
        qsort(a, (size_t)na, sizeof(*a), obj_cmp);
    *out = a;
    *n = na;
    return SQLITE_OK;
}

void
v03_detect(backend *b, int *yes)
{
    ltx_info *l = NULL;
    v03_obj *a = NULL;
    char *zErr = NULL;
    int nl = 0, na = 0;

    *yes = 0;
    if (layout_list_all(b, &l, &nl) == SQLITE_OK && nl == 0 &&
        v03_list(b, &a, &na, &zErr) == SQLITE_OK && na > 0)
        *yes = 1;
    sqlite3_free(l);
    sqlite3_free(a);
    sqlite3_free(zErr);
}

/* ---- The choice ------------------------------------------------------- */

/* One generation: objects [lo, hi) of the sorted list, its time span. */
typedef struct v03_gen {
    int lo, hi;
    int64_t created, updated;
    int snapshots;
} v03_gen;

/* The generation of a[i..] (ending where the name changes). */
static v03_gen
gen_at(const v03_obj *a, int n, int i)
{
    v03_gen g = {i, i, a[i].created_ms, a[i].created_ms, 0};

    for (; g.hi < n && strcmp(a[g.hi].gen, a[i].gen) == 0; g.hi++) {
        if (a[g.hi].created_ms < g.created)
            g.created = a[g.hi].created_ms;
        if (a[g.hi].created_ms > g.updated)
            g.updated = a[g.hi].created_ms;
        g.snapshots += a[g.hi].snapshot;
    }
    return g;
}

/*
 * The generation to restore: latest (T 0) the one updated last; at T, of
 * those whose span holds T the one updated last, else the one updated last
 * before T.  Only generations with a snapshot count.  0 if none.
 */
static int
pick_gen(const v03_obj *a, int n, int64_t T, v03_gen *out)
{
    int found = 0, within = 0;

    for (int i = 0; i < n;) {
        v03_gen g = gen_at(a, n, i);
        int in = T == 0 || (g.created <= T && T <= g.updated);
        i = g.hi;
        if (g.snapshots == 0 || (T && !in && g.updated > T))
            continue;
        if (found &&
            (within > in || (within == in && g.updated <= out->updated)))
            continue;
        *out = g;
        found = 1;
        within = in;
    }
    return found;
}

static char *
at_text(int64_t ms, char *buf, size_t n)
{
    timefmt_time(ms, buf, n);
    return buf;
}

/* The snapshot of g to start from: the newest created by T (any if 0). */
static int
pick_snapshot(const v03_obj *a, const v03_gen *g, int64_t T, char **pzErr)
{
    int best = -1;
    char t1[40], t2[40];

    for (int i = g->lo; i < g->hi && a[i].snapshot; i++) {
        if (T && a[i].created_ms > T)
            continue;
        if (best < 0 || a[i].created_ms > a[best].created_ms ||
            (a[i].created_ms == a[best].created_ms &&
             a[i].index > a[best].index))
            best = i;
    }
    if (best < 0)
        *pzErr = sqlite3_mprintf("litestream: nothing to restore at %s in "
                                 "generation %s: its first snapshot was "
                                 "created at %s",
                                 at_text(T, t1, sizeof(t1)), a[g->lo].gen,
                                 at_text(a[g->lo].created_ms, t2, sizeof(t2)));
    return best;
}

/*
 * The WAL segments to apply after snapshot s: those of index >= its index,
 * in order, up to the first created after T.  Fills seg[] with their
 * positions in a; checks that no index is missing.
 */
static int
pick_segments(const v03_obj *a, const v03_gen *g, int s, int64_t T, int *seg,
              int *nseg, char **pzErr)
{
    uint32_t next = a[s].index;

    *nseg = 0;
    for (int i = g->lo; i < g->hi; i++) {
        if (a[i].snapshot || a[i].index < a[s].index)
            continue;
        if (T && a[i].created_ms > T)
            break;
        if (a[i].index != next && a[i].index != next - 1) {
            *pzErr = sqlite3_mprintf(
                "litestream: WAL index %08x of generation %s is missing "
                "(the snapshot is at index %08x, the next segment is of "
                "index %08x): the replica cannot be restored past it",
                next, a[i].gen, a[s].index, a[i].index);
            return SQLITE_CORRUPT;
        }
        if (a[i].index == next)
            next++;
        seg[(*nseg)++] = i;
    }
    return SQLITE_OK;
}

/* The generation, snapshot and segments of a restore. */
static int
v03_choose(const v03_obj *a, int n, int64_t T, int *snap, int *seg, int *nseg,
           char **pzErr)
{
    char t1[40], t2[40];
    int64_t now = clock_now_ms();
    v03_gen g;

    if (T > now) {
        *pzErr = sqlite3_mprintf("litestream: %s is in the future (now is %s)",
                                 at_text(T, t1, sizeof(t1)),
                                 at_text(now, t2, sizeof(t2)));
        return SQLITE_NOTFOUND;
    }
    if (!pick_gen(a, n, T, &g)) {
        int64_t first = INT64_MAX;
        for (int i = 0; i < n; i++)
            if (a[i].snapshot && a[i].created_ms < first)
                first = a[i].created_ms;
        *pzErr = first != INT64_MAX && T
                     ? sqlite3_mprintf("litestream: nothing to restore at or "
                                       "before %s: the earliest Litestream "
                                       "v0.3 snapshot was created at %s",
                                       at_text(T, t1, sizeof(t1)),
                                       at_text(first, t2, sizeof(t2)))
                     : sqlite3_mprintf("litestream: the Litestream v0.3 "
                                       "replica has no snapshot: nothing to "
                                       "restore");
        return SQLITE_NOTFOUND;
    }
    *snap = pick_snapshot(a, &g, T, pzErr);
    if (*snap < 0)
        return SQLITE_NOTFOUND;
    return pick_segments(a, &g, *snap, T, seg, nseg, pzErr);
}

/* ---- The restore ------------------------------------------------------ */

typedef struct v03_job {
    const v03_obj *a;
    int *idx; /* the objects read, in order: the snapshot, then segments */
    int nidx;
    char **keys;
    fetcher *f;
    v03_apply *ap;
    char *zErr;
} v03_job;

/* The fetch error of stream i if any, else the applier's message. */
static int
job_fail(v03_job *j, int i, int rc)
{
    const char *zFetch = fetch_stream_err(fetch_stream_at(j->f, i));

    sqlite3_free(j->zErr);
    j->zErr =
        zFetch ? sqlite3_mprintf("%s", zFetch) : v03_apply_take_err(j->ap);
    if (zFetch && rc != SQLITE_NOMEM)
        rc = SQLITE_IOERR;
    return rc;
}

/* Fetches and applies the chosen objects. */
static int
job_apply(v03_job *j, v03_result *res)
{
    int rc = v03_apply_snapshot(j->ap, fetch_read, fetch_stream_at(j->f, 0),
                                j->keys[0]);
    int open = 0;

    if (rc != SQLITE_OK)
        return job_fail(j, 0, rc);
    res->index = j->a[j->idx[0]].index;
    for (int k = 1; k < j->nidx; k++) {
        const v03_obj *o = &j->a[j->idx[k]];
        if (open && o->index != res->index && v03_apply_index_end(j->ap))
            return job_fail(j, k - 1, SQLITE_CORRUPT);
        if (!open || o->index != res->index)
            v03_apply_index_begin(j->ap, o->index);
        open = 1;
        res->index = o->index;
        rc = v03_apply_segment(j->ap, fetch_read, fetch_stream_at(j->f, k),
                               j->keys[k], o->offset);
        if (rc != SQLITE_OK)
            return job_fail(j, k, rc);
    }
    if (open && v03_apply_index_end(j->ap) != SQLITE_OK)
        return job_fail(j, j->nidx - 1, SQLITE_CORRUPT);
    v03_apply_state(j->ap, &res->page_size, &res->pages, &res->offset);
    return SQLITE_OK;
}

/* Object keys and sizes of the chosen objects; starts the fetcher. */
static int
job_start(v03_job *j, const struct ls_url *u, backend *b, int parallel)
{
    uint64_t *sizes = sqlite3_malloc64(sizeof(uint64_t) * (size_t)j->nidx);
    int rc = SQLITE_OK;

    j->keys = sqlite3_malloc64(sizeof(char *) * (size_t)j->nidx);
    if (j->keys)
        memset(j->keys, 0, sizeof(char *) * (size_t)j->nidx);
    for (int k = 0; k < j->nidx && j->keys && sizes; k++) {
        j->keys[k] = sqlite3_malloc(128);
        if (j->keys[k] == NULL)
            break;
        v03_key(&j->a[j->idx[k]], j->keys[k], 128);
        sizes[k] = j->a[j->idx[k]].size;
    }
    if (!sizes || !j->keys || !j->keys[j->nidx - 1]) {
        j->zErr = sqlite3_mprintf("litestream: out of memory");
        rc = SQLITE_NOMEM;
    } else {
        rc = fetch_open(u, b, (const char *const *)j->keys, sizes, j->nidx,
                        parallel, &j->f, &j->zErr);
    }
    sqlite3_free(sizes);
    return rc;
}

static void
job_free(v03_job *j)
{
    fetch_close(j->f);
    v03_apply_free(j->ap);
    for (int k = 0; j->keys && k < j->nidx; k++)
        sqlite3_free(j->keys[k]);
    sqlite3_free(j->keys);
    sqlite3_free(j->idx);
}

int
v03_restore(const struct ls_url *u, backend *b, int fd, const char *zTmp,
            uint64_t target_txid, int64_t target_ms, int parallel,
            v03_result *res, char **pzErr)
{
    v03_obj *a = NULL;
    v03_job j;
    int n = 0, snap = -1, rc;
    char *zScratch = NULL;

    memset(&j, 0, sizeof(j));
    memset(res, 0, sizeof(*res));
    if (target_txid) {
        *pzErr = sqlite3_mprintf("litestream: '%s' is a Litestream v0.3 "
                                 "replica, which has no TXIDs: restore its "
                                 "latest state or the state at a time",
                                 backend_url(b));
        return SQLITE_NOTFOUND;
    }
    rc = v03_list(b, &a, &n, &j.zErr);
    if (rc == SQLITE_OK && n == 0) {
        j.zErr = sqlite3_mprintf("litestream: replica is empty or does not "
                                 "exist (no LTX files or Litestream v0.3 "
                                 "generations under '%s'): check the URL",
                                 backend_url(b));
        rc = SQLITE_NOTFOUND;
    }
    j.a = a;
    j.idx = rc == SQLITE_OK ? sqlite3_malloc64(sizeof(int) * (size_t)(n + 1))
                            : NULL;
    if (rc == SQLITE_OK && j.idx == NULL) {
        j.zErr = sqlite3_mprintf("litestream: out of memory");
        rc = SQLITE_NOMEM;
    }
    if (rc == SQLITE_OK)
        rc = v03_choose(a, n, target_ms, &snap, j.idx + 1, &j.nidx, &j.zErr);
    if (rc == SQLITE_OK) {
        j.idx[0] = snap;
        j.nidx++;
        rc = job_start(&j, u, b, parallel);
    }
    zScratch = rc == SQLITE_OK ? sqlite3_mprintf("%s-v03", zTmp) : NULL;
    if (rc == SQLITE_OK)
        rc = zScratch ? v03_apply_open(fd, zScratch, &j.ap, &j.zErr)
                      : SQLITE_NOMEM;
    if (rc == SQLITE_OK)
        rc = job_apply(&j, res);
    if (rc == SQLITE_OK) {
        memcpy(res->gen, a[snap].gen, sizeof(res->gen));
        res->snapshot_index = a[snap].index;
        res->files = j.nidx;
        for (int k = 0; k < j.nidx; k++)
            if (a[j.idx[k]].created_ms > res->created_ms)
                res->created_ms = a[j.idx[k]].created_ms;
    }
    if (rc != SQLITE_OK && j.zErr == NULL)
        j.zErr = sqlite3_mprintf("litestream: v0.3 restore failed: %s",
                                 sqlite3_errstr(rc));
    *pzErr = rc == SQLITE_OK ? NULL : j.zErr;
    if (rc == SQLITE_OK)
        sqlite3_free(j.zErr);
    job_free(&j);
    sqlite3_free(zScratch);
    sqlite3_free(a);
    return rc;
}
