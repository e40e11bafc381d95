/*
 * storage/ltx/index.c: random access to an LTX file: parse the page index and
 * trailer from the file's tail, then decode one page frame fetched by a
 * range request (either page encoding).
 *
 * Invariants:
 *  1. Every index entry is checked before it is returned: pgno ascending
 *     and non-zero, frames contiguous from offset 100 up to the terminator
 *     just before the index, each at least one minimal frame long; so an
 *     entry never points outside the file.
 *  2. A frame is decoded from exactly its n bytes: nothing may be left
 *     over, nothing read beyond.
 *  3. Only the index and trailer are checked here; the file checksum needs
 *     the whole file (the streaming decoder).
 *
 * Threads: no state; any thread.
 */
#include "storage/base/sqlite.h"
#include <stdlib.h>

#include "storage/ltx/ltx.h"
#include "storage/ltx/ltx_int.h"

#define LTX_MIN_FRAME_SIZE 11 /* 6-byte header, size, 1-byte block */

/* Parses the varint triples of an index of n bytes (docs/ltx-format.md 1.6). */
static int
ltx_index_entries(const uint8_t *p, size_t n, uint64_t term_off,
                  ltx_index_entry *e, uint32_t *count, char *zErr, size_t nErr)
{
    uint64_t v[3] = {0, 0, 0}, expect = LTX_HEADER_SIZE, prev = 0;
    size_t pos = 0;
    uint32_t k = 0;
    int rc = SQLITE_CORRUPT, r;

    for (;;) {
        size_t at = pos;
        for (int i = 0; i < 3; i++) {
            if ((r = ltx_get_uvarint(p + pos, n - pos, &v[i])) <= 0) {
                ltx_seterr(zErr, nErr, "ltx: page index byte %zu: %s varint",
                           pos, r < 0 ? "overflowing" : "truncated");
                goto out;
            }
            pos += (size_t)r;
            if (i == 0 && v[0] == 0)
                break;
        }
        if (v[0] == 0)
            break;
        if (v[0] <= prev || v[0] > UINT32_MAX || v[1] != expect ||
            v[2] < LTX_MIN_FRAME_SIZE || v[2] > term_off - expect) {
            ltx_seterr(zErr, nErr,
                       "ltx: page index byte %zu: entry (pgno %llu, offset "
                       "%llu, size %llu) is invalid (previous pgno %llu, "
                       "next frame at %llu, terminator at %llu)",
                       at, (unsigned long long)v[0], (unsigned long long)v[1],
                       (unsigned long long)v[2], (unsigned long long)prev,
                       (unsigned long long)expect,
                       (unsigned long long)term_off);
            goto out;
        }
        e[k].pgno = (uint32_t)v[0];
        e[k].offset = v[1];
        e[k].size = (uint32_t)v[2];
        k++;
        prev = v[0];
        expect += v[2];
    }
    if (pos != n || expect != term_off) {
        ltx_seterr(zErr, nErr,
                   "ltx: page index of %zu bytes ends at byte %zu; frames "
                   "end at %llu, terminator at %llu",
                   n, pos, (unsigned long long)expect,
                   (unsigned long long)term_off);
        goto out;
    }
    *count = k;
    rc = SQLITE_OK;
out:
    return rc;
}

/*
 * Reads the index length and trailer from the last n bytes of a file of
 * file_size bytes and checks they fit (see ltx_index_parse).
 */
static int
ltx_index_locate(const uint8_t *tail, size_t n, uint64_t file_size,
                 uint64_t *idxlen, ltx_trailer *t, uint64_t *need, char *zErr,
                 size_t nErr)
{
    const uint8_t *end = tail + n;
    int rc = SQLITE_CORRUPT;

    if (file_size < LTX_MIN_FILE_SIZE) {
        ltx_seterr(zErr, nErr, "ltx: file of %llu bytes is too short",
                   (unsigned long long)file_size);
        goto out;
    }
    *need = 8 + LTX_TRAILER_SIZE;
    if (n < *need) {
        ltx_seterr(zErr, nErr, "ltx: need %d tail bytes", 8 + LTX_TRAILER_SIZE);
        rc = SQLITE_TOOBIG;
        goto out;
    }
    *idxlen = ltx_get64(end - 24);
    t->post_apply = ltx_get64(end - 16);
    t->file_checksum = ltx_get64(end - 8);
    if (*idxlen == 0 || *idxlen > file_size - (LTX_MIN_FILE_SIZE - 1)) {
        ltx_seterr(zErr, nErr,
                   "ltx: page index length %llu at offset %llu does not fit "
                   "a %llu-byte file",
                   (unsigned long long)*idxlen,
                   (unsigned long long)(file_size - 24),
                   (unsigned long long)file_size);
    } else if (!(t->file_checksum & LTX_CHECKSUM_FLAG) ||
               (t->post_apply && !(t->post_apply & LTX_CHECKSUM_FLAG))) {
        ltx_seterr(zErr, nErr,
                   "ltx: invalid trailer at offset %llu (post-apply %016llx, "
                   "file checksum %016llx)",
                   (unsigned long long)(file_size - 16),
                   (unsigned long long)t->post_apply,
                   (unsigned long long)t->file_checksum);
    } else if (n - 24 < *idxlen) {
        *need = 24 + *idxlen;
        ltx_seterr(zErr, nErr, "ltx: need %llu tail bytes",
                   (unsigned long long)*need);
        rc = SQLITE_TOOBIG;
    } else {
        rc = SQLITE_OK;
    }
out:
    return rc;
}

int
ltx_index_parse(const uint8_t *tail, size_t n, uint64_t file_size,
                ltx_index_entry **entries, uint32_t *count,
                ltx_trailer *trailer, uint64_t *need, char *zErr, size_t nErr)
{
    ltx_index_entry *e = NULL;
    ltx_trailer t;
    uint64_t idxlen = 0, want = 0;
    int rc;

    *entries = NULL;
    *count = 0;
    if (n > file_size || (!tail && n)) {
        ltx_seterr(zErr, nErr, "ltx: tail of %zu bytes for a %llu-byte file", n,
                   (unsigned long long)file_size);
        rc = SQLITE_MISUSE;
        goto out;
    }
    rc = ltx_index_locate(tail, n, file_size, &idxlen, &t, &want, zErr, nErr);
    if (rc == SQLITE_TOOBIG && need)
        *need = want;
    if (rc != SQLITE_OK)
        goto out;
    if (idxlen >= 3 && !(e = malloc((size_t)(idxlen / 3) * sizeof(*e)))) {
        ltx_seterr(zErr, nErr, "ltx: out of memory");
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = ltx_index_entries(tail + n - 24 - idxlen, (size_t)idxlen,
                           file_size - 24 - idxlen - LTX_PAGE_HEADER_SIZE, e,
                           count, zErr, nErr);
    if (rc != SQLITE_OK)
        goto out;
    if (trailer)
        *trailer = t;
    if (*count)
        *entries = e;
    else
        free(e);
    e = NULL;
out:
    free(e);
    if (rc != SQLITE_OK)
        *count = 0;
    return rc;
}

/* Byte source over a frame in memory, for ltx_frame_decode. */
struct ltx_memsrc {
    ltx_src base;
    const uint8_t *p;
    size_t n, pos;
};

static int
ltx_memsrc_take(ltx_src *s, size_t n, const char *zWhat, const uint8_t **pp)
{
    struct ltx_memsrc *m = (struct ltx_memsrc *)s;
    int rc = SQLITE_OK;

    if (m->n - m->pos < n) {
        ltx_seterr(s->zErr, s->nErr,
                   "ltx: %s: %s needs %zu bytes at frame byte %zu, %zu left",
                   LTX_WHERE(&s->where), zWhat, n,
                   m->pos + LTX_PAGE_HEADER_SIZE, m->n - m->pos);
        rc = SQLITE_CORRUPT;
        goto out;
    }
    *pp = m->p + m->pos;
    m->pos += n;
out:
    return rc;
}

int
ltx_frame_decode(const uint8_t *frame, size_t n, uint32_t page_size,
                 uint32_t expect_pgno, void *page, char *zErr, size_t nErr)
{
    struct ltx_memsrc m;
    ltx_where w = {UINT64_MAX, expect_pgno};
    uint32_t pgno, size;
    uint16_t flags;
    int rc = SQLITE_CORRUPT;

    if (!ltx_page_size_valid(page_size) || !page || (!frame && n)) {
        ltx_seterr(zErr, nErr, "ltx: frame decode: bad arguments");
        rc = SQLITE_MISUSE;
        goto out;
    }
    if (n < LTX_PAGE_HEADER_SIZE) {
        ltx_seterr(zErr, nErr, "ltx: %s: only %zu bytes", LTX_WHERE(&w), n);
        goto out;
    }
    pgno = ltx_get32(frame);
    flags = ltx_get16(frame + 4);
    if (pgno != expect_pgno || pgno == 0) {
        ltx_seterr(zErr, nErr, "ltx: %s: frame holds page %u", LTX_WHERE(&w),
                   pgno);
        goto out;
    }
    if (flags & ~LTX_PAGE_FLAG_SIZE) {
        ltx_seterr(zErr, nErr, "ltx: %s: unsupported flags 0x%04x",
                   LTX_WHERE(&w), flags);
        rc = SQLITE_FORMAT;
        goto out;
    }
    if (flags & LTX_PAGE_FLAG_SIZE) {
        size = n >= 10 ? ltx_get32(frame + 6) : 0;
        if (n < 10 || size != n - 10) {
            ltx_seterr(zErr, nErr,
                       "ltx: %s: payload length %u in a %zu-byte frame",
                       LTX_WHERE(&w), size, n);
            goto out;
        }
        rc =
            ltx_block_decode(frame + 10, size, page, page_size, &w, zErr, nErr);
        goto out;
    }
    m.base.xTake = ltx_memsrc_take;
    m.base.where = w;
    m.base.zErr = zErr;
    m.base.nErr = nErr;
    m.p = frame + LTX_PAGE_HEADER_SIZE;
    m.n = n - LTX_PAGE_HEADER_SIZE;
    m.pos = 0;
    if ((rc = ltx_lz4f_decode(&m.base, page, page_size)) != SQLITE_OK)
        goto out;
    if (m.pos != m.n) {
        ltx_seterr(zErr, nErr, "ltx: %s: %zu bytes after the LZ4 frame",
                   LTX_WHERE(&w), m.n - m.pos);
        rc = SQLITE_CORRUPT;
    }
out:
    return rc;
}
