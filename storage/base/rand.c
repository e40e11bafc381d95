/*
 * storage/base/rand.c: splitmix64 over an atomic counter (rand.h).
 *
 * Invariant: the state is only ever advanced with an atomic add, so two
 * threads never see the same value; the seed is set once (pthread_once)
 * before the first value.  Any thread.
 */
#include "storage/base/rand.h"

#include <pthread.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define GOLDEN 0x9e3779b97f4a7c15ull

static uint64_t state;
static pthread_once_t seeded = PTHREAD_ONCE_INIT;

static void
seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        s ^= (uint64_t)getpid() << 32;
    }
    __atomic_store_n(&state, s, __ATOMIC_RELAXED);
}

uint64_t
ls_rand64(void)
{
    pthread_once(&seeded, seed);
    uint64_t z = __atomic_add_fetch(&state, GOLDEN, __ATOMIC_RELAXED);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t
ls_rand_upto(uint64_t n)
{
    return n == UINT64_MAX ? ls_rand64() : ls_rand64() % (n + 1);
}
