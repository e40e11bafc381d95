/*
 * storage/backend/azure_client.c: the Azure Blob Storage REST client
 * (azure_client.h): configuration from the URL, Shared Key signing or SAS
 * tokens, retries, error mapping.
 *
 * Invariants:
 *   1. What is signed is what is sent: the Shared Key string to sign is
 *      built from the very header lines and query parameters of the
 *      attempt (Content-Length, Content-Type, every x-ms-* header, the
 *      decoded query sorted by name).
 *   2. Every attempt is signed afresh (x-ms-date moves on).
 *   3. No secret reaches a message: the key and the SAS token are never
 *      quoted; errors quote the operation, blob, container, status and the
 *      server's <Code>/<Message> only.
 *
 * Threads: any; az_call_do() keeps its state on the stack.
 */
#include "storage/backend/azure_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "storage/base/sqlite.h"
#include "storage/base/timefmt.h"
#include "storage/backend/url.h"
#include "storage/backend/xml.h"

#define AZ_VERSION "2021-08-06"

static int
az_cfg_err(char **pzErr, const struct ls_url *u, const char *zFmt,
           const char *zVal)
{
    if (pzErr) {
        char *z = sqlite3_mprintf(zFmt, zVal);
        *pzErr = sqlite3_mprintf("litestream: %s in replica URL '%s'",
                                 z ? z : "bad URL", u->redacted);
        sqlite3_free(z);
    }
    return SQLITE_ERROR;
}

/* Azure's storage account names: 3-24 lowercase letters and digits. */
static int
az_account_ok(const char *z)
{
    size_t n = strlen(z);

    if (n < 3 || n > 24)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(z[i] >= 'a' && z[i] <= 'z') && !(z[i] >= '0' && z[i] <= '9'))
            return 0;
    return 1;
}

/* Container names: 3-63 of a-z 0-9 '-', starting and ending with a letter
 * or digit, no "--"; "$root" and "$logs" are not for us. */
static int
az_container_ok(const char *z)
{
    size_t n = strlen(z);

    if (n < 3 || n > 63 || z[0] == '-' || z[n - 1] == '-' || strstr(z, "--"))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(z[i] >= 'a' && z[i] <= 'z') && !(z[i] >= '0' && z[i] <= '9') &&
            z[i] != '-')
            return 0;
    return 1;
}

/* Splits "account@container" / "container" into c->account, c->container. */
static int
az_names(az_client *c, const struct ls_url *u, char **pzErr)
{
    const char *zAt = u->host ? strchr(u->host, '@') : NULL;
    const char *zEnv = getenv("AZURE_STORAGE_ACCOUNT");

    if (u->host == NULL || u->host[0] == 0)
        return az_cfg_err(pzErr, u, "missing container%s",
                          " (expected abs://ACCOUNT@CONTAINER/PATH)");
    if (zAt) {
        c->account = sqlite3_mprintf("%.*s", (int)(zAt - u->host), u->host);
        c->container = sqlite3_mprintf("%s", zAt + 1);
    } else {
        c->account = sqlite3_mprintf("%s", zEnv ? zEnv : "");
        c->container = sqlite3_mprintf("%s", u->host);
    }
    if (!c->account || !c->container)
        return SQLITE_NOMEM;
    if (zAt && !az_account_ok(c->account) && az_container_ok(c->account) &&
        az_account_ok(c->container))
        return az_cfg_err(pzErr, u,
                          "'%s' looks like the old order "
                          "abs://CONTAINER@ACCOUNT: write "
                          "abs://ACCOUNT@CONTAINER/PATH (Litestream's "
                          "order: the account before the '@')",
                          u->host);
    if (c->account[0] && !az_account_ok(c->account))
        return az_cfg_err(pzErr, u,
                          "bad storage account name '%s' (3-24 lowercase "
                          "letters and digits; abs://ACCOUNT@CONTAINER/PATH)",
                          c->account);
    if (!az_container_ok(c->container))
        return az_cfg_err(pzErr, u,
                          "bad container name '%s' (3-63 lowercase letters, "
                          "digits and single hyphens; "
                          "abs://ACCOUNT@CONTAINER/PATH)",
                          c->container);
    return SQLITE_OK;
}

/* The service URL: ?endpoint= (any path kept, for Azurite's
 * http://host:port/ACCOUNT), else https://ACCOUNT.blob.core.windows.net. */
static int
az_endpoint(az_client *c, const struct ls_url *u, char **pzErr)
{
    const char *zEp = url_param(u, "endpoint");
    const char *zHost, *zPath;
    size_t n;

    if (zEp == NULL || zEp[0] == 0) {
        if (c->account[0] == 0)
            return az_cfg_err(pzErr, u,
                              "no storage account%s: write "
                              "abs://ACCOUNT@CONTAINER/PATH or set "
                              "AZURE_STORAGE_ACCOUNT",
                              "");
        c->base =
            sqlite3_mprintf("https://%s.blob.core.windows.net", c->account);
        c->base_path = sqlite3_mprintf("");
        return c->base && c->base_path ? SQLITE_OK : SQLITE_NOMEM;
    }
    if (strncasecmp(zEp, "https://", 8) == 0)
        zHost = zEp + 8;
    else if (strncasecmp(zEp, "http://", 7) == 0)
        zHost = zEp + 7;
    else
        return az_cfg_err(pzErr, u,
                          "bad endpoint '%s' (expected http[s]://host[:port]"
                          "[/path])",
                          zEp);
    zPath = zHost + strcspn(zHost, "/?#");
    if (zPath == zHost || *zPath == '?' || *zPath == '#' ||
        strpbrk(zHost, " \"<>\\^`{|}"))
        return az_cfg_err(pzErr, u,
                          "bad endpoint '%s' (expected http[s]://host[:port]"
                          "[/path])",
                          zEp);
    n = strlen(zEp);
    while (n > 0 && zEp[n - 1] == '/')
        n--;
    c->base = sqlite3_mprintf("%.*s", (int)n, zEp);
    n = strlen(zPath);
    while (n > 0 && zPath[n - 1] == '/')
        n--;
    c->base_path = sqlite3_mprintf("%.*s", (int)n, zPath);
    return c->base && c->base_path ? SQLITE_OK : SQLITE_NOMEM;
}

/* A decimal integer in [lo, hi] and nothing else; 1 on success. */
static int
az_int(const char *z, long lo, long hi, long *out)
{
    char *zEnd;
    long v;

    if (z[0] < '0' || z[0] > '9')
        return 0;
    v = strtol(z, &zEnd, 10);
    if (*zEnd || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* The tuning parameters of the URL. */
static int
az_tuning(az_client *c, const struct ls_url *u, http_opts *ho, char **pzErr)
{
    const char *z;
    char *zEnd;
    long v;
    int64_t ms;

    c->block_size = 16ull << 20;
    c->block_parallel = 4;
    ho->max_attempts = 5;
    if ((z = url_param(u, "block_size")) != NULL ||
        (z = url_param(u, "part_size")) != NULL) {
        unsigned long long k = strtoull(z, &zEnd, 10);
        int sh = !strcasecmp(zEnd, "KiB") || !strcasecmp(zEnd, "K")   ? 10
                 : !strcasecmp(zEnd, "MiB") || !strcasecmp(zEnd, "M") ? 20
                 : *zEnd == 0                                         ? 0
                                                                      : -1;
        if (zEnd == z || sh < 0 || k == 0 || k > (4000ull << 20) >> sh)
            return az_cfg_err(pzErr, u,
                              "bad block_size '%s' (bytes, KiB or MiB, at "
                              "most 4000MiB)",
                              z);
        c->block_size = (uint64_t)k << sh;
    }
    if ((z = url_param(u, "concurrency")) != NULL) {
        if (!az_int(z, 1, 64, &v))
            return az_cfg_err(pzErr, u, "bad concurrency '%s' (1-64)", z);
        c->block_parallel = (int)v;
    }
    if ((z = url_param(u, "max_results")) != NULL ||
        (z = url_param(u, "max_keys")) != NULL) {
        if (!az_int(z, 1, 5000, &v))
            return az_cfg_err(pzErr, u, "bad max_results '%s' (1-5000)", z);
        c->max_results = (int)v;
    }
    if ((z = url_param(u, "timeout")) != NULL) {
        if (timefmt_parse_duration(z, &ms, NULL) != SQLITE_OK || ms < 100 ||
            ms > 3600000)
            return az_cfg_err(pzErr, u,
                              "bad timeout '%s' (100ms to 1h, e.g. 30s)", z);
        ho->connect_timeout_ms = ho->stall_timeout_ms = (int)ms;
    }
    if ((z = url_param(u, "retries")) != NULL) {
        if (!az_int(z, 0, 20, &v))
            return az_cfg_err(pzErr, u, "bad retries '%s' (0-20)", z);
        ho->max_attempts = (int)v + 1;
    }
    return SQLITE_OK;
}

int
az_client_init(az_client *c, const struct ls_url *u, char **pzErr)
{
    http_opts ho = {0};
    int rc;

    memset(c, 0, sizeof(*c));
    c->prefix = sqlite3_mprintf("%s", u->path ? u->path : "");
    if (c->prefix == NULL)
        return SQLITE_NOMEM;
    rc = az_names(c, u, pzErr);
    if (rc == SQLITE_OK)
        rc = az_endpoint(c, u, pzErr);
    if (rc == SQLITE_OK)
        rc = az_tuning(c, u, &ho, pzErr);
    if (rc == SQLITE_OK)
        rc = http_client_new(&ho, &c->http);
    return rc;
}

void
az_client_clear(az_client *c)
{
    http_client_free(c->http);
    sqlite3_free(c->account);
    sqlite3_free(c->container);
    sqlite3_free(c->prefix);
    sqlite3_free(c->base);
    sqlite3_free(c->base_path);
    memset(c, 0, sizeof(*c));
}

/* --- credentials and signing ------------------------------------------- */

/* The first non-empty variable of two, or NULL. */
static const char *
az_env2(const char *a, const char *b)
{
    const char *z = getenv(a);
    if (z == NULL || z[0] == 0)
        z = getenv(b);
    return z && z[0] ? z : NULL;
}

/* "Mon, 07 Dec 2026 01:43:00 GMT" of now (locale-independent). */
static void
az_date(char out[32])
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday],
             tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
}

static int
az_pair_cmp(const void *a, const void *b)
{
    const sigv4_pair *x = a, *y = b;
    int r = strcasecmp(x->name, y->name);
    return r ? r : strcmp(x->value, y->value);
}

/* The value of header zName among h[0..n), or "". */
static const char *
az_hdr(const sigv4_pair *h, int n, const char *zName)
{
    for (int i = 0; i < n; i++)
        if (strcasecmp(h[i].name, zName) == 0)
            return h[i].value;
    return "";
}

/*
 * The Shared Key string to sign of an attempt with headers h[0..n) (the
 * x-ms-* ones and Content-Type/Length among them) and the call's query.
 */
static char *
az_string_to_sign(const az_client *c, const az_call *call, const char *zPath,
                  sigv4_pair *h, int n)
{
    static const char *const std[] = {"Content-Encoding",
                                      "Content-Language",
                                      "Content-Length",
                                      "Content-MD5",
                                      "Content-Type",
                                      "Date",
                                      "If-Modified-Since",
                                      "If-Match",
                                      "If-None-Match",
                                      "If-Unmodified-Since",
                                      "Range"};
    sqlite3_str *s = sqlite3_str_new(NULL);
    sigv4_pair q[16];
    int i, nq = call->nquery < 16 ? call->nquery : 16;

    sqlite3_str_appendf(s, "%s\n", call->method);
    for (i = 0; i < (int)(sizeof(std) / sizeof(std[0])); i++) {
        const char *v = az_hdr(h, n, std[i]);
        if (i == 2 && strcmp(v, "0") == 0)
            v = "";
        sqlite3_str_appendf(s, "%s\n", v);
    }
    qsort(h, (size_t)n, sizeof(*h), az_pair_cmp);
    for (i = 0; i < n; i++)
        if (strncasecmp(h[i].name, "x-ms-", 5) == 0) {
            for (const char *p = h[i].name; *p; p++)
                sqlite3_str_appendchar(s, 1,
                                       *p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
            sqlite3_str_appendf(s, ":%s\n", h[i].value);
        }
    sqlite3_str_appendf(s, "/%s%s", c->account, zPath);
    if (nq > 0) {
        memcpy(q, call->query, sizeof(*q) * (size_t)nq);
        qsort(q, (size_t)nq, sizeof(*q), az_pair_cmp);
    }
    for (i = 0; i < nq; i++) {
        sqlite3_str_appendchar(s, 1, '\n');
        for (const char *p = q[i].name; *p; p++)
            sqlite3_str_appendchar(s, 1, *p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        sqlite3_str_appendf(s, ":%s", q[i].value);
        while (i + 1 < nq && strcasecmp(q[i + 1].name, q[i].name) == 0)
            sqlite3_str_appendf(s, ",%s", q[++i].value);
    }
    return sqlite3_str_finish(s);
}

/* Header lines of one attempt. */
typedef struct az_sig {
    char *azLine[24];
    int n;
} az_sig;

static void
az_sig_clear(az_sig *s)
{
    for (int i = 0; i < s->n; i++)
        sqlite3_free(s->azLine[i]);
    s->n = 0;
}

/*
 * Builds the header lines of one attempt, with Authorization when a Shared
 * Key is used (not with a SAS token: it is in the URL).  SQLITE_AUTH with
 * *pzWhy (static) when the credentials cannot be used.
 */
static int
az_sign(const az_client *c, const az_call *call, const char *zPath, int sas,
        az_sig *sig, const char **pzWhy)
{
    sigv4_pair h[20];
    char zDate[32], zLen[24];
    int n = 0, i, rc = SQLITE_OK;

    if (call->nheader > 16)
        return SQLITE_MISUSE;
    az_date(zDate);
    snprintf(zLen, sizeof(zLen), "%llu", (unsigned long long)call->nbody);
    h[n++] = (sigv4_pair){"x-ms-date", zDate};
    h[n++] = (sigv4_pair){"x-ms-version", AZ_VERSION};
    if (call->nbody > 0 || !strcmp(call->method, "PUT"))
        h[n++] = (sigv4_pair){"Content-Length", zLen};
    for (i = 0; i < call->nheader; i++)
        h[n++] = call->headers[i];
    if (!sas) {
        const char *zKey =
            az_env2("LITESTREAM_AZURE_ACCOUNT_KEY", "AZURE_STORAGE_KEY");
        uint8_t *key = NULL;
        size_t nkey = 0;
        char *zSts = NULL, *zMac = NULL;
        if (zKey == NULL)
            *pzWhy = "no credentials for abs: set LITESTREAM_AZURE_ACCOUNT_KEY "
                     "(or AZURE_STORAGE_KEY) to the storage account key, or "
                     "LITESTREAM_AZURE_SAS_TOKEN (or AZURE_STORAGE_SAS_TOKEN)";
        else if (c->account[0] == 0)
            *pzWhy =
                "a Shared Key needs the storage account name: write "
                "abs://ACCOUNT@CONTAINER/PATH or set AZURE_STORAGE_ACCOUNT";
        else if ((rc = sigv4_base64_decode(zKey, &key, &nkey)) == SQLITE_ERROR)
            *pzWhy = "the Azure account key (LITESTREAM_AZURE_ACCOUNT_KEY or "
                     "AZURE_STORAGE_KEY) is not base64: copy the key1/key2 "
                     "value of the storage account's Access keys page";
        if (*pzWhy)
            return SQLITE_AUTH;
        if (rc != SQLITE_OK)
            return rc;
        zSts = az_string_to_sign(c, call, zPath, h, n);
        zMac = zSts ? sigv4_hmac_base64(key, nkey, zSts) : NULL;
        sqlite3_free(zSts);
        memset(key, 0, nkey);
        sqlite3_free(key);
        if (zMac == NULL)
            return SQLITE_NOMEM;
        sig->azLine[sig->n++] =
            sqlite3_mprintf("Authorization: SharedKey %s:%s", c->account, zMac);
        sqlite3_free(zMac);
    }
    for (i = 0; i < n; i++)
        sig->azLine[sig->n++] =
            sqlite3_mprintf("%s: %s", h[i].name, h[i].value);
    for (i = 0; i < sig->n; i++)
        if (sig->azLine[i] == NULL)
            return SQLITE_NOMEM;
    return SQLITE_OK;
}

/* --- requests ------------------------------------------------------------ */

/* The URL path of a call ("/ACCOUNT/container/blob" on Azurite), encoded:
 * sent in the URL and signed as sent (Shared Key signs the path "encoded
 * exactly as it is in the URI"). */
static char *
az_path(const az_client *c, const az_call *call)
{
    char *zBlob = sigv4_uri_encode(call->blob ? call->blob : "", 1);
    char *z = zBlob ? sqlite3_mprintf("%s/%s%s%s", c->base_path, c->container,
                                      call->blob ? "/" : "", zBlob)
                    : NULL;

    sqlite3_free(zBlob);
    return z;
}

/* The full URL of an attempt: base + path + query (+ the SAS token). */
static char *
az_url(const az_client *c, const az_call *call, const char *zEncPath,
       const char *zSas)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    const char *zBase = c->base + strlen(c->base) - strlen(c->base_path);
    char sep = '?';

    sqlite3_str_appendf(s, "%.*s%s", (int)(zBase - c->base), c->base, zEncPath);
    for (int i = 0; i < call->nquery; i++, sep = '&') {
        char *k = sigv4_uri_encode(call->query[i].name, 0);
        char *v = sigv4_uri_encode(call->query[i].value, 0);
        sqlite3_str_appendf(s, "%c%s=%s", sep, k ? k : "", v ? v : "");
        if (!k || !v)
            sqlite3_str_reset(s);
        sqlite3_free(k);
        sqlite3_free(v);
    }
    if (zSas)
        sqlite3_str_appendf(s, "%c%s", sep, zSas[0] == '?' ? zSas + 1 : zSas);
    return sqlite3_str_finish(s);
}

static void
az_count(az_client *c, const az_call *call, const http_resp *resp)
{
    backend_counters *k = &c->counters;
    const char *m = call->method;

    if (call->blob == NULL)
        __atomic_add_fetch(&k->n_list, 1, __ATOMIC_RELAXED);
    else if (!strcmp(m, "DELETE"))
        __atomic_add_fetch(&k->n_delete, 1, __ATOMIC_RELAXED);
    else if (!strcmp(m, "GET") || !strcmp(m, "HEAD"))
        __atomic_add_fetch(&k->n_get, 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&k->n_put, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&k->bytes_up, call->nbody, __ATOMIC_RELAXED);
    __atomic_add_fetch(&k->bytes_down, resp->nbody, __ATOMIC_RELAXED);
}

/* The SQLite code of a non-2xx answer with error code zCode. */
static int
az_status_rc(const http_resp *resp, const char *zCode)
{
    long st = resp->status;

    if (st == 404 && zCode && strcmp(zCode, "ContainerNotFound") == 0)
        return SQLITE_CANTOPEN;
    if (st == 404)
        return SQLITE_NOTFOUND;
    if (st == 401 || st == 403)
        return SQLITE_AUTH;
    if (st >= 500 || st == 429)
        return SQLITE_IOERR;
    return SQLITE_ERROR;
}

const char *
az_credential(const az_client *c)
{
    if (az_env2("LITESTREAM_AZURE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN"))
        return "the SAS token in LITESTREAM_AZURE_SAS_TOKEN or "
               "AZURE_STORAGE_SAS_TOKEN";
    if (az_env2("LITESTREAM_AZURE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"))
        return "the Shared Key in LITESTREAM_AZURE_ACCOUNT_KEY or "
               "AZURE_STORAGE_KEY";
    return "none (anonymous requests)";
}

/* What to check after a refusal: names the credential in use, never its
 * value. */
static const char *
az_hint(const az_client *c, int rc)
{
    if (rc == SQLITE_CANTOPEN)
        return " (create the container first)";
    if (rc != SQLITE_AUTH)
        return "";
    if (az_env2("LITESTREAM_AZURE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN"))
        return " (credentials: the SAS token in LITESTREAM_AZURE_SAS_TOKEN "
               "or AZURE_STORAGE_SAS_TOKEN: check its expiry (se) and "
               "permissions (sp: rwdl))";
    return c->account[0] ? " (credentials: the Shared Key in "
                           "LITESTREAM_AZURE_ACCOUNT_KEY or AZURE_STORAGE_KEY: "
                           "check it is a key of this storage account)"
                         : "";
}

/* The message of a failed call. */
static int
az_fail(const az_client *c, const az_call *call, int rc, const http_resp *resp,
        const char *zWhy, char **pzErr)
{
    const char *zBlob = call->blob ? call->blob : "";
    const char *zOp = call->method, *zCode = NULL, *zMsg = NULL;
    char zHdr[128];
    xml_node *x = NULL;
    char *z;

    if (call->blob == NULL) {
        zOp = "LIST";
        for (int i = 0; i < call->nquery; i++)
            if (strcmp(call->query[i].name, "prefix") == 0)
                zBlob = call->query[i].value;
    }
    if (zWhy) {
        z = sqlite3_mprintf("litestream: %s", zWhy);
    } else if (rc == SQLITE_OK) {
        if (resp->nbody && xml_parse((const char *)resp->body, resp->nbody, &x,
                                     NULL) == SQLITE_OK) {
            zCode = xml_text(x, "Code");
            zMsg = xml_text(x, "Message");
        }
        if (zCode == NULL)
            zCode =
                http_resp_header(resp, "x-ms-error-code", zHdr, sizeof(zHdr));
        rc = az_status_rc(resp, zCode);
        z = sqlite3_mprintf(
            "litestream: Azure %s '%s' in container '%s' "
            "failed: HTTP %ld%s%s%s%.*s%s",
            zOp, zBlob, c->container, resp->status, zCode ? " " : "",
            zCode ? zCode : "", zMsg ? ": " : "",
            zMsg ? (int)strcspn(zMsg, "\r\n") : 0, /* not "\nRequestId.." */
            zMsg ? zMsg : "", az_hint(c, rc));
    } else if (rc == SQLITE_IOERR) {
        z = sqlite3_mprintf("litestream: Azure %s '%s' in container '%s' on "
                            "%s failed: %s",
                            zOp, zBlob, c->container, c->base,
                            resp->transport ? resp->transport : "no response");
    } else {
        z = sqlite3_mprintf("litestream: Azure %s '%s': %s", zOp, zBlob,
                            sqlite3_errstr(rc));
    }
    xml_free(x);
    if (pzErr)
        *pzErr = z;
    else
        sqlite3_free(z);
    return rc;
}

/* One attempt of call. */
static int
az_attempt(az_client *c, const az_call *call, const char *zEnc, http_resp *resp,
           const char **pzWhy)
{
    const char *zSas =
        az_env2("LITESTREAM_AZURE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN");
    az_sig sig = {.n = 0};
    char *zUrl = NULL;
    int rc = az_sign(c, call, zEnc, zSas != NULL, &sig, pzWhy);

    memset(resp, 0, sizeof(*resp));
    if (rc == SQLITE_OK)
        rc = (zUrl = az_url(c, call, zEnc, zSas)) ? SQLITE_OK : SQLITE_NOMEM;
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
        };
        rc = http_do(c->http, &req, resp);
        if (rc != SQLITE_NOMEM)
            az_count(c, call, resp);
    }
    sqlite3_free(zUrl);
    az_sig_clear(&sig);
    return rc;
}

int
az_call_do(az_client *c, const az_call *call, http_resp *resp, char **pzErr)
{
    char *zEnc = NULL;
    const char *zWhy = NULL;
    int rc, attempt, delay;

    memset(resp, 0, sizeof(*resp));
    if (pzErr)
        *pzErr = NULL;
    zEnc = az_path(c, call);
    rc = zEnc ? SQLITE_OK : SQLITE_NOMEM;
    if (rc != SQLITE_OK)
        goto out;
    for (attempt = 1;; attempt++) {
        http_resp_clear(resp);
        rc = az_attempt(c, call, zEnc, resp, &zWhy);
        if (rc == SQLITE_NOMEM || rc == SQLITE_AUTH || rc == SQLITE_MISUSE)
            break;
        if (rc == SQLITE_OK && resp->status >= 200 && resp->status < 300)
            goto out;
        delay = http_retry_delay_ms(c->http, rc, resp, attempt);
        if (delay < 0)
            break;
        http_sleep_ms(delay);
    }
    rc = az_fail(c, call, rc, resp, zWhy, pzErr);
out:
    sqlite3_free(zEnc);
    return rc;
}
