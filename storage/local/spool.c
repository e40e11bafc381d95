/*
 * storage/local/spool.c: the spool log (spool.h).
 *
 * Record layout (all big-endian):
 *   u32 magic "LSR1" | u32 flags | u64 txid | u32 page_size | u32 commit |
 *   u32 npages | u32 more | u32 salt1 | u32 salt2 | u32 frame |
 *   u32 cksum1 | u32 cksum2 | u32 reserved | npages x (u32 pgno) |
 *   npages x page | u64 CRC-64 of all the preceding bytes of the record
 * `more` is txid_max - txid (0 for one transaction: records written before
 * runs existed read as runs of one).
 *
 * Threads: one thread at a time per handle (the replicator's, under its
 * spool lock); spool_bytes() from any thread (an atomic).
 */
#include "storage/base/fsutil.h"
#include "storage/base/killpoint.h"
#include "storage/base/mem.h"
#include "storage/local/spool.h"
#include "storage/ltx/crc64.h"
#include "storage/base/sqlite.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_MAGIC 0x4c535231u
#define REC_HDR   56
#define SEG_LIMIT (64ull << 20)

typedef struct seg {
    struct seg *next;
    char *name;       /* file name inside the spool dir */
    int pid;          /* owner */
    int own;          /* created by this handle */
    int fd;           /* read fd (-1 until needed) */
    uint64_t scanned; /* bytes indexed so far */
    uint64_t max_txid;
    uint64_t min_txid; /* first record's TXID (0 until scanned) */
    int stuck;         /* a bad record ends it */
} seg;

typedef struct ent {
    uint64_t txid;
    uint64_t max;   /* its last TXID */
    size_t best;    /* index of the entry reaching furthest among 0..this */
    uint32_t flags; /* the record's SPOOL_F_* */
    seg *s;
    uint64_t off;
    uint64_t len;
} ent;

struct spool {
    char *zDir;
    seg *segs;
    seg *cur; /* this process's segment being appended */
    int cur_fd;
    uint64_t cur_size;
    int seq;
    ent *ents;
    size_t nent, cap;
    int sorted;
    uint64_t bytes; /* written by the handle's thread, read by any */
    uint8_t *wbuf;  /* the record writer's buffer, kept between records */
    uint8_t *rbuf;  /* the reader's buffer for big records (LAZY_BYTES) */
};

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t
get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | p[3];
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint64_t
get64(const uint8_t *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

int
spool_open(const char *zDir, spool **out, char **pzErr)
{
    spool *sp = sqlite3_malloc64(sizeof(*sp));
    *out = NULL;
    if (!sp)
        return SQLITE_NOMEM;
    memset(sp, 0, sizeof(*sp));
    sp->cur_fd = -1;
    sp->zDir = sqlite3_mprintf("%s", zDir);
    if (!sp->zDir) {
        sqlite3_free(sp);
        return SQLITE_NOMEM;
    }
    *out = sp;
    return SQLITE_OK;
}

static void
seg_free(seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    sqlite3_free(s->name);
    sqlite3_free(s);
}

void
spool_close(spool *sp)
{
    if (!sp)
        return;
    if (sp->cur_fd >= 0)
        close(sp->cur_fd);
    for (seg *s = sp->segs, *n; s; s = n) {
        n = s->next;
        seg_free(s);
    }
    ls_free(sp->ents);
    ls_free(sp->wbuf);
    ls_free(sp->rbuf);
    sqlite3_free(sp->zDir);
    sqlite3_free(sp);
}

void
spool_reset(spool *sp)
{
    if (sp->cur_fd >= 0)
        close(sp->cur_fd);
    sp->cur_fd = -1;
    sp->cur = NULL;
    sp->cur_size = 0;
    for (seg *s = sp->segs, *n; s; s = n) {
        n = s->next;
        seg_free(s);
    }
    sp->segs = NULL;
    sp->nent = 0;
    sp->sorted = 0;
    __atomic_store_n(&sp->bytes, 0, __ATOMIC_RELAXED);
}

static seg *
seg_find(spool *sp, const char *name)
{
    for (seg *s = sp->segs; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

static seg *
seg_add(spool *sp, const char *name)
{
    seg *s = sqlite3_malloc64(sizeof(*s));
    unsigned long long first;
    int pid = 0, n = 0;
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->name = sqlite3_mprintf("%s", name);
    if (!s->name) {
        sqlite3_free(s);
        return NULL;
    }
    if (sscanf(name, "%16llx-%d-%d.seg", &first, &pid, &n) == 3)
        s->pid = pid;
    s->next = sp->segs;
    sp->segs = s;
    return s;
}

/* Opens a new segment of ours, named after the first TXID it will hold. */
static int
seg_rotate(spool *sp, uint64_t first_txid, char **pzErr)
{
    char name[64];
    char *zPath;
    if (sp->cur_fd >= 0) {
        close(sp->cur_fd);
        sp->cur_fd = -1;
    }
    snprintf(name, sizeof(name), "%016llx-%d-%d.seg",
             (unsigned long long)first_txid, (int)getpid(), ++sp->seq);
    zPath = sqlite3_mprintf("%s/%s", sp->zDir, name);
    if (!zPath)
        return SQLITE_NOMEM;
    sp->cur_fd = open(zPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (sp->cur_fd < 0) {
        *pzErr = sqlite3_mprintf("litestream: cannot create spool segment "
                                 "'%s': %s",
                                 zPath, strerror(errno));
        sqlite3_free(zPath);
        return SQLITE_CANTOPEN;
    }
    sqlite3_free(zPath);
    sp->cur = seg_find(sp, name);
    if (!sp->cur)
        sp->cur = seg_add(sp, name);
    if (!sp->cur)
        return SQLITE_NOMEM;
    sp->cur->own = 1;
    sp->cur_size = 0;
    return SQLITE_OK;
}

/* Buffered writer of one record: CRC as it goes, flushes in big chunks. */
typedef struct recw {
    spool *sp;
    uint8_t *buf;
    size_t n, cap;
    uint64_t crc;
    int err; /* errno of the first failed write */
} recw;

static void
recw_flush(recw *w)
{
    if (w->n && !w->err)
        w->err = fs_write_all(w->sp->cur_fd, w->buf, w->n);
    w->n = 0;
}

static void
recw_put(recw *w, const void *p, size_t n)
{
    const uint8_t *src = p;
    w->crc = crc64_update(w->crc, src, n);
    while (n > 0) {
        size_t k = w->cap - w->n < n ? w->cap - w->n : n;
        memcpy(w->buf + w->n, src, k);
        w->n += k;
        src += k;
        n -= k;
        if (w->n == w->cap)
            recw_flush(w);
    }
}

int
spool_append_pages(spool *sp, const spool_txn *t, spool_page_fn xPage,
                   void *ctx, int do_sync, char **pzErr)
{
    int rc = SQLITE_OK;
    uint8_t hdr[REC_HDR], b8[8];
    recw w = {.sp = sp, .cap = 256u << 10};
    if (sp->cur_fd < 0 || sp->cur_size >= SEG_LIMIT) {
        rc = seg_rotate(sp, t->txid, pzErr);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (!sp->wbuf && !(sp->wbuf = ls_malloc(w.cap)))
        return SQLITE_NOMEM;
    w.buf = sp->wbuf;
    put32(hdr, REC_MAGIC);
    put32(hdr + 4, t->flags);
    put64(hdr + 8, t->txid);
    put32(hdr + 16, t->page_size);
    put32(hdr + 20, t->commit);
    put32(hdr + 24, t->npages);
    put32(hdr + 28,
          t->txid_max > t->txid ? (uint32_t)(t->txid_max - t->txid) : 0);
    put32(hdr + 32, t->pos.salt1);
    put32(hdr + 36, t->pos.salt2);
    put32(hdr + 40, t->pos.frame);
    put32(hdr + 44, t->pos.cksum1);
    put32(hdr + 48, t->pos.cksum2);
    put32(hdr + 52, 0);
    recw_put(&w, hdr, REC_HDR);
    for (uint32_t i = 0; i < t->npages; i++) {
        put32(b8, t->pgnos[i]);
        recw_put(&w, b8, 4);
    }
    for (uint32_t i = 0; i < t->npages && rc == SQLITE_OK; i++) {
        const uint8_t *page = NULL;
        rc = xPage(ctx, i, &page);
        if (rc == SQLITE_OK)
            recw_put(&w, page, t->page_size);
    }
    if (rc != SQLITE_OK) {
        *pzErr =
            sqlite3_mprintf("litestream: cannot read the pages of "
                            "TXID %llu for the spool: %s",
                            (unsigned long long)t->txid, sqlite3_errstr(rc));
        goto undo;
    }
    KILLPOINT("spool-mid-write");
    put64(b8, w.crc); /* CRC of everything before it */
    recw_put(&w, b8, 8);
    recw_flush(&w);
    if (w.err || (do_sync && fdatasync(sp->cur_fd) != 0)) {
        int e = w.err ? w.err : errno;
        *pzErr = sqlite3_mprintf(
            "litestream: cannot write the spool in "
            "'%s': %s%s",
            sp->zDir, strerror(e),
            e == ENOSPC || e == EDQUOT ? " (the sidecar's disk is full)" : "");
        rc = (e == ENOSPC || e == EDQUOT) ? SQLITE_FULL : SQLITE_IOERR;
        goto undo;
    }
    uint64_t n = REC_HDR + (uint64_t)t->npages * (4 + t->page_size) + 8;
    sp->cur_size += n;
    __atomic_store_n(&sp->bytes, sp->bytes + n, __ATOMIC_RELAXED);
    goto out;
undo:
    /* Leave nothing partial behind: cut the segment back. */
    if (ftruncate(sp->cur_fd, (off_t)sp->cur_size) != 0) {
        close(sp->cur_fd); /* a torn tail ends the segment safely */
        sp->cur_fd = -1;
    }
out:
    return rc;
}

static int
array_page(void *ctx, uint32_t i, const uint8_t **page)
{
    const spool_txn *t = ctx;
    *page = t->pages + (size_t)i * t->page_size;
    return SQLITE_OK;
}

int
spool_append(spool *sp, const spool_txn *t, int do_sync, char **pzErr)
{
    return spool_append_pages(sp, t, array_page, (void *)t, do_sync, pzErr);
}

int
spool_sync(spool *sp)
{
    if (sp->cur_fd >= 0 && fdatasync(sp->cur_fd) != 0)
        return SQLITE_IOERR;
    return SQLITE_OK;
}

static int
ent_add(spool *sp, uint64_t txid, uint64_t max, uint32_t flags, seg *s,
        uint64_t off, uint64_t len)
{
    if (sp->nent == sp->cap) {
        size_t nc = sp->cap ? sp->cap * 2 : 256;
        ent *e = ls_realloc(sp->ents, nc * sizeof(*e));
        if (!e)
            return SQLITE_NOMEM;
        sp->ents = e;
        sp->cap = nc;
    }
    if (sp->nent && sp->ents[sp->nent - 1].txid >= txid)
        sp->sorted = 0;
    size_t i = sp->nent++, best = i;
    if (i && sp->ents[sp->ents[i - 1].best].max >= max)
        best = sp->ents[i - 1].best;
    sp->ents[i] = (ent){txid, max, best, flags, s, off, len};
    return SQLITE_OK;
}

static int
ent_cmp(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    if (x->txid != y->txid)
        return x->txid < y->txid ? -1 : 1;
    /* For one TXID a full-image record or marker sorts first and wins:
     * it is what supersedes a copy found to be unusable; then the record
     * reaching furthest. */
    int fx = (x->flags & SPOOL_F_FULL) != 0,
        fy = (y->flags & SPOOL_F_FULL) != 0;
    if (fx != fy)
        return fy - fx;
    return x->max > y->max ? -1 : x->max < y->max;
}

static void
ents_sort(spool *sp)
{
    if (sp->sorted)
        return;
    if (sp->nent > 1)
        qsort(sp->ents, sp->nent, sizeof(ent), ent_cmp);
    /* Drop duplicates (a TXID spooled twice is the same transaction). */
    size_t j = 0;
    for (size_t i = 0; i < sp->nent; i++)
        if (j == 0 || sp->ents[j - 1].txid != sp->ents[i].txid)
            sp->ents[j++] = sp->ents[i];
    sp->nent = j;
    for (size_t i = 0; i < sp->nent; i++) {
        size_t b = i ? sp->ents[i - 1].best : 0;
        sp->ents[i].best = sp->ents[b].max >= sp->ents[i].max ? b : i;
    }
    sp->sorted = 1;
}

/* Indexes the records of one segment from where the last scan stopped. */
static int
seg_scan(spool *sp, seg *s)
{
    uint8_t hdr[REC_HDR];
    struct stat st;
    if (s->stuck)
        return SQLITE_OK;
    if (s->fd < 0) {
        char *z = sqlite3_mprintf("%s/%s", sp->zDir, s->name);
        if (!z)
            return SQLITE_NOMEM;
        s->fd = open(z, O_RDONLY | O_CLOEXEC);
        sqlite3_free(z);
        if (s->fd < 0)
            return errno == ENOENT ? SQLITE_OK : SQLITE_IOERR;
    }
    if (fstat(s->fd, &st) != 0)
        return SQLITE_IOERR;
    while (s->scanned + REC_HDR + 8 <= (uint64_t)st.st_size) {
        if (pread(s->fd, hdr, REC_HDR, (off_t)s->scanned) != REC_HDR)
            return SQLITE_IOERR;
        uint32_t ps = get32(hdr + 16), np = get32(hdr + 24);
        uint64_t len = REC_HDR + (uint64_t)np * (4 + (uint64_t)ps) + 8;
        if (get32(hdr) != REC_MAGIC ||
            (np > 0 && (ps < 512 || ps > 65536 || (ps & (ps - 1))))) {
            s->stuck = 1; /* garbage: a torn write by a dead process */
            break;
        }
        if (s->scanned + len > (uint64_t)st.st_size)
            break; /* not complete yet (or torn) */
        uint64_t txid = get64(hdr + 8), max = txid + get32(hdr + 28);
        int rc = ent_add(sp, txid, max, get32(hdr + 4), s, s->scanned, len);
        if (rc != SQLITE_OK)
            return rc;
        if (max > s->max_txid)
            s->max_txid = max;
        if (!s->min_txid || txid < s->min_txid)
            s->min_txid = txid;
        s->scanned += len;
    }
    return SQLITE_OK;
}

int
spool_scan(spool *sp)
{
    DIR *d = opendir(sp->zDir);
    struct dirent *e;
    int rc = SQLITE_OK;
    uint64_t bytes = 0;
    if (!d)
        return SQLITE_IOERR;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".seg") != 0)
            continue;
        seg *s = seg_find(sp, e->d_name);
        if (!s && !(s = seg_add(sp, e->d_name))) {
            rc = SQLITE_NOMEM;
            break;
        }
        rc = seg_scan(sp, s);
        if (rc != SQLITE_OK)
            break;
        bytes += s->scanned;
    }
    closedir(d);
    __atomic_store_n(&sp->bytes, bytes, __ATOMIC_RELAXED);
    return rc;
}

static ent *
ent_find(spool *sp, uint64_t txid)
{
    ents_sort(sp);
    size_t lo = 0, hi = sp->nent;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sp->ents[mid].txid < txid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sp->nent && sp->ents[lo].txid == txid ? &sp->ents[lo] : NULL;
}

/* The record that continues after TXID `after` (spool.h). */
static ent *
ent_next(spool *sp, uint64_t after)
{
    ent *e = ent_find(sp, after + 1); /* (sorts) */
    if (e && (e->flags & SPOOL_F_FULL))
        return e;
    size_t lo = 0, hi = sp->nent;
    while (lo < hi) { /* the first record starting after after + 1 */
        size_t mid = (lo + hi) / 2;
        if (sp->ents[mid].txid <= after + 1)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    e = &sp->ents[sp->ents[lo - 1].best];
    return e->max > after ? e : NULL;
}

uint64_t
spool_contiguous(spool *sp, uint64_t from)
{
    uint64_t t = from - 1;
    for (ent *e; (e = ent_next(sp, t)) != NULL;)
        t = e->max;
    return t;
}

int
spool_has(spool *sp, uint64_t txid)
{
    return ent_find(sp, txid) != NULL;
}

/* Records bigger than this keep their pages on disk when read (an upload
 * batch holds many records: its memory stays small); the CRC of those is
 * verified through a buffer of RBUF_BYTES kept by the handle. */
#define LAZY_BYTES (8u << 10)
#define RBUF_BYTES (256u << 10)

static int
read_ent(spool *sp, ent *e, spool_txn *out)
{
    uint8_t *buf = NULL;
    int rc = SQLITE_OK;
    memset(out, 0, sizeof(*out));
    if (!e)
        return SQLITE_NOTFOUND;
    int lazy = e->len > LAZY_BYTES;
    if (!lazy) {
        buf = ls_malloc(e->len);
        if (!buf)
            return SQLITE_NOMEM;
        if (pread(e->s->fd, buf, e->len, (off_t)e->off) != (ssize_t)e->len) {
            rc = SQLITE_IOERR;
            goto out;
        }
        if (crc64_update(0, buf, e->len - 8) != get64(buf + e->len - 8)) {
            rc = SQLITE_CORRUPT;
            goto out;
        }
    } else {
        /* Verify the CRC in chunks, keep only the header and page list;
         * pages are read again (page cache) when asked for. */
        uint8_t hdr[REC_HDR], tail[8];
        if (pread(e->s->fd, hdr, REC_HDR, (off_t)e->off) != REC_HDR) {
            rc = SQLITE_IOERR;
            goto out;
        }
        uint64_t plen = REC_HDR + 4 * (uint64_t)get32(hdr + 24);
        if (plen + 8 > e->len) {
            rc = SQLITE_CORRUPT;
            goto out;
        }
        if (!sp->rbuf && !(sp->rbuf = ls_malloc(RBUF_BYTES))) {
            rc = SQLITE_NOMEM;
            goto out;
        }
        buf = ls_malloc(plen);
        if (!buf) {
            rc = SQLITE_NOMEM;
            goto out;
        }
        uint64_t crc = 0;
        for (uint64_t o = 0; o < e->len - 8;) {
            size_t k =
                e->len - 8 - o < RBUF_BYTES ? e->len - 8 - o : RBUF_BYTES;
            if (pread(e->s->fd, sp->rbuf, k, (off_t)(e->off + o)) !=
                (ssize_t)k) {
                rc = SQLITE_IOERR;
                goto out;
            }
            crc = crc64_update(crc, sp->rbuf, k);
            o += k;
        }
        if (pread(e->s->fd, tail, 8, (off_t)(e->off + e->len - 8)) != 8 ||
            crc != get64(tail)) {
            rc = SQLITE_CORRUPT;
            goto out;
        }
        if (pread(e->s->fd, buf, plen, (off_t)e->off) != (ssize_t)plen) {
            rc = SQLITE_IOERR;
            goto out;
        }
        out->src_fd = e->s->fd;
        out->pages_off = e->off + plen;
    }
    out->flags = get32(buf + 4);
    out->txid = get64(buf + 8);
    out->txid_max = out->txid + get32(buf + 28);
    out->page_size = get32(buf + 16);
    out->commit = get32(buf + 20);
    out->npages = get32(buf + 24);
    out->pos.salt1 = get32(buf + 32);
    out->pos.salt2 = get32(buf + 36);
    out->pos.frame = get32(buf + 40);
    out->pos.cksum1 = get32(buf + 44);
    out->pos.cksum2 = get32(buf + 48);
    /* pgnos are big-endian on disk: convert in place. */
    uint32_t *pg = (uint32_t *)(void *)(buf + REC_HDR);
    for (uint32_t i = 0; i < out->npages; i++)
        pg[i] = get32(buf + REC_HDR + 4 * (size_t)i);
    out->pgnos = pg;
    out->pages = lazy ? NULL : buf + REC_HDR + 4 * (size_t)out->npages;
    out->owned = buf;
    buf = NULL;
out:
    ls_free(buf);
    return rc;
}

int
spool_read(spool *sp, uint64_t txid, spool_txn *out)
{
    return read_ent(sp, ent_find(sp, txid), out);
}

int
spool_read_next(spool *sp, uint64_t after, spool_txn *out)
{
    return read_ent(sp, ent_next(sp, after), out);
}

int
spool_read_end(spool *sp, uint64_t to, spool_txn *out)
{
    ent *found = NULL;
    for (size_t i = 0; i < sp->nent; i++)
        if (sp->ents[i].max == to &&
            (!found || !(sp->ents[i].flags & SPOOL_F_FULL)))
            found = &sp->ents[i];
    return read_ent(sp, found, out);
}

const uint8_t *
spool_txn_page(const spool_txn *t, uint32_t i, uint8_t *scratch)
{
    if (t->pages)
        return t->pages + (size_t)i * t->page_size;
    if (pread(t->src_fd, scratch, t->page_size,
              (off_t)(t->pages_off + (uint64_t)i * t->page_size)) !=
        (ssize_t)t->page_size)
        return NULL;
    return scratch;
}

void
spool_txn_free(spool_txn *t)
{
    ls_free(t->owned);
    memset(t, 0, sizeof(*t));
}

static int
owner_alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int
spool_drop_upto(spool *sp, uint64_t txid)
{
    /* The segment we append to may hold records spooled after the last
     * scan (below). */
    seg *appending = sp->cur_fd >= 0 ? sp->cur : NULL;
    /* Our segment being appended holds replicated records: start a new
     * one, so this one can go as soon as the replica has all of it
     * (segments are deleted whole). */
    if (sp->cur && sp->cur_fd >= 0 && sp->cur->min_txid &&
        sp->cur->min_txid < txid) {
        close(sp->cur_fd);
        sp->cur_fd = -1;
        sp->cur = NULL;
    }
    seg **pp = &sp->segs;
    while (*pp) {
        seg *s = *pp;
        /* Ours, or left by a handle of this process that is gone (one
         * handle per database per process), or by a dead process. */
        int stale_owner = s->pid == (int)getpid() || !owner_alive(s->pid);
        int removable =
            s->scanned > 0 && s->max_txid < txid && (s->own || stale_owner);
        char *z =
            removable ? sqlite3_mprintf("%s/%s", sp->zDir, s->name) : NULL;
        struct stat st;
        /* Records appended since the last scan to the segment being
         * appended (the replicator spools while it uploads) are not in
         * max_txid: that segment stays until a scan has seen them.  (A
         * segment left with a torn tail after a failed append is no
         * longer appended to: it goes.) */
        if (removable && s == appending &&
            (!z || (stat(z, &st) == 0 && (uint64_t)st.st_size != s->scanned)))
            removable = 0;
        if (removable) {
            unlink(z);
            if (s == sp->cur) {
                close(sp->cur_fd);
                sp->cur_fd = -1;
                sp->cur = NULL;
            }
            __atomic_store_n(
                &sp->bytes, sp->bytes > s->scanned ? sp->bytes - s->scanned : 0,
                __ATOMIC_RELAXED);
            /* Drop index entries pointing into it. */
            size_t j = 0;
            for (size_t i = 0; i < sp->nent; i++)
                if (sp->ents[i].s != s)
                    sp->ents[j++] = sp->ents[i];
            sp->nent = j;
            *pp = s->next;
            seg_free(s);
            sqlite3_free(z);
            continue;
        }
        sqlite3_free(z);
        pp = &s->next;
    }
    /* Entries < txid in surviving segments are no longer needed (the one
     * for txid stays: it says where txid ended in the WAL). */
    size_t j = 0;
    for (size_t i = 0; i < sp->nent; i++)
        if (sp->ents[i].max >= txid)
            sp->ents[j++] = sp->ents[i];
    sp->nent = j;
    sp->sorted = 0; /* (the furthest-reaching indexes moved) */
    return SQLITE_OK;
}

uint64_t
spool_bytes(spool *sp)
{
    return __atomic_load_n(&sp->bytes, __ATOMIC_RELAXED);
}
