/*
 * storage/reader/hydrate_meta.c: decoding "<hydration file>.meta"
 * (hydrate.h), a file another run of the process wrote, or anyone: it is
 * checked field by field (fuzzed: test/fuzz/fuzz_hydmeta.c).
 *
 * Threads: any (pure).
 */
#include <stdlib.h>
#include <string.h>

#include "storage/base/json.h"
#include "storage/ltx/ltx.h"
#include "storage/reader/hydrate.h"

/* A TXID or checksum: exactly 16 hex digits; 0 otherwise. */
static uint64_t
hex16(json_t *o, const char *zKey)
{
    const char *z = json_string_value(json_object_get(o, zKey));
    char *end = NULL;
    uint64_t v;

    if (z == NULL || strlen(z) != 16 || strspn(z, "0123456789abcdef") != 16)
        return 0;
    v = strtoull(z, &end, 16);
    return end && *end == 0 ? v : 0;
}

/* A count in [1, max] (0 for anything else). */
static uint64_t
count(json_t *o, const char *zKey, uint64_t max)
{
    json_t *v = json_object_get(o, zKey);
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : 0;
    return i > 0 && (uint64_t)i <= max ? (uint64_t)i : 0;
}

int
hydrator_meta_parse(const char *z, size_t n, const char *zUrl, hyd_meta *m)
{
    json_t *o = json_loadb(z, n, JSON_REJECT_DUPLICATES, NULL);
    const char *zU = json_string_value(json_object_get(o, "url"));
    int ok;

    memset(m, 0, sizeof(*m));
    if (!json_is_object(o) || zU == NULL || strcmp(zU, zUrl) != 0) {
        json_decref(o);
        return 0;
    }
    m->txid = hex16(o, "txid");
    m->checksum = hex16(o, "checksum");
    m->page_size = (uint32_t)count(o, "page_size", 65536);
    m->npages = (uint32_t)count(o, "pages", UINT32_MAX);
    json_decref(o);
    ok = m->txid != 0 && ltx_page_size_valid(m->page_size) && m->npages;
    if (!ok)
        memset(m, 0, sizeof(*m));
    return ok;
}
