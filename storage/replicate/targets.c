/*
 * storage/replicate/targets.c: the replicas of a URL list (PRAGMA
 * litestream_url = 'URL1 URL2'): parsing the list, opening each replica's
 * backend, writer lease and checksum table (targets.h).
 */
#include "storage/replicate/targets.h"
#include "storage/replicate/lease.h"

#include <string.h>

/*
 * Opens replica n of the list: the URL, its backend, its writer lease, its
 * checksum table.  No I/O to the replica yet.
 */
static int
open_target(replicator *r, int n, const char *zUrl, size_t len, char **pzErr)
{
    rep_target *tg = &r->tg[n];
    tg->r = r;
    tg->idx = n;
    tg->zUrl = sqlite3_mprintf("%.*s", (int)len, zUrl);
    if (!tg->zUrl)
        return SQLITE_NOMEM;
    for (int i = 0; i < n; i++)
        if (strcmp(r->tg[i].zUrl, tg->zUrl) == 0) {
            *pzErr = sqlite3_mprintf("litestream: the URL list names %s "
                                     "twice: give each replica once",
                                     r->tg[i].url->redacted);
            return SQLITE_ERROR;
        }
    int rc = url_parse(tg->zUrl, &tg->url, pzErr);
    if (rc == SQLITE_OK)
        rc = backend_open_url(tg->url, &tg->be, pzErr);
    if (rc == SQLITE_OK)
        rc = lease_open(tg->url, r->zDbPath, &tg->lease, pzErr);
    if (rc == SQLITE_OK)
        rc = cktab_init_n(&tg->ck, sidecar_dir(r->sc), n);
    if (rc == SQLITE_OK)
        cktab_load(&tg->ck, sidecar_replicated_n(r->sc, n));
    return rc;
}

/*
 * Opens every replica of the whitespace-separated list zUrl and joins
 * their redacted URLs for PRAGMA litestream_url.
 */
int
rep_open_targets(replicator *r, const char *zUrl, char **pzErr)
{
    int rc = SQLITE_OK;
    const char *z = zUrl;
    while (rc == SQLITE_OK) {
        z += strspn(z, " \t\r\n");
        size_t len = strcspn(z, " \t\r\n");
        if (!len)
            break;
        if (r->ntg == LS_MAX_REPLICAS) {
            *pzErr = sqlite3_mprintf("litestream: at most %d replica URLs "
                                     "per database, not more",
                                     LS_MAX_REPLICAS);
            return SQLITE_ERROR;
        }
        rc = open_target(r, r->ntg++, z, len, pzErr);
        z += len;
    }
    if (rc == SQLITE_OK && r->ntg == 0) {
        *pzErr = sqlite3_mprintf("litestream: the replica URL is empty");
        rc = SQLITE_ERROR;
    }
    for (int i = 0; rc == SQLITE_OK && i < r->ntg; i++) {
        char *zJoined =
            sqlite3_mprintf("%s%s%s", r->zUrlRedacted ? r->zUrlRedacted : "",
                            i ? " " : "", r->tg[i].url->redacted);
        sqlite3_free(r->zUrlRedacted);
        r->zUrlRedacted = zJoined;
        if (!zJoined)
            rc = SQLITE_NOMEM;
    }
    return rc;
}

int
replicator_check_url(const char *zUrl, char **pzErr)
{
    const char *z = zUrl, *azSeen[LS_MAX_REPLICAS];
    size_t anSeen[LS_MAX_REPLICAS];
    int n = 0, rc = SQLITE_OK;
    while (rc == SQLITE_OK) {
        z += strspn(z, " \t\r\n");
        size_t len = strcspn(z, " \t\r\n");
        if (!len)
            break;
        if (n == LS_MAX_REPLICAS) {
            *pzErr = sqlite3_mprintf("litestream: at most %d replica URLs "
                                     "per database, not more",
                                     LS_MAX_REPLICAS);
            return SQLITE_ERROR;
        }
        char *zOne = sqlite3_mprintf("%.*s", (int)len, z);
        ls_url *u = NULL;
        rc = zOne ? url_parse(zOne, &u, pzErr) : SQLITE_NOMEM;
        for (int i = 0; rc == SQLITE_OK && i < n; i++)
            if (anSeen[i] == len && memcmp(azSeen[i], z, len) == 0) {
                *pzErr = sqlite3_mprintf("litestream: the URL list names %s "
                                         "twice: give each replica once",
                                         u->redacted);
                rc = SQLITE_ERROR;
            }
        url_free(u);
        sqlite3_free(zOne);
        azSeen[n] = z;
        anSeen[n++] = len;
        z += len;
    }
    return rc;
}
