/*
 * storage/replicate/lease_opts.c: the writer lease's URL parameters and the
 * database file's identity (lease_opts.h).
 */
#include "storage/replicate/lease_opts.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"

#define LEASE_DEFAULT_TTL_MS 30000
#define LEASE_MIN_TTL_MS     1000

int
lease_opts_params(const ls_url *u, int *off, int64_t *ttl, char **pzErr)
{
    const char *z = url_param(u, "lease");
    char *zWhy = NULL;
    *off = 0;
    *ttl = LEASE_DEFAULT_TTL_MS;
    if (z && (strcmp(z, "off") == 0 || strcmp(z, "false") == 0))
        *off = 1;
    else if (z && strcmp(z, "on") != 0 && strcmp(z, "true") != 0) {
        *pzErr = sqlite3_mprintf("litestream: bad lease=%s in the replica URL: "
                                 "use lease=off to write without a writer "
                                 "lease, or leave it out",
                                 z);
        return SQLITE_ERROR;
    }
    z = url_param(u, "lease_ttl");
    if (z == NULL)
        return SQLITE_OK;
    if (timefmt_parse_duration(z, ttl, &zWhy) != SQLITE_OK ||
        *ttl < LEASE_MIN_TTL_MS) {
        *pzErr = sqlite3_mprintf("litestream: bad lease_ttl=%s in the replica "
                                 "URL (%s): give a duration of at least 1s, "
                                 "e.g. lease_ttl=30s",
                                 z, zWhy ? zWhy : "too short");
        sqlite3_free(zWhy);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

char *
lease_opts_db_id(const char *zDbPath)
{
    char zBoot[64];
    struct stat st;
    size_t n;
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (f == NULL)
        return NULL;
    n = fread(zBoot, 1, sizeof(zBoot) - 1, f);
    fclose(f);
    while (n > 0 && (zBoot[n - 1] == '\n' || zBoot[n - 1] == ' '))
        n--;
    zBoot[n] = 0;
    if (n == 0 || stat(zDbPath, &st) != 0)
        return NULL;
    return sqlite3_mprintf("%s:%llu:%llu", zBoot, (unsigned long long)st.st_dev,
                           (unsigned long long)st.st_ino);
}
