/*
 * fuzz_gcs.c: fuzz target for what the gs service-account path decodes
 * (storage/backend/gcs_key.c): a key file (gcs_key_parse) and a token
 * endpoint's answer (gcs_token_parse), both from the same input.
 *
 * A key either parses, with client_email, private_key and an http(s)
 * token_uri, or is refused with SQLITE_AUTH, a message and a cleared key.
 * A token answer either gives a non-empty token without CR or LF and a
 * lifetime of 10 s to a day, or SQLITE_ERROR and no token.  Then both run
 * again with the n-th SQLite allocation failing (first 32), which must give
 * SQLITE_NOMEM or the clean result and leak nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/gcs_token.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
one(const char *z, size_t n, int oom, int rc_clean)
{
    gcs_key k;
    char *zErr = NULL, *zTok = (char *)1;
    long ttl = 0;
    int rc = gcs_key_parse(z, n, "fuzz.json", &k, &zErr);
    int rc2;

    if (rc == SQLITE_OK) {
        if (zErr || !k.email || !k.pem || !k.uri ||
            (strncmp(k.uri, "http://", 7) && strncmp(k.uri, "https://", 8)))
            abort();
    } else if (rc != SQLITE_AUTH || k.root != NULL || (zErr == NULL && !oom)) {
        abort();
    }
    gcs_key_clear(&k);
    sqlite3_free(zErr);
    rc2 = gcs_token_parse(z, n, &zTok, &ttl);
    if (rc2 == SQLITE_OK) {
        if (!zTok || !zTok[0] || strpbrk(zTok, "\r\n") || ttl < 10 ||
            ttl > 86400)
            abort();
    } else if ((rc2 != SQLITE_ERROR && !(oom && rc2 == SQLITE_NOMEM)) ||
               zTok != NULL) {
        abort();
    }
    if (oom && rc2 != rc_clean && rc2 != SQLITE_NOMEM)
        abort();
    sqlite3_free(zTok);
    return rc2;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z = malloc(size ? size : 1);
    long n, i;
    int rc;

    if (z == NULL)
        return 0;
    fuzz_setup();
    memcpy(z, data, size);
    fuzz_mem_count = 0;
    rc = one(z, size, 0, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 32; i++) {
        fuzz_mem_countdown = i;
        one(z, size, 1, rc);
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
