/*
 * storage/backend/nats.h: one connection to a NATS JetStream object
 * store, the primitives the nats backend (storage/backend/nats_store.c) is
 * built of.  storage/backend/nats.c implements them and is the only file
 * that includes libnats.
 *
 * Errors: every fallible call returns an SQLite result code and leaves its
 * message on the connection (nats_conn_errmsg()), never with a secret:
 * SQLITE_NOTFOUND (no such message/object), SQLITE_IOERR (transport
 * failure or timeout: the connection was dropped, retry), SQLITE_AUTH
 * (credentials refused, permission violation), SQLITE_CANTOPEN (the
 * bucket's stream cannot be used), SQLITE_FULL (the stream or account
 * is out of space), SQLITE_CORRUPT (bad metadata), SQLITE_NOMEM.
 *
 * Threads: one caller thread at a time; libnats runs threads of its own.
 */
#ifndef LITESTREAM_NATS_H
#define LITESTREAM_NATS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/nats_meta.h"
#include "storage/backend/nats_read.h"

typedef struct nats_conn nats_conn;

/* What a connection needs; the strings are copied. */
typedef struct nats_conn_cfg {
    const char *host; /* host name or IP (IPv6 without brackets) */
    int port;
    const char *user;     /* NULL: LITESTREAM_NATS_USERNAME */
    const char *password; /* NULL: LITESTREAM_NATS_PASSWORD */
    const char *creds;    /* NULL: LITESTREAM_NATS_CREDS */
    const char *bucket;
    int64_t timeout_ms; /* connect and request timeout */
} nats_conn_cfg;

/* A new connection object (no I/O); SQLITE_OK or SQLITE_NOMEM. */
int nats_conn_new(const nats_conn_cfg *cfg, nats_conn **out);

/* Closes and frees; NULL-safe. */
void nats_conn_free(nats_conn *c);

/*
 * Connects when not connected (credentials read from the environment at
 * each connect) and makes sure the bucket's stream exists: when create,
 * creating it as the NATS clients create an object store, else answering
 * SQLITE_NOTFOUND when it is missing.
 */
int nats_conn_ready(nats_conn *c, int create);

/* The newest metadata of the object zName (free with nats_meta_clear). */
int nats_conn_meta(nats_conn *c, const char *zName, nats_meta *m);

/*
 * Publishes n bytes on "$O.<bucket>.<zKind>.<zToken>" (zKind "C" or "M"),
 * the metadata with "Nats-Rollup: sub", and waits for the acknowledgement;
 * zWhat names the operation in messages.
 */
int nats_conn_pub(nats_conn *c, const char *zKind, const char *zToken,
                  const void *data, size_t n, const char *zWhat);

/*
 * Purges the chunks of nuid.  When quiet a failure leaves neither a
 * message nor a dropped connection behind, only its code (SQLITE_IOERR
 * when not connected).
 */
int nats_conn_purge(nats_conn *c, const char *zNuid, int quiet);

/*
 * The names of every object that has a metadata subject (deleted ones
 * too), decoded, in no particular order: *pazName is an array of *pn
 * sqlite3_malloc'd strings (free with nats_conn_names_free).
 */
int nats_conn_names(nats_conn *c, char ***pazName, int *pn);
void nats_conn_names_free(char **azName, int n);

/* A chunk source (nats_read.h) for the chunks of nuid; c must outlive it. */
typedef struct nats_conn_src {
    nats_chunk_src src;
    nats_conn *c;
    char *zSubj;
} nats_conn_src;
int nats_conn_src_init(nats_conn *c, const char *zNuid, nats_conn_src *s);
void nats_conn_src_clear(nats_conn_src *s);

/* Records an error of the caller's on the connection; returns rc. */
int nats_conn_err(nats_conn *c, int rc, char *zMsg);

/* The last error's message. */
const char *nats_conn_errmsg(nats_conn *c);

/*
 * Which credential a connection made now would present, named, never its
 * value (a static string; "no credentials" when none), as nb_auth() picks
 * it: the URL's user, else the LITESTREAM_NATS_* variables.
 */
const char *nats_conn_credential(const nats_conn *c);

/* The bucket, and "host:port" for messages. */
const char *nats_conn_bucket(const nats_conn *c);

#endif
