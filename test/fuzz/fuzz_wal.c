/*
 * fuzz_wal.c: fuzz target for the WAL reader (storage/local/wal.c): the 32-byte
 * header, the frames that follow it, and the wal-index header of the -shm
 * file, all read from files another process (or a crash) may have left in
 * any state.
 *
 * An input is a WAL file image.  If its first byte is odd, the header's
 * checksum (and then each frame's) is recomputed before validation, so the
 * fuzzer gets past the checksums to the frame logic; otherwise it is
 * validated as is.  Frames are walked as the capture does: stop at the
 * first that does not validate.  The same bytes are also read as a -shm
 * header.  Nothing may crash, read out of bounds or hang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/local/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the header checksum of h[0..24) into h[24..32). */
static void
fix_hdr(uint8_t *h)
{
    uint32_t s[2] = {0, 0};
    wal_checksum(h[3] & 1, h, 24, s);
    wal_put32(h + 24, s[0]);
    wal_put32(h + 28, s[1]);
}

/* Gives frame f (24-byte header + page) the salts and checksum that
 * follow s. */
static void
fix_frame(const wal_hdr *h, uint8_t *f, const uint32_t s[2])
{
    uint32_t c[2] = {s[0], s[1]};
    wal_put32(f + 8, h->salt1);
    wal_put32(f + 12, h->salt2);
    wal_checksum(h->magic & 1, f, 8, c);
    wal_checksum(h->magic & 1, f + 24, h->page_size, c);
    wal_put32(f + 16, c[0]);
    wal_put32(f + 20, c[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p;
    wal_hdr h;
    shm_hdr sh;
    uint32_t s[2];
    int fix;

    if (size < 1)
        return 0;
    fix = data[0] & 1;
    p = malloc(size);
    if (p == NULL)
        return 0;
    memcpy(p, data, size);
    if (size >= 136)
        (void)wal_index_hdr_read(p, &sh);
    if (size >= 32) {
        if (fix)
            fix_hdr(p);
        if (wal_hdr_parse(p, &h)) {
            s[0] = h.cksum1;
            s[1] = h.cksum2;
            for (size_t off = 32; off + 24 + (size_t)h.page_size <= size;
                 off += 24 + (size_t)h.page_size) {
                wal_frame_hdr fh;
                if (fix)
                    fix_frame(&h, p + off, s);
                wal_frame_hdr_parse(p + off, &fh);
                if (!wal_frame_valid(&h, p + off, s))
                    break;
            }
        }
    }
    free(p);
    return 0;
}
