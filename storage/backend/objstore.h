/*
 * storage/backend/objstore.h: what the HTTP object-store backends (s3, gs,
 * oss in s3.c; abs in azure.c) share above their REST clients: the byte
 * range of a read and the body it brings back, and the loop over the
 * pages of a listing.
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_OBJSTORE_H
#define LITESTREAM_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/backend/http.h"

/*
 * The HTTP range of a read of len bytes at offset ("bytes=a-b", or "bytes=a-"
 * for len UINT64_MAX) into buf (n >= 48).  len must not be 0 (an empty range
 * is not expressible in HTTP: the caller answers it without a request).
 */
void objstore_range(uint64_t offset, uint64_t len, char *buf, size_t n);

/*
 * Moves the body of a successful read into *out / *nOut (a NUL-terminated
 * sqlite3_malloc'd buffer, never NULL on success), for a read of len bytes
 * at offset (ranged: a Range header was sent): when the server ignored the
 * range (200) the first offset bytes are dropped, and a longer answer is
 * cut to len.  resp->body is taken (NULL afterwards).  SQLITE_OK or
 * SQLITE_NOMEM.
 */
int objstore_take_body(http_resp *resp, int ranged, uint64_t offset,
                       uint64_t len, uint8_t **out, size_t *nOut);

/*
 * One page of a listing: appends what it lists to *objs (*n used of
 * *nAlloc) and sets *pzNext (sqlite3_malloc'd) to the token of the next
 * page, or NULL at the end.  zToken is NULL for the first page.  On failure
 * returns the code, having recorded its message on its own handle.
 */
typedef int (*objstore_page_fn)(void *ctx, const char *zPrefix, int deep,
                                const char *zToken, backend_obj **objs, int *n,
                                int *nAlloc, char **pzNext);

/*
 * Lists zPrefix page by page with fn until no next token.  SQLITE_OK with
 * *objs / *n; otherwise nothing is returned (*objs NULL, *n 0) and the code
 * is fn's, or SQLITE_IOERR with *pzErr (sqlite3_mprintf'd) when the
 * listing does not end within 100000 pages.
 */
int objstore_list_pages(objstore_page_fn fn, void *ctx, const char *zPrefix,
                        int deep, backend_obj **objs, int *n, char **pzErr);

#endif
