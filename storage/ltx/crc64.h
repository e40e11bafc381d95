/*
 * crc64.h: CRC-64 as computed by Go's hash/crc64 with the ISO table
 * ("CRC-64/GO-ISO": polynomial x^64 + x^4 + x^3 + x + 1, reflected, init and
 * final XOR all ones).  Check value of "123456789" is 0xB90956C775A41001 and
 * the CRC of the empty string is 0.  This is the CRC of every LTX checksum.
 *
 * All functions are pure and thread-safe (the lookup tables are constant
 * data built by the compiler).
 */
#ifndef LITESTREAM_STORAGE_CRC64_H
#define LITESTREAM_STORAGE_CRC64_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the CRC of the bytes already summed into `crc` followed by the n
 * bytes at p.  Start with crc = 0; feeding the result of one call into the
 * next equals one call over the concatenation (Go's crc64.Update).  p may be
 * NULL when n is 0.
 */
uint64_t crc64_update(uint64_t crc, const void *p, size_t n);

/*
 * CRC combination (as zlib's crc32_combine_gen64/crc32_combine_op): given
 * crc1 = CRC(A) and crc2 = CRC(B) where B is len2 bytes long, CRC(A || B) is
 * crc64_combine_op(crc1, crc2, crc64_combine_gen(len2)).  Generating the
 * operator costs about 2*log2(len2) carry-less multiplications; applying it
 * costs one, so callers that combine many blocks of one length (pages)
 * generate it once.
 */
uint64_t crc64_combine_gen(uint64_t len2);
uint64_t crc64_combine_op(uint64_t crc1, uint64_t crc2, uint64_t op);

/* crc64_combine_op(crc1, crc2, crc64_combine_gen(len2)) in one call. */
uint64_t crc64_combine(uint64_t crc1, uint64_t crc2, uint64_t len2);

#endif
