/*
 * storage/backend/url_text.h: the text helpers of the URL parser (url.c)
 * and of redaction (url_text.c): character classes without the C library's
 * locale, copies and percent-decoding.  Internal to storage/backend.
 */
#ifndef LITESTREAM_URL_TEXT_H
#define LITESTREAM_URL_TEXT_H

#include <stddef.h>

static inline int
url_is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int
url_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline int
url_to_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static inline int
url_hex_val(int c)
{
    if (url_is_digit(c))
        return c - '0';
    c = url_to_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static inline int
url_is_ctrl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Copies n bytes of s into a new NUL-terminated string (NULL if OOM). */
char *url_ndup(const char *s, size_t n);

/*
 * Percent-decodes n bytes of s into a new string (*out); '+' becomes a
 * space when plus_space.  SQLITE_ERROR with *pzWhy set on a bad escape or
 * a decoded control character; SQLITE_NOMEM.
 */
int url_pct_decode(const char *s, size_t n, int plus_space, char **out,
                   const char **pzWhy);

/* Length of a leading URL scheme ([A-Za-z][A-Za-z0-9+.-]*), or 0. */
size_t url_scheme_len(const char *z);

#endif
