/* Host tensors: dtype metadata, shapes, allocation and slow element access.
 *
 * rt_tensor_new is the one place host tensor memory is allocated, so it is
 * also where sizes coming from files or programs are checked: a negative dim,
 * a rank outside 0..RT_MAX_RANK, an element count or byte size that overflows
 * int64, or more than RT_TENSOR_MAX_BYTES all return NULL instead of asking
 * malloc for nonsense. The get/set helpers convert through double or int64;
 * f16 and bf16 are converted with round-to-nearest-even bit routines (no
 * arithmetic on them happens here). Out-of-range indices read 0 and ignore
 * writes: these are slow paths for loaders, printing and tests. */
#include "runtime/tensor.h"

#include "runtime/checked.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dtype_names[] = {
    [DT_F32] = "f32", [DT_F64] = "f64", [DT_F16] = "f16",   [DT_BF16] = "bf16",
    [DT_I32] = "i32", [DT_I64] = "i64", [DT_BOOL] = "bool",
};
static const size_t dtype_sizes[] = {
    [DT_F32] = 4, [DT_F64] = 8, [DT_F16] = 2,  [DT_BF16] = 2,
    [DT_I32] = 4, [DT_I64] = 8, [DT_BOOL] = 1,
};
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == DT_COUNT, "dtype_names");
_Static_assert(sizeof dtype_sizes / sizeof dtype_sizes[0] == DT_COUNT, "dtype_sizes");

const char *rt_dtype_name(DType t) {
    if ((int)t < 0 || t >= DT_COUNT) return "?";
    return dtype_names[t];
}

bool rt_dtype_from_name(const char *s, DType *out) {
    if (!s) return false;
    for (int i = 0; i < DT_COUNT; i++) {
        if (strcmp(s, dtype_names[i]) == 0) {
            if (out) *out = (DType)i;
            return true;
        }
    }
    return false;
}

size_t rt_dtype_size(DType t) {
    if ((int)t < 0 || t >= DT_COUNT) return 0;
    return dtype_sizes[t];
}

bool rt_dtype_is_float(DType t) {
    return t == DT_F32 || t == DT_F64 || t == DT_F16 || t == DT_BF16;
}

bool rt_dtype_is_int(DType t) {
    return t == DT_I32 || t == DT_I64;
}

/* ---- shapes ---- */

int64_t rt_shape_numel(const Shape *s) {
    int64_t n;
    if (!s || s->rank > RT_MAX_RANK || !ck_numel(s->rank, s->dims, &n)) return -1;
    return n;
}

bool rt_shape_eq(const Shape *a, const Shape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank && i < RT_MAX_RANK; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

bool rt_shape_eq_squeezed(const Shape *a, const Shape *b) {
    int i = 0, k = 0;
    for (;;) {
        while (i < a->rank && a->dims[i] == 1)
            i++;
        while (k < b->rank && b->dims[k] == 1)
            k++;
        if (i == a->rank || k == b->rank) return i == a->rank && k == b->rank;
        if (a->dims[i++] != b->dims[k++]) return false;
    }
}

Shape rt_shape_make(int rank, const int64_t *dims) {
    Shape s;
    memset(&s, 0, sizeof s);
    /* An invalid rank is kept (as -1) rather than clamped, so that numel and
     * rt_tensor_new reject it instead of silently dropping dimensions. */
    if (rank < 0 || rank > RT_MAX_RANK) {
        s.rank = -1;
        return s;
    }
    s.rank = rank;
    for (int i = 0; i < rank; i++)
        s.dims[i] = dims ? dims[i] : 0;
    return s;
}

Shape rt_shape_scalar(void) {
    return rt_shape_make(0, NULL);
}

char *rt_shape_str(const Shape *s, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    size_t used = 0;
    buf[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (used < n) {                                                                            \
            int w_ = snprintf(buf + used, n - used, __VA_ARGS__);                                  \
            if (w_ > 0) used += (size_t)w_;                                                        \
        }                                                                                          \
    } while (0)
    PUT("[");
    int rank = s->rank < 0 ? 0 : s->rank > RT_MAX_RANK ? RT_MAX_RANK : s->rank;
    for (int i = 0; i < rank; i++)
        PUT(i ? ",%lld" : "%lld", (long long)s->dims[i]);
    PUT("]");
#undef PUT
    return buf;
}

/* ---- allocation ---- */

/* Bytes held by live tensors of rt_tensor_new, for out-of-memory messages
 * (atomic: loaders and kernels may allocate off the main thread). */
static _Atomic int64_t live_bytes;

int64_t rt_tensor_live_bytes(void) {
    return atomic_load(&live_bytes);
}

RtTensor *rt_tensor_new(DType t, Shape s) {
    if ((int)t < 0 || t >= DT_COUNT) return NULL;
    int64_t numel = rt_shape_numel(&s);
    if (numel < 0) return NULL;
    int64_t nbytes;
    if (!ck_bytes(numel, dtype_sizes[t], &nbytes) || nbytes > RT_TENSOR_MAX_BYTES) return NULL;
    size_t bytes = (size_t)nbytes;
    RtTensor *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    /* At least one byte so that data is never NULL, even for empty tensors. */
    x->data = calloc(bytes ? bytes : 1, 1);
    if (!x->data) {
        free(x);
        return NULL;
    }
    x->dtype = t;
    x->shape = s;
    for (int i = s.rank; i < RT_MAX_RANK; i++)
        x->shape.dims[i] = 0;
    x->alloc_bytes = (int64_t)bytes;
    atomic_fetch_add(&live_bytes, x->alloc_bytes);
    return x;
}

RtTensor *rt_tensor_clone(const RtTensor *t) {
    if (!t) return NULL;
    RtTensor *c = rt_tensor_new(t->dtype, t->shape);
    if (!c) return NULL;
    size_t bytes = rt_tensor_bytes(t);
    if (bytes) memcpy(c->data, t->data, bytes);
    return c;
}

void rt_tensor_free(RtTensor *t) {
    if (!t) return;
    if (!t->view) {
        free(t->data);
        atomic_fetch_sub(&live_bytes, t->alloc_bytes);
    }
    free(t);
}

char *rt_bytes_str(int64_t bytes, char *buf, size_t n) {
    if (bytes < 1024)
        snprintf(buf, n, "%lld B", (long long)bytes);
    else if (bytes < 1024 * 1024)
        snprintf(buf, n, "%.1f KiB", (double)bytes / 1024);
    else if (bytes < 1024ll * 1024 * 1024)
        snprintf(buf, n, "%.1f MiB", (double)bytes / (1024.0 * 1024));
    else
        snprintf(buf, n, "%.2f GiB", (double)bytes / (1024.0 * 1024 * 1024));
    return buf;
}

size_t rt_tensor_bytes(const RtTensor *t) {
    if (!t) return 0;
    int64_t bytes;
    if (!ck_bytes(rt_shape_numel(&t->shape), rt_dtype_size(t->dtype), &bytes)) return 0;
    return (size_t)bytes;
}

/* ---- f16 / bf16 bit conversions (round to nearest, ties to even) ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static uint16_t float_to_half(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        /* subnormal half (or zero): shift the full significand into place */
        if (e < -10) return sign;
        uint32_t m = man | 0x800000;
        int shift = 14 - e;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    /* a carry out of the mantissa correctly bumps the exponent (even to inf) */
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

static float bf16_to_float(uint16_t b) {
    return f32_from_bits((uint32_t)b << 16);
}

static uint16_t float_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- element access ---- */

static bool in_range(const RtTensor *t, int64_t i) {
    if (!t || i < 0) return false;
    int64_t n = rt_shape_numel(&t->shape);
    return i < n;
}

/* Saturating double -> int64 so that NaN or huge values are never UB. */
static int64_t sat_i64(double v) {
    if (isnan(v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static int32_t sat_i32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

double rt_tensor_get_f64(const RtTensor *t, int64_t i) {
    if (!in_range(t, i)) return 0.0;
    switch (t->dtype) {
    case DT_F32:
        return ((const float *)t->data)[i];
    case DT_F64:
        return ((const double *)t->data)[i];
    case DT_F16:
        return half_to_float(((const uint16_t *)t->data)[i]);
    case DT_BF16:
        return bf16_to_float(((const uint16_t *)t->data)[i]);
    case DT_I32:
        return ((const int32_t *)t->data)[i];
    case DT_I64:
        return (double)((const int64_t *)t->data)[i];
    case DT_BOOL:
        return ((const uint8_t *)t->data)[i] ? 1.0 : 0.0;
    default:
        return 0.0;
    }
}

void rt_tensor_set_f64(RtTensor *t, int64_t i, double v) {
    if (!in_range(t, i)) return;
    switch (t->dtype) {
    case DT_F32:
        ((float *)t->data)[i] = (float)v;
        break;
    case DT_F64:
        ((double *)t->data)[i] = v;
        break;
    case DT_F16:
        ((uint16_t *)t->data)[i] = float_to_half((float)v);
        break;
    case DT_BF16:
        ((uint16_t *)t->data)[i] = float_to_bf16((float)v);
        break;
    case DT_I32:
        ((int32_t *)t->data)[i] = sat_i32(sat_i64(v));
        break;
    case DT_I64:
        ((int64_t *)t->data)[i] = sat_i64(v);
        break;
    case DT_BOOL:
        ((uint8_t *)t->data)[i] = v != 0.0;
        break; /* NaN -> 1, as in C */
    default:
        break;
    }
}

int64_t rt_tensor_get_i64(const RtTensor *t, int64_t i) {
    if (!in_range(t, i)) return 0;
    switch (t->dtype) {
    case DT_I32:
        return ((const int32_t *)t->data)[i];
    case DT_I64:
        return ((const int64_t *)t->data)[i];
    case DT_BOOL:
        return ((const uint8_t *)t->data)[i] ? 1 : 0;
    case DT_F32:
    case DT_F64:
    case DT_F16:
    case DT_BF16:
        break;
    }
    return sat_i64(rt_tensor_get_f64(t, i)); /* truncates toward zero */
}

void rt_tensor_set_i64(RtTensor *t, int64_t i, int64_t v) {
    if (!in_range(t, i)) return;
    switch (t->dtype) {
    case DT_I32:
        ((int32_t *)t->data)[i] = sat_i32(v);
        break;
    case DT_I64:
        ((int64_t *)t->data)[i] = v;
        break;
    case DT_BOOL:
        ((uint8_t *)t->data)[i] = v != 0;
        break;
    case DT_F32:
    case DT_F64:
    case DT_F16:
    case DT_BF16:
        rt_tensor_set_f64(t, i, (double)v);
        break;
    }
}
