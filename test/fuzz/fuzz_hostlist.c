/*
 * fuzz_hostlist.c: fuzz target for the listing decoders of the sftp and
 * webdav backends (storage/backend/sftp_list.c, webdav_list.c), which read
 * what a server sends.
 *
 * The first byte picks the decoder (even: SFTP "ls -l" lines, odd: WebDAV
 * PROPFIND multistatus) and, by its second bit, what it lists (0: objects,
 * sftp_parse_listing and webdav_parse_propfind; 2: directories,
 * sftp_parse_dirs and webdav_parse_dirs of "/app/ltx/0/"); the rest is the
 * input, not NUL-terminated.  A decode must succeed with entries in
 * ascending key order whose keys are non-empty, hold no '/' (WebDAV) and
 * no control character, are not "." or ".." and have size 0 (directories),
 * and whose times are not after "now" (SFTP); or, for WebDAV only, fail with
 * SQLITE_CORRUPT, no entries and a message.  It must never crash or leak.
 * Then the input is decoded again with the n-th SQLite allocation failing,
 * for the first 64 allocations of the clean decode (dav1d style), which
 * must give SQLITE_NOMEM (or the clean result) and leak nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/sftp.h"
#include "storage/backend/webdav.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW 1796607870000LL /* 2026-12-07 01:44:30 UTC */

/* Aborts unless the entries are sane (see above). */
static void
check_objs(const backend_obj *o, int n, int dav, int dirs)
{
    for (int i = 0; i < n; i++) {
        const char *k = o[i].key;
        if (k == NULL || k[0] == 0 || (dav && strchr(k, '/')))
            abort();
        if (dirs &&
            (o[i].size != 0 || strcmp(k, ".") == 0 || strcmp(k, "..") == 0))
            abort();
        for (const char *p = k; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                abort();
        if (i > 0 && strcmp(o[i - 1].key, k) > 0)
            abort();
        if (!dav && o[i].created_ms > FUZZ_NOW)
            abort();
    }
}

/* One decode; returns its rc.  Under oom: rc_clean or SQLITE_NOMEM. */
static int
decode_one(const char *z, size_t n, int dav, int dirs, int oom, int rc_clean)
{
    backend_obj *o = (backend_obj *)1;
    char *zErr = NULL;
    int k = -1, rc, i;

    if (dirs)
        rc = dav ? webdav_parse_dirs(z, n, "/app/ltx/0/", &o, &k, &zErr)
                 : sftp_parse_dirs(z, n, FUZZ_NOW, &o, &k);
    else
        rc = dav ? webdav_parse_propfind(z, n, &o, &k, &zErr)
                 : sftp_parse_listing(z, n, FUZZ_NOW, &o, &k);
    if (rc == SQLITE_OK) {
        if (k < 0 || (k == 0) != (o == NULL) || zErr != NULL ||
            (oom && rc_clean != SQLITE_OK))
            abort();
        check_objs(o, k, dav, dirs);
    } else if (dav && rc == SQLITE_CORRUPT) {
        if (o != NULL || k != 0 || (oom && rc_clean != SQLITE_CORRUPT) ||
            (!oom && zErr == NULL))
            abort();
    } else if (!(oom && rc == SQLITE_NOMEM) || o != NULL || k != 0) {
        abort();
    }
    for (i = 0; rc == SQLITE_OK && i < k; i++)
        sqlite3_free(o[i].key);
    if (rc == SQLITE_OK)
        sqlite3_free(o);
    sqlite3_free(zErr);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z;
    long n, i;
    int rc, dav, dirs;

    if (size == 0)
        return 0;
    fuzz_setup();
    dav = data[0] & 1;
    dirs = (data[0] >> 1) & 1;
    z = malloc(size - 1 ? size - 1 : 1); /* exactly the bytes, for ASan */
    if (z == NULL)
        return 0;
    memcpy(z, data + 1, size - 1);
    fuzz_mem_count = 0;
    rc = decode_one(z, size - 1, dav, dirs, 0, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 64; i++) {
        fuzz_mem_countdown = i;
        decode_one(z, size - 1, dav, dirs, 1, rc);
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
