/*
 * storage/ltx/xxh32.c: XXH32 (seed 0), the checksum of LZ4 frames: header,
 * block and content checksums (ltx_int.h).  One-shot for pages, streaming
 * for the content checksum of a frame of any length (lz4frame.c).
 *
 * The algorithm is the published XXH32 (github.com/Cyan4973/xxHash,
 * doc/xxhash_spec.md); this is our own code.
 *
 * Threads: no shared state; a state belongs to one thread.
 */
#include <string.h>

#include "storage/ltx/ltx_int.h"

#define XXH_P1 2654435761u
#define XXH_P2 2246822519u
#define XXH_P3 3266489917u
#define XXH_P4 668265263u
#define XXH_P5 374761393u

static uint32_t
xxh_rotl(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

static uint32_t
xxh_round(uint32_t acc, uint32_t in)
{
    return xxh_rotl(acc + in * XXH_P2, 13) * XXH_P1;
}

/* Consumes the 16-byte stripes of p[0..n) into v; returns bytes used. */
static size_t
xxh_stripes(uint32_t v[4], const uint8_t *p, size_t n)
{
    size_t i = 0;

    for (; n - i >= 16; i += 16) {
        v[0] = xxh_round(v[0], ltx_getle32(p + i));
        v[1] = xxh_round(v[1], ltx_getle32(p + i + 4));
        v[2] = xxh_round(v[2], ltx_getle32(p + i + 8));
        v[3] = xxh_round(v[3], ltx_getle32(p + i + 12));
    }
    return i;
}

void
ltx_xxh32_init(ltx_xxh32_state *s)
{
    memset(s, 0, sizeof(*s));
    s->v[0] = XXH_P1 + XXH_P2;
    s->v[1] = XXH_P2;
    s->v[2] = 0;
    s->v[3] = 0 - XXH_P1;
}

void
ltx_xxh32_update(ltx_xxh32_state *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t take;

    s->total += n;
    if (s->nbuf > 0) {
        take = 16 - s->nbuf < n ? 16 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += (uint32_t)take;
        p += take;
        n -= take;
        if (s->nbuf < 16)
            return;
        xxh_stripes(s->v, s->buf, 16);
        s->nbuf = 0;
    }
    take = xxh_stripes(s->v, p, n);
    memcpy(s->buf, p + take, n - take);
    s->nbuf = (uint32_t)(n - take);
}

uint32_t
ltx_xxh32_digest(const ltx_xxh32_state *s)
{
    const uint8_t *p = s->buf;
    size_t i = 0, n = s->nbuf;
    uint32_t h;

    if (s->total >= 16)
        h = xxh_rotl(s->v[0], 1) + xxh_rotl(s->v[1], 7) +
            xxh_rotl(s->v[2], 12) + xxh_rotl(s->v[3], 18);
    else
        h = XXH_P5;
    h += (uint32_t)s->total;
    for (; n - i >= 4; i += 4)
        h = xxh_rotl(h + ltx_getle32(p + i) * XXH_P3, 17) * XXH_P4;
    for (; i < n; i++)
        h = xxh_rotl(h + p[i] * XXH_P5, 11) * XXH_P1;
    h ^= h >> 15;
    h *= XXH_P2;
    h ^= h >> 13;
    h *= XXH_P3;
    h ^= h >> 16;
    return h;
}

uint32_t
ltx_xxh32(const void *data, size_t n)
{
    ltx_xxh32_state s;

    ltx_xxh32_init(&s);
    ltx_xxh32_update(&s, data, n);
    return ltx_xxh32_digest(&s);
}
