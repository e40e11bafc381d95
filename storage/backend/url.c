/*
 * storage/backend/url.c: replica URL parsing and redaction (see url.h).
 *
 * The parser walks the string once, left to right: scheme, authority
 * (userinfo, host, port), path, query.  It does not use the C library's
 * locale-dependent ctype functions, and it copies every piece it returns
 * (decoded) into its own allocation, so an ls_url owns all its strings.
 *
 * Invariants:
 *   1. A message never shows a secret: messages quote the URL through
 *      url_redact(), which works on any string, parsed or not.
 *   2. Nothing returned contains a control character or a NUL byte, not
 *      even after percent-decoding.
 *   3. On failure nothing is leaked and *out is NULL.
 *
 * Threads: no shared state; any thread.
 */
#include "storage/backend/url.h"
#include "storage/backend/url_text.h"

#include <stdarg.h>
#include <string.h>

#include "storage/base/sqlite.h"

/* Schemes that parse; storage/backend/backend.c decides which have a backend.
 */
static const char *const url_schemes[] = {
    "file", "s3", "gs", "abs", "sftp", "webdav", "webdavs", "oss", "nats",
};
#define URL_SCHEMES_TEXT "file, s3, gs, abs, sftp, webdav, webdavs, oss, nats"

/* State of one url_parse() call. */
typedef struct url_parser {
    const char *zUrl; /* the input */
    char *zShow;      /* redacted input, for messages */
    ls_url *u;        /* being filled */
    char *zErr;       /* message of the first failure */
} url_parser;

/* Records the first failure of the parse; returns SQLITE_ERROR. */
static int
fail(url_parser *p, const char *zFmt, ...)
{
    va_list ap;
    if (p->zErr == NULL) {
        va_start(ap, zFmt);
        p->zErr = sqlite3_vmprintf(zFmt, ap);
        va_end(ap);
        if (p->zErr == NULL)
            return SQLITE_NOMEM;
    }
    return SQLITE_ERROR;
}

/* Noun for the authority of a scheme, for "missing ..." messages. */
static const char *
host_noun(const char *zScheme)
{
    if (strcmp(zScheme, "s3") == 0 || strcmp(zScheme, "gs") == 0 ||
        strcmp(zScheme, "oss") == 0)
        return "bucket";
    if (strcmp(zScheme, "abs") == 0)
        return "container";
    return "host";
}

static int
takes_userinfo(const char *zScheme)
{
    return strcmp(zScheme, "sftp") == 0 || strcmp(zScheme, "webdav") == 0 ||
           strcmp(zScheme, "webdavs") == 0 || strcmp(zScheme, "nats") == 0;
}

/* Parses the port digits [z, zEnd) into p->u->port. */
static int
parse_port(url_parser *p, const char *z, const char *zEnd)
{
    long v = 0;
    const char *q;

    if (z == zEnd)
        return fail(p,
                    "litestream: malformed URL '%s' (missing port number "
                    "after ':')",
                    p->zShow);
    for (q = z; q < zEnd; q++) {
        if (!url_is_digit((unsigned char)*q))
            return fail(p,
                        "litestream: malformed URL '%s' (port '%.*s' is "
                        "not a number)",
                        p->zShow, (int)(zEnd - z), z);
        if (v <= 65535)
            v = v * 10 + (*q - '0');
    }
    if (v < 1 || v > 65535)
        return fail(p,
                    "litestream: malformed URL '%s' (port %.*s is out of "
                    "range 1-65535)",
                    p->zShow, (int)(zEnd - z), z);
    p->u->port = (int)v;
    return SQLITE_OK;
}

/* Checks the characters of a host name [z, zEnd) for the scheme. */
static int
check_host(url_parser *p, const char *z, const char *zEnd)
{
    const char *zScheme = p->u->scheme;
    int isAbs = strcmp(zScheme, "abs") == 0;
    int nAt = 0;
    const char *q;

    for (q = z; q < zEnd; q++) {
        int c = (unsigned char)*q;
        if (url_is_alpha(c) || url_is_digit(c) || c == '.' || c == '-' ||
            c == '_' || c == '~')
            continue;
        if (c == '@' && isAbs && nAt++ == 0 && q > z && q + 1 < zEnd)
            continue;
        if (c == ' ')
            return fail(p,
                        "litestream: malformed URL '%s' (the %s '%.*s' "
                        "contains a space)",
                        p->zShow, host_noun(zScheme), (int)(zEnd - z), z);
        return fail(p,
                    "litestream: malformed URL '%s' (invalid character "
                    "'%c' in %s '%.*s')",
                    p->zShow, c, host_noun(zScheme), (int)(zEnd - z), z);
    }
    return SQLITE_OK;
}

/* Parses "[v6]" or "[v6]:port" (z points at '['). */
static int
parse_ipv6(url_parser *p, const char *z, const char *zEnd)
{
    const char *zClose = memchr(z, ']', (size_t)(zEnd - z));
    const char *q;

    if (zClose == NULL || zClose == z + 1)
        return fail(p,
                    "litestream: malformed URL '%s' (bad IPv6 literal; "
                    "expected [address]:port)",
                    p->zShow);
    for (q = z + 1; q < zClose; q++)
        if (url_hex_val((unsigned char)*q) < 0 && *q != ':' && *q != '.')
            return fail(p,
                        "litestream: malformed URL '%s' (invalid "
                        "character '%c' in IPv6 address)",
                        p->zShow, *q);
    p->u->host = url_ndup(z + 1, (size_t)(zClose - z - 1));
    if (p->u->host == NULL)
        return SQLITE_NOMEM;
    if (zClose + 1 == zEnd)
        return SQLITE_OK;
    if (zClose[1] != ':')
        return fail(p,
                    "litestream: malformed URL '%s' (unexpected text "
                    "after IPv6 address)",
                    p->zShow);
    return parse_port(p, zClose + 2, zEnd);
}

/* Parses "[user[:password]@]" of the authority [z, zAt). */
static int
parse_userinfo(url_parser *p, const char *z, const char *zAt)
{
    const char *zColon = memchr(z, ':', (size_t)(zAt - z));
    const char *zUserEnd = zColon ? zColon : zAt;
    const char *zWhy = NULL;
    int rc;

    if (!takes_userinfo(p->u->scheme))
        return fail(p,
                    "litestream: %s URLs take no user name or password: "
                    "'%s' (credentials come from the environment)",
                    p->u->scheme, p->zShow);
    if (zUserEnd > z) {
        rc = url_pct_decode(z, (size_t)(zUserEnd - z), 0, &p->u->user, &zWhy);
        if (rc == SQLITE_ERROR)
            return fail(p, "litestream: malformed URL '%s' (user name: %s)",
                        p->zShow, zWhy);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (zColon) {
        rc = url_pct_decode(zColon + 1, (size_t)(zAt - zColon - 1), 0,
                            &p->u->password, &zWhy);
        if (rc == SQLITE_ERROR)
            return fail(p, "litestream: malformed URL '%s' (password: %s)",
                        p->zShow, zWhy);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/* Parses a file URL's authority [z, zEnd): empty or "localhost". */
static int
parse_file_authority(url_parser *p, const char *z, const char *zEnd)
{
    size_t n = (size_t)(zEnd - z);

    if (n == 0 || (n == 9 && sqlite3_strnicmp(z, "localhost", 9) == 0))
        return SQLITE_OK;
    return fail(p,
                "litestream: file URL names host '%.*s' in '%s' (expected "
                "file:///abs/dir or file://localhost/abs/dir)",
                (int)n, z, p->zShow);
}

/* Parses the authority [z, zEnd) of a non-file URL. */
static int
parse_authority(url_parser *p, const char *z, const char *zEnd)
{
    const char *zAt = NULL, *zHostEnd, *q;
    int rc;

    if (strcmp(p->u->scheme, "file") == 0)
        return parse_file_authority(p, z, zEnd);
    if (strcmp(p->u->scheme, "abs") != 0) {
        for (q = z; q < zEnd; q++)
            if (*q == '@')
                zAt = q;
    }
    if (zAt) {
        rc = parse_userinfo(p, z, zAt);
        if (rc != SQLITE_OK)
            return rc;
        z = zAt + 1;
    }
    if (z == zEnd || *z == ':')
        return fail(p, "litestream: malformed URL '%s' (missing %s)", p->zShow,
                    host_noun(p->u->scheme));
    if (*z == '[' && takes_userinfo(p->u->scheme))
        return parse_ipv6(p, z, zEnd);
    zHostEnd = memchr(z, ':', (size_t)(zEnd - z));
    if (zHostEnd == NULL)
        zHostEnd = zEnd;
    rc = check_host(p, z, zHostEnd);
    if (rc != SQLITE_OK)
        return rc;
    p->u->host = url_ndup(z, (size_t)(zHostEnd - z));
    if (p->u->host == NULL)
        return SQLITE_NOMEM;
    if (zHostEnd < zEnd)
        return parse_port(p, zHostEnd + 1, zEnd);
    return SQLITE_OK;
}

/*
 * Normalises the decoded path z into *out: empty and '.' segments dropped,
 * a leading '/' iff absolute, no trailing '/' (except "/" itself).
 * SQLITE_ERROR on a '..' segment; SQLITE_NOMEM.
 */
static int
path_normalize(const char *z, int absolute, char **out)
{
    size_t j = 0;
    char *o = sqlite3_malloc64(strlen(z) + 2);

    *out = NULL;
    if (o == NULL)
        return SQLITE_NOMEM;
    if (absolute)
        o[j++] = '/';
    while (*z) {
        const char *zSeg;
        size_t n;
        while (*z == '/')
            z++;
        zSeg = z;
        while (*z && *z != '/')
            z++;
        n = (size_t)(z - zSeg);
        if (n == 0 || (n == 1 && zSeg[0] == '.'))
            continue;
        if (n == 2 && zSeg[0] == '.' && zSeg[1] == '.') {
            sqlite3_free(o);
            return SQLITE_ERROR;
        }
        if (j > (size_t)(absolute ? 1 : 0))
            o[j++] = '/';
        memcpy(o + j, zSeg, n);
        j += n;
    }
    o[j] = 0;
    *out = o;
    return SQLITE_OK;
}

/* Decodes and normalises the path [z, zEnd) into p->u->path. */
static int
parse_path(url_parser *p, const char *z, const char *zEnd, int decode)
{
    int isFile = strcmp(p->u->scheme, "file") == 0;
    const char *zWhy = NULL;
    char *zDec = NULL;
    int rc;

    if (decode) {
        rc = url_pct_decode(z, (size_t)(zEnd - z), 0, &zDec, &zWhy);
        if (rc == SQLITE_ERROR)
            rc = fail(p, "litestream: malformed URL '%s' (path: %s)", p->zShow,
                      zWhy);
    } else {
        zDec = url_ndup(z, (size_t)(zEnd - z));
        rc = zDec ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (rc != SQLITE_OK)
        goto out;
    if (isFile && zDec[0] == 0) {
        rc = fail(p,
                  "litestream: file replica URL '%s' has no path "
                  "(expected file:///abs/dir)",
                  p->zShow);
        goto out;
    }
    if (isFile && zDec[0] != '/') {
        rc = fail(p, "litestream: file replica path must be absolute: '%s'",
                  zDec);
        goto out;
    }
    rc = path_normalize(zDec, isFile, &p->u->path);
    if (rc == SQLITE_ERROR)
        rc = fail(p,
                  "litestream: replica path must not contain '..' "
                  "segments: '%s'",
                  zDec);
out:
    sqlite3_free(zDec);
    return rc;
}

/* Decodes one "key[=value]" query part [z, zEnd) into p->u->params. */
static int
parse_param(url_parser *p, const char *z, const char *zEnd)
{
    const char *zEq = memchr(z, '=', (size_t)(zEnd - z));
    const char *zKeyEnd = zEq ? zEq : zEnd;
    ls_url_param *pp = &p->u->params[p->u->nparam];
    const char *zWhy = NULL;
    int rc;

    if (zKeyEnd == z)
        return fail(p,
                    "litestream: malformed URL '%s' (query parameter "
                    "without a name)",
                    p->zShow);
    rc = url_pct_decode(z, (size_t)(zKeyEnd - z), 1, &pp->key, &zWhy);
    if (rc == SQLITE_OK) {
        if (zEq)
            rc = url_pct_decode(zEq + 1, (size_t)(zEnd - zEq - 1), 1,
                                &pp->value, &zWhy);
        else
            rc = (pp->value = url_ndup("", 0)) ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (pp->key || pp->value)
        p->u->nparam++; /* so url_free() frees what was decoded */
    if (rc == SQLITE_ERROR)
        return fail(p, "litestream: malformed URL '%s' (query: %s)", p->zShow,
                    zWhy);
    return rc;
}

/* Parses the query [z, zEnd) (after the '?'). */
static int
parse_query(url_parser *p, const char *z, const char *zEnd)
{
    int nPart = 1, rc = SQLITE_OK;
    const char *q;

    for (q = z; q < zEnd; q++)
        if (*q == '&')
            nPart++;
    p->u->params = sqlite3_malloc64(sizeof(ls_url_param) * (size_t)nPart);
    if (p->u->params == NULL)
        return SQLITE_NOMEM;
    memset(p->u->params, 0, sizeof(ls_url_param) * (size_t)nPart);
    while (z < zEnd && rc == SQLITE_OK) {
        const char *zAmp = memchr(z, '&', (size_t)(zEnd - z));
        const char *zPart = zAmp ? zAmp : zEnd;
        if (zPart > z) /* "a=1&&b=2": empty parts are skipped */
            rc = parse_param(p, z, zPart);
        z = zAmp ? zAmp + 1 : zEnd;
    }
    return rc;
}

/* Parses what follows "scheme:" (z), the scheme being set. */
static int
parse_rest(url_parser *p, const char *z)
{
    const char *zQuery = z + strcspn(z, "?");
    const char *zAuthEnd;
    int rc;

    if (strchr(z, '#') != NULL)
        return fail(p,
                    "litestream: malformed URL '%s' (fragments are not "
                    "supported; write '#' as %%23)",
                    p->zShow);
    if (strncmp(z, "//", 2) == 0) {
        z += 2;
        zAuthEnd = z + strcspn(z, "/?");
        rc = parse_authority(p, z, zAuthEnd);
        z = zAuthEnd;
    } else if (strcmp(p->u->scheme, "file") != 0) {
        rc = fail(p, "litestream: malformed URL '%s' (expected %s://%s/path)",
                  p->zShow, p->u->scheme, host_noun(p->u->scheme));
    } else {
        rc = SQLITE_OK; /* file:/abs/dir */
    }
    if (rc == SQLITE_OK)
        rc = parse_path(p, z, zQuery, 1);
    if (rc == SQLITE_OK && *zQuery == '?')
        rc = parse_query(p, zQuery + 1, zQuery + strlen(zQuery));
    return rc;
}

/* Parses and checks the scheme; *pzRest = what follows its ':'. */
static int
parse_scheme(url_parser *p, const char **pzRest)
{
    const char *zUrl = p->zUrl;
    size_t n = url_scheme_len(zUrl), i;
    const char *zColon = strchr(zUrl, ':');
    const char *zSlash = strchr(zUrl, '/');

    if (zColon == NULL || (zSlash && zSlash < zColon))
        return fail(p, "litestream: file replica path must be absolute: '%s'",
                    zUrl);
    if (zColon == zUrl)
        return fail(p,
                    "litestream: malformed URL '%s' (missing scheme; "
                    "expected one of " URL_SCHEMES_TEXT ")",
                    p->zShow);
    if (zUrl + n != zColon)
        return fail(p,
                    "litestream: malformed URL scheme in '%s' (expected "
                    "one of " URL_SCHEMES_TEXT ")",
                    p->zShow);
    p->u->scheme = url_ndup(zUrl, n);
    if (p->u->scheme == NULL)
        return SQLITE_NOMEM;
    for (i = 0; i < n; i++)
        p->u->scheme[i] = (char)url_to_lower((unsigned char)p->u->scheme[i]);
    for (i = 0; i < sizeof(url_schemes) / sizeof(url_schemes[0]); i++) {
        if (strcmp(p->u->scheme, url_schemes[i]) == 0) {
            *pzRest = zColon + 1;
            return SQLITE_OK;
        }
    }
    return fail(p,
                "litestream: unknown URL scheme '%s' in '%s' "
                "(expected " URL_SCHEMES_TEXT ")",
                p->u->scheme, p->zShow);
}

int
url_parse(const char *zUrl, ls_url **out, char **pzErr)
{
    url_parser p;
    const char *zRest = NULL;
    const char *q;
    int rc;

    memset(&p, 0, sizeof(p));
    p.zUrl = zUrl;
    *out = NULL;
    if (pzErr)
        *pzErr = NULL;
    if (zUrl == NULL || zUrl[0] == 0) {
        rc = fail(&p, "litestream: empty replica URL (expected e.g. "
                      "file:///abs/dir or s3://bucket/path)");
        goto out;
    }
    for (q = zUrl; *q; q++) {
        if (url_is_ctrl((unsigned char)*q)) {
            rc = fail(&p,
                      "litestream: replica URL contains control "
                      "character 0x%02x at offset %d",
                      (unsigned char)*q, (int)(q - zUrl));
            goto out;
        }
        if (*q == ' ') {
            /* Several replicas are a list for PRAGMA litestream_url only. */
            rc = fail(&p,
                      "litestream: replica URL contains a space at "
                      "offset %d: give one URL here (a list of replicas "
                      "is for PRAGMA litestream_url only; write a space "
                      "in a path as %%20)",
                      (int)(q - zUrl));
            goto out;
        }
    }
    p.zShow = url_redact(zUrl);
    p.u = sqlite3_malloc64(sizeof(ls_url));
    if (p.u)
        memset(p.u, 0, sizeof(ls_url));
    if (p.zShow == NULL || p.u == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    if (zUrl[0] == '/') { /* a plain path, taken literally */
        p.u->scheme = url_ndup("file", 4);
        rc = p.u->scheme ? parse_path(&p, zUrl, zUrl + strlen(zUrl), 0)
                         : SQLITE_NOMEM;
    } else {
        rc = parse_scheme(&p, &zRest);
        if (rc == SQLITE_OK)
            rc = parse_rest(&p, zRest);
    }
    if (rc == SQLITE_OK) {
        p.u->redacted = p.zShow;
        p.zShow = NULL;
        *out = p.u;
        p.u = NULL;
    }
out:
    if (rc == SQLITE_NOMEM && p.zErr == NULL)
        p.zErr = sqlite3_mprintf("litestream: out of memory parsing a URL");
    if (pzErr)
        *pzErr = p.zErr;
    else
        sqlite3_free(p.zErr);
    url_free(p.u);
    sqlite3_free(p.zShow);
    return rc;
}

/* 1 if two parameter names are equal ignoring case, '_' and '-'. */
static int
key_match(const char *a, const char *b)
{
    for (;; a++, b++) {
        while (*a == '_' || *a == '-')
            a++;
        while (*b == '_' || *b == '-')
            b++;
        if (url_to_lower((unsigned char)*a) != url_to_lower((unsigned char)*b))
            return 0;
        if (*a == 0)
            return 1;
    }
}

const char *
url_param(const ls_url *u, const char *zKey)
{
    int i;

    if (u == NULL || zKey == NULL)
        return NULL;
    for (i = 0; i < u->nparam; i++)
        if (key_match(u->params[i].key, zKey))
            return u->params[i].value;
    return NULL;
}

void
url_free(ls_url *u)
{
    int i;

    if (u == NULL)
        return;
    for (i = 0; i < u->nparam; i++) {
        sqlite3_free(u->params[i].key);
        sqlite3_free(u->params[i].value);
    }
    sqlite3_free(u->params);
    sqlite3_free(u->scheme);
    sqlite3_free(u->user);
    sqlite3_free(u->password);
    sqlite3_free(u->host);
    sqlite3_free(u->path);
    sqlite3_free(u->redacted);
    sqlite3_free(u);
}
