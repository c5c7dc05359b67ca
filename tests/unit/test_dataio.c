/* Tests for the data readers: rt_read_file, npy, CSV, IDX.
 *
 * Round trips write files into a fresh mkdtemp directory (under $TMPDIR) and
 * read them back; the vendored MNIST files must load with the known class
 * counts; and every reader is fed malformed files generated here (bad magic,
 * truncated header or data, bad dtype, lying huge shapes, corrupt and
 * truncated gzip, empty files, ragged CSV), each expected to return NULL
 * with a message that names the file and the problem. */
#define _XOPEN_SOURCE 700 /* P_tmpdir, the system's temp directory */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "helpers/spawn.h"
#include "runtime/dataio.h"

/* ---- a temp directory per test (each test runs in its own process) ---- */

static char tmpdir[512];
static char made[64][600];
static int nmade;

static void setup_tmp(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = P_tmpdir;
    snprintf(tmpdir, sizeof tmpdir, "%s/dflow-dataio-XXXXXX", base);
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp");
    nmade = 0;
}

static void teardown_tmp(void) {
    for (int i = 0; i < nmade; i++)
        remove(made[i]);
    rmdir(tmpdir);
}

TestSuite(dataio, .init = setup_tmp, .fini = teardown_tmp);

/* Path of `name` in the temp directory (valid until the next call + 63). */
static const char *tpath(const char *name) {
    cr_assert(nmade < 64);
    snprintf(made[nmade], sizeof made[nmade], "%s/%s", tmpdir, name);
    return made[nmade++];
}

static const char *write_bytes(const char *name, const void *data, size_t n) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    if (n) cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return p;
}

static const char *write_text(const char *name, const char *text) {
    return write_bytes(name, text, strlen(text));
}

static const char *write_gz(const char *name, const void *data, size_t n) {
    const char *p = tpath(name);
    gzFile g = gzopen(p, "wb");
    cr_assert_not_null(g);
    if (n) cr_assert_eq(gzwrite(g, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
    return p;
}

/* gzip-compresses into memory (caller frees). */
static unsigned char *gzip_mem(const void *data, size_t n, size_t *outn) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert_eq(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n) + 64;
    unsigned char *out = malloc(cap);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *outn = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static char errbuf[512];
static char want[1024];

static const char *fmt(const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    vsnprintf(want, sizeof want, f, ap);
    va_end(ap);
    return want;
}

/* An .npy file from a raw header dict, padded like numpy pads (to 64). */
static const char *write_npy_raw(const char *name, int major, const char *dict, const void *data,
                                 size_t n) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + 63) / 64 * 64, hlen = total - pre;
    unsigned char *buf = calloc(1, total + n);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    if (major != 1) buf[10] = buf[11] = 0;
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[total - 1] = '\n';
    if (n) memcpy(buf + total, data, n);
    const char *p = write_bytes(name, buf, total + n);
    free(buf);
    return p;
}

/* ---- rt_read_file ---- */

Test(dataio, read_file_plain_and_gzip) {
    const char text[] = "hello, gzip world\n";
    const char *p = write_text("a.txt", text);
    unsigned char *b;
    size_t n;
    cr_assert(rt_read_file(p, &b, &n, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect_eq(n, strlen(text));
    cr_expect_eq(memcmp(b, text, n), 0);
    cr_expect_eq(b[n], 0, "NUL after the data");
    free(b);
    const char *g = write_gz("a.txt.gz", text, strlen(text));
    cr_assert(rt_read_file(g, &b, &n, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect_eq(n, strlen(text));
    cr_expect_eq(memcmp(b, text, n), 0);
    free(b);
    /* gzip is detected by magic, not by the name */
    size_t zn;
    unsigned char *z = gzip_mem(text, strlen(text), &zn);
    const char *disguised = write_bytes("plain.name", z, zn);
    cr_assert(rt_read_file(disguised, &b, &n, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect_eq(n, strlen(text));
    free(b);
    free(z);
    const char *e = write_bytes("empty", "", 0);
    cr_assert(rt_read_file(e, &b, &n, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect_eq(n, 0);
    free(b);
}

Test(dataio, read_file_multi_member_gzip) {
    size_t n1, n2;
    unsigned char *a = gzip_mem("first ", 6, &n1), *b = gzip_mem("second", 6, &n2);
    unsigned char *both = malloc(n1 + n2 + 8);
    memcpy(both, a, n1);
    memcpy(both + n1, b, n2);
    memset(both + n1 + n2, 0, 8); /* zero padding is tolerated, like gunzip */
    const char *p = write_bytes("two.gz", both, n1 + n2 + 8);
    unsigned char *out;
    size_t n;
    cr_assert(rt_read_file(p, &out, &n, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect_eq(n, 12);
    cr_expect_eq(memcmp(out, "first second", 12), 0);
    free(out);
    both[n1 + n2] = 'x';
    p = write_bytes("junk.gz", both, n1 + n2 + 8);
    cr_expect_not(rt_read_file(p, &out, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: trailing garbage after the gzip data", p));
    free(a);
    free(b);
    free(both);
}

Test(dataio, read_file_errors) {
    unsigned char *b;
    size_t n;
    const char *p = tpath("does-not-exist");
    cr_expect_not(rt_read_file(p, &b, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: cannot open: No such file or directory", p));
    cr_expect_not(rt_read_file(tmpdir, &b, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: is a directory", tmpdir));
}

/* Corrupt and truncated gzip streams are errors, whatever the reader. */
Test(dataio, corrupt_and_truncated_gzip) {
    unsigned char data[4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 % 251);
    size_t zn;
    unsigned char *z = gzip_mem(data, sizeof data, &zn);
    unsigned char *out;
    size_t n;

    const char *cut = write_bytes("cut.gz", z, zn / 2);
    cr_expect_not(rt_read_file(cut, &out, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: truncated gzip data (unexpected end of file)", cut));
    const char *magic_only = write_bytes("magic.gz", "\x1f\x8b", 2);
    cr_expect_not(rt_read_file(magic_only, &out, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: truncated gzip data (unexpected end of file)", magic_only));
    const char *no_trailer = write_bytes("notrailer.gz", z, zn - 4);
    cr_expect_not(rt_read_file(no_trailer, &out, &n, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "truncated gzip data") != NULL, "%s", errbuf);

    unsigned char *bad = malloc(zn);
    memcpy(bad, z, zn);
    bad[zn - 6] ^= 0xff; /* the CRC */
    const char *crc = write_bytes("crc.gz", bad, zn);
    cr_expect_not(rt_read_file(crc, &out, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: corrupt gzip data (incorrect data check)", crc));
    memcpy(bad, z, zn);
    for (size_t i = 12; i < 40; i++)
        bad[i] = 0xff; /* the deflate blocks */
    const char *mid = write_bytes("mid.gz", bad, zn);
    cr_expect_not(rt_read_file(mid, &out, &n, errbuf, sizeof errbuf));
    const char *prefix = fmt("%s: corrupt gzip data (", mid);
    cr_expect(strncmp(errbuf, prefix, strlen(prefix)) == 0, "%s", errbuf);
    memcpy(bad, z, zn);
    bad[2] = 7; /* compression method other than deflate */
    const char *meth = write_bytes("method.gz", bad, zn);
    cr_expect_not(rt_read_file(meth, &out, &n, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: corrupt gzip data (unknown compression method)", meth));

    /* the same through the IDX and npy readers */
    cr_expect_null(rt_idx_read(mid, 1.0, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "corrupt gzip data") != NULL, "%s", errbuf);
    cr_expect_null(rt_npy_read(cut, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "truncated gzip data") != NULL, "%s", errbuf);
    free(bad);
    free(z);
}

/* ---- npy ---- */

static void npy_roundtrip(DType dt, int rank, const int64_t *dims) {
    RtTensor *t = rt_tensor_new(dt, rt_shape_make(rank, dims));
    cr_assert_not_null(t);
    int64_t n = rt_shape_numel(&t->shape);
    for (int64_t i = 0; i < n; i++)
        rt_tensor_set_f64(t, i, (double)((i * 37) % 11) - 4.5);
    char name[64];
    snprintf(name, sizeof name, "rt_%s_%d.npy", rt_dtype_name(dt), rank);
    const char *p = tpath(name);
    cr_assert(rt_npy_write(p, t, errbuf, sizeof errbuf), "%s", errbuf);
    RtTensor *r = rt_npy_read(p, errbuf, sizeof errbuf);
    cr_assert_not_null(r, "%s", errbuf);
    cr_expect_eq(r->dtype, dt);
    cr_expect(rt_shape_eq(&r->shape, &t->shape), "shape for %s", name);
    cr_expect_eq(memcmp(r->data, t->data, rt_tensor_bytes(t)), 0, "data for %s", name);
    rt_tensor_free(r);
    rt_tensor_free(t);
    /* numpy's layout: the data starts on a 64-byte boundary after a '\n' */
    unsigned char *b;
    size_t len;
    cr_assert(rt_read_file(p, &b, &len, errbuf, sizeof errbuf));
    size_t data_at = 10 + (size_t)(b[8] | b[9] << 8);
    cr_expect_eq(data_at % 64, 0);
    cr_expect_eq(b[data_at - 1], '\n');
    cr_expect_eq(b[6], 1);
    free(b);
}

Test(dataio, npy_roundtrip_all_dtypes) {
    const DType dts[] = {DT_F32, DT_F64, DT_F16, DT_I32, DT_I64, DT_BOOL};
    const int64_t d3[3] = {2, 3, 5}, d1[1] = {7}, d0[1] = {0};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        npy_roundtrip(dts[i], 0, NULL);
        npy_roundtrip(dts[i], 1, d1);
        npy_roundtrip(dts[i], 3, d3);
    }
    npy_roundtrip(DT_F32, 1, d0);
}

Test(dataio, npy_header_text) {
    int64_t d[2] = {3, 4};
    RtTensor *t = rt_tensor_new(DT_F32, rt_shape_make(2, d));
    const char *p = tpath("h.npy");
    cr_assert(rt_npy_write(p, t, errbuf, sizeof errbuf));
    unsigned char *b;
    size_t n;
    cr_assert(rt_read_file(p, &b, &n, errbuf, sizeof errbuf));
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    cr_expect_eq(memcmp(b + 10, dict, strlen(dict)), 0, "%.60s", (char *)b + 10);
    cr_expect_eq(n, 128 + 48);
    free(b);
    rt_tensor_free(t);
    RtTensor *h = rt_tensor_new(DT_BF16, rt_shape_make(2, d));
    cr_expect_not(rt_npy_write(tpath("bf.npy"), h, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "bf16 has no npy dtype") != NULL, "%s", errbuf);
    rt_tensor_free(h);
}

/* Files numpy (or Python 2 numpy) could have written, which we did not. */
Test(dataio, npy_foreign_variants) {
    const unsigned char u8[6] = {0, 1, 127, 128, 200, 255};
    const char *p = write_npy_raw(
        "u8.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", u8, 6);
    RtTensor *t = rt_npy_read(p, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(t->dtype, DT_I32, "u1 widens to i32");
    for (int i = 0; i < 6; i++)
        cr_expect_eq(((int32_t *)t->data)[i], u8[i]);
    rt_tensor_free(t);

    p = write_npy_raw("i8.npy", 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (6,), }", u8,
                      6);
    t = rt_npy_read(p, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(((int32_t *)t->data)[3], -128);
    rt_tensor_free(t);

    const double v[2] = {1.5, -2.25};
    p = write_npy_raw("v2.npy", 2,
                      "{\"descr\": \"<f8\", \"shape\": (2L,), \"fortran_order\": False}", v, 16);
    t = rt_npy_read(p, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(t->dtype, DT_F64);
    cr_expect_eq(t->shape.rank, 1);
    cr_expect_eq(((double *)t->data)[1], -2.25);
    rt_tensor_free(t);

    const unsigned char bools[3] = {0, 1, 2};
    p = write_npy_raw("b.npy", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}", bools,
                      3);
    t = rt_npy_read(p, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(((uint8_t *)t->data)[2], 1, "bools normalise to 0/1");
    rt_tensor_free(t);

    /* gzipped npy, found by magic */
    int64_t d[1] = {5};
    RtTensor *w = rt_tensor_new(DT_I64, rt_shape_make(1, d));
    for (int i = 0; i < 5; i++)
        rt_tensor_set_i64(w, i, INT64_C(1) << (40 + i));
    const char *plain = tpath("w.npy");
    cr_assert(rt_npy_write(plain, w, errbuf, sizeof errbuf));
    unsigned char *raw;
    size_t rn;
    cr_assert(rt_read_file(plain, &raw, &rn, errbuf, sizeof errbuf));
    const char *gz = write_gz("w.npy.gz", raw, rn);
    t = rt_npy_read(gz, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(memcmp(t->data, w->data, 40), 0);
    rt_tensor_free(t);
    rt_tensor_free(w);
    free(raw);
}

Test(dataio, npy_malformed) {
    const float f[12] = {0};
    const char *hdr12 = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    const char *p;

    p = write_bytes("empty.npy", "", 0);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: empty file", p));

    p = write_text("magic.npy", "PK\x03\x04 this is a zip, not npy");
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: not an npy file (bad magic)", p));

    p = write_npy_raw("trunc.npy", 1, hdr12, f, 40);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf,
                     fmt("%s: truncated: header says 12 elements (48 bytes), file has 40", p));

    p = write_npy_raw("trail.npy", 1, hdr12, f, 48);
    FILE *fp = fopen(p, "ab");
    fputc(0, fp);
    fclose(fp);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf,
                     fmt("%s: trailing bytes: header says 12 elements (48 bytes), file has 49", p));

    p = write_bytes("hdr.npy", "\x93NUMPY\x01\x00\x76\x00{'descr'", 17);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: truncated header: says 118 bytes, file has 7", p));

    p = write_bytes("short.npy", "\x93NUMPY\x01", 7);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: truncated header", p));

    p = write_npy_raw("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", f,
                      48);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: unsupported dtype '>f4'", p));

    p = write_npy_raw("c16.npy", 1, "{'descr': '<c16', 'fortran_order': False, 'shape': (3,), }", f,
                      48);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: unsupported dtype '<c16'", p));

    p = write_npy_raw("fort.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }",
                      f, 48);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: fortran_order arrays are not supported", p));

    p = write_npy_raw("ver.npy", 4, hdr12, f, 48);
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: unsupported npy version 4.0", p));

    const struct {
        const char *dict, *msg;
    } bad[] = {
        {"{'descr': '<f4', 'shape': (3, 4), }", "bad header: missing 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False}", "bad header: missing 'shape'"},
        {"{'fortran_order': False, 'shape': (12,)}", "bad header: missing 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (12), }",
         "bad header: malformed shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-12,), }",
         "bad header: malformed shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': 12, }",
         "bad header: shape is not a tuple"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (12,), }",
         "bad header: fortran_order must be True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (12,), 'x': 1}",
         "bad header: unexpected key"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (12,)}",
         "bad header: duplicate 'descr'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (12,)} junk",
         "bad header: junk after the dict"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (12,)}",
         "bad header: expected ',' or '}'"},
        {"['<f4', False, (12,)]", "bad header: not a dict"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,12)}",
         "bad header: more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
         "bad header: shape dimension too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_npy_raw("bad.npy", 1, bad[i].dict, f, 48);
        nmade--; /* the same name each time */
        cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf), "case %zu", i);
        cr_expect_str_eq(errbuf, fmt("%s: %s", p, bad[i].msg), "case %zu", i);
    }
    nmade++;
}

/* A header that claims gigabytes must fail from the size check, before any
 * allocation: with the data segment limited to 256 MiB, an attempt to
 * allocate would show up as "cannot allocate" instead. */
Test(dataio, npy_huge_shape_fails_fast) {
    const float f[4] = {1, 2, 3, 4};
    const char *p = write_npy_raw(
        "huge.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (250000000,), }", f, 16);
    const char *q = write_npy_raw(
        "overflow.npy", 1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", f, 16);
    const char *r = write_npy_raw(
        "overflow2.npy", 1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }", f, 16);
#ifndef __SANITIZE_ADDRESS__
    struct rlimit rl = {256u << 20, 256u << 20};
    cr_assert_eq(setrlimit(RLIMIT_DATA, &rl), 0);
#endif
    cr_expect_null(rt_npy_read(p, errbuf, sizeof errbuf));
    cr_expect_str_eq(
        errbuf,
        fmt("%s: truncated: header says 250000000 elements (1000000000 bytes), file has 16", p));
    cr_expect_null(rt_npy_read(q, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: shape [4294967296,4294967296,4] is too large", q));
    cr_expect_null(rt_npy_read(r, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: shape [4611686018427387904] is too large", r));
    /* empty, but its other dimensions multiply past int64 (rt_shape_numel's rule) */
    const char *e = write_npy_raw(
        "empty_huge.npy", 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296), }", f, 0);
    cr_expect_null(rt_npy_read(e, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: shape [0,4294967296,4294967296] is too large", e));
}

/* ---- CSV ---- */

Test(dataio, csv_header_and_values) {
    const char *p = write_text("h.csv", "x,y,\"label\"\n1,2.5,3\n-4,5e-1,6\r\n\n\n");
    bool hdr = false;
    RtTensor *t = rt_csv_read(p, DT_F32, &hdr, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect(hdr);
    cr_expect_eq(t->shape.rank, 2);
    cr_expect_eq(t->shape.dims[0], 2);
    cr_expect_eq(t->shape.dims[1], 3);
    const float want_v[6] = {1, 2.5f, 3, -4, 0.5f, 6};
    cr_expect_eq(memcmp(t->data, want_v, sizeof want_v), 0);
    rt_tensor_free(t);

    p = write_text("n.csv", " 1 , 2\n3,4");
    t = rt_csv_read(p, DT_F64, &hdr, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_not(hdr);
    cr_expect_eq(t->dtype, DT_F64);
    cr_expect_eq(((double *)t->data)[3], 4.0);
    rt_tensor_free(t);

    p = write_text("i.csv", "a,b\n1,-2\n3.0,2147483647\n");
    t = rt_csv_read(p, DT_I32, NULL, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(((int32_t *)t->data)[1], -2);
    cr_expect_eq(((int32_t *)t->data)[2], 3);
    cr_expect_eq(((int32_t *)t->data)[3], INT32_MAX);
    rt_tensor_free(t);

    p = write_text("l.csv", "9007199254740993\n");
    t = rt_csv_read(p, DT_I64, NULL, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(((int64_t *)t->data)[0], INT64_C(9007199254740993), "no trip through double");
    rt_tensor_free(t);

    p = write_text("nan.csv", "nan,inf\n1,2\n");
    t = rt_csv_read(p, DT_F32, &hdr, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_not(hdr);
    cr_expect(isnan(((float *)t->data)[0]));
    rt_tensor_free(t);

    const char csv[] = "a,b\n1,2\n";
    p = write_gz("g.csv.gz", csv, strlen(csv));
    t = rt_csv_read(p, DT_F32, &hdr, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect(hdr);
    cr_expect_eq(t->shape.dims[0], 1);
    rt_tensor_free(t);
}

Test(dataio, csv_malformed) {
    const char *p =
        write_text("ragged.csv", "a,b,c,d\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3\n");
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:7: expected 4 columns, found 3", p));

    p = write_text("nan.csv", "1,2\n3,4\n5,abc\n");
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:3:2: not a number: 'abc'", p));

    p = write_text("emptycell.csv", "1,2\n3,\n");
    cr_expect_null(rt_csv_read(p, DT_F64, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:2:2: not a number: ''", p));

    p = write_text("int.csv", "1,2\n3,4.5\n");
    cr_expect_null(rt_csv_read(p, DT_I32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:2:2: not an integer in range for i32: '4.5'", p));

    p = write_text("range.csv", "3000000000\n");
    cr_expect_null(rt_csv_read(p, DT_I32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:1:1: not an integer in range for i32: '3000000000'", p));

    p = write_text("blank.csv", "1,2\n\n3,4\n");
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:2: blank line inside the data", p));

    p = write_bytes("empty.csv", "", 0);
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: empty file", p));

    p = write_text("blanks.csv", "\n \n");
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: empty file", p));

    p = write_text("hdronly.csv", "a,b\n");
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: no data rows after the header", p));

    p = write_text("ok.csv", "1\n");
    cr_expect_null(rt_csv_read(p, DT_BOOL, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: cannot read CSV as bool", p));
}

/* ---- IDX ---- */

/* An IDX file in memory: type, dims, then the bytes i*13 % 256. */
static unsigned char *idx_mem(int type, int ndim, const uint32_t *dims, size_t *n) {
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= dims[i];
    *n = 4 + 4 * (size_t)ndim + numel;
    unsigned char *b = malloc(*n);
    b[0] = b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    for (size_t i = 0; i < numel; i++)
        b[4 + 4 * (size_t)ndim + i] = (unsigned char)(i * 13 % 256);
    return b;
}

static void check_images(const char *p, size_t hlen, const unsigned char *raw) {
    RtTensor *t = rt_idx_read(p, 0.5, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(t->dtype, DT_F32);
    cr_expect_eq(t->shape.rank, 2);
    cr_expect_eq(t->shape.dims[0], 3);
    cr_expect_eq(t->shape.dims[1], 20);
    for (int i = 0; i < 60; i++)
        cr_expect_eq(((float *)t->data)[i], raw[hlen + i] * 0.5f);
    Shape s;
    cr_assert(rt_idx_shape(p, &s, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect(rt_shape_eq(&s, &t->shape));
    rt_tensor_free(t);
}

/* A table read from memory with options (the path is only a name in errors). */
static RtTensor *csv_mem(const char *text, size_t n, DType dt, RtCsvHeader h, bool labels,
                         int64_t col, bool *hdr) {
    RtCsvOptions o = {.dtype = dt, .header = h, .has_int_col = labels, .int_col = col};
    return rt_csv_parse("m.csv", (const unsigned char *)text, n, &o, hdr, errbuf, sizeof errbuf);
}

#define CSV(text, dt, h, labels, col, hdr) csv_mem(text, sizeof text - 1, dt, h, labels, col, hdr)

/* The header rule: a row of text is a header, a row of numbers is data, a mix
 * is refused; header = true never drops a numeric row; false keeps row 1. */
Test(dataio, csv_header_rule) {
    bool hdr = true;
    RtTensor *t = CSV("1,2\n3,4\n", DT_F32, RT_CSV_HEADER_AUTO, false, 0, &hdr);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_not(hdr);
    cr_expect_eq(t->shape.dims[0], 2, "a numeric first row is data");
    rt_tensor_free(t);
    t = CSV("a,b\n3,4\n", DT_F32, RT_CSV_HEADER_AUTO, false, 0, &hdr);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect(hdr);
    cr_expect_eq(t->shape.dims[0], 1);
    rt_tensor_free(t);
    /* a data row with a typo was taken for a header and silently dropped */
    cr_expect_null(CSV("1,2x\n3,4\n", DT_F32, RT_CSV_HEADER_AUTO, false, 0, &hdr));
    cr_expect_str_eq(errbuf, "m.csv:1:2: the first row mixes numbers and text, so it is neither "
                             "clearly a header nor data: say header = true or header = false");
    t = CSV("id,2019\n3,4\n", DT_F32, RT_CSV_HEADER_YES, false, 0, &hdr);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect(hdr);
    cr_expect_eq(t->shape.dims[0], 1, "a mixed header said to be one");
    rt_tensor_free(t);
    cr_expect_null(CSV("1,2\n3,4\n", DT_F32, RT_CSV_HEADER_YES, false, 0, &hdr));
    cr_expect_str_eq(errbuf, "m.csv:1: header = true, but the first row is all numbers (a data "
                             "row, not a header)");
    cr_expect_null(CSV("a,b\n3,4\n", DT_F32, RT_CSV_HEADER_NO, false, 0, &hdr));
    cr_expect_str_eq(errbuf, "m.csv:1:1: not a number: 'a'");
    t = CSV("1,2\n3,4\n", DT_F32, RT_CSV_HEADER_NO, false, 0, &hdr);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(t->shape.dims[0], 2);
    rt_tensor_free(t);
}

/* The labels column: integers in the i32 range only, each bad cell located;
 * labels above 2^24 survive a float table exactly. */
Test(dataio, csv_label_column) {
    RtTensor *t =
        CSV("x,y\n0.5,16777217\n1.5,-3\n2,4.0\n", DT_F64, RT_CSV_HEADER_AUTO, true, -1, NULL);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(((double *)t->data)[1], 16777217.0);
    cr_expect_eq(((double *)t->data)[3], -3.0);
    cr_expect_eq(((double *)t->data)[5], 4.0);
    rt_tensor_free(t);
    static const char *bad[] = {"1.5", "nan", "-inf", "3000000000", "1e10", "-2147483649", "2.5e0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[128];
        int n = snprintf(text, sizeof text, "x,y\n1,2\n3,%s\n", bad[i]);
        cr_expect_null(csv_mem(text, (size_t)n, DT_F32, RT_CSV_HEADER_AUTO, true, 1, NULL), "%s",
                       bad[i]);
        cr_expect_str_eq(errbuf, fmt("m.csv:3:2: a label must be an integer from -2147483648 to "
                                     "2147483647, got '%s'",
                                     bad[i]));
    }
    cr_expect_null(CSV("1,2\n", DT_F32, RT_CSV_HEADER_AUTO, true, 2, NULL));
    cr_expect_str_eq(errbuf, "m.csv: column 2 is out of range for 2 columns");
    cr_expect_null(CSV("1,2\n", DT_F32, RT_CSV_HEADER_AUTO, true, -3, NULL));
    cr_expect_str_eq(errbuf, "m.csv: column -3 is out of range for 2 columns");
}

/* A NUL byte is not text: strtod stopped at it, so "4\0junk" read as 4. */
Test(dataio, csv_nul_byte) {
    cr_expect_null(CSV("1,2\n3,4\0junk\n", DT_F32, RT_CSV_HEADER_AUTO, false, 0, NULL));
    cr_expect_str_eq(errbuf, "m.csv:2:4: a NUL byte: this is not a text file");
    cr_expect_null(CSV("\0", DT_F32, RT_CSV_HEADER_AUTO, false, 0, NULL));
    cr_expect_str_eq(errbuf, "m.csv:1:1: a NUL byte: this is not a text file");
    const char *p = write_bytes("nul.csv", "a\nb\n\0", 5);
    cr_expect_null(rt_csv_read(p, DT_F32, NULL, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s:3:1: a NUL byte: this is not a text file", p));
}

Test(dataio, idx_roundtrip_plain_and_gzip) {
    const uint32_t dims[3] = {3, 4, 5};
    size_t n;
    unsigned char *b = idx_mem(0x08, 3, dims, &n);
    check_images(write_bytes("img.idx", b, n), 16, b);
    check_images(write_gz("img.idx.gz", b, n), 16, b);
    free(b);

    const uint32_t ld[1] = {9};
    b = idx_mem(0x08, 1, ld, &n);
    const char *paths[2] = {write_bytes("lab.idx", b, n), write_gz("lab.idx.gz", b, n)};
    for (int k = 0; k < 2; k++) {
        RtTensor *t = rt_idx_read(paths[k], 123.0, errbuf, sizeof errbuf);
        cr_assert_not_null(t, "%s", errbuf);
        cr_expect_eq(t->dtype, DT_I32);
        cr_expect_eq(t->shape.rank, 1);
        cr_expect_eq(t->shape.dims[0], 9);
        for (int i = 0; i < 9; i++)
            cr_expect_eq(((int32_t *)t->data)[i], b[8 + i], "labels ignore scale");
        Shape s;
        cr_assert(rt_idx_shape(paths[k], &s, errbuf, sizeof errbuf), "%s", errbuf);
        cr_expect(rt_shape_eq(&s, &t->shape));
        rt_tensor_free(t);
    }
    free(b);

    const uint32_t zd[2] = {0, 784};
    b = idx_mem(0x08, 2, zd, &n);
    RtTensor *t = rt_idx_read(write_bytes("zero.idx", b, n), 1.0, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(t->shape.dims[0], 0);
    cr_expect_eq(t->shape.dims[1], 784);
    rt_tensor_free(t);
    free(b);
}

/* Each malformed file fails in both rt_idx_read and (plain files) rt_idx_shape. */
static void expect_idx_error(const char *p, const char *msg, bool shape_too) {
    cr_expect_null(rt_idx_read(p, 1.0, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: %s", p, msg));
    if (shape_too) {
        Shape s;
        cr_expect_not(rt_idx_shape(p, &s, errbuf, sizeof errbuf));
        cr_expect_str_eq(errbuf, fmt("%s: %s", p, msg), "rt_idx_shape");
    }
}

Test(dataio, idx_malformed) {
    const uint32_t dims[3] = {2, 3, 3};
    size_t n;
    unsigned char *b = idx_mem(0x08, 3, dims, &n);

    expect_idx_error(write_bytes("empty.idx", "", 0), "empty file", true);
    expect_idx_error(write_bytes("tiny.idx", b, 3), "truncated header", true);
    expect_idx_error(write_bytes("hdr.idx", b, 10),
                     "truncated header: 3 dims need 16 bytes, file has 10", true);
    expect_idx_error(write_bytes("trunc.idx", b, n - 5),
                     "truncated: header says 18 bytes of data, file has 13", true);
    unsigned char *big = malloc(n + 2);
    memcpy(big, b, n);
    big[n] = big[n + 1] = 0;
    expect_idx_error(write_bytes("trail.idx", big, n + 2),
                     "trailing bytes: header says 18 bytes of data, file has 20", true);
    free(big);
    /* gzipped and truncated: found when the data is read */
    expect_idx_error(write_gz("trunc.idx.gz", b, n - 5),
                     "truncated: header says 18 bytes of data, file has 13", false);

    b[0] = 0x1f;
    b[1] = 0x00;
    expect_idx_error(write_bytes("magic.idx", b, n), "not an IDX file (bad magic 1f 00 08 03)",
                     true);
    b[0] = b[1] = 0;
    b[2] = 0x0D;
    expect_idx_error(
        write_bytes("float.idx", b, n),
        "unsupported IDX data type 0x0D (float); only unsigned byte (0x08) is supported", true);
    b[2] = 0x08;
    b[3] = 0;
    expect_idx_error(write_bytes("rank0.idx", b, n), "IDX rank 0 is not supported", true);
    free(b);

    /* lying header: 2^32-1 ^ 3 elements (overflow), and 10^9 bytes claimed in a small file */
    const uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
    unsigned char hdr[16] = {0, 0, 8, 3};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            hdr[4 + 4 * i + k] = (unsigned char)(huge[i] >> (24 - 8 * k));
    expect_idx_error(write_bytes("huge.idx", hdr, 16), "header dims are too large", true);
    /* empty (a zero dimension) but with rows of (2^32-1)^2 bytes: the row size overflowed */
    memset(hdr + 4, 0, 4);
    expect_idx_error(write_bytes("empty_huge.idx", hdr, 16), "header dims are too large", true);
#ifndef __SANITIZE_ADDRESS__
    struct rlimit rl = {256u << 20, 256u << 20};
    cr_assert_eq(setrlimit(RLIMIT_DATA, &rl), 0);
#endif
    unsigned char g[12] = {0,    0,    8,    2,    0x00, 0x0f,
                           0x42, 0x40, 0x00, 0x00, 0x03, 0xe8}; /* 1e6 x 1000 */
    expect_idx_error(write_bytes("giga.idx", g, 12),
                     "truncated: header says 1000000000 bytes of data, file has 0", true);
    size_t zn;
    unsigned char *z = gzip_mem(g, 12, &zn);
    expect_idx_error(write_bytes("giga.idx.gz", z, zn),
                     "truncated: header says 1000000000 bytes of data, file has 0", false);
    free(z);
}

Test(dataio, idx_missing_file) {
    const char *p = tpath("nope.idx.gz");
    cr_expect_null(rt_idx_read(p, 1.0, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: cannot open: No such file or directory", p));
    Shape s;
    cr_expect_not(rt_idx_shape(p, &s, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: cannot open: No such file or directory", p));
}

/* ---- the vendored MNIST subset ---- */

#define MNIST_IMAGES "data/mnist10k-images-idx3-ubyte.gz"
#define MNIST_LABELS "data/mnist10k-labels-idx1-ubyte.gz"

Test(dataio, mnist_vendored) {
    RtTensor *x = rt_idx_read(MNIST_IMAGES, 1.0 / 255.0, errbuf, sizeof errbuf);
    cr_assert_not_null(x, "%s", errbuf);
    cr_expect_eq(x->dtype, DT_F32);
    cr_assert_eq(x->shape.rank, 2);
    cr_expect_eq(x->shape.dims[0], 10000);
    cr_expect_eq(x->shape.dims[1], 784);
    const float *px = x->data;
    float lo = 1, hi = 0;
    double sum = 0;
    for (int64_t i = 0; i < 10000 * 784; i++) {
        lo = px[i] < lo ? px[i] : lo;
        hi = px[i] > hi ? px[i] : hi;
        sum += px[i];
    }
    cr_expect_eq(lo, 0.0f);
    cr_expect_eq(hi, 1.0f);
    double mean = sum / (10000.0 * 784);
    cr_expect(mean > 0.1 && mean < 0.15, "MNIST mean pixel ~0.13, got %g", mean);

    RtTensor *y = rt_idx_read(MNIST_LABELS, 1.0, errbuf, sizeof errbuf);
    cr_assert_not_null(y, "%s", errbuf);
    cr_expect_eq(y->dtype, DT_I32);
    cr_assert_eq(y->shape.rank, 1);
    cr_assert_eq(y->shape.dims[0], 10000);
    int counts[10] = {0};
    for (int i = 0; i < 10000; i++) {
        int32_t l = ((int32_t *)y->data)[i];
        cr_assert(l >= 0 && l <= 9, "label %d at %d", l, i);
        counts[l]++;
    }
    const int want_counts[10] = {1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978};
    for (int c = 0; c < 10; c++)
        cr_expect_eq(counts[c], want_counts[c], "class %d", c);
    /* shuffled, not grouped by class: the first 100 labels hold every digit */
    int seen = 0;
    for (int i = 0; i < 100; i++)
        seen |= 1 << ((int32_t *)y->data)[i];
    cr_expect_eq(seen, 0x3ff);

    Shape s;
    cr_assert(rt_idx_shape(MNIST_IMAGES, &s, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect(rt_shape_eq(&s, &x->shape));
    cr_assert(rt_idx_shape(MNIST_LABELS, &s, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect(rt_shape_eq(&s, &y->shape));
    rt_tensor_free(x);
    rt_tensor_free(y);
}

/* The role fixes the rank: images 2 or more, labels exactly 1; the file is named. */
Test(dataio, idx_rank_fits_role) {
    const uint32_t d1[1] = {4}, d2[2] = {4, 3}, d3[3] = {4, 2, 2};
    size_t n1, n2, n3;
    unsigned char *b1 = idx_mem(0x08, 1, d1, &n1), *b2 = idx_mem(0x08, 2, d2, &n2),
                  *b3 = idx_mem(0x08, 3, d3, &n3);
    const char *p1 = write_bytes("r1.idx", b1, n1), *p3 = write_bytes("r3.idx", b3, n3);
    RtTensor *t = rt_idx_read_as(p3, RT_IDX_IMAGES, 1.0, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    rt_tensor_free(t);
    t = rt_idx_parse("r2", b2, n2, RT_IDX_IMAGES, 1.0, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(t->shape.dims[1], 3);
    rt_tensor_free(t);
    cr_expect_null(rt_idx_read_as(p1, RT_IDX_IMAGES, 1.0, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: an images file needs rank 2 or more (a count, then each "
                                 "image's dims), this one has rank 1",
                                 p1));
    Shape s;
    cr_expect_not(rt_idx_shape_as(p1, RT_IDX_IMAGES, &s, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "needs rank 2 or more"), "%s", errbuf);
    cr_expect_null(rt_idx_read_as(p3, RT_IDX_LABELS, 1.0, errbuf, sizeof errbuf));
    cr_expect_str_eq(errbuf, fmt("%s: a labels file must have rank 1 (one label per image), this "
                                 "one has rank 3",
                                 p3));
    cr_expect_not(rt_idx_shape_as(p3, RT_IDX_LABELS, &s, errbuf, sizeof errbuf));
    cr_expect(rt_idx_shape_as(p1, RT_IDX_LABELS, &s, errbuf, sizeof errbuf), "%s", errbuf);
    free(b1);
    free(b2);
    free(b3);
}

/* The memory entry points (for fuzzing) agree with the file readers. */
Test(dataio, memory_entry_points) {
    float v[3] = {1, 2, 3};
    RtTensor *t = rt_tensor_new(DT_F32, rt_shape_make(1, (int64_t[]){3}));
    memcpy(t->data, v, sizeof v);
    const char *p = tpath("m.npy");
    cr_assert(rt_npy_write(p, t, errbuf, sizeof errbuf), "%s", errbuf);
    rt_tensor_free(t);
    size_t n;
    unsigned char *raw = (unsigned char *)th_slurp(p, &n);
    cr_assert_not_null(raw);
    t = rt_npy_parse("m.npy", raw, n, errbuf, sizeof errbuf);
    cr_assert_not_null(t, "%s", errbuf);
    cr_expect_eq(memcmp(t->data, v, sizeof v), 0);
    rt_tensor_free(t);
    cr_expect_null(rt_npy_parse("m.npy", raw, n - 1, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "m.npy: truncated"), "%s", errbuf);
    size_t zn, outn;
    unsigned char *z = gzip_mem(raw, n, &zn), *out;
    cr_assert(rt_gunzip("m.gz", z, zn, &out, &outn, errbuf, sizeof errbuf), "%s", errbuf);
    cr_expect_eq(outn, n);
    cr_expect_eq(memcmp(out, raw, n), 0);
    free(out);
    cr_expect_not(rt_gunzip("m.gz", z, zn - 3, &out, &outn, errbuf, sizeof errbuf));
    cr_expect(strstr(errbuf, "m.gz: truncated gzip data"), "%s", errbuf);
    free(z);
    free(raw);
}
