/*
 * storage/restore/v03.h: reading replicas written by Litestream v0.3
 * (docs/ltx-format.md 5), so that litestream_restore() can migrate them
 * and litestream_ltx() can list them.
 *
 * Layout (identical on every backend, below the replica root):
 *   generations/<gen>/snapshots/<index %08x>.snapshot.lz4
 *   generations/<gen>/wal/<index %08x>_<offset %08x>.wal.lz4
 * gen is 16 lowercase hex digits; index counts WAL restarts within the
 * generation; offset is the segment's byte offset in that WAL.  Each object
 * is an LZ4 frame: a snapshot holds the database file, a segment raw WAL
 * bytes (the 32-byte WAL header when offset is 0, then whole frames).  An
 * object's time is its listing time (file mtime, S3 LastModified).
 *
 * Restore (as v0.3.13's Replica.Restore, with checks it lacks): pick the
 * generation (latest: the one updated last; at a time T: among those whose
 * objects span T the one updated last, else the one updated last before T),
 * its newest snapshot (created at or before T), then the WAL segments in
 * (index, offset) order from the snapshot's index on, up to the first one
 * created after T.  Each WAL index is applied as SQLite's checkpoint would:
 * frames are checked (salts, checksum chain) and applied up to the last
 * commit frame; the database ends at that commit's size.
 *
 * Threads: the calling thread (and the fetcher's pool during a restore).
 */
#ifndef LITESTREAM_RESTORE_V03_H
#define LITESTREAM_RESTORE_V03_H

#include <stdint.h>

#include "storage/backend/backend.h"
#include "storage/ltx/ltx.h"

struct ls_url;

#define V03_PREFIX "generations/"

/* One object of a v0.3 replica. */
typedef struct v03_obj {
    char gen[17]; /* 16 hex digits */
    int snapshot; /* 1: a snapshot, 0: a WAL segment */
    uint32_t index;
    uint64_t offset; /* WAL segments: byte offset in the WAL */
    uint64_t size;   /* bytes (compressed) */
    int64_t created_ms;
} v03_obj;

/*
 * Parses a key relative to "generations/": "<gen>/snapshots/<name>" or
 * "<gen>/wal/<name>".  Returns 1 and fills *o (but size and created_ms),
 * else 0.
 */
int v03_parse_key(const char *zKey, v03_obj *o);

/* Writes the key of o relative to the replica root into buf (n bytes). */
void v03_key(const v03_obj *o, char *buf, size_t n);

/*
 * Lists every snapshot and WAL segment of every generation, sorted by
 * generation, then snapshots (by index) before segments (by index,
 * offset).  Returns SQLITE_OK and *out (sqlite3_free() it; NULL when *n is
 * 0), or an error with *pzErr (sqlite3_mprintf'd): the backend's, or
 * SQLITE_MISUSE when the backend cannot list directories.
 */
int v03_list(backend *b, v03_obj **out, int *n, char **pzErr);

/*
 * Whether the replica is a v0.3 one: no LTX object, and at least one
 * generation.  *yes is 0 on any listing error (the LTX path reports it).
 */
void v03_detect(backend *b, int *yes);

/* What a v0.3 restore did. */
typedef struct v03_result {
    char gen[17];
    uint32_t snapshot_index;
    uint32_t index;     /* the last WAL index applied (or the snapshot's) */
    uint64_t offset;    /* the WAL bytes of that index read */
    int files;          /* objects read */
    uint32_t page_size; /* of the restored database */
    uint32_t pages;     /* its size in pages */
    int64_t created_ms; /* time of the newest object read */
} v03_result;

/*
 * Restores the v0.3 replica b (URL u, for the fetcher's own handles) into
 * the empty file fd, whose path is zTmp (a "<zTmp>-v03" scratch file holds
 * the frames of a transaction until its commit frame is seen): the latest
 * state (target_ms 0) or the state at target_ms (Unix ms).  target_txid
 * must be 0 (v0.3 has no TXIDs).  The file is written, not truncated or
 * synced: the caller truncates it to res->pages * res->page_size and
 * checks it.  Returns SQLITE_OK and *res, or an error with *pzErr naming
 * the object and what is wrong with it.
 */
int v03_restore(const struct ls_url *u, backend *b, int fd, const char *zTmp,
                uint64_t target_txid, int64_t target_ms, int parallel,
                v03_result *res, char **pzErr);

/* ---- v03_wal.c: applying the objects ---------------------------------- */

typedef struct v03_apply v03_apply;

/*
 * Starts applying into fd: the snapshot comes first (v03_apply_snapshot),
 * then each WAL index (v03_apply_index_begin, segments, _end).  zScratch
 * is the path of the scratch file for uncommitted frames.
 */
int v03_apply_open(int fd, const char *zScratch, v03_apply **out, char **pzErr);

/*
 * Copies the snapshot (an ltx_read_fn stream of the LZ4 object named
 * zKey) into the file; it must be an SQLite database.
 */
int v03_apply_snapshot(v03_apply *a, ltx_read_fn xRead, void *ctx,
                       const char *zKey);

/* Starts WAL index `index` (its segments follow, from offset 0). */
void v03_apply_index_begin(v03_apply *a, uint32_t index);

/*
 * Applies one WAL segment (an LZ4 object named zKey whose name says it
 * starts at `offset`): it must start where the index's bytes so far end;
 * its frames are checked and each committed transaction written.
 */
int v03_apply_segment(v03_apply *a, ltx_read_fn xRead, void *ctx,
                      const char *zKey, uint64_t offset);

/* Ends the index: its bytes must end on a frame boundary. */
int v03_apply_index_end(v03_apply *a);

/* The database's page size and size in pages so far; WAL bytes read of
 * the current index. */
void v03_apply_state(const v03_apply *a, uint32_t *page_size, uint32_t *pages,
                     uint64_t *wal_bytes);

/* The message of the last failure (sqlite3_mprintf'd, taken: the caller
 * frees it), or NULL. */
char *v03_apply_take_err(v03_apply *a);

void v03_apply_free(v03_apply *a);

#endif
