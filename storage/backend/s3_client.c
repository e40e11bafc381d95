/*
 * storage/backend/s3_client.c: the S3 REST client (s3_client.h): configuration
 * from the URL, request signing, retries, error mapping.
 *
 * Invariants:
 *   1. What is signed is what is sent: the query is the canonical query
 *      (sigv4_canonical_query), the path is encoded once by
 *      sigv4_uri_encode, and the Host header is set explicitly.
 *   2. Every attempt is signed afresh (x-amz-date moves on), so a retry
 *      after a long backoff is never refused for clock skew.
 *   3. No secret reaches a message: errors quote the method, key, bucket,
 *      status and the server's <Code>/<Message> only.
 *
 * Threads: any; s3_call_do() keeps its state on the stack.
 */
#include "storage/backend/s3_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"
#include "storage/backend/gcs_token.h"
#include "storage/backend/url.h"
#include "storage/backend/xml.h"

#define S3_MIN_PART (5ull << 20)

static int
s3_cfg_err(char **pzErr, const struct ls_url *u, const char *zWhat,
           const char *zVal)
{
    if (pzErr)
        *pzErr = sqlite3_mprintf("litestream: bad %s '%s' in replica URL "
                                 "'%s'",
                                 zWhat, zVal, u->redacted);
    return SQLITE_ERROR;
}

/* "16MiB", "5242880", "8MB" -> bytes; 0 if malformed. */
static uint64_t
parse_bytes(const char *z)
{
    char *zEnd;
    unsigned long long v = strtoull(z, &zEnd, 10);

    if (zEnd == z || v == 0)
        return 0;
    if (*zEnd == 0 || strcasecmp(zEnd, "B") == 0)
        return v;
    if (strcasecmp(zEnd, "KiB") == 0 || strcasecmp(zEnd, "KB") == 0 ||
        strcasecmp(zEnd, "K") == 0)
        return v << 10;
    if (strcasecmp(zEnd, "MiB") == 0 || strcasecmp(zEnd, "MB") == 0 ||
        strcasecmp(zEnd, "M") == 0)
        return v << 20;
    if (strcasecmp(zEnd, "GiB") == 0 || strcasecmp(zEnd, "GB") == 0 ||
        strcasecmp(zEnd, "G") == 0)
        return v << 30;
    return 0;
}

/* A decimal integer in [lo, hi], nothing else; 1 on success. */
static int
parse_int(const char *z, int lo, int hi, int *out)
{
    char *zEnd;
    long v;

    if (!isdigit((unsigned char)z[0]))
        return 0;
    v = strtol(z, &zEnd, 10);
    if (*zEnd || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

/* true/false/1/0/yes/no -> 1/0; -1 if neither. */
static int
parse_bool(const char *z)
{
    if (!strcasecmp(z, "true") || !strcmp(z, "1") || !strcasecmp(z, "yes") ||
        !strcasecmp(z, "on") || z[0] == 0)
        return 1;
    if (!strcasecmp(z, "false") || !strcmp(z, "0") || !strcasecmp(z, "no") ||
        !strcasecmp(z, "off"))
        return 0;
    return -1;
}

/* Splits the endpoint "http[s]://host[:port][/]" into c->https, c->host. */
static int
s3_endpoint(s3_client *c, const struct ls_url *u, const char *zEp, char **pzErr)
{
    const char *zHost = zEp;
    size_t n;

    c->https = 1;
    if (strncasecmp(zEp, "https://", 8) == 0) {
        zHost = zEp + 8;
    } else if (strncasecmp(zEp, "http://", 7) == 0) {
        zHost = zEp + 7;
        c->https = 0;
    } else if (strstr(zEp, "://")) {
        return s3_cfg_err(pzErr, u, "endpoint (expected http:// or https://)",
                          zEp);
    }
    n = strcspn(zHost, "/");
    if (n == 0 || strspn(zHost + n, "/") != strlen(zHost + n))
        return s3_cfg_err(pzErr, u,
                          "endpoint (expected scheme://host[:port] with no "
                          "path)",
                          zEp);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)zHost[i];
        if (!isalnum(ch) && !strchr(".-:[]_", ch))
            return s3_cfg_err(pzErr, u, "endpoint host", zEp);
    }
    c->host = sqlite3_mprintf("%.*s", (int)n, zHost);
    return c->host ? SQLITE_OK : SQLITE_NOMEM;
}

/* Reads the tuning parameters (sizes, timeouts) of the URL. */
static int
s3_tuning(s3_client *c, const struct ls_url *u, http_opts *ho, int hasEp,
          char **pzErr)
{
    const char *z;
    int64_t ms;

    c->part_size = 16ull << 20;
    c->part_parallel = 4;
    if ((z = url_param(u, "part_size")) != NULL) {
        c->part_size = parse_bytes(z);
        if (c->part_size == 0 || (!hasEp && c->part_size < S3_MIN_PART))
            return s3_cfg_err(pzErr, u, "part_size (bytes, >= 5MiB)", z);
    }
    if ((z = url_param(u, "concurrency")) != NULL &&
        !parse_int(z, 1, 64, &c->part_parallel))
        return s3_cfg_err(pzErr, u, "concurrency (1-64)", z);
    if ((z = url_param(u, "max_keys")) != NULL &&
        !parse_int(z, 1, 1000, &c->max_keys))
        return s3_cfg_err(pzErr, u, "max_keys (1-1000)", z);
    if ((z = url_param(u, "timeout")) != NULL) {
        if (timefmt_parse_duration(z, &ms, NULL) != SQLITE_OK || ms < 100 ||
            ms > 3600000)
            return s3_cfg_err(pzErr, u, "timeout (100ms to 1h, e.g. 30s)", z);
        ho->connect_timeout_ms = (int)ms;
        ho->stall_timeout_ms = (int)ms;
    }
    if ((z = url_param(u, "retries")) != NULL) {
        int k;
        if (!parse_int(z, 0, 20, &k))
            return s3_cfg_err(pzErr, u, "retries (0-20)", z);
        ho->max_attempts = k + 1;
    }
    return SQLITE_OK;
}

/* A bucket name S3 (or GCS) could accept: 3-63 of [a-z0-9.-_]. */
static int
bucket_ok(const char *z)
{
    size_t n = strlen(z);

    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)z[i]) && !isdigit((unsigned char)z[i]) &&
            !strchr(".-_", z[i]))
            return 0;
    return 1;
}

/*
 * OSS: "BUCKET.oss-REGION[-internal].aliyuncs.com" names the bucket and
 * the region (as Litestream's oss client reads it); any other host is the
 * bucket.  Sets c->bucket, c->region (URL, host, else cn-hangzhou) and,
 * without an endpoint, the S3-compatible endpoint of the region.
 */
static int
s3_oss_host(s3_client *c, const struct ls_url *u, const char *zEp)
{
    const char *h = u->host ? u->host : "", *zDot = strchr(h, '.');
    const char *zReg = url_param(u, "region");
    size_t n = strlen(h), nr = 0;
    int internal = 0;

    c->oss = 1;
    if (zDot && strncmp(zDot, ".oss-", 5) == 0 && n > 14 &&
        strcmp(h + n - 13, ".aliyuncs.com") == 0 &&
        (nr = (size_t)(h + n - 13 - (zDot + 5))) > 0) {
        internal = nr > 9 && strncmp(zDot + 5 + nr - 9, "-internal", 9) == 0;
        nr -= internal ? 9 : 0;
        c->bucket = sqlite3_mprintf("%.*s", (int)(zDot - h), h);
        if (zReg == NULL || zReg[0] == 0)
            c->region = sqlite3_mprintf("%.*s", (int)nr, zDot + 5);
    } else {
        c->bucket = sqlite3_mprintf("%s", h);
    }
    if (c->region == NULL)
        c->region =
            sqlite3_mprintf("%s", zReg && zReg[0] ? zReg : "cn-hangzhou");
    if (zEp == NULL && c->region)
        c->host = sqlite3_mprintf("s3.oss-%s%s.aliyuncs.com", c->region,
                                  internal ? "-internal" : "");
    c->https = 1;
    return c->bucket && c->region && (zEp || c->host) ? SQLITE_OK
                                                      : SQLITE_NOMEM;
}

int
s3_client_init(s3_client *c, const struct ls_url *u, int kind, char **pzErr)
{
    http_opts ho = {0};
    const char *zEp = url_param(u, "endpoint");
    const char *z;
    int gcs = kind == S3_KIND_GCS;
    int rc, b;

    memset(c, 0, sizeof(*c));
    c->gcs = gcs;
    if (kind == S3_KIND_OSS && (rc = s3_oss_host(c, u, zEp)) != SQLITE_OK)
        return rc;
    z = c->bucket ? c->bucket : u->host;
    if (z == NULL || !bucket_ok(z))
        return s3_cfg_err(pzErr, u,
                          "bucket name (3-63 characters a-z 0-9 "
                          ". - _)",
                          z ? z : "");
    if ((z = url_param(u, "region")) == NULL || z[0] == 0)
        z = gcs ? "auto" : getenv("AWS_REGION");
    if (z == NULL || z[0] == 0)
        z = getenv("AWS_DEFAULT_REGION");
    if (c->region == NULL)
        c->region = sqlite3_mprintf("%s", z && z[0] ? z : "us-east-1");
    if (c->bucket == NULL)
        c->bucket = sqlite3_mprintf("%s", u->host);
    c->prefix = sqlite3_mprintf("%s", u->path ? u->path : "");
    if (!c->region || !c->bucket || !c->prefix)
        return SQLITE_NOMEM;
    if (zEp == NULL && gcs)
        zEp = "https://storage.googleapis.com";
    if (zEp) {
        rc = s3_endpoint(c, u, zEp, pzErr);
        c->path_style = 1;
    } else if (c->host == NULL) {
        c->host = sqlite3_mprintf("s3.%s.amazonaws.com", c->region);
        c->https = 1;
        rc = c->host ? SQLITE_OK : SQLITE_NOMEM;
    } else {
        rc = SQLITE_OK; /* oss: the region's endpoint */
    }
    if (rc != SQLITE_OK)
        return rc;
    if ((z = url_param(u, "force_path_style")) != NULL) {
        if ((b = parse_bool(z)) < 0)
            return s3_cfg_err(pzErr, u, "force_path_style (true/false)", z);
        c->path_style = b;
    }
    if ((z = url_param(u, "skip_verify")) != NULL) {
        if ((b = parse_bool(z)) < 0)
            return s3_cfg_err(pzErr, u, "skip_verify (true/false)", z);
        ho.skip_verify = b;
    }
    ho.max_attempts = 5;
    if (gcs && (c->token = gcs_token_new()) == NULL)
        return SQLITE_NOMEM;
    rc = s3_tuning(c, u, &ho, zEp != NULL, pzErr);
    if (rc == SQLITE_OK)
        rc = http_client_new(&ho, &c->http);
    return rc;
}

void
s3_client_clear(s3_client *c)
{
    http_client_free(c->http);
    gcs_token_free(c->token);
    sqlite3_free(c->host);
    sqlite3_free(c->bucket);
    sqlite3_free(c->prefix);
    sqlite3_free(c->region);
    memset(c, 0, sizeof(*c));
}

/* The credentials from the environment (pointers into it). */
static int
s3_creds(const s3_client *c, const char **pAk, const char **pSk,
         const char **pTok)
{
    static const char *const names[][3] = {
        {"GOOGLE_HMAC_ACCESS_ID", "GOOGLE_HMAC_SECRET", NULL},
        {"OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", NULL},
        {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
        {"LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", NULL},
    };
    for (int i = 0; i < 4; i++) {
        if ((i == 0 && !c->gcs) || (i == 1 && !c->oss))
            continue;
        const char *ak = getenv(names[i][0]), *sk = getenv(names[i][1]);
        if (ak && ak[0] && sk && sk[0]) {
            *pAk = ak;
            *pSk = sk;
            *pTok = names[i][2] ? getenv(names[i][2]) : NULL;
            if (*pTok && !(*pTok)[0])
                *pTok = NULL;
            return 1;
        }
    }
    return 0;
}

/* Request line pieces of one call: URL and Host header value. */
static int
s3_target(const s3_client *c, const s3_call *call, char **pzUrl, char **pzPath,
          char **pzHost, char **pzQuery)
{
    char *zKey = sigv4_uri_encode(call->key ? call->key : "", 1);
    char *zBucket = sigv4_uri_encode(c->bucket, 0);

    *pzQuery = sigv4_canonical_query(call->query, call->nquery);
    if (c->path_style) {
        *pzHost = sqlite3_mprintf("%s", c->host);
        *pzPath = sqlite3_mprintf("/%s%s%s", zBucket, call->key ? "/" : "",
                                  zKey ? zKey : "");
    } else {
        *pzHost = sqlite3_mprintf("%s.%s", c->bucket, c->host);
        *pzPath = sqlite3_mprintf("/%s", zKey ? zKey : "");
    }
    *pzUrl = (*pzHost && *pzPath && *pzQuery)
                 ? sqlite3_mprintf("%s://%s%s%s%s", c->https ? "https" : "http",
                                   *pzHost, *pzPath, (*pzQuery)[0] ? "?" : "",
                                   *pzQuery)
                 : NULL;
    sqlite3_free(zKey);
    sqlite3_free(zBucket);
    return *pzUrl && zKey && zBucket ? SQLITE_OK : SQLITE_NOMEM;
}

/* Header lines of one signed attempt ("Name: value"), in *paz (one
 * allocation: the array and the strings). */
typedef struct s3_sig {
    char *azLine[24];
    int n;
} s3_sig;

static void
s3_sig_clear(s3_sig *s)
{
    for (int i = 0; i < s->n; i++)
        sqlite3_free(s->azLine[i]);
    s->n = 0;
}

/*
 * gs:// with a service-account key (GOOGLE_APPLICATION_CREDENTIALS, used
 * unless GOOGLE_HMAC_ACCESS_ID/SECRET are set): the header lines of an
 * attempt with an OAuth2 Bearer token.  *pzWhy says why no token came.
 */
static int
s3_sign_bearer(const s3_client *c, const s3_call *call, const char *zHost,
               s3_sig *sig, char **pzWhy)
{
    char *zTok = NULL;
    int rc =
        gcs_token_get(c->token, c->http, gcs_token_path(), &zTok, NULL, pzWhy);

    if (rc != SQLITE_OK)
        return rc;
    sig->azLine[sig->n++] = sqlite3_mprintf("Authorization: Bearer %s", zTok);
    sig->azLine[sig->n++] = sqlite3_mprintf("Host: %s", zHost);
    for (int i = 0; i < call->nheader && i < 16; i++)
        sig->azLine[sig->n++] = sqlite3_mprintf("%s: %s", call->headers[i].name,
                                                call->headers[i].value);
    memset(zTok, 0, strlen(zTok));
    sqlite3_free(zTok);
    for (int i = 0; i < sig->n; i++)
        if (sig->azLine[i] == NULL)
            return SQLITE_NOMEM;
    return SQLITE_OK;
}

/* Whether gs:// authenticates with a service-account key. */
static int
s3_uses_bearer(const s3_client *c)
{
    const char *a = getenv("GOOGLE_HMAC_ACCESS_ID");
    const char *b = getenv("GOOGLE_HMAC_SECRET");

    return c->gcs && c->token && gcs_token_path() && !(a && a[0] && b && b[0]);
}

const char *
s3_credential(const s3_client *c)
{
    static const char *const what[] = {
        "the Google HMAC key in GOOGLE_HMAC_ACCESS_ID",
        "the OSS key in OSS_ACCESS_KEY_ID", "the AWS key in AWS_ACCESS_KEY_ID",
        "the key in LITESTREAM_ACCESS_KEY_ID"};
    static const char *const names[] = {
        "GOOGLE_HMAC_ACCESS_ID", "OSS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID",
        "LITESTREAM_ACCESS_KEY_ID"};
    const char *ak = NULL, *sk = NULL, *tok = NULL;
    if (s3_uses_bearer(c))
        return "the service-account key in GOOGLE_APPLICATION_CREDENTIALS";
    if (!s3_creds(c, &ak, &sk, &tok))
        return "none (unsigned requests)";
    for (int i = 0; i < 4; i++)
        if (getenv(names[i]) == ak)
            return tok && i == 2 ? "the AWS key in AWS_ACCESS_KEY_ID with "
                                   "AWS_SESSION_TOKEN"
                                 : what[i];
    return "an access key from the environment";
}

/* Signs one attempt: fills sig with every header line to send. */
static int
s3_sign(const s3_client *c, const s3_call *call, const char *zHost,
        const char *zPath, const char *zQuery, const char *zHash, s3_sig *sig,
        char **pzWhy)
{
    const char *ak, *sk, *tok;
    sigv4_pair h[20];
    char zDate[17];
    char *zAuth;
    int n = 0, i;

    if (s3_uses_bearer(c))
        return s3_sign_bearer(c, call, zHost, sig, pzWhy);
    if (!s3_creds(c, &ak, &sk, &tok))
        return SQLITE_AUTH;
    if (call->nheader > 16)
        return SQLITE_MISUSE;
    sigv4_amz_date((long long)time(NULL), zDate);
    h[n++] = (sigv4_pair){"Host", zHost};
    h[n++] = (sigv4_pair){"x-amz-date", zDate};
    h[n++] = (sigv4_pair){"x-amz-content-sha256", zHash};
    if (tok)
        h[n++] = (sigv4_pair){"x-amz-security-token", tok};
    for (i = 0; i < call->nheader; i++)
        h[n++] = call->headers[i];
    sigv4_request r = {
        .method = call->method,
        .path = zPath,
        .query = zQuery,
        .headers = h,
        .nheader = n,
        .payload_hash = zHash,
        .amz_date = zDate,
        .region = c->region,
        .service = "s3",
        .access_key = ak,
        .secret_key = sk,
    };
    zAuth = sigv4_sign(&r, NULL, NULL);
    if (zAuth == NULL)
        return SQLITE_NOMEM;
    sig->azLine[sig->n++] = sqlite3_mprintf("Authorization: %s", zAuth);
    sqlite3_free(zAuth);
    for (i = 0; i < n; i++)
        sig->azLine[sig->n++] =
            sqlite3_mprintf("%s: %s", h[i].name, h[i].value);
    for (i = 0; i < sig->n; i++)
        if (sig->azLine[i] == NULL)
            return SQLITE_NOMEM;
    return SQLITE_OK;
}

static void
s3_count(s3_client *c, const s3_call *call, const http_resp *resp)
{
    backend_counters *k = &c->counters;
    const char *m = call->method;
    int list = call->key == NULL && strcmp(m, "GET") == 0;
    int del = strcmp(m, "DELETE") == 0 ||
              (strcmp(m, "POST") == 0 && call->key == NULL);

    if (list)
        __atomic_add_fetch(&k->n_list, 1, __ATOMIC_RELAXED);
    else if (del)
        __atomic_add_fetch(&k->n_delete, 1, __ATOMIC_RELAXED);
    else if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
        __atomic_add_fetch(&k->n_get, 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&k->n_put, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&k->bytes_up, call->nbody, __ATOMIC_RELAXED);
    __atomic_add_fetch(&k->bytes_down, resp->nbody, __ATOMIC_RELAXED);
}

/* The SQLite code for a non-2xx answer. */
static int
s3_status_rc(const http_resp *resp, const char *zCode)
{
    long st = resp->status;

    if (st == 404 && zCode && strcmp(zCode, "NoSuchBucket") == 0)
        return SQLITE_CANTOPEN;
    if (st == 404)
        return SQLITE_NOTFOUND;
    if (st == 401 || st == 403)
        return SQLITE_AUTH;
    if (st >= 500 || st == 429)
        return SQLITE_IOERR;
    return SQLITE_ERROR;
}

/* Message for a failed call: the server's error or the transport's. */
static int
s3_fail(const s3_client *c, const s3_call *call, int rc, const http_resp *resp,
        char *zWhy, char **pzErr)
{
    const char *zKey = call->key ? call->key : "";
    const char *zCode = NULL, *zMsg = NULL;
    const char *zOp = call->method;

    if (call->key == NULL) { /* bucket-level: name the operation */
        zOp = strcmp(zOp, "GET") == 0 ? "LIST" : "DELETE (batch)";
        for (int i = 0; i < call->nquery; i++)
            if (strcmp(call->query[i].name, "prefix") == 0)
                zKey = call->query[i].value;
    }
    xml_node *x = NULL;
    char *z;

    if (zWhy) {
        z = zWhy; /* the service-account token's failure */
    } else if (rc == SQLITE_AUTH && resp->status == 0) {
        z = sqlite3_mprintf("litestream: no credentials for %s: set %s",
                            c->gcs   ? "gs"
                            : c->oss ? "oss"
                                     : "s3",
                            c->gcs   ? "GOOGLE_HMAC_ACCESS_ID and "
                                       "GOOGLE_HMAC_SECRET (or the AWS_ "
                                       "variables)"
                            : c->oss ? "OSS_ACCESS_KEY_ID and "
                                       "OSS_ACCESS_KEY_SECRET (or the AWS_ "
                                       "variables)"
                                     : "AWS_ACCESS_KEY_ID and "
                                       "AWS_SECRET_ACCESS_KEY (or "
                                       "LITESTREAM_ACCESS_KEY_ID and "
                                       "LITESTREAM_SECRET_ACCESS_KEY)");
    } else if (rc == SQLITE_OK) {
        if (resp->nbody && xml_parse((const char *)resp->body, resp->nbody, &x,
                                     NULL) == SQLITE_OK) {
            zCode = xml_text(x, "Code");
            zMsg = xml_text(x, "Message");
        }
        rc = s3_status_rc(resp, zCode);
        z = sqlite3_mprintf("litestream: %s %s '%s' in bucket '%s' failed: "
                            "HTTP %ld%s%s%s%s%s",
                            c->gcs   ? "GCS"
                            : c->oss ? "OSS"
                                     : "S3",
                            zOp, zKey, c->bucket, resp->status,
                            zCode ? " " : "", zCode ? zCode : "",
                            zMsg ? ": " : "", zMsg ? zMsg : "",
                            rc == SQLITE_AUTH && s3_uses_bearer(c)
                                ? " (credentials: the service-account key in "
                                  "GOOGLE_APPLICATION_CREDENTIALS: check its "
                                  "roles on the bucket)"
                                : "");
    } else if (rc == SQLITE_IOERR) {
        z = sqlite3_mprintf("litestream: %s %s '%s' in bucket '%s' on "
                            "%s failed: %s",
                            c->gcs   ? "GCS"
                            : c->oss ? "OSS"
                                     : "S3",
                            zOp, zKey, c->bucket, c->host,
                            resp->transport ? resp->transport : "no response");
    } else {
        z = sqlite3_mprintf("litestream: %s %s '%s': %s",
                            c->gcs   ? "GCS"
                            : c->oss ? "OSS"
                                     : "S3",
                            zOp, zKey, sqlite3_errstr(rc));
    }
    xml_free(x);
    if (pzErr)
        *pzErr = z;
    else
        sqlite3_free(z);
    return rc;
}

/* One signed attempt of call. */
static int
s3_attempt(s3_client *c, const s3_call *call, const char *zUrl,
           const char *zHost, const char *zPath, const char *zQuery,
           const char *zHash, http_resp *resp, char **pzWhy)
{
    s3_sig sig = {.n = 0};
    int rc = s3_sign(c, call, zHost, zPath, zQuery, zHash, &sig, pzWhy);

    memset(resp, 0, sizeof(*resp));
    if (rc == SQLITE_OK) {
        http_req req = {
            .method = call->method,
            .url = zUrl,
            .headers = (const char *const *)sig.azLine,
            .nheader = sig.n,
            .body = call->body,
            .body_fd = call->body_fd,
            .body_off = call->body_off,
            .nbody = call->nbody,
            .max_response = call->max_response,
        };
        rc = http_do(c->http, &req, resp);
        if (rc != SQLITE_NOMEM)
            s3_count(c, call, resp);
    }
    s3_sig_clear(&sig);
    return rc;
}

int
s3_call_do(s3_client *c, const s3_call *call, http_resp *resp, char **pzErr)
{
    char *zUrl = NULL, *zPath = NULL, *zHost = NULL, *zQuery = NULL;
    char zHash[65];
    char *zWhy = NULL;
    int reauth = 0;
    int rc, attempt, delay;

    memset(resp, 0, sizeof(*resp));
    if (pzErr)
        *pzErr = NULL;
    rc = s3_target(c, call, &zUrl, &zPath, &zHost, &zQuery);
    if (rc != SQLITE_OK)
        goto out;
    if (call->unsigned_payload)
        strcpy(zHash, "UNSIGNED-PAYLOAD");
    else
        sigv4_sha256_hex(call->body ? call->body : "",
                         call->body ? call->nbody : 0, zHash);
    for (attempt = 1;; attempt++) {
        http_resp_clear(resp);
        rc =
            s3_attempt(c, call, zUrl, zHost, zPath, zQuery, zHash, resp, &zWhy);
        if (rc == SQLITE_NOMEM || rc == SQLITE_AUTH || rc == SQLITE_MISUSE ||
            zWhy)
            break;
        if (rc == SQLITE_OK && resp->status >= 200 && resp->status < 300)
            goto out;
        if (rc == SQLITE_OK && resp->status == 401 && !reauth &&
            s3_uses_bearer(c)) { /* a token expired on the way: a new one */
            gcs_token_invalidate(c->token);
            reauth = 1;
            continue;
        }
        delay = http_retry_delay_ms(c->http, rc, resp, attempt);
        if (delay < 0)
            break;
        http_sleep_ms(delay);
    }
    rc = s3_fail(c, call, rc, resp, zWhy, pzErr);
out:
    sqlite3_free(zUrl);
    sqlite3_free(zPath);
    sqlite3_free(zHost);
    sqlite3_free(zQuery);
    return rc;
}

void
s3_format_time(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    struct tm tm;
    char zFrac[8] = "";

    gmtime_r(&t, &tm);
    if (frac) {
        snprintf(zFrac, sizeof(zFrac), ".%03d", frac);
        for (size_t k = strlen(zFrac); zFrac[k - 1] == '0'; k--)
            zFrac[k - 1] = 0;
    }
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             zFrac);
}
