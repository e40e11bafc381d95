/*
 * storage/backend/sftp_list.c: the decoder of SFTP "ls -l" listings
 * (sftp.h).
 *
 * Invariants:
 *   1. Only regular files ('-' type; directories, 'd', for
 *      sftp_parse_dirs, but not "." and "..") with a decimal size, a month
 *      name, a day, a time or year and a non-empty name without control
 *      characters are returned; anything else is skipped, never an error
 *      (the input comes from the network).
 *   2. Times are read as UTC (servers print their local time; run them in
 *      UTC) and rounded up to the end of their minute, capped at now.
 *
 * Threads: pure functions; any thread.
 */
#include "storage/backend/sftp.h"

#include <string.h>
#include <time.h>

#include "storage/backend/objlist.h"
#include "storage/base/sqlite.h"

#define SFTP_FIELDS 8 /* before the name */

/* The month number 0..11 of a three-letter English name, or -1. */
static int
sftp_month(const char *z, size_t n)
{
    static const char azMon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

    if (n != 3)
        return -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(azMon + 3 * i, z, 3) == 0)
            return i;
    return -1;
}

/* Parses a decimal field of at most 19 digits; 1 on success. */
static int
sftp_num(const char *z, size_t n, uint64_t *v)
{
    if (n == 0 || n > 19)
        return 0;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (z[i] < '0' || z[i] > '9')
            return 0;
        *v = *v * 10 + (uint64_t)(z[i] - '0');
    }
    return 1;
}

/* Unix ms of the start of a UTC minute. */
static int64_t
sftp_utc(int year, int mon, int day, int hour, int min)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    return (int64_t)timegm(&tm) * 1000;
}

/* The time of the fields "Mon", "D", "HH:MM" or "YYYY"; -1 if malformed. */
static int64_t
sftp_time(const char *const *az, const size_t *an, int64_t now_ms)
{
    int mon = sftp_month(az[0], an[0]);
    uint64_t day, a, b;
    time_t now = (time_t)(now_ms / 1000);
    struct tm tmNow;
    int64_t t;

    if (mon < 0 || !sftp_num(az[1], an[1], &day) || day < 1 || day > 31)
        return -1;
    if (an[2] == 5 && az[2][2] == ':' && sftp_num(az[2], 2, &a) &&
        sftp_num(az[2] + 3, 2, &b) && a < 24 && b < 60) {
        gmtime_r(&now, &tmNow);
        t = sftp_utc(tmNow.tm_year + 1900, mon, (int)day, (int)a, (int)b);
        if (t > now_ms + 86400000)
            t = sftp_utc(tmNow.tm_year + 1899, mon, (int)day, (int)a, (int)b);
    } else if (sftp_num(az[2], an[2], &a) && a >= 1970 && a <= 9999) {
        t = sftp_utc((int)a, mon, (int)day, 0, 0);
    } else {
        return -1;
    }
    t += 59999; /* the end of the minute: never older than it is */
    return t > now_ms ? now_ms : t;
}

/* Parses one line; 1 and *o (key allocated) if it is an entry of type
 * kind ('-' a regular file, 'd' a directory other than "." and ".."). */
static int
sftp_line(const char *z, size_t n, char kind, int64_t now_ms, backend_obj *o,
          int *nomem)
{
    const char *az[SFTP_FIELDS];
    size_t an[SFTP_FIELDS], i = 0;
    uint64_t size;
    int f;

    for (f = 0; f < SFTP_FIELDS; f++) {
        while (i < n && (z[i] == ' ' || z[i] == '\t'))
            i++;
        az[f] = z + i;
        while (i < n && z[i] != ' ' && z[i] != '\t')
            i++;
        an[f] = (size_t)(z + i - az[f]);
        if (an[f] == 0)
            return 0;
    }
    if (i >= n || an[0] != 10 || az[0][0] != kind ||
        !sftp_num(az[4], an[4], &size))
        return 0;
    i++; /* the one separator before the name */
    int64_t t = sftp_time(az + 5, an + 5, now_ms);
    if (t < 0 || i >= n)
        return 0;
    if (kind == 'd' && z[i] == '.' &&
        (n - i == 1 || (n - i == 2 && z[i + 1] == '.')))
        return 0; /* the directory itself and its parent */
    for (size_t k = i; k < n; k++)
        if ((unsigned char)z[k] < 0x20 || z[k] == 0x7f)
            return 0; /* no object of ours has such a name */
    o->key = sqlite3_mprintf("%.*s", (int)(n - i), z + i);
    if (o->key == NULL) {
        *nomem = 1;
        return 0;
    }
    o->size = kind == 'd' ? 0 : size;
    o->created_ms = t;
    return 1;
}

static int
sftp_parse_kind(const char *z, size_t n, char kind, int64_t now_ms,
                backend_obj **objs, int *nObj)
{
    objlist l = {0};
    backend_obj *o = NULL;
    int nomem = 0;
    size_t i = 0;

    while (i < n && !nomem) {
        size_t k = i;
        while (k < n && z[k] != '\n' && z[k] != '\r')
            k++;
        if ((o = objlist_slot(&l)) == NULL)
            nomem = 1;
        else if (k > i && sftp_line(z + i, k - i, kind, now_ms, o, &nomem))
            l.n++;
        i = k + 1;
    }
    return objlist_finish(&l, nomem ? SQLITE_NOMEM : SQLITE_OK, objs, nObj);
}

int
sftp_parse_listing(const char *z, size_t n, int64_t now_ms, backend_obj **objs,
                   int *nObj)
{
    return sftp_parse_kind(z, n, '-', now_ms, objs, nObj);
}

int
sftp_parse_dirs(const char *z, size_t n, int64_t now_ms, backend_obj **objs,
                int *nObj)
{
    return sftp_parse_kind(z, n, 'd', now_ms, objs, nObj);
}
