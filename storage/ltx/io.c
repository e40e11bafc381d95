/*
 * storage/ltx/io.c: ready-made read and write callbacks for the codec: an
 * in-memory source (struct ltx_membuf) and file descriptors (read, write,
 * pwrite), the latter retrying on EINTR and short transfers.
 *
 * Invariants:
 *  1. A read callback reports a short count only at end of input, which is
 *     what the decoder takes as end of file.
 *  2. On failure the fd callbacks return nonzero with errno left set.
 *
 * Threads: no state beyond the ctx each call is given; any thread.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "storage/ltx/ltx.h"

int
ltx_membuf_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    struct ltx_membuf *m = ctx;
    size_t k = m->off < m->n ? m->n - m->off : 0;

    if (k > n)
        k = n;
    if (k)
        memcpy(buf, m->p + m->off, k);
    m->off += k;
    *nRead = k;
    return 0;
}

int
ltx_fd_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    int fd = *(int *)ctx, rc = 0;
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        got += (size_t)r;
    }
    *nRead = got;
    return rc;
}

int
ltx_fd_write(void *ctx, const void *buf, size_t n)
{
    int fd = *(int *)ctx, rc = 0;
    size_t done = 0;

    while (done < n && rc == 0) {
        ssize_t r = write(fd, (const char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = -1;
        else
            done += (size_t)r;
    }
    return rc;
}

int
ltx_fd_pwrite(void *ctx, const void *buf, size_t n, uint64_t offset)
{
    int fd = *(int *)ctx, rc = 0;
    size_t done = 0;

    while (done < n && rc == 0) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done,
                           (off_t)(offset + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = -1;
        else
            done += (size_t)r;
    }
    return rc;
}
