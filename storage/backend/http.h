/*
 * storage/backend/http.h: HTTP requests for the object-store backends; the only
 * user of libcurl.
 *
 * A client is a pool of curl easy handles, each keeping its connection
 * alive between requests; any number of threads may run requests on one
 * client at the same time (each takes its own handle from the pool).  A
 * request is one attempt: the caller (a backend) signs it, runs it, and asks
 * http_retry_delay_ms() whether and when to try again, re-signing each
 * attempt.  That keeps signing out of here and the retry policy in one
 * place for every backend.
 *
 * Timeouts: connecting is bounded by connect_timeout_ms; a transfer that
 * moves no byte for stall_timeout_ms is aborted (there is no limit on the
 * total time of a transfer that makes progress, so a 1 GB snapshot on a
 * slow link is not cut off).
 *
 * Threads: any; see above.  curl_global_init() runs once, the first time a
 * client is created; curl_global_cleanup() never runs (the host process may
 * use curl too).
 */
#ifndef LITESTREAM_HTTP_H
#define LITESTREAM_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct http_client http_client;

typedef struct http_opts {
    int connect_timeout_ms; /* <= 0: 10 s */
    int stall_timeout_ms;   /* <= 0: 30 s */
    int skip_verify;        /* do not verify TLS certificates */
    int max_attempts;       /* <= 0: 5 (1 try + 4 retries) */
} http_opts;

/*
 * SFTP (libcurl over libssh2): the settings of one request to an sftp://
 * URL, given as http_req.ssh.  The easy handle keeps its SSH connection
 * between requests like an HTTP keep-alive; a connection is made only when
 * none is open.  method "PUT" uploads the body, "GET" downloads the file
 * (or, for a URL ending in '/', its "ls -l" style listing), "QUOTE" runs
 * only the commands.
 */
#define HTTP_HOSTKEY_OK        0 /* the known_hosts entry matches */
#define HTTP_HOSTKEY_MISMATCH  1 /* known_hosts has another key for host */
#define HTTP_HOSTKEY_MISSING   2 /* known_hosts has no key for the host */
#define HTTP_HOSTKEY_UNCHECKED 3 /* no known_hosts file was given */

typedef struct http_ssh {
    const char *user;
    const char *password;    /* NULL: no password authentication */
    const char *key_path;    /* private key file; NULL: none */
    const char *known_hosts; /* NULL: check_host alone decides */
    /*
     * Called when a connection is made, with the server's host key (the raw
     * SSH key blob, n bytes) and how known_hosts matched it (HTTP_HOSTKEY_*).
     * Returns non-zero to accept the key; 0 fails the request with
     * ssh_fail HTTP_SFTP_HOSTKEY.
     */
    int (*check_host)(void *arg, const void *key, size_t n, int match);
    void *arg;
    /* SFTP commands ("rename A B", "rm A", "mkdir A") run before and after
     * the transfer, in order; the first that fails fails the request. */
    const char *const *quote;
    int nquote;
    const char *const *postquote;
    int npostquote;
    int create_dirs;   /* PUT: create missing directories of the path */
    const char *range; /* GET: "FIRST-LAST" bytes, or NULL */
} http_ssh;

/* http_resp.ssh_fail: why an SFTP request failed. */
#define HTTP_SFTP_NOTFOUND 1 /* no such file or directory */
#define HTTP_SFTP_LOGIN    2 /* authentication refused */
#define HTTP_SFTP_HOSTKEY  3 /* host key refused by check_host */
#define HTTP_SFTP_DENIED   4 /* permission denied */
#define HTTP_SFTP_FULL     5 /* disk full or quota exceeded */
#define HTTP_SFTP_QUOTE    6 /* a command failed (transport says which) */
#define HTTP_SFTP_PAST_END 7 /* the range starts past the end of the file */

/* One request attempt. */
typedef struct http_req {
    const char *method;         /* "GET", "PUT", "POST", "DELETE", "HEAD" */
    const char *url;            /* absolute, already encoded */
    const char *const *headers; /* "Name: value" lines */
    int nheader;
    /*
     * The body: nbody bytes at body, or, when body is NULL and body_fd >= 0,
     * nbody bytes of file body_fd starting at body_off (read with pread, so
     * several requests may share one fd).  nbody 0: no body.
     */
    const void *body;
    int body_fd;
    uint64_t body_off;
    uint64_t nbody;
    /* Refuse a response body larger than this (0: no limit). */
    uint64_t max_response;
    const http_ssh *ssh; /* sftp:// URLs only (above); NULL otherwise */
    /*
     * Send it on a new connection: libcurl silently sends a request again
     * when a kept connection turns out dead before any answer, which a
     * request that must not run twice (WebDAV MOVE) cannot afford.
     */
    int fresh;
} http_req;

typedef struct http_resp {
    long status;   /* HTTP status, 0 if no response was received */
    uint8_t *body; /* response body (sqlite3_malloc'd), NUL-terminated */
    size_t nbody;
    char *headers;   /* the last response's header block, raw */
    char *transport; /* why no (complete) response came, or NULL */
    int retryable;   /* a transport failure worth retrying */
    int ssh_fail;    /* SFTP: HTTP_SFTP_* when the request failed, or 0 */
} http_resp;

/*
 * Creates a client (NULL opts: defaults).  Returns SQLITE_OK and *out, or
 * SQLITE_NOMEM / SQLITE_ERROR (curl could not be initialised).
 */
int http_client_new(const http_opts *opts, http_client **out);

/* Frees the client and closes its connections; NULL-safe.  No request may
 * be running. */
void http_client_free(http_client *c);

/*
 * Runs one attempt of req and fills *resp (clear it with
 * http_resp_clear()).  Returns SQLITE_OK when a complete HTTP response
 * arrived, whatever its status; SQLITE_IOERR when none did (refused,
 * reset, timed out, truncated, TLS failure; resp->transport says which and
 * resp->retryable whether trying again may help); SQLITE_NOMEM.  An SFTP
 * request (req->ssh) returns SQLITE_OK when it and all its commands
 * succeeded (status stays 0), else SQLITE_IOERR with resp->ssh_fail set
 * when the server refused something (then it is not retryable).
 */
int http_do(http_client *c, const http_req *req, http_resp *resp);

/* Frees what a response holds and zeroes it; NULL-safe. */
void http_resp_clear(http_resp *resp);

/*
 * The value of response header zName (case-insensitive), trimmed, copied
 * into buf (n bytes, truncated); returns buf, or NULL if absent.
 */
const char *http_resp_header(const http_resp *resp, const char *zName,
                             char *buf, size_t n);

/*
 * The retry policy: after attempt number `attempt` (1 for the first) ended
 * in resp (rc the result of http_do), returns the milliseconds to wait
 * before the next attempt, or -1 not to retry.  Retried: retryable
 * transport failures, 500, 502, 503, 504, 429, and any status whose
 * body is an S3 "SlowDown" / "RequestTimeout" / "InternalError" error.
 * Capped exponential backoff with full jitter: a random delay in
 * [0, min(2 s, 100 ms * 2^(attempt-1))] plus 50 ms.
 */
int http_retry_delay_ms(const http_client *c, int rc, const http_resp *resp,
                        int attempt);

/* Sleeps ms milliseconds. */
void http_sleep_ms(int ms);

#endif
