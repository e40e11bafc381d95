/*
 * storage/backend/url_text.c: text work on replica URLs that needs no
 * parse: copies, percent-decoding, which parameters are secrets, and
 * redaction of any string (parsed or not) for messages (url.h).  The
 * parser (url.c) calls down into this file, never the other way round.
 *
 * Threads: no shared state; any thread.
 */
#include "storage/backend/url.h"
#include "storage/backend/url_text.h"

#include <string.h>

#include "storage/base/sqlite.h"

char *
url_ndup(const char *s, size_t n)
{
    char *z = sqlite3_malloc64(n + 1);
    if (z) {
        memcpy(z, s, n);
        z[n] = 0;
    }
    return z;
}

int
url_pct_decode(const char *s, size_t n, int plus_space, char **out,
               const char **pzWhy)
{
    int rc = SQLITE_OK;
    char *z = sqlite3_malloc64(n + 1);
    size_t i, j = 0;

    *out = NULL;
    if (z == NULL)
        return SQLITE_NOMEM;
    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? url_hex_val((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? url_hex_val((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *pzWhy = "invalid percent-escape (expected %XX with two "
                         "hex digits)";
                rc = SQLITE_ERROR;
                goto out;
            }
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == 0 || url_is_ctrl((unsigned char)c)) {
            *pzWhy = "a percent-escape decodes to a control character";
            rc = SQLITE_ERROR;
            goto out;
        }
        z[j++] = (char)c;
    }
    z[j] = 0;
out:
    if (rc != SQLITE_OK)
        sqlite3_free(z);
    else
        *out = z;
    return rc;
}

/*
 * Writes the comparison form of a parameter name into buf (lowercase, '_'
 * and '-' dropped).  Returns 0 if it does not fit.
 */
static int
key_fold(const char *zKey, char *buf, size_t nBuf)
{
    size_t j = 0;
    for (; *zKey; zKey++) {
        if (*zKey == '_' || *zKey == '-')
            continue;
        if (j + 1 >= nBuf)
            return 0;
        buf[j++] = (char)url_to_lower((unsigned char)*zKey);
    }
    buf[j] = 0;
    return 1;
}

static int
ends_with(const char *z, const char *zSuffix)
{
    size_t n = strlen(z), m = strlen(zSuffix);
    return n >= m && memcmp(z + n - m, zSuffix, m) == 0;
}

int
url_param_is_secret(const char *zKey)
{
    static const char *const exact[] = {
        "sig",   "sas",  "pass",          "pw",        "pwd", "seed", "jwt",
        "creds", "auth", "authorization", "signature",
    };
    static const char *const within[] = {
        "secret", "password", "passwd", "token", "credential", "signature",
    };
    char buf[128];
    size_t i;

    if (!key_fold(zKey, buf, sizeof(buf)))
        return 1; /* absurdly long: hide it */
    if (strcmp(buf, "hostkey") == 0)
        return 0; /* sftp's host_key: a public fingerprint, shown to pin */
    for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strcmp(buf, exact[i]) == 0)
            return 1;
    for (i = 0; i < sizeof(within) / sizeof(within[0]); i++)
        if (strstr(buf, within[i]) != NULL)
            return 1;
    /* key, accountkey, ssecustomerkey, nkey, privatekey, ... */
    return ends_with(buf, "key");
}

/* Length of a leading URL scheme ([A-Za-z][A-Za-z0-9+.-]*), or 0. */
size_t
url_scheme_len(const char *z)
{
    size_t n = 0;
    if (!url_is_alpha((unsigned char)z[0]))
        return 0;
    while (url_is_alpha((unsigned char)z[n]) ||
           url_is_digit((unsigned char)z[n]) || z[n] == '+' || z[n] == '.' ||
           z[n] == '-')
        n++;
    return n;
}

/* Appends the query [z, zEnd) to s, secret values replaced. */
static void
redact_query(sqlite3_str *s, const char *z, const char *zEnd)
{
    while (z < zEnd) {
        const char *zAmp = memchr(z, '&', (size_t)(zEnd - z));
        const char *zPart = zAmp ? zAmp : zEnd;
        const char *zEq = memchr(z, '=', (size_t)(zPart - z));
        int secret = 0;
        if (zEq) {
            const char *zWhy;
            char *zKey = NULL;
            if (url_pct_decode(z, (size_t)(zEq - z), 1, &zKey, &zWhy) ==
                SQLITE_OK) {
                secret = url_param_is_secret(zKey);
            } else {
                char *zRaw = url_ndup(z, (size_t)(zEq - z));
                secret = zRaw == NULL || url_param_is_secret(zRaw);
                sqlite3_free(zRaw);
            }
            sqlite3_free(zKey);
        }
        if (secret) {
            sqlite3_str_append(s, z, (int)(zEq - z));
            sqlite3_str_appendall(s, "=REDACTED");
        } else {
            sqlite3_str_append(s, z, (int)(zPart - z));
        }
        if (zAmp)
            sqlite3_str_appendchar(s, 1, '&');
        z = zAmp ? zAmp + 1 : zEnd;
    }
}

char *
url_redact(const char *zUrl)
{
    sqlite3_str *s;
    const char *z, *zFrom, *zAuth, *zAuthEnd, *zAt = NULL, *zQuery, *zFrag;
    size_t n;

    if (zUrl == NULL)
        return sqlite3_mprintf("");
    n = url_scheme_len(zUrl);
    if (n == 0 || zUrl[n] != ':')
        return sqlite3_mprintf("%s", zUrl); /* a plain path: no secrets */
    s = sqlite3_str_new(NULL);
    z = zUrl + n + 1;
    zAuth = strncmp(z, "//", 2) == 0 ? z + 2 : z;
    zAuthEnd = zAuth + (zAuth == z ? 0 : strcspn(zAuth, "/?#"));
    for (const char *q = zAuth; q < zAuthEnd; q++)
        if (*q == '@')
            zAt = q;
    zFrom = zUrl;
    if (zAt) {
        const char *zColon = memchr(zAuth, ':', (size_t)(zAt - zAuth));
        if (zColon) {
            sqlite3_str_append(s, zUrl, (int)(zColon + 1 - zUrl));
            sqlite3_str_appendall(s, "REDACTED");
            zFrom = zAt;
        }
    }
    zFrag = zAuthEnd + strcspn(zAuthEnd, "#");
    zQuery = memchr(zAuthEnd, '?', (size_t)(zFrag - zAuthEnd));
    if (zQuery == NULL)
        zQuery = zFrag;
    sqlite3_str_append(s, zFrom, (int)(zQuery - zFrom));
    if (*zQuery == '?') {
        sqlite3_str_appendchar(s, 1, '?');
        redact_query(s, zQuery + 1, zFrag);
    }
    if (*zFrag == '#')
        sqlite3_str_appendall(s, "#REDACTED");
    return sqlite3_str_finish(s);
}
