/*
 * storage/local/pitr.h: the point-in-time recovery settings of one replicated
 * database (compaction levels, snapshots, retention;
 * docs/ltx-format.md 2.2, 2.3). Stored in config.json (sidecar.c), set by the
 * PRAGMAs (vfs/pragma.c), applied by the compactor (compactor.c).  Plain data,
 * any thread.
 */
#ifndef LITESTREAM_PITR_H
#define LITESTREAM_PITR_H

#include <stdint.h>

#include "storage/base/timefmt.h"

#define PITR_OFF (-1) /* a retention that never deletes */

typedef struct ls_pitr {
    int64_t levels[TIMEFMT_MAX_LEVELS]; /* L1..Ln intervals, ms, increasing */
    int nlevels;                        /* 1..8 */
    int64_t snapshot_ms;                /* L9 snapshot interval (24h) */
    int64_t snapshot_retention_ms;      /* snapshots kept (24h), or PITR_OFF */
    int64_t l0_retention_ms; /* L0 kept once compacted (5m); PITR_OFF: the
                              * replica is never pruned at all */
} ls_pitr;

/* Litestream v0.5's defaults: 30s,5m,1h; 24h snapshots kept 24h; L0 5m. */
static inline void
pitr_defaults(ls_pitr *p)
{
    p->levels[0] = 30000;
    p->levels[1] = 300000;
    p->levels[2] = 3600000;
    p->nlevels = 3;
    p->snapshot_ms = 86400000;
    p->snapshot_retention_ms = 86400000;
    p->l0_retention_ms = 300000;
}

#endif
