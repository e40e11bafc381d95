/*
 * fuzz_lease.c: fuzz target for the writer lease document read from a
 * replica (storage/replicate/lease_doc.c: lease_doc_parse).
 *
 * A document either parses, with a positive expires_ms, or is refused with
 * SQLITE_CORRUPT, a message and a zeroed document.  One that parses is
 * written again (lease_doc_text) and that text parses to the same
 * generation, pid, released flag and strings (and expiry, for times of
 * years 1970-9999).  Then the parse runs again with the n-th SQLite
 * allocation failing (first 32), which must give SQLITE_NOMEM or the clean
 * result and leak nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/replicate/lease_doc.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void
round_trip(const lease_doc *d)
{
    lease_doc e;
    char *z = lease_doc_text(d);
    if (z == NULL)
        return; /* out of memory */
    if (d->expires_ms < 253402300800000 &&
        lease_doc_parse((const uint8_t *)z, strlen(z), &e, NULL) == SQLITE_OK) {
        if (e.generation != d->generation || e.pid != d->pid ||
            e.released != d->released || e.expires_ms != d->expires_ms ||
            !same_str(e.zOwner, d->zOwner) || !same_str(e.zHost, d->zHost) ||
            !same_str(e.zInstance, d->zInstance) ||
            !same_str(e.zDatabase, d->zDatabase) ||
            !same_str(e.zDbId, d->zDbId))
            abort();
        lease_doc_clear(&e);
    } else if (d->expires_ms < 253402300800000 && fuzz_mem_countdown < 0) {
        abort(); /* what we write must read back */
    }
    sqlite3_free(z);
}

static int
one(const uint8_t *z, size_t n, int oom, int rc_clean)
{
    lease_doc d;
    char *zErr = NULL;
    int rc = lease_doc_parse(z, n, &d, &zErr);

    if (rc == SQLITE_OK) {
        if (zErr || d.expires_ms <= 0)
            abort();
        if (!oom)
            round_trip(&d);
    } else if ((rc != SQLITE_CORRUPT && !(oom && rc == SQLITE_NOMEM)) ||
               d.zOwner || d.zHost || d.zInstance || d.zDatabase || d.zDbId ||
               d.expires_ms || (rc == SQLITE_CORRUPT && !zErr && !oom)) {
        abort();
    }
    if (oom && rc != rc_clean && rc != SQLITE_NOMEM)
        abort();
    lease_doc_clear(&d);
    sqlite3_free(zErr);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long n, i;
    int rc;

    fuzz_setup();
    fuzz_mem_count = 0;
    rc = one(data, size, 0, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 32; i++) {
        fuzz_mem_countdown = i;
        one(data, size, 1, rc);
        fuzz_mem_countdown = -1;
    }
    return 0;
}
