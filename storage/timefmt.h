/*
 * storage/timefmt.h: timestamps as users write them (RFC 3339) and as the
 * extension prints them.
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_TIMEFMT_H
#define LITESTREAM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_SIZE 64 /* enough for timefmt_format() */

/*
 * Parses "YYYY-MM-DDTHH:MM:SS[.fff...][Z|+hh:mm|-hh:mm]" (a space may
 * replace the 'T'; no zone means UTC; fractions beyond milliseconds are
 * truncated) or a bare "YYYY-MM-DD" (midnight UTC) into Unix ms.  Returns
 * 1 and *ms, or 0 if z is not such a timestamp.
 */
int timefmt_parse(const char *z, int64_t *ms);

/* Writes Unix ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf and returns buf. */
const char *timefmt_format(int64_t ms, char buf[TIMEFMT_SIZE]);

#endif
