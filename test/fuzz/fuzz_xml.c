/*
 * fuzz_xml.c: fuzz target for the XML reader (storage/backend/xml.c).
 *
 * Each input is parsed as a document (not NUL-terminated: the parser gets
 * exactly the bytes).  A parse must either succeed with a tree whose every
 * name is a non-empty local name without ':' and whose every text is a
 * string with no control character other than tab, LF and CR, at most 64
 * levels deep; or fail with SQLITE_CORRUPT, a NULL root and a message
 * "litestream: malformed XML at byte N: ..." with N <= size.  It must never
 * crash or leak.  The tree is walked (every name and text touched) and
 * queried through xml_child(), xml_next() and xml_text().  Then the input
 * is parsed again with the n-th SQLite allocation failing, for the first
 * 64 allocations of the clean parse (dav1d style), which must give
 * SQLITE_NOMEM (or the clean result) and leak nothing.
 *
 * The parser allocates through the SQLite API table, so the first call
 * installs a counting allocator and the table (test/unit/api_init.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/xml.h"
#include "test/fuzz/failmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless z is a string without control characters but \t \n \r. */
static void
check_string(const char *z, int allow_empty)
{
    size_t i;

    if (z == NULL || (!allow_empty && z[0] == 0))
        abort();
    for (i = 0; z[i]; i++) {
        unsigned char c = (unsigned char)z[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            abort();
    }
}

/* Checks one node and queries it through the API. */
static void
check_node(const xml_node *nd)
{
    const xml_node *c;

    check_string(nd->name, 0);
    check_string(nd->text, 1);
    if (strchr(nd->name, ':') != NULL)
        abort();
    if (nd->child != NULL) {
        c = xml_child(nd, nd->child->name);
        if (c != nd->child || xml_text(nd, c->name) != c->text)
            abort();
    }
    c = xml_next(nd);
    if (c != NULL && strcmp(c->name, nd->name) != 0)
        abort();
}

/* Walks the tree without recursion; aborts if it is deeper than 64. */
static void
walk(const xml_node *root)
{
    const xml_node *stack[64];
    const xml_node *nd = root;
    int depth = 0;

    if (root == NULL || root->next != NULL)
        abort();
    while (nd != NULL) {
        check_node(nd);
        if (nd->child != NULL) {
            if (depth == 63) /* nd is at level 64 */
                abort();
            stack[depth++] = nd;
            nd = nd->child;
            continue;
        }
        while (nd != NULL && nd->next == NULL)
            nd = depth > 0 ? stack[--depth] : NULL;
        if (nd != NULL)
            nd = nd->next;
    }
    (void)xml_text(root, "Contents/Key");
    (void)xml_text(root, "Error/Code");
    (void)xml_text(root, "Code");
    (void)xml_text(root, "a/b/c/d");
    (void)xml_text(root, "");
    (void)xml_text(root, "//");
}

/* Aborts unless zErr is "litestream: malformed XML at byte N: x", N <= n. */
static void
check_message(const char *zErr, size_t n)
{
    static const char zPrefix[] = "litestream: malformed XML at byte ";
    char *zEnd;
    unsigned long long at;

    if (zErr == NULL || strncmp(zErr, zPrefix, sizeof(zPrefix) - 1) != 0)
        abort();
    at = strtoull(zErr + sizeof(zPrefix) - 1, &zEnd, 10);
    if (zEnd == zErr + sizeof(zPrefix) - 1 || at > n ||
        strncmp(zEnd, ": ", 2) != 0 || zEnd[2] == 0)
        abort();
}

/*
 * Parses once; returns the rc.  Under oom, the result must be rc_clean (the
 * clean parse's) or SQLITE_NOMEM.
 */
static int
parse_one(const char *z, size_t n, int oom, int rc_clean)
{
    xml_node *root = (xml_node *)1;
    char *zErr = (char *)1;
    int rc = xml_parse(z, n, &root, &zErr);

    if (rc == SQLITE_OK) {
        if (zErr != NULL || (oom && rc_clean != SQLITE_OK))
            abort();
        walk(root);
    } else if (rc == SQLITE_CORRUPT) {
        if (root != NULL || (oom && rc_clean != SQLITE_CORRUPT))
            abort();
        check_message(zErr, n);
    } else if (!(oom && rc == SQLITE_NOMEM) || root != NULL || zErr != NULL) {
        abort();
    }
    xml_free(root);
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
    rc = parse_one(z, size, 0, 0);
    n = fuzz_mem_count;
    for (i = 0; i < n && i < 64; i++) {
        fuzz_mem_countdown = i;
        parse_one(z, size, 1, rc);
        fuzz_mem_countdown = -1;
    }
    free(z);
    return 0;
}
