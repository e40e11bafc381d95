/*
 * storage/backend/sftp.h: the decoder of SFTP directory listings, shared by
 * the sftp backend (storage/backend/sftp.c) and its fuzz target.
 *
 * An SFTP server (OpenSSH's internal-sftp and sftp-server, and most others)
 * describes each directory entry with an "ls -l" style line, which is what
 * libcurl hands over for a directory URL:
 *
 *     -rw-r--r--    1 user     group        4096 Dec  7 01:44 name
 *     -rw-r--r--    1 user     group        4096 Jan  2  2025 name
 *
 * The time has minute precision ("HH:MM" for the last six months, else the
 * year).  Lines that are not regular files, or do not parse, are skipped:
 * the input comes from the network and is never trusted.
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_SFTP_H
#define LITESTREAM_SFTP_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/backend.h"

/*
 * Parses the listing z[0..n) into *objs (*nObj entries, sorted by key; free
 * with backend_objs_free()).  now_ms (Unix ms) dates "HH:MM" entries: the
 * latest such time not after now_ms plus one day, as ls does.  created_ms
 * is the end of the listed minute, capped at now_ms (an object is never
 * seen older than it is).  Returns SQLITE_OK or SQLITE_NOMEM.
 */
int sftp_parse_listing(const char *z, size_t n, int64_t now_ms,
                       backend_obj **objs, int *nObj);

/*
 * As sftp_parse_listing(), but returns the directories ('d' lines) other
 * than "." and "..", size 0: what backend_list_dirs() lists.
 */
int sftp_parse_dirs(const char *z, size_t n, int64_t now_ms, backend_obj **objs,
                    int *nObj);

#endif
