/* IDX files (the MNIST format), plain or gzipped.
 *
 * Layout: two zero bytes, a type byte, a rank byte, `rank` big-endian uint32
 * dims, then prod(dims) elements. Only unsigned bytes (type 0x08) are read;
 * the other IDX types are named in the error. The data length must equal
 * the product of the dims exactly, checked before anything is allocated.
 * A 1-D file is labels and comes back as i32[N]; rank >= 2 is images and
 * comes back flattened as f32[N, prod(rest)], each byte times `scale`
 * (computed in double, rounded once to f32). rt_idx_shape reads only the
 * header (through zlib's gzread, which passes plain files through), and for
 * plain files also checks the length against the file size; a gzipped
 * file's length is checked when it is read. A role (images, labels) also
 * checks the rank: images 2 or more, labels exactly 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "runtime/checked.h"
#include "runtime/dataio.h"
#include "runtime/errmsg.h"

#define IDX_UBYTE 0x08

typedef struct {
    int type;
    int ndim;
    int64_t dims[255];
    uint64_t numel; /* product of dims, checked against overflow */
} IdxHeader;

static const char *type_name(int type) {
    switch (type) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "short";
    case 0x0C:
        return "int";
    case 0x0D:
        return "float";
    case 0x0E:
        return "double";
    default:
        return "unknown";
    }
}

/* Parses the header from the first `n` bytes of the file; `total` is the
 * whole length when known (or -1). Returns the header's byte length, or 0
 * after writing the error. */
static size_t parse_header(const char *path, const unsigned char *p, size_t n, int64_t total,
                           RtIdxRole role, IdxHeader *h, char *err, size_t errn) {
    if (total == 0 || n == 0) {
        rt_errmsg_at(err, errn, path, "empty file");
        return 0;
    }
    if (n < 4) {
        rt_errmsg_at(err, errn, path, "truncated header");
        return 0;
    }
    if (p[0] != 0 || p[1] != 0) {
        rt_errmsg_at(err, errn, path, "not an IDX file (bad magic %02x %02x %02x %02x)", p[0], p[1],
                     p[2], p[3]);
        return 0;
    }
    h->type = p[2];
    h->ndim = p[3];
    if (h->type != IDX_UBYTE) {
        rt_errmsg_at(err, errn, path,
                     "unsupported IDX data type 0x%02X (%s); only unsigned byte (0x08) "
                     "is supported",
                     h->type, type_name(h->type));
        return 0;
    }
    if (h->ndim == 0) {
        rt_errmsg_at(err, errn, path, "IDX rank 0 is not supported");
        return 0;
    }
    if (role == RT_IDX_IMAGES && h->ndim < 2) {
        rt_errmsg_at(err, errn, path,
                     "an images file needs rank 2 or more (a count, then each image's "
                     "dims), this one has rank %d",
                     h->ndim);
        return 0;
    }
    if (role == RT_IDX_LABELS && h->ndim != 1) {
        rt_errmsg_at(err, errn, path,
                     "a labels file must have rank 1 (one label per image), this one has "
                     "rank %d",
                     h->ndim);
        return 0;
    }
    size_t hlen = 4 + 4 * (size_t)h->ndim;
    if (n < hlen) {
        rt_errmsg_at(err, errn, path, "truncated header: %d dims need %zu bytes, file has %zu",
                     h->ndim, hlen, n);
        return 0;
    }
    h->numel = 1;
    /* every prefix of dims[1..]'s product (the row length, as result_shape
       forms it in int64) is bounded, even when a later dim or the count is 0 */
    uint64_t row = 1;
    bool overflow = false;
    for (int i = 0; i < h->ndim; i++) {
        const unsigned char *d = p + 4 + 4 * i;
        h->dims[i] = (int64_t)((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 |
                               (uint32_t)d[3]);
        if (h->dims[i] != 0 && h->numel > UINT64_MAX / (uint64_t)h->dims[i])
            overflow = true;
        else
            h->numel *= (uint64_t)h->dims[i];
        uint64_t lim = (uint64_t)RT_TENSOR_MAX_BYTES;
        if (i > 0 && h->dims[i] != 0 && row > lim / (uint64_t)h->dims[i])
            overflow = true;
        else if (i > 0)
            row *= (uint64_t)h->dims[i];
    }
    /* the non-zero dimensions must multiply out too: an empty file's row
       size is still their product (result_shape) */
    int64_t rows_numel;
    if (!ck_numel(h->ndim, h->dims, &rows_numel)) overflow = true;
    if (overflow || h->numel > (uint64_t)RT_TENSOR_MAX_BYTES ||
        row > (uint64_t)RT_TENSOR_MAX_BYTES) {
        rt_errmsg_at(err, errn, path, "header dims are too large");
        return 0;
    }
    if (total >= 0) {
        uint64_t have = (uint64_t)total - hlen;
        if (have != h->numel) {
            rt_errmsg_at(err, errn, path, "%s: header says %llu bytes of data, file has %llu",
                         have < h->numel ? "truncated" : "trailing bytes",
                         (unsigned long long)h->numel, (unsigned long long)have);
            return 0;
        }
    }
    return hlen;
}

/* The tensor shape a header produces: i32[N] or f32[N, prod(rest)]. */
static Shape result_shape(const IdxHeader *h) {
    int64_t dims[2] = {h->dims[0], 1};
    if (h->ndim == 1) return rt_shape_make(1, dims);
    for (int i = 1; i < h->ndim; i++)
        dims[1] *= h->dims[i];
    return rt_shape_make(2, dims);
}

RtTensor *rt_idx_parse(const char *path, const unsigned char *buf, size_t n, RtIdxRole role,
                       double scale, char *err, size_t errn) {
    IdxHeader h;
    RtTensor *t = NULL;
    size_t hlen = parse_header(path, buf, n, (int64_t)n, role, &h, err, errn);
    if (hlen) {
        bool labels = h.ndim == 1;
        Shape s = result_shape(&h);
        t = rt_tensor_new(labels ? DT_I32 : DT_F32, s);
        if (!t) {
            char sb[64];
            rt_errmsg_at(err, errn, path, "cannot allocate %s", rt_shape_str(&s, sb, sizeof sb));
        } else if (labels) {
            int32_t *o = t->data;
            for (uint64_t i = 0; i < h.numel; i++)
                o[i] = buf[hlen + i];
        } else {
            float table[256]; /* one rounding per byte value, the same for all */
            for (int v = 0; v < 256; v++)
                table[v] = (float)(v * scale);
            float *o = t->data;
            for (uint64_t i = 0; i < h.numel; i++)
                o[i] = table[buf[hlen + i]];
        }
    }
    return t;
}

RtTensor *rt_idx_read_as(const char *path, RtIdxRole role, double scale, char *err, size_t errn) {
    unsigned char *buf;
    size_t n;
    if (!rt_read_file(path, &buf, &n, err, errn)) return NULL;
    RtTensor *t = rt_idx_parse(path, buf, n, role, scale, err, errn);
    free(buf);
    return t;
}

RtTensor *rt_idx_read(const char *path, double scale, char *err, size_t errn) {
    return rt_idx_read_as(path, RT_IDX_ANY, scale, err, errn);
}

bool rt_idx_shape(const char *path, Shape *shape, char *err, size_t errn) {
    return rt_idx_shape_as(path, RT_IDX_ANY, shape, err, errn);
}

bool rt_idx_shape_as(const char *path, RtIdxRole role, Shape *shape, char *err, size_t errn) {
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        rt_errmsg_at(err, errn, path, "cannot open: %s", errno ? strerror(errno) : "out of memory");
        return false;
    }
    unsigned char hdr[4 + 4 * 255];
    int got = gzread(gz, hdr, 4);
    if (got == 4 && hdr[0] == 0 && hdr[1] == 0 && hdr[3] > 0) {
        int more = gzread(gz, hdr + 4, 4u * hdr[3]);
        got = more < 0 ? -1 : got + more;
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(gz, &zerr);
    char zbuf[160]; /* gzerror's text belongs to gz: copy it before gzclose frees it */
    snprintf(zbuf, sizeof zbuf, "%s", zmsg && *zmsg ? zmsg : "error");
    bool plain = gzdirect(gz) == 1;
    gzclose(gz);
    if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR)) {
        rt_errmsg_at(err, errn, path, "cannot read the header: %s", zbuf);
        return false;
    }
    int64_t total = -1;
    struct stat st;
    if (plain && stat(path, &st) == 0 && S_ISREG(st.st_mode)) total = (int64_t)st.st_size;
    IdxHeader h;
    if (!parse_header(path, hdr, (size_t)got, total, role, &h, err, errn)) return false;
    if (shape) *shape = result_shape(&h);
    return true;
}
