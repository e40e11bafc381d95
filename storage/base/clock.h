/*
 * storage/base/clock.h: the one wall clock of the storage engine (Unix
 * milliseconds: object timestamps, status times, schedules) and the
 * absolute deadlines that pthread_cond_timedwait() takes.  Any thread.
 */
#ifndef LITESTREAM_CLOCK_H
#define LITESTREAM_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_now_ms(void);

/*
 * Sets *ts to now + ms (CLOCK_REALTIME, the clock pthread_cond_timedwait()
 * uses by default), normalised.  ms >= 0.
 */
void clock_deadline(struct timespec *ts, int64_t ms);

#endif
