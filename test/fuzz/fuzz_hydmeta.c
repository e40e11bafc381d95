/*
 * fuzz_hydmeta.c: fuzz target for the hydration file's meta
 * (storage/reader/hydrate_meta.c, hydrator_meta_parse()), a file on disk
 * anyone may have written.
 *
 * The input either decodes, with the URL it names equal to the one asked,
 * a non-zero TXID, a valid page size and a page count, or is refused with
 * everything zeroed.  Then again with the n-th SQLite allocation failing
 * (first 16): refused or the same result, nothing leaked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/ltx/ltx.h"
#include "storage/reader/hydrate.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
one(const char *z, size_t n)
{
    hyd_meta m;
    int ok = hydrator_meta_parse(z, n, "file:///r", &m);

    if (ok &&
        (m.txid == 0 || !ltx_page_size_valid(m.page_size) || m.npages == 0))
        abort();
    if (!ok && (m.txid || m.checksum || m.page_size || m.npages))
        abort();
    return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z = malloc(size ? size : 1);
    long n, i;
    int clean;

    if (z == NULL)
        return 0;
    fuzz_setup();
    memcpy(z, data, size);
    fuzz_mem_count = 0;
    clean = one(z, size);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 16; i++) {
        fuzz_mem_countdown = i;
        if (one(z, size) && !clean)
            abort();
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
