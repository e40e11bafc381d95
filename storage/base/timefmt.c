/*
 * storage/base/timefmt.c: durations, level lists and RFC 3339 timestamps
 * (timefmt.h).  No locale, no time zone database: timestamps carry their
 * own offset and are converted with a civil-from-days formula.
 *
 * Pure functions, any thread.
 */
#include "storage/base/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "storage/base/sqlite.h"

#define MAX_DURATION_MS (100LL * 86400 * 1000)

static int
dur_err(char **pzErr, const char *z)
{
    if (pzErr)
        *pzErr = sqlite3_mprintf("litestream: '%s' is not a duration: use a "
                                 "number with a unit, e.g. '100ms', '30s', "
                                 "'5m', '1h', '24h' (at most 100 days)",
                                 z ? z : "");
    return SQLITE_ERROR;
}

/* Milliseconds per unit at *p (advancing it), or 0 if none. */
static int64_t
dur_unit(const char **p)
{
    static const struct {
        const char *z;
        int64_t ms;
    } u[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++) {
        size_t n = strlen(u[i].z);
        if (strncmp(*p, u[i].z, n) == 0) {
            *p += n;
            return u[i].ms;
        }
    }
    return 0;
}

int
timefmt_parse_duration(const char *z, int64_t *ms, char **pzErr)
{
    const char *p = z;
    double total = 0;
    int parts = 0;

    if (z == NULL)
        return dur_err(pzErr, z);
    while (*p == ' ')
        p++;
    while (*p && *p != ' ') {
        double v = 0, scale = 0.1;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            digits++;
        }
        if (*p == '.') {
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10, digits++)
                v += (*p - '0') * scale;
        }
        int64_t unit = digits ? dur_unit(&p) : 0;
        if (unit == 0 || v > 1e12)
            return dur_err(pzErr, z);
        total += v * (double)unit;
        parts++;
    }
    while (*p == ' ')
        p++;
    if (*p || parts == 0 || total < 1 || total > (double)MAX_DURATION_MS)
        return dur_err(pzErr, z);
    *ms = (int64_t)(total + 0.5);
    return SQLITE_OK;
}

const char *
timefmt_duration(int64_t ms, char *buf, size_t n)
{
    static const struct {
        char u;
        int64_t ms;
    } u[] = {{'h', 3600000}, {'m', 60000}, {'s', 1000}};
    size_t off = 0;

    buf[0] = 0;
    if (ms % 1000) { /* not whole seconds: plain milliseconds */
        snprintf(buf, n, "%lldms", (long long)ms);
        return buf;
    }
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]) && off < n; i++) {
        if (ms >= u[i].ms) {
            int w = snprintf(buf + off, n - off, "%lld%c",
                             (long long)(ms / u[i].ms), u[i].u);
            if (w < 0)
                break;
            off += (size_t)w;
            ms %= u[i].ms;
        }
    }
    if (off == 0)
        snprintf(buf, n, "0s");
    return buf;
}

int
timefmt_parse_levels(const char *z, int64_t ms[TIMEFMT_MAX_LEVELS], int *n,
                     char **pzErr)
{
    char part[64];
    const char *p = z;
    int k = 0;

    if (z == NULL || !*z)
        goto bad;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len >= sizeof(part) || k == TIMEFMT_MAX_LEVELS)
            goto bad;
        memcpy(part, p, len);
        part[len] = 0;
        if (timefmt_parse_duration(part, &ms[k], pzErr) != SQLITE_OK)
            return SQLITE_ERROR;
        if (k > 0 && ms[k] <= ms[k - 1])
            goto bad;
        k++;
        if (!c)
            break;
        p = c + 1;
    }
    *n = k;
    return SQLITE_OK;
bad:
    if (pzErr)
        *pzErr = sqlite3_mprintf("litestream: litestream_levels must be 1 to "
                                 "%d increasing durations separated by "
                                 "commas, e.g. '30s,5m,1h', not '%s'",
                                 TIMEFMT_MAX_LEVELS, z ? z : "");
    return SQLITE_ERROR;
}

const char *
timefmt_levels(const int64_t *ms, int n, char *buf, size_t len)
{
    size_t off = 0;
    char one[32];

    buf[0] = 0;
    for (int i = 0; i < n && off < len; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", i ? "," : "",
                         timefmt_duration(ms[i], one, sizeof(one)));
        if (w < 0)
            break;
        off += (size_t)w;
    }
    return buf;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly n digits at *p into *v. */
static int
digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return 0;
        *v = *v * 10 + (**p - '0');
    }
    return 1;
}

int
timefmt_parse_time(const char *z, int64_t *out)
{
    const char *p = z;
    int y, mo, d, h, mi, s, oh = 0, om = 0, frac = 0, fd = 0, sign = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (!z || !digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) ||
        *p++ != '-' || !digits(&p, 2, &d) ||
        (*p != 'T' && *p != 't' && *p != ' '))
        return 0;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) ||
        *p++ != ':' || !digits(&p, 2, &s))
        return 0;
    if (*p == '.' || *p == ',') {
        for (p++; *p >= '0' && *p <= '9'; p++, fd++)
            if (fd < 3)
                frac = frac * 10 + (*p - '0');
        if (fd == 0)
            return 0;
        for (int i = fd; i < 3; i++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (!digits(&p, 2, &oh))
            return 0;
        if (*p == ':')
            p++;
        if (!digits(&p, 2, &om) || oh > 23 || om > 59)
            return 0;
    } else {
        return 0; /* a time zone is required: never guess local time */
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59 || s > 60)
        return 0;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return 0;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
                   h * 3600 + mi * 60 + s - sign * (oh * 3600 + om * 60);
    *out = secs * 1000 + frac;
    return 1;
}

const char *
timefmt_time(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, n, "%lld ms", (long long)ms);
        return buf;
    }
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
    return buf;
}

/* The length of unit names, lower case, with their milliseconds. */
static int64_t
unit_ms(const char *z, size_t n)
{
    static const struct {
        const char *zName;
        int64_t ms;
    } units[] = {{"s", 1000},           {"sec", 1000},
                 {"secs", 1000},        {"second", 1000},
                 {"seconds", 1000},     {"min", 60000},
                 {"mins", 60000},       {"minute", 60000},
                 {"minutes", 60000},    {"h", 3600000},
                 {"hr", 3600000},       {"hrs", 3600000},
                 {"hour", 3600000},     {"hours", 3600000},
                 {"d", 86400000},       {"day", 86400000},
                 {"days", 86400000},    {"w", 604800000},
                 {"week", 604800000},   {"weeks", 604800000},
                 {"month", 2592000000}, {"months", 2592000000},
                 {"year", 31536000000}, {"years", 31536000000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strlen(units[i].zName) == n &&
            strncasecmp(units[i].zName, z, n) == 0)
            return units[i].ms;
    return 0;
}

int
timefmt_parse_when(const char *z, int64_t now_ms, int64_t *out)
{
    const char *p = z;
    int64_t n = 0;
    size_t len;

    if (!z)
        return 0;
    if (timefmt_parse_time(z, out))
        return 1;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "now", 3) == 0 && p[3 + strspn(p + 3, " ")] == 0) {
        *out = now_ms;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > 1000000000)
            return 0;
    }
    p += strspn(p, " ");
    len = strcspn(p, " ");
    int64_t u = unit_ms(p, len);
    p += len;
    p += strspn(p, " ");
    if (u == 0 || strncasecmp(p, "ago", 3) != 0 || p[3 + strspn(p + 3, " ")])
        return 0;
    *out = now_ms - n * u;
    return 1;
}
