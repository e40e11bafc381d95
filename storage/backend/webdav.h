/*
 * storage/backend/webdav.h: the decoder of WebDAV PROPFIND answers, shared
 * by the webdav backend (storage/backend/webdav.c) and its fuzz target.
 *
 * A "Depth: 1" PROPFIND of a collection answers 207 Multi-Status:
 *
 *     <D:multistatus xmlns:D="DAV:">
 *       <D:response><D:href>/app/ltx/0/</D:href> ... collection ...
 *       <D:response><D:href>/app/ltx/0/0000000000000001-...ltx</D:href>
 *         <D:propstat><D:prop><D:resourcetype/>
 *           <D:getcontentlength>4096</D:getcontentlength>
 *           <D:getlastmodified>Mon, 07 Dec 2026 01:45:56 GMT</...>
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_WEBDAV_H
#define LITESTREAM_WEBDAV_H

#include <stddef.h>

#include "storage/backend/backend.h"

/*
 * Parses the multistatus document z[0..n) into the non-collection members
 * *objs (*nObj entries, sorted by key; free with backend_objs_free()).  A
 * key is the last segment of the member's href, percent-decoded; members
 * whose name is empty, or holds '/' or a control character once decoded,
 * are skipped, and so are members without a size.  created_ms is
 * getlastmodified (RFC 1123), or 0 if absent or malformed.  Returns
 * SQLITE_OK, SQLITE_CORRUPT (not XML, or not a multistatus; *pzErr says
 * why, pzErr may be NULL) or SQLITE_NOMEM.
 */
int webdav_parse_propfind(const char *z, size_t n, backend_obj **objs,
                          int *nObj, char **pzErr);

/*
 * As webdav_parse_propfind(), but returns the collections (size 0), named
 * by the last segment of their href without its trailing '/', except the
 * listed collection itself: the one whose href path (without scheme and
 * authority, percent-decoded, trailing '/' ignored) is zSelf, the decoded
 * server path that was listed ("/app/generations/").  What
 * backend_list_dirs() lists.
 */
int webdav_parse_dirs(const char *z, size_t n, const char *zSelf,
                      backend_obj **objs, int *nObj, char **pzErr);

#endif
