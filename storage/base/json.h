/*
 * storage/base/json.h: JSON, written and read one way: with jansson.
 *
 * The only file that includes <jansson.h> (house rule 4): every other file
 * includes this one and uses jansson's API as re-exported here, plus the
 * few helpers below that tie it to SQLite:
 *
 *   ls_json_text()    a JSON string for any C string (NULL -> null; bytes
 *                     that are not UTF-8 become U+FFFD, so a path or a
 *                     schema name never makes a document invalid)
 *   ls_json_u64()     a JSON integer for an unsigned counter
 *   ls_json_set()     json_object_set_new() that remembers a failure
 *   ls_json_dump()    a compact document as an sqlite3_malloc'd string
 *   ls_json_result()  a document as the result of an SQL function
 *
 * jansson keeps its own allocator (house rule 3: the host owns it); what
 * leaves this module is always sqlite3_malloc'd.  Objects keep their keys
 * in insertion order (jansson >= 2.8), so a document reads in the order it
 * was built.  Pure functions, any thread.
 */
#ifndef LITESTREAM_JSON_H
#define LITESTREAM_JSON_H

#include <stdint.h>

#include <jansson.h>

#include "storage/base/sqlite.h"

/*
 * A new JSON string holding z (NUL-terminated; NULL gives json null).
 * Invalid UTF-8 sequences are replaced by U+FFFD.  New reference, or NULL
 * when out of memory.
 */
json_t *ls_json_text(const char *z);

/* A new JSON integer for v (values above INT64_MAX are clamped). */
json_t *ls_json_u64(uint64_t v);

/*
 * Sets key zKey of object o to v, stealing the reference to v (as
 * json_object_set_new; v NULL is a failure).  On failure sets *pBad to 1,
 * so that a builder can set many keys and check once.
 */
void ls_json_set(json_t *o, const char *zKey, json_t *v, int *pBad);

/*
 * The compact text of j, sqlite3_malloc'd (free with sqlite3_free), or NULL
 * when j is NULL or memory runs out.  Does not consume j.
 */
char *ls_json_dump(const json_t *j);

/*
 * Sets j's text as the result of ctx (or an out-of-memory error when j is
 * NULL or cannot be dumped) and releases j.
 */
void ls_json_result(sqlite3_context *ctx, json_t *j);

#endif
