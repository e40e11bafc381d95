/*
 * storage/backend/gcs_token.h: OAuth2 access tokens for gs:// from a
 * Google service-account key (GOOGLE_APPLICATION_CREDENTIALS).
 *
 * The key file (JSON, "type": "service_account") gives client_email,
 * private_key (PEM RSA), private_key_id and token_uri.  A JWT
 *   header {"alg":"RS256","typ":"JWT","kid":<private_key_id>}
 *   claims {"iss":<client_email>,"scope":<devstorage.read_write>,
 *           "aud":<token_uri>,"iat":now,"exp":now+3600}
 * signed RS256 (storage/backend/sigv4.c) is POSTed to token_uri
 * (grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer) for an access
 * token, which is cached and fetched again before it expires (at
 * expires_in minus a quarter of it, at most 5 minutes early), or at once
 * when the variable names another file.  The token and the key never
 * appear in a message.
 *
 * Threads: any number of threads may call gcs_token_get() on one cache (a
 * mutex serialises fetches).
 */
#ifndef LITESTREAM_GCS_TOKEN_H
#define LITESTREAM_GCS_TOKEN_H

#include <stddef.h>

#include "storage/backend/http.h"

typedef struct gcs_token gcs_token;

/* A new, empty cache; NULL if out of memory. */
gcs_token *gcs_token_new(void);

/* Frees the cache; NULL-safe. */
void gcs_token_free(gcs_token *t);

/* Forgets the cached token (the store refused it: 401); the next
 * gcs_token_get() fetches a new one. */
void gcs_token_invalidate(gcs_token *t);

/*
 * The path of the service-account key to use: GOOGLE_APPLICATION_CREDENTIALS
 * when set and not empty, else NULL.
 */
const char *gcs_token_path(void);

/*
 * A valid access token for the key at zPath, from the cache or fetched
 * now over http: SQLITE_OK and *pzToken (sqlite3_malloc'd).  Otherwise
 * SQLITE_AUTH (the key file is missing, unreadable, not JSON, not a service
 * account, its private key unusable, or the token endpoint refused it),
 * SQLITE_IOERR (the token endpoint could not be reached, after retries) or
 * SQLITE_NOMEM, with *pzErr saying what to do.  *pzWho receives the
 * service account's e-mail (sqlite3_malloc'd) when known, for messages.
 */
int gcs_token_get(gcs_token *t, http_client *http, const char *zPath,
                  char **pzToken, char **pzWho, char **pzErr);

/* --- decoding (storage/backend/gcs_key.c) ------------------------------ */

/* A service-account key: pointers into root (a jansson document). */
typedef struct gcs_key {
    struct json_t *root;
    const char *email, *pem, *kid, *uri; /* uri: token_uri or Google's */
} gcs_key;

/*
 * Parses the key file's text buf[0..n) (zPath for messages): SQLITE_OK and
 * *k (free with gcs_key_clear()); SQLITE_AUTH with *pzErr when it is not
 * JSON, not a service-account key (type, client_email, private_key) or
 * its token_uri is not http(s); *k is then cleared.
 */
int gcs_key_parse(const char *buf, size_t n, const char *zPath, gcs_key *k,
                  char **pzErr);

/* Frees what a parsed key holds; safe on a zeroed key. */
void gcs_key_clear(gcs_key *k);

/*
 * Parses a token endpoint's answer z[0..n): SQLITE_OK with *pzTok
 * (sqlite3_malloc'd) and *pTtl (expires_in seconds, clamped to 10 s..1 day;
 * an hour if absent); SQLITE_ERROR if there is no usable access_token;
 * SQLITE_NOMEM.
 */
int gcs_token_parse(const char *z, size_t n, char **pzTok, long *pTtl);

#endif
