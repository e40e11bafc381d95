/*
 * storage/backend/nats_meta.h: the NATS JetStream object-store layout, the
 * part that needs no connection (used by storage/backend/nats.c and
 * storage/backend/nats_store.c).
 *
 * A bucket B is the stream "OBJ_B" with the subjects "$O.B.C.>" (chunks)
 * and "$O.B.M.>" (metadata).  An object named N has its metadata, a JSON
 * document, as the last message of "$O.B.M.<base64url(N)>" (published with
 * the header "Nats-Rollup: sub", so only the newest stays), and its bytes
 * as the messages of "$O.B.C.<nuid>", in order, each at most the chunk size
 * (128 KiB by default).  A deleted object keeps a metadata message with
 * "deleted": true and no chunks.  This is the layout of the NATS clients'
 * object stores (nats.go, nats.js), so they see our objects and we see
 * theirs.
 *
 * The metadata JSON (written with jansson, storage/base/json.h):
 *
 *   {"name":"app/ltx/0/…ltx",
 *    "headers":{"Litestream-Timestamp":["2026-12-07T01:02:03.456Z"]},
 *    "options":{"max_chunk_size":131072},
 *    "bucket":"B","nuid":"…","size":1234,"mtime":"0001-01-01T00:00:00Z",
 *    "chunks":1,"digest":"SHA-256=<base64url of the SHA-256>"}
 *
 * Threads: pure functions; any thread.
 */
#ifndef LITESTREAM_NATS_META_H
#define LITESTREAM_NATS_META_H

#include <stddef.h>
#include <stdint.h>

#define NATS_META_CHUNK_SIZE (128 * 1024) /* the clients' default */
#define NATS_META_NUID_LEN   22

/* The header Litestream's NATS client stores the creation time in. */
#define NATS_META_TIME_HEADER "Litestream-Timestamp"

/* One object's metadata. */
typedef struct nats_meta {
    char *name;          /* the object's name (sqlite3_malloc'd) */
    char *nuid;          /* chunk subject token; NULL for a deleted object */
    char *digest;        /* "SHA-256=…" or NULL */
    uint64_t size;       /* bytes */
    uint64_t chunks;     /* number of chunk messages */
    uint64_t chunk_size; /* options.max_chunk_size, 0 if not given */
    int64_t created_ms;  /* Litestream-Timestamp header, -1 if none
                            (or before 1970) */
    int deleted;         /* "deleted": true */
    int link;            /* options.link: a link to another object */
} nats_meta;

/*
 * Decodes a metadata document of n bytes (not NUL-terminated).  Returns
 * SQLITE_OK with *m filled (free with nats_meta_clear()), SQLITE_CORRUPT
 * with *pzErr ("litestream: …", sqlite3_mprintf'd) when the document is
 * not a valid object-store metadata: not JSON, no name, a size or chunk
 * count that is not a non-negative integer, chunks without a nuid, a nuid
 * that is not a subject token, a non-empty object without chunks or chunks
 * for an empty one.  SQLITE_NOMEM.  *m is zeroed on failure.
 */
int nats_meta_decode(const void *data, size_t n, nats_meta *m, char **pzErr);

/*
 * Encodes m as the metadata document of bucket zBucket (sqlite3_malloc'd
 * text in *pzOut).  A deleted object is written with size and chunks 0 and
 * no digest.  SQLITE_OK or SQLITE_NOMEM.
 */
int nats_meta_encode(const nats_meta *m, const char *zBucket, char **pzOut);

/* Frees what m holds and zeroes it; NULL-safe. */
void nats_meta_clear(nats_meta *m);

/*
 * base64url of n bytes with '=' padding (Go's base64.URLEncoding), as a
 * sqlite3_malloc'd string; NULL when out of memory.
 */
char *nats_b64url(const void *data, size_t n);

/*
 * Decodes base64url text z (padding optional) into a sqlite3_malloc'd,
 * NUL-terminated buffer (*pOut, *pn bytes).  SQLITE_CORRUPT on a character
 * outside the alphabet or a bad length; SQLITE_NOMEM.
 */
int nats_b64url_decode(const char *z, uint8_t **pOut, size_t *pn);

/* A new random nuid: NATS_META_NUID_LEN base62 characters and a NUL. */
void nats_nuid(char out[NATS_META_NUID_LEN + 1]);

/* "SHA-256=<base64url>" of the data, sqlite3_malloc'd; NULL on OOM. */
char *nats_digest(const void *data, size_t n);

/*
 * 1 if z is a valid bucket name (letters, digits, '-' and '_', 1..64
 * characters), else 0.
 */
int nats_bucket_valid(const char *z);

#endif
