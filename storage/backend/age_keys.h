/*
 * storage/backend/age_keys.h: the state of the age layer of one handle
 * (age.c): its recipients from the URL, its identities from the identity
 * file (read at the first use), and the process-wide cache of payload keys.
 *
 * Threads: an age_layer belongs to its handle's thread; the cache has its
 * own mutex, re-initialised in a forked child.
 */
#ifndef LITESTREAM_AGE_KEYS_H
#define LITESTREAM_AGE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/age_stream.h"
#include "storage/backend/backend.h"

struct ls_url;

typedef struct age_layer {
    backend_vtab vt; /* first: the handle's vtable points here */
    const backend_vtab *inner;
    uint8_t rcpt[AGE_MAX_RECIPIENTS][32];
    int nrcpt;
    char *zIdFile;       /* the identity file, or NULL */
    const char *zIdFrom; /* "age_identity_file", "LITESTREAM_AGE_..." */
    char *zOrigin;       /* for messages: what set the age options */
    int nid;             /* identities loaded (0: not yet) */
    uint8_t sk[AGE_MAX_IDENTITIES][32];
    uint8_t pk[AGE_MAX_IDENTITIES][32];
    uint64_t url_hash; /* the replica, for the cache */
    uint64_t ns;       /* the replica and identities, for the cache */
    char err[1024];    /* the layer's last failure ("" if none) */
} age_layer;

/*
 * The layer asked for by URL u (redacted zUrl) and the environment, or
 * *out NULL when none is.  SQLITE_ERROR with *pzErr for a bad age
 * parameter (age.h, age_wrap); SQLITE_NOMEM.
 */
int age_keys_config(const struct ls_url *u, const char *zUrl, age_layer **out,
                    char **pzErr);

/*
 * Reads the identity file once.  SQLITE_OK; SQLITE_AUTH with *pzWhy
 * (sqlite3_mprintf'd, without "litestream: ") when there is none, it
 * cannot be read or parsed, or no identity belongs to a recipient of the
 * URL; SQLITE_NOMEM.
 */
int age_keys_load(age_layer *L, char **pzWhy);

/* What set the identities, for messages ("age_identity_file '/k.txt'"). */
const char *age_keys_origin(const age_layer *L);

/* Wipes n bytes. */
void age_keys_wipe(void *p, size_t n);

/* Frees the layer, secrets wiped; NULL-safe. */
void age_keys_free(age_layer *L);

/* The cached payload key of object key into pk: 1, or 0 when none. */
int age_cache_get(const age_layer *L, const char *key, uint8_t pk[32]);

/* Caches the payload key of object key (once the identities are loaded). */
void age_cache_put(const age_layer *L, const char *key, const uint8_t pk[32]);

#endif
