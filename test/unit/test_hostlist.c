/*
 * test_hostlist.c: the listing decoders of the sftp and webdav backends
 * (storage/backend/sftp_list.c, storage/backend/webdav_list.c).
 *
 * What a user relies on: the objects of a replica directory are listed with
 * their exact sizes and in key order whatever else the server lists
 * (directories, links, "." and "..", the collection itself); times are
 * never later than the server's and never older than the object (an
 * "ls -l" minute is rounded up, capped at now; a "HH:MM" entry from last
 * December is dated last year); percent-escapes in WebDAV hrefs decode;
 * names that would escape the directory or carry control characters are
 * dropped; a document that is not a multistatus is refused with a message;
 * running out of memory is SQLITE_NOMEM.
 */
#include <string.h>
#include <time.h>

#include "storage/backend/sftp.h"
#include "storage/backend/webdav.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

static int64_t
utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000;
}

static const char ls_openssh[] =
    "drwxr-xr-x    2 root     root         4096 Dec  7 01:44 .\n"
    "drwxr-xr-x    3 root     root         4096 Dec  7 01:40 ..\n"
    "-rw-r--r--    1 root     root        10404 Dec  7 01:44 "
    "0000000000000002-0000000000000002.ltx\n"
    "-rw-r--r--    1 root     root            6 Jan  2  2025 "
    "0000000000000001-0000000000000001.ltx\n"
    "lrwxrwxrwx    1 root     root            6 Dec  7 01:44 link -> x\n"
    "-rw-r--r--    1 root     root          123 Dec 31 23:59 old\r\n"
    "-rw-r--r--    1 root     root          999 Dec  7 01:45 "
    "0000000000000003-0000000000000003.ltx.0123456789abcdef.tmp\n"
    "garbage line\n"
    "-rw-r--r--    1 root     root         12x3 Dec  7 01:44 badsize\n"
    "-rw-r--r--    1 root     root          12 Foo  7 01:44 badmonth\n"
    "-rw-r--r--    1 root     root          12 Dec  7 25:44 badtime\n"
    "-rw-r--r-- 1 u g 5 Dec  7 01:44 name with spaces";

static void
test_sftp_listing(void)
{
    int64_t now = utc(2026, 12, 7, 1, 44, 30);
    backend_obj *o = NULL;
    int n = -1, rc;

    rc = sftp_parse_listing(ls_openssh, strlen(ls_openssh), now, &o, &n);
    ok(rc == SQLITE_OK && n == 5, "sftp: regular files only (%d)", n);
    if (rc != SQLITE_OK || n != 5)
        return;
    ok(strcmp(o[0].key, "0000000000000001-0000000000000001.ltx") == 0 &&
           strcmp(o[1].key, "0000000000000002-0000000000000002.ltx") == 0 &&
           strcmp(o[2].key,
                  "0000000000000003-0000000000000003.ltx.0123456789abcdef"
                  ".tmp") == 0 &&
           strcmp(o[3].key, "name with spaces") == 0 &&
           strcmp(o[4].key, "old") == 0,
       "sftp: in key order, names kept whole");
    ok(o[0].size == 6 && o[1].size == 10404 && o[4].size == 123,
       "sftp: exact sizes");
    ok(o[1].created_ms == now,
       "sftp: this minute's object is capped at now (%lld)",
       (long long)o[1].created_ms);
    ok(o[0].created_ms == utc(2025, 1, 2, 0, 0, 0) + 59999,
       "sftp: a dated entry is the end of that day's first minute");
    ok(o[4].created_ms == utc(2025, 12, 31, 23, 59, 0) + 59999,
       "sftp: \"Dec 31 23:59\" seen in December 7th is last year's");
    backend_objs_free(o, n);

    rc = sftp_parse_listing("", 0, now, &o, &n);
    ok(rc == SQLITE_OK && n == 0 && o == NULL, "sftp: empty listing");
}

/* backend_list_dirs() on sftp: the directories, not ".", "..", files or
 * links, size 0, dated like files. */
static void
test_sftp_dirs(void)
{
    static const char ls[] =
        "drwxr-xr-x    2 root     root         4096 Dec  7 01:44 .\n"
        "drwxr-xr-x    3 root     root         4096 Dec  7 01:40 ..\n"
        "drwxr-xr-x    4 root     root         4096 Dec  7 01:30 "
        "66fbdbafd1bf1f64\n"
        "-rw-r--r--    1 root     root           12 Dec  7 01:44 file\n"
        "lrwxrwxrwx    1 root     root            6 Dec  7 01:44 l -> x\n"
        "drwxr-xr-x    4 root     root         4096 Jan  2  2025 "
        "0123456789abcdef\r\n"
        "drwxr-xr-x    2 root     root         4096 Dec  7 01:44 .hidden\n"
        "drwxr-xr-x    2 root     root         4096 Foo  7 01:44 badmonth\n"
        "drwxr-xr-x 2 u g 4096 Dec  7 01:44 dir with spaces";
    int64_t now = utc(2026, 12, 7, 1, 44, 30);
    backend_obj *o = NULL;
    int n = -1, rc;

    rc = sftp_parse_dirs(ls, strlen(ls), now, &o, &n);
    ok(rc == SQLITE_OK && n == 4, "sftp dirs: directories only (%d)", n);
    if (rc == SQLITE_OK && n == 4) {
        ok(strcmp(o[0].key, ".hidden") == 0 &&
               strcmp(o[1].key, "0123456789abcdef") == 0 &&
               strcmp(o[2].key, "66fbdbafd1bf1f64") == 0 &&
               strcmp(o[3].key, "dir with spaces") == 0,
           "sftp dirs: in key order, names kept whole, no . or ..");
        ok(o[0].size == 0 && o[1].size == 0 && o[2].size == 0,
           "sftp dirs: size 0");
        ok(o[1].created_ms == utc(2025, 1, 2, 0, 0, 0) + 59999 &&
               o[2].created_ms == utc(2026, 12, 7, 1, 30, 0) + 59999,
           "sftp dirs: dated like files");
    }
    backend_objs_free(o, n);
    rc = sftp_parse_listing(ls, strlen(ls), now, &o, &n);
    ok(rc == SQLITE_OK && n == 1 && strcmp(o[0].key, "file") == 0,
       "sftp: the same listing's files are the one file");
    backend_objs_free(o, n);
    rc = sftp_parse_dirs("", 0, now, &o, &n);
    ok(rc == SQLITE_OK && n == 0 && o == NULL, "sftp dirs: empty listing");
}

static const char dav_rclone[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><D:multistatus "
    "xmlns:D=\"DAV:\"><D:response><D:href>/app/ltx/0/</D:href><D:propstat>"
    "<D:prop><D:resourcetype><D:collection xmlns:D=\"DAV:\"/>"
    "</D:resourcetype><D:getlastmodified>Mon, 07 Dec 2026 01:45:56 GMT"
    "</D:getlastmodified></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
    "</D:propstat></D:response>"
    "<D:response><D:href>/app/ltx/0/0000000000000002-0000000000000002.ltx"
    "</D:href><D:propstat><D:prop><D:resourcetype></D:resourcetype>"
    "<D:getcontentlength>4096</D:getcontentlength><D:getlastmodified>Mon, "
    "07 Dec 2026 01:45:56 GMT</D:getlastmodified></D:prop><D:status>"
    "HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    "<D:response><D:href>http://h:1/app/ltx/0/a%20b.ltx</D:href>"
    "<D:propstat><D:prop><D:getcontentlength>3</D:getcontentlength>"
    "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
    "</D:response>"
    "<D:response><D:href>/app/ltx/0/sub/</D:href><D:propstat><D:prop>"
    "<D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat>"
    "</D:response>"
    "<D:response><D:href>/app/ltx/0/evil%2F..%2Fx</D:href><D:propstat>"
    "<D:prop><D:getcontentlength>1</D:getcontentlength></D:prop>"
    "</D:propstat></D:response>"
    "<D:response><D:href>/app/ltx/0/ctl%0A</D:href><D:propstat>"
    "<D:prop><D:getcontentlength>1</D:getcontentlength></D:prop>"
    "</D:propstat></D:response>"
    "<D:response><D:href>/app/ltx/0/nosize</D:href><D:propstat>"
    "<D:prop></D:prop></D:propstat></D:response>"
    "<D:response><D:href>/app/ltx/0/0000000000000001-0000000000000001.ltx"
    "</D:href><D:propstat><D:prop><D:getcontentlength>12"
    "</D:getcontentlength><D:getlastmodified>bad date</D:getlastmodified>"
    "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
    "</D:response></D:multistatus>";

static void
test_propfind(void)
{
    backend_obj *o = NULL;
    char *zErr = NULL;
    int n = -1, rc;

    rc = webdav_parse_propfind(dav_rclone, strlen(dav_rclone), &o, &n, &zErr);
    ok(rc == SQLITE_OK && n == 3, "propfind: files only (%d)", n);
    if (rc == SQLITE_OK && n == 3) {
        ok(strcmp(o[0].key, "0000000000000001-0000000000000001.ltx") == 0 &&
               strcmp(o[1].key, "0000000000000002-0000000000000002.ltx") == 0 &&
               strcmp(o[2].key, "a b.ltx") == 0,
           "propfind: in key order, escapes decoded, absolute hrefs");
        ok(o[0].size == 12 && o[1].size == 4096 && o[2].size == 3,
           "propfind: exact sizes");
        ok(o[1].created_ms == utc(2026, 12, 7, 1, 45, 56) &&
               o[0].created_ms == 0,
           "propfind: getlastmodified read (0 when malformed)");
    }
    backend_objs_free(o, n);

    rc = webdav_parse_propfind("<html>no</html>", 15, &o, &n, &zErr);
    ok(rc == SQLITE_CORRUPT && zErr && strstr(zErr, "multistatus") && !o,
       "propfind: not a multistatus: %s", zErr ? zErr : "(null)");
    sqlite3_free(zErr);
    zErr = NULL;
    rc = webdav_parse_propfind("<a><b></a>", 10, &o, &n, &zErr);
    ok(rc == SQLITE_CORRUPT && zErr && strstr(zErr, "malformed XML"),
       "propfind: not XML: %s", zErr ? zErr : "(null)");
    sqlite3_free(zErr);
}

/* backend_list_dirs() on webdav: the collections other than the listed
 * one (however its href is spelled), names decoded and clean. */
static void
test_propfind_dirs(void)
{
    static const char *const self[] = {
        "/app/generations/", "http://h:1/app/generations", "/app/gener%61tions",
        "https://h/app//generations//"};
    backend_obj *o = NULL;
    char *zErr = NULL;
    int n = -1, rc, all = 1;

    rc = webdav_parse_dirs(dav_rclone, strlen(dav_rclone), "/app/ltx/0/", &o,
                           &n, &zErr);
    ok(rc == SQLITE_OK && n == 1 && strcmp(o[0].key, "sub") == 0 &&
           o[0].size == 0,
       "propfind dirs: the sub-collection, not the listed one nor files (%d)",
       n);
    backend_objs_free(o, n);
    for (int i = 0; i < 4; i++) {
        char *z = sqlite3_mprintf(
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>%s"
            "</D:href><D:propstat><D:prop><D:resourcetype><D:collection/>"
            "</D:resourcetype></D:prop></D:propstat></D:response>"
            "<D:response><D:href>/app/generations/66fbdbafd1bf1f64/</D:href>"
            "<D:propstat><D:prop><D:resourcetype><D:collection/>"
            "</D:resourcetype><D:getlastmodified>Mon, 07 Dec 2026 01:45:56 "
            "GMT</D:getlastmodified></D:prop></D:propstat></D:response>"
            "<D:response><D:href>http://h:1/app/generations/a%%20b</D:href>"
            "<D:propstat><D:prop><D:resourcetype><D:collection/>"
            "</D:resourcetype></D:prop></D:propstat></D:response>"
            "<D:response><D:href>/app/generations/evil%%2F..%%2F/</D:href>"
            "<D:propstat><D:prop><D:resourcetype><D:collection/>"
            "</D:resourcetype></D:prop></D:propstat></D:response>"
            "<D:response><D:href>/app/generations/gone/</D:href><D:propstat>"
            "<D:prop><D:resourcetype><D:collection/></D:resourcetype>"
            "</D:prop><D:status>HTTP/1.1 404 Not Found</D:status>"
            "</D:propstat></D:response></D:multistatus>",
            self[i]);
        rc =
            webdav_parse_dirs(z, strlen(z), "/app/generations/", &o, &n, &zErr);
        if (rc != SQLITE_OK || n != 2 ||
            strcmp(o[0].key, "66fbdbafd1bf1f64") != 0 ||
            strcmp(o[1].key, "a b") != 0 ||
            o[0].created_ms != utc(2026, 12, 7, 1, 45, 56)) {
            all = 0;
            diag("self href %s: rc %d, %d dirs", self[i], rc, n);
        }
        backend_objs_free(o, n);
        sqlite3_free(z);
    }
    ok(all, "propfind dirs: the listed collection is skipped however its "
            "href is spelled; escapes decoded; only 200 propstats");
    rc = webdav_parse_dirs("<html>no</html>", 15, "/", &o, &n, &zErr);
    ok(rc == SQLITE_CORRUPT && zErr && strstr(zErr, "multistatus") && !o,
       "propfind dirs: not a multistatus: %s", zErr ? zErr : "(null)");
    sqlite3_free(zErr);
}

int
main(void)
{
    api_init();
    test_sftp_listing();
    test_propfind();
    test_sftp_dirs();
    test_propfind_dirs();
    return tap_done();
}
