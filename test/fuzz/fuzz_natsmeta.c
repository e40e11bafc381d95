/*
 * fuzz_natsmeta.c: fuzz target for the decoder of NATS object-store
 * metadata (storage/backend/nats_meta.c), which reads documents any client
 * of the bucket wrote.
 *
 * Each input is decoded as a metadata document (exactly its bytes).  A
 * decode must either succeed with a consistent object (a non-empty name; a
 * nuid, when there is one, of 1..64 characters of [A-Za-z0-9_-]; for a
 * live object that is no link, chunks == 0 iff size == 0 and a nuid
 * whenever there are chunks), or fail with SQLITE_CORRUPT, a zeroed result
 * and a message starting "litestream: "; never crash or leak.  A decoded
 * object that is no link and has a chunk size is encoded again and must
 * decode to the same fields.  Then the input is decoded with the n-th
 * SQLite allocation failing, for the first 64 allocations of the clean
 * decode, which must give the clean result or SQLITE_NOMEM.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/nats_meta.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_object(const nats_meta *m)
{
    size_t i;

    if (m->name == NULL || m->name[0] == 0)
        abort();
    if (m->nuid) {
        for (i = 0; m->nuid[i]; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789-_",
                        m->nuid[i]))
                abort();
        if (i == 0 || i > 64)
            abort();
    }
    if (m->deleted || m->link)
        return;
    if ((m->size == 0) != (m->chunks == 0) || (m->chunks && !m->nuid))
        abort();
}

/* Encodes and decodes again: the same fields (when memory allows). */
static void
check_roundtrip(const nats_meta *m)
{
    char *zDoc = NULL, *zErr = NULL;
    nats_meta d;

    if (m->link || m->chunk_size == 0)
        return;
    if (nats_meta_encode(m, "bucket", &zDoc) != SQLITE_OK)
        return; /* out of memory */
    if (nats_meta_decode(zDoc, strlen(zDoc), &d, &zErr) == SQLITE_OK) {
        if (strcmp(d.name, m->name) != 0 || d.deleted != m->deleted ||
            (!m->deleted && (d.size != m->size || d.chunks != m->chunks)) ||
            d.chunk_size != m->chunk_size || d.created_ms != m->created_ms)
            abort();
        nats_meta_clear(&d);
    } else if (zErr == NULL && fuzz_mem_countdown < 0) {
        abort();
    }
    sqlite3_free(zErr);
    sqlite3_free(zDoc);
}

static int
decode_one(const char *z, size_t n, int oom, int rc_clean)
{
    nats_meta m;
    char *zErr = (char *)1;
    int rc = nats_meta_decode(z, n, &m, &zErr);

    if (rc == SQLITE_OK) {
        if (zErr != NULL || (oom && rc_clean != SQLITE_OK))
            abort();
        check_object(&m);
        if (!oom)
            check_roundtrip(&m);
    } else if (rc == SQLITE_CORRUPT) {
        if (m.name || m.nuid || m.digest || (oom && rc_clean != rc))
            abort();
        if (zErr ? strncmp(zErr, "litestream: ", 12) != 0 : !oom)
            abort();
    } else if (!(oom && rc == SQLITE_NOMEM) || m.name || m.nuid) {
        abort();
    }
    nats_meta_clear(&m);
    sqlite3_free(zErr);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z;
    long n, i;
    int rc;

    fuzz_setup();
    z = malloc(size ? size : 1); /* exactly size bytes, for ASan */
    if (z == NULL)
        return 0;
    memcpy(z, data, size);
    fuzz_mem_count = 0;
    rc = decode_one(z, size, 0, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 64; i++) {
        fuzz_mem_countdown = i;
        decode_one(z, size, 1, rc);
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
