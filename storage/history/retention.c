/*
 * storage/history/retention.c: what retention deletes (levels.h,
 * docs/ltx-format.md 2.3).
 *
 * A pure function of a listing and the clock, so the rules are testable
 * without a replica.  Invariants:
 *   1. The newest snapshot and the newest object of every level are kept.
 *   2. L0 objects go oldest first and only while covered by level 1: the
 *      first one that must stay stops the walk, so no hole opens in L0.
 *   3. Whatever the rules chose, the latest restore plan over what remains
 *      must reach the TXID it reaches over everything; otherwise nothing
 *      is deleted.  A replica whose latest state cannot be restored (a
 *      gap) is reported and left alone.
 *
 * Threads: any (the compactor thread).
 */
#include "storage/history/levels.h"

#include <string.h>

#include "storage/restore/restore.h"
#include "storage/base/sqlite.h"

/* Index of the newest object (largest max TXID) of a level, or -1. */
static int
newest_of(const ltx_info *a, int n, int level)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (a[i].level == level &&
            (best < 0 || a[i].max_txid >= a[best].max_txid))
            best = i;
    return best;
}

/* Marks snapshots past retention (never the newest); returns the floor. */
static uint64_t
mark_snapshots(const ltx_info *a, int n, const ls_pitr *o, int64_t now,
               char *del)
{
    int keep = newest_of(a, n, LAYOUT_MAX_LEVEL);
    uint64_t floor = 0;

    if (o->snapshot_retention_ms == PITR_OFF)
        return 0;
    for (int i = 0; i < n; i++) {
        if (a[i].level != LAYOUT_MAX_LEVEL || i == keep ||
            a[i].created_ms >= now - o->snapshot_retention_ms)
            continue;
        del[i] = 1;
        if (a[i].max_txid > floor)
            floor = a[i].max_txid;
    }
    return floor;
}

/* Marks level 1..8 objects entirely below the floor. */
static void
mark_cascade(const ltx_info *a, int n, uint64_t floor, char *del)
{
    for (int level = 1; level < LAYOUT_MAX_LEVEL && floor; level++) {
        int keep = newest_of(a, n, level);
        for (int i = 0; i < n; i++)
            if (a[i].level == level && i != keep && a[i].max_txid < floor)
                del[i] = 1;
    }
}

/* Marks L0 objects covered by level 1 and old enough, oldest first. */
static void
mark_l0(const ltx_info *a, int n, const ls_pitr *o, int64_t now, char *del)
{
    int keep = newest_of(a, n, 0), top = newest_of(a, n, 1);
    uint64_t covered = top >= 0 ? a[top].max_txid : 0;

    for (int i = 0; i < n; i++) { /* L0 comes first, sorted by TXID */
        if (a[i].level != 0)
            break;
        if (i == keep || a[i].max_txid > covered ||
            a[i].created_ms >= now - o->l0_retention_ms)
            break;
        del[i] = 1;
    }
}

int
retention_plan(const ltx_info *a, int n, const ls_pitr *o, int64_t now_ms,
               ltx_info **del, int *ndel, char **pzErr)
{
    char *mark = NULL;
    ltx_info *keep = NULL, *out = NULL;
    restore_plan all = {0}, rest = {0};
    int nkeep = 0, nout = 0, rc;

    *del = NULL;
    *ndel = 0;
    *pzErr = NULL;
    if (n == 0 || o->l0_retention_ms == PITR_OFF)
        return SQLITE_OK;
    rc = restore_plan_list(a, n, "the replica", 0, 0, now_ms, &all, pzErr);
    if (rc != SQLITE_OK)
        return rc; /* cannot restore the latest state: delete nothing */
    mark = sqlite3_malloc64((size_t)n);
    keep = sqlite3_malloc64(sizeof(ltx_info) * (size_t)n);
    out = sqlite3_malloc64(sizeof(ltx_info) * (size_t)n);
    if (!mark || !keep || !out) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    memset(mark, 0, (size_t)n);
    mark_cascade(a, n, mark_snapshots(a, n, o, now_ms, mark), mark);
    mark_l0(a, n, o, now_ms, mark);
    for (int i = 0; i < n; i++) {
        if (mark[i])
            out[nout++] = a[i];
        else
            keep[nkeep++] = a[i];
    }
    if (nout == 0)
        goto out;
    rc = restore_plan_list(keep, nkeep, "the replica", 0, 0, now_ms, &rest,
                           pzErr);
    if (rc != SQLITE_OK || rest.txid != all.txid) {
        sqlite3_free(*pzErr);
        *pzErr = sqlite3_mprintf("litestream: retention would leave the "
                                 "latest state (TXID %016llx) unrestorable; "
                                 "nothing deleted",
                                 (unsigned long long)all.txid);
        rc = SQLITE_INTERNAL;
        goto out;
    }
    *del = out;
    *ndel = nout;
    out = NULL;
out:
    restore_plan_free(&all);
    restore_plan_free(&rest);
    sqlite3_free(mark);
    sqlite3_free(keep);
    sqlite3_free(out);
    return rc;
}
