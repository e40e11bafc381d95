/*
 * storage/reader/state.c: small helpers over the reader's shared state
 * (reader_int.h) used by the open/read path (reader.c), the planner
 * (plan.c) and the loader (load.c): the error message, the clock and
 * object keys.  It calls nothing else of the reader, so the reader's files
 * call each other in one direction: reader.c -> plan.c -> load.c -> here.
 *
 * Threads: the reader's owner thread (reader_key also on loader threads).
 */
#include <time.h>

#include "storage/reader/reader_int.h"
#include "storage/base/sqlite.h"

int64_t
reader_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
reader_seterr(reader *r, int rc, char *z)
{
    sqlite3_free(r->zErr);
    r->zErr = z;
    return rc;
}

void
reader_key(const reader *r, const ltx_info *info, char *buf)
{
    layout_key(r->b, info->level, info->min_txid, info->max_txid, buf,
               LAYOUT_KEY_SIZE);
}
