/* Tests for runtime/tensor.c: dtype metadata, shapes, allocation guards,
 * clone, and the slow get/set paths for every dtype (f16/bf16 included). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "runtime/checked.h"
#include "runtime/tensor.h"

Test(tensor, dtype_names_roundtrip) {
    for (int i = 0; i < DT_COUNT; i++) {
        DType d;
        cr_assert(rt_dtype_from_name(rt_dtype_name((DType)i), &d), "dtype %d", i);
        cr_expect_eq((int)d, i);
    }
    DType d;
    cr_expect_not(rt_dtype_from_name("f31", &d));
    cr_expect_not(rt_dtype_from_name("", &d));
    cr_expect_not(rt_dtype_from_name(NULL, &d));
    cr_expect_str_eq(rt_dtype_name(DT_BF16), "bf16");
    cr_expect_str_eq(rt_dtype_name(DT_BOOL), "bool");
    cr_expect_str_eq(rt_dtype_name((DType)99), "?");
}

Test(tensor, dtype_sizes_and_classes) {
    cr_expect_eq(rt_dtype_size(DT_F32), 4);
    cr_expect_eq(rt_dtype_size(DT_F64), 8);
    cr_expect_eq(rt_dtype_size(DT_F16), 2);
    cr_expect_eq(rt_dtype_size(DT_BF16), 2);
    cr_expect_eq(rt_dtype_size(DT_I32), 4);
    cr_expect_eq(rt_dtype_size(DT_I64), 8);
    cr_expect_eq(rt_dtype_size(DT_BOOL), 1);
    cr_expect(rt_dtype_is_float(DT_F16) && rt_dtype_is_float(DT_BF16) && rt_dtype_is_float(DT_F64));
    cr_expect(!rt_dtype_is_float(DT_I32) && !rt_dtype_is_float(DT_BOOL));
    cr_expect(rt_dtype_is_int(DT_I32) && rt_dtype_is_int(DT_I64));
    cr_expect(!rt_dtype_is_int(DT_BOOL) && !rt_dtype_is_int(DT_F32));
}

Test(tensor, shapes) {
    int64_t d[3] = {2, 3, 4};
    Shape s = rt_shape_make(3, d), sc = rt_shape_scalar();
    cr_expect_eq(rt_shape_numel(&s), 24);
    cr_expect_eq(rt_shape_numel(&sc), 1);
    char buf[64];
    cr_expect_str_eq(rt_shape_str(&s, buf, sizeof buf), "[2,3,4]");
    cr_expect_str_eq(rt_shape_str(&sc, buf, sizeof buf), "[]");
    char tiny[4];
    cr_expect_str_eq(rt_shape_str(&s, tiny, sizeof tiny), "[2,");
    Shape s2 = rt_shape_make(3, d);
    cr_expect(rt_shape_eq(&s, &s2));
    d[2] = 5;
    Shape s3 = rt_shape_make(3, d);
    cr_expect_not(rt_shape_eq(&s, &s3));
    Shape s4 = rt_shape_make(2, d);
    cr_expect_not(rt_shape_eq(&s, &s4));
    int64_t z[2] = {0, 7};
    Shape empty = rt_shape_make(2, z);
    cr_expect_eq(rt_shape_numel(&empty), 0);
}

Test(tensor, invalid_shapes) {
    int64_t neg[2] = {3, -1};
    Shape s = rt_shape_make(2, neg);
    cr_expect_eq(rt_shape_numel(&s), -1);
    cr_expect_null(rt_tensor_new(DT_F32, s));
    Shape bad = rt_shape_make(RT_MAX_RANK + 1, NULL);
    cr_expect_eq(rt_shape_numel(&bad), -1);
    cr_expect_null(rt_tensor_new(DT_F32, bad));
    cr_expect_null(rt_tensor_new((DType)99, rt_shape_scalar()));
}

/* Sizes that overflow int64 or exceed the cap return NULL, without asking
 * malloc for them. */
Test(tensor, overflow_guards) {
    int64_t big[2] = {INT64_C(1) << 32, INT64_C(1) << 32};
    Shape s = rt_shape_make(2, big);
    cr_expect_eq(rt_shape_numel(&s), -1, "2^64 elements overflow int64");
    cr_expect_null(rt_tensor_new(DT_BOOL, s));
    int64_t b2[1] = {INT64_C(1) << 62};
    cr_expect_null(rt_tensor_new(DT_F64, rt_shape_make(1, b2)), "numel * 8 overflows");
    int64_t b3[1] = {RT_TENSOR_MAX_BYTES / 4 + 1};
    cr_expect_null(rt_tensor_new(DT_F32, rt_shape_make(1, b3)), "just over the cap");
    int64_t b4[3] = {INT64_C(1) << 21, INT64_C(1) << 21, INT64_C(1) << 21};
    cr_expect_null(rt_tensor_new(DT_I32, rt_shape_make(3, b4)));
}

/* The checked size helpers: exact results in range, false (and *out kept)
 * at the first value past int64. */
Test(checked, add_sub_mul_edges) {
    int64_t r = 7;
    cr_expect(ck_add(INT64_MAX - 1, 1, &r) && r == INT64_MAX);
    r = 7;
    cr_expect_not(ck_add(INT64_MAX, 1, &r));
    cr_expect_not(ck_add(INT64_MAX, INT64_MAX, &r), "the pad(x, [[big, big]]) sum");
    cr_expect_eq(r, 7, "a failed helper leaves *out alone");
    cr_expect(ck_sub(INT64_MIN + 1, 1, &r) && r == INT64_MIN);
    cr_expect_not(ck_sub(INT64_MIN, 1, &r));
    cr_expect(ck_mul(INT64_C(1) << 31, INT64_C(1) << 31, &r) && r == INT64_C(1) << 62);
    cr_expect_not(ck_mul(INT64_C(1) << 32, INT64_C(1) << 31, &r));
    cr_expect_not(ck_mul(INT64_C(1) << 62, 4, &r), "an epoch count times the batches per epoch");
    cr_expect(ck_mul(-3, 4, &r) && r == -12);
}

Test(checked, numel_and_bytes) {
    int64_t r = 0;
    int64_t ok[3] = {2, 3, 4}, empty[3] = {5, 0, 7}, neg[2] = {2, -1};
    int64_t wide[3] = {INT64_C(1) << 32, 0, INT64_C(1) << 32};
    cr_expect(ck_numel(0, ok, &r) && r == 1, "a scalar has one element");
    cr_expect(ck_numel(3, ok, &r) && r == 24);
    cr_expect(ck_numel(3, empty, &r) && r == 0);
    cr_expect_not(ck_numel(2, neg, &r), "a negative dimension");
    cr_expect_not(ck_numel(-1, ok, &r), "a negative rank");
    cr_expect_not(ck_numel(3, wide, &r), "an empty shape whose other dimensions overflow");
    cr_expect(ck_bytes(INT64_C(1) << 60, 4, &r) && r == INT64_C(1) << 62);
    cr_expect_not(ck_bytes(INT64_C(1) << 61, 4, &r));
    cr_expect_not(ck_bytes(-1, 4, &r));
    Shape w = rt_shape_make(3, wide);
    cr_expect_eq(rt_shape_numel(&w), -1, "rt_shape_numel follows ck_numel");
}

Test(tensor, new_zeroed_clone_free) {
    int64_t d[2] = {3, 5};
    RtTensor *t = rt_tensor_new(DT_F64, rt_shape_make(2, d));
    cr_assert_not_null(t);
    cr_expect_eq(rt_tensor_bytes(t), 120);
    for (int64_t i = 0; i < 15; i++)
        cr_expect_eq(rt_tensor_get_f64(t, i), 0.0);
    for (int64_t i = 0; i < 15; i++)
        rt_tensor_set_f64(t, i, (double)i * 0.5);
    RtTensor *c = rt_tensor_clone(t);
    cr_assert_not_null(c);
    cr_expect(c->data != t->data);
    cr_expect(rt_shape_eq(&c->shape, &t->shape));
    cr_expect_eq(memcmp(c->data, t->data, 120), 0);
    rt_tensor_set_f64(t, 0, 99);
    cr_expect_eq(rt_tensor_get_f64(c, 0), 0.0, "clone is deep");
    rt_tensor_free(t);
    rt_tensor_free(c);
    rt_tensor_free(NULL);
    cr_expect_null(rt_tensor_clone(NULL));
}

Test(tensor, empty_and_scalar) {
    int64_t z[1] = {0};
    RtTensor *e = rt_tensor_new(DT_I32, rt_shape_make(1, z));
    cr_assert_not_null(e);
    cr_expect_not_null(e->data);
    cr_expect_eq(rt_tensor_bytes(e), 0);
    cr_expect_eq(rt_tensor_get_i64(e, 0), 0, "out of range reads 0");
    rt_tensor_set_i64(e, 0, 5); /* ignored, must not crash */
    rt_tensor_free(e);
    RtTensor *s = rt_tensor_new(DT_F32, rt_shape_scalar());
    cr_assert_not_null(s);
    rt_tensor_set_f64(s, 0, 2.5);
    cr_expect_eq(rt_tensor_get_f64(s, 0), 2.5);
    cr_expect_eq(rt_tensor_get_f64(s, 1), 0.0);
    cr_expect_eq(rt_tensor_get_f64(s, -1), 0.0);
    rt_tensor_free(s);
}

Test(tensor, get_set_each_dtype) {
    int64_t d[1] = {4};
    for (int k = 0; k < DT_COUNT; k++) {
        RtTensor *t = rt_tensor_new((DType)k, rt_shape_make(1, d));
        cr_assert_not_null(t);
        rt_tensor_set_f64(t, 0, 3.0);
        rt_tensor_set_i64(t, 1, -2);
        rt_tensor_set_f64(t, 2, 0.0);
        rt_tensor_set_i64(t, 3, 1);
        if (k == DT_BOOL) {
            cr_expect_eq(rt_tensor_get_i64(t, 0), 1);
            cr_expect_eq(rt_tensor_get_i64(t, 1), 1);
        } else {
            cr_expect_eq(rt_tensor_get_f64(t, 0), 3.0, "%s", rt_dtype_name((DType)k));
            cr_expect_eq(rt_tensor_get_i64(t, 1), -2, "%s", rt_dtype_name((DType)k));
            cr_expect_eq(rt_tensor_get_f64(t, 1), -2.0, "%s", rt_dtype_name((DType)k));
        }
        cr_expect_eq(rt_tensor_get_f64(t, 2), 0.0);
        cr_expect_eq(rt_tensor_get_i64(t, 3), 1);
        rt_tensor_free(t);
    }
}

Test(tensor, int_conversions_saturate) {
    int64_t d[1] = {6};
    RtTensor *t = rt_tensor_new(DT_I32, rt_shape_make(1, d));
    cr_assert_not_null(t);
    rt_tensor_set_f64(t, 0, 1e20);
    rt_tensor_set_f64(t, 1, -1e20);
    rt_tensor_set_f64(t, 2, NAN);
    rt_tensor_set_f64(t, 3, -2.7);
    rt_tensor_set_i64(t, 4, INT64_C(1) << 40);
    rt_tensor_set_f64(t, 5, 2.7);
    cr_expect_eq(rt_tensor_get_i64(t, 0), INT32_MAX);
    cr_expect_eq(rt_tensor_get_i64(t, 1), INT32_MIN);
    cr_expect_eq(rt_tensor_get_i64(t, 2), 0);
    cr_expect_eq(rt_tensor_get_i64(t, 3), -2, "truncates toward zero");
    cr_expect_eq(rt_tensor_get_i64(t, 4), INT32_MAX);
    cr_expect_eq(rt_tensor_get_i64(t, 5), 2);
    rt_tensor_free(t);
    RtTensor *f = rt_tensor_new(DT_F32, rt_shape_make(1, d));
    rt_tensor_set_f64(f, 0, -7.9);
    rt_tensor_set_f64(f, 1, INFINITY);
    cr_expect_eq(rt_tensor_get_i64(f, 0), -7);
    cr_expect_eq(rt_tensor_get_i64(f, 1), INT64_MAX);
    rt_tensor_free(f);
}

/* f16: exact values, rounding to nearest even, overflow to inf, subnormals, NaN. */
Test(tensor, f16_conversions) {
    int64_t d[1] = {1};
    RtTensor *t = rt_tensor_new(DT_F16, rt_shape_make(1, d));
    cr_assert_not_null(t);
    uint16_t *h = t->data;
    const struct {
        double in;
        uint16_t bits;
        double out;
    } cases[] = {
        {1.0, 0x3c00, 1.0},
        {-2.0, 0xc000, -2.0},
        {65504.0, 0x7bff, 65504.0},
        {65520.0, 0x7c00, INFINITY}, /* halfway to the next: rounds up to inf */
        {1e9, 0x7c00, INFINITY},
        {0x1p-24, 0x0001, 0x1p-24},                /* smallest subnormal */
        {0x1p-25, 0x0000, 0.0},                    /* tie to even: zero */
        {0x1.8p-25, 0x0001, 0x1p-24},              /* above the tie */
        {0x1p-14, 0x0400, 0x1p-14},                /* smallest normal */
        {0x1.ffcp-15, 0x0400, 0x1p-14},            /* rounds up out of the subnormals */
        {1.0 + 0x1p-11, 0x3c00, 1.0},              /* tie, even stays */
        {1.0 + 3 * 0x1p-11, 0x3c02, 1.0 + 0x1p-9}, /* tie, odd goes up */
        {0.1, 0x2e66, 0.0999755859375},
        {-0.0, 0x8000, -0.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_tensor_set_f64(t, 0, cases[i].in);
        cr_expect_eq(h[0], cases[i].bits, "case %zu: %a -> %04x, want %04x", i, cases[i].in, h[0],
                     cases[i].bits);
        cr_expect_eq(rt_tensor_get_f64(t, 0), cases[i].out, "case %zu", i);
    }
    rt_tensor_set_f64(t, 0, NAN);
    cr_expect(isnan(rt_tensor_get_f64(t, 0)));
    h[0] = 0xfc00;
    cr_expect_eq(rt_tensor_get_f64(t, 0), -INFINITY);
    h[0] = 0x03ff; /* largest subnormal */
    cr_expect_eq(rt_tensor_get_f64(t, 0), 1023 * 0x1p-24);
    rt_tensor_free(t);
}

Test(tensor, bf16_conversions) {
    int64_t d[1] = {1};
    RtTensor *t = rt_tensor_new(DT_BF16, rt_shape_make(1, d));
    cr_assert_not_null(t);
    uint16_t *h = t->data;
    rt_tensor_set_f64(t, 0, 1.0);
    cr_expect_eq(h[0], 0x3f80);
    rt_tensor_set_f64(t, 0, 1.0 + 0x1p-8); /* tie: stays even */
    cr_expect_eq(h[0], 0x3f80);
    rt_tensor_set_f64(t, 0, 1.0 + 3 * 0x1p-8); /* tie: odd rounds up */
    cr_expect_eq(h[0], 0x3f82);
    rt_tensor_set_f64(t, 0, -3.5);
    cr_expect_eq(rt_tensor_get_f64(t, 0), -3.5);
    rt_tensor_set_f64(t, 0, 3.4e38); /* rounds past the largest bf16: inf */
    cr_expect(isinf(rt_tensor_get_f64(t, 0)));
    rt_tensor_set_f64(t, 0, NAN);
    cr_expect(isnan(rt_tensor_get_f64(t, 0)));
    rt_tensor_free(t);
}

Test(tensor, shapes_equal_up_to_size_one_axes) {
    int64_t a[] = {1, 4, 1, 3}, b[] = {4, 3}, c[] = {3, 4}, d[] = {4, 3, 2}, one[] = {1, 1};
    Shape sa = rt_shape_make(4, a), sb = rt_shape_make(2, b), sc = rt_shape_make(2, c);
    Shape sd = rt_shape_make(3, d), s1 = rt_shape_make(2, one), s0 = rt_shape_scalar();
    cr_assert(rt_shape_eq_squeezed(&sa, &sb));
    cr_assert(rt_shape_eq_squeezed(&sb, &sa));
    cr_assert_not(rt_shape_eq_squeezed(&sb, &sc), "the order of the dimensions matters");
    cr_assert_not(rt_shape_eq_squeezed(&sb, &sd));
    cr_assert(rt_shape_eq_squeezed(&s1, &s0));
    cr_assert_not(rt_shape_eq_squeezed(&s0, &sb));
}

/* Out-of-memory messages report what the run holds: every tensor counts
 * from rt_tensor_new to rt_tensor_free. */
Test(tensor, live_bytes_follow_new_and_free) {
    int64_t base = rt_tensor_live_bytes();
    int64_t d[2] = {3, 5};
    RtTensor *a = rt_tensor_new(DT_F64, rt_shape_make(2, d));
    cr_assert_eq(rt_tensor_live_bytes() - base, 120);
    RtTensor *b = rt_tensor_clone(a);
    cr_assert_eq(rt_tensor_live_bytes() - base, 240);
    rt_tensor_free(a);
    cr_assert_eq(rt_tensor_live_bytes() - base, 120);
    rt_tensor_free(b);
    cr_assert_eq(rt_tensor_live_bytes(), base);
    char buf[32];
    cr_expect_str_eq(rt_bytes_str(512, buf, sizeof buf), "512 B");
    cr_expect_str_eq(rt_bytes_str(1536, buf, sizeof buf), "1.5 KiB");
    cr_expect_str_eq(rt_bytes_str(3ll << 20, buf, sizeof buf), "3.0 MiB");
    cr_expect_str_eq(rt_bytes_str(6400000000ll, buf, sizeof buf), "5.96 GiB");
}
