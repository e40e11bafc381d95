/*
 * storage/backend/xml.c: the XML reader for object-store responses (see xml.h).
 *
 * One pass checks that every byte belongs to a valid XML character
 * (well-formed UTF-8, no NUL, no control character but tab, LF and CR, no
 * surrogate, no U+FFFE/U+FFFF); a second pass walks the document left to
 * right with an explicit stack of open elements, building the tree as it
 * goes.  There is no recursion: the depth of the document only sizes the
 * stack, which is bounded by XML_MAX_DEPTH.
 *
 * Text: all open elements share one growing buffer used as a stack; an
 * element's text runs from where it was opened to the end of the buffer
 * (its children pop theirs when they close), so appending is amortised
 * O(1) and each byte is copied twice at most.  Line ends are not
 * normalised and whitespace is kept: the text is exactly the decoded
 * character data.  Text is not assembled from entity expansion of declared
 * entities: a DOCTYPE with an internal subset is refused.
 *
 * Invariants:
 *   1. Every node is linked into the tree as soon as it is allocated, so on
 *      any failure freeing p->root frees everything (nothing leaks).
 *   2. Names and texts of a returned tree are NUL-terminated, valid UTF-8
 *      and hold only XML characters; names have no ':' and are not empty.
 *   3. Every error but out-of-memory is SQLITE_CORRUPT with
 *      "litestream: malformed XML at byte N: <what>", N < n + 1.
 *   4. Time and memory are linear in n (siblings are appended through a
 *      tail pointer; xml_free() walks the tree without a stack).
 *
 * Threads: no shared state; any thread.
 */
#include "storage/backend/xml.h"

#include <stdarg.h>
#include <string.h>

#include "storage/base/sqlite.h"

#define XML_MAX_DEPTH  64
#define XML_NAME_SHOWN 64 /* bytes of a name quoted in a message */

/* The text of an element without character data (never freed). */
static char xml_empty[1];

/* An element whose end tag has not been seen yet. */
typedef struct xml_open {
    xml_node *node; /* the element */
    xml_node *last; /* its last child so far (O(1) appends) */
    size_t at;      /* offset of its start tag */
    size_t qoff;    /* its qualified name in the input, for the end tag */
    size_t qlen;
    size_t text0; /* where its text starts in the text buffer */
} xml_open;

/* State of one xml_parse() call. */
typedef struct xml_parser {
    const unsigned char *z; /* the input */
    size_t n;
    size_t i;       /* current offset */
    int wantMsg;    /* the caller wants a message */
    char *zErr;     /* message of the failure */
    xml_node *root; /* the document element, once opened */
    int depth;      /* number of open elements */
    xml_open stack[XML_MAX_DEPTH];
    char *buf; /* text of the open elements */
    size_t nBuf, nAlloc;
} xml_parser;

/* Records a failure at byte at; returns SQLITE_CORRUPT (or NOMEM). */
__attribute__((format(printf, 3, 4))) static int
xml_fail(xml_parser *p, size_t at, const char *zFmt, ...)
{
    va_list ap;
    char *zWhat;

    if (!p->wantMsg || p->zErr != NULL)
        return SQLITE_CORRUPT;
    va_start(ap, zFmt);
    zWhat = sqlite3_vmprintf(zFmt, ap);
    va_end(ap);
    if (zWhat != NULL)
        p->zErr = sqlite3_mprintf("litestream: malformed XML at byte %lld: %s",
                                  (sqlite3_int64)at, zWhat);
    sqlite3_free(zWhat);
    return p->zErr != NULL ? SQLITE_CORRUPT : SQLITE_NOMEM;
}

/* How many bytes of the name at off (qlen bytes) a message shows. */
static int
xml_shown(const xml_parser *p, size_t off, size_t len)
{
    if (len <= XML_NAME_SHOWN)
        return (int)len;
    len = XML_NAME_SHOWN;
    while (len > 0 && (p->z[off + len] & 0xc0) == 0x80)
        len--; /* do not cut a UTF-8 sequence */
    return (int)len;
}

/* ---- characters ---- */

static int
xml_is_char(unsigned long c)
{
    return c == 0x09 || c == 0x0a || c == 0x0d || (c >= 0x20 && c <= 0xd7ff) ||
           (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/* Length of the valid UTF-8 XML character at z[0..n), n > 0; 0 if none. */
static size_t
xml_char_len(const unsigned char *z, size_t n)
{
    unsigned long c = z[0];
    size_t len, k;

    if (c < 0x80)
        return xml_is_char(c) ? 1 : 0;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, c &= 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, c &= 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, c &= 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (k = 1; k < len; k++) {
        if ((z[k] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (z[k] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000))
        return 0; /* overlong */
    return xml_is_char(c) ? len : 0;
}

/* Fails at the first byte that does not start a valid XML character. */
static int
xml_check_chars(xml_parser *p)
{
    size_t i = 0, len;

    while (i < p->n) {
        if (p->z[i] >= 0x20 && p->z[i] < 0x80) {
            i++;
            continue;
        }
        len = xml_char_len(p->z + i, p->n - i);
        if (len == 0) {
            if (p->z[i] == 0)
                return xml_fail(p, i, "NUL byte");
            if (p->z[i] < 0x80)
                return xml_fail(p, i, "control character 0x%02x", p->z[i]);
            return xml_fail(p, i, "invalid UTF-8 or a non-XML character");
        }
        i += len;
    }
    return SQLITE_OK;
}

static int
xml_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Name start characters; every byte of a multi-byte character counts. */
static int
xml_is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c >= 0x80;
}

static int
xml_is_name_char(int c)
{
    return xml_is_name_start(c) || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == ':';
}

/* Skips whitespace; returns how many bytes. */
static size_t
xml_skip_space(xml_parser *p)
{
    size_t i0 = p->i;
    while (p->i < p->n && xml_is_space(p->z[p->i]))
        p->i++;
    return p->i - i0;
}

/* True if the input at p->i starts with s. */
static int
xml_at(const xml_parser *p, const char *s)
{
    size_t m = strlen(s);
    return p->n - p->i >= m && memcmp(p->z + p->i, s, m) == 0;
}

/* Offset of the first s at or after i, or (size_t)-1. */
static size_t
xml_find(const xml_parser *p, size_t i, const char *s)
{
    size_t m = strlen(s);
    const unsigned char *q;

    while (i < p->n && p->n - i >= m) {
        q = memchr(p->z + i, s[0], p->n - i - m + 1);
        if (q == NULL)
            break;
        i = (size_t)(q - p->z);
        if (memcmp(q, s, m) == 0)
            return i;
        i++;
    }
    return (size_t)-1;
}

/* ---- text ---- */

/* Appends len bytes to the text buffer. */
static int
xml_append(xml_parser *p, const void *s, size_t len)
{
    if (p->nAlloc - p->nBuf < len) {
        size_t nNew = p->nAlloc ? p->nAlloc * 2 : 256;
        char *zNew;
        if (nNew - p->nBuf < len)
            nNew = p->nBuf + len;
        zNew = sqlite3_realloc64(p->buf, nNew);
        if (zNew == NULL)
            return SQLITE_NOMEM;
        p->buf = zNew;
        p->nAlloc = nNew;
    }
    memcpy(p->buf + p->nBuf, s, len);
    p->nBuf += len;
    return SQLITE_OK;
}

/* Appends character data up to the next '<' or '&'. */
static int
xml_text_run(xml_parser *p)
{
    size_t i0 = p->i, i;

    for (i = i0; i < p->n && p->z[i] != '<' && p->z[i] != '&'; i++) {
        if (p->z[i] == ']' && p->n - i >= 3 && p->z[i + 1] == ']' &&
            p->z[i + 2] == '>')
            return xml_fail(p, i, "']]>' in text");
    }
    p->i = i;
    return xml_append(p, p->z + i0, i - i0);
}

/* Appends code point c (a valid XML character) as UTF-8. */
static int
xml_append_utf8(xml_parser *p, unsigned long c)
{
    unsigned char b[4];
    size_t len;

    if (c < 0x80) {
        b[0] = (unsigned char)c, len = 1;
    } else if (c < 0x800) {
        b[0] = (unsigned char)(0xc0 | (c >> 6)), len = 2;
    } else if (c < 0x10000) {
        b[0] = (unsigned char)(0xe0 | (c >> 12)), len = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | (c >> 18)), len = 4;
    }
    if (len >= 2)
        b[len - 1] = (unsigned char)(0x80 | (c & 0x3f));
    if (len >= 3)
        b[len - 2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    if (len == 4)
        b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    return xml_append(p, b, len);
}

static int
xml_digit(int c, int hex)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (hex && c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (hex && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes "&#N;" or "&#xN;" at p->i. */
static int
xml_char_ref(xml_parser *p)
{
    size_t at = p->i, j = p->i + 2, nDigit = 0;
    int hex = j < p->n && p->z[j] == 'x';
    unsigned long c = 0;
    int d;

    if (hex)
        j++;
    while (j < p->n && (d = xml_digit(p->z[j], hex)) >= 0) {
        c = c * (hex ? 16 : 10) + (unsigned long)d;
        if (c > 0x10ffff)
            return xml_fail(p, at, "character reference out of range");
        j++;
        nDigit++;
    }
    if (nDigit == 0 || j >= p->n || p->z[j] != ';')
        return xml_fail(p, at, "malformed character reference");
    if (!xml_is_char(c))
        return xml_fail(p, at,
                        "character reference to U+%04lX, which is not "
                        "allowed in XML",
                        c);
    p->i = j + 1;
    return xml_append_utf8(p, c);
}

/* Decodes the entity or character reference at p->i (at '&'). */
static int
xml_reference(xml_parser *p)
{
    static const struct {
        const char *zName;
        char c;
    } aEnt[] = {
        {"lt;", '<'},   {"gt;", '>'},    {"amp;", '&'},
        {"quot;", '"'}, {"apos;", '\''},
    };
    size_t k, m;

    if (p->n - p->i >= 2 && p->z[p->i + 1] == '#')
        return xml_char_ref(p);
    for (k = 0; k < sizeof(aEnt) / sizeof(aEnt[0]); k++) {
        m = strlen(aEnt[k].zName);
        if (p->n - p->i - 1 >= m &&
            memcmp(p->z + p->i + 1, aEnt[k].zName, m) == 0) {
            p->i += 1 + m;
            return xml_append(p, &aEnt[k].c, 1);
        }
    }
    return xml_fail(p, p->i, "unknown or unterminated entity reference");
}

/* ---- markup that is skipped ---- */

/* Skips "<!-- ... -->". */
static int
xml_comment(xml_parser *p)
{
    size_t e = xml_find(p, p->i + 4, "-->");
    if (e == (size_t)-1)
        return xml_fail(p, p->i, "unterminated comment");
    p->i = e + 3;
    return SQLITE_OK;
}

/* Skips "<?target ... ?>" (the XML declaration is one). */
static int
xml_pi(xml_parser *p)
{
    size_t e;

    if (p->n - p->i < 3 || !xml_is_name_start(p->z[p->i + 2]))
        return xml_fail(p, p->i, "invalid processing instruction");
    e = xml_find(p, p->i + 2, "?>");
    if (e == (size_t)-1)
        return xml_fail(p, p->i, "unterminated processing instruction");
    p->i = e + 2;
    return SQLITE_OK;
}

/* Skips "<!DOCTYPE ...>"; refuses an internal subset. */
static int
xml_doctype(xml_parser *p)
{
    size_t at = p->i, j = p->i + 9;
    int quote = 0;

    if (j >= p->n || !xml_is_space(p->z[j]))
        return xml_fail(p, at, "malformed DOCTYPE");
    for (; j < p->n; j++) {
        int c = p->z[j];
        if (quote) {
            if (c == quote)
                quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '[') {
            return xml_fail(p, j,
                            "DOCTYPE with an internal subset (entity "
                            "declarations are not supported)");
        } else if (c == '>') {
            p->i = j + 1;
            return SQLITE_OK;
        }
    }
    return xml_fail(p, at, "unterminated DOCTYPE");
}

/* Appends the content of "<![CDATA[ ... ]]>" verbatim. */
static int
xml_cdata(xml_parser *p)
{
    size_t s = p->i + 9, e = xml_find(p, s, "]]>");

    if (e == (size_t)-1)
        return xml_fail(p, p->i, "unterminated CDATA section");
    p->i = e + 3;
    return xml_append(p, p->z + s, e - s);
}

/* ---- elements ---- */

/*
 * Reads a qualified name at p->i ("Key", "s3:Key"): at most one ':', not
 * first nor last.  Sets *pLocal to the offset of the local name.
 */
static int
xml_qname(xml_parser *p, size_t tagAt, size_t *pLocal)
{
    size_t at = p->i, colon = 0;
    int nColon = 0;

    if (p->i >= p->n)
        return xml_fail(p, tagAt, "unterminated tag");
    if (!xml_is_name_start(p->z[p->i]))
        return xml_fail(p, at, "invalid name");
    while (p->i < p->n && xml_is_name_char(p->z[p->i])) {
        if (p->z[p->i] == ':')
            nColon++, colon = p->i;
        p->i++;
    }
    if (nColon > 1 || (nColon == 1 && colon + 1 == p->i))
        return xml_fail(p, at, "invalid qualified name");
    *pLocal = nColon ? colon + 1 : at;
    return SQLITE_OK;
}

/* Skips one attribute (name = "value") at p->i. */
static int
xml_attribute(xml_parser *p, size_t tagAt)
{
    size_t local, j;
    int rc, q;

    if ((rc = xml_qname(p, tagAt, &local)) != SQLITE_OK)
        return rc;
    xml_skip_space(p);
    if (p->i >= p->n)
        return xml_fail(p, tagAt, "unterminated tag");
    if (p->z[p->i] != '=')
        return xml_fail(p, p->i, "attribute without '='");
    p->i++;
    xml_skip_space(p);
    if (p->i >= p->n)
        return xml_fail(p, tagAt, "unterminated tag");
    q = p->z[p->i];
    if (q != '"' && q != '\'')
        return xml_fail(p, p->i, "attribute value without quotes");
    for (j = p->i + 1; j < p->n && p->z[j] != q; j++) {
        if (p->z[j] == '<')
            return xml_fail(p, j, "'<' in attribute value");
    }
    if (j >= p->n)
        return xml_fail(p, p->i, "unterminated attribute value");
    p->i = j + 1;
    return SQLITE_OK;
}

/* Skips the attributes of a start tag through its '>' or "/>". */
static int
xml_attributes(xml_parser *p, size_t tagAt, int *pEmpty)
{
    int rc;

    for (;;) {
        size_t nSpace = xml_skip_space(p);
        if (p->i >= p->n)
            return xml_fail(p, tagAt, "unterminated tag");
        if (p->z[p->i] == '>') {
            p->i++;
            *pEmpty = 0;
            return SQLITE_OK;
        }
        if (p->z[p->i] == '/') {
            if (p->n - p->i < 2 || p->z[p->i + 1] != '>')
                return xml_fail(p, p->i, "'/' not followed by '>' in tag");
            p->i += 2;
            *pEmpty = 1;
            return SQLITE_OK;
        }
        if (nSpace == 0)
            return xml_fail(p, p->i, "missing space before an attribute");
        if ((rc = xml_attribute(p, tagAt)) != SQLITE_OK)
            return rc;
    }
}

/* Creates the element (name z[loff..qoff+qlen)), links it and opens it. */
static int
xml_open_element(xml_parser *p, size_t at, size_t qoff, size_t qlen,
                 size_t loff)
{
    size_t len = qoff + qlen - loff;
    xml_node *nd;
    xml_open *o;

    if (p->depth == XML_MAX_DEPTH)
        return xml_fail(p, at, "elements nested deeper than %d", XML_MAX_DEPTH);
    nd = sqlite3_malloc64(sizeof(*nd) + len + 1);
    if (nd == NULL)
        return SQLITE_NOMEM;
    memset(nd, 0, sizeof(*nd));
    nd->name = (char *)(nd + 1);
    memcpy(nd->name, p->z + loff, len);
    nd->name[len] = 0;
    if (p->depth == 0) {
        p->root = nd;
    } else {
        o = &p->stack[p->depth - 1];
        if (o->last)
            o->last->next = nd;
        else
            o->node->child = nd;
        o->last = nd;
    }
    o = &p->stack[p->depth++];
    o->node = nd;
    o->last = NULL;
    o->at = at;
    o->qoff = qoff;
    o->qlen = qlen;
    o->text0 = p->nBuf;
    return SQLITE_OK;
}

/* Closes the innermost open element: its text leaves the buffer. */
static int
xml_close_element(xml_parser *p)
{
    xml_open *o = &p->stack[p->depth - 1];
    size_t len = p->nBuf - o->text0;

    if (len == 0) {
        o->node->text = xml_empty;
    } else {
        o->node->text = sqlite3_malloc64(len + 1);
        if (o->node->text == NULL)
            return SQLITE_NOMEM;
        memcpy(o->node->text, p->buf + o->text0, len);
        o->node->text[len] = 0;
    }
    p->nBuf = o->text0;
    p->depth--;
    return SQLITE_OK;
}

/* Reads a start tag at p->i (at '<'). */
static int
xml_start_tag(xml_parser *p)
{
    size_t at = p->i, qoff = p->i + 1, local;
    int rc, empty = 0;

    p->i++;
    if ((rc = xml_qname(p, at, &local)) != SQLITE_OK)
        return rc;
    rc = xml_open_element(p, at, qoff, p->i - qoff, local);
    if (rc == SQLITE_OK)
        rc = xml_attributes(p, at, &empty);
    if (rc == SQLITE_OK && empty)
        rc = xml_close_element(p);
    return rc;
}

/* Reads an end tag at p->i (at "</"); it must close the innermost element. */
static int
xml_end_tag(xml_parser *p)
{
    size_t at = p->i, qoff = p->i + 2, local;
    const xml_open *o = &p->stack[p->depth - 1];
    int rc;

    p->i += 2;
    if ((rc = xml_qname(p, at, &local)) != SQLITE_OK)
        return rc;
    if (p->i - qoff != o->qlen ||
        memcmp(p->z + qoff, p->z + o->qoff, o->qlen) != 0)
        return xml_fail(p, at, "mismatched end tag (expected </%.*s>)",
                        xml_shown(p, o->qoff, o->qlen), p->z + o->qoff);
    xml_skip_space(p);
    if (p->i >= p->n)
        return xml_fail(p, at, "unterminated tag");
    if (p->z[p->i] != '>')
        return xml_fail(p, p->i, "junk in end tag");
    p->i++;
    return xml_close_element(p);
}

/* Reads markup at p->i (at '<') inside an element. */
static int
xml_markup(xml_parser *p)
{
    if (xml_at(p, "</"))
        return xml_end_tag(p);
    if (xml_at(p, "<!--"))
        return xml_comment(p);
    if (xml_at(p, "<![CDATA["))
        return xml_cdata(p);
    if (xml_at(p, "<?"))
        return xml_pi(p);
    if (xml_at(p, "<!"))
        return xml_fail(p, p->i, "unexpected '<!' in content");
    return xml_start_tag(p);
}

/* Reads the content of the root element through its end tag. */
static int
xml_content(xml_parser *p)
{
    int rc = SQLITE_OK;

    while (rc == SQLITE_OK && p->depth > 0) {
        if (p->i >= p->n) {
            const xml_open *o = &p->stack[p->depth - 1];
            return xml_fail(p, o->at, "unterminated element <%.*s>",
                            xml_shown(p, o->qoff, o->qlen), p->z + o->qoff);
        }
        if (p->z[p->i] == '<')
            rc = xml_markup(p);
        else if (p->z[p->i] == '&')
            rc = xml_reference(p);
        else
            rc = xml_text_run(p);
    }
    return rc;
}

/* ---- document ---- */

/* Skips whitespace, comments, PIs and a DOCTYPE before the root. */
static int
xml_prolog(xml_parser *p)
{
    int rc = SQLITE_OK, nDoctype = 0;

    while (rc == SQLITE_OK) {
        xml_skip_space(p);
        if (p->i >= p->n)
            return xml_fail(p, p->i, "no root element");
        if (p->z[p->i] != '<')
            return xml_fail(p, p->i, "text before the root element");
        if (xml_at(p, "<?"))
            rc = xml_pi(p);
        else if (xml_at(p, "<!--"))
            rc = xml_comment(p);
        else if (xml_at(p, "<!DOCTYPE") && nDoctype++ == 0)
            rc = xml_doctype(p);
        else if (xml_at(p, "<!"))
            return xml_fail(p, p->i, "unexpected '<!' before the root");
        else
            return SQLITE_OK;
    }
    return rc;
}

/* Allows only whitespace, comments and PIs after the root element. */
static int
xml_epilog(xml_parser *p)
{
    int rc = SQLITE_OK;

    while (rc == SQLITE_OK) {
        xml_skip_space(p);
        if (p->i >= p->n)
            return SQLITE_OK;
        if (xml_at(p, "<?"))
            rc = xml_pi(p);
        else if (xml_at(p, "<!--"))
            rc = xml_comment(p);
        else if (p->n - p->i >= 2 && p->z[p->i] == '<' &&
                 xml_is_name_start(p->z[p->i + 1]))
            return xml_fail(p, p->i, "more than one root element");
        else
            return xml_fail(p, p->i, "content after the root element");
    }
    return rc;
}

static int
xml_document(xml_parser *p)
{
    int rc;

    if (p->n >= 3 && memcmp(p->z, "\xef\xbb\xbf", 3) == 0)
        p->i = 3; /* UTF-8 byte order mark */
    if (p->i == p->n)
        return xml_fail(p, p->i, "empty document");
    if ((rc = xml_check_chars(p)) != SQLITE_OK)
        return rc;
    if ((rc = xml_prolog(p)) != SQLITE_OK)
        return rc;
    if ((rc = xml_start_tag(p)) != SQLITE_OK)
        return rc;
    if ((rc = xml_content(p)) != SQLITE_OK)
        return rc;
    return xml_epilog(p);
}

int
xml_parse(const char *z, size_t n, xml_node **root, char **pzErr)
{
    xml_parser p;
    int rc;

    *root = NULL;
    if (pzErr)
        *pzErr = NULL;
    memset(&p, 0, sizeof(p));
    p.z = (const unsigned char *)(z ? z : "");
    p.n = z ? n : 0;
    p.wantMsg = pzErr != NULL;
    rc = xml_document(&p);
    if (rc == SQLITE_OK) {
        *root = p.root;
    } else {
        xml_free(p.root);
        if (pzErr)
            *pzErr = p.zErr;
        else
            sqlite3_free(p.zErr);
    }
    sqlite3_free(p.buf);
    return rc;
}

/*
 * Frees without a stack by rotating the tree (child = left, next = right):
 * a node with a child is rotated right until it has none, then it goes.
 */
void
xml_free(xml_node *root)
{
    xml_node *nd = root, *c;

    while (nd != NULL) {
        if (nd->child != NULL) {
            c = nd->child;
            nd->child = c->next;
            c->next = nd;
            nd = c;
        } else {
            c = nd->next;
            if (nd->text != xml_empty)
                sqlite3_free(nd->text);
            sqlite3_free(nd);
            nd = c;
        }
    }
}
