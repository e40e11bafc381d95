/*
 * storage/local/cktab.c: the persisted per-page checksum table (cktab.h).
 * Replicator thread only.
 */
#include "storage/base/fsutil.h"
#include "storage/local/cktab.h"
#include "storage/ltx/ltx.h"
#include "storage/base/sqlite.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define CK_MAGIC 0x4c53434bu /* "LSCK" */
#define CK_HDR   32

typedef struct ck_hdr {
    uint32_t magic;
    uint32_t npages;
    uint64_t txid;
    uint64_t sum;
    uint64_t reserved;
} ck_hdr;

int
cktab_init(cktab *t, const char *zDir)
{
    return cktab_init_n(t, zDir, 0);
}

int
cktab_init_n(cktab *t, const char *zDir, int n)
{
    memset(t, 0, sizeof(*t));
    t->zPath = n ? sqlite3_mprintf("%s/checksums-%d", zDir, n + 1)
                 : sqlite3_mprintf("%s/checksums", zDir);
    return t->zPath ? SQLITE_OK : SQLITE_NOMEM;
}

void
cktab_free(cktab *t)
{
    sqlite3_free(t->c);
    sqlite3_free(t->zPath);
    memset(t, 0, sizeof(*t));
}

int
cktab_ensure(cktab *t, uint32_t npages)
{
    if (npages <= t->cap && t->c)
        return SQLITE_OK;
    uint64_t *c = sqlite3_realloc64(t->c, ((uint64_t)npages + 1) * 8);
    if (!c)
        return SQLITE_NOMEM;
    uint32_t from = t->c ? t->cap + 1 : 0;
    memset(c + from, 0, (size_t)(npages + 1 - from) * 8);
    t->c = c;
    t->cap = npages;
    return SQLITE_OK;
}

void
cktab_load(cktab *t, uint64_t txid)
{
    ck_hdr h;
    int fd = open(t->zPath, O_RDONLY | O_CLOEXEC);
    t->valid = 0;
    if (fd < 0)
        return;
    if (fs_pread_all(fd, &h, sizeof(h), 0) != 0 || h.magic != CK_MAGIC ||
        h.txid != txid || txid == 0 || cktab_ensure(t, h.npages) != SQLITE_OK)
        goto out;
    memset(t->c, 0, ((size_t)t->cap + 1) * 8);
    if (h.npages &&
        fs_pread_all(fd, t->c + 1, (size_t)h.npages * 8, CK_HDR) != 0)
        goto out;
    uint64_t sum = LTX_CHECKSUM_FLAG;
    for (uint32_t p = 1; p <= h.npages; p++)
        if (t->c[p])
            sum = ltx_checksum_fold(sum, t->c[p]);
    if (sum != h.sum)
        goto out; /* torn by a crash: not trusted */
    t->commit = h.npages;
    t->sum = h.sum;
    t->txid = txid;
    t->valid = 1;
out:
    close(fd);
}

int
cktab_save(cktab *t, uint64_t txid, const uint32_t *changed, size_t n)
{
    int rc = SQLITE_IOERR;
    ck_hdr h = {CK_MAGIC, t->commit, 0, t->sum, 0};
    int fd = open(t->zPath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        t->rewrite = 1;
        return SQLITE_IOERR;
    }
    /* 1. invalidate, 2. entries, 3. size, 4. header with the TXID. */
    if (fs_pwrite_all(fd, &h, sizeof(h), 0) != 0)
        goto out;
    if (t->rewrite)
        changed = NULL; /* an earlier save failed: its entries are missing */
    if (!changed) {
        if (t->commit &&
            fs_pwrite_all(fd, t->c + 1, (size_t)t->commit * 8, CK_HDR) != 0)
            goto out;
    } else {
        /* `changed` is ascending: write contiguous runs at once. */
        for (size_t i = 0; i < n;) {
            uint32_t p = changed[i], q = p;
            while (i + 1 < n && changed[i + 1] == q + 1)
                q = changed[++i];
            i++;
            if (p == 0 || p > t->commit)
                continue;
            if (q > t->commit)
                q = t->commit;
            if (fs_pwrite_all(fd, &t->c[p], (size_t)(q - p + 1) * 8,
                              CK_HDR + (off_t)(p - 1) * 8) != 0)
                goto out;
        }
    }
    if (ftruncate(fd, CK_HDR + (off_t)t->commit * 8) != 0)
        goto out;
    h.txid = txid;
    if (fs_pwrite_all(fd, &h, sizeof(h), 0) != 0)
        goto out;
    t->txid = txid;
    rc = SQLITE_OK;
out:
    t->rewrite = rc != SQLITE_OK;
    close(fd);
    return rc;
}
