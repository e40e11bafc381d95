/*
 * storage/ltx/format.c: the fixed parts of the LTX format (docs/ltx-format.md
 * section 1): the 100-byte header (encode, decode, validate), file names, page
 * and database checksums, and the codec's message helpers.
 *
 * Invariants:
 *  1. ltx_header_decode() never returns a header that ltx_header_validate()
 *     rejects; the encoder and decoder both rely on it.
 *  2. Checksums are LTX_CHECKSUM_FLAG | CRC64 (crc64.c); the database
 *     checksum skips the lock page, which is never stored.
 *
 * Threads: pure functions over their arguments, no state; any thread.
 */
#include "storage/base/sqlite.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage/ltx/crc64.h"
#include "storage/ltx/ltx.h"
#include "storage/ltx/ltx_int.h"

/* ---- Messages --------------------------------------------------------- */

void
ltx_seterr(char *zErr, size_t nErr, const char *zFmt, ...)
{
    va_list ap;

    if (!zErr || !nErr)
        return;
    va_start(ap, zFmt);
    vsnprintf(zErr, nErr, zFmt, ap);
    va_end(ap);
}

const char *
ltx_where_fmt(const ltx_where *w, char *buf, size_t n)
{
    if (w->off == UINT64_MAX)
        snprintf(buf, n, "page frame (pgno %u)", w->pgno);
    else
        snprintf(buf, n, "page frame at offset %llu (pgno %u)",
                 (unsigned long long)w->off, w->pgno);
    return buf;
}

/* ---- Checksums, header, names ----------------------------------------- */

uint32_t
ltx_lock_pgno(uint32_t page_size)
{
    return page_size ? LTX_PENDING_BYTE / page_size + 1 : 0;
}

int
ltx_page_size_valid(uint32_t page_size)
{
    return page_size >= LTX_MIN_PAGE_SIZE && page_size <= LTX_MAX_PAGE_SIZE &&
           (page_size & (page_size - 1)) == 0;
}

uint64_t
ltx_page_checksum(uint32_t pgno, const void *page, uint32_t page_size)
{
    uint8_t be[4];

    ltx_put32(be, pgno);
    return LTX_CHECKSUM_FLAG |
           crc64_update(crc64_update(0, be, 4), page, page_size);
}

uint64_t
ltx_db_checksum(const void *db, uint32_t page_size, uint32_t npages)
{
    const uint8_t *p = db;
    uint32_t lock = ltx_lock_pgno(page_size);
    uint64_t c = LTX_CHECKSUM_FLAG;

    for (uint32_t pgno = 1; pgno <= npages && pgno != 0; pgno++) {
        if (pgno != lock)
            c = ltx_checksum_fold(
                c, ltx_page_checksum(pgno, p + (size_t)(pgno - 1) * page_size,
                                     page_size));
    }
    return c;
}

void
ltx_header_encode(const ltx_header *hdr, uint8_t out[LTX_HEADER_SIZE])
{
    memset(out, 0, LTX_HEADER_SIZE);
    memcpy(out, LTX_MAGIC, 4);
    ltx_put32(out + 4, hdr->flags);
    ltx_put32(out + 8, hdr->page_size);
    ltx_put32(out + 12, hdr->commit);
    ltx_put64(out + 16, hdr->min_txid);
    ltx_put64(out + 24, hdr->max_txid);
    ltx_put64(out + 32, (uint64_t)hdr->timestamp);
    ltx_put64(out + 40, hdr->pre_apply);
    ltx_put64(out + 48, (uint64_t)hdr->wal_offset);
    ltx_put64(out + 56, (uint64_t)hdr->wal_size);
    ltx_put32(out + 64, hdr->wal_salt1);
    ltx_put32(out + 68, hdr->wal_salt2);
    ltx_put64(out + 72, hdr->node_id);
}

int
ltx_header_validate(const ltx_header *h, char *zErr, size_t nErr)
{
    int nock = (h->flags & LTX_FLAG_NO_CHECKSUM) != 0;
    const char *zWhy = NULL;

    if (h->flags & ~LTX_HEADER_FLAG_MASK) {
        ltx_seterr(zErr, nErr, "ltx: header: unsupported flags 0x%08x",
                   h->flags);
        return SQLITE_FORMAT;
    }
    if (!ltx_page_size_valid(h->page_size)) {
        ltx_seterr(zErr, nErr, "ltx: header: invalid page size %u",
                   h->page_size);
        return SQLITE_CORRUPT;
    }
    if (h->min_txid == 0 || h->max_txid == 0)
        zWhy = "TXID 0";
    else if (h->min_txid > h->max_txid)
        zWhy = "min TXID above max TXID";
    else if (h->wal_offset < 0 || h->wal_size < 0)
        zWhy = "negative WAL offset or size";
    else if (h->wal_offset == 0 &&
             (h->wal_size || h->wal_salt1 || h->wal_salt2))
        zWhy = "WAL size or salts without a WAL offset";
    else if (ltx_is_snapshot(h) && h->pre_apply != 0)
        zWhy = "snapshot with a pre-apply checksum";
    else if (!ltx_is_snapshot(h) && nock && h->pre_apply != 0)
        zWhy = "pre-apply checksum with the NoChecksum flag";
    else if (!ltx_is_snapshot(h) && !nock &&
             !(h->pre_apply & LTX_CHECKSUM_FLAG))
        zWhy = "missing or invalid pre-apply checksum";
    if (zWhy) {
        ltx_seterr(zErr, nErr,
                   "ltx: header: %s (TXID %016llx-%016llx, pre-apply "
                   "%016llx)",
                   zWhy, (unsigned long long)h->min_txid,
                   (unsigned long long)h->max_txid,
                   (unsigned long long)h->pre_apply);
        return SQLITE_CORRUPT;
    }
    return SQLITE_OK;
}

int
ltx_header_decode(const uint8_t in[LTX_HEADER_SIZE], ltx_header *hdr,
                  char *zErr, size_t nErr)
{
    if (memcmp(in, "age-encryption.org/", 19) == 0) {
        ltx_seterr(zErr, nErr,
                   "ltx: the object is encrypted with age: read the replica "
                   "with its identity, ?age_identity_file=PATH on the URL or "
                   "LITESTREAM_AGE_IDENTITY_FILE (docs/urls.md, "
                   "\"Encryption\")");
        return SQLITE_CORRUPT;
    }
    if (memcmp(in, LTX_MAGIC, 4) != 0) {
        ltx_seterr(zErr, nErr,
                   "ltx: not an LTX file (magic %02x %02x %02x %02x at "
                   "offset 0)",
                   in[0], in[1], in[2], in[3]);
        return SQLITE_CORRUPT;
    }
    hdr->flags = ltx_get32(in + 4);
    hdr->page_size = ltx_get32(in + 8);
    hdr->commit = ltx_get32(in + 12);
    hdr->min_txid = ltx_get64(in + 16);
    hdr->max_txid = ltx_get64(in + 24);
    hdr->timestamp = (int64_t)ltx_get64(in + 32);
    hdr->pre_apply = ltx_get64(in + 40);
    hdr->wal_offset = (int64_t)ltx_get64(in + 48);
    hdr->wal_size = (int64_t)ltx_get64(in + 56);
    hdr->wal_salt1 = ltx_get32(in + 64);
    hdr->wal_salt2 = ltx_get32(in + 68);
    hdr->node_id = ltx_get64(in + 72);
    return ltx_header_validate(hdr, zErr, nErr);
}

const char *
ltx_txid_name(uint64_t min, uint64_t max, char out[LTX_NAME_SIZE])
{
    snprintf(out, LTX_NAME_SIZE, "%016llx-%016llx.ltx", (unsigned long long)min,
             (unsigned long long)max);
    return out;
}

static int
ltx_parse_hex16(const char *z, uint64_t *v)
{
    uint64_t x = 0;

    for (int i = 0; i < 16; i++) {
        char c = z[i];
        if (c >= '0' && c <= '9')
            x = x << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x = x << 4 | (uint64_t)(c - 'a' + 10);
        else
            return 0;
    }
    *v = x;
    return 1;
}

int
ltx_parse_name(const char *name, uint64_t *min, uint64_t *max)
{
    uint64_t a, b;

    if (!name || strlen(name) != 37 || name[16] != '-' ||
        strcmp(name + 33, ".ltx") != 0)
        return 0;
    if (!ltx_parse_hex16(name, &a) || !ltx_parse_hex16(name + 17, &b))
        return 0;
    *min = a;
    *max = b;
    return 1;
}
