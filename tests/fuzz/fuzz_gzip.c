/* libFuzzer target: rt_read_file's gzip path (runtime/file.c) on any bytes.
 *
 * An input that does not start with the gzip magic gets it prepended, so
 * that every input exercises the decompressor. Contract checked: the data or
 * an error with a reason, never a crash or a runaway allocation; the buffer
 * handed back has its promised NUL after the data; a valid stream gives
 * what zlib's own one-member decoder gives, up to its first member. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "runtime/dataio.h"

static FzFile in;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_file_open(&in, "gzip-in");
    return 0;
}

/* The first member decoded by zlib alone (its length, or -1), capped at cap bytes. */
static long first_member(const uint8_t *p, size_t n, uint8_t *out, size_t cap) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + 15) != Z_OK) return -1;
    zs.next_in = (Bytef *)p;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_FINISH);
    long len = rc == Z_STREAM_END ? (long)zs.total_out : -1;
    inflateEnd(&zs);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0;
    uint8_t *buf = malloc(size + 2);
    fz_check(buf != NULL, "%s", "out of memory");
    size_t n = size;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        memcpy(buf, data, size);
    } else {
        buf[0] = 0x1f, buf[1] = 0x8b;
        memcpy(buf + 2, data, size);
        n += 2;
    }
    fz_file_set(&in, buf, n);
    char err[512] = "";
    unsigned char *out = NULL;
    size_t len = 0;
    if (!rt_read_file(in.path, &out, &len, err, sizeof err)) {
        fz_check(err[0] != 0, "%s", "rt_read_file failed without a reason");
        fz_check(out == NULL, "%s", "a failure that hands back a buffer");
        free(buf);
        return 0;
    }
    fz_check(out[len] == 0, "%s", "no NUL after the data");
    static uint8_t ref[1 << 22];
    long rlen = first_member(buf, n, ref, sizeof ref);
    if (rlen >= 0 && (size_t)rlen < sizeof ref)
        fz_check((size_t)rlen <= len && memcmp(ref, out, (size_t)rlen) == 0, "%s",
                 "the first member differs from zlib's decoding");
    free(out);
    free(buf);
    return 0;
}
