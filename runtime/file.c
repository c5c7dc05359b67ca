/* rt_read_file: a whole file into memory, gunzipped when it is gzip.
 *
 * Gzip is recognised by its magic bytes (1f 8b), never by the file name.
 * Decompression uses zlib's inflate with automatic gzip header handling and
 * accepts concatenated members (as gunzip does) and zero padding after the
 * last one. Output is capped at READ_FILE_MAX_BYTES so that a gzip bomb or a
 * corrupt length cannot take the machine's memory; truncated and corrupt
 * streams are errors that name the file. The buffer handed back always has
 * one extra NUL byte after the data, so text parsers may treat it as a
 * C string (the count excludes it). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "runtime/dataio.h"
#include "runtime/errmsg.h"
#include "runtime/grow.h"

#define READ_FILE_MAX_BYTES ((size_t)4 << 30) /* decompressed data: 4 GiB */
#define DEFLATE_MAX_RATIO 1032                /* deflate cannot expand more */

/* Reads the raw bytes; fstat's size is only a hint so pipes work too. */
static bool read_raw(const char *path, unsigned char **out, size_t *n, char *err, size_t errn) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rt_errmsg_at(err, errn, path, "cannot open: %s", strerror(errno));
        return false;
    }
    struct stat st;
    size_t cap = 1 << 16;
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            rt_errmsg_at(err, errn, path, "is a directory");
            return false;
        }
        if (S_ISREG(st.st_mode) && st.st_size >= 0) {
            if ((uint64_t)st.st_size >= (uint64_t)READ_FILE_MAX_BYTES) {
                fclose(f);
                rt_errmsg_at(err, errn, path, "file larger than the 4 GiB limit");
                return false;
            }
            cap = (size_t)st.st_size + 1;
        }
    }
    unsigned char *buf = malloc(cap + 1);
    size_t len = 0;
    if (!buf) goto oom;
    for (;;) {
        if (len == cap) {
            size_t ncap;
            if (!rt_grow_cap(cap, cap + 1, cap, READ_FILE_MAX_BYTES, &ncap)) {
                free(buf);
                fclose(f);
                rt_errmsg_at(err, errn, path, "file larger than the 4 GiB limit");
                return false;
            }
            if (!rt_resize(&buf, cap + 1, ncap + 1)) goto oom; /* +1: the NUL */
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        rt_errmsg_at(err, errn, path, "read error: %s", e ? strerror(e) : "I/O error");
        return false;
    }
    fclose(f);
    buf[len] = 0;
    *out = buf;
    *n = len;
    return true;
oom:
    free(buf);
    fclose(f);
    rt_errmsg_at(err, errn, path, "out of memory reading the file");
    return false;
}

static bool all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

bool rt_gunzip(const char *path, const unsigned char *in, size_t inlen, unsigned char **out,
               size_t *outlen, char *err, size_t errn) {
    /* First guess: the last member's ISIZE trailer (size mod 2^32), bounded
     * by what deflate can possibly produce from this much input. */
    size_t bound = inlen > READ_FILE_MAX_BYTES / DEFLATE_MAX_RATIO ? READ_FILE_MAX_BYTES
                                                                   : inlen * DEFLATE_MAX_RATIO;
    size_t cap = inlen * 4;
    if (inlen >= 8) {
        const unsigned char *t = in + inlen - 4;
        size_t isize = (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 | (size_t)t[3] << 24;
        if (isize > 0) cap = isize + 1; /* +1: room to see the end without growing */
    }
    if (cap > bound) cap = bound;
    if (cap < 4096) cap = 4096;
    unsigned char *buf = malloc(cap + 1);
    if (!buf) {
        rt_errmsg_at(err, errn, path, "out of memory decompressing");
        return false;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) {
        free(buf);
        rt_errmsg_at(err, errn, path, "cannot initialise zlib");
        return false;
    }
    size_t len = 0, consumed = 0;
    const char *problem = NULL;
    char zmsg[160];
    for (;;) {
        if (len == cap) {
            size_t ncap;
            if (!rt_grow_cap(cap, cap + 1, cap, READ_FILE_MAX_BYTES, &ncap)) {
                problem = "decompressed data exceeds the 4 GiB limit";
                break;
            }
            if (!rt_resize(&buf, cap + 1, ncap + 1)) { /* +1: the NUL */
                problem = "out of memory decompressing";
                break;
            }
            cap = ncap;
        }
        /* zlib counts in uInt: feed and drain at most 1 GiB per call */
        size_t in_left = inlen - consumed, out_left = cap - len;
        zs.next_in = (Bytef *)(in + consumed);
        zs.avail_in = (uInt)(in_left > (1u << 30) ? (1u << 30) : in_left);
        zs.next_out = buf + len;
        zs.avail_out = (uInt)(out_left > (1u << 30) ? (1u << 30) : out_left);
        uInt in_before = zs.avail_in, out_before = zs.avail_out;
        int rc = inflate(&zs, Z_NO_FLUSH);
        consumed += in_before - zs.avail_in;
        len += out_before - zs.avail_out;
        if (rc == Z_STREAM_END) {
            const unsigned char *rest = in + consumed;
            size_t nrest = inlen - consumed;
            if (nrest >= 2 && rest[0] == 0x1f && rest[1] == 0x8b) {
                inflateReset(&zs); /* another gzip member follows */
                continue;
            }
            if (!all_zero(rest, nrest)) problem = "trailing garbage after the gzip data";
            break;
        }
        if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
            snprintf(zmsg, sizeof zmsg, "corrupt gzip data (%s)", zs.msg ? zs.msg : "bad stream");
            problem = zmsg;
            break;
        }
        if (rc == Z_MEM_ERROR) {
            problem = "out of memory decompressing";
            break;
        }
        if (consumed == inlen && zs.avail_out > 0) {
            /* all input given, room left, yet no end of stream */
            problem = "truncated gzip data (unexpected end of file)";
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            problem = "gzip decompression failed";
            break;
        }
    }
    inflateEnd(&zs);
    if (problem) {
        free(buf);
        rt_errmsg_at(err, errn, path, "%s", problem);
        return false;
    }
    buf[len] = 0;
    *out = buf;
    *outlen = len;
    return true;
}

bool rt_read_file(const char *path, unsigned char **out, size_t *n, char *err, size_t errn) {
    if (!path || !out || !n) {
        rt_errmsg_at(err, errn, path ? path : "(null)", "bad arguments to rt_read_file");
        return false;
    }
    *out = NULL;
    *n = 0;
    unsigned char *raw;
    size_t rawlen;
    if (!read_raw(path, &raw, &rawlen, err, errn)) return false;
    if (rawlen < 2 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *out = raw;
        *n = rawlen;
        return true;
    }
    bool ok = rt_gunzip(path, raw, rawlen, out, n, err, errn);
    free(raw);
    return ok;
}
