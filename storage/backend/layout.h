/*
 * storage/backend/layout.h: where LTX objects live in a replica
 * (docs/ltx-format.md 2.1).
 *
 * An LTX object is named "<level dir><min 16hex>-<max 16hex>.ltx", the level
 * directory being given by the backend's level_fmt: "ltx/<level>/" for the
 * file-like backends, "<level %04x>/" for S3.  Levels are 0..9 (9 holds
 * snapshots).  Listing a level keeps only names matching
 * ^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$ and orders them by (min, max) TXID.
 *
 * Threads: whatever thread owns the backend handle.
 */
#ifndef LITESTREAM_LAYOUT_H
#define LITESTREAM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/backend.h"

#define LAYOUT_MAX_LEVEL 9  /* the snapshot level */
#define LAYOUT_KEY_SIZE  64 /* enough for any key layout_key() writes */

/* One LTX object of a replica. */
typedef struct ltx_info {
    int level;
    uint64_t min_txid, max_txid;
    uint64_t size;      /* bytes */
    int64_t created_ms; /* object creation time, Unix ms */
} ltx_info;

/*
 * Writes the key of the object (level, min, max) into buf (n bytes), e.g.
 * "ltx/0/0000000000000001-0000000000000005.ltx".  Returns SQLITE_OK, or
 * SQLITE_MISUSE (level outside 0..9, min 0 or min > max) / SQLITE_TOOBIG (buf
 * too small) leaving buf an empty string when n > 0.
 */
int layout_key(const backend *b, int level, uint64_t min, uint64_t max,
               char *buf, size_t n);

/*
 * Parses an object name (without directory) "<16hex>-<16hex>.ltx", lowercase
 * hex only.  Returns 1 and sets *min and *max, else 0 (outputs untouched).
 * min must be >= 1 and <= max.
 */
int layout_parse_name(const char *zName, uint64_t *min, uint64_t *max);

/*
 * Lists one level: *out is an array of *n entries (sqlite3_free() it; NULL
 * when *n is 0), sorted by (min, max); names that are not LTX names are
 * skipped.  Returns SQLITE_OK or the backend's error (message in
 * backend_errmsg(b)); SQLITE_MISUSE for a level outside 0..9.
 */
int layout_list_level(backend *b, int level, ltx_info **out, int *n);

/*
 * Lists levels 0..9 into one array, level by level, each sorted as in
 * layout_list_level().  Same ownership and errors.
 */
int layout_list_all(backend *b, ltx_info **out, int *n);

#endif
