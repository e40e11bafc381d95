/*
 * storage/history/cpview.c: the compactor's picture of the replica during a
 * pass (cpview.h).
 *
 * Invariant: v->a stays sorted as layout_list_all() sorts it (by level,
 * then by (min, max)), which retention_plan() and compact_pick_run() rely
 * on.
 *
 * Threads: the compactor's task.
 */
#include "storage/history/cpview.h"

#include <string.h>

#include "storage/base/sqlite.h"

int
cpview_list(cp_view *v, backend *b, uint64_t txid)
{
    ltx_info *a = NULL;
    int n = 0;
    cpview_free(v);
    int rc = layout_list_all(b, &a, &n);
    if (rc != SQLITE_OK)
        return rc;
    v->a = a;
    v->n = v->cap = n;
    v->txid = txid;
    v->ok = 1;
    return SQLITE_OK;
}

void
cpview_free(cp_view *v)
{
    sqlite3_free(v->a);
    memset(v, 0, sizeof(*v));
}

/* Whether x sorts before y (level, then min, then max). */
static int
before(const ltx_info *x, const ltx_info *y)
{
    if (x->level != y->level)
        return x->level < y->level;
    if (x->min_txid != y->min_txid)
        return x->min_txid < y->min_txid;
    return x->max_txid < y->max_txid;
}

void
cpview_add(cp_view *v, const ltx_info *o)
{
    if (!v->ok)
        return;
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 16;
        ltx_info *a = sqlite3_realloc64(v->a, sizeof(*a) * (size_t)cap);
        if (!a) {
            cpview_free(v); /* listed again when next needed */
            return;
        }
        v->a = a;
        v->cap = cap;
    }
    int i = v->n;
    while (i > 0 && before(o, &v->a[i - 1]))
        i--;
    memmove(&v->a[i + 1], &v->a[i], sizeof(*v->a) * (size_t)(v->n - i));
    v->a[i] = *o;
    v->n++;
}

void
cpview_drop(cp_view *v, const ltx_info *del, int n)
{
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        int gone = 0;
        for (int j = 0; j < n && !gone; j++)
            gone = v->a[i].level == del[j].level &&
                   v->a[i].min_txid == del[j].min_txid &&
                   v->a[i].max_txid == del[j].max_txid;
        if (!gone)
            v->a[k++] = v->a[i];
    }
    v->n = k;
}

const ltx_info *
cpview_newest(const ltx_info *a, int n, int level)
{
    const ltx_info *best = NULL;
    for (int i = 0; i < n; i++)
        if (a[i].level == level && (!best || a[i].max_txid >= best->max_txid))
            best = &a[i];
    return best;
}

int
cpview_caught_up(const cp_view *v, int level)
{
    const ltx_info *dst = cpview_newest(v->a, v->n, level);
    for (int i = 0; i < v->n; i++)
        if (v->a[i].level == level - 1 &&
            (!dst || v->a[i].max_txid > dst->max_txid))
            return 0;
    return 1;
}

int64_t
cpview_next_deadline(const cp_view *v, const ls_pitr *o, int64_t now)
{
    const ltx_info *l1 = cpview_newest(v->a, v->n, 1);
    uint64_t covered = l1 ? l1->max_txid : 0;
    int64_t t = INT64_MAX;
    for (int i = 0; i < v->n; i++) {
        const ltx_info *f = &v->a[i];
        int64_t keep = PITR_OFF;
        if (f->level == 0 && f->max_txid <= covered)
            keep = o->l0_retention_ms;
        else if (f->level == LAYOUT_MAX_LEVEL)
            keep = o->snapshot_retention_ms;
        if (keep == PITR_OFF || o->l0_retention_ms == PITR_OFF)
            continue; /* kept for ever (retention off: nothing goes) */
        int64_t d = f->created_ms + keep + 1;
        if (d > now && d < t)
            t = d;
    }
    return t;
}
