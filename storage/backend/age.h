/*
 * storage/backend/age.h: client-side encryption compatible with age
 * (docs/urls.md, "Encryption"), as a layer over any backend handle.
 *
 * backend_open_url() calls age_wrap() on every handle it opens.  When the
 * URL has age_recipient or age_identity_file, or LITESTREAM_AGE_IDENTITY_FILE
 * is set, the handle's vtable is replaced by a copy whose put, put_file,
 * get, list, list_tree, errmsg and close encrypt, decrypt and map sizes, and
 * whose other entries are the backend's own: the handle stays the
 * backend's, so any other operation reaches the backend unchanged (an
 * operation that carries object content must be added to the layer).
 * Every object put is an age v1 file to the URL's recipients; every get
 * returns plaintext bytes of the range asked, decrypting only the 64 KiB
 * chunks that cover it; listed sizes are plaintext sizes (the layout of
 * storage/backend/age_stream.h makes them computable from the ciphertext
 * size).  Payload keys are cached process-wide per replica, identity set
 * and object name (objects are immutable; a stale key is noticed by its
 * failing tag and read afresh).
 *
 * Threads: a handle is used by one thread at a time (backend.h); the key
 * cache has its own mutex (fork-safe).
 */
#ifndef LITESTREAM_AGE_H
#define LITESTREAM_AGE_H

#include "storage/backend/backend.h"

struct ls_url;

/*
 * Installs the layer on b (opened for u) when the URL or the environment
 * asks for it; no disk or network access (the identity file is read at
 * the first use).  SQLITE_OK (also when nothing is asked); SQLITE_ERROR
 * with *pzErr (sqlite3_mprintf'd) for a bad age parameter: a recipient
 * that is not age1..., more than AGE_MAX_RECIPIENTS, recipients without
 * an identity, an unknown age_* parameter.
 */
int age_wrap(backend *b, const struct ls_url *u, char **pzErr);

/* Non-zero if b encrypts (age_wrap installed the layer). */
int age_active(const backend *b);

/*
 * Checks that object key (an LTX object of the replica) is encrypted if
 * and only if b encrypts, from its first bytes.  SQLITE_OK (also when the
 * object cannot be read: the reads that follow report that); SQLITE_AUTH
 * with *pzErr saying what to change when they disagree.
 */
int age_check_object(backend *b, const char *key, char **pzErr);

#endif
