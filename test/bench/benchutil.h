/*
 * test/bench/benchutil.h: the small helpers bench.c and writers.c share
 * (one copy: each program includes it once, after defining BENCH_PROG,
 * the prefix of its error messages).  Header-only: the benchmark's drivers
 * are single files compiled by run.sh with cc.
 */
#ifndef LITESTREAM_BENCHUTIL_H
#define LITESTREAM_BENCHUTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_PROG
#error "define BENCH_PROG (the program's name) before including benchutil.h"
#endif

static inline int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void
sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    fprintf(stderr, BENCH_PROG ": ");
    vfprintf(stderr, f, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    _exit(2);
}

static inline char *__attribute__((format(printf, 1, 2)))
fmt(const char *f, ...)
{
    va_list ap;
    char *z = NULL;
    va_start(ap, f);
    if (vasprintf(&z, f, ap) < 0)
        die("out of memory");
    va_end(ap);
    return z;
}

static inline int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(p);
    return 0;
}

static inline void
rm_rf(const char *path)
{
    nftw(path, rm_cb, 64, FTW_DEPTH | FTW_PHYS);
}

static inline void
mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static inline int
exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Peak resident set of this process, in KiB. */
static inline long
vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

static inline int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double
median(const double *v, int n)
{
    double tmp[64];
    if (n <= 0)
        return -1;
    if (n > 64)
        n = 64;
    memcpy(tmp, v, sizeof(double) * n);
    qsort(tmp, n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static inline int
wait_pid(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* CPU seconds used by our waited-for descendants so far. */
static inline double
children_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

#endif
