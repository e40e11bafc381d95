/*
 * storage/backend/azure_client.h: the Azure Blob Storage REST client under
 * the abs backend (storage/backend/azure.c): account, container and
 * endpoint from the URL, credentials, Shared Key signing or a SAS token on
 * every attempt, retries, and Azure error responses turned into SQLite
 * codes and messages.
 *
 *   abs://ACCOUNT@CONTAINER/PATH    (Litestream's order)
 *   abs://CONTAINER/PATH            account from AZURE_STORAGE_ACCOUNT
 *   ...?endpoint=http://127.0.0.1:10000/devstoreaccount1   (Azurite)
 *
 * Credentials are read from the environment at every request (fixing them
 * takes effect without reopening the replica): a SAS token
 * (LITESTREAM_AZURE_SAS_TOKEN, else AZURE_STORAGE_SAS_TOKEN) wins over a
 * Shared Key (LITESTREAM_AZURE_ACCOUNT_KEY, else AZURE_STORAGE_KEY).  They
 * never appear in a message.
 *
 * Threads: az_call_do() may run on several threads at once on one client
 * (blocks of one upload); counters are atomic.
 */
#ifndef LITESTREAM_AZURE_CLIENT_H
#define LITESTREAM_AZURE_CLIENT_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/backend/http.h"
#include "storage/backend/sigv4.h"

struct ls_url;

typedef struct az_client {
    http_client *http;
    char *account; /* "" when only a SAS token can authenticate */
    char *container;
    char *prefix;        /* the URL path ("" or "db"), no slashes at the ends */
    char *base;          /* "http[s]://host[:port][/path]", no trailing '/' */
    char *base_path;     /* the path part of base ("" or "/devstoreaccount1") */
    uint64_t block_size; /* Put Block + Put Block List above this */
    int block_parallel;  /* blocks in flight */
    int max_results;     /* List Blobs page size (0: server default) */
    backend_counters counters; /* updated atomically */
} az_client;

/* One Blob service operation; everything decoded (the client encodes). */
typedef struct az_call {
    const char *method;
    const char *blob; /* full blob name, or NULL for the container */
    const sigv4_pair *query;
    int nquery;
    const sigv4_pair *headers; /* extra headers (x-ms-*, Content-Type) */
    int nheader;
    const void *body; /* as http_req: memory, or fd + offset */
    int body_fd;
    uint64_t body_off;
    uint64_t nbody;
} az_call;

/*
 * Configures a client from an abs:// URL (no I/O): account and container
 * (checked against Azure's naming rules; the old order
 * abs://CONTAINER@ACCOUNT is recognised and refused with a message that
 * says so), endpoint, block_size (default 16 MiB), concurrency (default
 * 4), timeout, retries, max_results.  SQLITE_ERROR with *pzErr naming the
 * bad part; SQLITE_NOMEM.
 */
int az_client_init(az_client *c, const struct ls_url *u, char **pzErr);

/* Which credential c's requests use, named (static). */
const char *az_credential(const az_client *c);

/* Frees what the client holds (not c itself); safe on a zeroed client. */
void az_client_clear(az_client *c);

/*
 * Runs the call with retries.  SQLITE_OK for a 2xx answer (response in
 * *resp; clear it with http_resp_clear()); otherwise the last response is
 * in *resp and:
 *   SQLITE_NOTFOUND  404 BlobNotFound (or 404 to a HEAD)
 *   SQLITE_AUTH      401, 403, missing or unusable credentials
 *   SQLITE_CANTOPEN  404 ContainerNotFound
 *   SQLITE_IOERR     transport failures, 5xx and 429 after the last retry
 *   SQLITE_ERROR     any other 4xx
 * with *pzErr: "litestream: Azure <OP> '<blob>' in container '<c>' failed:
 * HTTP <status> <Code>: <Message>" or the transport error.
 */
int az_call_do(az_client *c, const az_call *call, http_resp *resp,
               char **pzErr);

/*
 * Decodes one List Blobs answer z[0..nz) (storage/backend/azure_list.c):
 * appends its blobs, names without their first nPrefix bytes, to *objs
 * (*n used of *nAlloc; grow with sqlite3_realloc64, free with
 * backend_objs_free()), and the next page's marker (or NULL) into *pzNext.
 * SQLITE_OK; SQLITE_CORRUPT with *pzErr (malformed XML); SQLITE_NOMEM.
 */
int az_list_decode(const char *z, size_t nz, size_t nPrefix, backend_obj **objs,
                   int *n, int *nAlloc, char **pzNext, char **pzErr);

/* Unix ms of an HTTP date ("Mon, 07 Dec 2026 01:43:00 GMT"); 0 if z is not
 * one (years 1970-9999). */
int az_http_date(const char *z, int64_t *ms);

#endif
