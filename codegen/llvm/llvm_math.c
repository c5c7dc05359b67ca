/* Inline IR for f32 exp/log/sin/cos and for the Philox random numbers.
 *
 * The transcendental functions are the polynomials of runtime/vmath.c,
 * emitted operation for operation (explicit llvm.fma, the same constants
 * from vmath.h, selects for special values) with no fast-math flags, so
 * O3 cannot reorder them: kernels agree bit for bit with the C reference
 * and vectorise at any width, AVX-512 included, with no library calls.
 * Philox-4x32-10 is ten unrolled rounds of 32x32->64 multiplies. Element i
 * of a stream is word i % 4 of block i / 4: llvm_rng computes one element
 * alone (its whole block, then picks), llvm_rng_block the four elements of
 * a block at once, a quarter of the work (llvm_emit.c uses it in flat
 * random maps); both share every operation, so they agree bit for bit. Uniforms and words match
 * runtime/rng.c bit for bit; f32 normals match rt_vm_normal_from_words, f64 normals call libm
 * exactly as rt_rng_normal_f64 does. */
#include "../../runtime/vmath.h"
#include "llvm_internal.h"

#define B (cg->b)

static LLVMValueRef cf(LlvmCG *cg, float v) {
    return LLVMConstReal(cg->f32, (double)v);
}
static LLVMValueRef ci32(LlvmCG *cg, uint32_t v) {
    return LLVMConstInt(cg->i32, v, 0);
}

static LLVMValueRef fma3(LlvmCG *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMValueRef args[3] = {a, b, c};
    LLVMTypeRef t = cg->f32;
    return llvm_intrinsic(cg, "llvm.fma", &t, 1, args, 3);
}

static LLVMValueRef horner(LlvmCG *cg, const float *c, int n, LLVMValueRef x) {
    LLVMValueRef p = cf(cg, c[0]);
    for (int i = 1; i < n; i++)
        p = fma3(cg, p, x, cf(cg, c[i]));
    return p;
}

static LLVMValueRef is_nan(LlvmCG *cg, LLVMValueRef x) {
    return LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
}

/* 2^k for i32 k in [-126, 127]. */
static LLVMValueRef pow2i(LlvmCG *cg, LLVMValueRef k) {
    LLVMValueRef bits = LLVMBuildShl(B, LLVMBuildAdd(B, k, ci32(cg, 127), ""), ci32(cg, 23), "");
    return LLVMBuildBitCast(B, bits, cg->f32, "");
}

LLVMValueRef llvm_exp_f32(LlvmCG *cg, LLVMValueRef x) {
    static const float c[RT_VM_EXP_NCOEF] = RT_VM_EXP_COEF;
    LLVMValueRef xc = llvm_intrinsic2(cg, "llvm.minnum",
                                      llvm_intrinsic2(cg, "llvm.maxnum", x, cf(cg, RT_VM_EXP_LO)),
                                      cf(cg, RT_VM_EXP_HI));
    LLVMValueRef n =
        llvm_intrinsic1(cg, "llvm.rint", LLVMBuildFMul(B, xc, cf(cg, RT_VM_LOG2E), ""));
    LLVMValueRef nn = LLVMBuildFNeg(B, n, "");
    LLVMValueRef r = fma3(cg, nn, cf(cg, RT_VM_LN2_HI), xc);
    r = fma3(cg, nn, cf(cg, RT_VM_LN2_LO), r);
    LLVMValueRef p = horner(cg, c, RT_VM_EXP_NCOEF, r);
    LLVMValueRef ni = LLVMBuildFPToSI(B, n, cg->i32, "");
    LLVMValueRef n1 = LLVMBuildAShr(B, ni, ci32(cg, 1), ""), n2 = LLVMBuildSub(B, ni, n1, "");
    LLVMValueRef res = LLVMBuildFMul(B, LLVMBuildFMul(B, p, pow2i(cg, n1), ""), pow2i(cg, n2), "");
    return LLVMBuildSelect(B, is_nan(cg, x), x, res, "");
}

LLVMValueRef llvm_log_f32(LlvmCG *cg, LLVMValueRef x) {
    static const float c[RT_VM_LOG_NCOEF] = RT_VM_LOG_COEF;
    LLVMValueRef sub = LLVMBuildFCmp(B, LLVMRealOLT, x, cf(cg, 0x1p-126f), "");
    LLVMValueRef xs = LLVMBuildSelect(B, sub, LLVMBuildFMul(B, x, cf(cg, 0x1p23f), ""), x, "");
    LLVMValueRef ix = LLVMBuildBitCast(B, xs, cg->i32, "");
    LLVMValueRef e = LLVMBuildSub(B, LLVMBuildLShr(B, ix, ci32(cg, 23), ""), ci32(cg, 127), "");
    e = LLVMBuildSub(B, e, LLVMBuildSelect(B, sub, ci32(cg, 23), ci32(cg, 0), ""), "");
    LLVMValueRef mb =
        LLVMBuildOr(B, LLVMBuildAnd(B, ix, ci32(cg, 0x7fffffu), ""), ci32(cg, 0x3f800000u), "");
    LLVMValueRef m = LLVMBuildBitCast(B, mb, cg->f32, "");
    LLVMValueRef big = LLVMBuildFCmp(B, LLVMRealOGT, m, cf(cg, RT_VM_SQRT2), "");
    m = LLVMBuildSelect(B, big, LLVMBuildFMul(B, m, cf(cg, 0.5f), ""), m, "");
    e = LLVMBuildAdd(B, e, LLVMBuildZExt(B, big, cg->i32, ""), "");
    LLVMValueRef f = LLVMBuildFSub(B, m, cf(cg, 1.0f), "");
    LLVMValueRef s = LLVMBuildFDiv(B, f, LLVMBuildFAdd(B, cf(cg, 2.0f), f, ""), "");
    LLVMValueRef z = LLVMBuildFMul(B, s, s, "");
    LLVMValueRef R = LLVMBuildFMul(B, z, horner(cg, c, RT_VM_LOG_NCOEF, z), "");
    LLVMValueRef hfsq = LLVMBuildFMul(B, LLVMBuildFMul(B, cf(cg, 0.5f), f, ""), f, "");
    LLVMValueRef ef = LLVMBuildSIToFP(B, e, cg->f32, "");
    LLVMValueRef t =
        fma3(cg, s, LLVMBuildFAdd(B, hfsq, R, ""), LLVMBuildFMul(B, ef, cf(cg, RT_VM_LN2_LO), ""));
    LLVMValueRef res =
        fma3(cg, ef, cf(cg, RT_VM_LN2_HI), LLVMBuildFSub(B, f, LLVMBuildFSub(B, hfsq, t, ""), ""));
    LLVMValueRef inf = cf(cg, __builtin_inff());
    res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, x, cf(cg, 0.0f), ""),
                          LLVMBuildFNeg(B, inf, ""), res, "");
    res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, cf(cg, 0.0f), ""),
                          cf(cg, __builtin_nanf("")), res, "");
    res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, x, inf, ""), inf, res, "");
    return LLVMBuildSelect(B, is_nan(cg, x), x, res, "");
}

/* x = j pi/2 + r; *q = j as i32 (its low two bits pick the quadrant). */
static LLVMValueRef reduce(LlvmCG *cg, LLVMValueRef x, LLVMValueRef *q) {
    LLVMValueRef j =
        llvm_intrinsic1(cg, "llvm.rint", LLVMBuildFMul(B, x, cf(cg, RT_VM_2_OVER_PI), ""));
    LLVMValueRef nj = LLVMBuildFNeg(B, j, "");
    LLVMValueRef r = fma3(cg, nj, cf(cg, RT_VM_PIO2_1), x);
    r = fma3(cg, nj, cf(cg, RT_VM_PIO2_2), r);
    r = fma3(cg, nj, cf(cg, RT_VM_PIO2_3), r);
    LLVMValueRef jc =
        llvm_intrinsic2(cg, "llvm.minnum", llvm_intrinsic2(cg, "llvm.maxnum", j, cf(cg, -0x1p30f)),
                        cf(cg, 0x1p30f));
    *q = LLVMBuildFPToSI(B, jc, cg->i32, "");
    return r;
}

static LLVMValueRef sin_poly(LlvmCG *cg, LLVMValueRef r) {
    static const float c[RT_VM_SIN_NCOEF] = RT_VM_SIN_COEF;
    LLVMValueRef z = LLVMBuildFMul(B, r, r, "");
    LLVMValueRef p = horner(cg, c, RT_VM_SIN_NCOEF, z);
    return fma3(cg, LLVMBuildFMul(B, r, z, ""), p, r);
}

static LLVMValueRef cos_poly(LlvmCG *cg, LLVMValueRef r) {
    static const float c[RT_VM_COS_NCOEF] = RT_VM_COS_COEF;
    LLVMValueRef z = LLVMBuildFMul(B, r, r, "");
    LLVMValueRef p = horner(cg, c, RT_VM_COS_NCOEF, z);
    return fma3(cg, LLVMBuildFMul(B, z, z, ""), p, fma3(cg, cf(cg, -0.5f), z, cf(cg, 1.0f)));
}

static LLVMValueRef bit_set(LlvmCG *cg, LLVMValueRef q, uint32_t mask) {
    return LLVMBuildICmp(B, LLVMIntNE, LLVMBuildAnd(B, q, ci32(cg, mask), ""), ci32(cg, 0), "");
}

/* The polynomial paths alone, for |x| <= RT_VM_TRIG_MAX. */
static LLVMValueRef sin_core(LlvmCG *cg, LLVMValueRef x) {
    LLVMValueRef q, r = reduce(cg, x, &q);
    LLVMValueRef v = LLVMBuildSelect(B, bit_set(cg, q, 1), cos_poly(cg, r), sin_poly(cg, r), "");
    return LLVMBuildSelect(B, bit_set(cg, q, 2), LLVMBuildFNeg(B, v, ""), v, "");
}

static LLVMValueRef cos_core(LlvmCG *cg, LLVMValueRef x) {
    LLVMValueRef q, r = reduce(cg, x, &q);
    LLVMValueRef v = LLVMBuildSelect(B, bit_set(cg, q, 1), sin_poly(cg, r), cos_poly(cg, r), "");
    LLVMValueRef q1 = LLVMBuildAdd(B, q, ci32(cg, 1), "");
    return LLVMBuildSelect(B, bit_set(cg, q1, 2), LLVMBuildFNeg(B, v, ""), v, "");
}

/* |x| <= RT_VM_TRIG_MAX: the polynomial; otherwise (huge, inf, NaN) libm's
 * double function. A call on a branch keeps the loop vectoriser away, so
 * kernels are emitted twice (llvm_emit.c): a fast variant that only flags
 * such arguments, and this exact one, run when the flag comes up. */
static LLVMValueRef trig(LlvmCG *cg, LLVMValueRef x, LLVMValueRef (*core)(LlvmCG *, LLVMValueRef),
                         const char *libm) {
    LLVMValueRef small = LLVMBuildFCmp(B, LLVMRealOLE, llvm_intrinsic1(cg, "llvm.fabs", x),
                                       cf(cg, RT_VM_TRIG_MAX), "");
    if (cg->trig_flag) {
        LLVMValueRef f = LLVMBuildLoad2(B, cg->i1, cg->trig_flag, "");
        LLVMBuildStore(B, LLVMBuildOr(B, f, LLVMBuildNot(B, small, ""), ""), cg->trig_flag);
        return core(cg, x);
    }
    LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(B));
    LLVMBasicBlockRef fast = LLVMAppendBasicBlockInContext(cg->ctx, fn, "trig.fast");
    LLVMBasicBlockRef slow = LLVMAppendBasicBlockInContext(cg->ctx, fn, "trig.slow");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, fn, "trig.join");
    LLVMBuildCondBr(B, small, fast, slow);
    LLVMPositionBuilderAtEnd(B, fast);
    LLVMValueRef vf = core(cg, x);
    LLVMBasicBlockRef fast_end = LLVMGetInsertBlock(B);
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, slow);
    LLVMValueRef vs = LLVMBuildFPTrunc(
        B, llvm_intrinsic1(cg, libm, LLVMBuildFPExt(B, x, cg->f64, "")), cg->f32, "");
    LLVMBuildBr(B, join);
    LLVMPositionBuilderAtEnd(B, join);
    LLVMValueRef phi = LLVMBuildPhi(B, cg->f32, "");
    LLVMValueRef vals[2] = {vf, vs};
    LLVMBasicBlockRef from[2] = {fast_end, slow};
    LLVMAddIncoming(phi, vals, from, 2);
    return phi;
}

LLVMValueRef llvm_sin_f32(LlvmCG *cg, LLVMValueRef x) {
    return trig(cg, x, sin_core, "llvm.sin");
}
LLVMValueRef llvm_cos_f32(LlvmCG *cg, LLVMValueRef x) {
    return trig(cg, x, cos_core, "llvm.cos");
}

/* ---- Philox-4x32-10 (rng.md) --------------------------------------------------------------- */

static void philox(LlvmCG *cg, LLVMValueRef c[4], LLVMValueRef k[2], LLVMValueRef out[4]) {
    LLVMValueRef m0 = LLVMConstInt(cg->i64, 0xD2511F53u, 0),
                 m1 = LLVMConstInt(cg->i64, 0xCD9E8D57u, 0);
    LLVMValueRef sh = LLVMConstInt(cg->i64, 32, 0);
    LLVMValueRef c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], k0 = k[0], k1 = k[1];
    for (int round = 0; round < 10; round++) {
        LLVMValueRef p0 = LLVMBuildMul(B, LLVMBuildZExt(B, c0, cg->i64, ""), m0, "");
        LLVMValueRef p1 = LLVMBuildMul(B, LLVMBuildZExt(B, c2, cg->i64, ""), m1, "");
        LLVMValueRef hi0 = LLVMBuildTrunc(B, LLVMBuildLShr(B, p0, sh, ""), cg->i32, "");
        LLVMValueRef lo0 = LLVMBuildTrunc(B, p0, cg->i32, "");
        LLVMValueRef hi1 = LLVMBuildTrunc(B, LLVMBuildLShr(B, p1, sh, ""), cg->i32, "");
        LLVMValueRef lo1 = LLVMBuildTrunc(B, p1, cg->i32, "");
        c0 = LLVMBuildXor(B, LLVMBuildXor(B, hi1, c1, ""), k0, "");
        c1 = lo1;
        c2 = LLVMBuildXor(B, LLVMBuildXor(B, hi0, c3, ""), k1, "");
        c3 = lo0;
        k0 = LLVMBuildAdd(B, k0, ci32(cg, 0x9E3779B9u), "");
        k1 = LLVMBuildAdd(B, k1, ci32(cg, 0xBB67AE85u), "");
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static void split64(LlvmCG *cg, LLVMValueRef v, LLVMValueRef *lo, LLVMValueRef *hi) {
    *lo = LLVMBuildTrunc(B, v, cg->i32, "");
    *hi = LLVMBuildTrunc(B, LLVMBuildLShr(B, v, LLVMConstInt(cg->i64, 32, 0), ""), cg->i32, "");
}

/* ((x >> 8) + 0.5) * 2^-24 in f32, exactly as rt_rng_uniform_from_word. */
static LLVMValueRef uniform(LlvmCG *cg, LLVMValueRef w) {
    LLVMValueRef top = LLVMBuildUIToFP(B, LLVMBuildLShr(B, w, ci32(cg, 8), ""), cg->f32, "");
    return LLVMBuildFMul(B, LLVMBuildFAdd(B, top, cf(cg, 0.5f), ""), cf(cg, 0x1p-24f), "");
}

static LLVMValueRef pick(LlvmCG *cg, LLVMValueRef cond, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(B, cond, a, b, "");
}

void llvm_philox_block(LlvmCG *cg, LLVMValueRef seed, LLVMValueRef block, LLVMValueRef stream,
                       LLVMValueRef w[4]) {
    LLVMValueRef key[2], ctr[4];
    split64(cg, seed, &key[0], &key[1]);
    split64(cg, block, &ctr[0], &ctr[1]);
    ctr[2] = stream;
    ctr[3] = ci32(cg, 0);
    philox(cg, ctr, key, w);
}

/* The normals of the word pair (wa, wb): Box-Muller, cos for the even
 * element, sin for the odd one. One definition for the per-element and the
 * per-block paths, so both give the same bits. */
static void normal_pair(LlvmCG *cg, DType dt, LLVMValueRef wa, LLVMValueRef wb, LLVMValueRef *even,
                        LLVMValueRef *odd) {
    LLVMValueRef u1 = uniform(cg, wa), u2 = uniform(cg, wb);
    if (dt == DT_F32) {
        LLVMValueRef r = llvm_intrinsic1(cg, "llvm.sqrt",
                                         LLVMBuildFMul(B, cf(cg, -2.0f), llvm_log_f32(cg, u1), ""));
        LLVMValueRef th = LLVMBuildFMul(B, cf(cg, 6.28318530717958647692f), u2, "");
        /* theta is in (0, 2 pi]: the polynomial path of sin and cos, no branch */
        *odd = LLVMBuildFMul(B, r, sin_core(cg, th), "");
        *even = LLVMBuildFMul(B, r, cos_core(cg, th), "");
        return;
    }
    LLVMValueRef d1 = LLVMBuildFPExt(B, u1, cg->f64, ""), d2 = LLVMBuildFPExt(B, u2, cg->f64, "");
    LLVMValueRef r = llvm_intrinsic1(
        cg, "llvm.sqrt",
        LLVMBuildFMul(B, LLVMConstReal(cg->f64, -2.0), llvm_intrinsic1(cg, "llvm.log", d1), ""));
    LLVMValueRef th = LLVMBuildFMul(B, LLVMConstReal(cg->f64, 6.28318530717958647692), d2, "");
    *odd = LLVMBuildFMul(B, r, llvm_intrinsic1(cg, "llvm.sin", th), "");
    *even = LLVMBuildFMul(B, r, llvm_intrinsic1(cg, "llvm.cos", th), "");
}

static LLVMValueRef uniform_of(LlvmCG *cg, DType dt, LLVMValueRef w) {
    LLVMValueRef u = uniform(cg, w);
    return dt == DT_F64 ? LLVMBuildFPExt(B, u, cg->f64, "") : u;
}

LLVMValueRef llvm_rng(LlvmCG *cg, OpKind op, DType dt, LLVMValueRef seed, LLVMValueRef index,
                      uint32_t stream) {
    if (dt != DT_F32 && dt != DT_F64) {
        llvm_fail(cg, "%s of %s", ir_op_name(op), rt_dtype_name(dt));
        return NULL;
    }
    LLVMValueRef w[4];
    LLVMValueRef j = LLVMBuildLShr(B, index, LLVMConstInt(cg->i64, 2, 0), "");
    llvm_philox_block(cg, seed, j, ci32(cg, stream), w);
    LLVMValueRef q = LLVMBuildTrunc(B, index, cg->i32, "");
    LLVMValueRef b0 = bit_set(cg, q, 1), b1 = bit_set(cg, q, 2);
    if (op == OP_RNG_UNIFORM)
        return uniform_of(cg, dt, pick(cg, b1, pick(cg, b0, w[3], w[2]), pick(cg, b0, w[1], w[0])));
    /* Box-Muller on words (0,1) or (2,3); odd elements take the sine */
    LLVMValueRef even, odd;
    normal_pair(cg, dt, pick(cg, b1, w[2], w[0]), pick(cg, b1, w[3], w[1]), &even, &odd);
    return pick(cg, b0, odd, even);
}

bool llvm_rng_block(LlvmCG *cg, OpKind op, DType dt, LLVMValueRef seed, LLVMValueRef block,
                    uint32_t stream, LLVMValueRef out[4]) {
    if (dt != DT_F32 && dt != DT_F64) {
        llvm_fail(cg, "%s of %s", ir_op_name(op), rt_dtype_name(dt));
        return false;
    }
    LLVMValueRef w[4];
    llvm_philox_block(cg, seed, block, ci32(cg, stream), w);
    if (op == OP_RNG_UNIFORM) {
        for (int i = 0; i < 4; i++)
            out[i] = uniform_of(cg, dt, w[i]);
        return true;
    }
    normal_pair(cg, dt, w[0], w[1], &out[0], &out[1]);
    normal_pair(cg, dt, w[2], w[3], &out[2], &out[3]);
    return true;
}

LLVMValueRef llvm_fresh_seed(LlvmCG *cg, LLVMValueRef seed, LLVMValueRef t, uint32_t k) {
    LLVMValueRef key[2], ctr[4], w[4];
    split64(cg, seed, &key[0], &key[1]);
    split64(cg, t, &ctr[0], &ctr[1]);
    ctr[2] = ci32(cg, k);
    ctr[3] = ci32(cg, 0x5EED5EEDu);
    philox(cg, ctr, key, w);
    LLVMValueRef lo = LLVMBuildZExt(B, w[0], cg->i64, ""), hi = LLVMBuildZExt(B, w[1], cg->i64, "");
    return LLVMBuildOr(B, lo, LLVMBuildShl(B, hi, LLVMConstInt(cg->i64, 32, 0), ""), "");
}
