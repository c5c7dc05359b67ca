/* The C reference of the vectorisable f32 exp/log/sin/cos (vmath.h).
 *
 * Written as straight-line code with explicit fmaf and bit casts, in the
 * same order as codegen/llvm/llvm_math.c emits it, so the two agree bit for
 * bit. Special values are patched in with selects at the end rather than
 * branched around, which is how the vector code has to do it. */
#include "vmath.h"

#include <math.h>
#include <string.h>

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* 2^k for k in [-126, 127], built in the exponent field. */
static float pow2i(int32_t k) {
    return from_bits((uint32_t)(k + 127) << 23);
}

float rt_vm_expf(float x) {
    static const float c[RT_VM_EXP_NCOEF] = RT_VM_EXP_COEF;
    float xc = fminf(fmaxf(x, RT_VM_EXP_LO), RT_VM_EXP_HI);
    float n = rintf(xc * RT_VM_LOG2E);
    float r = fmaf(-n, RT_VM_LN2_HI, xc);
    r = fmaf(-n, RT_VM_LN2_LO, r);
    float p = c[0];
    for (int i = 1; i < RT_VM_EXP_NCOEF; i++)
        p = fmaf(p, r, c[i]);
    /* n in [-150, 128]: two factors keep each power of two a normal number,
     * so p * 2^n1 is exact and the one rounding happens in the last product */
    int32_t ni = (int32_t)n, n1 = ni >> 1, n2 = ni - n1;
    float res = p * pow2i(n1) * pow2i(n2);
    return x != x ? x : res;
}

float rt_vm_logf(float x) {
    static const float c[RT_VM_LOG_NCOEF] = RT_VM_LOG_COEF;
    int sub = x < 0x1p-126f;
    float xs = sub ? x * 0x1p23f : x; /* subnormals: scale into the normal range */
    uint32_t ix = to_bits(xs);
    int32_t e = (int32_t)(ix >> 23) - 127 - (sub ? 23 : 0);
    float m = from_bits((ix & 0x7fffffu) | 0x3f800000u); /* [1, 2) */
    int big = m > RT_VM_SQRT2;
    m = big ? m * 0.5f : m;
    e = e + big;
    float f = m - 1.0f; /* exact (Sterbenz) */
    float s = f / (2.0f + f);
    float z = s * s;
    float q = c[0];
    for (int i = 1; i < RT_VM_LOG_NCOEF; i++)
        q = fmaf(q, z, c[i]);
    float R = z * q;
    float hfsq = 0.5f * f * f;
    float ef = (float)e;
    float t = fmaf(s, hfsq + R, ef * RT_VM_LN2_LO);
    float res = fmaf(ef, RT_VM_LN2_HI, f - (hfsq - t));
    res = x == 0.0f ? -INFINITY : res;
    res = x < 0.0f ? NAN : res;
    res = x == INFINITY ? INFINITY : res;
    return x != x ? x : res;
}

/* r = x - j pi/2 and the quadrant j (mod 4 through its low bits). */
static float reduce(float x, int32_t *q) {
    float j = rintf(x * RT_VM_2_OVER_PI);
    float r = fmaf(-j, RT_VM_PIO2_1, x);
    r = fmaf(-j, RT_VM_PIO2_2, r);
    r = fmaf(-j, RT_VM_PIO2_3, r);
    *q = (int32_t)fminf(fmaxf(j, -0x1p30f), 0x1p30f); /* NaN/inf: any q, r is NaN */
    return r;
}

static float sin_poly(float r) {
    static const float c[RT_VM_SIN_NCOEF] = RT_VM_SIN_COEF;
    float z = r * r, p = c[0];
    for (int i = 1; i < RT_VM_SIN_NCOEF; i++)
        p = fmaf(p, z, c[i]);
    return fmaf(r * z, p, r);
}

static float cos_poly(float r) {
    static const float c[RT_VM_COS_NCOEF] = RT_VM_COS_COEF;
    float z = r * r, p = c[0];
    for (int i = 1; i < RT_VM_COS_NCOEF; i++)
        p = fmaf(p, z, c[i]);
    return fmaf(z * z, p, fmaf(-0.5f, z, 1.0f));
}

float rt_vm_sinf(float x) {
    if (!(fabsf(x) <= RT_VM_TRIG_MAX)) return (float)sin((double)x);
    int32_t q;
    float r = reduce(x, &q);
    float s = sin_poly(r), c = cos_poly(r);
    float v = (q & 1) ? c : s;
    return (q & 2) ? -v : v;
}

float rt_vm_cosf(float x) {
    if (!(fabsf(x) <= RT_VM_TRIG_MAX)) return (float)cos((double)x);
    int32_t q;
    float r = reduce(x, &q);
    float s = sin_poly(r), c = cos_poly(r);
    float v = (q & 1) ? s : c;
    return ((q + 1) & 2) ? -v : v;
}

float rt_vm_normal_from_words(uint32_t w_radius, uint32_t w_angle, int odd) {
    float u1 = ((float)(w_radius >> 8) + 0.5f) * 0x1p-24f;
    float u2 = ((float)(w_angle >> 8) + 0.5f) * 0x1p-24f;
    float r = sqrtf(-2.0f * rt_vm_logf(u1));
    float theta = 6.28318530717958647692f * u2;
    return odd ? r * rt_vm_sinf(theta) : r * rt_vm_cosf(theta);
}
