/*
 * storage/base/killpoint.c: the test build's kill points (killpoint.h).
 * Compiled empty unless -DLITESTREAM_KILLPOINTS.  Any thread.
 */
#include "storage/base/killpoint.h"

#ifdef LITESTREAM_KILLPOINTS
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t kp_once = PTHREAD_ONCE_INIT;
static char kp_name[64];
static long kp_at;
static long kp_passes;

static void
kp_init(void)
{
    const char *z = getenv("LITESTREAM_KILLPOINT");
    const char *c = z ? strchr(z, ':') : NULL;
    if (!c || (size_t)(c - z) >= sizeof(kp_name))
        return;
    memcpy(kp_name, z, (size_t)(c - z));
    kp_at = strtol(c + 1, NULL, 10);
}

void
killpoint(const char *zName)
{
    pthread_once(&kp_once, kp_init);
    if (kp_at > 0 && strcmp(zName, kp_name) == 0 &&
        __atomic_add_fetch(&kp_passes, 1, __ATOMIC_SEQ_CST) == kp_at)
        raise(SIGKILL);
}
#else
typedef int killpoint_empty; /* ISO C: no empty translation unit */
#endif
