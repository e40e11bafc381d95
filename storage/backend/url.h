/*
 * storage/backend/url.h: replica URLs.
 *
 * A replica is named by a URL (docs: "URLs and credentials"):
 *
 *     /abs/dir                          plain absolute path = file replica
 *     file:///abs/dir                   file:/abs/dir and file://localhost/abs
 *                                       are the same
 *     s3://bucket/path?endpoint=http://127.0.0.1:9000&region=us-east-1
 *     gs://bucket/path
 *     abs://account@container/path      abs://container/path
 *     oss://bucket/path
 *     sftp://user[:password]@host[:port]/path?key=/home/me/.ssh/id_ed25519
 *     webdav://host[:port]/path         webdavs:// for TLS
 *     nats://[user:password@]host[:port]/bucket[/path]
 *
 * The parser only splits and validates; which schemes have a backend is
 * decided by storage/backend/backend.c.  Everything it returns is decoded
 * (percent-escapes in user, password, path and query resolved; '+' in the
 * query means a space, as in Go's url.ParseQuery), and every message it
 * produces shows the URL redacted, so a secret never leaves through an error.
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_URL_H
#define LITESTREAM_URL_H

/* One decoded query parameter, in URL order (duplicates kept). */
typedef struct ls_url_param {
    char *key;
    char *value; /* "" for a bare "?flag" */
} ls_url_param;

typedef struct ls_url {
    /* Lowercase: "file", "s3", "gs", "abs", "sftp", "webdav", "webdavs",
     * "oss", "nats". */
    char *scheme;
    char *user;     /* NULL if none (only sftp, webdav(s), nats take one) */
    char *password; /* NULL if none; never shown (see redacted) */
    /*
     * s3/gs/oss: the bucket; abs: "account@container" (Litestream's order;
     * storage/backend/azure_client.c splits it) or "container"; sftp,
     * webdav(s), nats: the host name or IP literal (IPv6 without brackets).
     * NULL for file.
     */
    char *host;
    int port; /* 1..65535, or 0 if the URL gives none */
    /*
     * file: the absolute directory, normalised ('.' and empty segments
     * dropped, no trailing slash except for "/" itself).  Other schemes:
     * the same normalisation without the leading slash; "" for the root of
     * the bucket/host.  '..' segments are rejected for every scheme.
     */
    char *path;
    ls_url_param *params;
    int nparam;
    /*
     * The URL as given, for display: the password replaced by "REDACTED",
     * and so is the value of every secret-looking query parameter (key,
     * secret, password, token, sig, sas, credential, ...*key).
     */
    char *redacted;
} ls_url;

/*
 * Parses zUrl.  On success returns SQLITE_OK and *out (free with
 * url_free()).  On failure returns SQLITE_ERROR (SQLITE_NOMEM if out of
 * memory), sets *out to NULL and, if pzErr is not NULL, *pzErr to a message
 * allocated with sqlite3_mprintf() that says what is wrong and what is
 * expected, e.g.
 *   litestream: unknown URL scheme 'ftp' in 'ftp://x' (expected file, s3,
 *     gs, abs, sftp, webdav, webdavs, oss, nats)
 *   litestream: file replica path must be absolute: 'rel/dir'
 *   litestream: malformed URL 's3://' (missing bucket)
 * Rejected: control characters, an empty or unknown scheme, relative file
 * paths, '..' path segments, bad percent-escapes, hosts with spaces or other
 * characters not allowed in a host name, ports outside 1..65535 or not
 * numeric, file URLs naming a host other than localhost, fragments, and
 * credentials in URLs of schemes that take none (s3, gs, abs, file).
 */
int url_parse(const char *zUrl, ls_url **out, char **pzErr);

/*
 * Value of the first query parameter named key, or NULL if absent.  key is
 * the canonical snake_case spelling ("force_path_style"); the lookup also
 * matches camelCase ("forcePathStyle") and kebab-case ("force-path-style"):
 * names are compared ignoring case, '_' and '-'.  The pointer lives as long
 * as the ls_url.
 */
const char *url_param(const ls_url *u, const char *key);

/*
 * Non-zero if a query parameter named key (any spelling, see url_param())
 * holds a secret and must never be displayed.
 */
int url_param_is_secret(const char *key);

/*
 * Returns a copy of any string (valid URL or not) with the password and
 * secret query values replaced by "REDACTED", allocated with
 * sqlite3_mprintf(); NULL if out of memory.  For messages about strings
 * that may not have parsed.
 */
char *url_redact(const char *zUrl);

/* Frees a parsed URL; NULL is a no-op. */
void url_free(ls_url *u);

#endif
