/*
 * test_ltx.c: unit tests of the LTX codec (storage/ltx*.c,
 * storage/ltx/crc64.c).
 *
 * Proves: the CRC matches Go's crc64.ISO; every reference vector in
 * $LITESTREAM_TESTDATA/ltx decodes to its .db byte for byte with the
 * expected checksums (both page encodings) and corrupted files are refused;
 * our encoder's files decode back (all page sizes, empty and commit-0
 * files, legacy frames); encoder rules are enforced; random access through
 * the index; merging and expanding (restore), including a database whose
 * commit spans the lock page; and that no single-byte change or truncation
 * of a valid file goes unnoticed (a change inside an LZ4 payload that
 * decodes to the very same page is the one thing no checksum can see).
 *
 * Single-threaded; writes only to memory and to a temporary file in $TMPDIR.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "storage/ltx/crc64.h"
#include "storage/ltx/ltx.h"
#include "test/tap.h"

/* ---- Helpers ---------------------------------------------------------- */

static const char *g_dir; /* $LITESTREAM_TESTDATA/ltx */

/* Reads a whole file (malloc'ed, *n its size) or returns NULL. */
static uint8_t *
slurp(const char *name, size_t *n)
{
    char path[4096];
    uint8_t *buf = NULL;
    FILE *f;
    long len;

    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    if (!(f = fopen(path, "rb")))
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) &&
        fread(buf, 1, (size_t)len, f) == (size_t)len) {
        *n = (size_t)len;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Growable in-memory output for ltx_write_fn; fail_at > 0 makes the write
 * that would pass that many bytes fail. */
struct wbuf {
    uint8_t *p;
    size_t n, cap;
    size_t fail_at;
};

static int
wbuf_write(void *ctx, const void *buf, size_t n)
{
    struct wbuf *w = ctx;

    if (w->fail_at && w->n + n >= w->fail_at)
        return 1;
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + n)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p)
            return 1;
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, buf, n);
    w->n += n;
    return 0;
}

/* Positional writes into a fixed in-memory image. */
struct image {
    uint8_t *p;
    size_t n;
    size_t high; /* highest byte written + 1 */
    int calls;
};

static int
image_pwrite(void *ctx, const void *buf, size_t n, uint64_t off)
{
    struct image *im = ctx;

    im->calls++;
    if (off > im->n || n > im->n - off)
        return 1;
    memcpy(im->p + off, buf, n);
    if (off + n > im->high)
        im->high = off + n;
    return 0;
}

/* Decodes a whole file from memory.  Fills *hdr, *trailer and, if image
 * is not NULL, writes each page at (pgno-1)*page_size (image must hold
 * max_pages pages).  Returns the first error; msg gets its message. */
static int
decode_mem(const uint8_t *p, size_t n, ltx_header *hdr, ltx_trailer *trailer,
           uint8_t *image, uint32_t max_pages, uint32_t *npages, char *msg,
           size_t nmsg)
{
    struct ltx_membuf mb = {p, n, 0};
    ltx_decoder *d = NULL;
    uint8_t *page = NULL;
    uint32_t pgno, count = 0;
    int rc;

    msg[0] = 0;
    rc = ltx_decoder_open(ltx_membuf_read, &mb, &d);
    if (rc != SQLITE_OK)
        goto out;
    *hdr = *ltx_decoder_header(d);
    page = malloc(hdr->page_size);
    if (!page) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    while ((rc = ltx_decoder_page(d, &pgno, page)) == SQLITE_OK) {
        count++;
        if (image && pgno <= max_pages)
            memcpy(image + (size_t)(pgno - 1) * hdr->page_size, page,
                   hdr->page_size);
    }
    if (rc == SQLITE_DONE)
        rc = ltx_decoder_close(d, trailer);
out:
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
        snprintf(msg, nmsg, "%s", ltx_decoder_errmsg(d));
    if (npages)
        *npages = count;
    free(page);
    ltx_decoder_free(d);
    return rc;
}

/* A default header for tests. */
static ltx_header
mkhdr(uint32_t page_size, uint32_t commit, uint64_t min, uint64_t max,
      uint32_t flags, uint64_t pre)
{
    ltx_header h;

    memset(&h, 0, sizeof(h));
    h.flags = flags;
    h.page_size = page_size;
    h.commit = commit;
    h.min_txid = min;
    h.max_txid = max;
    h.timestamp = 1700000000000;
    h.pre_apply = pre;
    return h;
}

/*
 * Encodes the listed pages of image (pgnos[0..n), or 1..commit skipping the
 * lock page when pgnos is NULL) into w.  post_apply: the value to write, or
 * 1 to use the encoder's checksum (checksums on) / 0 (NoChecksum).
 */
static int
encode(const ltx_header *h, const uint8_t *image, const uint32_t *pgnos,
       uint32_t n, int legacy, uint64_t post, struct wbuf *w, ltx_trailer *t)
{
    ltx_encoder *enc = NULL;
    uint32_t lock = ltx_lock_pgno(h->page_size);
    int rc = ltx_encoder_open(h, wbuf_write, w, &enc);

    if (rc == SQLITE_OK && legacy)
        rc = ltx_encoder_set_legacy(enc, 1);
    if (!pgnos)
        n = h->commit;
    for (uint32_t i = 0; i < n && rc == SQLITE_OK; i++) {
        uint32_t pgno = pgnos ? pgnos[i] : i + 1;
        if (!pgnos && pgno == lock)
            continue;
        rc = ltx_encoder_page(enc, pgno,
                              image + (size_t)(pgno - 1) * h->page_size);
    }
    if (rc == SQLITE_OK) {
        if (post == 1)
            post = ltx_encoder_checksum(enc);
        rc = ltx_encoder_finish(enc, post, t);
    }
    if (rc != SQLITE_OK)
        diag("encode: %s", ltx_encoder_errmsg(enc));
    ltx_encoder_free(enc);
    return rc;
}

/* Deterministic page content: mix of text-like (compressible) and noise. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static void
fill_page(uint8_t *p, uint32_t page_size, uint32_t pgno, int kind)
{
    for (uint32_t i = 0; i < page_size; i++) {
        switch (kind % 3) {
        case 0:
            p[i] = (uint8_t)rnd();
            break; /* noise */
        case 1:
            p[i] = (uint8_t)("litestream "[i % 11]);
            break; /* text */
        default:
            p[i] = (i % 64 < 8) ? (uint8_t)rnd() : 0;
            break;
        }
    }
    memcpy(p, &pgno, sizeof(pgno));
}

/* ---- CRC ---------------------------------------------------------------- */

static uint64_t
crc_bitwise(const uint8_t *p, size_t n)
{
    uint64_t c = ~0ull;

    while (n--) {
        c ^= *p++;
        for (int i = 0; i < 8; i++)
            c = (c >> 1) ^ ((c & 1) ? 0xD800000000000000ull : 0);
    }
    return ~c;
}

static void
test_crc(void)
{
    uint8_t buf[1031];
    int bad_bit = 0, bad_inc = 0, bad_comb = 0;

    ok(crc64_update(0, "123456789", 9) == 0xB90956C775A41001ull,
       "crc64 check value of \"123456789\"");
    ok(crc64_update(0, "", 0) == 0 && crc64_update(0, NULL, 0) == 0,
       "crc64 of the empty string is 0");
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)rnd();
    for (size_t n = 0; n <= sizeof(buf); n += 17) {
        uint64_t whole = crc64_update(0, buf, n);
        bad_bit += whole != crc_bitwise(buf, n);
        for (size_t k = 0; k <= n; k += 29) {
            uint64_t a = crc64_update(0, buf, k);
            uint64_t b = crc64_update(0, buf + k, n - k);
            bad_inc += crc64_update(a, buf + k, n - k) != whole;
            bad_comb += crc64_combine(a, b, n - k) != whole;
        }
    }
    ok(!bad_bit, "slicing-by-8 table equals the bitwise CRC (all lengths)");
    ok(!bad_inc, "incremental update equals one-shot");
    ok(!bad_comb, "crc64_combine(crc(A), crc(B), |B|) == crc(A||B)");
    bad_bit = 0;
    for (size_t off = 0; off < 16; off++)
        for (size_t n = 0; n + off <= sizeof(buf); n += 61)
            bad_bit +=
                crc64_update(0, buf + off, n) != crc_bitwise(buf + off, n);
    ok(!bad_bit, "every alignment and length up to 1 KiB");
    ok(crc64_combine_op(crc64_update(0, buf, 5), crc64_update(0, buf + 5, 7),
                        crc64_combine_gen(7)) == crc64_update(0, buf, 12),
       "crc64_combine_op with a generated operator");
}

/* ---- Helpers of the format ---------------------------------------------- */

static void
test_helpers(void)
{
    char name[LTX_NAME_SIZE], err[256];
    uint64_t a = 0, b = 0;
    uint8_t raw[LTX_HEADER_SIZE];
    ltx_header h = mkhdr(4096, 7, 5, 9, 0, LTX_CHECKSUM_FLAG | 42), g;

    ok(ltx_lock_pgno(4096) == 262145 && ltx_lock_pgno(512) == 2097153 &&
           ltx_lock_pgno(65536) == 16385,
       "lock page numbers");
    ok(ltx_page_size_valid(512) && ltx_page_size_valid(65536) &&
           !ltx_page_size_valid(256) && !ltx_page_size_valid(131072) &&
           !ltx_page_size_valid(4095) && !ltx_page_size_valid(0),
       "page size validation");
    ok(strcmp(ltx_txid_name(1, 0xabc, name),
              "0000000000000001-0000000000000abc.ltx") == 0,
       "ltx_txid_name");
    ok(ltx_parse_name("0000000000000001-0000000000000abc.ltx", &a, &b) &&
           a == 1 && b == 0xabc,
       "ltx_parse_name accepts a canonical name");
    ok(!ltx_parse_name("0000000000000001-0000000000000ABC.ltx", &a, &b) &&
           !ltx_parse_name("0000000000000001-0000000000000abc.ltx.tmp", &a,
                           &b) &&
           !ltx_parse_name("000000000000001-0000000000000abc.ltx", &a, &b) &&
           !ltx_parse_name("0000000000000001_0000000000000abc.ltx", &a, &b) &&
           !ltx_parse_name("0000000000000001-0000000000000abcxltx", &a, &b) &&
           !ltx_parse_name("", &a, &b) && !ltx_parse_name(NULL, &a, &b),
       "ltx_parse_name rejects near misses");
    h.wal_offset = 32;
    h.wal_size = 4152;
    h.wal_salt1 = 0x11223344;
    h.wal_salt2 = 0x55667788;
    h.node_id = 77;
    ltx_header_encode(&h, raw);
    ok(ltx_header_decode(raw, &g, err, sizeof(err)) == SQLITE_OK &&
           g.flags == h.flags && g.page_size == h.page_size &&
           g.commit == h.commit && g.min_txid == h.min_txid &&
           g.max_txid == h.max_txid && g.timestamp == h.timestamp &&
           g.pre_apply == h.pre_apply && g.wal_offset == h.wal_offset &&
           g.wal_size == h.wal_size && g.wal_salt1 == h.wal_salt1 &&
           g.wal_salt2 == h.wal_salt2 && g.node_id == h.node_id,
       "header encode/decode round trip");
    ok(raw[80] == 0 && memcmp(raw + 80, raw + 81, 19) == 0,
       "reserved header bytes 80..99 are zero");
    raw[0] = 'X';
    ok(ltx_header_decode(raw, &g, err, sizeof(err)) == SQLITE_CORRUPT,
       "bad magic refused: %s", err);
    ltx_header_encode(&h, raw);
    raw[7] |= 0x04;
    ok(ltx_header_decode(raw, &g, err, sizeof(err)) == SQLITE_FORMAT,
       "unknown header flag is SQLITE_FORMAT: %s", err);
}

/* Header rules of docs/ltx-format.md 1.4, each broken once. */
static void
test_header_rules(void)
{
    static const struct {
        const char *what;
        ltx_header h;
    } bad[] = {
        {"min TXID 0", {0, 4096, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
        {"max TXID 0", {0, 4096, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
        {"min > max", {0, 4096, 1, 3, 2, 0, LTX_CHECKSUM_FLAG, 0, 0, 0, 0, 0}},
        {"page size 1000", {0, 1000, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
        {"page size 131072", {0, 131072, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
        {"flags 0x1", {1, 4096, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}},
        {"snapshot with pre-apply",
         {0, 4096, 1, 1, 1, 0, LTX_CHECKSUM_FLAG, 0, 0, 0, 0, 0}},
        {"non-snapshot with checksums and pre-apply 0",
         {0, 4096, 1, 2, 2, 0, 0, 0, 0, 0, 0, 0}},
        {"pre-apply without bit 63", {0, 4096, 1, 2, 2, 0, 5, 0, 0, 0, 0, 0}},
        {"NoChecksum with pre-apply",
         {2, 4096, 1, 2, 2, 0, LTX_CHECKSUM_FLAG, 0, 0, 0, 0, 0}},
        {"negative WAL offset", {0, 4096, 1, 1, 1, 0, 0, -1, 0, 0, 0, 0}},
        {"WAL size without offset", {0, 4096, 1, 1, 1, 0, 0, 0, 8, 0, 0, 0}},
        {"salt without offset", {0, 4096, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0}},
    };
    struct wbuf w = {0};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t raw[LTX_HEADER_SIZE];
        char err[256] = "";
        ltx_encoder *enc = NULL;
        ltx_header g;
        int rc;

        ltx_header_encode(&bad[i].h, raw);
        rc = ltx_header_decode(raw, &g, err, sizeof(err));
        ok(rc == SQLITE_CORRUPT || rc == SQLITE_FORMAT,
           "decoder refuses header with %s: %s", bad[i].what, err);
        rc = ltx_encoder_open(&bad[i].h, wbuf_write, &w, &enc);
        ok(rc == SQLITE_MISUSE && strstr(ltx_encoder_errmsg(enc), "ltx:"),
           "encoder refuses header with %s (%s)", bad[i].what,
           ltx_encoder_errmsg(enc));
        ltx_encoder_free(enc);
    }
    free(w.p);
}

/* ---- Reference vectors -------------------------------------------------- */

struct vec {
    const char *ltx, *db;
    uint32_t page_size, pages;
    int legacy, nock;
    uint64_t cksum; /* db checksum of the .db (README table) */
};

static const struct vec g_vecs[] = {
    {"two-page.ltx", "two-page.db", 4096, 2, 0, 0, 0xbfd23a34005c540eull},
    {"two-page-nochecksum.ltx", "two-page.db", 4096, 2, 0, 1,
     0xbfd23a34005c540eull},
    {"two-page-legacy-frame.ltx", "two-page.db", 4096, 2, 1, 0,
     0xbfd23a34005c540eull},
    {"two-page-legacy-frame-nochecksum.ltx", "two-page.db", 4096, 2, 1, 1,
     0xbfd23a34005c540eull},
    {"small-4096.ltx", "small-4096.db", 4096, 6, 0, 0, 0xc609b1c7a1790f8eull},
    {"mid-4096.ltx", "mid-4096.db", 4096, 215, 0, 0, 0xaee9b8d237711144ull},
    {"p512.ltx", "p512.db", 512, 222, 0, 0, 0xbfd7b42bdfa54f8cull},
    {"p65536.ltx", "p65536.db", 65536, 12, 0, 0, 0xd3c45c90d8c50d1cull},
};
#define NVEC (sizeof(g_vecs) / sizeof(g_vecs[0]))

/* Decodes the vector straight from its file with ltx_fd_read. */
static void
vec_decode_fd(const struct vec *v, const uint8_t *db)
{
    char path[4096];
    ltx_decoder *d = NULL;
    ltx_trailer t = {0, 0};
    uint8_t *img = calloc(v->pages, v->page_size), *page = NULL;
    uint32_t pgno, n = 0;
    int fd, rc, order = 1;

    snprintf(path, sizeof(path), "%s/%s", g_dir, v->ltx);
    fd = open(path, O_RDONLY);
    rc = ltx_decoder_open(ltx_fd_read, &fd, &d);
    if (rc == SQLITE_OK) {
        const ltx_header *h = ltx_decoder_header(d);
        ok(h->page_size == v->page_size && h->commit == v->pages &&
               h->min_txid == 1 && h->max_txid == 1 &&
               !!(h->flags & LTX_FLAG_NO_CHECKSUM) == v->nock,
           "%s: header (page size %u, commit %u)", v->ltx, h->page_size,
           h->commit);
        page = malloc(v->page_size);
        while ((rc = ltx_decoder_page(d, &pgno, page)) == SQLITE_OK) {
            order &= pgno == ++n;
            if (pgno <= v->pages)
                memcpy(img + (size_t)(pgno - 1) * v->page_size, page,
                       v->page_size);
        }
        if (rc == SQLITE_DONE)
            rc = ltx_decoder_close(d, &t);
    }
    ok(rc == SQLITE_OK, "%s: decodes and verifies (%s)", v->ltx,
       rc ? ltx_decoder_errmsg(d) : "ok");
    ok(order && n == v->pages &&
           memcmp(img, db, (size_t)v->pages * v->page_size) == 0,
       "%s: pages 1..%u equal %s byte for byte", v->ltx, v->pages, v->db);
    ok(t.post_apply == (v->nock ? 0 : v->cksum),
       "%s: trailer post-apply %016llx", v->ltx,
       (unsigned long long)t.post_apply);
    ok(d && ltx_decoder_checksum(d) == v->cksum,
       "%s: checksum of the decoded pages", v->ltx);
    if (fd >= 0)
        close(fd);
    ltx_decoder_free(d);
    free(page);
    free(img);
}

/* Random access: index from tails of several sizes, then every frame. */
static void
vec_random_access(const struct vec *v, const uint8_t *f, size_t n,
                  const uint8_t *db)
{
    ltx_index_entry *e = NULL;
    ltx_trailer t;
    uint32_t count = 0;
    uint64_t need = 0;
    char err[256];
    uint8_t *page = malloc(v->page_size);
    int rc, good = 1;

    rc = ltx_index_parse(f + n - 10, 10, n, &e, &count, &t, &need, err,
                         sizeof(err));
    ok(rc == SQLITE_TOOBIG && need == 24, "%s: 10-byte tail needs 24", v->ltx);
    rc = ltx_index_parse(f + n - 24, 24, n, &e, &count, &t, &need, err,
                         sizeof(err));
    ok(rc == SQLITE_TOOBIG && need > 24 && need < n,
       "%s: 24-byte tail reports the %llu bytes needed", v->ltx,
       (unsigned long long)need);
    rc = ltx_index_parse(f + n - (need - 1), need - 1, n, &e, &count, &t, &need,
                         err, sizeof(err));
    ok(rc == SQLITE_TOOBIG, "%s: one byte short is still too short", v->ltx);
    rc = ltx_index_parse(f + n - need, need, n, &e, &count, &t, NULL, err,
                         sizeof(err));
    ok(rc == SQLITE_OK && count == v->pages &&
           t.post_apply == (v->nock ? 0 : v->cksum),
       "%s: exact tail parses %u entries", v->ltx, count);
    free(e);
    e = NULL;
    rc = ltx_index_parse(f, n, n, &e, &count, &t, NULL, err, sizeof(err));
    ok(rc == SQLITE_OK && count == v->pages, "%s: whole file as tail", v->ltx);
    for (uint32_t i = 0; rc == SQLITE_OK && i < count && good; i++) {
        good =
            e[i].pgno == i + 1 &&
            ltx_frame_decode(f + e[i].offset, e[i].size, v->page_size,
                             e[i].pgno, page, err, sizeof(err)) == SQLITE_OK &&
            memcmp(page, db + (size_t)i * v->page_size, v->page_size) == 0;
        if (!good)
            diag("%s: frame %u: %s", v->ltx, i, err);
    }
    ok(good, "%s: every frame decodes alone and equals the .db page", v->ltx);
    if (count > 1) {
        rc = ltx_frame_decode(f + e[0].offset, e[0].size, v->page_size, 2, page,
                              err, sizeof(err));
        ok(rc == SQLITE_CORRUPT, "%s: wrong expected pgno refused: %s", v->ltx,
           err);
        rc = ltx_frame_decode(f + e[0].offset, e[0].size - 1, v->page_size, 1,
                              page, err, sizeof(err));
        ok(rc == SQLITE_CORRUPT, "%s: short frame refused: %s", v->ltx, err);
    }
    free(e);
    free(page);
}

static void
vec_expand(const struct vec *v, const uint8_t *f, size_t n, const uint8_t *db)
{
    struct ltx_membuf mb = {f, n, 0};
    struct image im = {calloc(v->pages + 1, v->page_size),
                       (size_t)(v->pages + 1) * v->page_size, 0, 0};
    ltx_decoder *d = NULL;
    uint64_t ck = 0;
    char err[256] = "";
    int rc = ltx_decoder_open(ltx_membuf_read, &mb, &d);

    if (rc == SQLITE_OK)
        rc = ltx_expand(d, image_pwrite, &im, &ck, err, sizeof(err));
    ok(rc == SQLITE_OK && ck == v->cksum &&
           im.high == (size_t)v->pages * v->page_size &&
           memcmp(im.p, db, im.high) == 0,
       "%s: ltx_expand rebuilds %s (%d writes) %s", v->ltx, v->db, im.calls,
       err);
    ltx_decoder_free(d);
    free(im.p);
}

static void
test_vectors(void)
{
    for (size_t i = 0; i < NVEC; i++) {
        const struct vec *v = &g_vecs[i];
        size_t nf = 0, nd = 0;
        uint8_t *f = slurp(v->ltx, &nf), *db = slurp(v->db, &nd);

        if (!ok(f && db && nd == (size_t)v->pages * v->page_size,
                "%s and %s present", v->ltx, v->db)) {
            free(f);
            free(db);
            continue;
        }
        ok(ltx_db_checksum(db, v->page_size, v->pages) == v->cksum,
           "%s: ltx_db_checksum = %016llx (README)", v->db,
           (unsigned long long)v->cksum);
        ok(nf > 106 && f[104] == 0 && f[105] == (v->legacy ? 0 : 1),
           "%s: first frame uses the %s encoding", v->ltx,
           v->legacy ? "legacy frame" : "block");
        vec_decode_fd(v, db);
        vec_random_access(v, f, nf, db);
        vec_expand(v, f, nf, db);
        free(f);
        free(db);
    }
}

static void
test_corrupt_vectors(void)
{
    static const char *names[] = {"corrupt-1.ltx", "corrupt-2.ltx"};

    for (int i = 0; i < 2; i++) {
        size_t n = 0;
        uint8_t *f = slurp(names[i], &n);
        ltx_header h;
        ltx_trailer t;
        char msg[256] = "";
        int rc =
            f ? decode_mem(f, n, &h, &t, NULL, 0, NULL, msg, sizeof(msg)) : -1;

        ok(rc == SQLITE_CORRUPT && strncmp(msg, "ltx: ", 5) == 0,
           "%s rejected with SQLITE_CORRUPT", names[i]);
        diag("%s: %s", names[i], msg);
        free(f);
    }
}

/* ---- Our encoder -------------------------------------------------------- */

/* Re-encodes each vector's .db and decodes it back. */
static void
test_reencode(void)
{
    for (size_t i = 0; i < NVEC; i++) {
        const struct vec *v = &g_vecs[i];
        size_t nd = 0;
        uint8_t *db = slurp(v->db, &nd), *img;

        if (!db || (i > 0 && strcmp(v->db, g_vecs[i - 1].db) == 0)) {
            free(db);
            continue;
        }
        img = calloc(v->pages, v->page_size);
        for (int legacy = 0; legacy < 2; legacy++) {
            ltx_header h = mkhdr(v->page_size, v->pages, 1, 1, 0, 0), g;
            struct wbuf w = {0};
            ltx_trailer t, t2;
            char msg[256];
            int rc;

            rc = encode(&h, db, NULL, 0, legacy, 1, &w, &t);
            ok(rc == SQLITE_OK && t.post_apply == v->cksum,
               "%s re-encoded (%s): post-apply %016llx", v->db,
               legacy ? "legacy" : "block", (unsigned long long)t.post_apply);
            memset(img, 0, nd);
            rc = decode_mem(w.p, w.n, &g, &t2, img, v->pages, NULL, msg,
                            sizeof(msg));
            ok(rc == SQLITE_OK && memcmp(img, db, nd) == 0 &&
                   t2.file_checksum == t.file_checksum,
               "%s re-encoded (%s, %zu bytes) decodes back %s", v->db,
               legacy ? "legacy" : "block", w.n, msg);
            free(w.p);
        }
        free(img);
        free(db);
    }
}

/* Our two-page file against the worked example of docs/ltx-format.md 1.11. */
static void
test_worked_example(void)
{
    static const uint8_t post[8] = {0xBF, 0xD2, 0x3A, 0x34,
                                    0x00, 0x5C, 0x54, 0x0E};
    size_t nd = 0;
    uint8_t *db = slurp("two-page.db", &nd);
    ltx_header h = mkhdr(4096, 2, 1, 1, 0, 0);
    struct wbuf w = {0};
    ltx_index_entry *e = NULL;
    uint32_t count = 0;
    ltx_trailer t;
    char err[256] = "";
    int rc;

    if (!db)
        return;
    rc = encode(&h, db, NULL, 0, 0, 1, &w, &t);
    ok(rc == SQLITE_OK && memcmp(w.p + w.n - 16, post, 8) == 0,
       "two-page re-encode: post-apply bytes BF D2 3A 34 00 5C 54 0E");
    rc = ltx_index_parse(w.p, w.n, w.n, &e, &count, NULL, NULL, err,
                         sizeof(err));
    ok(rc == SQLITE_OK && count == 2 && e[0].pgno == 1 && e[0].offset == 100 &&
           e[1].pgno == 2 && e[1].offset == 100 + e[0].size &&
           w.p[w.n - 24 - 10] == 0 && w.p[w.n - 25] == 0 && w.p[w.n - 17] == 9,
       "two-page re-encode: terminator, index (1, 100, %u) (2, %llu, %u), "
       "0, length 9 %s",
       count ? e[0].size : 0, count ? (unsigned long long)e[1].offset : 0,
       count > 1 ? e[1].size : 0, err);
    diag("reference frame lengths 134/66, ours %u/%u (LZ4 compressors "
         "differ)",
         count ? e[0].size : 0, count > 1 ? e[1].size : 0);
    free(e);
    free(w.p);
    free(db);
}

/* Round trips for every page size, both encodings, checksums on/off. */
static void
test_page_sizes(void)
{
    for (uint32_t ps = 512; ps <= 65536; ps *= 2) {
        uint32_t npages = ps >= 16384 ? 5 : 9;
        uint8_t *db = malloc((size_t)npages * ps);
        uint8_t *img = malloc((size_t)npages * ps);
        int good = 1;

        for (uint32_t p = 1; p <= npages; p++)
            fill_page(db + (size_t)(p - 1) * ps, ps, p, (int)p);
        for (int mode = 0; mode < 4; mode++) {
            int legacy = mode & 1, nock = mode >> 1;
            ltx_header h = mkhdr(ps, npages, 1, 3,
                                 nock ? LTX_FLAG_NO_CHECKSUM : 0, 0),
                       g;
            struct wbuf w = {0};
            ltx_trailer t, t2;
            char msg[256];

            memset(img, 0xee, (size_t)npages * ps);
            good &= encode(&h, db, NULL, 0, legacy, nock ? 0 : 1, &w, &t) ==
                    SQLITE_OK;
            good &= decode_mem(w.p, w.n, &g, &t2, img, npages, NULL, msg,
                               sizeof(msg)) == SQLITE_OK;
            good &= memcmp(img, db, (size_t)npages * ps) == 0;
            good &=
                t2.post_apply == (nock ? 0 : ltx_db_checksum(db, ps, npages));
            if (!good)
                diag("page size %u mode %d: %s", ps, mode, msg);
            free(w.p);
        }
        ok(good,
           "page size %u: snapshot round trips (block/legacy, "
           "checksums on/off)",
           ps);
        free(db);
        free(img);
    }
}

/* Zero-page, commit-0 and single-page files. */
static void
test_small_files(void)
{
    uint8_t db[3 * 4096], img[3 * 4096];
    uint32_t three = 3, n = 9;
    ltx_header h, g;
    ltx_trailer t, t2;
    char msg[256];
    struct wbuf w = {0};
    int rc;

    fill_page(db + 2 * 4096, 4096, 3, 1);
    h = mkhdr(4096, 5, 2, 2, LTX_FLAG_NO_CHECKSUM, 0);
    rc = encode(&h, db, &three, 0, 0, 0, &w, &t);
    ok(rc == SQLITE_OK && w.n == LTX_MIN_FILE_SIZE,
       "zero-page non-snapshot file encodes (%zu bytes)", w.n);
    rc = decode_mem(w.p, w.n, &g, &t2, NULL, 0, &n, msg, sizeof(msg));
    ok(rc == SQLITE_OK && n == 0, "zero-page file decodes %s", msg);
    free(w.p);

    w = (struct wbuf){0};
    h = mkhdr(4096, 0, 3, 3, 0, LTX_CHECKSUM_FLAG | 99);
    rc = encode(&h, db, &three, 0, 0, LTX_CHECKSUM_FLAG, &w, &t);
    ok(rc == SQLITE_OK, "commit-0 file with post-apply 1<<63 encodes");
    rc = decode_mem(w.p, w.n, &g, &t2, NULL, 0, &n, msg, sizeof(msg));
    ok(rc == SQLITE_OK && g.commit == 0 && n == 0 &&
           t2.post_apply == LTX_CHECKSUM_FLAG,
       "commit-0 file decodes %s", msg);
    free(w.p);

    w = (struct wbuf){0};
    h = mkhdr(4096, 0, 1, 1, 0, 0);
    rc = encode(&h, db, NULL, 0, 0, 1, &w, &t);
    ok(rc == SQLITE_OK && t.post_apply == LTX_CHECKSUM_FLAG,
       "empty snapshot (commit 0) encodes");
    rc = decode_mem(w.p, w.n, &g, &t2, NULL, 0, &n, msg, sizeof(msg));
    ok(rc == SQLITE_OK && n == 0, "empty snapshot decodes %s", msg);
    free(w.p);

    for (int legacy = 0; legacy < 2; legacy++) {
        w = (struct wbuf){0};
        h = mkhdr(4096, 3, 4, 4, LTX_FLAG_NO_CHECKSUM, 0);
        rc = encode(&h, db, &three, 1, legacy, 0, &w, &t);
        memset(img, 0, sizeof(img));
        rc = rc ? rc
                : decode_mem(w.p, w.n, &g, &t2, img, 3, &n, msg, sizeof(msg));
        ok(rc == SQLITE_OK && n == 1 &&
               memcmp(img + 2 * 4096, db + 2 * 4096, 4096) == 0,
           "single-page non-snapshot file (page 3, %s) %s",
           legacy ? "legacy" : "block", msg);
        free(w.p);
    }
}

/* Encoder rules (docs/ltx-format.md 1.5, 1.6): broken ones give SQLITE_MISUSE.
 */
static void
test_encoder_rules(void)
{
    uint8_t page[4096];
    ltx_header h = mkhdr(4096, 10, 2, 2, LTX_FLAG_NO_CHECKSUM, 0), g;
    struct wbuf w = {0};
    ltx_encoder *enc = NULL;
    ltx_trailer t;
    char msg[256];
    uint32_t n = 0;
    int rc;

    memset(page, 7, sizeof(page));
    rc = ltx_encoder_open(&h, wbuf_write, &w, &enc);
    ok(rc == SQLITE_OK && ltx_encoder_page(enc, 3, page) == SQLITE_OK,
       "page 3 accepted");
    ok(ltx_encoder_page(enc, 2, page) == SQLITE_MISUSE,
       "descending page refused: %s", ltx_encoder_errmsg(enc));
    ok(ltx_encoder_page(enc, 3, page) == SQLITE_MISUSE,
       "duplicate page refused: %s", ltx_encoder_errmsg(enc));
    ok(ltx_encoder_page(enc, 11, page) == SQLITE_MISUSE,
       "page above commit refused: %s", ltx_encoder_errmsg(enc));
    ok(ltx_encoder_page(enc, 0, page) == SQLITE_MISUSE, "page 0 refused");
    ok(ltx_encoder_set_legacy(enc, 1) == SQLITE_MISUSE,
       "encoding cannot change after the first page");
    ok(ltx_encoder_finish(enc, 5, &t) == SQLITE_MISUSE,
       "NoChecksum file with a post-apply checksum refused: %s",
       ltx_encoder_errmsg(enc));
    ok(ltx_encoder_page(enc, 10, page) == SQLITE_OK &&
           ltx_encoder_finish(enc, 0, &t) == SQLITE_OK,
       "encoder still usable after refused calls");
    ok(ltx_encoder_page(enc, 10, page) == SQLITE_MISUSE &&
           ltx_encoder_finish(enc, 0, &t) == SQLITE_MISUSE,
       "nothing is accepted after finish");
    ok(ltx_encoder_size(enc) == w.n, "ltx_encoder_size = bytes written");
    rc = decode_mem(w.p, w.n, &g, &t, NULL, 0, &n, msg, sizeof(msg));
    ok(rc == SQLITE_OK && n == 2, "the file decodes (pages 3, 10) %s", msg);
    ltx_encoder_free(enc);
    free(w.p);
}

/* Snapshot, commit-0 and lock page rules of the encoder. */
static void
test_encoder_snapshot_rules(void)
{
    uint8_t page[4096];
    ltx_header h;
    struct wbuf w = {0};
    ltx_encoder *enc = NULL;
    ltx_trailer t;

    memset(page, 7, sizeof(page));
    h = mkhdr(4096, 3, 1, 1, 0, 0);
    ltx_encoder_open(&h, wbuf_write, &w, &enc);
    ok(ltx_encoder_page(enc, 2, page) == SQLITE_MISUSE,
       "snapshot must start at page 1: %s", ltx_encoder_errmsg(enc));
    ltx_encoder_page(enc, 1, page);
    ok(ltx_encoder_page(enc, 3, page) == SQLITE_MISUSE,
       "snapshot cannot skip page 2: %s", ltx_encoder_errmsg(enc));
    ltx_encoder_page(enc, 2, page);
    ok(ltx_encoder_finish(enc, ltx_encoder_checksum(enc), &t) == SQLITE_MISUSE,
       "snapshot missing page 3 refused at finish: %s",
       ltx_encoder_errmsg(enc));
    ltx_encoder_page(enc, 3, page);
    ok(ltx_encoder_finish(enc, LTX_CHECKSUM_FLAG | 1, &t) == SQLITE_MISUSE,
       "snapshot with a wrong post-apply refused: %s", ltx_encoder_errmsg(enc));
    ok(ltx_encoder_finish(enc, 1, &t) == SQLITE_MISUSE,
       "post-apply without bit 63 refused");
    ok(ltx_encoder_finish(enc, ltx_encoder_checksum(enc), &t) == SQLITE_OK,
       "complete snapshot with its checksum finishes");
    ltx_encoder_free(enc);
    free(w.p);

    w = (struct wbuf){0};
    h = mkhdr(4096, 0, 2, 2, 0, LTX_CHECKSUM_FLAG);
    ltx_encoder_open(&h, wbuf_write, &w, &enc);
    ok(ltx_encoder_finish(enc, LTX_CHECKSUM_FLAG | 1, &t) == SQLITE_MISUSE,
       "commit 0 needs post-apply 1<<63: %s", ltx_encoder_errmsg(enc));
    ltx_encoder_free(enc);
    free(w.p);
    w = (struct wbuf){0};
    h = mkhdr(4096, 0, 2, 2, LTX_FLAG_NO_CHECKSUM, 0);
    ok(ltx_encoder_open(&h, wbuf_write, &w, &enc) == SQLITE_MISUSE,
       "commit 0 with NoChecksum refused: %s", ltx_encoder_errmsg(enc));
    ok(ltx_encoder_page(enc, 1, page) == SQLITE_MISUSE &&
           ltx_encoder_finish(enc, 0, &t) == SQLITE_MISUSE && w.n == 0,
       "an encoder whose open failed refuses everything");
    ltx_encoder_free(enc);

    h = mkhdr(65536, 16390, 5, 5, LTX_FLAG_NO_CHECKSUM, 0);
    ltx_encoder_open(&h, wbuf_write, &w, &enc);
    ok(ltx_encoder_page(enc, 16385, page) == SQLITE_MISUSE,
       "lock page refused: %s", ltx_encoder_errmsg(enc));
    ok(ltx_encoder_page(enc, 1, NULL) == SQLITE_MISUSE, "NULL page refused");
    ltx_encoder_free(enc);
    free(w.p);
}

/* Failing callbacks give SQLITE_IOERR, sticky. */
static int
fail_read(void *ctx, void *buf, size_t n, size_t *nRead)
{
    int *left = ctx;

    if ((*left)-- <= 0)
        return 1;
    memset(buf, 0, n);
    memcpy(buf, "LTX1", 4 < n ? 4 : n);
    *nRead = n;
    return 0;
}

static void
test_io_errors(void)
{
    uint8_t db[4 * 4096];
    ltx_header h = mkhdr(4096, 4, 1, 1, 0, 0);
    struct wbuf w = {0};
    ltx_trailer t;
    ltx_encoder *enc = NULL;
    ltx_decoder *d = NULL;
    int left = 0, rc;

    for (size_t i = 0; i < sizeof(db); i++)
        db[i] = (uint8_t)rnd();
    w.fail_at = 1;
    rc = ltx_encoder_open(&h, wbuf_write, &w, &enc);
    for (uint32_t p = 1; p <= 4 && rc == SQLITE_OK; p++)
        rc = ltx_encoder_page(enc, p, db + (p - 1) * 4096);
    if (rc == SQLITE_OK)
        rc = ltx_encoder_finish(enc, ltx_encoder_checksum(enc), &t);
    ok(rc == SQLITE_IOERR && ltx_encoder_finish(enc, ltx_encoder_checksum(enc),
                                                &t) == SQLITE_IOERR,
       "failing write gives SQLITE_IOERR, sticky: %s", ltx_encoder_errmsg(enc));
    ltx_encoder_free(enc);
    free(w.p);
    rc = ltx_decoder_open(fail_read, &left, &d);
    ok(rc == SQLITE_IOERR, "failing read gives SQLITE_IOERR: %s",
       ltx_decoder_errmsg(d));
    ltx_decoder_free(d);
}

/* ---- Hand-built files: what only the decoder's own checks catch ---------- */

/* XXH32 with seed 0, written independently of the codec's. */
static uint32_t
t_rotl(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static uint32_t
t_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint32_t
t_xxh32(const uint8_t *p, size_t n)
{
    const uint32_t P1 = 2654435761u, P2 = 2246822519u, P3 = 3266489917u,
                   P4 = 668265263u, P5 = 374761393u;
    uint32_t v[4] = {P1 + P2, P2, 0, 0 - P1}, h;
    size_t i = 0;

    if (n >= 16) {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 4; k++)
                v[k] = t_rotl(v[k] + t_le32(p + i + 4 * k) * P2, 13) * P1;
        h = t_rotl(v[0], 1) + t_rotl(v[1], 7) + t_rotl(v[2], 12) +
            t_rotl(v[3], 18);
    } else {
        h = P5;
    }
    h += (uint32_t)n;
    for (; i + 4 <= n; i += 4)
        h = t_rotl(h + t_le32(p + i) * P3, 17) * P4;
    for (; i < n; i++)
        h = t_rotl(h + p[i] * P5, 11) * P1;
    h = (h ^ (h >> 15)) * P2;
    h = (h ^ (h >> 13)) * P3;
    return h ^ (h >> 16);
}

static void
t_put32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
t_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* A valid LZ4 block holding n literal bytes only (one sequence). */
static size_t
lit_block(uint8_t *out, const uint8_t *data, size_t n)
{
    size_t k = 0, r;

    out[k++] = (uint8_t)((n >= 15 ? 15 : n) << 4);
    if (n >= 15) {
        for (r = n - 15; r >= 255; r -= 255)
            out[k++] = 255;
        out[k++] = (uint8_t)r;
    }
    memcpy(out + k, data, n);
    return k + n;
}

struct tblk {
    int raw;
    const uint8_t *p;
    uint32_t n;
};

/* An LZ4 frame (legacy page payload) with the given FLG and blocks. */
static size_t
lz4f_build(uint8_t *out, uint8_t flg, uint64_t csize, const struct tblk *b,
           int nb, const uint8_t *content, size_t ncontent)
{
    size_t k = 4, d;

    t_put32le(out, 0x184D2204u);
    out[k++] = flg;
    out[k++] = 0x40;
    if (flg & 0x08)
        for (int i = 0; i < 8; i++)
            out[k++] = (uint8_t)(csize >> (8 * i));
    if (flg & 0x01)
        for (int i = 0; i < 4; i++)
            out[k++] = 0x11;
    d = k - 4;
    out[k] = (uint8_t)(t_xxh32(out + 4, d) >> 8);
    k++;
    for (int i = 0; i < nb; i++) {
        t_put32le(out + k, b[i].n | (b[i].raw ? 0x80000000u : 0));
        memcpy(out + k + 4, b[i].p, b[i].n);
        k += 4 + b[i].n;
        if (flg & 0x10) {
            t_put32le(out + k, t_xxh32(b[i].p, b[i].n));
            k += 4;
        }
    }
    t_put32le(out + k, 0);
    k += 4;
    if (flg & 0x04) {
        t_put32le(out + k, t_xxh32(content, ncontent));
        k += 4;
    }
    return k;
}

/* Test page (1 KiB): its second half repeats its first. */
#define TPS 1024u

static void
tpage(uint8_t *p)
{
    for (uint32_t i = 0; i < TPS / 2; i++)
        p[i] = p[i + TPS / 2] = (uint8_t)(i * 7 + (i >> 3));
}

/* Frame of tpage() whose 2nd block copies the 1st through a match: only
 * decodable with linked blocks (FLG bit 5 clear). */
static size_t
linked_frame(uint8_t *out, uint8_t flg, const uint8_t *page)
{
    uint8_t b2[16];
    size_t k = 0;
    struct tblk b[2];

    b2[k++] = 0x0F;               /* 0 literals, match length 15+ */
    b2[k++] = (uint8_t)(TPS / 2); /* offset 512, little-endian */
    b2[k++] = (uint8_t)(TPS / 2 >> 8);
    b2[k++] = 255; /* 507 = 4 + 15 + 255 + 233 */
    b2[k++] = 233;
    b2[k++] = 0x50; /* 5 final literals */
    memcpy(b2 + k, page + TPS - 5, 5);
    k += 5;
    b[0] = (struct tblk){1, page, TPS / 2};
    b[1] = (struct tblk){0, b2, (uint32_t)k};
    return lz4f_build(out, flg, TPS, b, 2, page, TPS);
}

/* Decodes page 9 from a frame whose payload (n bytes, page flags `flags`)
 * is at g_frame + 6; `got` receives the page. */
static uint8_t g_frame[4096];

static int
frame_try(size_t n, uint16_t flags, uint8_t *got, char *err, size_t nerr)
{
    t_put32(g_frame, 9);
    g_frame[4] = (uint8_t)(flags >> 8);
    g_frame[5] = (uint8_t)flags;
    memset(got, 0, TPS);
    return ltx_frame_decode(g_frame, 6 + n, TPS, 9, got, err, nerr);
}

static void
test_legacy_frames(void)
{
    uint8_t page[TPS], got[TPS], *f = g_frame + 6;
    struct tblk two[2] = {{1, NULL, TPS / 2}, {1, NULL, TPS / 2}};
    char err[256];
    size_t n;
    int rc;

    ok(t_xxh32((const uint8_t *)"", 0) == 0x02CC5D05u &&
           t_xxh32((const uint8_t *)"Nobody inspects the spammish "
                                    "repetition",
                   39) == 0xE2293B2Fu,
       "test xxh32 matches known values");
    tpage(page);
    two[0].p = page;
    two[1].p = page + TPS / 2;
    n = linked_frame(f, 0x40 | 0x10 | 0x08 | 0x04, page);
    rc = frame_try(n, 0, got, err, sizeof(err));
    ok(rc == SQLITE_OK && memcmp(got, page, TPS) == 0,
       "legacy frame: linked blocks, block/content checksums, content size "
       "%s",
       rc ? err : "");
    n = linked_frame(f, 0x60 | 0x04, page);
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "the same blocks declared independent are refused: %s", err);
    n = lz4f_build(f, 0x60 | 0x10 | 0x04, 0, two, 2, page, TPS);
    rc = frame_try(n, 0, got, err, sizeof(err));
    ok(rc == SQLITE_OK && memcmp(got, page, TPS) == 0,
       "legacy frame: two stored blocks %s", rc ? err : "");
    n = lz4f_build(f, 0x60 | 0x08, TPS - 1, two, 2, page, TPS);
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "content size mismatch: %s", err);
    n = lz4f_build(f, 0x60 | 0x01, 0, two, 2, page, TPS);
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_FORMAT,
       "dictionary id: %s", err);
    n = lz4f_build(f, 0x60 | 0x10, 0, two, 2, page, TPS);
    f[7 + 4 + TPS / 2] ^= 1;
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "block checksum: %s", err);
    n = lz4f_build(f, 0x60 | 0x04, 0, two, 2, page, TPS);
    f[n - 1] ^= 1;
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "content checksum: %s", err);
    f[n - 1] ^= 1;
    f[6] ^= 1;
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "header checksum: %s", err);
}

static void
test_frame_errors(void)
{
    uint8_t page[TPS], got[TPS], big[TPS + 1], *f = g_frame + 6;
    struct tblk two[2] = {{1, NULL, TPS / 2}, {1, NULL, TPS / 2}};
    char err[256];
    size_t n;
    int rc;

    tpage(page);
    two[0].p = page;
    two[1].p = page + TPS / 2;
    n = lz4f_build(f, 0x60, 0, two, 2, page, TPS);
    ok(frame_try(n + 1, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "byte after the frame: %s", err);
    n = lz4f_build(f, 0x60, 0, two, 1, page, TPS);
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "frame short of a page: %s", err);
    memcpy(big, page, TPS);
    big[TPS] = 1;
    two[0] = (struct tblk){1, big, TPS + 1};
    n = lz4f_build(f, 0x60, 0, two, 1, big, TPS + 1);
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "stored block beyond the page: %s", err);
    two[0] = (struct tblk){1, page, 0};
    two[1] = (struct tblk){1, page, TPS};
    n = lz4f_build(f, 0x60, 0, two, 2, page, TPS);
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "empty stored block: %s", err);
    n = linked_frame(f, 0x40, page);
    f[4] = 0x80 | 0x40; /* version 2 */
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "frame version: %s", err);
    f[0] ^= 1;
    ok(frame_try(n, 0, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "frame magic: %s", err);
    n = lit_block(f + 4, page, TPS);
    t_put32(f, (uint32_t)n);
    rc = frame_try(n + 4, 1, got, err, sizeof(err));
    ok(rc == SQLITE_OK && memcmp(got, page, TPS) == 0,
       "block frame of literals %s", rc ? err : "");
    t_put32(f, (uint32_t)n + 1);
    ok(frame_try(n + 4, 1, got, err, sizeof(err)) == SQLITE_CORRUPT,
       "size prefix vs frame length: %s", err);
    t_put32(f, (uint32_t)n);
    ok(frame_try(n + 4, 3, got, err, sizeof(err)) == SQLITE_FORMAT,
       "unknown page flag: %s", err);
    ok(frame_try(n + 4, 1, got, err, 0) == SQLITE_OK &&
           ltx_frame_decode(g_frame, n + 10, 1000, 9, got, err, sizeof(err)) ==
               SQLITE_MISUSE,
       "bad page size is a caller error: %s", err);
}

/* A hand-assembled frame: page header flags, payload and its page. */
struct tframe {
    uint32_t pgno;
    uint16_t flags;
    const uint8_t *payload;
    uint32_t n;
    const uint8_t *page;
};

enum { IDX_OK, IDX_BAD_OFFSET, IDX_BAD_LEN, IDX_LONG_VARINT, IDX_DROP };

/* Assembles an LTX file with a correct file checksum around the frames
 * (whatever they say), the index altered per idx_mode. */
static size_t
build_ltx(uint8_t *out, const ltx_header *h, const struct tframe *f, int nf,
          uint64_t post, int idx_mode)
{
    uint64_t crc, off[16], len;
    size_t k = LTX_HEADER_SIZE, i0, sz[16];
    uint8_t *q;

    ltx_header_encode(h, out);
    crc = crc64_update(0, out, LTX_HEADER_SIZE);
    for (int i = 0; i < nf; i++) {
        size_t hl = f[i].flags ? 10 : 6;
        off[i] = k;
        t_put32(out + k, f[i].pgno);
        out[k + 4] = 0;
        out[k + 5] = (uint8_t)f[i].flags;
        if (f[i].flags)
            t_put32(out + k + 6, f[i].n);
        crc = crc64_update(crc, out + k, hl);
        crc = crc64_update(crc, f[i].page, h->page_size);
        memcpy(out + k + hl, f[i].payload, f[i].n);
        k += hl + f[i].n;
        sz[i] = hl + f[i].n;
    }
    memset(out + k, 0, 6);
    crc = crc64_update(crc, out + k, 6);
    k += 6;
    i0 = k;
    for (int i = 0; i < nf - (idx_mode == IDX_DROP); i++) {
        uint64_t v[3] = {f[i].pgno, off[i] + (idx_mode == IDX_BAD_OFFSET),
                         sz[i]};
        for (int j = 0; j < 3; j++) {
            do {
                out[k++] = (uint8_t)(v[j] | (v[j] >= 0x80 ? 0x80 : 0));
                v[j] >>= 7;
            } while (v[j]);
            if (j == 0 && idx_mode == IDX_LONG_VARINT) {
                out[k - 1] |= 0x80; /* same value, one more byte */
                out[k++] = 0;
            }
        }
    }
    out[k++] = 0;
    len = k - i0 + (idx_mode == IDX_BAD_LEN);
    for (int i = 0; i < 8; i++)
        out[k++] = (uint8_t)(len >> (56 - 8 * i));
    q = out + k;
    for (int i = 0; i < 8; i++)
        q[i] = (uint8_t)(post >> (56 - 8 * i));
    crc = crc64_update(crc64_update(crc, out + i0, k - i0), q, 8);
    crc |= LTX_CHECKSUM_FLAG;
    for (int i = 0; i < 8; i++)
        q[8 + i] = (uint8_t)(crc >> (56 - 8 * i));
    return k + 16;
}

/* Frames for the hand-built files: pages 1 (literals), 3 (literals) and
 * 4 (linked legacy frame). */
static struct {
    uint8_t p1[TPS], p2[TPS], b1[TPS + 16], b2[TPS + 16], lf[2048];
    struct tframe fr[3];
    uint8_t out[4 * TPS];
} B;

static void
built_fixture(void)
{
    tpage(B.p1);
    memset(B.p2, 0x5a, sizeof(B.p2));
    B.fr[0] = (struct tframe){1, 1, B.b1, 0, B.p1};
    B.fr[0].n = (uint32_t)lit_block(B.b1, B.p1, TPS);
    B.fr[1] = (struct tframe){3, 1, B.b2, 0, B.p2};
    B.fr[1].n = (uint32_t)lit_block(B.b2, B.p2, TPS);
    B.fr[2] = (struct tframe){4, 0, B.lf, 0, B.p1};
    B.fr[2].n = (uint32_t)linked_frame(B.lf, 0x40 | 0x04, B.p1);
}

/* Builds a file of B.fr[0..nf) and decodes it (extra: bytes appended). */
static int
built_rc(const ltx_header *h, int nf, uint64_t post, int mode, size_t extra,
         uint32_t *cnt, char *msg, size_t nmsg)
{
    size_t n = build_ltx(B.out, h, B.fr, nf, post, mode);
    ltx_header g;
    ltx_trailer t;

    memset(B.out + n, 0, extra);
    return decode_mem(B.out, n + extra, &g, &t, NULL, 0, cnt, msg, nmsg);
}

static void
test_decoder_index(void)
{
    static const struct {
        const char *what, *needle;
        int mode;
    } idx[] = {
        {"index offset off by one", "does not match", IDX_BAD_OFFSET},
        {"index length field", "length field", IDX_BAD_LEN},
        {"index missing an entry", "do not match", IDX_DROP},
    };
    ltx_header h = mkhdr(TPS, 4, 2, 2, LTX_FLAG_NO_CHECKSUM, 0);
    char msg[256];
    uint32_t cnt = 0;
    int rc;

    built_fixture();
    rc = built_rc(&h, 2, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_OK && cnt == 2, "hand-built file decodes %s", msg);
    rc = built_rc(&h, 3, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_OK && cnt == 3,
       "mixed block and linked legacy frames in one file %s", msg);
    rc = built_rc(&h, 2, 0, IDX_LONG_VARINT, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_OK, "non-minimal index varints are accepted (as Go) %s",
       msg);
    for (size_t i = 0; i < 3; i++) {
        rc = built_rc(&h, 2, 0, idx[i].mode, 0, &cnt, msg, sizeof(msg));
        ok(rc == SQLITE_CORRUPT && strstr(msg, idx[i].needle),
           "%s (file checksum right): %s", idx[i].what, msg);
    }
    rc = built_rc(&h, 2, 0, IDX_OK, 1, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT && strstr(msg, "after the trailer"),
       "byte after the trailer: %s", msg);
}

static void
test_decoder_order(void)
{
    ltx_header h = mkhdr(TPS, 4, 2, 2, LTX_FLAG_NO_CHECKSUM, 0);
    char msg[256];
    uint32_t cnt = 0;
    int rc;

    built_fixture();
    B.fr[1].pgno = 5;
    rc = built_rc(&h, 2, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT, "page above commit: %s", msg);
    B.fr[1].pgno = 1;
    rc = built_rc(&h, 2, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT, "repeated page: %s", msg);
    B.fr[1].pgno = 3;
    h = mkhdr(TPS, 4, 1, 1, LTX_FLAG_NO_CHECKSUM, 0);
    rc = built_rc(&h, 2, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT, "snapshot skipping page 2: %s", msg);
    B.fr[1].pgno = 2;
    rc = built_rc(&h, 2, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT && strstr(msg, "commit"),
       "snapshot ending before its commit: %s", msg);
    h = mkhdr(TPS, 2, 1, 1, 0, 0);
    rc = built_rc(&h, 2, LTX_CHECKSUM_FLAG | 5, IDX_OK, 0, &cnt, msg,
                  sizeof(msg));
    ok(rc == SQLITE_CORRUPT && strstr(msg, "post-apply"),
       "snapshot post-apply not the checksum of its pages: %s", msg);
    rc = built_rc(&h, 2, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT && strstr(msg, "trailer"),
       "post-apply 0 with checksums on: %s", msg);
    h = mkhdr(TPS, 0, 2, 2, 0, LTX_CHECKSUM_FLAG);
    rc = built_rc(&h, 0, LTX_CHECKSUM_FLAG | 1, IDX_OK, 0, &cnt, msg,
                  sizeof(msg));
    ok(rc == SQLITE_CORRUPT, "commit 0 with a post-apply other than 1<<63: %s",
       msg);
    h = mkhdr(TPS, 2000000, 2, 2, LTX_FLAG_NO_CHECKSUM, 0);
    B.fr[0].pgno = ltx_lock_pgno(TPS);
    rc = built_rc(&h, 1, 0, IDX_OK, 0, &cnt, msg, sizeof(msg));
    ok(rc == SQLITE_CORRUPT && strstr(msg, "lock page"),
       "lock page in a file: %s", msg);
}

/* Decoder API misuse and small paths. */
static void
test_decoder_api(void)
{
    size_t n = 0;
    uint8_t *f = slurp("two-page.ltx", &n), page[4096];
    struct ltx_membuf mb = {f, n, 0};
    ltx_decoder *d = NULL;
    ltx_trailer t;
    uint32_t pgno = 0;
    int rc;

    if (!f)
        return;
    rc = ltx_decoder_open(ltx_membuf_read, &mb, &d);
    ok(rc == SQLITE_OK && ltx_decoder_read(d, page) == SQLITE_MISUSE,
       "read without a pending page: %s", ltx_decoder_errmsg(d));
    ok(ltx_decoder_next(d, &pgno) == SQLITE_OK && pgno == 1 &&
           ltx_decoder_next(d, &pgno) == SQLITE_MISUSE,
       "next with a page pending: %s", ltx_decoder_errmsg(d));
    ok(ltx_decoder_close(d, &t) == SQLITE_OK &&
           t.post_apply == 0xbfd23a34005c540eull,
       "close skips (and checks) unread pages");
    ok(ltx_decoder_close(d, &t) == SQLITE_OK &&
           ltx_decoder_next(d, &pgno) == SQLITE_DONE,
       "close is idempotent; nothing follows it");
    ltx_decoder_free(d);
    ltx_decoder_free(NULL);
    ltx_encoder_free(NULL);
    mb = (struct ltx_membuf){f, 50, 0};
    rc = ltx_decoder_open(ltx_membuf_read, &mb, &d);
    ok(rc == SQLITE_CORRUPT && strstr(ltx_decoder_errmsg(d), "offset 0"),
       "50-byte file: %s", ltx_decoder_errmsg(d));
    ok(ltx_decoder_page(d, &pgno, page) == SQLITE_CORRUPT &&
           ltx_decoder_close(d, &t) == SQLITE_CORRUPT,
       "a decoder whose open failed stays failed");
    ltx_decoder_free(d);
    rc = ltx_decoder_open(NULL, NULL, &d);
    ok(rc == SQLITE_MISUSE && ltx_decoder_page(d, &pgno, page) == rc,
       "no read callback: %s", ltx_decoder_errmsg(d));
    ltx_decoder_free(d);
    free(f);
}

/* The file-descriptor callbacks: encode to a temporary file, read it back,
 * expand it into another. */
static int
tmpfile_fd(void)
{
    char path[4096];
    const char *tmp = getenv("TMPDIR");
    int fd;

    snprintf(path, sizeof(path), "%s/test_ltx.XXXXXX", tmp ? tmp : "/tmp");
    if ((fd = mkstemp(path)) >= 0)
        unlink(path);
    return fd;
}

static void
test_fd_callbacks(void)
{
    size_t nd = 0;
    uint8_t *db = slurp("small-4096.db", &nd), *back = malloc(nd + 1);
    ltx_header h = mkhdr(4096, 6, 1, 1, 0, 0);
    ltx_encoder *enc = NULL;
    ltx_decoder *d = NULL;
    ltx_trailer t;
    uint64_t ck = 0;
    char err[256] = "";
    int fd = tmpfile_fd(), out = tmpfile_fd(), rc;

    if (!ok(db && back && fd >= 0 && out >= 0, "temporary files"))
        goto done;
    rc = ltx_encoder_open(&h, ltx_fd_write, &fd, &enc);
    for (uint32_t p = 1; p <= 6 && rc == SQLITE_OK; p++)
        rc = ltx_encoder_page(enc, p, db + (size_t)(p - 1) * 4096);
    if (rc == SQLITE_OK)
        rc = ltx_encoder_finish(enc, ltx_encoder_checksum(enc), &t);
    ok(rc == SQLITE_OK &&
           lseek(fd, 0, SEEK_END) == (off_t)ltx_encoder_size(enc),
       "ltx_fd_write: %llu bytes", (unsigned long long)ltx_encoder_size(enc));
    ltx_encoder_free(enc);
    lseek(fd, 0, SEEK_SET);
    rc = ltx_decoder_open(ltx_fd_read, &fd, &d);
    if (rc == SQLITE_OK)
        rc = ltx_expand(d, ltx_fd_pwrite, &out, &ck, err, sizeof(err));
    ok(rc == SQLITE_OK && ck == 0xc609b1c7a1790f8eull &&
           pread(out, back, nd + 1, 0) == (ssize_t)nd &&
           memcmp(back, db, nd) == 0,
       "ltx_fd_read + ltx_fd_pwrite restore small-4096.db %s", err);
    ltx_decoder_free(d);
done:
    if (fd >= 0)
        close(fd);
    if (out >= 0)
        close(out);
    free(back);
    free(db);
}

/* ---- Merge and expand ---------------------------------------------------- */

#define MPS  1024u /* page size of the merge tests */
#define MAXP 8u

struct state {
    uint8_t img[MAXP * MPS];
    uint32_t commit;
};

static uint64_t
state_cksum(const struct state *s)
{
    return ltx_db_checksum(s->img, MPS, s->commit);
}

/* An LTX file taking `before` to `after` with pages pgnos[0..n). */
static struct wbuf
make_file(const struct state *before, const struct state *after,
          const uint32_t *pgnos, uint32_t n, uint64_t min, uint64_t max,
          int nock)
{
    ltx_header h =
        mkhdr(MPS, after->commit, min, max, nock ? LTX_FLAG_NO_CHECKSUM : 0,
              (nock || min == 1) ? 0 : state_cksum(before));
    struct wbuf w = {0};
    ltx_trailer t;

    if (encode(&h, after->img, min == 1 ? NULL : pgnos, n, 0,
               nock ? 0 : state_cksum(after), &w, &t) != SQLITE_OK)
        diag("make_file %llu-%llu failed", (unsigned long long)min,
             (unsigned long long)max);
    return w;
}

/* Opens decoders over files[0..n) and merges them into *out. */
static int
merge_files(struct wbuf *files, int n, uint32_t flags, struct wbuf *out,
            ltx_header *oh, ltx_trailer *ot, char *err, size_t nerr)
{
    struct ltx_membuf mb[8];
    ltx_decoder *d[8] = {0};
    int rc = SQLITE_OK;

    err[0] = 0;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        mb[i] = (struct ltx_membuf){files[i].p, files[i].n, 0};
        rc = ltx_decoder_open(ltx_membuf_read, &mb[i], &d[i]);
    }
    if (rc == SQLITE_OK)
        rc = ltx_merge(d, n, flags, 1234, wbuf_write, out, oh, ot, err, nerr);
    for (int i = 0; i < n; i++)
        ltx_decoder_free(d[i]);
    return rc;
}

static int
expand_files(struct wbuf *files, int n, struct image *im, uint64_t *ck,
             char *err, size_t nerr)
{
    struct ltx_membuf mb[8];
    ltx_decoder *d[8] = {0};
    ltx_header oh;
    int rc = SQLITE_OK;

    err[0] = 0;
    for (int i = 0; i < n && rc == SQLITE_OK; i++) {
        mb[i] = (struct ltx_membuf){files[i].p, files[i].n, 0};
        rc = ltx_decoder_open(ltx_membuf_read, &mb[i], &d[i]);
    }
    if (rc == SQLITE_OK)
        rc = ltx_merge_expand(d, n, image_pwrite, im, &oh, ck, err, nerr);
    for (int i = 0; i < n; i++)
        ltx_decoder_free(d[i]);
    return rc;
}

/* Decodes f and checks it holds exactly `want`'s pages listed in pgnos
 * (or all of them for a snapshot). */
static int
check_file(const struct wbuf *f, const struct state *want, uint32_t npg,
           ltx_header *g, ltx_trailer *t, char *msg, size_t nmsg)
{
    struct state got;
    uint32_t n = 0;
    int rc;

    memset(&got, 0, sizeof(got));
    rc = decode_mem(f->p, f->n, g, t, got.img, MAXP, &n, msg, nmsg);
    if (rc == SQLITE_OK && n == npg && npg == want->commit)
        rc = memcmp(got.img, want->img, (size_t)npg * MPS) ? -1 : 0;
    else if (rc == SQLITE_OK && n != npg)
        rc = -2;
    return rc;
}

/* The merge fixture: states of a database and LTX files between them. */
static struct {
    struct state s0, s1, s2, s3;
    struct wbuf f[8]; /* S, I1, I2, the same NoChecksum, two bad ones */
} M;

static void
merge_fixture(void)
{
    static const uint32_t p25[] = {2, 5}, p1[] = {1}, p6[] = {6};

    memset(&M, 0, sizeof(M));
    M.s0.commit = 4;
    for (uint32_t p = 1; p <= 4; p++)
        fill_page(M.s0.img + (p - 1) * MPS, MPS, p, (int)p);
    M.s1 = M.s0; /* TXID 2: page 2 changes, page 5 appears */
    M.s1.commit = 5;
    fill_page(M.s1.img + 1 * MPS, MPS, 2, 7);
    fill_page(M.s1.img + 4 * MPS, MPS, 5, 8);
    M.s2 = M.s1; /* TXID 3-4: page 1 changes, shrink to 3 pages */
    M.s2.commit = 3;
    fill_page(M.s2.img, MPS, 1, 9);
    memset(M.s2.img + 3 * MPS, 0, 2 * MPS);
    M.s3 = M.s0; /* TXID 2 (alternative): grows to 6, holds only page 6 */
    M.s3.commit = 6;
    fill_page(M.s3.img + 5 * MPS, MPS, 6, 4);
    M.f[0] = make_file(NULL, &M.s0, NULL, 0, 1, 1, 0); /* S */
    M.f[1] = make_file(&M.s0, &M.s1, p25, 2, 2, 2, 0); /* I1 */
    M.f[2] = make_file(&M.s1, &M.s2, p1, 1, 3, 4, 0);  /* I2 */
    M.f[3] = make_file(NULL, &M.s0, NULL, 0, 1, 1, 1); /* S, NoChecksum */
    M.f[4] = make_file(&M.s0, &M.s1, p25, 2, 2, 2, 1); /* I1, NoChecksum */
    M.f[5] = make_file(&M.s1, &M.s2, p1, 1, 3, 4, 1);  /* I2, NoChecksum */
    M.f[6] = make_file(&M.s0, &M.s3, p6, 1, 2, 2, 0);  /* leaves a hole */
    M.f[7] = make_file(&M.s2, &M.s1, p25, 2, 2, 2, 0); /* wrong pre-apply */
}

static void
test_merge_basic(void)
{
    struct wbuf out = {0};
    struct state got;
    ltx_header oh, g;
    ltx_trailer ot, t;
    char err[256], msg[256];
    uint32_t n = 0;
    int rc;

    rc = merge_files(M.f, 3, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_OK && oh.min_txid == 1 && oh.max_txid == 4 &&
           oh.commit == 3 && oh.flags == 0 && oh.timestamp == 1234 &&
           ot.post_apply == state_cksum(&M.s2),
       "merge [S, I1, I2] gives snapshot 1-4 of 3 pages %s", err);
    rc = check_file(&out, &M.s2, 3, &g, &t, msg, sizeof(msg));
    ok(rc == SQLITE_OK,
       "merged snapshot decodes: newest page wins, pages beyond commit "
       "dropped %s",
       msg);
    free(out.p);

    out = (struct wbuf){0};
    rc = merge_files(M.f + 1, 2, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_OK && oh.min_txid == 2 && oh.max_txid == 4 &&
           oh.commit == 3 && oh.pre_apply == state_cksum(&M.s0) &&
           ot.post_apply == state_cksum(&M.s2),
       "merge [I1, I2] keeps the checksum chain %s", err);
    memset(&got, 0, sizeof(got));
    rc = decode_mem(out.p, out.n, &g, &t, got.img, MAXP, &n, msg, sizeof(msg));
    ok(rc == SQLITE_OK && n == 2 && memcmp(got.img, M.s2.img, 2 * MPS) == 0,
       "merged incremental holds pages 1 (I2) and 2 (I1), not 5 %s", msg);
    free(out.p);
}

static void
test_merge_overlap(void)
{
    struct wbuf x = {0}, y = {0}, out = {0}, xy[2];
    ltx_header oh, g;
    ltx_trailer ot, t;
    char err[256], msg[256];
    int rc;

    merge_files(M.f, 2, 0, &x, &oh, &ot, err, sizeof(err));
    merge_files(M.f + 1, 2, 0, &y, &oh, &ot, err, sizeof(err));
    xy[0] = x;
    xy[1] = y;
    rc = merge_files(xy, 2, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_OK && oh.min_txid == 1 && oh.max_txid == 4 &&
           check_file(&out, &M.s2, 3, &g, &t, msg, sizeof(msg)) == 0,
       "overlapping inputs 1-2 and 2-4 merge to the same snapshot %s", err);
    free(out.p);
    xy[1] = M.f[1];
    out = (struct wbuf){0};
    rc = merge_files(xy, 2, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_CORRUPT, "non-advancing input refused: %s", err);
    free(out.p);
    free(x.p);
    free(y.p);
}

/* Merges the two files a and b, expecting SQLITE_CORRUPT naming needle. */
static void
merge_refused(struct wbuf a, struct wbuf b, const char *what,
              const char *needle)
{
    struct wbuf in[2] = {a, b}, out = {0};
    ltx_header oh;
    ltx_trailer ot;
    char err[256];
    int rc = merge_files(in, 2, 0, &out, &oh, &ot, err, sizeof(err));

    ok(rc == SQLITE_CORRUPT && strstr(err, needle), "%s refused: %s", what,
       err);
    free(out.p);
}

static void
test_merge_rejects(void)
{
    ltx_header h = mkhdr(2048, 1, 2, 2, LTX_FLAG_NO_CHECKSUM, 0), oh;
    struct wbuf other = {0}, flip[3] = {M.f[0], M.f[1], M.f[2]}, out = {0};
    uint8_t pg[2048] = {1}, *c;
    uint32_t one = 1;
    ltx_trailer t, ot;
    char err[256];
    int rc;

    merge_refused(M.f[0], M.f[2], "gap", "0000000000000003-");
    merge_refused(M.f[0], M.f[2], "gap (message)", "gap");
    encode(&h, pg, &one, 1, 0, 0, &other, &t);
    merge_refused(M.f[0], other, "page size mismatch", "page size");
    merge_refused(M.f[0], M.f[7], "broken checksum chain", "pre-apply");
    merge_refused(M.f[0], M.f[6], "hole in the merged snapshot", "page 5");
    free(other.p);

    c = malloc(M.f[1].n);
    memcpy(c, M.f[1].p, M.f[1].n);
    c[M.f[1].n / 2] ^= 0x10;
    flip[1].p = c;
    rc = merge_files(flip, 3, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_CORRUPT && strstr(err, "input 1"),
       "corrupt input detected during merge: %s", err);
    free(out.p);
    free(c);
}

static void
test_merge_nochecksum(void)
{
    struct wbuf out = {0};
    ltx_header oh, g;
    ltx_trailer ot, t;
    char err[256], msg[256] = "";
    int rc;

    rc = merge_files(M.f + 3, 3, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_OK && oh.flags == 0 &&
           ot.post_apply == state_cksum(&M.s2) &&
           check_file(&out, &M.s2, 3, &g, &t, msg, sizeof(msg)) == 0,
       "NoChecksum inputs merge to a snapshot with a computed checksum %s",
       err);
    free(out.p);
    out = (struct wbuf){0};
    rc = merge_files(M.f + 4, 2, 0, &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_OK && oh.flags == LTX_FLAG_NO_CHECKSUM &&
           ot.post_apply == 0,
       "NoChecksum incrementals merge to a NoChecksum file %s", err);
    free(out.p);
    out = (struct wbuf){0};
    rc = merge_files(M.f, 3, LTX_FLAG_NO_CHECKSUM | LTX_MERGE_LEGACY_FRAMES,
                     &out, &oh, &ot, err, sizeof(err));
    ok(rc == SQLITE_OK && oh.flags == LTX_FLAG_NO_CHECKSUM && out.n > 106 &&
           out.p[105] == 0 &&
           check_file(&out, &M.s2, 3, &g, &t, msg, sizeof(msg)) == 0,
       "merge to NoChecksum legacy frames %s %s", err, msg);
    free(out.p);
}

static void
test_merge_expand(void)
{
    struct image im = {calloc(MAXP, MPS), MAXP * MPS, 0, 0};
    uint64_t ck = 0;
    char err[256];
    int rc;

    rc = expand_files(M.f, 3, &im, &ck, err, sizeof(err));
    ok(rc == SQLITE_OK && im.high == 3 * MPS &&
           memcmp(im.p, M.s2.img, 3 * MPS) == 0 && ck == state_cksum(&M.s2),
       "merge_expand [S, I1, I2] writes the restored database %s", err);
    rc = expand_files(M.f + 3, 3, &im, &ck, err, sizeof(err));
    ok(rc == SQLITE_OK && ck == state_cksum(&M.s2),
       "merge_expand of NoChecksum files computes the checksum %s", err);
    rc = expand_files(M.f + 1, 2, &im, &ck, err, sizeof(err));
    ok(rc == SQLITE_MISUSE, "merge_expand without a snapshot: %s", err);
    free(im.p);
}

static void
test_merge(void)
{
    merge_fixture();
    test_merge_basic();
    test_merge_overlap();
    test_merge_rejects();
    test_merge_nochecksum();
    test_merge_expand();
    for (int i = 0; i < 8; i++)
        free(M.f[i].p);
}

/* ---- A database spanning the lock page ----------------------------------- */

#define LPS 65536u

/* Page pgno of the sparse lock-page database: zeros but a marker. */
static void
lock_db_page(uint8_t *p, uint32_t pgno)
{
    memset(p, 0, LPS);
    memcpy(p, &pgno, sizeof(pgno));
    memcpy(p + LPS - 8, "litestrm", 8);
}

struct lock_check {
    uint32_t lock;
    uint64_t high;
    int bad;
    uint8_t *want;
    uint32_t pages;
};

static int
lock_pwrite(void *ctx, const void *buf, size_t n, uint64_t off)
{
    struct lock_check *c = ctx;
    const uint8_t *p = buf;

    if (off % LPS || n % LPS)
        c->bad++;
    for (size_t i = 0; i < n / LPS; i++) {
        const uint8_t *q = p + i * LPS;
        uint32_t pgno = (uint32_t)(off / LPS + i + 1);
        c->pages++;
        if (pgno == c->lock || pgno % 251 == 0 || pgno > c->lock - 3) {
            /* the lock page, its neighbours and a sample: every byte */
            if (pgno == c->lock)
                memset(c->want, 0, LPS);
            else
                lock_db_page(c->want, pgno);
            c->bad += memcmp(q, c->want, LPS) != 0;
        } else {
            c->bad += memcmp(q, &pgno, 4) != 0 ||
                      memcmp(q + LPS - 8, "litestrm", 8) != 0;
        }
    }
    if (off + n > c->high)
        c->high = off + n;
    return 0;
}

static void
test_lock_page(void)
{
    uint32_t lock = ltx_lock_pgno(LPS), commit = lock + 2, pgno;
    ltx_header h = mkhdr(LPS, commit, 1, 1, 0, 0);
    struct wbuf w = {0};
    struct lock_check c = {lock, 0, 0, malloc(LPS), 0};
    uint8_t *page = malloc(LPS);
    ltx_encoder *enc = NULL;
    ltx_decoder *d = NULL;
    ltx_trailer t;
    struct ltx_membuf mb;
    uint64_t ck = 0;
    char err[256] = "";
    int rc = ltx_encoder_open(&h, wbuf_write, &w, &enc), refused = 0;

    for (pgno = 1; pgno <= commit && rc == SQLITE_OK; pgno++) {
        if (pgno == lock) {
            refused = ltx_encoder_page(enc, pgno, page) == SQLITE_MISUSE;
            continue;
        }
        lock_db_page(page, pgno);
        rc = ltx_encoder_page(enc, pgno, page);
    }
    if (rc == SQLITE_OK)
        rc = ltx_encoder_finish(enc, ltx_encoder_checksum(enc), &t);
    ok(rc == SQLITE_OK && refused,
       "snapshot of %u 64 KiB pages skips lock page %u (%zu bytes) %s", commit,
       lock, w.n, ltx_encoder_errmsg(enc));
    ltx_encoder_free(enc);

    mb = (struct ltx_membuf){w.p, w.n, 0};
    rc = ltx_decoder_open(ltx_membuf_read, &mb, &d);
    if (rc == SQLITE_OK)
        rc = ltx_expand(d, lock_pwrite, &c, &ck, err, sizeof(err));
    ok(rc == SQLITE_OK && c.bad == 0 && c.high == (uint64_t)commit * LPS &&
           ck == t.post_apply && c.pages == commit,
       "it decodes and expands to %llu bytes: every page in place, lock "
       "page zero-filled, checksum verified %s",
       (unsigned long long)c.high, err);
    ltx_decoder_free(d);
    free(c.want);
    free(page);
    free(w.p);
}

/* ---- Corruption sweep -----------------------------------------------------
 */

/*
 * Decodes f with byte `at` XOR mask (or truncated to `at` bytes when trunc).
 * Returns 0 if rejected, 1 if accepted with exactly the original pages and
 * trailer (possible: LZ4 can encode the same bytes several ways, e.g. a
 * match offset into a run of equal bytes, and every checksum covers the
 * decompressed page), 2 if accepted with anything else.
 */
static int
sweep_one(const uint8_t *f, size_t n, size_t at, uint8_t mask, int trunc,
          uint8_t *copy, const uint8_t *db, uint32_t npages, uint32_t page_size,
          uint8_t *img, const ltx_trailer *want)
{
    ltx_header h;
    ltx_trailer t;
    char msg[256];

    memcpy(copy, f, n);
    if (!trunc)
        copy[at] ^= mask;
    memset(img, 0, (size_t)npages * page_size);
    if (decode_mem(copy, trunc ? at : n, &h, &t, img, npages, NULL, msg,
                   sizeof(msg)) != SQLITE_OK)
        return 0;
    return (h.commit == npages && h.page_size == page_size &&
            t.post_apply == want->post_apply &&
            t.file_checksum == want->file_checksum &&
            memcmp(img, db, (size_t)npages * page_size) == 0)
               ? 1
               : 2;
}

/* 1 if byte `at` lies in the compressed payload of a frame. */
static int
in_payload(const ltx_index_entry *e, uint32_t count, size_t at)
{
    for (uint32_t i = 0; i < count; i++) {
        if (at >= e[i].offset + LTX_PAGE_HEADER_SIZE + LTX_PAGE_SIZE_PREFIX &&
            at < e[i].offset + e[i].size)
            return 1;
    }
    return 0;
}

static void
sweep_file(const struct vec *v, size_t stride)
{
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    size_t n = 0, nd = 0, tried = 0, harmful = 0, benign = 0, cut = 0;
    size_t cut_ok = 0, outside = 0;
    uint8_t *f = slurp(v->ltx, &n), *db = slurp(v->db, &nd), *copy, *img;
    ltx_index_entry *e = NULL;
    uint32_t count = 0;
    ltx_header h;
    ltx_trailer want;
    char msg[256];

    if (!f || !db ||
        decode_mem(f, n, &h, &want, NULL, 0, NULL, msg, sizeof(msg)) !=
            SQLITE_OK ||
        ltx_index_parse(f, n, n, &e, &count, NULL, NULL, msg, sizeof(msg)) !=
            SQLITE_OK) {
        ok(0, "%s: sweep setup", v->ltx);
        goto out;
    }
    copy = malloc(n);
    img = malloc(nd);
    for (size_t at = 0; at < n; at += stride) {
        /* tiny files get every mask, larger ones one mask per byte */
        size_t m0 = n < 1024 ? 0 : at % 3, m1 = n < 1024 ? 3 : m0 + 1;
        for (size_t m = m0; m < m1; m++) {
            int r = sweep_one(f, n, at, masks[m], 0, copy, db, v->pages,
                              v->page_size, img, &want);
            harmful += r == 2;
            benign += r == 1;
            outside += r == 1 && !in_payload(e, count, at);
            if (r && benign + harmful < 3)
                diag("%s: byte %zu ^ 0x%02x accepted (%s)", v->ltx, at,
                     masks[m], r == 1 ? "same pages" : "DIFFERENT");
            tried++;
        }
    }
    for (size_t at = 0; at < n; at += n < 1024 ? 1 : stride * 3 - 1) {
        cut_ok += sweep_one(f, n, at, 0, 1, copy, db, v->pages, v->page_size,
                            img, &want) != 0;
        cut++;
    }
    ok(harmful == 0 && outside == 0,
       "%s: %zu single-byte changes: every one rejected but %zu inside "
       "LZ4 payloads that decode to the same pages",
       v->ltx, tried, benign);
    ok(cut_ok == 0, "%s: all %zu truncations rejected", v->ltx, cut);
    free(img);
    free(copy);
out:
    free(e);
    free(db);
    free(f);
}

static void
test_corruption(void)
{
    for (size_t i = 0; i < NVEC; i++) {
        size_t stride = g_vecs[i].pages <= 6         ? 1
                        : g_vecs[i].page_size == 512 ? 29
                                                     : 1499;
        sweep_file(&g_vecs[i], stride);
    }
}

/* Runs one test group and notes how long it took. */
static void
run(const char *name, void (*fn)(void))
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    fn();
    clock_gettime(CLOCK_MONOTONIC, &b);
    diag("%s: %.2f s", name,
         (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
}

int
main(void)
{
    static char dir[4096];
    const char *base = getenv("LITESTREAM_TESTDATA");

    snprintf(dir, sizeof(dir), "%s/ltx", base ? base : "test/data");
    g_dir = dir;
    run("crc", test_crc);
    run("helpers", test_helpers);
    run("header rules", test_header_rules);
    run("vectors", test_vectors);
    run("corrupt vectors", test_corrupt_vectors);
    run("re-encode", test_reencode);
    run("worked example", test_worked_example);
    run("page sizes", test_page_sizes);
    run("small files", test_small_files);
    run("encoder rules", test_encoder_rules);
    run("encoder snapshot rules", test_encoder_snapshot_rules);
    run("I/O errors", test_io_errors);
    run("fd callbacks", test_fd_callbacks);
    run("legacy frames", test_legacy_frames);
    run("frame errors", test_frame_errors);
    run("decoder index", test_decoder_index);
    run("decoder order", test_decoder_order);
    run("decoder API", test_decoder_api);
    run("merge", test_merge);
    run("lock page", test_lock_page);
    run("corruption", test_corruption);
    return tap_done();
}
