/*
 * storage/backend/sftp.c: the sftp backend (backend.h) over libcurl's SFTP
 * (storage/backend/http.c).
 *
 *   sftp://USER[:PASSWORD]@HOST[:PORT]/PATH?key_path=FILE&host_key=SHA256:..
 *
 * Objects live at "/PATH/ltx/<level>/<min>-<max>.ltx" on the server, the
 * Litestream v0.5 SFTP layout (docs/ltx-format.md 2.1).  Credentials are
 * read at every request: the password from the URL or
 * LITESTREAM_SFTP_PASSWORD, the private key from ?key_path= or
 * LITESTREAM_SFTP_KEY_PATH.
 *
 * Invariants:
 *   1. The server is authenticated before anything is sent: its host key's
 *      SHA-256 fingerprint must be one of ?host_key= (comma-separated: the
 *      server picks which of its keys it shows), or, without it, the key
 *      must be in ?known_hosts= (default ~/.ssh/known_hosts).  A refusal
 *      names the fingerprint to pin; it is never retried.
 *   2. put() is atomic: the object is uploaded to "<key>.<random>.tmp" in
 *      its directory (created as needed), then renamed.  OpenSSH speaks
 *      SFTP v3, whose rename refuses an existing target: then the target
 *      is removed and the rename done again, so a reader sees the old
 *      object, no object, or the new one, never a partial one.  Temporary
 *      names are never listed (layout.c keeps LTX names only).
 *   3. One SSH connection, kept open between requests (the http client's
 *      handle pool), re-made when a request finds it broken.
 *   4. Transport failures are retried with http.c's backoff; refusals
 *      (login, host key, permission, disk full) fail at once.
 *
 * Threads: one caller thread per handle (backend.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/backend/backend.h"
#include "storage/backend/http.h"
#include "storage/backend/sftp.h"
#include "storage/backend/sigv4.h"
#include "storage/backend/url.h"
#include "storage/base/clock.h"
#include "storage/base/rand.h"
#include "storage/base/sqlite.h"

#define SFTP_MAX_LISTING (64u << 20)

typedef struct sftp_backend {
    backend base;
    http_client *http;
    char *zOrigin;   /* "sftp://host:port" ([v6] bracketed) */
    char *zHostPort; /* "host:port" for messages */
    char *zHostName; /* the host as given */
    int port;
    char *zRoot;       /* "/PATH" without trailing slash ("" = "/") */
    char *zUser;       /* from the URL */
    char *zPass;       /* from the URL, or NULL */
    char *zKey;        /* ?key_path=, or NULL */
    char *zPin;        /* ?host_key= "SHA256:...[,SHA256:...]", or NULL */
    char *zKnownHosts; /* ?known_hosts=, or NULL for the default */
    char zSeen[64];    /* "SHA256:..." of the last host key seen */
    int seenMatch;     /* how it matched (HTTP_HOSTKEY_*) */
    backend_counters counters;
    char *zErr;
} sftp_backend;

static int
sftp_err(sftp_backend *sb, int rc, char *zMsg)
{
    sqlite3_free(sb->zErr);
    sb->zErr =
        zMsg ? zMsg : sqlite3_mprintf("litestream: %s", sqlite3_errstr(rc));
    return rc;
}

/* --- host keys ------------------------------------------------------- */

/* "SHA256:<base64 without padding>" of a key blob, as ssh-keygen -l. */
static void
sftp_fingerprint(const void *key, size_t n, char out[64])
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char d[33];
    char hex[65];
    int i, o = 7;

    sigv4_sha256_hex(key, n, hex);
    for (i = 0; i < 32; i++)
        d[i] = (unsigned char)(strtoul((char[]){hex[2 * i], hex[2 * i + 1], 0},
                                       NULL, 16));
    d[32] = 0;
    memcpy(out, "SHA256:", 7);
    for (i = 0; i < 32; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 |
                     (i + 2 < 32 ? d[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[v >> 6 & 63];
        if (i + 2 < 32)
            out[o++] = b64[v & 63];
    }
    out[o] = 0;
}

/* http_ssh.check_host: accepts the pinned key, else what known_hosts
 * matched; records the fingerprint for the message of a refusal. */
static int
sftp_check_host(void *arg, const void *key, size_t n, int match)
{
    sftp_backend *sb = arg;

    sftp_fingerprint(key, n, sb->zSeen);
    sb->seenMatch = match;
    if (sb->zPin) { /* one of a comma-separated list */
        size_t nSeen = strlen(sb->zSeen);
        for (const char *p = sb->zPin; *p; p += strcspn(p, ",") + 1) {
            if (strncmp(p, sb->zSeen, nSeen) == 0 &&
                (p[nSeen] == ',' || !p[nSeen]))
                return 1;
            if (p[strcspn(p, ",")] == 0)
                break;
        }
        return 0;
    }
    return match == HTTP_HOSTKEY_OK;
}

/* The message of a refused host key. */
static char *
sftp_hostkey_msg(sftp_backend *sb, const char *zKnown)
{
    const char *zFp = sb->zSeen[0] ? sb->zSeen : "unknown";

    if (sb->zPin)
        return sqlite3_mprintf(
            "litestream: the SFTP server %s has host key %s, not the pinned "
            "host_key=%s: if the server's key was changed on purpose, pin the "
            "new one (host_key=%s), else someone may be intercepting the "
            "connection",
            sb->zHostPort, zFp, sb->zPin, zFp);
    if (sb->seenMatch == HTTP_HOSTKEY_MISMATCH)
        return sqlite3_mprintf(
            "litestream: the host key of SFTP server %s CHANGED: it is now "
            "%s, and %s has another key for it: if the change is expected, "
            "remove the old line (ssh-keygen -R '[%s]:%d' -f %s) or pin the "
            "new key with host_key=%s",
            sb->zHostPort, zFp, zKnown, sb->zHostName, sb->port, zKnown, zFp);
    return sqlite3_mprintf(
        "litestream: the SFTP server %s is unknown: its host key %s is not in "
        "%s: pin it with host_key=%s in the URL (compare with ssh-keygen -lf "
        "on the server's key), or add it to the known_hosts file",
        sb->zHostPort, zFp, zKnown, zFp);
}

/* --- requests -------------------------------------------------------- */

/* The request settings of this handle (credentials read now). */
static void
sftp_ssh(sftp_backend *sb, http_ssh *s, char **pzKnown)
{
    const char *zKey = sb->zKey ? sb->zKey : getenv("LITESTREAM_SFTP_KEY_PATH");
    const char *zPass =
        sb->zPass ? sb->zPass : getenv("LITESTREAM_SFTP_PASSWORD");
    const char *zHome = getenv("HOME");

    memset(s, 0, sizeof(*s));
    s->user = sb->zUser;
    s->password = zPass && zPass[0] ? zPass : NULL;
    s->key_path = zKey && zKey[0] ? zKey : NULL;
    s->check_host = sftp_check_host;
    s->arg = sb;
    *pzKnown = NULL;
    if (sb->zPin == NULL) {
        *pzKnown = sb->zKnownHosts
                       ? sqlite3_mprintf("%s", sb->zKnownHosts)
                       : sqlite3_mprintf("%s/.ssh/known_hosts",
                                         zHome && zHome[0] ? zHome : "");
        s->known_hosts = *pzKnown;
    }
}

/* "sftp://host:port/<encoded path>" of an absolute server path. */
static char *
sftp_url(const sftp_backend *sb, const char *zPath)
{
    char *zEnc = sigv4_uri_encode(zPath, 1);
    char *z = zEnc ? sqlite3_mprintf("%s%s", sb->zOrigin, zEnc) : NULL;

    sqlite3_free(zEnc);
    return z;
}

/* The server path of a key ("" key: the root directory, with a '/'). */
static char *
sftp_path(const sftp_backend *sb, const char *key)
{
    return sqlite3_mprintf("%s/%s", sb->zRoot, key);
}

static void
sftp_count(sftp_backend *sb, const char *zMethod, uint64_t up, uint64_t down)
{
    backend_counters *k = &sb->counters;

    if (strcmp(zMethod, "PUT") == 0)
        k->n_put++;
    else if (strcmp(zMethod, "GET") == 0)
        k->n_get++;
    k->bytes_up += up;
    k->bytes_down += down;
}

/* The result code and message of a failed request. */
static int
sftp_fail(sftp_backend *sb, const char *zOp, const char *zPath, int rc,
          const http_resp *resp, const char *zKnown)
{
    const char *zWhy = resp->transport ? resp->transport : "failed";
    const char *zFix = "";

    if (rc != SQLITE_IOERR)
        return sftp_err(sb, rc, NULL);
    switch (resp->ssh_fail) {
    case HTTP_SFTP_NOTFOUND:
        return sftp_err(sb, SQLITE_NOTFOUND,
                        sqlite3_mprintf("litestream: SFTP %s '%s' on %s: no "
                                        "such file or directory",
                                        zOp, zPath, sb->zHostPort));
    case HTTP_SFTP_HOSTKEY:
        return sftp_err(sb, SQLITE_AUTH, sftp_hostkey_msg(sb, zKnown));
    case HTTP_SFTP_LOGIN:
        zFix = ": check the user, the password (URL or "
               "LITESTREAM_SFTP_PASSWORD) and the key (key_path or "
               "LITESTREAM_SFTP_KEY_PATH, listed in the server's "
               "authorized_keys)";
        rc = SQLITE_AUTH;
        break;
    case HTTP_SFTP_DENIED:
        zFix = ": give the SFTP user read and write access to the replica "
               "directory";
        rc = SQLITE_AUTH;
        break;
    case HTTP_SFTP_FULL:
        rc = SQLITE_FULL;
        break;
    default:
        break;
    }
    return sftp_err(sb, rc,
                    sqlite3_mprintf("litestream: SFTP %s '%s' on %s as '%s' "
                                    "failed: %s%s",
                                    zOp, zPath, sb->zHostPort, sb->zUser, zWhy,
                                    zFix));
}

/*
 * Runs req with retries; SQLITE_OK with *resp (clear it), or the error
 * recorded on the handle.  zOp and zPath name the request in messages.
 */
static int
sftp_do(sftp_backend *sb, http_req *req, http_ssh *s, const char *zOp,
        const char *zPath, http_resp *resp)
{
    char *zKnown = NULL;
    int rc, attempt, delay;
    http_ssh base;

    sftp_ssh(sb, &base, &zKnown);
    s->user = base.user;
    s->password = base.password;
    s->key_path = base.key_path;
    s->known_hosts = base.known_hosts;
    s->check_host = base.check_host;
    s->arg = base.arg;
    req->ssh = s;
    if (!s->password && !s->key_path) {
        sqlite3_free(zKnown);
        memset(resp, 0, sizeof(*resp));
        return sftp_err(sb, SQLITE_AUTH,
                        sqlite3_mprintf("litestream: no credentials for SFTP "
                                        "server %s: give a password (in the "
                                        "URL or LITESTREAM_SFTP_PASSWORD) or "
                                        "a private key (key_path=FILE or "
                                        "LITESTREAM_SFTP_KEY_PATH)",
                                        sb->zHostPort));
    }
    for (attempt = 1;; attempt++) {
        sb->zSeen[0] = 0;
        rc = http_do(sb->http, req, resp);
        if (rc == SQLITE_OK) {
            sftp_count(sb, req->method, req->nbody, resp->nbody);
            break;
        }
        if (rc == SQLITE_NOMEM)
            break;
        delay = http_retry_delay_ms(sb->http, rc, resp, attempt);
        if (delay < 0)
            break;
        http_resp_clear(resp);
        http_sleep_ms(delay);
    }
    if (rc != SQLITE_OK)
        rc = sftp_fail(sb, zOp, zPath, rc, resp, zKnown);
    sqlite3_free(zKnown);
    return rc;
}

/* Runs SFTP commands only (rename, rm, mkdir) on a request for the
 * server's "/" (which exists, and is not listed); SQLITE_OK or the error. */
static int
sftp_quote(sftp_backend *sb, const char *const *az, int n, const char *zOp,
           const char *zPath)
{
    char *zUrl = sftp_url(sb, "/");
    http_ssh s = {.quote = az, .nquote = n};
    http_req req = {.method = "QUOTE", .url = zUrl, .body_fd = -1};
    http_resp resp;
    int rc;

    if (zUrl == NULL)
        return sftp_err(sb, SQLITE_NOMEM, NULL);
    rc = sftp_do(sb, &req, &s, zOp, zPath, &resp);
    http_resp_clear(&resp);
    sqlite3_free(zUrl);
    return rc;
}

/* --- put ------------------------------------------------------------- */

/*
 * After an upload found no directory (curl's own mkdir failed silently):
 * makes the directories of zPath from the root down, one "mkdir" each, so
 * that the real reason (permission denied) is the message.  Returns the
 * mkdir's error, or SQLITE_NOTFOUND when every directory was made or
 * already existed (the original error stands).
 */
static int
sftp_explain_mkdir(sftp_backend *sb, const char *zPath)
{
    char *zDir = sqlite3_mprintf("%s", zPath);
    char *p = zDir ? zDir + 1 : NULL;
    int rc = zDir ? SQLITE_NOTFOUND : SQLITE_NOMEM;

    while (p && (p = strchr(p, '/')) != NULL) {
        *p = 0;
        char *zCmd = sqlite3_mprintf("mkdir \"%w\"", zDir);
        const char *az[] = {zCmd};
        int k = zCmd ? sftp_quote(sb, az, 1, "mkdir", zDir) : SQLITE_NOMEM;
        sqlite3_free(zCmd);
        *p++ = '/';
        if (k == SQLITE_AUTH || k == SQLITE_NOMEM || k == SQLITE_FULL) {
            rc = k;
            break;
        }
    }
    sqlite3_free(zDir);
    return rc;
}

/* Uploads n bytes (memory or fd) to zPath through a temporary name. */
static int
sftp_put_body(sftp_backend *sb, const char *key, const void *data, int fd,
              uint64_t n)
{
    char *zPath = sftp_path(sb, key);
    char *zTmp = zPath ? sqlite3_mprintf("%s.%016llx.tmp", zPath,
                                         (unsigned long long)ls_rand64())
                       : NULL;
    char *zUrl = zTmp ? sftp_url(sb, zTmp) : NULL;
    char *zRename =
        zUrl ? sqlite3_mprintf("rename \"%w\" \"%w\"", zTmp, zPath) : NULL;
    char *zRm = zRename ? sqlite3_mprintf("*rm \"%w\"", zPath) : NULL;
    char *zRmTmp = zRm ? sqlite3_mprintf("*rm \"%w\"", zTmp) : NULL;
    const char *azPost[] = {zRename};
    http_ssh s = {.postquote = azPost, .npostquote = 1, .create_dirs = 1};
    http_req req = {
        .method = "PUT", .url = zUrl, .body = data, .body_fd = fd, .nbody = n};
    http_resp resp;
    int rc;

    if (zRmTmp == NULL) {
        rc = sftp_err(sb, SQLITE_NOMEM, NULL);
        goto out;
    }
    rc = sftp_do(sb, &req, &s, "upload", zTmp, &resp);
    if (rc == SQLITE_NOTFOUND) {
        char *zKeep = sb->zErr;
        sb->zErr = NULL;
        if (sftp_explain_mkdir(sb, zTmp) == SQLITE_NOTFOUND) {
            sqlite3_free(sb->zErr);
            sb->zErr = zKeep;
        } else {
            sqlite3_free(zKeep);
            rc = SQLITE_AUTH;
        }
    }
    if (rc != SQLITE_OK && resp.ssh_fail == HTTP_SFTP_QUOTE) {
        /* SFTP v3 rename refuses an existing target: replace it. */
        const char *az[] = {zRm, zRename};
        rc = sftp_quote(sb, az, 2, "rename", zPath);
    }
    if (rc != SQLITE_OK) { /* best effort: do not leave the partial upload */
        char *zKeep = sb->zErr;
        const char *az[] = {zRmTmp};
        sb->zErr = NULL;
        sftp_quote(sb, az, 1, "rm", zTmp);
        sqlite3_free(sb->zErr);
        sb->zErr = zKeep;
    }
    http_resp_clear(&resp);
out:
    sqlite3_free(zPath);
    sqlite3_free(zTmp);
    sqlite3_free(zUrl);
    sqlite3_free(zRename);
    sqlite3_free(zRm);
    sqlite3_free(zRmTmp);
    return rc;
}

static int
sftpb_put(backend *b, const char *key, const void *data, size_t n,
          int64_t created_ms)
{
    (void)created_ms; /* the file's mtime is the upload time */
    return sftp_put_body((sftp_backend *)b, key, data ? data : "", -1, n);
}

static int
sftpb_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
               int64_t created_ms)
{
    sftp_backend *sb = (sftp_backend *)b;
    FILE *f = fopen(zSrc, "rb");
    int rc;

    (void)created_ms;
    if (f == NULL)
        return sftp_err(sb, SQLITE_IOERR,
                        sqlite3_mprintf("litestream: cannot open '%s' to "
                                        "upload it",
                                        zSrc));
    rc = sftp_put_body(sb, key, NULL, fileno(f), n);
    fclose(f);
    return rc;
}

/* --- get, list, delete ----------------------------------------------- */

static int
sftpb_get(backend *b, const char *key, uint64_t offset, uint64_t len,
          uint8_t **out, size_t *nOut)
{
    sftp_backend *sb = (sftp_backend *)b;
    char *zPath = sftp_path(sb, key);
    char *zUrl = zPath ? sftp_url(sb, zPath) : NULL;
    char zRange[48];
    http_ssh s = {.range = NULL};
    http_req req = {.method = "GET", .url = zUrl, .body_fd = -1};
    http_resp resp;
    int rc;

    *out = NULL;
    *nOut = 0;
    if (len == 0) { /* an empty range: only whether it exists */
        sqlite3_free(zPath);
        sqlite3_free(zUrl);
        *out = sqlite3_malloc(1);
        return *out ? SQLITE_OK : sftp_err(sb, SQLITE_NOMEM, NULL);
    }
    if (zUrl == NULL) {
        sqlite3_free(zPath);
        return sftp_err(sb, SQLITE_NOMEM, NULL);
    }
    if (offset > 0 || len != UINT64_MAX) {
        if (len == UINT64_MAX)
            snprintf(zRange, sizeof(zRange), "%llu-",
                     (unsigned long long)offset);
        else
            snprintf(zRange, sizeof(zRange), "%llu-%llu",
                     (unsigned long long)offset,
                     (unsigned long long)(offset + len - 1));
        s.range = zRange;
    }
    rc = sftp_do(sb, &req, &s, "read", zPath, &resp);
    if (rc != SQLITE_OK && resp.ssh_fail == HTTP_SFTP_PAST_END) {
        *out = sqlite3_malloc(1); /* a range past the end: nothing */
        rc = *out ? SQLITE_OK : sftp_err(sb, SQLITE_NOMEM, NULL);
    } else if (rc == SQLITE_OK) {
        *out = resp.body;
        *nOut = resp.nbody;
        resp.body = NULL;
    }
    http_resp_clear(&resp);
    sqlite3_free(zPath);
    sqlite3_free(zUrl);
    return rc;
}

/* Lists the regular files (dirs 0) or the directories (dirs 1) directly
 * under prefix. */
static int
sftp_list_kind(backend *b, const char *prefix, int dirs, backend_obj **objs,
               int *n)
{
    sftp_backend *sb = (sftp_backend *)b;
    char *zPath = sftp_path(sb, prefix);
    char *zUrl =
        zPath ? sqlite3_mprintf("%z%s", sftp_url(sb, zPath),
                                zPath[strlen(zPath) - 1] == '/' ? "" : "/")
              : NULL;
    http_ssh s = {.range = NULL};
    http_req req = {.method = "GET",
                    .url = zUrl,
                    .body_fd = -1,
                    .max_response = SFTP_MAX_LISTING};
    http_resp resp;
    int rc;

    *objs = NULL;
    *n = 0;
    if (zUrl == NULL) {
        sqlite3_free(zPath);
        return sftp_err(sb, SQLITE_NOMEM, NULL);
    }
    rc = sftp_do(sb, &req, &s, "list", zPath, &resp);
    sb->counters.n_list++;
    if (rc == SQLITE_OK) {
        rc = (dirs ? sftp_parse_dirs : sftp_parse_listing)(
            (const char *)resp.body, resp.nbody, clock_now_ms(), objs, n);
        if (rc != SQLITE_OK)
            sftp_err(sb, rc, NULL);
    } else if (rc == SQLITE_NOTFOUND) {
        rc = SQLITE_OK; /* a missing directory is an empty list */
    }
    http_resp_clear(&resp);
    sqlite3_free(zPath);
    sqlite3_free(zUrl);
    return rc;
}

static int
sftpb_list(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return sftp_list_kind(b, prefix, 0, objs, n);
}

static int
sftpb_list_dirs(backend *b, const char *prefix, backend_obj **objs, int *n)
{
    return sftp_list_kind(b, prefix, 1, objs, n);
}

static int
sftpb_del(backend *b, const char *const *keys, int n)
{
    sftp_backend *sb = (sftp_backend *)b;
    int rc = SQLITE_OK;

    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        char *zPath = sftp_path(sb, keys[i]);
        char *zCmd = zPath ? sqlite3_mprintf("rm \"%w\"", zPath) : NULL;
        const char *az[] = {zCmd};

        if (zCmd == NULL) {
            rc = sftp_err(sb, SQLITE_NOMEM, NULL);
        } else {
            rc = sftp_quote(sb, az, 1, "delete", zPath);
            if (rc == SQLITE_NOTFOUND)
                rc = SQLITE_OK; /* already gone */
            if (rc == SQLITE_OK)
                sb->counters.n_delete++;
        }
        sqlite3_free(zPath);
        sqlite3_free(zCmd);
    }
    return rc;
}

/*
 * rename_excl: SFTP v3's rename, which OpenSSH refuses onto an existing
 * file (a failed command; then the target is looked at to tell that from
 * another failure).  A missing source is SQLITE_NOTFOUND.
 */
static int
sftpb_rename_excl(backend *b, const char *zFrom, const char *zTo)
{
    sftp_backend *sb = (sftp_backend *)b;
    char *zA = sftp_path(sb, zFrom), *zB = sftp_path(sb, zTo);
    char *zCmd =
        zA && zB ? sqlite3_mprintf("rename \"%w\" \"%w\"", zA, zB) : NULL;
    const char *az[] = {zCmd};
    int rc = zCmd ? sftp_quote(sb, az, 1, "rename", zA)
                  : sftp_err(sb, SQLITE_NOMEM, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_NOTFOUND && rc != SQLITE_NOMEM) {
        uint8_t *p = NULL;
        size_t n = 0;
        if (sftpb_get(b, zTo, 0, 1, &p, &n) == SQLITE_OK)
            rc = SQLITE_CONSTRAINT; /* the target exists */
        sqlite3_free(p);
    }
    sqlite3_free(zA);
    sqlite3_free(zB);
    sqlite3_free(zCmd);
    return rc;
}

static const char *
sftpb_errmsg(backend *b)
{
    sftp_backend *sb = (sftp_backend *)b;
    return sb->zErr ? sb->zErr : "not an error";
}

static const backend_counters *
sftpb_counters(backend *b)
{
    return &((sftp_backend *)b)->counters;
}

static void
sftpb_close(backend *b)
{
    sftp_backend *sb = (sftp_backend *)b;

    if (sb == NULL)
        return;
    http_client_free(sb->http);
    sqlite3_free(sb->zOrigin);
    sqlite3_free(sb->zHostPort);
    sqlite3_free(sb->zHostName);
    sqlite3_free(sb->zRoot);
    sqlite3_free(sb->zUser);
    sqlite3_free(sb->zPass);
    sqlite3_free(sb->zKey);
    sqlite3_free(sb->zPin);
    sqlite3_free(sb->zKnownHosts);
    sqlite3_free(sb->zErr);
    sqlite3_free(sb->base.url);
    sqlite3_free(sb);
}

/* --- open ------------------------------------------------------------ */

/* Copies an optional parameter (any spelling) into *pz; 0 if out of memory. */
static int
sftp_param(const ls_url *u, const char *zName, char **pz)
{
    const char *z = url_param(u, zName);

    *pz = z && z[0] ? sqlite3_mprintf("%s", z) : NULL;
    return !(z && z[0]) || *pz != NULL;
}

/* Checks the parameters of the URL; SQLITE_OK or SQLITE_ERROR + *pzErr. */
static int
sftp_check_url(const ls_url *u, char **pzErr)
{
    const char *zPin = url_param(u, "host_key");

    if (u->user == NULL || u->user[0] == 0) {
        *pzErr = sqlite3_mprintf("litestream: the SFTP URL '%s' has no user "
                                 "(expected sftp://USER@HOST[:PORT]/PATH)",
                                 u->redacted);
        return SQLITE_ERROR;
    }
    if (u->host == NULL || u->host[0] == 0) {
        *pzErr = sqlite3_mprintf("litestream: the SFTP URL '%s' has no host",
                                 u->redacted);
        return SQLITE_ERROR;
    }
    if (strchr(u->path, '"') || strchr(u->path, '\\')) {
        *pzErr = sqlite3_mprintf("litestream: the SFTP path of '%s' may not "
                                 "contain '\"' or '\\'",
                                 u->redacted);
        return SQLITE_ERROR;
    }
    for (const char *p = zPin; p;
         p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, "SHA256:", 7) != 0 ||
            strspn(p + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789+/ ") != 43 ||
            (p[50] != 0 && p[50] != ',')) {
            *pzErr = sqlite3_mprintf(
                "litestream: bad host_key in '%s' (expected the SHA256:... "
                "fingerprint that ssh-keygen -lf prints, 50 characters, or "
                "several separated by commas)",
                u->redacted);
            return SQLITE_ERROR;
        }
    }
    return SQLITE_OK;
}

static int
sftpb_open(const ls_url *u, backend **out, char **pzErr)
{
    sftp_backend *sb = NULL;
    int rc, v6;

    *out = NULL;
    rc = sftp_check_url(u, pzErr);
    if (rc != SQLITE_OK)
        return rc;
    sb = sqlite3_malloc64(sizeof(*sb));
    if (sb == NULL)
        return SQLITE_NOMEM;
    memset(sb, 0, sizeof(*sb));
    sb->base.vt = &backend_sftp_vtab;
    sb->port = u->port ? u->port : 22;
    v6 = strchr(u->host, ':') != NULL;
    sb->zOrigin = sqlite3_mprintf("sftp://%s%s%s:%d", v6 ? "[" : "", u->host,
                                  v6 ? "]" : "", sb->port);
    sb->zHostPort = sqlite3_mprintf("%s%s%s:%d", v6 ? "[" : "", u->host,
                                    v6 ? "]" : "", sb->port);
    sb->zHostName = sqlite3_mprintf("%s", u->host);
    sb->zRoot = sqlite3_mprintf("%s%s", u->path[0] ? "/" : "", u->path);
    sb->zUser = sqlite3_mprintf("%s", u->user);
    sb->zPass = u->password ? sqlite3_mprintf("%s", u->password) : NULL;
    rc = http_client_new(NULL, &sb->http);
    if (rc == SQLITE_OK &&
        (!sb->zOrigin || !sb->zHostPort || !sb->zHostName || !sb->zRoot ||
         !sb->zUser || (u->password && !sb->zPass) ||
         !sftp_param(u, "key_path", &sb->zKey) ||
         !sftp_param(u, "host_key", &sb->zPin) ||
         !sftp_param(u, "known_hosts", &sb->zKnownHosts)))
        rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK && sb->zKey == NULL && !sftp_param(u, "key", &sb->zKey))
        rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        sftpb_close(&sb->base);
        return rc;
    }
    /* A '+' of a fingerprint pasted unencoded was decoded as a space. */
    for (char *p = sb->zPin; p && *p; p++)
        if (*p == ' ')
            *p = '+';
    *out = &sb->base;
    return SQLITE_OK;
}

const backend_vtab backend_sftp_vtab = {
    .name = "sftp",
    .caps = BACKEND_CAP_RANGE | BACKEND_CAP_ATOMIC,
    .level_fmt = "ltx/%d/",
    .open = sftpb_open,
    .close = sftpb_close,
    .put = sftpb_put,
    .put_file = sftpb_put_file,
    .get = sftpb_get,
    .list = sftpb_list,
    .list_tree = NULL,
    .list_dirs = sftpb_list_dirs,
    .del = sftpb_del,
    .errmsg = sftpb_errmsg,
    .counters = sftpb_counters,
    .rename_excl = sftpb_rename_excl,
};
