/* Ops along one axis that no loop nest of fused scalar code expresses well:
 * the running sum, the stable sort order and connected components. One
 * routine computes them for the compiled code: each kernel of such an op (an unfused kernel of its
 * own, codegen/schedule.c) is a call of it on its buffers, so a built image
 * links it from the runtime library. The interpreter has its own versions
 * (ir/interp_order.c), which test_llvm compares this one with.
 *
 * A tensor of `outer * n * inner` elements is seen as outer x n x inner
 * (C order); a row is the n elements at one (outer, inner) position, `inner`
 * apart. Rows outer in [lo, hi) are computed, so tasks can split the outer
 * range. in and out may not overlap.
 *   RT_ORDER_CUMSUM:     out = running sum of each row (f32 accumulated in
 *                        f64, integers wrapping), from the first element
 *                        (flag 1: from the last);
 *   RT_ORDER_ARGSORT:    out (i64) = the indices that sort each row, stable:
 *                        equal keys keep their order; ascending, flag 1
 *                        descending; NaN sorts above every number;
 *   RT_ORDER_COMPONENTS: in (bool) is one image of n rows of inner columns
 *                        (outer 1): out (i64) = 0 where false, else the
 *                        label of its 4-connected region, 1, 2, ... in the
 *                        raster order of each region's first element.
 * Returns 0, or 1 when scratch memory could not be had (nothing written
 * then is to be trusted). */
#ifndef DFLOW_RUNTIME_ORDER_H
#define DFLOW_RUNTIME_ORDER_H

#include <stdint.h>

enum { RT_ORDER_CUMSUM = 0, RT_ORDER_ARGSORT = 1, RT_ORDER_COMPONENTS = 2 };

/* dt is a DType (runtime/tensor.h) of in. */
int32_t dflow_rt_order(int32_t op, int32_t dt, int32_t flag, const void *in, void *out,
                       int64_t outer, int64_t n, int64_t inner, int64_t lo, int64_t hi);

#endif
