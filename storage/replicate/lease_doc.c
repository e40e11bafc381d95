/*
 * storage/replicate/lease_doc.c: the writer lease document (lease_doc.h):
 * "lock.json", read from the replica (so fuzzed: test/fuzz/fuzz_lease.c)
 * and written by storage/replicate/lease.c.
 *
 * Pure functions, any thread.
 */
#include "storage/replicate/lease_doc.h"

#include <string.h>

#include "storage/base/json.h"
#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"

void
lease_doc_clear(lease_doc *d)
{
    if (d == NULL)
        return;
    sqlite3_free(d->zOwner);
    sqlite3_free(d->zHost);
    sqlite3_free(d->zInstance);
    sqlite3_free(d->zDatabase);
    sqlite3_free(d->zDbId);
    memset(d, 0, sizeof(*d));
}

/* A copy of member zKey if it is a string (at most 4096 bytes). */
static int
doc_str(json_t *o, const char *zKey, char **pz)
{
    json_t *v = json_object_get(o, zKey);
    *pz = NULL;
    if (!json_is_string(v) || json_string_length(v) > 4096)
        return SQLITE_OK;
    *pz = sqlite3_mprintf("%s", json_string_value(v));
    return *pz ? SQLITE_OK : SQLITE_NOMEM;
}

/* Unix ms of member zKey, an RFC 3339 string after 1970; else 0. */
static int64_t
doc_time(json_t *o, const char *zKey)
{
    json_t *v = json_object_get(o, zKey);
    int64_t ms = 0;
    if (json_is_string(v) && json_string_length(v) < 64 &&
        timefmt_parse_time(json_string_value(v), &ms) && ms > 0)
        return ms; /* before 1970 is no time of ours */
    return 0;
}

int
lease_doc_parse(const uint8_t *z, size_t n, lease_doc *d, char **pzErr)
{
    json_error_t err;
    json_t *o = json_loadb((const char *)z, n, JSON_REJECT_DUPLICATES, &err);
    const char *zWhy = NULL;
    int rc = SQLITE_OK;

    memset(d, 0, sizeof(*d));
    if (pzErr)
        *pzErr = NULL;
    if (o == NULL)
        zWhy = err.text;
    else if (!json_is_object(o))
        zWhy = "not a JSON object";
    else if ((d->expires_ms = doc_time(o, "expires_at")) == 0)
        zWhy = "no valid expires_at";
    if (zWhy) {
        rc = SQLITE_CORRUPT;
        if (pzErr)
            *pzErr = sqlite3_mprintf("%s", zWhy);
        goto out;
    }
    json_t *g = json_object_get(o, "generation");
    d->generation = json_is_integer(g) ? (int64_t)json_integer_value(g) : 0;
    json_t *p = json_object_get(o, "pid");
    d->pid = json_is_integer(p) ? (int64_t)json_integer_value(p) : 0;
    d->since_ms = doc_time(o, "since");
    d->released = json_is_true(json_object_get(o, "released"));
    if ((rc = doc_str(o, "owner", &d->zOwner)) == SQLITE_OK &&
        (rc = doc_str(o, "host", &d->zHost)) == SQLITE_OK &&
        (rc = doc_str(o, "instance", &d->zInstance)) == SQLITE_OK &&
        (rc = doc_str(o, "database", &d->zDatabase)) == SQLITE_OK)
        rc = doc_str(o, "db_id", &d->zDbId);
out:
    json_decref(o);
    if (rc != SQLITE_OK)
        lease_doc_clear(d);
    return rc;
}

char *
lease_doc_text(const lease_doc *d)
{
    char zExp[40], zSince[40];
    int bad = 0;
    json_t *o = json_object();
    char *z = NULL;

    if (o == NULL)
        return NULL;
    timefmt_time(d->expires_ms, zExp, sizeof(zExp));
    timefmt_time(d->since_ms, zSince, sizeof(zSince));
    ls_json_set(o, "generation", json_integer(d->generation), &bad);
    ls_json_set(o, "expires_at", ls_json_text(zExp), &bad);
    ls_json_set(o, "owner", ls_json_text(d->zOwner), &bad);
    ls_json_set(o, "host", ls_json_text(d->zHost), &bad);
    ls_json_set(o, "pid", json_integer(d->pid), &bad);
    ls_json_set(o, "instance", ls_json_text(d->zInstance), &bad);
    ls_json_set(o, "database", ls_json_text(d->zDatabase), &bad);
    ls_json_set(o, "since", ls_json_text(zSince), &bad);
    ls_json_set(o, "released", json_boolean(d->released), &bad);
    ls_json_set(o, "db_id", ls_json_text(d->zDbId), &bad);
    if (!bad)
        z = ls_json_dump(o);
    json_decref(o);
    return z;
}
