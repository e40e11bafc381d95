/*
 * crc64.c: CRC-64/GO-ISO (Go's crc64.ISO table), slicing-by-8, plus CRC
 * combination so that a page's CRC can be computed once and reused for both
 * the LTX file checksum and the page checksum.
 *
 * Invariants:
 *  1. crc64_tab[0] is the classic reflected byte table:
 *     tab[0][n] = CRC register after shifting byte n through 8 steps of
 *     c = c >> 1 ^ (c & 1 ? POLY : 0), POLY = 0xD800000000000000.
 *  2. crc64_tab[k][n] = tab[k-1][n] >> 8 ^ tab[0][tab[k-1][n] & 0xff]: byte n
 *     followed by k zero bytes.  Slicing-by-8 XORs eight lookups per word.
 *  3. The polynomial has only bits 0, 1, 3 and 4 below x^64, so tab[0][n] is
 *     the carry-less product n * 0x1b shifted up by 52 (at most 12 bits wide,
 *     so nothing is lost), tab[k][n] is that product shifted by 52 - 8k for
 *     k <= 6, and tab[7] is the first table whose shift would go negative:
 *     the 4 bits that fall off are reduced once more through tab[0].  That
 *     lets the compiler build all 8 x 256 entries as constant expressions;
 *     the unit test checks them against the bitwise definition.
 *
 * Threads: no state; every function may be called from any thread.
 */
#include "storage/crc64.h"

#define CRC64_POLY 0xD800000000000000ull

/* Carry-less product of the byte n and 0x1b (x^4 + x^3 + x + 1). */
#define CLMUL1B(n)                                                          \
    ((uint64_t)(n) ^ (uint64_t)(n) << 1 ^ (uint64_t)(n) << 3 ^              \
     (uint64_t)(n) << 4)
/* tab[k][n] for k = 0..6 (invariant 3). */
#define TLO(k, n) (CLMUL1B(n) << (52 - 8 * (k)))
/* tab[7][n] (invariant 3); k is unused, present for the row macros. */
#define T7(k, n) (CLMUL1B(n) >> 4 ^ CLMUL1B((CLMUL1B(n) & 0xf) << 4) << 52)

#define R4(F, k, n) F(k, n), F(k, (n) + 1), F(k, (n) + 2), F(k, (n) + 3)
#define R16(F, k, n)                                                        \
    R4(F, k, n), R4(F, k, (n) + 4), R4(F, k, (n) + 8), R4(F, k, (n) + 12)
#define R64(F, k, n)                                                        \
    R16(F, k, n), R16(F, k, (n) + 16), R16(F, k, (n) + 32),                 \
        R16(F, k, (n) + 48)
#define R256(F, k)                                                          \
    {                                                                       \
        R64(F, k, 0), R64(F, k, 64), R64(F, k, 128), R64(F, k, 192)         \
    }

static const uint64_t crc64_tab[8][256] = {
    R256(TLO, 0), R256(TLO, 1), R256(TLO, 2), R256(TLO, 3),
    R256(TLO, 4), R256(TLO, 5), R256(TLO, 6), R256(T7, 7),
};

uint64_t
crc64_update(uint64_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;

    crc = ~crc;
    while (n >= 8) {
        uint64_t v = crc ^ ((uint64_t)b[0] | (uint64_t)b[1] << 8 |
                            (uint64_t)b[2] << 16 | (uint64_t)b[3] << 24 |
                            (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 |
                            (uint64_t)b[6] << 48 | (uint64_t)b[7] << 56);
        crc = crc64_tab[7][v & 0xff] ^ crc64_tab[6][(v >> 8) & 0xff] ^
              crc64_tab[5][(v >> 16) & 0xff] ^ crc64_tab[4][(v >> 24) & 0xff] ^
              crc64_tab[3][(v >> 32) & 0xff] ^ crc64_tab[2][(v >> 40) & 0xff] ^
              crc64_tab[1][(v >> 48) & 0xff] ^ crc64_tab[0][v >> 56];
        b += 8;
        n -= 8;
    }
    while (n--)
        crc = crc64_tab[0][(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/*
 * a * b modulo the polynomial, both in the reflected representation where
 * bit 63 is x^0.
 */
static uint64_t
crc64_mulmod(uint64_t a, uint64_t b)
{
    uint64_t p = 0;

    for (uint64_t m = 1ull << 63; m; m >>= 1) {
        if (a & m)
            p ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC64_POLY : b >> 1;
    }
    return p;
}

uint64_t
crc64_combine_gen(uint64_t len2)
{
    uint64_t r = 1ull << 63; /* x^0 */
    uint64_t s = 1ull << 55; /* x^8: appending one byte */

    while (len2) {
        if (len2 & 1)
            r = crc64_mulmod(s, r);
        s = crc64_mulmod(s, s);
        len2 >>= 1;
    }
    return r;
}

uint64_t
crc64_combine_op(uint64_t crc1, uint64_t crc2, uint64_t op)
{
    return crc64_mulmod(op, crc1) ^ crc2;
}

uint64_t
crc64_combine(uint64_t crc1, uint64_t crc2, uint64_t len2)
{
    return crc64_combine_op(crc1, crc2, crc64_combine_gen(len2));
}
