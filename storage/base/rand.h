/*
 * storage/base/rand.h: the extension's own random numbers, for jitter.
 *
 * The C library's rand() would change the host application's random
 * sequence (and rand_r with a shared seed is a data race): every random
 * number of the library comes from here instead.  Not for secrets.
 *
 * Any thread: a splitmix64 sequence over one atomic counter, seeded once
 * (getrandom, else the clock and the process id).
 */
#ifndef LITESTREAM_RAND_H
#define LITESTREAM_RAND_H

#include <stdint.h>

/* The next 64 random bits. */
uint64_t ls_rand64(void);

/* A number in [0, n] (n inclusive); 0 when n is 0. */
uint64_t ls_rand_upto(uint64_t n);

#endif
