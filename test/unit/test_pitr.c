/*
 * test_pitr.c: the pure parts of point-in-time recovery.
 *
 *   - durations, level lists and RFC 3339 timestamps (storage/base/timefmt.c):
 *     what the PRAGMAs and litestream_restore() accept and refuse;
 *   - retention (storage/history/retention.c) over synthetic listings: the
 * newest snapshot and the newest object of each level stay, L0 goes oldest
 *     first and only under level 1's cover, the cascade below the deleted
 *     snapshots, nothing at all when the replica has a gap, and never
 *     anything the latest restore needs;
 *   - a simulated day of 1-second syncs under the default schedule (the
 *     compactor's own run selection, retention every minute, the daily
 *     snapshot): how many objects the latest restore reads, worst case
 *     during the day and right after the snapshot;
 *   - time targets of restore plans (storage/restore/plan.c): in the
 *     future, and inside a compacted object, are refused with the nearest
 *     points.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "storage/history/levels.h"
#include "storage/restore/restore.h"
#include "storage/base/timefmt.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

static void
test_durations(void)
{
    static const struct {
        const char *z;
        int64_t ms; /* 0: must be refused */
    } c[] = {{"100ms", 100},  {"30s", 30000},      {"5m", 300000},
             {"1h", 3600000}, {"24h", 86400000},   {"1h30m", 5400000},
             {"1.5s", 1500},  {" 2d ", 172800000}, {"5", 0},
             {"", 0},         {"abc", 0},          {"0ms", 0},
             {"-1s", 0},      {"1x", 0},           {"101d", 0},
             {"1s 2s", 0}};
    char buf[64];

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int64_t ms = -1;
        char *zErr = NULL;
        int rc = timefmt_parse_duration(c[i].z, &ms, &zErr);
        if (c[i].ms)
            ok(rc == SQLITE_OK && ms == c[i].ms, "duration '%s' = %lld ms",
               c[i].z, (long long)ms);
        else
            ok(rc != SQLITE_OK && zErr && strstr(zErr, "'30s'"),
               "duration '%s' refused: %s", c[i].z, zErr ? zErr : "");
        sqlite3_free(zErr);
    }
    ok(strcmp(timefmt_duration(5400000, buf, sizeof(buf)), "1h30m") == 0 &&
           strcmp(timefmt_duration(250, buf, sizeof(buf)), "250ms") == 0,
       "durations print in their shortest exact form");
}

static void
test_levels(void)
{
    int64_t ms[TIMEFMT_MAX_LEVELS];
    char buf[128], *zErr = NULL;
    int n = 0;

    ok(timefmt_parse_levels("50ms, 200ms,1s", ms, &n, &zErr) == SQLITE_OK &&
           n == 3 &&
           strcmp(timefmt_levels(ms, n, buf, sizeof(buf)), "50ms,200ms,1s") ==
               0,
       "levels '50ms, 200ms,1s' -> %s", buf);
    ok(timefmt_parse_levels("1s,500ms", ms, &n, &zErr) != SQLITE_OK && zErr &&
           strstr(zErr, "increasing"),
       "decreasing levels refused: %s", zErr);
    sqlite3_free(zErr);
    zErr = NULL;
    ok(timefmt_parse_levels("1s,2s,3s,4s,5s,6s,7s,8s,9s", ms, &n, &zErr) !=
           SQLITE_OK,
       "nine levels refused (level 9 holds snapshots)");
    sqlite3_free(zErr);
}

static void
test_times(void)
{
    static const struct {
        const char *z;
        int64_t ms; /* -1: refused */
    } c[] = {{"2026-11-22T14:01:00Z", 1795356060000LL},
             {"2026-11-22T14:01:00.25Z", 1795356060250LL},
             {"2026-11-22T16:01:00.250+02:00", 1795356060250LL},
             {"2026-11-22T09:01:00-0500", 1795356060000LL},
             {"2026-11-22 14:01:00.123456789z", 1795356060123LL},
             {"1970-01-01T00:00:00Z", 0},
             {"2024-02-29T00:00:00Z", 1709164800000LL},
             {"2026-11-22T14:01:00", -1},
             {"2026-02-29T00:00:00Z", -1},
             {"2026-13-01T00:00:00Z", -1},
             {"2026-11-22T14:01Z", -1},
             {"yesterday", -1},
             {"2026-11-22T14:01:00.Z", -1}};
    char buf[48];

    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        int64_t ms = -7;
        int r = timefmt_parse_time(c[i].z, &ms);
        if (c[i].ms >= 0)
            ok(r && ms == c[i].ms, "time '%s' = %lld", c[i].z, (long long)ms);
        else
            ok(!r, "time '%s' refused", c[i].z);
    }
    ok(strcmp(timefmt_time(1795356060250LL, buf, sizeof(buf)),
              "2026-11-22T14:01:00.250Z") == 0,
       "times print as RFC 3339 UTC: %s", buf);

    /* Relative times (Litestream's VFS takes "5 minutes ago"). */
    static const struct {
        const char *z;
        int64_t ago; /* ms before now; -1: refused */
    } w[] = {{"now", 0},
             {" NOW ", 0},
             {"5 minutes ago", 300000},
             {"1 minute ago", 60000},
             {"90 s ago", 90000},
             {"2 Hours Ago", 7200000},
             {"3 days ago", 259200000},
             {"1 week ago", 604800000},
             {"2 months ago", 5184000000LL},
             {"1 year ago", 31536000000LL},
             {"5 minutes", -1},
             {"minutes ago", -1},
             {"5 fortnights ago", -1},
             {"-5 minutes ago", -1},
             {"5 minutes ago!", -1},
             {"yesterday", -1}};
    const int64_t now = 1795356060250LL;
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        int64_t ms = -7;
        int r = timefmt_parse_when(w[i].z, now, &ms);
        if (w[i].ago >= 0)
            ok(r && ms == now - w[i].ago, "'%s' is %lld ms before now", w[i].z,
               (long long)(now - ms));
        else
            ok(!r, "'%s' refused", w[i].z);
    }
    int64_t ms = 0;
    ok(timefmt_parse_when("2026-11-22T14:01:00Z", now, &ms) &&
           ms == 1795356060000LL,
       "RFC 3339 is taken as it is");
}

/* ---- retention ------------------------------------------------------- */

#define MIN 60000LL
#define NOW (1000 * MIN)

static ltx_info
f(int level, uint64_t lo, uint64_t hi, int64_t created)
{
    ltx_info i = {level, lo, hi, 100, created};
    return i;
}

/* Whether (level, lo, hi) is among del[0..n-1]. */
static int
has(const ltx_info *del, int n, int level, uint64_t lo, uint64_t hi)
{
    for (int i = 0; i < n; i++)
        if (del[i].level == level && del[i].min_txid == lo &&
            del[i].max_txid == hi)
            return 1;
    return 0;
}

static void
test_retention(void)
{
    ls_pitr o;
    ltx_info *del = NULL;
    char *zErr = NULL;
    int n = 0, rc;
    /* Listing order: by level, then TXID.  L0 1..12 one a minute; L1 has
     * 1..4, 5..8 (L0 9..12 not yet compacted); snapshots at 5 and 8. */
    ltx_info a[] = {
        f(0, 1, 1, NOW - 30 * MIN),  f(0, 2, 2, NOW - 29 * MIN),
        f(0, 3, 3, NOW - 28 * MIN),  f(0, 4, 4, NOW - 27 * MIN),
        f(0, 5, 5, NOW - 26 * MIN),  f(0, 6, 6, NOW - 25 * MIN),
        f(0, 7, 7, NOW - 4 * MIN),   f(0, 8, 8, NOW - 3 * MIN),
        f(0, 9, 9, NOW - 30 * MIN),  f(0, 10, 10, NOW - 2 * MIN),
        f(0, 11, 11, NOW - 1 * MIN), f(0, 12, 12, NOW),
        f(1, 1, 4, NOW - 27 * MIN),  f(1, 5, 8, NOW - 3 * MIN),
        f(9, 1, 5, NOW - 26 * MIN),  f(9, 1, 8, NOW - 2 * MIN),
    };
    int na = (int)(sizeof(a) / sizeof(a[0]));

    pitr_defaults(&o);
    o.snapshot_retention_ms = 10 * MIN;
    rc = retention_plan(a, na, &o, NOW, &del, &n, &zErr);
    ok(rc == SQLITE_OK, "retention plan: %s", zErr ? zErr : "ok");
    ok(has(del, n, 0, 1, 1) && has(del, n, 0, 6, 6) && !has(del, n, 0, 7, 7) &&
           !has(del, n, 0, 9, 9),
       "L0 goes oldest first while covered by L1 and older than 5m, and "
       "stops at the first that must stay (no hole)");
    ok(has(del, n, 9, 1, 5) && !has(del, n, 9, 1, 8),
       "the old snapshot goes, the newest stays");
    ok(has(del, n, 1, 1, 4) && !has(del, n, 1, 5, 8),
       "the cascade removes level-1 objects below the deleted snapshot, "
       "never the newest of a level");
    ok(n == 8, "nothing else is deleted (%d)", n);
    sqlite3_free(del);

    o.l0_retention_ms = PITR_OFF;
    rc = retention_plan(a, na, &o, NOW, &del, &n, &zErr);
    ok(rc == SQLITE_OK && n == 0, "retention 'off' deletes nothing");
    sqlite3_free(del);

    pitr_defaults(&o);
    o.l0_retention_ms = 1;
    o.snapshot_retention_ms = 1;
    ltx_info only[] = {f(0, 1, 5, NOW - 30 * MIN), f(1, 1, 5, NOW - 30 * MIN),
                       f(9, 1, 5, NOW - 30 * MIN)};
    rc = retention_plan(only, 3, &o, NOW, &del, &n, &zErr);
    ok(rc == SQLITE_OK && n == 0,
       "the newest object of each level always stays (%d deleted)", n);
    sqlite3_free(del);

    ltx_info gap[] = {f(0, 1, 3, NOW - 30 * MIN), f(0, 5, 6, NOW - 29 * MIN),
                      f(1, 1, 3, NOW - 30 * MIN)};
    rc = retention_plan(gap, 3, &o, NOW, &del, &n, &zErr);
    ok(rc == SQLITE_CORRUPT && n == 0 && zErr &&
           strstr(zErr, "gap after TXID 0000000000000003"),
       "a replica with a gap: nothing deleted, reported: %s", zErr);
    sqlite3_free(zErr);
    zErr = NULL;
    sqlite3_free(del);
}

static void
test_time_targets(void)
{
    restore_plan p;
    char *zErr = NULL;
    ltx_info a[] = {f(0, 9, 9, NOW - 1 * MIN), f(1, 1, 4, NOW - 20 * MIN),
                    f(1, 5, 8, NOW - 10 * MIN)};
    int rc;

    rc = restore_plan_list(a, 3, "r", 0, NOW - 15 * MIN, NOW, &p, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr && strstr(zErr, "compacted away") &&
           strstr(zErr, "TXID 0000000000000004") &&
           strstr(zErr, "TXID 0000000000000008"),
       "a time inside a compacted object: %s", zErr);
    sqlite3_free(zErr);
    zErr = NULL;
    rc = restore_plan_list(a, 3, "r", 0, NOW - 5 * MIN, NOW, &p, &zErr);
    ok(rc == SQLITE_OK && p.txid == 8,
       "a time before the next L0 object is exact (TXID %llu)",
       (unsigned long long)p.txid);
    restore_plan_free(&p);
    rc = restore_plan_list(a, 3, "r", 0, NOW + 10 * MIN, NOW, &p, &zErr);
    ok(rc == SQLITE_NOTFOUND && zErr && strstr(zErr, "in the future") &&
           strstr(zErr, "TXID 0000000000000009"),
       "a time in the future: %s", zErr);
    sqlite3_free(zErr);
}

/* ---- a simulated day ----------------------------------------------- */

typedef struct sim {
    ltx_info *a;
    int n, cap;
} sim;

static void
sim_add(sim *s, ltx_info f)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->a = sqlite3_realloc64(s->a, sizeof(ltx_info) * (size_t)s->cap);
    }
    s->a[s->n++] = f;
}

static int
info_cmp(const void *pa, const void *pb)
{
    const ltx_info *x = pa, *y = pb;
    if (x->level != y->level)
        return x->level - y->level;
    if (x->min_txid != y->min_txid)
        return x->min_txid < y->min_txid ? -1 : 1;
    return x->max_txid < y->max_txid ? -1 : x->max_txid > y->max_txid;
}

/* Objects the latest restore reads now. */
static int
sim_plan(sim *s, int64_t now, uint64_t *txid)
{
    restore_plan p;
    char *zErr = NULL;
    int n;

    qsort(s->a, (size_t)s->n, sizeof(ltx_info), info_cmp);
    if (restore_plan_list(s->a, s->n, "sim", 0, 0, now, &p, &zErr) !=
        SQLITE_OK) {
        diag("plan: %s", zErr);
        sqlite3_free(zErr);
        return -1;
    }
    n = p.n;
    *txid = p.txid;
    restore_plan_free(&p);
    return n;
}

/* Applies retention_plan() to the simulated listing. */
static void
sim_retention(sim *s, const ls_pitr *o, int64_t now, int *deleted)
{
    ltx_info *del = NULL;
    char *zErr = NULL;
    int ndel = 0, k = 0;

    qsort(s->a, (size_t)s->n, sizeof(ltx_info), info_cmp);
    if (retention_plan(s->a, s->n, o, now, &del, &ndel, &zErr) != SQLITE_OK)
        diag("retention: %s", zErr);
    sqlite3_free(zErr);
    for (int i = 0; i < s->n; i++) {
        int gone = 0;
        for (int j = 0; j < ndel && !gone; j++)
            gone = info_cmp(&s->a[i], &del[j]) == 0;
        if (!gone)
            s->a[k++] = s->a[i];
    }
    *deleted += s->n - k;
    s->n = k;
    sqlite3_free(del);
}

/* Runs the levels due at second t (their boundaries are multiples). */
static void
sim_compact(sim *s, const ls_pitr *o, int64_t now, int *merges)
{
    for (int level = 1; level <= o->nlevels; level++) {
        int first, cnt;
        if (now % o->levels[level - 1])
            continue;
        qsort(s->a, (size_t)s->n, sizeof(ltx_info), info_cmp);
        cnt = compact_pick_run(s->a, s->n, level, now, &first);
        if (cnt == 0)
            continue;
        sim_add(s,
                f(level, s->a[first].min_txid, s->a[first + cnt - 1].max_txid,
                  s->a[first + cnt - 1].created_ms));
        (*merges)++;
    }
}

static void
test_day(void)
{
    const int64_t day0 = 20000LL * 86400000; /* a midnight, UTC */
    ls_pitr o;
    sim s = {0};
    int worst = 0, merges = 0, deleted = 0, after = -1, n;
    int64_t worst_at = 0;
    uint64_t txid = 0;

    pitr_defaults(&o);
    for (int64_t t = 1; t <= 86400 + 60; t++) {
        int64_t now = day0 + t * 1000;
        sim_add(&s, f(0, (uint64_t)t, (uint64_t)t, now - 500));
        sim_compact(&s, &o, now, &merges);
        if (now % o.snapshot_ms == 0) /* the daily snapshot */
            sim_add(&s, f(9, 1, (uint64_t)t, now));
        if (t % 60 == 0)
            sim_retention(&s, &o, now, &deleted);
        if (t % 60 == 59 || now % o.snapshot_ms == 0) {
            n = sim_plan(&s, now, &txid);
            if (txid != (uint64_t)t)
                n = 1000; /* wrong state: fail below */
            if (n > worst && t < 86400) {
                worst = n;
                worst_at = t;
            }
            if (now % o.snapshot_ms == 0)
                after = n;
        }
    }
    diag("a day of 1-second syncs (86400 L0 objects), levels 30s,5m,1h, "
         "daily snapshot, retention every minute: %d merges, %d objects "
         "deleted, %d left; the latest restore reads at most %d objects "
         "(at %02lld:%02lld), %d right after the daily snapshot",
         merges, deleted, s.n, worst, (long long)worst_at / 3600,
         (long long)worst_at % 3600 / 60, after);
    ok(after >= 1 && after <= 12,
       "after a day and its compaction the latest restore reads %d objects "
       "(at most a dozen)",
       after);
    ok(worst <= 1 + 23 + 11 + 9 + 30,
       "during the day at most snapshot + 23 L3 + 11 L2 + 9 L1 + 30 L0 "
       "objects (%d)",
       worst);
    n = 0;
    for (int i = 0; i < s.n; i++)
        n += s.a[i].level == 0;
    ok(n <= 5 * 60 + 30 + 60,
       "L0 objects are pruned 5 min after compaction (%d left of 86460)", n);
    sqlite3_free(s.a);
}

int
main(void)
{
    api_init();
    test_durations();
    test_levels();
    test_times();
    test_retention();
    test_time_targets();
    test_day();
    return tap_done();
}
