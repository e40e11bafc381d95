/*
 * storage/restore/fetch.h: reads several replica objects as sequential streams,
 * fetched ahead in parallel.
 *
 * A fetcher serves n objects (key, size).  Each is consumed front to back
 * through fetch_read(), an ltx_read_fn, so a decoder can stream an object
 * of any size.  Behind it a pool of threads, each with its own backend
 * handle (handles are single-threaded, backend.h), fetches byte ranges of
 * FETCH_CHUNK bytes ahead of the reader: up to FETCH_DEPTH chunks per
 * object, within a global budget of FETCH_BUDGET bytes in flight (a reader
 * waiting for a chunk that nobody requested yet always gets it, so memory
 * is bounded and the readers never deadlock).  Small objects are one
 * request each, so a plan of many small objects downloads in parallel.
 *
 * Threads: fetch_open(), fetch_read() of any stream, fetch_stream_err() and
 * fetch_close() belong to one consumer thread; the pool threads only run
 * backend gets.
 */
#ifndef LITESTREAM_FETCH_H
#define LITESTREAM_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "storage/backend/backend.h"

#define FETCH_CHUNK  (8u << 20)    /* bytes per range request */
#define FETCH_DEPTH  4             /* chunks ahead per object */
#define FETCH_BUDGET (64ull << 20) /* read-ahead bytes in flight, total */

struct ls_url;
typedef struct fetcher fetcher;
typedef struct fetch_stream fetch_stream;

/*
 * Starts fetching the n objects keys[i] of sizes[i] bytes from the replica
 * u, with nThread pool threads (0: fetch on the consumer's thread, on
 * demand, through b).  b is the consumer's handle; pool threads open their
 * own.  keys are copied.  Returns SQLITE_OK and *out (free with
 * fetch_close()), or SQLITE_NOMEM / the backend open error with *pzErr.
 * If threads cannot be created the fetcher runs with fewer (maybe none).
 */
int fetch_open(const struct ls_url *u, backend *b, const char *const *keys,
               const uint64_t *sizes, int n, int nThread, fetcher **out,
               char **pzErr);

/* The stream of object i (0 <= i < n); pass it as fetch_read's ctx. */
fetch_stream *fetch_stream_at(fetcher *f, int i);

/*
 * ltx_read_fn over a stream: copies up to n bytes into buf and sets *nRead
 * (< n only at the end of the object).  Returns 0, or 1 if fetching failed
 * (the message is then fetch_stream_err()).
 */
int fetch_read(void *ctx, void *buf, size_t n, size_t *nRead);

/* The stream's fetch error message, or NULL if none. */
const char *fetch_stream_err(const fetch_stream *s);

/* Its result code (SQLITE_NOTFOUND: the object vanished), or SQLITE_OK. */
int fetch_stream_rc(const fetch_stream *s);

/* Stops the pool, joins it and frees everything; NULL-safe. */
void fetch_close(fetcher *f);

#endif
