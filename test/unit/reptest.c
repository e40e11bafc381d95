/*
 * test/unit/reptest.c: shared helpers of the replication-engine tests
 * (reptest.h).
 */
#include "test/unit/reptest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/base/mem.h"
#include "storage/local/wal.h"

void rt_api_init(void); /* rt_api.c */

void
rt_init(void)
{
    rt_api_init();
}

char *
rt_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    char *z = malloc(4096);
    snprintf(z, 4096, "%s/ls-unit-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(z)) {
        perror("mkdtemp");
        exit(2);
    }
    return z;
}

void
rt_rmrf(const char *zDir)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", zDir);
    if (system(cmd) != 0)
        fprintf(stderr, "# cannot remove %s\n", zDir);
}

static void
die(const char *what, char *zErr)
{
    fprintf(stderr, "rt_replicator: %s: %s\n", what, zErr ? zErr : "");
    exit(2);
}

replicator *
rt_replicator(const char *zDbPath, backend *be)
{
    /* Freed by replicator_close() (never started: it only frees). */
    replicator *r = sqlite3_malloc64(sizeof(*r));
    char *zErr = NULL;

    memset(r, 0, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->spool_mu, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->zDbPath = sqlite3_mprintf("%s", zDbPath);
    r->zUrl = sqlite3_mprintf("file:///unused");
    r->zVfs = sqlite3_mprintf("unix");
    r->ntg = 1;
    r->tg[0].r = r; /* the tests drive upload.c for r->tg (replica 0) */
    r->tg[0].zUrl = sqlite3_mprintf("file:///unused");
    r->tg[0].be = be;
    r->opts.sync_interval_ms = 1000;
    r->opts.spool_limit = 1ll << 30;
    r->opts.zVfs = "unix";
    if (url_parse(r->zUrl, &r->tg[0].url, &zErr) != SQLITE_OK)
        die("url", zErr);
    if (sidecar_open(zDbPath, &r->sc, &zErr) != SQLITE_OK)
        die("sidecar", zErr);
    char *zSpool = sqlite3_mprintf("%s/spool", sidecar_dir(r->sc));
    if (spool_open(zSpool, &r->sp, &zErr) != SQLITE_OK)
        die("spool", zErr);
    sqlite3_free(zSpool);
    if (cktab_init(&r->tg[0].ck, sidecar_dir(r->sc)) != SQLITE_OK)
        die("cktab", NULL);
    return r;
}

void
rt_replicator_free(replicator *r)
{
    sidecar *sc = r->sc; /* not the replicator's: the registry owns it */
    replicator_close(r, 0);
    sidecar_close(sc);
}

void
rt_page(uint8_t *page, uint32_t ps, uint32_t pgno, uint32_t version)
{
    for (uint32_t i = 0; i < ps; i++)
        page[i] = (uint8_t)(pgno * 31 + version * 7 + i / 64);
}

int
rt_spool(replicator *r, uint64_t txid, uint32_t flags, uint32_t ps,
         uint32_t commit, const uint32_t *pgnos, uint32_t n, uint32_t version)
{
    uint8_t *pages = malloc((size_t)ps * (n ? n : 1));
    for (uint32_t i = 0; i < n; i++)
        rt_page(pages + (size_t)i * ps, ps, pgnos[i], version);
    spool_txn t = {.txid = txid,
                   .flags = flags,
                   .page_size = ps,
                   .commit = commit,
                   .npages = n,
                   .pgnos = pgnos,
                   .pages = pages,
                   .pos = {1, 2, (uint32_t)txid, 3, 4}};
    char *zErr = NULL;
    int rc = spool_append(r->sp, &t, 0, &zErr);
    sqlite3_free(zErr);
    free(pages);
    return rc;
}

int
rt_apply(const uint8_t *p, size_t n, uint8_t *db, uint32_t max_pages,
         ltx_header *h, ltx_trailer *tr)
{
    struct ltx_membuf mb = {p, n, 0};
    ltx_decoder *dec = NULL;
    int rc = ltx_decoder_open(ltx_membuf_read, &mb, &dec);
    if (rc != SQLITE_OK)
        goto out;
    *h = *ltx_decoder_header(dec);
    uint8_t *page = malloc(h->page_size);
    uint32_t pgno;
    while ((rc = ltx_decoder_page(dec, &pgno, page)) == SQLITE_OK) {
        if (pgno == 0 || pgno > max_pages) {
            rc = SQLITE_CORRUPT;
            break;
        }
        memcpy(db + (size_t)(pgno - 1) * h->page_size, page, h->page_size);
    }
    free(page);
    if (rc == SQLITE_DONE)
        rc = ltx_decoder_close(dec, tr);
out:
    ltx_decoder_free(dec);
    return rc;
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

int
rt_wal_read(const char *zWal, rt_wal *w)
{
    uint8_t h[WAL_HDR_SIZE], fh[WAL_FRAME_HDR_SIZE];
    int fd = open(zWal, O_RDONLY);
    memset(w, 0, sizeof(*w));
    if (fd < 0 || pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        if (fd >= 0)
            close(fd);
        return 1;
    }
    w->page_size = get32(h + 8);
    w->salt1 = get32(h + 16);
    w->salt2 = get32(h + 20);
    w->cksum1 = get32(h + 24);
    w->cksum2 = get32(h + 28);
    while (w->n < RT_WAL_MAX &&
           pread(fd, fh, sizeof(fh),
                 (off_t)wal_frame_offset(w->n + 1, w->page_size)) ==
               (ssize_t)sizeof(fh) &&
           get32(fh + 8) == w->salt1 && get32(fh + 12) == w->salt2) {
        rt_frame *f = &w->f[w->n++];
        f->pgno = get32(fh);
        f->commit = get32(fh + 4);
        f->cksum1 = get32(fh + 16);
        f->cksum2 = get32(fh + 20);
    }
    close(fd);
    return 0;
}

wal_pos
rt_wal_pos(const rt_wal *w, uint32_t i)
{
    wal_pos p = {w->salt1, w->salt2, i, w->cksum1, w->cksum2};
    if (i > 0) {
        p.cksum1 = w->f[i - 1].cksum1;
        p.cksum2 = w->f[i - 1].cksum2;
    }
    return p;
}
