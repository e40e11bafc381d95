/*
 * tap.h: a minimal TAP producer for the C test programs.
 *
 * Usage: call ok(cond, fmt, ...) for each check, diag() for commentary and
 * return tap_done() from main().  The plan is printed at the end ("1..N"),
 * so a test that dies early is reported as failed by the harness.
 * Header-only; every test program includes it once.
 */
#ifndef LITESTREAM_TEST_TAP_H
#define LITESTREAM_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n;
static int tap_failed;

__attribute__((format(printf, 2, 3))) static int
ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

__attribute__((format(printf, 1, 2), unused)) static void
diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

#endif
