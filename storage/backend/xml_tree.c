/*
 * storage/backend/xml_tree.c: reading a tree that storage/backend/xml.c built
 * (xml.h): children by local name, same-name siblings, text by path; and
 * the escaping of text for request bodies.
 *
 * Threads: pure functions on an immutable tree; any thread.
 */
#include "storage/backend/xml.h"

#include <string.h>

#include "storage/base/sqlite.h"

/* The first child of parent whose name is the n bytes at zName. */
static const xml_node *
xml_child_n(const xml_node *parent, const char *zName, size_t n)
{
    const xml_node *c;

    if (parent == NULL || zName == NULL)
        return NULL;
    for (c = parent->child; c != NULL; c = c->next) {
        if (strncmp(c->name, zName, n) == 0 && c->name[n] == 0)
            return c;
    }
    return NULL;
}

const xml_node *
xml_child(const xml_node *parent, const char *zName)
{
    return zName ? xml_child_n(parent, zName, strlen(zName)) : NULL;
}

const xml_node *
xml_next(const xml_node *node)
{
    const xml_node *c;

    if (node == NULL)
        return NULL;
    for (c = node->next; c != NULL; c = c->next) {
        if (strcmp(c->name, node->name) == 0)
            return c;
    }
    return NULL;
}

/* An empty path names parent itself; an empty step ("a//b", "a/") none. */
const char *
xml_text(const xml_node *parent, const char *zPath)
{
    const char *zEnd;

    if (parent == NULL || zPath == NULL)
        return NULL;
    while (*zPath && parent != NULL) {
        zEnd = strchr(zPath, '/');
        if (zEnd == NULL)
            zEnd = zPath + strlen(zPath);
        if (zEnd == zPath || (zEnd[0] == '/' && zEnd[1] == 0))
            return NULL;
        parent = xml_child_n(parent, zPath, (size_t)(zEnd - zPath));
        zPath = *zEnd ? zEnd + 1 : zEnd;
    }
    return parent ? parent->text : NULL;
}

char *
xml_escape(const char *z)
{
    sqlite3_str *s = sqlite3_str_new(NULL);

    for (; *z; z++) {
        switch (*z) {
        case '<':
            sqlite3_str_appendall(s, "&lt;");
            break;
        case '>':
            sqlite3_str_appendall(s, "&gt;");
            break;
        case '&':
            sqlite3_str_appendall(s, "&amp;");
            break;
        case '"':
            sqlite3_str_appendall(s, "&quot;");
            break;
        case '\'':
            sqlite3_str_appendall(s, "&apos;");
            break;
        default:
            sqlite3_str_appendchar(s, 1, *z);
        }
    }
    return sqlite3_str_finish(s);
}
