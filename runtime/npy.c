/* NumPy .npy files: read (v1.0, v2.0, v3.0) and write (v1.0).
 *
 * A .npy file is the magic "\x93NUMPY", a version, a little-endian header
 * length, a Python dict literal {'descr': ..., 'fortran_order': ...,
 * 'shape': (...)} padded with spaces to a 64-byte boundary, then the raw
 * elements. The dict is parsed by a small strict parser (exactly those three
 * keys, nothing after the closing brace but padding), and the element count
 * is checked against the bytes actually present *before* any tensor is
 * allocated, so a lying header costs nothing. Supported dtypes: <f4 <f8 <f2
 * <i4 <i8 |b1, and |u1 |i1 widened to i32. Big-endian and Fortran-order
 * arrays are refused rather than converted. The file may be gzipped.
 * Writing goes through a temporary name and rename (runtime/outfile.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dataio.h"
#include "runtime/errmsg.h"
#include "runtime/outfile.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

/* ---- the header dict ---- */

typedef struct {
    const char *p, *end;
} Cursor;

typedef struct {
    char descr[16];
    int fortran; /* -1 = missing */
    int rank;    /* -1 = missing */
    int64_t dims[RT_MAX_RANK];
} NpyHeader;

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(Cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (none of the keys or dtypes need one). */
static bool parse_str(Cursor *c, char *out, size_t outn) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= outn) return false;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    out[n] = 0;
    return true;
}

static bool parse_word(Cursor *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

/* (), (n,), (a, b, ...): non-negative decimal ints, optional trailing comma,
 * and the 'L' suffix Python 2 wrote for longs. */
static const char *parse_shape(Cursor *c, NpyHeader *h) {
    if (!eat(c, '(')) return "bad header: shape is not a tuple";
    h->rank = 0;
    for (;;) {
        if (eat(c, ')')) return NULL;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return "bad header: malformed shape";
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            int d = *c->p++ - '0';
            if (v > (INT64_MAX - d) / 10) return "bad header: shape dimension too large";
            v = v * 10 + d;
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        if (h->rank >= RT_MAX_RANK) return "bad header: more than 8 dimensions";
        h->dims[h->rank++] = v;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) return h->rank == 1 ? "bad header: malformed shape" : NULL;
        return "bad header: malformed shape";
    }
}

static const char *parse_header(const char *text, size_t n, NpyHeader *h) {
    Cursor c = {text, text + n};
    memset(h, 0, sizeof *h);
    h->fortran = -1;
    h->rank = -1;
    bool have_descr = false;
    if (!eat(&c, '{')) return "bad header: not a dict";
    for (;;) {
        if (eat(&c, '}')) break;
        char key[32];
        if (!parse_str(&c, key, sizeof key)) return "bad header: expected a quoted key";
        if (!eat(&c, ':')) return "bad header: expected ':'";
        if (strcmp(key, "descr") == 0) {
            if (have_descr) return "bad header: duplicate 'descr'";
            if (!parse_str(&c, h->descr, sizeof h->descr))
                return "bad header: descr must be a simple dtype string";
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (h->fortran != -1) return "bad header: duplicate 'fortran_order'";
            if (parse_word(&c, "True"))
                h->fortran = 1;
            else if (parse_word(&c, "False"))
                h->fortran = 0;
            else
                return "bad header: fortran_order must be True or False";
        } else if (strcmp(key, "shape") == 0) {
            if (h->rank != -1) return "bad header: duplicate 'shape'";
            const char *e = parse_shape(&c, h);
            if (e) return e;
        } else {
            return "bad header: unexpected key";
        }
        if (eat(&c, ',')) continue;
        if (eat(&c, '}')) break;
        return "bad header: expected ',' or '}'";
    }
    skip_ws(&c);
    if (c.p != c.end) return "bad header: junk after the dict";
    if (!have_descr) return "bad header: missing 'descr'";
    if (h->fortran == -1) return "bad header: missing 'fortran_order'";
    if (h->rank == -1) return "bad header: missing 'shape'";
    return NULL;
}

/* descr -> (tensor dtype, bytes per element in the file) */
typedef struct {
    const char *descr;
    DType dt;
    size_t file_size;
} NpyType;

static const NpyType npy_types[] = {
    {"<f4", DT_F32, 4}, {"<f8", DT_F64, 8},  {"<f2", DT_F16, 2}, {"<i4", DT_I32, 4},
    {"<i8", DT_I64, 8}, {"|b1", DT_BOOL, 1}, {"|u1", DT_I32, 1}, {"|i1", DT_I32, 1},
};

/* ---- reading ---- */

RtTensor *rt_npy_read(const char *path, char *err, size_t errn) {
    unsigned char *buf;
    size_t n;
    if (!rt_read_file(path, &buf, &n, err, errn)) return NULL;
    RtTensor *t = rt_npy_parse(path, buf, n, err, errn);
    free(buf);
    return t;
}

RtTensor *rt_npy_parse(const char *path, const unsigned char *buf, size_t n, char *err,
                       size_t errn) {
    RtTensor *t = NULL;
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (n == 0) {
        rt_errmsg_at(err, errn, path, "empty file");
        goto done;
    }
    if (n < 6 || memcmp(buf, magic, 6) != 0) {
        rt_errmsg_at(err, errn, path, "not an npy file (bad magic)");
        goto done;
    }
    if (n < 10) {
        rt_errmsg_at(err, errn, path, "truncated header");
        goto done;
    }
    unsigned major = buf[6], minor = buf[7];
    size_t hlen, hstart;
    if (major == 1 && minor == 0) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hstart = 10;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (n < 12) {
            rt_errmsg_at(err, errn, path, "truncated header");
            goto done;
        }
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hstart = 12;
    } else {
        rt_errmsg_at(err, errn, path, "unsupported npy version %u.%u", major, minor);
        goto done;
    }
    if (hlen > n - hstart) {
        rt_errmsg_at(err, errn, path, "truncated header: says %zu bytes, file has %zu", hlen,
                     n - hstart);
        goto done;
    }
    NpyHeader h;
    const char *perr = parse_header((const char *)buf + hstart, hlen, &h);
    if (perr) {
        rt_errmsg_at(err, errn, path, "%s", perr);
        goto done;
    }
    const NpyType *ty = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (strcmp(h.descr, npy_types[i].descr) == 0) ty = &npy_types[i];
    if (!ty) {
        rt_errmsg_at(err, errn, path, "unsupported dtype '%s'", h.descr);
        goto done;
    }
    if (h.fortran) {
        rt_errmsg_at(err, errn, path, "fortran_order arrays are not supported");
        goto done;
    }
    Shape shape = rt_shape_make(h.rank, h.dims);
    int64_t numel = rt_shape_numel(&shape);
    char sbuf[200];
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / 8) {
        rt_errmsg_at(err, errn, path, "shape %s is too large",
                     rt_shape_str(&shape, sbuf, sizeof sbuf));
        goto done;
    }
    uint64_t want = (uint64_t)numel * ty->file_size;
    size_t have = n - hstart - hlen;
    if (want != have) {
        rt_errmsg_at(err, errn, path, "%s: header says %lld elements (%llu bytes), file has %zu",
                     want > have ? "truncated" : "trailing bytes", (long long)numel,
                     (unsigned long long)want, have);
        goto done;
    }
    t = rt_tensor_new(ty->dt, shape);
    if (!t) {
        rt_errmsg_at(err, errn, path, "cannot allocate %s %s", rt_dtype_name(ty->dt),
                     rt_shape_str(&shape, sbuf, sizeof sbuf));
        goto done;
    }
    const unsigned char *src = buf + hstart + hlen;
    if (strcmp(ty->descr, "|u1") == 0) {
        for (int64_t i = 0; i < numel; i++)
            ((int32_t *)t->data)[i] = src[i];
    } else if (strcmp(ty->descr, "|i1") == 0) {
        for (int64_t i = 0; i < numel; i++)
            ((int32_t *)t->data)[i] = (int8_t)src[i];
    } else if (ty->dt == DT_BOOL) {
        for (int64_t i = 0; i < numel; i++)
            ((uint8_t *)t->data)[i] = src[i] != 0;
    } else if (want) {
        memcpy(t->data, src, (size_t)want);
    }
done:
    return t;
}

/* ---- writing ---- */

bool rt_npy_write(const char *path, const RtTensor *t, char *err, size_t errn) {
    if (!t) {
        rt_errmsg_at(err, errn, path, "no tensor to write");
        return false;
    }
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dt == t->dtype && npy_types[i].file_size == rt_dtype_size(t->dtype)) {
            descr = npy_types[i].descr;
            break;
        }
    if (!descr) {
        rt_errmsg_at(err, errn, path, "%s has no npy dtype", rt_dtype_name(t->dtype));
        return false;
    }
    if (rt_shape_numel(&t->shape) < 0) {
        rt_errmsg_at(err, errn, path, "invalid shape");
        return false;
    }
    char dict[400];
    int k =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->shape.rank; i++)
        k += snprintf(dict + k, sizeof dict - (size_t)k, i ? ", %lld" : "%lld",
                      (long long)t->shape.dims[i]);
    k += snprintf(dict + k, sizeof dict - (size_t)k, "%s), }", t->shape.rank == 1 ? "," : "");
    /* pad with spaces so that the data starts on a 64-byte boundary; the
     * header always ends in a newline */
    size_t total = 10 + (size_t)k + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    char header[512];
    memcpy(header, dict, (size_t)k);
    memset(header + k, ' ', hlen - (size_t)k - 1);
    header[hlen - 1] = '\n';

    RtOutFile o;
    if (!rt_out_open(&o, path, 0666, err, errn)) return false;
    size_t bytes = rt_tensor_bytes(t);
    bool ok = fwrite(pre, 1, 10, o.f) == 10 && fwrite(header, 1, hlen, o.f) == hlen &&
              (bytes == 0 || fwrite(t->data, 1, bytes, o.f) == bytes);
    if (!ok) {
        rt_out_error(err, errn, path, errno);
        rt_out_abort(&o);
        return false;
    }
    return rt_out_commit(&o, err, errn);
}
