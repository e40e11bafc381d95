/*
 * storage/ltx/crc64.c: CRC-64/GO-ISO (Go's crc64.ISO table): slicing-by-8
 * tables, a PCLMULQDQ folding path on x86-64, and CRC combination so that a
 * page's CRC can be computed once and reused for both the LTX file checksum and
 * the page checksum.
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
 *  4. Folding (x86-64 with PCLMULQDQ, detected at run time): a 16-byte block
 *     X = H x^64 + L (H = its first 8 bytes, reflected) followed by D more
 *     bits of message is congruent to H (x^(D+64) mod P) + L (x^D mod P)
 *     placed in front of those bits.  A reflected carry-less multiply yields
 *     the product times x, hence the constants x^(D+63) and x^(D-1) mod P.
 *     Eight blocks fold in parallel (D = 1024), then into one (D = 128), and
 *     the final 16 bytes go through the tables with a zero register, which
 *     is exactly the register after the folded prefix.
 *
 * Threads: no mutable state but a cached CPU feature flag (an idempotent
 * relaxed atomic); every function may be called from any thread.
 */
#include "storage/ltx/crc64.h"

#define CRC64_POLY 0xD800000000000000ull

/* Carry-less product of the byte n and 0x1b (x^4 + x^3 + x + 1). */
#define CLMUL1B(n)                                                             \
    ((uint64_t)(n) ^ (uint64_t)(n) << 1 ^ (uint64_t)(n) << 3 ^                 \
     (uint64_t)(n) << 4)
/* tab[k][n] for k = 0..6 (invariant 3). */
#define TLO(k, n) (CLMUL1B(n) << (52 - 8 * (k)))
/* tab[7][n] (invariant 3); k is unused, present for the row macros. */
#define T7(k, n) (CLMUL1B(n) >> 4 ^ CLMUL1B((CLMUL1B(n) & 0xf) << 4) << 52)

#define R4(F, k, n) F(k, n), F(k, (n) + 1), F(k, (n) + 2), F(k, (n) + 3)
#define R16(F, k, n)                                                           \
    R4(F, k, n), R4(F, k, (n) + 4), R4(F, k, (n) + 8), R4(F, k, (n) + 12)
#define R64(F, k, n)                                                           \
    R16(F, k, n), R16(F, k, (n) + 16), R16(F, k, (n) + 32), R16(F, k, (n) + 48)
#define R256(F, k)                                                             \
    {                                                                          \
        R64(F, k, 0), R64(F, k, 64), R64(F, k, 128), R64(F, k, 192)            \
    }

static const uint64_t crc64_tab[8][256] = {
    R256(TLO, 0), R256(TLO, 1), R256(TLO, 2), R256(TLO, 3),
    R256(TLO, 4), R256(TLO, 5), R256(TLO, 6), R256(T7, 7),
};

/* The table-driven CRC on the raw register (no pre/post inversion). */
static uint64_t
crc64_table(uint64_t crc, const uint8_t *b, size_t n)
{
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
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <emmintrin.h>
#include <wmmintrin.h>

#define CRC64_HAVE_FOLD 1

/* x^k mod P, reflected (invariant 4). */
#define CRC64_X191  0x6b70000000000001ull
#define CRC64_X127  0xf500000000000001ull
#define CRC64_X1087 0xf501b0000001b000ull
#define CRC64_X1023 0xb001000000010000ull

__attribute__((target("pclmul,sse2"))) static __m128i
crc64_fold16(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                         _mm_clmulepi64_si128(x, k, 0x11));
}

/* Folds n bytes (a multiple of 16, n >= 16) into the register. */
__attribute__((target("pclmul,sse2"))) static uint64_t
crc64_fold(uint64_t crc, const uint8_t *p, size_t n)
{
    const __m128i k128 =
        _mm_set_epi64x((long long)CRC64_X127, (long long)CRC64_X191);
    const __m128i k1024 =
        _mm_set_epi64x((long long)CRC64_X1023, (long long)CRC64_X1087);
    __m128i x[8];
    uint8_t last[16];
    int lanes = n >= 128 ? 8 : 1;

    for (int i = 0; i < lanes; i++)
        x[i] = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i));
    x[0] = _mm_xor_si128(x[0], _mm_cvtsi64_si128((long long)crc));
    p += 16 * lanes;
    n -= 16 * (size_t)lanes;
    for (; lanes == 8 && n >= 128; p += 128, n -= 128) {
        for (int i = 0; i < 8; i++)
            x[i] = _mm_xor_si128(
                crc64_fold16(x[i], k1024),
                _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * i)));
    }
    for (int i = 1; i < lanes; i++)
        x[0] = _mm_xor_si128(crc64_fold16(x[0], k128), x[i]);
    for (; n >= 16; p += 16, n -= 16)
        x[0] = _mm_xor_si128(crc64_fold16(x[0], k128),
                             _mm_loadu_si128((const __m128i *)(const void *)p));
    _mm_storeu_si128((__m128i *)(void *)last, x[0]);
    return crc64_table(0, last, sizeof(last));
}

/*
 * a * b mod P with one carry-less multiply: the product X (times x, see
 * invariant 4) is H x^64 + L; H x^64 mod P is the table CRC of H's bytes
 * with a zero register; the extra factor x is divided out at the end
 * (v / x: add P when the x^0 bit, bit 63, is set, then shift towards x^0's
 * end; P's x^64 term lands on x^63, bit 0).
 */
__attribute__((target("pclmul,sse2"))) static uint64_t
crc64_mulmod_clmul(uint64_t a, uint64_t b)
{
    uint8_t x[16];
    uint64_t l, v;

    _mm_storeu_si128((__m128i *)(void *)x,
                     _mm_clmulepi64_si128(_mm_cvtsi64_si128((long long)a),
                                          _mm_cvtsi64_si128((long long)b),
                                          0x00));
    l = (uint64_t)x[8] | (uint64_t)x[9] << 8 | (uint64_t)x[10] << 16 |
        (uint64_t)x[11] << 24 | (uint64_t)x[12] << 32 | (uint64_t)x[13] << 40 |
        (uint64_t)x[14] << 48 | (uint64_t)x[15] << 56;
    v = crc64_table(0, x, 8) ^ l;
    if (v >> 63)
        return ((v ^ CRC64_POLY) << 1) | 1;
    return v << 1;
}

/* 1 if the CPU has PCLMULQDQ (cached; racing first calls agree). */
static int
crc64_have_clmul(void)
{
    static int cached; /* 0 unknown, 1 no, 2 yes */
    unsigned a, b, c, d;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);

    if (v == 0) {
        v = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_PCLMUL) ? 2 : 1;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v == 2;
}
#endif

uint64_t
crc64_update(uint64_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;

    crc = ~crc;
#ifdef CRC64_HAVE_FOLD
    if (n >= 64 && crc64_have_clmul()) {
        size_t m = n & ~(size_t)15;
        crc = crc64_fold(crc, b, m);
        b += m;
        n -= m;
    }
#endif
    return ~crc64_table(crc, b, n);
}

/*
 * a * b modulo the polynomial, both in the reflected representation where
 * bit 63 is x^0.
 */
static uint64_t
crc64_mulmod(uint64_t a, uint64_t b)
{
    uint64_t p = 0;

    /* Branch-free: the bits of a are data, mispredictions would dominate. */
    for (int i = 63; i >= 0; i--) {
        p ^= b & (0 - ((a >> i) & 1));
        b = (b >> 1) ^ (CRC64_POLY & (0 - (b & 1)));
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
#ifdef CRC64_HAVE_FOLD
    if (crc64_have_clmul())
        return crc64_mulmod_clmul(op, crc1) ^ crc2;
#endif
    return crc64_mulmod(op, crc1) ^ crc2;
}

uint64_t
crc64_combine(uint64_t crc1, uint64_t crc2, uint64_t len2)
{
    return crc64_combine_op(crc1, crc2, crc64_combine_gen(len2));
}
