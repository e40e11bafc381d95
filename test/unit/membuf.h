/*
 * test/unit/membuf.h: a growing memory buffer that the unit tests hand to
 * the LTX encoder as its write callback (ltx_write_fn), to build objects in
 * memory.
 */
#ifndef LITESTREAM_TEST_MEMBUF_H
#define LITESTREAM_TEST_MEMBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct membuf {
    uint8_t *p;
    size_t n, cap;
} membuf;

static int
mem_write(void *ctx, const void *buf, size_t n)
{
    membuf *m = ctx;
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        if (m->p == NULL)
            return 1;
    }
    memcpy(m->p + m->n, buf, n);
    m->n += n;
    return 0;
}

#endif
