/*
 * storage/backend/gcs_token.c: service-account access tokens for gs://
 * (gcs_token.h).
 *
 * Invariants:
 *   1. A cached token is used only for the key file it came from and only
 *      until its refresh time; a failed fetch leaves no token cached.
 *   2. Messages name the key file, the service account's e-mail and the
 *      token endpoint, never the private key, the JWT or a token.
 *
 * Threads: the cache is guarded by its mutex, held across a fetch so that
 * parallel parts wait for one token instead of each fetching one.
 */
#include "storage/backend/gcs_token.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/base/json.h"
#include "storage/base/sqlite.h"
#include "storage/backend/sigv4.h"

#define GCS_SCOPE     "https://www.googleapis.com/auth/devstorage.read_write"
#define GCS_TOKEN_URI "https://oauth2.googleapis.com/token"
#define GCS_KEY_MAX   (1 << 20)

struct gcs_token {
    pthread_mutex_t mu;
    char *zPath;  /* key file of the cached token */
    char *zToken; /* NULL: none cached */
    char *zWho;   /* client_email */
    time_t refresh_at;
};

gcs_token *
gcs_token_new(void)
{
    gcs_token *t = sqlite3_malloc(sizeof(*t));

    if (t) {
        memset(t, 0, sizeof(*t));
        pthread_mutex_init(&t->mu, NULL);
    }
    return t;
}

static void
gcs_token_drop(gcs_token *t)
{
    if (t->zToken)
        memset(t->zToken, 0, strlen(t->zToken));
    sqlite3_free(t->zToken);
    sqlite3_free(t->zPath);
    sqlite3_free(t->zWho);
    t->zToken = t->zPath = t->zWho = NULL;
}

void
gcs_token_free(gcs_token *t)
{
    if (t == NULL)
        return;
    gcs_token_drop(t);
    pthread_mutex_destroy(&t->mu);
    sqlite3_free(t);
}

void
gcs_token_invalidate(gcs_token *t)
{
    pthread_mutex_lock(&t->mu);
    gcs_token_drop(t);
    pthread_mutex_unlock(&t->mu);
}

const char *
gcs_token_path(void)
{
    const char *z = getenv("GOOGLE_APPLICATION_CREDENTIALS");
    return z && z[0] ? z : NULL;
}

/* Reads and checks the key file; SQLITE_AUTH with *pzErr if unusable. */
static int
gcs_key_read(const char *zPath, gcs_key *k, char **pzErr)
{
    FILE *f = fopen(zPath, "rb");
    char *buf = NULL;
    size_t n = 0;
    int bad, rc;

    memset(k, 0, sizeof(*k));
    if (f == NULL) {
        *pzErr = sqlite3_mprintf(
            "litestream: cannot read the Google service-account key '%s' "
            "(GOOGLE_APPLICATION_CREDENTIALS): %s",
            zPath, strerror(errno));
        return SQLITE_AUTH;
    }
    buf = sqlite3_malloc(GCS_KEY_MAX + 1);
    if (buf)
        n = fread(buf, 1, GCS_KEY_MAX + 1, f);
    bad = buf && ferror(f);
    fclose(f);
    if (buf == NULL)
        return SQLITE_NOMEM;
    if (bad || n > GCS_KEY_MAX) {
        sqlite3_free(buf);
        *pzErr =
            sqlite3_mprintf("litestream: cannot read the Google "
                            "service-account key '%s' "
                            "(GOOGLE_APPLICATION_CREDENTIALS): %s",
                            zPath, bad ? "read error" : "larger than 1 MiB");
        return SQLITE_AUTH;
    }
    rc = gcs_key_parse(buf, n, zPath, k, pzErr);
    sqlite3_free(buf);
    return rc;
}

/* base64url of a compact JSON document (consumed). */
static char *
gcs_b64_json(json_t *j)
{
    char *z = j ? ls_json_dump(j) : NULL;
    char *b = z ? sigv4_base64(z, strlen(z), 1) : NULL;

    json_decref(j);
    sqlite3_free(z);
    return b;
}

/* The signed JWT of the key, issued now. */
static int
gcs_jwt(const gcs_key *k, time_t now, char **pzJwt)
{
    json_t *h = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", k->email, "scope",
                          GCS_SCOPE, "aud", k->uri, "iat", (json_int_t)now,
                          "exp", (json_int_t)now + 3600);
    char *zH, *zC, *zIn, *zSig = NULL;
    int rc;

    if (h && k->kid)
        json_object_set_new(h, "kid", json_string(k->kid));
    zH = gcs_b64_json(h);
    zC = gcs_b64_json(c);
    zIn = zH && zC ? sqlite3_mprintf("%s.%s", zH, zC) : NULL;
    rc = zIn ? sigv4_rs256(k->pem, zIn, &zSig) : SQLITE_NOMEM;
    *pzJwt = rc == SQLITE_OK ? sqlite3_mprintf("%s.%s", zIn, zSig) : NULL;
    if (rc == SQLITE_OK && *pzJwt == NULL)
        rc = SQLITE_NOMEM;
    sqlite3_free(zH);
    sqlite3_free(zC);
    sqlite3_free(zIn);
    sqlite3_free(zSig);
    return rc;
}

/* The message of a refused or failed token request. */
static char *
gcs_fail_msg(const gcs_key *k, const char *zPath, int rc, const http_resp *resp)
{
    json_t *j = NULL;
    const char *zE = NULL, *zD = NULL;
    char *z;

    if (rc == SQLITE_OK && resp->nbody) {
        j = json_loadb((const char *)resp->body, resp->nbody, 0, NULL);
        zE = json_string_value(json_object_get(j, "error"));
        zD = json_string_value(json_object_get(j, "error_description"));
    }
    if (rc != SQLITE_OK)
        z = sqlite3_mprintf("litestream: cannot reach the token endpoint %s "
                            "for the service account %s: %s",
                            k->uri, k->email,
                            resp->transport ? resp->transport : "no response");
    else
        z = sqlite3_mprintf("litestream: the token endpoint %s refused the "
                            "service account %s (key '%s'): HTTP %ld%s%s%s%s",
                            k->uri, k->email, zPath, resp->status,
                            zE ? " " : "", zE ? zE : "", zD ? ": " : "",
                            zD ? zD : "");
    json_decref(j);
    return z;
}

/* POSTs the JWT to the token endpoint (with retries); the answer's token
 * and lifetime into *pzTok, *pTtl. */
static int
gcs_exchange(http_client *http, const gcs_key *k, const char *zPath,
             const char *zJwt, char **pzTok, long *pTtl, char **pzErr)
{
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded",
                       "Accept: application/json"};
    char *zBody = sqlite3_mprintf("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth"
                                  "%%3Agrant-type%%3Ajwt-bearer&assertion=%s",
                                  zJwt);
    http_resp resp = {0};
    int rc = SQLITE_NOMEM, attempt, delay;

    for (attempt = 1; zBody; attempt++) {
        http_req req = {.method = "POST",
                        .url = k->uri,
                        .headers = h,
                        .nheader = 2,
                        .body = zBody,
                        .body_fd = -1,
                        .nbody = strlen(zBody),
                        .max_response = 1 << 20};
        http_resp_clear(&resp);
        rc = http_do(http, &req, &resp);
        if (rc == SQLITE_NOMEM ||
            (rc == SQLITE_OK && resp.status >= 200 && resp.status < 300))
            break;
        if ((delay = http_retry_delay_ms(http, rc, &resp, attempt)) < 0)
            break;
        http_sleep_ms(delay);
    }
    if (rc == SQLITE_OK && resp.status >= 200 && resp.status < 300) {
        rc = gcs_token_parse((const char *)resp.body, resp.nbody, pzTok, pTtl);
        if (rc == SQLITE_ERROR) {
            rc = SQLITE_AUTH;
            *pzErr = sqlite3_mprintf("litestream: the token endpoint %s gave "
                                     "no access_token for %s",
                                     k->uri, k->email);
        }
    } else if (rc != SQLITE_NOMEM) {
        *pzErr = gcs_fail_msg(k, zPath, rc, &resp);
        rc = rc == SQLITE_OK ? SQLITE_AUTH : SQLITE_IOERR;
    }
    http_resp_clear(&resp);
    sqlite3_free(zBody);
    return rc;
}

/* Fetches a token for the key at zPath into the (locked) cache. */
static int
gcs_fetch(gcs_token *t, http_client *http, const char *zPath, char **pzErr)
{
    gcs_key k;
    char *zJwt = NULL, *zTok = NULL;
    long ttl = 0;
    time_t now = time(NULL);
    int rc = gcs_key_read(zPath, &k, pzErr);

    if (rc == SQLITE_OK) {
        rc = gcs_jwt(&k, now, &zJwt);
        if (rc == SQLITE_ERROR) {
            rc = SQLITE_AUTH;
            *pzErr = sqlite3_mprintf("litestream: the private_key of '%s' "
                                     "(GOOGLE_APPLICATION_CREDENTIALS) is not "
                                     "an RSA private key in PEM",
                                     zPath);
        }
    }
    if (rc == SQLITE_OK)
        rc = gcs_exchange(http, &k, zPath, zJwt, &zTok, &ttl, pzErr);
    if (rc == SQLITE_OK) {
        long early = ttl / 4 < 300 ? ttl / 4 : 300;
        t->zToken = zTok;
        t->zPath = sqlite3_mprintf("%s", zPath);
        t->zWho = sqlite3_mprintf("%s", k.email);
        t->refresh_at = now + ttl - early;
        zTok = NULL;
        if (t->zPath == NULL || t->zWho == NULL) {
            gcs_token_drop(t);
            rc = SQLITE_NOMEM;
        }
    }
    sqlite3_free(zTok);
    if (zJwt)
        memset(zJwt, 0, strlen(zJwt));
    sqlite3_free(zJwt);
    gcs_key_clear(&k);
    return rc;
}

int
gcs_token_get(gcs_token *t, http_client *http, const char *zPath,
              char **pzToken, char **pzWho, char **pzErr)
{
    int rc = SQLITE_OK;

    *pzToken = NULL;
    *pzErr = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->zToken &&
        (strcmp(t->zPath, zPath) != 0 || time(NULL) >= t->refresh_at))
        gcs_token_drop(t);
    if (t->zToken == NULL)
        rc = gcs_fetch(t, http, zPath, pzErr);
    if (rc == SQLITE_OK) {
        *pzToken = sqlite3_mprintf("%s", t->zToken);
        if (pzWho)
            *pzWho = sqlite3_mprintf("%s", t->zWho);
        if (*pzToken == NULL)
            rc = SQLITE_NOMEM;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}
