/*
 * sql/auto.c: litestream_auto(), the SQL face of vfs/auto.h.
 *
 *   litestream_auto(dir, url[, pattern])  every database opened later
 *                                         under dir replicates to
 *                                         url/<path relative to dir>
 *   litestream_auto(dir, NULL)            dir's rule removed ('' too)
 *   litestream_auto(NULL)                 every rule removed
 *   litestream_auto()                     the rules, unchanged
 *
 * Each returns the rules in effect afterwards, as JSON (docs/sql.md).
 *
 * Runs on the application thread calling the function.
 */
#include "sql/sql.h"
#include "vfs/auto.h"

#include <stddef.h>

#define AUTO_USAGE                                                             \
    "litestream_auto(dir, url[, pattern]) starts the rule of dir, "            \
    "litestream_auto(dir, NULL) removes it, litestream_auto(NULL) removes "    \
    "every rule"

/* Argument i as text, or NULL when it is NULL; *pBad when it is neither. */
static const char *
text_arg(sqlite3_value **argv, int argc, int i, int *pBad)
{
    if (i >= argc || sqlite3_value_type(argv[i]) == SQLITE_NULL)
        return NULL;
    if (sqlite3_value_type(argv[i]) != SQLITE_TEXT)
        *pBad = 1;
    return (const char *)sqlite3_value_text(argv[i]);
}

static void
fn_auto(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    int bad = 0, rc = SQLITE_OK;
    char *zErr = NULL;
    const char *zDir = text_arg(argv, argc, 0, &bad);
    const char *zUrl = text_arg(argv, argc, 1, &bad);
    const char *zPattern = text_arg(argv, argc, 2, &bad);
    if (bad || (argc == 1 && zDir) || (argc > 1 && !zDir) ||
        (zPattern && (!zUrl || !zUrl[0]))) {
        sqlite3_result_error(ctx, AUTO_USAGE " (text arguments)", -1);
        return;
    }
    if (argc > 0)
        rc = vfs_auto_set(zDir, zUrl && zUrl[0] ? zUrl : NULL, zPattern, &zErr);
    if (rc != SQLITE_OK) {
        sqlite3_result_error(ctx, zErr ? zErr : sqlite3_errstr(rc), -1);
        sqlite3_free(zErr);
        return;
    }
    char *zJson = vfs_auto_rules_json();
    if (zJson)
        sqlite3_result_text(ctx, zJson, -1, sqlite3_free);
    else
        sqlite3_result_error_nomem(ctx);
}

int
sql_register_auto(sqlite3 *db)
{
    int rc = SQLITE_OK;
    for (int n = 0; n <= 3 && rc == SQLITE_OK; n++)
        rc = sqlite3_create_function_v2(db, "litestream_auto", n,
                                        SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                                        fn_auto, NULL, NULL, NULL);
    return rc;
}
