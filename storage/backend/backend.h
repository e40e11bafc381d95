/*
 * storage/backend/backend.h: the replica storage vtable (docs/architecture.md
 * section 5).
 *
 * A backend stores opaque objects under keys relative to the replica root
 * ("ltx/0/0000000000000001-0000000000000001.ltx" for the file backend; the
 * object layout lives in storage/backend/layout.c, not in the backends).  Each
 * backend is a const struct of function pointers with designated
 * initializers, one backend per file; storage/backend/backend.c is the only
 * place that maps a URL scheme (parsed by storage/backend/url.c) to a backend.
 * Core code never branches on a backend's name, only on its capability bits.
 *
 * Threads: a backend handle is used by one thread at a time (the replicator
 * thread, or the application thread running litestream_restore()); a
 * backend may use threads of its own internally.
 *
 * Errors: every fallible call returns an SQLite result code and leaves a
 * human-readable message on the handle (backend_errmsg()), never containing
 * a secret.  Codes: SQLITE_NOTFOUND (no such object), SQLITE_IOERR
 * (transient or I/O failure, worth retrying), SQLITE_AUTH (credentials
 * refused), SQLITE_CANTOPEN (root cannot be created/opened), SQLITE_FULL,
 * SQLITE_NOMEM, SQLITE_MISUSE.
 */
#ifndef LITESTREAM_BACKEND_H
#define LITESTREAM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

struct ls_url;

/* Capability bits. */
#define BACKEND_CAP_RANGE  0x01 /* get() honours byte ranges cheaply */
#define BACKEND_CAP_ATOMIC 0x02 /* put() is atomic (never half-written) */
/*
 * list() reports the created_ms given to put(), to the millisecond.  Without
 * it (S3: LastModified is the upload time, in whole seconds) time-targeted
 * plans read the exact times from the objects' LTX headers.
 */
#define BACKEND_CAP_EXACT_TIME 0x04

/* One listed object. */
typedef struct backend_obj {
    char *key;          /* relative to the listed prefix; sqlite3_free()d */
    uint64_t size;      /* bytes */
    int64_t created_ms; /* creation/modification time, Unix ms */
} backend_obj;

/* Request counters, exposed in litestream_status(). */
typedef struct backend_counters {
    uint64_t n_put, n_get, n_list, n_delete;
    uint64_t bytes_up, bytes_down;
} backend_counters;

typedef struct backend backend;

typedef struct backend_vtab {
    const char *name; /* for messages only */
    unsigned caps;
    /*
     * printf format of a level's directory under the root, taking the level
     * as an int: "ltx/%d/" for file-like backends, "%04x/" for S3
     * (docs/ltx-format.md section 2.1).  Used by storage/backend/layout.c only.
     */
    const char *level_fmt;
    /*
     * Opens a handle for the replica rooted at the parsed URL (url.h).
     * Must not touch the network or the disk: errors surface on first use.
     * A configuration error (bad parameter) returns SQLITE_ERROR with
     * *pzErr (sqlite3_mprintf'd, naming the parameter; pzErr not NULL).
     */
    int (*open)(const struct ls_url *url, backend **out, char **pzErr);
    /* Frees the handle, the head's url included. */
    void (*close)(backend *);
    /*
     * Stores `n` bytes under `key`, atomically (readers never see a partial
     * object), creating intermediate directories/prefixes.  `created_ms`
     * is recorded as the object's creation time (file mtime, S3 metadata).
     */
    int (*put)(backend *, const char *key, const void *data, size_t n,
               int64_t created_ms);
    /*
     * Optional: as put(), with the content in the local file zSrc (n
     * bytes), which the backend may consume (rename into place, delete).
     * NULL: backend_put_file() reads the file and calls put().
     */
    int (*put_file)(backend *, const char *key, const char *zSrc, uint64_t n,
                    int64_t created_ms);
    /*
     * Reads [offset, offset+len) of `key` into a new buffer (*out, *nOut;
     * free with sqlite3_free).  len == UINT64_MAX reads to the end.  A range
     * past the end is truncated to the object.  SQLITE_NOTFOUND if absent.
     */
    int (*get)(backend *, const char *key, uint64_t offset, uint64_t len,
               uint8_t **out, size_t *nOut);
    /*
     * Lists the objects directly under `prefix` (a "directory" ending in
     * '/'), in key order.  *objs is an array of *n entries; free with
     * backend_objs_free().  A missing prefix is an empty list, not an error.
     */
    int (*list)(backend *, const char *prefix, backend_obj **objs, int *n);
    /*
     * Optional: lists every object below `prefix` at any depth (keys
     * relative to it, in key order), in as few requests as the store
     * allows: one ListObjectsV2 page per 1000 objects instead of one
     * listing per level.  NULL: layout.c lists level by level.
     */
    int (*list_tree)(backend *, const char *prefix, backend_obj **objs, int *n);
    /*
     * Optional: lists the directories (common prefixes) directly under
     * `prefix`, as objects whose key is the name without the slash (size
     * 0), in key order.  NULL: backend_list_dirs() derives them from
     * list_tree.  Used to find Litestream v0.3 generations.
     */
    int (*list_dirs)(backend *, const char *prefix, backend_obj **objs, int *n);
    /* Deletes keys; a missing key is not an error. */
    int (*del)(backend *, const char *const *keys, int n);
    /* Message of the last failure on this handle (static if none). */
    const char *(*errmsg)(backend *);
    /* Counters of this handle. */
    const backend_counters *(*counters)(backend *);
    /*
     * Optional: which credential this handle uses, named, never its value
     * ("the service-account key in GOOGLE_APPLICATION_CREDENTIALS"), as a
     * static string; NULL: the backend has none to name.
     */
    const char *(*credential)(backend *);
    /*
     * Optional conditional writes, for the writer lease
     * (storage/replicate/lease.c; docs/architecture.md 5.1).  A version is
     * an opaque token (an ETag, a generation, or the content's CRC-64).
     *
     * get_ver: reads the whole of `key` and its version (*pzVer,
     * sqlite3_free).  SQLITE_NOTFOUND if absent.
     * put_if: stores `data` under `key` only if it is absent (zVer NULL)
     * or its version is zVer, atomically with the check; *pzVer gets the
     * new version.  SQLITE_CONSTRAINT: the condition did not hold (the
     * object exists, has another version, or is gone).
     * Both NULL: backend_put_if() compares by content itself, through
     * rename_excl when there is one, else without atomicity.
     */
    int (*get_ver)(backend *, const char *key, uint8_t **out, size_t *nOut,
                   char **pzVer);
    int (*put_if)(backend *, const char *key, const void *data, size_t n,
                  const char *zVer, char **pzVer);
    /*
     * Optional: renames zFrom to zTo only if zTo does not exist, atomically
     * (only one of two renames of one source succeeds).  SQLITE_NOTFOUND:
     * no zFrom; SQLITE_CONSTRAINT: zTo exists.
     */
    int (*rename_excl)(backend *, const char *zFrom, const char *zTo);
} backend_vtab;

/*
 * The common head of every backend handle.  A backend's open() zeroes it
 * and sets vt; backend_open_url() then sets url; the backend's close()
 * frees url (sqlite3_free).
 */
struct backend {
    const backend_vtab *vt;
    char *url; /* the replica URL, redacted, for messages; may be NULL */
};

/* The backends (one file each). */
extern const backend_vtab backend_file_vtab;    /* file.c */
extern const backend_vtab backend_s3_vtab;      /* s3.c */
extern const backend_vtab backend_gs_vtab;      /* s3.c */
extern const backend_vtab backend_abs_vtab;     /* azure.c */
extern const backend_vtab backend_oss_vtab;     /* s3.c */
extern const backend_vtab backend_sftp_vtab;    /* sftp.c */
extern const backend_vtab backend_webdav_vtab;  /* webdav.c */
extern const backend_vtab backend_webdavs_vtab; /* webdav.c */
extern const backend_vtab backend_nats_vtab;    /* nats_store.c, nats.c */

/* Frees a list returned by list(). */
void backend_objs_free(backend_obj *objs, int n);

/*
 * Opens the backend for a parsed URL: the one registry of schemes.  Returns
 * SQLITE_OK and *out (close with backend_close()), or an error code with
 * *pzErr (sqlite3_mprintf'd; may be NULL) saying why, e.g. "litestream: the
 * 's3' backend is not available in this build".  Touches neither disk nor
 * network.
 */
int backend_open_url(const struct ls_url *u, backend **out, char **pzErr);

/* As backend_open_url() for a URL string (parsed with url_parse()). */
int backend_open(const char *zUrl, backend **out, char **pzErr);

/* Closes a handle (vt->close); NULL-safe. */
void backend_close(backend *b);

/*
 * Convenience wrappers of the vtable calls (same contracts as above); they
 * only dispatch, so the caller still owns every buffer it gets back.
 */
/*
 * Stores the content of local file zSrc (n bytes) under key; zSrc is gone
 * afterwards whatever the result.  Uses the backend's put_file when it has
 * one, else reads the file into memory for put().
 */
int backend_put_file(backend *b, const char *key, const char *zSrc, uint64_t n,
                     int64_t created_ms);

int backend_put(backend *b, const char *key, const void *data, size_t n,
                int64_t created_ms);
int backend_get(backend *b, const char *key, uint64_t offset, uint64_t len,
                uint8_t **out, size_t *nOut);
int backend_list(backend *b, const char *prefix, backend_obj **objs, int *n);
int backend_del(backend *b, const char *const *keys, int n);
/*
 * The directories directly under prefix (vtab list_dirs, else the first
 * path components of a list_tree listing), as list() returns objects.
 * SQLITE_MISUSE with a message when the backend can do neither.
 */
int backend_list_dirs(backend *b, const char *prefix, backend_obj **objs,
                      int *n);
const char *backend_errmsg(backend *b);
/*
 * backend_errmsg() without its leading "litestream: ", for messages that
 * quote it after their own prefix ("litestream: upload of x failed: <why>").
 */
const char *backend_why(backend *b);
const backend_counters *backend_get_counters(backend *b);

/*
 * Conditional writes (vtab get_ver / put_if above), whatever the backend
 * offers: its own (an ETag, a generation), else the content's CRC-64 as the
 * version, compared and replaced through rename_excl (put to a temporary
 * key, rename the current object aside, check it, rename the new one into
 * place: storage/backend/cond.c), else compared and replaced without
 * atomicity.  backend_put_if() returns SQLITE_CONSTRAINT when the
 * condition does not hold.
 */
int backend_get_ver(backend *b, const char *key, uint8_t **out, size_t *nOut,
                    char **pzVer);
int backend_put_if(backend *b, const char *key, const void *data, size_t n,
                   const char *zVer, char **pzVer);
/*
 * How backend_put_if() holds its condition on b: "native" (the store checks
 * it), "rename" (exclusive renames), or "none" (checked by reading first:
 * two writers at the same moment may both succeed).
 */
const char *backend_cond_kind(const backend *b);

/* The redacted URL of the handle, or "the replica" if unknown. */
const char *backend_url(const backend *b);

/* The handle's credential, named (vtab credential), or NULL. */
const char *backend_credential(backend *b);

#endif
