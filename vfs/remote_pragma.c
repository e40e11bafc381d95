/*
 * vfs/remote_pragma.c: the URI options and the PRAGMAs of the
 * `litestream-remote` VFS (docs/remote.md, docs/sql.md).
 *
 *   file:app.db?vfs=litestream-remote&url=<percent-encoded URL>
 *       &poll_ms=1000 &cache_mb=64 &txid=<TXID> | &time=<RFC 3339>
 *       &min_txid=<TXID> &timeout_ms=30000 &hydration=1
 *       &hydration_path=<file> (or LITESTREAM_HYDRATION_ENABLED,
 *       LITESTREAM_HYDRATION_PATH)
 *   and the names of Litestream's VFS: replica_url= (url), poll_interval=
 *   (a duration: 500ms, 1s; for poll_ms), cache_size= (bytes, or with KB,
 *   MB, GB; for cache_mb).  time= and PRAGMA litestream_time also take
 *   "now" and relative times ("5 minutes ago").
 *
 *   PRAGMA litestream_txid;             -- TXID served (16 hex digits)
 *   PRAGMA litestream_txid = 42;        -- time travel to a TXID
 *   PRAGMA litestream_time;             -- when that state was written
 *   PRAGMA litestream_time = '2026-01-02T03:04:05Z';  -- time travel
 *   PRAGMA litestream_time = 'latest';  -- follow the replica again
 *   PRAGMA litestream_lag;              -- ms since the newest object seen
 *                                       -- was written
 *   PRAGMA litestream_requests;         -- JSON: requests and cache counters
 *   PRAGMA litestream_url;              -- the replica, secrets redacted
 *   PRAGMA litestream_hydration_progress; -- % of the local copy done
 *   PRAGMA litestream_hydration_status; -- idle, restoring, catching_up,
 *                                       -- complete, paused, failed: why
 *   PRAGMA litestream_hydration_file;   -- its path ('': temporary)
 *
 * Time travel changes the page map, so it is refused while the connection
 * holds a read transaction (remote.c, invariant 2).
 *
 * Threads: the application thread preparing the PRAGMA / opening the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/base/clock.h"
#include "storage/base/json.h"
#include "storage/base/timefmt.h"
#include "vfs/remote_pragma.h"

int
remote_parse_txid(const char *z, uint64_t *txid)
{
    char *end = NULL;
    unsigned long long v;

    if (z == NULL || *z == 0 || *z == '-' || *z == '+')
        return 0;
    v = strlen(z) == 16 ? strtoull(z, &end, 16) : strtoull(z, &end, 10);
    if (end == NULL || *end || v == 0)
        return 0;
    *txid = v;
    return 1;
}

/* An integer option in [lo, hi] (default dflt when absent). */
static int
opt_int(const char *zName, const char *zKey, int64_t dflt, int64_t lo,
        int64_t hi, int64_t *out, char **pzErr)
{
    const char *z = sqlite3_uri_parameter(zName, zKey);
    char *end = NULL;
    long long v;

    *out = dflt;
    if (z == NULL)
        return SQLITE_OK;
    v = strtoll(z, &end, 10);
    if (*z == 0 || end == NULL || *end || v < lo || v > hi) {
        *pzErr = sqlite3_mprintf("litestream-remote: URI option %s must be "
                                 "an integer between %lld and %lld, not "
                                 "'%s'",
                                 zKey, (long long)lo, (long long)hi, z);
        return SQLITE_MISUSE;
    }
    *out = v;
    return SQLITE_OK;
}

/* A TXID option (0 when absent). */
static int
opt_txid(const char *zName, const char *zKey, uint64_t *out, char **pzErr)
{
    const char *z = sqlite3_uri_parameter(zName, zKey);

    *out = 0;
    if (z == NULL || remote_parse_txid(z, out))
        return SQLITE_OK;
    *pzErr = sqlite3_mprintf("litestream-remote: URI option %s must be a "
                             "TXID (a positive integer or 16 hex digits), "
                             "not '%s'",
                             zKey, z);
    return SQLITE_MISUSE;
}

/* The first of two equivalent URI options present (ours, or Litestream's
 * name for it); both present with different values is an error. */
static int
opt_either(const char *zName, const char *zOurs, const char *zTheirs,
           const char **pz, char **pzErr)
{
    const char *a = zName ? sqlite3_uri_parameter(zName, zOurs) : NULL;
    const char *b = zName ? sqlite3_uri_parameter(zName, zTheirs) : NULL;
    *pz = a ? a : b;
    if (a && b) {
        *pzErr = sqlite3_mprintf("litestream-remote: URI options %s and %s "
                                 "name the same setting: give one",
                                 zOurs, zTheirs);
        return SQLITE_MISUSE;
    }
    return SQLITE_OK;
}

/* cache_size= (Litestream's name): bytes, or with a KB/MB/GB suffix
 * (binary multiples).  At least 1 MiB, like cache_mb. */
static int
opt_cache_size(const char *z, uint64_t *out, char **pzErr)
{
    char *end = NULL;
    unsigned long long v = strtoull(z, &end, 10);
    uint64_t mult = 1;
    if (end && *end) {
        static const struct {
            const char *zUnit;
            uint64_t mult;
        } u[] = {{"k", 1u << 10}, {"kb", 1u << 10}, {"kib", 1u << 10},
                 {"m", 1u << 20}, {"mb", 1u << 20}, {"mib", 1u << 20},
                 {"g", 1u << 30}, {"gb", 1u << 30}, {"gib", 1u << 30}};
        mult = 0;
        for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
            if (sqlite3_stricmp(end, u[i].zUnit) == 0)
                mult = u[i].mult;
    }
    if (*z < '0' || *z > '9' || mult == 0 || v > (1ull << 40) / mult ||
        v * mult < (1u << 20)) {
        *pzErr = sqlite3_mprintf("litestream-remote: URI option cache_size "
                                 "must be a size of at least 1 MiB in bytes "
                                 "or with KB, MB or GB (e.g. 67108864 or "
                                 "64MB), not '%s'",
                                 z);
        return SQLITE_MISUSE;
    }
    *out = v * mult;
    return SQLITE_OK;
}

/* poll_ms, cache_mb and their Litestream names. */
static int
opt_poll_cache(const char *zName, remote_opts *o, char **pzErr)
{
    const char *z;
    int64_t v;
    int rc = opt_either(zName, "poll_ms", "poll_interval", &z, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    if (z && sqlite3_uri_parameter(zName, "poll_ms") == NULL) {
        char *zWhy = NULL;
        v = 0;
        if ((strcmp(z, "0") != 0 &&
             timefmt_parse_duration(z, &v, &zWhy) != SQLITE_OK) ||
            v > 86400000) {
            *pzErr = sqlite3_mprintf("litestream-remote: URI option "
                                     "poll_interval must be a duration such "
                                     "as 500ms or 1s (0: never poll), not "
                                     "'%s'",
                                     z);
            sqlite3_free(zWhy);
            return SQLITE_MISUSE;
        }
        o->ro.poll_ms = (int)v;
    } else {
        if ((rc = opt_int(zName, "poll_ms", REMOTE_POLL_MS, 0, 86400000, &v,
                          pzErr)) != SQLITE_OK)
            return rc;
        o->ro.poll_ms = (int)v;
    }
    if ((rc = opt_either(zName, "cache_mb", "cache_size", &z, pzErr)) !=
        SQLITE_OK)
        return rc;
    if (z && sqlite3_uri_parameter(zName, "cache_mb") == NULL)
        return opt_cache_size(z, &o->ro.cache_bytes, pzErr);
    if ((rc = opt_int(zName, "cache_mb", REMOTE_CACHE_MB, 1, 1 << 20, &v,
                      pzErr)) != SQLITE_OK)
        return rc;
    o->ro.cache_bytes = (uint64_t)v << 20;
    return SQLITE_OK;
}

/* hydration= (on/off) and hydration_path=, or Litestream's environment
 * variables LITESTREAM_HYDRATION_ENABLED and LITESTREAM_HYDRATION_PATH. */
static int
opt_hydration(const char *zName, remote_opts *o, char **pzErr)
{
    const char *zOn = sqlite3_uri_parameter(zName, "hydration");
    const char *zPath = sqlite3_uri_parameter(zName, "hydration_path");
    const char *zEnvPath = getenv("LITESTREAM_HYDRATION_PATH");
    int on = -1, fromEnv = zOn == NULL;

    if (zOn == NULL)
        zOn = getenv("LITESTREAM_HYDRATION_ENABLED");
    if (zOn && *zOn) {
        static const char *const azYes[] = {"1", "true", "yes", "on"};
        static const char *const azNo[] = {"0", "false", "no", "off"};
        for (size_t i = 0; i < 4; i++) {
            if (sqlite3_stricmp(zOn, azYes[i]) == 0)
                on = 1;
            if (sqlite3_stricmp(zOn, azNo[i]) == 0)
                on = 0;
        }
        if (on < 0) {
            *pzErr = sqlite3_mprintf(
                "litestream-remote: %s must be 1 or 0 (true/false, on/off), "
                "not '%s'",
                fromEnv ? "LITESTREAM_HYDRATION_ENABLED"
                        : "URI option "
                          "hydration",
                zOn);
            return SQLITE_MISUSE;
        }
    }
    if (zPath && *zPath == 0) {
        *pzErr = sqlite3_mprintf("litestream-remote: URI option "
                                 "hydration_path is empty: give a file "
                                 "name, or leave it out for a temporary "
                                 "file");
        return SQLITE_MISUSE;
    }
    if (zPath == NULL && zEnvPath && *zEnvPath)
        zPath = zEnvPath;
    /* A path alone turns hydration on; hydration=0 turns it off. */
    o->ro.hydrate = on == 1 || (on < 0 && zPath != NULL);
    o->ro.hydrate_path = o->ro.hydrate ? zPath : NULL;
    return SQLITE_OK;
}

int
remote_options(const char *zName, remote_opts *o, char **pzErr)
{
    const char *zTime;
    int64_t v;
    int rc;

    memset(o, 0, sizeof(*o));
    *pzErr = NULL;
    if ((rc = opt_either(zName, "url", "replica_url", &o->zUrl, pzErr)) !=
        SQLITE_OK)
        return rc;
    if (o->zUrl == NULL || o->zUrl[0] == 0)
        o->zUrl = getenv("LITESTREAM_REPLICA_URL");
    if (o->zUrl == NULL || o->zUrl[0] == 0) {
        *pzErr = sqlite3_mprintf(
            "litestream-remote: no replica URL: open "
            "'file:NAME?vfs=litestream-remote&url=<percent-encoded URL>' "
            "(with URI filenames enabled) or set LITESTREAM_REPLICA_URL");
        return SQLITE_CANTOPEN;
    }
    if ((rc = opt_poll_cache(zName, o, pzErr)) != SQLITE_OK)
        return rc;
    if ((rc = opt_int(zName, "timeout_ms", REMOTE_TIMEOUT_MS, 0, 86400000, &v,
                      pzErr)) != SQLITE_OK)
        return rc;
    o->timeout_ms = (int)v;
    if ((rc = opt_txid(zName, "txid", &o->ro.target_txid, pzErr)) !=
            SQLITE_OK ||
        (rc = opt_txid(zName, "min_txid", &o->min_txid, pzErr)) != SQLITE_OK)
        return rc;
    zTime = sqlite3_uri_parameter(zName, "time");
    if (zTime && !timefmt_parse_when(zTime, clock_now_ms(), &o->ro.target_ms)) {
        *pzErr = sqlite3_mprintf("litestream-remote: URI option time must be "
                                 "an RFC 3339 timestamp such as "
                                 "2026-01-02T03:04:05.678Z or a relative "
                                 "time such as '5 minutes ago', not '%s'",
                                 zTime);
        return SQLITE_MISUSE;
    }
    if (zTime && o->ro.target_txid) {
        *pzErr = sqlite3_mprintf("litestream-remote: URI options txid and "
                                 "time exclude each other");
        return SQLITE_MISUSE;
    }
    return opt_hydration(zName, o, pzErr);
}

static int
fail(char **azArg, char *zMsg)
{
    azArg[0] = zMsg;
    return SQLITE_ERROR;
}

/* PRAGMA litestream_time / litestream_txid = value: time travel. */
static int
set_target(remote_file *p, char **azArg, int isTime)
{
    const char *zVal = azArg[2];
    uint64_t txid = 0;
    int64_t ms = 0;
    char *zErr = NULL;
    int rc;

    if (p->lock != SQLITE_LOCK_NONE)
        return fail(azArg, sqlite3_mprintf(
                               "litestream-remote: PRAGMA %s cannot change "
                               "the state served inside a read transaction: "
                               "finish it first",
                               azArg[1]));
    if (sqlite3_stricmp(zVal, "latest") != 0) {
        if (isTime ? !timefmt_parse_when(zVal, clock_now_ms(), &ms)
                   : !remote_parse_txid(zVal, &txid))
            return fail(azArg, sqlite3_mprintf(
                                   "litestream-remote: PRAGMA %s takes %s or "
                                   "'latest', not '%s'",
                                   azArg[1],
                                   isTime ? "an RFC 3339 timestamp such as "
                                            "'2026-01-02T03:04:05Z' or a "
                                            "relative time such as '5 "
                                            "minutes ago'"
                                          : "a TXID (a positive integer or "
                                            "16 hex digits)",
                                   zVal));
    }
    rc = reader_retarget(p->r, txid, ms, &zErr);
    if (rc != SQLITE_OK)
        return fail(azArg, zErr ? zErr
                                : sqlite3_mprintf("litestream-remote: %s",
                                                  sqlite3_errstr(rc)));
    return SQLITE_OK;
}

/* The "hydration" member of PRAGMA litestream_requests. */
static json_t *
hydration_json(remote_file *p, int *pBad)
{
    reader_hydration h;
    json_t *o = json_object();
    char zTx[17];

    reader_get_hydration(p->r, &h);
    snprintf(zTx, sizeof(zTx), "%016llx", (unsigned long long)h.file_txid);
    ls_json_set(o, "status", ls_json_text(h.zState), pBad);
    ls_json_set(o, "progress", json_real(h.progress * 100), pBad);
    ls_json_set(o, "txid", h.file_txid ? ls_json_text(zTx) : json_null(), pBad);
    ls_json_set(o, "get", ls_json_u64(h.n_get), pBad);
    ls_json_set(o, "bytes_down", ls_json_u64(h.bytes_down), pBad);
    ls_json_set(o, "file", ls_json_text(h.zPath), pBad);
    ls_json_set(o, "error", h.zErr[0] ? ls_json_text(h.zErr) : json_null(),
                pBad);
    return o;
}

/* PRAGMA litestream_requests: JSON of the counters (docs/remote.md),
 * sqlite3_malloc'd; NULL when out of memory. */
static char *
requests_json(remote_file *p)
{
    reader_stats s;
    const char *zErr = reader_errmsg(p->r);
    json_t *o = json_object();
    char *z;
    int bad = 0;

    reader_get_stats(p->r, &s);
    ls_json_set(o, "get", ls_json_u64(s.requests.n_get), &bad);
    ls_json_set(o, "list", ls_json_u64(s.requests.n_list), &bad);
    ls_json_set(o, "bytes_down", ls_json_u64(s.requests.bytes_down), &bad);
    ls_json_set(o, "cache_hits", ls_json_u64(s.cache_hits), &bad);
    ls_json_set(o, "cache_misses", ls_json_u64(s.cache_misses), &bad);
    ls_json_set(o, "pages_fetched", ls_json_u64(s.pages_fetched), &bad);
    ls_json_set(o, "polls", ls_json_u64(s.polls), &bad);
    ls_json_set(o, "replans", ls_json_u64(s.replans), &bad);
    ls_json_set(o, "poll_errors", ls_json_u64(s.poll_errors), &bad);
    ls_json_set(o, "last_error", zErr[0] ? ls_json_text(zErr) : json_null(),
                &bad);
    ls_json_set(o, "file_reads", ls_json_u64(s.file_reads), &bad);
    ls_json_set(o, "hydration", hydration_json(p, &bad), &bad);
    z = bad ? NULL : ls_json_dump(o);
    json_decref(o);
    return z;
}

/* PRAGMA litestream_hydration_progress | _status | _file (read-only). */
static int
hydration_pragma(remote_file *p, char **azArg)
{
    reader_hydration h;
    const char *zWhat = azArg[1] + 21;

    if (azArg[2])
        return fail(azArg, sqlite3_mprintf("litestream-remote: PRAGMA %s is "
                                           "read-only (hydration is set by "
                                           "the URI options hydration and "
                                           "hydration_path)",
                                           azArg[1]));
    reader_get_hydration(p->r, &h);
    if (sqlite3_stricmp(zWhat, "progress") == 0)
        azArg[0] = sqlite3_mprintf("%.1f", h.progress * 100);
    else if (sqlite3_stricmp(zWhat, "status") == 0)
        azArg[0] = h.zErr[0] ? sqlite3_mprintf("%s: %s", h.zState, h.zErr)
                             : sqlite3_mprintf("%s", h.zState);
    else if (sqlite3_stricmp(zWhat, "file") == 0)
        azArg[0] = sqlite3_mprintf("%s", h.zPath ? h.zPath : "");
    else
        return fail(azArg, sqlite3_mprintf("litestream-remote: no PRAGMA %s "
                                           "(hydration has _progress, "
                                           "_status and _file)",
                                           azArg[1]));
    return SQLITE_OK;
}

int
remote_pragma(remote_file *p, char **azArg)
{
    const char *zName = azArg[1], *zVal = azArg[2];
    char buf[64];

    if (sqlite3_strnicmp(zName, "litestream_", 11) != 0)
        return SQLITE_NOTFOUND;
    if (sqlite3_stricmp(zName, "litestream_txid") == 0) {
        if (zVal && set_target(p, azArg, 0) != SQLITE_OK)
            return SQLITE_ERROR;
        azArg[0] =
            sqlite3_mprintf("%016llx", (unsigned long long)reader_txid(p->r));
    } else if (sqlite3_stricmp(zName, "litestream_time") == 0) {
        if (zVal && set_target(p, azArg, 1) != SQLITE_OK)
            return SQLITE_ERROR;
        azArg[0] = sqlite3_mprintf(
            "%s", timefmt_time(reader_txid_ms(p->r), buf, sizeof(buf)));
    } else if (sqlite3_stricmp(zName, "litestream_lag") == 0) {
        sqlite3_int64 now = 0;
        sqlite3_vfs *v = sqlite3_vfs_find(NULL);
        v->xCurrentTimeInt64(v, &now); /* Julian day ms */
        now -= 210866760000000LL;      /* to Unix ms */
        azArg[0] =
            sqlite3_mprintf("%lld", (long long)(now - reader_newest_ms(p->r)));
    } else if (sqlite3_strnicmp(zName, "litestream_hydration_", 21) == 0) {
        return hydration_pragma(p, azArg);
    } else if (sqlite3_stricmp(zName, "litestream_requests") == 0) {
        azArg[0] = requests_json(p);
    } else if (sqlite3_stricmp(zName, "litestream_url") == 0) {
        if (zVal)
            return fail(azArg, sqlite3_mprintf(
                                   "litestream-remote: a read replica cannot "
                                   "be replicated: set litestream_url on "
                                   "the primary database"));
        azArg[0] = sqlite3_mprintf("%s", reader_url(p->r));
    } else {
        return fail(azArg,
                    sqlite3_mprintf("litestream-remote: PRAGMA %s is not "
                                    "available on a read replica (see "
                                    "docs/remote.md)",
                                    zName));
    }
    return SQLITE_OK;
}
