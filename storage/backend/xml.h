/*
 * storage/backend/xml.h: a small XML reader for object-store responses (S3
 * ListObjectsV2, errors, multipart, multi-delete; later Azure listings and
 * WebDAV PROPFIND).
 *
 * Parses a whole document into a tree of elements.  Namespaces are ignored:
 * an element "s3:Contents" or one in any xmlns is known by its local name
 * "Contents" (s3rver answers with another namespace than AWS).  Attributes
 * are skipped.  Text is entity-decoded (&lt; &gt; &amp; &quot; &apos;, &#N;
 * and &#xN; as UTF-8) and CDATA sections are taken verbatim; comments,
 * processing instructions and a DOCTYPE without an internal subset are
 * skipped.  Input comes from the network: it is bounded (depth <= 64),
 * every malformed document is an error with the byte offset, never a
 * crash; the parser has a fuzz target (test/fuzz/fuzz_xml.c).
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_XML_H
#define LITESTREAM_XML_H

#include <stddef.h>

typedef struct xml_node {
    char *name;             /* local name (prefix stripped) */
    char *text;             /* decoded text directly inside, "" if none */
    struct xml_node *child; /* first child element */
    struct xml_node *next;  /* next sibling element */
} xml_node;

/*
 * Parses z[0..n).  On success returns SQLITE_OK and *root (the document
 * element; free with xml_free()).  Otherwise SQLITE_CORRUPT (malformed, with
 * *pzErr like "litestream: malformed XML at byte 37: unterminated tag") or
 * SQLITE_NOMEM; *root is NULL.  pzErr may be NULL.
 */
int xml_parse(const char *z, size_t n, xml_node **root, char **pzErr);

/* Frees the tree of a document element returned by xml_parse() (never an
 * inner node); NULL is a no-op.  Texts of "" may be shared: never write
 * to a node's text. */
void xml_free(xml_node *root);

/* The first child of parent with local name zName, or NULL. */
const xml_node *xml_child(const xml_node *parent, const char *zName);

/* The next sibling after node with the same local name, or NULL. */
const xml_node *xml_next(const xml_node *node);

/*
 * The text of the element reached from parent by a '/'-separated path of
 * local names, taking the first match at each step (from the root of a
 * ListObjectsV2 answer: "Contents/Key"; of an S3 error, whose root is
 * <Error>: "Code"), or NULL if there is no such element.  Whitespace between
 * elements is text of their parent: read leaf elements.
 */
const char *xml_text(const xml_node *parent, const char *zPath);

/*
 * z with < > & " ' written as entities, for element text of a request
 * body.  sqlite3_malloc'd; NULL if out of memory.
 */
char *xml_escape(const char *z);

#endif
