/*
 * storage/timefmt.c: RFC 3339 timestamps <-> Unix milliseconds
 * (timefmt.h).  No locale, no time zone database: the calendar arithmetic
 * is done here (days from civil date, proleptic Gregorian).
 *
 * Threads: pure functions; any thread.
 */
#include "storage/timefmt.h"

#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *pz into *v. */
static int
digits(const char **pz, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*pz)[i];
        if (c < '0' || c > '9')
            return 0;
        x = x * 10 + (c - '0');
    }
    *pz += n;
    *v = x;
    return 1;
}

/* The zone suffix: "", "Z", "+hh:mm" or "-hh:mm"; offset in minutes. */
static int
zone(const char *z, int *off)
{
    int h, m, sign;

    *off = 0;
    if (*z == 0 || ((*z == 'Z' || *z == 'z') && z[1] == 0))
        return 1;
    if (*z != '+' && *z != '-')
        return 0;
    sign = *z++ == '-' ? -1 : 1;
    if (!digits(&z, 2, &h) || *z++ != ':' || !digits(&z, 2, &m) || *z)
        return 0;
    if (h > 23 || m > 59)
        return 0;
    *off = sign * (h * 60 + m);
    return 1;
}

int
timefmt_parse(const char *z, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, s = 0, frac = 0, off = 0;

    if (z == NULL || !digits(&z, 4, &y) || *z++ != '-' ||
        !digits(&z, 2, &mo) || *z++ != '-' || !digits(&z, 2, &d))
        return 0;
    if (*z == 'T' || *z == 't' || *z == ' ') {
        z++;
        if (!digits(&z, 2, &h) || *z++ != ':' || !digits(&z, 2, &mi) ||
            *z++ != ':' || !digits(&z, 2, &s))
            return 0;
        if (*z == '.') {
            int n = 0;
            for (z++; *z >= '0' && *z <= '9'; z++, n++)
                if (n < 3)
                    frac = frac * 10 + (*z - '0');
            if (n == 0)
                return 0;
            for (; n < 3; n++)
                frac *= 10;
        }
    }
    if (!zone(z, &off) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || s > 60)
        return 0;
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
            (int64_t)off * 60) *
           1000) +
          frac;
    return 1;
}

const char *
timefmt_format(int64_t ms, char buf[TIMEFMT_SIZE])
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t rem = secs - days * 86400;
    /* civil_from_days (H. Hinnant) */
    int64_t zd = days + 719468;
    int64_t era = (zd >= 0 ? zd : zd - 146096) / 146097;
    int64_t doe = zd - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);

    snprintf(buf, TIMEFMT_SIZE, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (long long)y, m, d, (int)(rem / 3600), (int)(rem % 3600 / 60),
             (int)(rem % 60), (int)(ms - secs * 1000));
    return buf;
}
