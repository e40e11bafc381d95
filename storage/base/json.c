/*
 * storage/base/json.c: the SQLite side of JSON (json.h).
 *
 * Invariant: every string handed to jansson is valid UTF-8 (ls_json_text
 * repairs what is not), so json_dumps never fails on content, only on
 * memory.  Any thread.
 */
#include "storage/base/json.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range or a surrogate */
    return len;
}

/* z with each invalid byte replaced by U+FFFD, as a new JSON string. */
static json_t *
text_repaired(const char *z, size_t n)
{
    const unsigned char *p = (const unsigned char *)z;
    char *out = sqlite3_malloc64((uint64_t)n * 3 + 1);
    size_t o = 0;
    json_t *j;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_len(p + i, n - i);
        if (len == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        }
    }
    j = json_stringn(out, o);
    sqlite3_free(out);
    return j;
}

json_t *
ls_json_text(const char *z)
{
    json_t *j;
    size_t n;
    if (!z)
        return json_null();
    n = strlen(z);
    j = json_stringn(z, n);
    return j ? j : text_repaired(z, n);
}

json_t *
ls_json_u64(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

void
ls_json_set(json_t *o, const char *zKey, json_t *v, int *pBad)
{
    if (!o) {
        json_decref(v);
        *pBad = 1;
    } else if (json_object_set_new(o, zKey, v) != 0) {
        *pBad = 1; /* json_object_set_new released v */
    }
}

char *
ls_json_dump(const json_t *j)
{
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t n, m;
    char *z;
    /* Measured first, then written into our own memory: nothing of
     * jansson's allocator leaves this function. */
    if (!j || (n = json_dumpb(j, NULL, 0, flags)) == 0)
        return NULL;
    if (!(z = sqlite3_malloc64((uint64_t)n + 1)))
        return NULL;
    m = json_dumpb(j, z, n, flags);
    if (m != n) {
        sqlite3_free(z);
        return NULL;
    }
    z[n] = 0;
    return z;
}

void
ls_json_result(sqlite3_context *ctx, json_t *j)
{
    char *z = ls_json_dump(j);
    json_decref(j);
    if (!z)
        sqlite3_result_error_nomem(ctx);
    else
        sqlite3_result_text(ctx, z, -1, sqlite3_free);
}
