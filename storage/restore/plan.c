/*
 * storage/restore/plan.c: the restore plan (restore.h, docs/ltx-format.md 2.4).
 *
 * Works on one listing of all levels (layout_list_all), so a plan is
 * computed from a single consistent view and costs ten LIST calls.  When
 * no plan reaches the target, the messages say what does exist: the
 * nearest restorable TXIDs, the gap, the oldest creation time.
 *
 * A TXID t is restorable when a chain of objects covers 1..t exactly
 * (contiguous or overlapping, ending at t).  The greedy plan finds such a
 * chain whenever one exists: at every step its position is at least that
 * of any chain, so the object ending a chain at t still qualifies.
 *
 * Threads: the thread owning the backend handle.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/base/clock.h"
#include "storage/ltx/ltx.h"
#include "storage/restore/restore.h"
#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"

static int
plan_err(char **pzErr, int rc, const char *zFmt, ...)
{
    va_list ap;

    if (pzErr) {
        va_start(ap, zFmt);
        *pzErr = sqlite3_vmprintf(zFmt, ap);
        va_end(ap);
    }
    return rc;
}

static int
plan_eligible(const ltx_info *f, uint64_t target_txid, int64_t target_ms)
{
    return (target_txid == 0 || f->max_txid <= target_txid) &&
           (target_ms == 0 || f->created_ms <= target_ms);
}

/* The newest eligible level-9 snapshot, or NULL. */
static const ltx_info *
plan_snapshot(const ltx_info *a, int n, uint64_t target_txid, int64_t target_ms)
{
    const ltx_info *best = NULL;
    int i;

    for (i = 0; i < n; i++) {
        const ltx_info *f = &a[i];
        if (f->level != LAYOUT_MAX_LEVEL || f->min_txid != 1 ||
            !plan_eligible(f, target_txid, target_ms))
            continue;
        if (best == NULL || f->max_txid >= best->max_txid)
            best = f;
    }
    return best;
}

/*
 * The object of levels 8..0 extending cur the furthest (ties: smaller min,
 * then higher level), or NULL.  a is grouped by ascending level, so walking
 * it backwards visits levels 8..0 and keeps the higher level on a tie.
 */
static const ltx_info *
plan_next(const ltx_info *a, int n, uint64_t cur, uint64_t target_txid,
          int64_t target_ms)
{
    const ltx_info *best = NULL;
    int i;

    for (i = n - 1; i >= 0; i--) {
        const ltx_info *f = &a[i];
        if (f->level >= LAYOUT_MAX_LEVEL || f->min_txid > cur + 1 ||
            f->max_txid <= cur || !plan_eligible(f, target_txid, target_ms))
            continue;
        if (best == NULL || f->max_txid > best->max_txid ||
            (f->max_txid == best->max_txid && f->min_txid < best->min_txid))
            best = f;
    }
    return best;
}

static int
info_by_max(const void *pa, const void *pb)
{
    const ltx_info *a = pa, *b = pb;
    if (a->max_txid != b->max_txid)
        return a->max_txid < b->max_txid ? -1 : 1;
    if (a->min_txid != b->min_txid)
        return a->min_txid < b->min_txid ? -1 : 1;
    return 0;
}

/*
 * Message for a target TXID that no chain ends at: the nearest restorable
 * TXIDs below and above it.
 */
static int
plan_err_nearest(const ltx_info *a, int n, uint64_t target, char **pzErr)
{
    ltx_info *s = sqlite3_malloc64(sizeof(ltx_info) * (size_t)n);
    uint64_t *r = sqlite3_malloc64(sizeof(uint64_t) * (size_t)n);
    uint64_t lo = 0, hi = 0;
    int nr = 0, i, j, rc = SQLITE_NOTFOUND;

    if (s == NULL || r == NULL) {
        rc = plan_err(pzErr, SQLITE_NOMEM, "litestream: out of memory");
        goto out;
    }
    memcpy(s, a, sizeof(ltx_info) * (size_t)n);
    qsort(s, (size_t)n, sizeof(ltx_info), info_by_max);
    for (i = 0; i < n; i++) { /* r: restorable TXIDs, ascending */
        int ok = s[i].min_txid == 1;
        for (j = nr - 1; j >= 0 && !ok; j--)
            if (r[j] < s[i].max_txid) {
                ok = r[j] + 1 >= s[i].min_txid;
                break;
            }
        if (ok && (nr == 0 || r[nr - 1] != s[i].max_txid))
            r[nr++] = s[i].max_txid;
    }
    for (i = 0; i < nr; i++) {
        if (r[i] < target)
            lo = r[i];
        else if (r[i] > target && hi == 0)
            hi = r[i];
    }
    if (lo && hi)
        rc = plan_err(pzErr, rc,
                      "litestream: TXID %016llx is not a "
                      "restorable point; nearest available: %016llx and "
                      "%016llx",
                      (unsigned long long)target, (unsigned long long)lo,
                      (unsigned long long)hi);
    else if (lo || hi)
        rc = plan_err(pzErr, rc,
                      "litestream: TXID %016llx is not a "
                      "restorable point; nearest available: %016llx%s",
                      (unsigned long long)target,
                      (unsigned long long)(lo ? lo : hi),
                      lo ? " (the latest)" : " (the earliest)");
    else
        rc = plan_err(pzErr, rc,
                      "litestream: TXID %016llx is not a "
                      "restorable point; the replica has none",
                      (unsigned long long)target);
out:
    sqlite3_free(s);
    sqlite3_free(r);
    return rc;
}

/* Checks a finished plan against the target; SQLITE_OK or the error. */
static int
plan_check(const ltx_info *a, int n, const restore_plan *plan,
           uint64_t target_txid, int64_t target_ms, char **pzErr)
{
    uint64_t cur = plan->txid, next = 0;
    int64_t oldest = INT64_MAX;
    char t1[48], t2[48];
    int i;

    for (i = 0; i < n; i++)
        if (a[i].min_txid == 1 && a[i].created_ms < oldest)
            oldest = a[i].created_ms;
    if (oldest == INT64_MAX) {
        uint64_t first = a[0].min_txid;
        for (i = 1; i < n; i++)
            if (a[i].min_txid < first)
                first = a[i].min_txid;
        return plan_err(pzErr, SQLITE_CORRUPT,
                        "litestream: replica has no "
                        "snapshot: no LTX file starts at TXID "
                        "0000000000000001 (the earliest starts at %016llx)",
                        (unsigned long long)first);
    }
    if (target_txid)
        return cur == target_txid ? SQLITE_OK
                                  : plan_err_nearest(a, n, target_txid, pzErr);
    if (target_ms)
        return plan->n > 0
                   ? SQLITE_OK
                   : plan_err(pzErr, SQLITE_NOTFOUND,
                              "litestream: nothing "
                              "to restore at or before %s: the earliest "
                              "restorable point was created at %s",
                              timefmt_time(target_ms, t1, sizeof(t1)),
                              timefmt_time(oldest, t2, sizeof(t2)));
    for (i = 0; i < n; i++)
        if (a[i].min_txid > cur + 1 && (next == 0 || a[i].min_txid < next))
            next = a[i].min_txid;
    if (next)
        return plan_err(pzErr, SQLITE_CORRUPT,
                        "litestream: replica has a gap "
                        "after TXID %016llx: next file starts at %016llx",
                        (unsigned long long)cur, (unsigned long long)next);
    return SQLITE_OK;
}

/*
 * A time target must be met exactly: not in the future, and the object
 * after the plan's end must not be a compacted one (level >= 1) with no
 * level-0 object beside it, since it may hold transactions committed
 * before the target (their own objects were compacted away).
 */
static int
plan_check_time(const ltx_info *a, int n, const restore_plan *plan,
                int64_t target_ms, int64_t now_ms, char **pzErr)
{
    const ltx_info *last = &plan->files[plan->n - 1], *next;
    char t1[48], t2[48], t3[48];
    int i, l0 = 0;

    next = plan_next(a, n, plan->txid, 0, 0);
    if (target_ms > now_ms + 1000)
        return plan_err(
            pzErr, SQLITE_NOTFOUND,
            "litestream: %s is in the "
            "future (now is %s); the latest restorable point is "
            "TXID %016llx, created at %s",
            timefmt_time(target_ms, t1, sizeof(t1)),
            timefmt_time(now_ms, t2, sizeof(t2)),
            (unsigned long long)(next ? next->max_txid : plan->txid),
            timefmt_time(next ? next->created_ms : last->created_ms, t3,
                         sizeof(t3)));
    if (next == NULL || next->level == 0)
        return SQLITE_OK;
    for (i = 0; i < n && !l0; i++) /* an upload holding TXID txid+1 */
        l0 = a[i].level == 0 && a[i].min_txid <= plan->txid + 1 &&
             a[i].max_txid > plan->txid;
    if (l0)
        return SQLITE_OK;
    return plan_err(pzErr, SQLITE_NOTFOUND,
                    "litestream: the state at %s "
                    "was compacted away (no object boundary there); nearest "
                    "available: TXID %016llx created at %s and TXID %016llx "
                    "created at %s",
                    timefmt_time(target_ms, t1, sizeof(t1)),
                    (unsigned long long)plan->txid,
                    timefmt_time(last->created_ms, t2, sizeof(t2)),
                    (unsigned long long)next->max_txid,
                    timefmt_time(next->created_ms, t3, sizeof(t3)));
}

int
restore_plan_list(const ltx_info *a, int n, const char *zWhere,
                  uint64_t target_txid, int64_t target_ms, int64_t now_ms,
                  restore_plan *plan, char **pzErr)
{
    const ltx_info *f;
    uint64_t cur = 0;
    int rc;

    memset(plan, 0, sizeof(*plan));
    if (pzErr)
        *pzErr = NULL;
    if (target_txid)
        target_ms = 0;
    if (n == 0)
        return plan_err(pzErr, SQLITE_NOTFOUND,
                        "litestream: replica is "
                        "empty or does not exist (no LTX files under '%s'): "
                        "check the URL",
                        zWhere);
    plan->files = sqlite3_malloc64(sizeof(ltx_info) * (size_t)n);
    if (plan->files == NULL)
        return plan_err(pzErr, SQLITE_NOMEM, "litestream: out of memory");
    f = plan_snapshot(a, n, target_txid, target_ms);
    if (f == NULL) /* no snapshot: the chain must start at TXID 1 */
        f = plan_next(a, n, 0, target_txid, target_ms);
    while (f != NULL) {
        plan->files[plan->n++] = *f;
        cur = f->max_txid;
        if (target_txid && cur >= target_txid)
            break;
        f = plan_next(a, n, cur, target_txid, target_ms);
    }
    plan->txid = cur;
    rc = plan_check(a, n, plan, target_txid, target_ms, pzErr);
    if (rc == SQLITE_OK && target_ms)
        rc = plan_check_time(a, n, plan, target_ms, now_ms, pzErr);
    if (rc != SQLITE_OK)
        restore_plan_free(plan);
    return rc;
}

/* The exact creation time of an object: its LTX header's timestamp. */
static int
exact_time(backend *b, const ltx_info *f, int64_t *ms,
           char key[LAYOUT_KEY_SIZE])
{
    uint8_t *buf = NULL;
    size_t n = 0;
    ltx_header h;
    int rc;

    rc =
        layout_key(b, f->level, f->min_txid, f->max_txid, key, LAYOUT_KEY_SIZE);
    if (rc == SQLITE_OK)
        rc = backend_get(b, key, 0, LTX_HEADER_SIZE, &buf, &n);
    if (rc == SQLITE_OK && (n < LTX_HEADER_SIZE ||
                            ltx_header_decode(buf, &h, NULL, 0) != SQLITE_OK))
        rc = SQLITE_CORRUPT;
    if (rc == SQLITE_OK)
        *ms = h.timestamp;
    sqlite3_free(buf);
    return rc;
}

/*
 * Makes the creation times of one level's objects a[0..n) (sorted by TXID)
 * exact on the side of target_ms that matters.  Creation times grow with
 * TXIDs within a level, so a binary search over the headers finds the
 * first object created after target_ms in O(log n) reads; the objects
 * before it are stamped with their exact time or at most target_ms, the
 * ones from it on with their exact time or more than target_ms.
 */
static int
refine_level(backend *b, ltx_info *a, int n, int64_t target_ms,
             char key[LAYOUT_KEY_SIZE])
{
    int lo = 0, hi = n, rc = SQLITE_OK; /* answer in [lo, hi] */

    while (lo < hi && rc == SQLITE_OK) {
        int mid = lo + (hi - lo) / 2;
        int64_t t = 0;
        rc = exact_time(b, &a[mid], &t, key);
        if (rc != SQLITE_OK)
            break;
        a[mid].created_ms = t;
        if (t <= target_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        if (i < lo && a[i].created_ms > target_ms)
            a[i].created_ms = target_ms;
        else if (i >= lo && a[i].created_ms <= target_ms)
            a[i].created_ms = target_ms + 1;
    }
    return rc;
}

/* Exact creation times around target_ms for backends that list upload
 * times (every level of the listing a[0..n), grouped by level). */
static int
refine_times(backend *b, ltx_info *a, int n, int64_t target_ms,
             char key[LAYOUT_KEY_SIZE])
{
    int rc = SQLITE_OK;

    for (int i = 0; i < n && rc == SQLITE_OK;) {
        int j = i;
        while (j < n && a[j].level == a[i].level)
            j++;
        rc = refine_level(b, a + i, j - i, target_ms, key);
        i = j;
    }
    return rc;
}

/*
 * Lists the replica; for a time target on a backend that lists upload
 * times, with the creation times around target_ms made exact.  An object
 * removed between the listing and the header read (retention) means
 * listing again.
 */
static int
list_with_times(backend *b, int64_t target_ms, ltx_info **pA, int *pN,
                char **pzErr)
{
    char key[LAYOUT_KEY_SIZE] = "";
    const char *zWhy;
    int rc = SQLITE_OK;

    for (int attempt = 0; attempt < 3; attempt++) {
        *pA = NULL;
        *pN = 0;
        rc = layout_list_all(b, pA, pN);
        if (rc != SQLITE_OK) {
            zWhy = backend_why(b);
            return plan_err(pzErr, rc, "litestream: cannot list '%s': %s",
                            backend_url(b), zWhy);
        }
        if (target_ms == 0 || (b->vt->caps & BACKEND_CAP_EXACT_TIME))
            return SQLITE_OK;
        rc = refine_times(b, *pA, *pN, target_ms, key);
        if (rc == SQLITE_OK)
            return SQLITE_OK;
        sqlite3_free(*pA);
        *pA = NULL;
        *pN = 0;
        if (rc != SQLITE_NOTFOUND)
            break;
    }
    zWhy = rc == SQLITE_CORRUPT ? "not an LTX header" : backend_why(b);
    return plan_err(pzErr, rc,
                    "litestream: cannot read the creation time "
                    "of '%s' in '%s': %s",
                    key, backend_url(b), zWhy);
}

int
restore_plan_make(backend *b, uint64_t target_txid, int64_t target_ms,
                  restore_plan *plan, char **pzErr)
{
    ltx_info *a = NULL;
    int n = 0, rc;

    memset(plan, 0, sizeof(*plan));
    if (pzErr)
        *pzErr = NULL;
    rc = list_with_times(b, target_txid ? 0 : target_ms, &a, &n, pzErr);
    if (rc == SQLITE_OK)
        rc = restore_plan_list(a, n, backend_url(b), target_txid, target_ms,
                               clock_now_ms(), plan, pzErr);
    sqlite3_free(a);
    return rc;
}

void
restore_plan_free(restore_plan *plan)
{
    if (plan == NULL)
        return;
    sqlite3_free(plan->files);
    memset(plan, 0, sizeof(*plan));
}
