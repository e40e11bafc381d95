/*
 * storage/backend/s3_client.h: the S3 REST client under the s3 and gs backends
 * (storage/backend/s3.c): endpoint and addressing, credentials, SigV4
 * signing of every attempt, retries, and S3 error responses turned into
 * SQLite codes and messages.
 *
 * Addressing: with no endpoint, AWS virtual-host style
 * (https://<bucket>.s3.<region>.amazonaws.com/<key>); with an endpoint,
 * path style (<endpoint>/<bucket>/<key>) unless force_path_style=false, in
 * which case the bucket is prepended to the endpoint's host.
 *
 * Credentials are read from the environment at every request (so fixing
 * them takes effect without reopening the replica): for s3
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else
 * LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY; for gs first
 * GOOGLE_HMAC_ACCESS_ID / GOOGLE_HMAC_SECRET, then a service-account key
 * named by GOOGLE_APPLICATION_CREDENTIALS (an OAuth2 Bearer token instead
 * of a signature; storage/backend/gcs_token.h); for oss first
 * OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET.  They never appear in a
 * message.
 *
 * Threads: s3_call() may run on several threads at once on one client
 * (multipart parts); counters are atomic.
 */
#ifndef LITESTREAM_S3_H
#define LITESTREAM_S3_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/backend/http.h"
#include "storage/backend/sigv4.h"

struct ls_url;

/* Which store a client talks to (s3_client_init's kind). */
#define S3_KIND_AWS 0 /* s3:// */
#define S3_KIND_GCS 1 /* gs://: Google Cloud Storage's XML API */
#define S3_KIND_OSS 2 /* oss://: Alibaba OSS's S3-compatible API */

typedef struct s3_client {
    http_client *http;
    int gcs; /* Google Cloud Storage's XML API */
    int oss; /* Alibaba Cloud OSS */
    int https;
    char *host; /* the endpoint's "host[:port]" */
    char *bucket;
    char *prefix; /* the URL path ("" or "db"), no slashes at the ends */
    char *region;
    int path_style;
    uint64_t part_size;        /* multipart above this (bytes) */
    int part_parallel;         /* parts in flight */
    int max_keys;              /* ListObjectsV2 page size (0: server default) */
    backend_counters counters; /* updated atomically */
    struct gcs_token *token;   /* gs: service-account tokens (gcs_token.h) */
} s3_client;

/* One S3 operation; everything decoded (the client encodes). */
/* Which credential requests of c are signed with, named (static). */
const char *s3_credential(const s3_client *c);

typedef struct s3_call {
    const char *method;
    const char *key; /* full object key, or NULL for the bucket */
    const sigv4_pair *query;
    int nquery;
    const sigv4_pair *headers; /* extra headers, all signed */
    int nheader;
    const void *body; /* as http_req: memory, or fd + offset */
    int body_fd;
    uint64_t body_off;
    uint64_t nbody;
    int unsigned_payload; /* don't hash the body (file bodies) */
    uint64_t max_response;
} s3_call;

/*
 * Configures a client from an s3://, gs:// or oss:// URL (kind S3_KIND_*):
 * endpoint, region (URL, else AWS_REGION, else us-east-1; "auto" for gs;
 * for oss the region of a host "BUCKET.oss-REGION.aliyuncs.com", else
 * cn-hangzhou, and the endpoint https://s3.oss-REGION.aliyuncs.com in
 * virtual-host style), force_path_style,
 * skip_verify, part_size (bytes, or with KiB/MiB/GiB; >= 5 MiB unless an
 * endpoint is given; default 16 MiB), concurrency (parallel parts,
 * default 4), timeout (stall and connect timeout, "30s", "500ms"; 100ms
 * to 1h), max_keys (listing page size), retries (attempts after the first,
 * default 4).  Returns SQLITE_OK or SQLITE_ERROR with *pzErr
 * (sqlite3_mprintf'd) naming the bad parameter; SQLITE_NOMEM.
 */
int s3_client_init(s3_client *c, const struct ls_url *u, int kind,
                   char **pzErr);

/* Frees what the client holds (not c itself); safe on a zeroed client. */
void s3_client_clear(s3_client *c);

/*
 * Runs the call with retries (http_retry_delay_ms).  Returns SQLITE_OK for
 * a 2xx answer, with the response in *resp (clear it with
 * http_resp_clear()).  Otherwise the response of the last attempt is still
 * in *resp and the code says what failed:
 *   SQLITE_NOTFOUND  404 NoSuchKey (or 404 to a HEAD)
 *   SQLITE_AUTH      403, 401, missing credentials
 *   SQLITE_CANTOPEN  404 NoSuchBucket, bad endpoint or bucket name
 *   SQLITE_IOERR     transport failures and 5xx after the last retry
 *   SQLITE_ERROR     any other 4xx
 * with *pzErr (sqlite3_mprintf'd): "litestream: S3 <METHOD> '<key>' in
 * bucket '<b>' failed: <status> <Code>: <Message>" or the transport error.
 */
int s3_call_do(s3_client *c, const s3_call *call, http_resp *resp,
               char **pzErr);

/*
 * Conditional writes (storage/backend/s3_cond.c; backend.h get_ver and
 * put_if) of the full key zKey: the version is the ETag, or for gs the
 * generation ("gen:N").  s3_put_if returns SQLITE_CONSTRAINT when the
 * store refused the condition.  Other errors as s3_call_do, with *pzErr.
 */
int s3_get_ver(s3_client *c, const char *zKey, uint8_t **out, size_t *nOut,
               char **pzVer, char **pzErr);
int s3_put_if(s3_client *c, const char *zKey, const void *data, size_t n,
              const char *zVer, char **pzVer, char **pzErr);

/* Formats Unix ms as Go's RFC3339Nano UTC ("2024-01-15T10:30:00.123Z",
 * trailing fractional zeros dropped) into buf (>= 32 bytes). */
void s3_format_time(int64_t ms, char *buf, size_t n);

#endif
