/*
 * storage/local/wal.c: validation of SQLite WAL headers and frames (wal.h).
 * Pure functions; any thread.
 */
#include "storage/local/wal.h"

#include <sched.h>
#include <string.h>

static inline uint32_t
load_word(int swap, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

void
wal_checksum(int big_endian, const uint8_t *p, size_t n, uint32_t s[2])
{
    /* SQLite sums 32-bit words in the byte order the magic names; on a
     * little-endian host big-endian words need a swap. */
    const int host_be = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__;
    const int swap = (big_endian != 0) != host_be;
    uint32_t s1 = s[0], s2 = s[1];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s1 += load_word(swap, p + i) + s2;
        s2 += load_word(swap, p + i + 4) + s1;
    }
    s[0] = s1;
    s[1] = s2;
}

int
wal_hdr_parse(const uint8_t *p, wal_hdr *out)
{
    wal_hdr h;
    h.magic = wal_get32(p);
    h.version = wal_get32(p + 4);
    h.page_size = wal_get32(p + 8);
    h.ckpt_seq = wal_get32(p + 12);
    h.salt1 = wal_get32(p + 16);
    h.salt2 = wal_get32(p + 20);
    h.cksum1 = wal_get32(p + 24);
    h.cksum2 = wal_get32(p + 28);
    if (h.magic != WAL_MAGIC_LE && h.magic != WAL_MAGIC_BE)
        return 0;
    if (h.version != 3007000)
        return 0;
    if (h.page_size == 1)
        h.page_size = 65536;
    if (h.page_size < 512 || h.page_size > 65536 ||
        (h.page_size & (h.page_size - 1)))
        return 0;
    uint32_t s[2] = {0, 0};
    wal_checksum(h.magic & 1, p, 24, s);
    if (s[0] != h.cksum1 || s[1] != h.cksum2)
        return 0;
    *out = h;
    return 1;
}

void
wal_frame_hdr_parse(const uint8_t *p, wal_frame_hdr *out)
{
    out->pgno = wal_get32(p);
    out->commit = wal_get32(p + 4);
    out->salt1 = wal_get32(p + 8);
    out->salt2 = wal_get32(p + 12);
    out->cksum1 = wal_get32(p + 16);
    out->cksum2 = wal_get32(p + 20);
}

int
wal_frame_valid(const wal_hdr *h, const uint8_t *frame, uint32_t s[2])
{
    wal_frame_hdr f;
    uint32_t t[2] = {s[0], s[1]};
    wal_frame_hdr_parse(frame, &f);
    if (f.pgno == 0 || f.salt1 != h->salt1 || f.salt2 != h->salt2)
        return 0;
    wal_checksum(h->magic & 1, frame, 8, t);
    wal_checksum(h->magic & 1, frame + WAL_FRAME_HDR_SIZE, h->page_size, t);
    if (t[0] != f.cksum1 || t[1] != f.cksum2)
        return 0;
    s[0] = t[0];
    s[1] = t[1];
    return 1;
}

int
wal_index_hdr_read_stable(const volatile void *p, shm_hdr *out)
{
    for (int i = 0; i < 100; i++) {
        shm_hdr b;
        memcpy(out, (const void *)p, sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        memcpy(&b, (const char *)p + sizeof(shm_hdr), sizeof(b));
        if (memcmp(out, &b, sizeof(b)) == 0) {
            out->salt[0] = wal_get32((const uint8_t *)&out->salt[0]);
            out->salt[1] = wal_get32((const uint8_t *)&out->salt[1]);
            return out->init != 0;
        }
        sched_yield();
    }
    return -1;
}

int
wal_index_hdr_read(const volatile void *p, shm_hdr *out)
{
    memcpy(out, (const void *)p, sizeof(*out));
    out->salt[0] = wal_get32((const uint8_t *)&out->salt[0]);
    out->salt[1] = wal_get32((const uint8_t *)&out->salt[1]);
    return out->init != 0;
}
