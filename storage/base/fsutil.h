/*
 * storage/base/fsutil.h: whole-buffer file I/O with EINTR and short transfers
 * handled.  Each returns 0 or an errno value (EIO when a read meets the end
 * of the file early).  Any thread.
 */
#ifndef LITESTREAM_FSUTIL_H
#define LITESTREAM_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

int fs_write_all(int fd, const void *buf, size_t n);
int fs_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);
int fs_pread_all(int fd, void *buf, size_t n, uint64_t off);

#endif
