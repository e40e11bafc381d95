/*
 * storage/reader/plan.c: building and extending the read replica's page
 * map (reader.h): fetch an object's header and page index, apply a restore
 * plan, poll for the objects written since.
 *
 * Invariants:
 *   1. A new map is built aside and replaces the served one only when it
 *      is complete; a poll applies objects in TXID order, so after each
 *      apply the map is one consistent state.
 *   2. An object that disappears between listing and reading (compaction,
 *      retention), or does not parse (it may have been replaced since it
 *      was listed), makes the plan be recomputed (up to READER_TRIES
 *      times), never an error on its own.
 *
 * Threads: the reader's owner thread.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/reader/reader_int.h"
#include "storage/restore/restore.h"
#include "storage/base/sqlite.h"

#define READER_TRIES 3

/* Loads and applies the objects of one plan into the empty map pm.
 * *vanished is set when an object was not found. */
static int
build_once(reader *r, const restore_plan *plan, pagemap *pm, int *vanished,
           char **pzErr)
{
    pm_loaded *lo = sqlite3_malloc64(sizeof(pm_loaded) * (size_t)plan->n + 1);
    int i, rc;

    if (lo == NULL)
        return SQLITE_NOMEM;
    rc = reader_load_all(r, plan->files, plan->n, lo, pzErr);
    /* Gone, or not what was listed (replaced by a rewrite): list again. */
    *vanished = rc == SQLITE_NOTFOUND || rc == SQLITE_CORRUPT;
    for (i = 0; i < plan->n && rc == SQLITE_OK; i++)
        rc = pagemap_apply(pm, &lo[i], r->next_uid++, pzErr);
    for (i = 0; i < plan->n; i++)
        pagemap_loaded_free(&lo[i]);
    sqlite3_free(lo);
    return rc;
}

int
reader_build(reader *r, uint64_t target_txid, int64_t target_ms, char **pzErr)
{
    pagemap pm;
    int tries, rc = SQLITE_OK;

    *pzErr = NULL;
    memset(&pm, 0, sizeof(pm));
    for (tries = 0; tries < READER_TRIES; tries++) {
        restore_plan plan;
        int vanished = 0;
        sqlite3_free(*pzErr);
        *pzErr = NULL;
        pagemap_clear(&pm);
        rc = restore_plan_make(r->b, target_txid, target_ms, &plan, pzErr);
        if (rc != SQLITE_OK)
            break;
        rc = build_once(r, &plan, &pm, &vanished, pzErr);
        restore_plan_free(&plan);
        if (rc == SQLITE_OK || !vanished)
            break;
    }
    if (rc == SQLITE_OK) {
        pagemap_clear(&r->map);
        r->map = pm;
        r->st.replans++;
        r->ra_next = 0;
        r->ra_pages = 1;
    } else {
        pagemap_clear(&pm);
    }
    return rc;
}

/* The object of a continuing cur the furthest (ties: smaller min). */
static const ltx_info *
poll_pick(const ltx_info *a, int n, uint64_t cur)
{
    const ltx_info *best = NULL;
    int i;

    for (i = 0; i < n; i++) {
        const ltx_info *f = &a[i];
        if (f->level >= LAYOUT_MAX_LEVEL || f->min_txid > cur + 1 ||
            f->max_txid <= cur)
            continue;
        if (!best || f->max_txid > best->max_txid ||
            (f->max_txid == best->max_txid && f->min_txid < best->min_txid))
            best = f;
    }
    return best;
}

static int
poll_newer(const ltx_info *a, int n, uint64_t cur)
{
    for (int i = 0; i < n; i++)
        if (a[i].max_txid > cur && a[i].level < LAYOUT_MAX_LEVEL)
            return 1;
    return 0;
}

/* Appends the listings of levels 1..8 to *a (*n entries). */
static int
poll_list_upper(reader *r, ltx_info **a, int *n)
{
    int level, rc = SQLITE_OK;

    for (level = 1; level < LAYOUT_MAX_LEVEL && rc == SQLITE_OK; level++) {
        ltx_info *b = NULL, *c;
        int nb = 0;
        rc = layout_list_level(r->b, level, &b, &nb);
        if (rc == SQLITE_OK && nb > 0) {
            c = sqlite3_realloc64(*a, sizeof(ltx_info) * (size_t)(*n + nb));
            if (c == NULL) {
                rc = SQLITE_NOMEM;
            } else {
                memcpy(c + *n, b, sizeof(ltx_info) * (size_t)nb);
                *a = c;
                *n += nb;
            }
        }
        sqlite3_free(b);
    }
    return rc;
}

/* Chooses the chain of objects after the map's TXID into *chain (*nc).
 * *gap: newer objects exist but nothing continues the map. */
static int
poll_choose(reader *r, ltx_info **chain, int *nc, int *gap)
{
    ltx_info *a = NULL;
    const ltx_info *f;
    uint64_t cur = r->map.txid;
    int n = 0, upper = 0, rc;

    *chain = NULL;
    *nc = 0;
    *gap = 0;
    rc = layout_list_level(r->b, 0, &a, &n);
    if (rc != SQLITE_OK || !poll_newer(a, n, cur))
        goto out;
    *chain = sqlite3_malloc64(sizeof(ltx_info) * (size_t)n + 1);
    for (;;) {
        if (*chain == NULL) {
            rc = SQLITE_NOMEM;
            goto out;
        }
        f = poll_pick(a, n, cur);
        if (f == NULL && !upper && poll_newer(a, n, cur)) {
            upper = 1; /* a gap in level 0: bridge it from levels above */
            rc = poll_list_upper(r, &a, &n);
            if (rc != SQLITE_OK)
                goto out;
            ltx_info *c =
                sqlite3_realloc64(*chain, sizeof(ltx_info) * ((size_t)n + 1));
            *chain = c ? c : *chain;
            if (c == NULL)
                rc = SQLITE_NOMEM;
            if (rc != SQLITE_OK)
                goto out;
            continue;
        }
        if (f == NULL)
            break;
        (*chain)[(*nc)++] = *f;
        cur = f->max_txid;
    }
    *gap = *nc == 0;
out:
    sqlite3_free(a);
    return rc;
}

/* Loads and applies the chain; SQLITE_NOTFOUND if an object vanished. */
static int
poll_apply(reader *r, const ltx_info *chain, int nc, char **pzErr)
{
    pm_loaded *lo = sqlite3_malloc64(sizeof(pm_loaded) * (size_t)nc + 1);
    int i, rc;

    if (lo == NULL)
        return SQLITE_NOMEM;
    /* Fetch everything first: a failure then leaves the map as it was. */
    rc = reader_load_all(r, chain, nc, lo, pzErr);
    for (i = 0; i < nc && rc == SQLITE_OK; i++)
        rc = pagemap_apply(&r->map, &lo[i], r->next_uid++, pzErr);
    for (i = 0; i < nc; i++)
        pagemap_loaded_free(&lo[i]);
    sqlite3_free(lo);
    return rc;
}

/* reader_poll() but for hydration. */
static int
poll_once(reader *r, int force)
{
    int64_t now = reader_now_ms();
    int pinned = r->target_txid || r->target_ms, nc = 0, gap = 0, rc;
    ltx_info *chain = NULL;
    char *zErr = NULL;

    if (r->stale) {
        rc = reader_build(r, r->target_txid, r->target_ms, &zErr);
        if (rc == SQLITE_OK)
            r->stale = 0;
        goto out;
    }
    if (pinned ||
        (!force && (r->poll_ms <= 0 ||
                    (r->last_poll && now - r->last_poll < r->poll_ms))))
        return SQLITE_OK;
    r->last_poll = now;
    r->st.polls++;
    rc = poll_choose(r, &chain, &nc, &gap);
    if (rc == SQLITE_OK && nc > 0)
        rc = poll_apply(r, chain, nc, &zErr);
    if ((rc == SQLITE_OK && gap) || rc == SQLITE_NOTFOUND ||
        rc == SQLITE_CORRUPT) {
        /* Nothing continues what we serve, an object vanished, or one does
         * not fit: start again from a fresh plan of the latest state. */
        uint64_t was = r->map.txid;
        sqlite3_free(zErr);
        zErr = NULL;
        rc = reader_build(r, 0, 0, &zErr);
        if (rc == SQLITE_OK && r->map.txid < was)
            zErr = sqlite3_mprintf("litestream: the replica '%s' went back "
                                   "from TXID %016llx to %016llx",
                                   backend_url(r->b), (unsigned long long)was,
                                   (unsigned long long)r->map.txid);
    }
    if (rc != SQLITE_OK && zErr == NULL)
        zErr = sqlite3_mprintf("litestream: cannot poll '%s': %s",
                               backend_url(r->b), backend_errmsg(r->b));
out:
    sqlite3_free(chain);
    if (rc != SQLITE_OK) {
        r->st.poll_errors++;
        sqlite3_log(rc, "%s", zErr ? zErr : "litestream: poll failed");
    }
    if (zErr || rc != SQLITE_OK)
        reader_seterr(r, rc, zErr);
    return rc;
}

int
reader_poll(reader *r, int force)
{
    int rc = poll_once(r, force);
    reader_hydrate_kick(r); /* the file follows the TXID served */
    return rc;
}
