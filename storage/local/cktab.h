/*
 * storage/local/cktab.h: the per-page checksum table of the replicated state.
 *
 * LTX files carry the database's rolling checksum before and after they
 * apply (docs/ltx-format.md 1.7).  Keeping it current without re-reading old
 * pages needs the checksum of every page as the replica has it: 8 bytes per
 * page, kept in memory and persisted in `<sidecar>/checksums` after every
 * acknowledged upload, so a restarted process continues without a full image.
 *
 * File layout (native byte order; the file never leaves the machine):
 *   u32 magic | u32 page count | u64 TXID | u64 database checksum |
 *   u64 reserved | page count x u64 (page 1 first)
 * A save first zeroes the TXID, then writes the entries, then the header, so
 * a process that dies mid-save leaves a table that does not load; an OS
 * crash that tears the file is caught because the entries must fold to the
 * stored checksum.  Replicator thread only.
 */
#ifndef LITESTREAM_CKTAB_H
#define LITESTREAM_CKTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct cktab {
    uint64_t *c;     /* c[pgno], 1-based; c[0] unused */
    uint32_t cap;    /* entries allocated beyond c[0] */
    uint32_t commit; /* database size in pages */
    uint64_t sum;    /* rolling database checksum */
    int valid;       /* c and sum describe the state at `txid` */
    uint64_t txid;   /* the TXID the table belongs to (when valid) */
    int rewrite;     /* a save failed or the file is gone: write every entry */
    char *zPath;
} cktab;

/* Prepares an empty, invalid table stored at `<zDir>/checksums`. */
int cktab_init(cktab *t, const char *zDir);
/* The same for replica n (0-based) of a URL list: `<zDir>/checksums-<n+1>`
 * (n = 0: `checksums`). */
int cktab_init_n(cktab *t, const char *zDir, int n);
void cktab_free(cktab *t);

/*
 * Loads the stored table if it belongs to `txid` and is intact; sets
 * t->valid accordingly.  Never fails: an unusable file just means invalid.
 */
void cktab_load(cktab *t, uint64_t txid);

/* Grows the table to hold pages 1..npages (new entries 0). */
int cktab_ensure(cktab *t, uint32_t npages);

/*
 * Stores the table as the state at `txid`.  `changed` lists the pages whose
 * entries changed since the last save (NULL: rewrite every entry).
 * SQLITE_OK or SQLITE_IOERR (the in-memory table stays valid either way).
 */
int cktab_save(cktab *t, uint64_t txid, const uint32_t *changed, size_t n);

#endif
