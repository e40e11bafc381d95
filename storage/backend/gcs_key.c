/*
 * storage/backend/gcs_key.c: decoding what the gs service-account path
 * reads (gcs_token.h): the key file (JSON) and the token endpoint's answer
 * (JSON, from the network).  Malformed input is an error with a message,
 * never a crash; fuzz target test/fuzz/fuzz_gcs.c.
 *
 * Threads: pure functions; any thread.
 */
#include "storage/backend/gcs_token.h"

#include <string.h>

#include "storage/base/json.h"
#include "storage/base/sqlite.h"

#define GCS_TOKEN_URI "https://oauth2.googleapis.com/token"

/* The string member zName of object o, or NULL. */
static const char *
gcs_str(json_t *o, const char *zName)
{
    return json_string_value(json_object_get(o, zName));
}

int
gcs_key_parse(const char *buf, size_t n, const char *zPath, gcs_key *k,
              char **pzErr)
{
    json_error_t je;
    const char *zType;

    memset(k, 0, sizeof(*k));
    k->root =
        json_loadb(buf ? buf : "", buf ? n : 0, JSON_REJECT_DUPLICATES, &je);
    if (k->root == NULL || !json_is_object(k->root)) {
        *pzErr = sqlite3_mprintf(
            "litestream: the Google credentials file '%s' "
            "(GOOGLE_APPLICATION_CREDENTIALS) is not JSON%s%s: download a "
            "service-account key (IAM -> Service accounts -> Keys -> JSON)",
            zPath, k->root ? "" : ": ", k->root ? "" : je.text);
        gcs_key_clear(k);
        return SQLITE_AUTH;
    }
    zType = gcs_str(k->root, "type");
    k->email = gcs_str(k->root, "client_email");
    k->pem = gcs_str(k->root, "private_key");
    k->kid = gcs_str(k->root, "private_key_id");
    k->uri = gcs_str(k->root, "token_uri");
    if (k->uri == NULL || k->uri[0] == 0)
        k->uri = GCS_TOKEN_URI;
    if (zType == NULL || strcmp(zType, "service_account") != 0 ||
        k->email == NULL || k->pem == NULL) {
        *pzErr = sqlite3_mprintf(
            "litestream: '%s' (GOOGLE_APPLICATION_CREDENTIALS) is not a "
            "service-account key (type '%s'%s): gs:// takes a "
            "service-account JSON key, or HMAC keys in "
            "GOOGLE_HMAC_ACCESS_ID and GOOGLE_HMAC_SECRET",
            zPath, zType ? zType : "missing",
            k->email && k->pem ? "" : ", no client_email or private_key");
        gcs_key_clear(k);
        return SQLITE_AUTH;
    }
    if (strncmp(k->uri, "https://", 8) != 0 &&
        strncmp(k->uri, "http://", 7) != 0) {
        *pzErr = sqlite3_mprintf("litestream: the token_uri of '%s' is not "
                                 "an http(s) URL",
                                 zPath);
        gcs_key_clear(k);
        return SQLITE_AUTH;
    }
    return SQLITE_OK;
}

void
gcs_key_clear(gcs_key *k)
{
    json_decref(k->root);
    memset(k, 0, sizeof(*k));
}

int
gcs_token_parse(const char *z, size_t n, char **pzTok, long *pTtl)
{
    json_t *j = json_loadb(z ? z : "", z ? n : 0, 0, NULL);
    const char *zTok = gcs_str(j, "access_token");
    json_t *e = json_object_get(j, "expires_in");
    json_int_t ttl = json_is_integer(e) ? json_integer_value(e) : 3600;
    int rc = SQLITE_ERROR;

    *pzTok = NULL;
    /* 10 s .. 1 day; a token without a usable lifetime gets an hour */
    *pTtl = ttl >= 10 && ttl <= 86400 ? (long)ttl : ttl > 86400 ? 86400 : 3600;
    if (zTok && zTok[0] && strcspn(zTok, "\r\n") == strlen(zTok)) {
        *pzTok = sqlite3_mprintf("%s", zTok);
        rc = *pzTok ? SQLITE_OK : SQLITE_NOMEM;
    }
    json_decref(j);
    return rc;
}
