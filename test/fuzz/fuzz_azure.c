/*
 * fuzz_azure.c: fuzz target for the decoding of Azure List Blobs answers
 * (storage/backend/azure_list.c): az_list_decode() and az_http_date().
 *
 * The first input byte chooses the prefix length (0-7) stripped from blob
 * names; the rest is the answer.  A decode must either succeed, with every
 * listed key a non-empty string, every time -1 or a Unix ms of years
 * 1970-9999, and a marker that is NULL or non-empty; or fail with
 * SQLITE_CORRUPT and a message, having listed nothing.  The same bytes,
 * NUL-terminated, go to az_http_date(), whose result must lie in years
 * 1970-9999.  Then the decode runs again with the n-th SQLite allocation
 * failing (first 64), which must give SQLITE_NOMEM or the clean result and
 * leak nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/azure_client.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS_YEAR_10000 253402300800000LL

static int
decode_one(const char *z, size_t n, size_t nPrefix, int oom, int rc_clean)
{
    backend_obj *objs = NULL;
    int nobj = 0, nalloc = 0, i;
    char *zNext = (char *)1, *zErr = NULL;
    int rc =
        az_list_decode(z, n, nPrefix, &objs, &nobj, &nalloc, &zNext, &zErr);

    if (rc == SQLITE_OK) {
        if (oom && rc_clean != SQLITE_OK)
            abort();
        for (i = 0; i < nobj; i++)
            if (objs[i].key == NULL || objs[i].key[0] == 0 ||
                objs[i].created_ms < -1 || objs[i].created_ms >= MS_YEAR_10000)
                abort();
        if (zNext != NULL && zNext[0] == 0)
            abort();
    } else if (rc == SQLITE_CORRUPT) {
        if (nobj != 0 || zErr == NULL || zNext != NULL ||
            (oom && rc_clean != SQLITE_CORRUPT))
            abort();
    } else if (!(oom && rc == SQLITE_NOMEM)) {
        abort();
    }
    if (zNext == (char *)1)
        abort();
    for (i = 0; i < nobj; i++) /* backend_objs_free() is not linked in */
        sqlite3_free(objs[i].key);
    sqlite3_free(objs);
    sqlite3_free(zNext);
    sqlite3_free(zErr);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nPrefix = size ? data[0] % 8 : 0;
    char *z;
    long n, i;
    int64_t ms = -2;
    int rc;

    fuzz_setup();
    if (size > 0) {
        data++;
        size--;
    }
    z = malloc(size + 1);
    if (z == NULL)
        return 0;
    memcpy(z, data, size);
    z[size] = 0;
    if (az_http_date(z, &ms) && (ms < 0 || ms >= MS_YEAR_10000))
        abort();

    fuzz_mem_count = 0;
    rc = decode_one(z, size, nPrefix, 0, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 64; i++) {
        fuzz_mem_countdown = i;
        decode_one(z, size, nPrefix, 1, rc);
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
