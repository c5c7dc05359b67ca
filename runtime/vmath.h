/* The project's own f32 exp, log, sin and cos: short polynomial
 * approximations with no table lookups and no branches, so that a compiler
 * can vectorise them at any width.
 *
 * The LLVM backend emits exactly these operation sequences as IR (every
 * multiply-add is an explicit fused fma, constants come from the macros
 * below), so a kernel and these C functions agree bit for bit; the
 * interpreter can switch to them to make normals bit-identical across
 * backends (rng.md). Accuracy: under 1 ulp for exp and log everywhere
 * (subnormals, 0, inf, NaN handled as libm does); sin and cos under 2 ulp
 * for |x| <= RT_VM_TRIG_MAX, where the three-part Cody-Waite reduction in
 * f32 is exact enough; beyond it (and for inf/NaN) they return libm's
 * double sin/cos rounded to f32, on a branch that is rarely taken. Needs FP
 * contraction off (the C11 default with -std=c11). */
#ifndef DFLOW_RUNTIME_VMATH_H
#define DFLOW_RUNTIME_VMATH_H

#include <stdint.h>

/* exp: x = n ln2 + r, |r| <= ln2/2; e^r by its Taylor series to r^7. */
#define RT_VM_EXP_LO (-104.0f) /* below: 0 (after the subnormal range) */
#define RT_VM_EXP_HI 89.0f     /* above: inf */
#define RT_VM_LOG2E ((float)1.4426950408889634073599246810018921L)
#define RT_VM_LN2L 0.6931471805599453094172321214581766L
#define RT_VM_LN2_HI ((float)RT_VM_LN2L)
#define RT_VM_LN2_LO ((float)(RT_VM_LN2L - (long double)RT_VM_LN2_HI))
/* 1/k! for k = 7 down to 0, the Horner order */
#define RT_VM_EXP_NCOEF 8
/* clang-format off */
#define RT_VM_EXP_COEF {(float)(1.0L / 5040), (float)(1.0L / 720), (float)(1.0L / 120), \
                        (float)(1.0L / 24), (float)(1.0L / 6), 0.5f, 1.0f, 1.0f}
/* clang-format on */

/* log: x = 2^e m, m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f/(2+f):
 * log(1+f) = f - (f^2/2 - s (f^2/2 + R)), R = sum_k 2 z^k/(2k+1), z = s^2. */
#define RT_VM_SQRT2 ((float)1.4142135623730950488016887242096981L)
/* 2/(2k+1) for k = 5 down to 1 */
#define RT_VM_LOG_NCOEF 5
/* clang-format off */
#define RT_VM_LOG_COEF {(float)(2.0L / 11), (float)(2.0L / 9), (float)(2.0L / 7), \
                        (float)(2.0L / 5), (float)(2.0L / 3)}
/* clang-format on */

/* sin, cos: x = j pi/2 + r, |r| <= pi/4, quadrant j mod 4; Taylor series of
 * sin to r^11 and cos to r^10. */
#define RT_VM_2_OVER_PI ((float)0.6366197723675813430755350534900574L)
#define RT_VM_PI_2L 1.5707963267948966192313216916397514L
#define RT_VM_PIO2_1 ((float)RT_VM_PI_2L)
#define RT_VM_PIO2_2 ((float)(RT_VM_PI_2L - (long double)RT_VM_PIO2_1))
#define RT_VM_PIO2_3 ((float)(RT_VM_PI_2L - (long double)RT_VM_PIO2_1 - (long double)RT_VM_PIO2_2))
#define RT_VM_TRIG_MAX 1e6f
/* sin r = r + r z (S1 + z (S2 + ...)), z = r^2; coefficients S5..S1 */
#define RT_VM_SIN_NCOEF 5
/* clang-format off */
#define RT_VM_SIN_COEF {(float)(-1.0L / 39916800), (float)(1.0L / 362880), \
                        (float)(-1.0L / 5040), (float)(1.0L / 120), (float)(-1.0L / 6)}
/* clang-format on */
/* cos r = (1 - z/2) + z^2 (C1 + z (C2 + ...)); coefficients C4..C1 (the z^5 term included) */
#define RT_VM_COS_NCOEF 4
/* clang-format off */
#define RT_VM_COS_COEF {(float)(-1.0L / 3628800), (float)(1.0L / 40320), \
                        (float)(-1.0L / 720), (float)(1.0L / 24)}
/* clang-format on */

float rt_vm_expf(float x);
float rt_vm_logf(float x);
float rt_vm_sinf(float x);
float rt_vm_cosf(float x);
/* rng.md's Box-Muller on one pair of words, with the functions above:
 * what LLVM kernels compute for an f32 rng_normal element. */
float rt_vm_normal_from_words(uint32_t w_radius, uint32_t w_angle, int odd);

#endif
