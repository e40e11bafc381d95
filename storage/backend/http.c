/*
 * storage/backend/http.c: HTTP requests over libcurl (http.h); the only file
 * that includes curl.
 *
 * Invariants:
 *   1. An easy handle is used by one request at a time: http_do() pops one
 *      from the client's idle stack (or makes one) and pushes it back, reset
 *      but with its connection cache intact, so keep-alive survives.
 *   2. No request waits on a server forever: connect timeout, and a
 *      low-speed limit of 1 byte/s over stall_timeout_ms.
 *   3. "Expect: 100-continue" is never sent (it costs a round trip and some
 *      proxies mishandle it); the body size is always announced.
 *   4. A response whose body is shorter than its Content-Length is a
 *      transport failure (curl: partial file), never a success.
 *
 * Threads: any number of threads per client; the idle stack has a mutex.
 */
#include "storage/backend/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "storage/base/rand.h"
#include "storage/base/sqlite.h"

#define HTTP_POOL_MAX    16
#define HTTP_RESERVE_MAX (64u << 20) /* largest body reserved up front */

struct http_client {
    http_opts opts;
    pthread_mutex_t mu;
    CURL *idle[HTTP_POOL_MAX];
    int nidle;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_init_rc;

static void
http_global_init(void)
{
    http_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

int
http_client_new(const http_opts *opts, http_client **out)
{
    http_client *c;

    *out = NULL;
    pthread_once(&http_once, http_global_init);
    if (http_init_rc != CURLE_OK)
        return SQLITE_ERROR;
    c = sqlite3_malloc64(sizeof(*c));
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    if (opts)
        c->opts = *opts;
    if (c->opts.connect_timeout_ms <= 0)
        c->opts.connect_timeout_ms = 10000;
    if (c->opts.stall_timeout_ms <= 0)
        c->opts.stall_timeout_ms = 30000;
    if (c->opts.max_attempts <= 0)
        c->opts.max_attempts = 5;
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return SQLITE_OK;
}

void
http_client_free(http_client *c)
{
    int i;

    if (c == NULL)
        return;
    for (i = 0; i < c->nidle; i++)
        curl_easy_cleanup(c->idle[i]);
    pthread_mutex_destroy(&c->mu);
    sqlite3_free(c);
}

static CURL *
pool_get(http_client *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->mu);
    if (c->nidle > 0)
        h = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->mu);
    return h ? h : curl_easy_init();
}

/* Returns a handle to the pool (or frees it when the pool is full or the
 * handle's connection is in doubt). */
static void
pool_put(http_client *c, CURL *h, int keep)
{
    if (h == NULL)
        return;
    if (keep) {
        curl_easy_reset(h);
        pthread_mutex_lock(&c->mu);
        if (c->nidle < HTTP_POOL_MAX) {
            c->idle[c->nidle++] = h;
            h = NULL;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (h)
        curl_easy_cleanup(h);
}

/* State of one transfer. */
typedef struct xfer {
    const http_req *req;
    uint64_t sent; /* body bytes handed to curl */
    uint8_t *buf;  /* response body, sized from Content-Length */
    size_t n, cap;
    int nomem;
    sqlite3_str *hdrs; /* response headers of the last response */
    int too_big;       /* response body over max_response */
    int read_err;      /* pread of the body file failed */
    struct curl_slist *quote, *postquote; /* SFTP commands */
} xfer;

static size_t
xfer_read(char *buf, size_t size, size_t nitems, void *arg)
{
    xfer *x = arg;
    uint64_t left = x->req->nbody - x->sent;
    size_t n = size * nitems;

    if (n > left)
        n = (size_t)left;
    if (n == 0)
        return 0;
    if (x->req->body) {
        memcpy(buf, (const uint8_t *)x->req->body + x->sent, n);
    } else {
        ssize_t k =
            pread(x->req->body_fd, buf, n, (off_t)(x->req->body_off + x->sent));
        if (k <= 0) {
            x->read_err = 1;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)k;
    }
    x->sent += n;
    return n;
}

/* Rewinds the body for a resend inside one attempt (curl may need it after
 * a redirect or an auth negotiation). */
static int
xfer_seek(void *arg, curl_off_t offset, int origin)
{
    xfer *x = arg;

    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->req->nbody)
        return CURL_SEEKFUNC_FAIL;
    x->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Makes room for `want` bytes of body (+1 for a terminator). */
static int
xfer_reserve(xfer *x, uint64_t want)
{
    uint8_t *p;
    uint64_t cap;

    if (want + 1 <= x->cap)
        return 1;
    cap = x->cap ? (uint64_t)x->cap * 2 : 16384;
    if (cap < want + 1)
        cap = want + 1;
    p = sqlite3_realloc64(x->buf, cap);
    if (p == NULL) {
        x->nomem = 1;
        return 0;
    }
    x->buf = p;
    x->cap = (size_t)cap;
    return 1;
}

static size_t
xfer_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    xfer *x = arg;
    size_t n = size * nmemb;

    if (x->req->max_response && (uint64_t)x->n + n > x->req->max_response) {
        x->too_big = 1;
        return 0;
    }
    if (!xfer_reserve(x, (uint64_t)x->n + n))
        return 0;
    memcpy(x->buf + x->n, ptr, n);
    x->n += n;
    return n;
}

static size_t
xfer_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    xfer *x = arg;
    size_t n = size * nmemb;

    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        sqlite3_str_reset(x->hdrs); /* a new response (after 100, 3xx) */
        x->n = 0;
    } else if (n > 15 && strncasecmp(ptr, "Content-Length:", 15) == 0 &&
               strcmp(x->req->method, "HEAD") != 0) {
        /* One allocation for the body instead of doubling copies (a HEAD
         * announces a body it does not send; large bodies still grow). */
        uint64_t len = strtoull(ptr + 15, NULL, 10);
        if (len <= HTTP_RESERVE_MAX &&
            (!x->req->max_response || len <= x->req->max_response))
            xfer_reserve(x, len);
    }
    sqlite3_str_append(x->hdrs, ptr, (int)n);
    return sqlite3_str_errcode(x->hdrs) ? 0 : n;
}

/* Host key check without known_hosts (CURLOPT_SSH_HOSTKEYFUNCTION). */
static int
ssh_hostkey_cb(void *arg, int type, const char *key, size_t n)
{
    const http_ssh *s = arg;

    (void)type;
    return s->check_host &&
                   s->check_host(s->arg, key, n, HTTP_HOSTKEY_UNCHECKED)
               ? CURLKHMATCH_OK
               : CURLKHMATCH_MISMATCH;
}

/* Host key check after libssh2 matched known_hosts (CURLOPT_SSH_KEYFUNCTION;
 * the found key is the raw blob, len > 0). */
static int
ssh_known_cb(CURL *h, const struct curl_khkey *known,
             const struct curl_khkey *found, enum curl_khmatch m, void *arg)
{
    const http_ssh *s = arg;
    int match = m == CURLKHMATCH_OK         ? HTTP_HOSTKEY_OK
                : m == CURLKHMATCH_MISMATCH ? HTTP_HOSTKEY_MISMATCH
                                            : HTTP_HOSTKEY_MISSING;

    (void)h;
    (void)known;
    if (s->check_host == NULL || found == NULL || found->len == 0)
        return match == HTTP_HOSTKEY_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
    return s->check_host(s->arg, found->key, found->len, match)
               ? CURLKHSTAT_FINE
               : CURLKHSTAT_REJECT;
}

/* A curl list of n commands into *pList; 0 when out of memory. */
static int
ssh_list(const char *const *az, int n, struct curl_slist **pList)
{
    struct curl_slist *t;

    for (int i = 0; i < n; i++) {
        if ((t = curl_slist_append(*pList, az[i])) == NULL)
            return 0;
        *pList = t;
    }
    return 1;
}

/* The SFTP options of one attempt (the common ones are set already). */
static int
ssh_setup(CURL *h, xfer *x)
{
    const http_req *r = x->req;
    const http_ssh *s = r->ssh;
    long auth = 0;

    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "sftp");
    curl_easy_setopt(h, CURLOPT_USERNAME, s->user ? s->user : "");
    if (s->password) {
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password);
        auth |= CURLSSH_AUTH_PASSWORD | CURLSSH_AUTH_KEYBOARD;
    }
    if (s->key_path) {
        curl_easy_setopt(h, CURLOPT_SSH_PRIVATE_KEYFILE, s->key_path);
        auth |= CURLSSH_AUTH_PUBLICKEY;
    }
    curl_easy_setopt(h, CURLOPT_SSH_AUTH_TYPES, auth);
    if (s->known_hosts) {
        curl_easy_setopt(h, CURLOPT_SSH_KNOWNHOSTS, s->known_hosts);
        curl_easy_setopt(h, CURLOPT_SSH_KEYFUNCTION, ssh_known_cb);
        curl_easy_setopt(h, CURLOPT_SSH_KEYDATA, (void *)s);
    } else {
        curl_easy_setopt(h, CURLOPT_SSH_HOSTKEYFUNCTION, ssh_hostkey_cb);
        curl_easy_setopt(h, CURLOPT_SSH_HOSTKEYDATA, (void *)s);
    }
    if (!ssh_list(s->quote, s->nquote, &x->quote) ||
        !ssh_list(s->postquote, s->npostquote, &x->postquote))
        return SQLITE_NOMEM;
    curl_easy_setopt(h, CURLOPT_QUOTE, x->quote);
    curl_easy_setopt(h, CURLOPT_POSTQUOTE, x->postquote);
    if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_FTP_CREATE_MISSING_DIRS,
                         s->create_dirs ? (long)CURLFTP_CREATE_DIR : 0L);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->nbody);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, xfer_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
    } else if (strcmp(r->method, "QUOTE") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (s->range) {
        curl_easy_setopt(h, CURLOPT_RANGE, s->range);
    }
    return SQLITE_OK;
}

/* Sets the options of one attempt on h; the header list goes to *pList. */
static int
xfer_setup(http_client *c, CURL *h, xfer *x, struct curl_slist **pList)
{
    const http_req *r = x->req;
    struct curl_slist *l = NULL, *t;
    int i;

    for (i = 0; i < r->nheader; i++) {
        t = curl_slist_append(l, r->headers[i]);
        if (t == NULL)
            goto nomem;
        l = t;
    }
    if ((t = curl_slist_append(l, "Expect:")) == NULL)
        goto nomem;
    l = t;
    *pList = l;
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     (long)((c->opts.stall_timeout_ms + 999) / 1000));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (r->fresh)
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    /* Large reads: fewer callbacks and copies on multi-MB objects. */
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, xfer_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, xfer_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    if (r->ssh)
        return ssh_setup(h, x);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->opts.skip_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (r->nbody > 0 || strcmp(r->method, "PUT") == 0 ||
               strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->nbody);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, xfer_read);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, xfer_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
    }
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
        strcmp(r->method, "PUT") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    return SQLITE_OK;
nomem:
    curl_slist_free_all(l);
    return SQLITE_NOMEM;
}

/* Whether a failed transfer (curl code e) may succeed if tried again. */
static int
curl_retryable(CURLcode e)
{
    switch (e) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSH:           /* SSH session broken */
    case CURLE_UPLOAD_FAILED: /* SFTP write failed other than refused */
        return 1;
    default:
        return 0;
    }
}

/* Fills resp->transport for a failed transfer. */
static int
xfer_failed(xfer *x, CURLcode e, const char *zDetail, http_resp *resp)
{
    const char *zWhat = curl_easy_strerror(e);

    if (x->too_big)
        zWhat = "response larger than expected";
    else if (x->read_err)
        zWhat = "cannot read the local file being uploaded";
    else if (e == CURLE_OPERATION_TIMEDOUT)
        zWhat = "timed out (no progress)";
    else if (e == CURLE_PARTIAL_FILE)
        zWhat = "response truncated (connection closed early)";
    else if (e == CURLE_GOT_NOTHING || e == CURLE_RECV_ERROR)
        zWhat = "connection closed or reset by the server";
    resp->transport =
        sqlite3_mprintf("%s%s%s", zWhat, zDetail && zDetail[0] ? ": " : "",
                        zDetail ? zDetail : "");
    resp->retryable = !x->too_big && !x->read_err && curl_retryable(e);
    if (x->req->ssh) {
        if (e == CURLE_FAILED_INIT) /* no SSH session (server starting) */
            resp->retryable = 1;
        resp->ssh_fail = e == CURLE_REMOTE_FILE_NOT_FOUND ? HTTP_SFTP_NOTFOUND
                         : e == CURLE_LOGIN_DENIED        ? HTTP_SFTP_LOGIN
                         : e == CURLE_PEER_FAILED_VERIFICATION
                             ? HTTP_SFTP_HOSTKEY
                         : e == CURLE_REMOTE_ACCESS_DENIED ? HTTP_SFTP_DENIED
                         : e == CURLE_REMOTE_DISK_FULL     ? HTTP_SFTP_FULL
                         : e == CURLE_QUOTE_ERROR          ? HTTP_SFTP_QUOTE
                         : e == CURLE_BAD_DOWNLOAD_RESUME  ? HTTP_SFTP_PAST_END
                                                           : 0;
        /* A failed command says why only in its text. */
        if (resp->ssh_fail == HTTP_SFTP_QUOTE && zDetail &&
            strstr(zDetail, "Permission"))
            resp->ssh_fail = HTTP_SFTP_DENIED;
        else if (resp->ssh_fail == HTTP_SFTP_QUOTE && zDetail &&
                 strstr(zDetail, "No such"))
            resp->ssh_fail = HTTP_SFTP_NOTFOUND;
        if (resp->ssh_fail)
            resp->retryable = 0;
    }
    return resp->transport ? SQLITE_IOERR : SQLITE_NOMEM;
}

int
http_do(http_client *c, const http_req *req, http_resp *resp)
{
    char zDetail[CURL_ERROR_SIZE];
    struct curl_slist *list = NULL;
    xfer x;
    CURL *h;
    CURLcode e;
    int rc;

    memset(resp, 0, sizeof(*resp));
    memset(&x, 0, sizeof(x));
    x.req = req;
    x.hdrs = sqlite3_str_new(NULL);
    h = pool_get(c);
    if (h == NULL) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = xfer_setup(c, h, &x, &list);
    if (rc != SQLITE_OK)
        goto out;
    zDetail[0] = 0;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, zDetail);
    e = curl_easy_perform(h);
    if (x.nomem || sqlite3_str_errcode(x.hdrs)) {
        rc = SQLITE_NOMEM;
    } else if (e != CURLE_OK) {
        rc = xfer_failed(&x, e, zDetail, resp);
    } else if (!xfer_reserve(&x, x.n)) {
        rc = SQLITE_NOMEM;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        x.buf[x.n] = 0;
        resp->nbody = x.n;
        resp->body = x.buf;
        x.buf = NULL;
        resp->headers = sqlite3_str_finish(x.hdrs);
        x.hdrs = NULL;
        if (resp->headers == NULL) /* none (SFTP): an empty block */
            resp->headers = sqlite3_mprintf("");
        rc = resp->headers ? SQLITE_OK : SQLITE_NOMEM;
    }
out:
    if (h)
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    /* An SFTP refusal leaves the session usable: keep the connection. */
    pool_put(c, h,
             rc == SQLITE_OK ||
                 (resp->ssh_fail && resp->ssh_fail != HTTP_SFTP_LOGIN &&
                  resp->ssh_fail != HTTP_SFTP_HOSTKEY));
    curl_slist_free_all(list);
    curl_slist_free_all(x.quote);
    curl_slist_free_all(x.postquote);
    sqlite3_free(x.buf);
    sqlite3_free(sqlite3_str_finish(x.hdrs));
    if (rc == SQLITE_NOMEM && resp->transport == NULL)
        http_resp_clear(resp);
    return rc;
}

void
http_resp_clear(http_resp *resp)
{
    if (resp == NULL)
        return;
    sqlite3_free(resp->body);
    sqlite3_free(resp->headers);
    sqlite3_free(resp->transport);
    memset(resp, 0, sizeof(*resp));
}

const char *
http_resp_header(const http_resp *resp, const char *zName, char *buf, size_t n)
{
    size_t nName = strlen(zName);
    const char *z = resp->headers;

    while (z && *z) {
        const char *zEnd = z + strcspn(z, "\r\n");
        if ((size_t)(zEnd - z) > nName && z[nName] == ':' &&
            strncasecmp(z, zName, nName) == 0) {
            const char *v = z + nName + 1;
            while (v < zEnd && (*v == ' ' || *v == '\t'))
                v++;
            while (zEnd > v && (zEnd[-1] == ' ' || zEnd[-1] == '\t'))
                zEnd--;
            size_t k = (size_t)(zEnd - v);
            if (n == 0)
                return buf;
            if (k >= n)
                k = n - 1;
            memcpy(buf, v, k);
            buf[k] = 0;
            return buf;
        }
        z = zEnd + strspn(zEnd, "\r\n");
    }
    return NULL;
}

/* Whether the body names an S3 error that is worth retrying. */
static int
body_says_retry(const http_resp *resp)
{
    static const char *const codes[] = {
        "<Code>SlowDown</Code>",
        "<Code>RequestTimeout</Code>",
        "<Code>InternalError</Code>",
        "<Code>ServiceUnavailable</Code>",
    };
    size_t i;

    if (resp->body == NULL)
        return 0;
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strstr((const char *)resp->body, codes[i]))
            return 1;
    return 0;
}

int
http_retry_delay_ms(const http_client *c, int rc, const http_resp *resp,
                    int attempt)
{
    int retry = 0;
    long cap;

    if (attempt >= c->opts.max_attempts)
        return -1;
    if (rc == SQLITE_IOERR)
        retry = resp->retryable;
    else if (rc == SQLITE_OK)
        retry = resp->status == 429 || resp->status == 500 ||
                resp->status == 502 || resp->status == 503 ||
                resp->status == 504 ||
                (resp->status >= 400 && body_says_retry(resp));
    if (!retry)
        return -1;
    cap = 100L << (attempt > 5 ? 5 : attempt - 1);
    if (cap > 2000)
        cap = 2000;
    return 50 + (int)ls_rand_upto((uint64_t)cap);
}

void
http_sleep_ms(int ms)
{
    struct timespec ts;

    if (ms <= 0)
        return;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
}
