/*
 * fuzz_url.c: fuzz target for the replica URL parser (storage/backend/url.c).
 *
 * Each input is NUL-terminated and parsed; a parse must either succeed with
 * a complete, control-character-free ls_url or fail with a message, and
 * must never crash or leak.  Then the same input is parsed again with the
 * n-th SQLite allocation failing, for every n the clean parse used, so
 * every out-of-memory path is exercised too (dav1d style).
 *
 * The parser allocates through the SQLite API table, so the first call
 * installs a counting allocator and the table (test/unit/api_init.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/url.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
has_ctrl(const char *z)
{
    if (z == NULL)
        return 0;
    for (; *z; z++)
        if ((unsigned char)*z < 0x20 || *z == 0x7f)
            return 1;
    return 0;
}

/* Parses z once; aborts on a broken invariant. */
static void
parse_one(const char *z, int oom_allowed)
{
    ls_url *u = NULL;
    char *zErr = NULL;
    int rc = url_parse(z, &u, &zErr);
    int i;

    if (rc == SQLITE_OK) {
        if (u == NULL || zErr != NULL || u->scheme == NULL || u->path == NULL ||
            u->redacted == NULL)
            abort();
        if (has_ctrl(u->path) || has_ctrl(u->host) || has_ctrl(u->user) ||
            has_ctrl(u->password))
            abort();
        if (strcmp(u->scheme, "file") == 0 && u->path[0] != '/')
            abort();
        if (u->port < 0 || u->port > 65535)
            abort();
        for (i = 0; i < u->nparam; i++) {
            if (u->params[i].key == NULL || u->params[i].value == NULL ||
                url_param(u, u->params[i].key) == NULL)
                abort();
        }
    } else {
        if (u != NULL)
            abort();
        if (rc == SQLITE_ERROR && zErr == NULL)
            abort();
        if (rc != SQLITE_ERROR && !(oom_allowed && rc == SQLITE_NOMEM))
            abort();
    }
    url_free(u);
    sqlite3_free(zErr);
    sqlite3_free(url_redact(z));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *z;
    long n, i;

    fuzz_setup();
    z = malloc(size + 1);
    if (z == NULL)
        return 0;
    memcpy(z, data, size);
    z[size] = 0;

    fuzz_mem_count = 0;
    parse_one(z, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 64; i++) {
        fuzz_mem_countdown = i;
        parse_one(z, 1);
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
