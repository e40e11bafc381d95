/*
 * storage/base/timefmt.h: the text forms of durations and points in time used
 * by the point-in-time recovery surface (PRAGMAs, restore targets, listings).
 *
 *   durations   "100ms", "30s", "5m", "1h", "24h", "1h30m", "1.5s"
 *               (units ms, s, m, h, d; a bare number is an error so that a
 *               unit is never guessed)
 *   level lists "30s,5m,1h": 1..8 strictly increasing durations
 *   timestamps  ISO 8601 / RFC 3339: "2026-11-22T14:01:00Z",
 *               "2026-11-22T14:01:00.25+02:00", "2026-11-22 14:01:00Z";
 *               a time zone (Z or an offset) is required
 *
 * Pure functions, any thread.  Messages are sqlite3_mprintf'd.
 */
#ifndef LITESTREAM_TIMEFMT_H
#define LITESTREAM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_MAX_LEVELS 8 /* levels 1..8; level 9 holds snapshots */

/*
 * Parses a duration into *ms (> 0, at most 100 days).  SQLITE_OK, or
 * SQLITE_ERROR with *pzErr (may be NULL) saying what is expected.
 */
int timefmt_parse_duration(const char *z, int64_t *ms, char **pzErr);

/* Writes the shortest exact form of ms ("250ms", "30s", "1h30m") to buf. */
const char *timefmt_duration(int64_t ms, char *buf, size_t n);

/*
 * Parses "d1,d2,..." (spaces allowed around the commas) into ms[0..*n-1]:
 * 1..TIMEFMT_MAX_LEVELS durations, each longer than the one before.
 * SQLITE_OK, or SQLITE_ERROR with *pzErr.
 */
int timefmt_parse_levels(const char *z, int64_t ms[TIMEFMT_MAX_LEVELS], int *n,
                         char **pzErr);

/* Formats ms[0..n-1] as "30s,5m,1h" into buf. */
const char *timefmt_levels(const int64_t *ms, int n, char *buf, size_t len);

/*
 * Parses an RFC 3339 timestamp into Unix milliseconds (fractions beyond
 * milliseconds are truncated).  Returns 1 on success, 0 if z is not one.
 */
int timefmt_parse_time(const char *z, int64_t *ms);

/*
 * A point in time as users write it: an RFC 3339 timestamp, "now", or a
 * time relative to now_ms, "<N> <unit> ago" with unit second(s),
 * minute(s), hour(s), day(s), week(s), month(s) (30 days) or year(s)
 * (365 days) (also s, sec, min, h, hr, d, w;
 * case-insensitive; N a whole number).  Returns 1 on success, 0 if z is
 * none of these.
 */
int timefmt_parse_when(const char *z, int64_t now_ms, int64_t *ms);

/* Formats Unix ms as "2026-11-22T14:01:00.123Z" into buf (>= 32 bytes). */
const char *timefmt_time(int64_t ms, char *buf, size_t n);

#endif
