/* The LLVM backend's op table: how each op of ops.def is lowered, and for
 * elementwise ops the scalar IR built inside the kernel loop.
 *
 * Semantics follow the interpreter exactly (ir/interp_ew.c): f32 add, sub,
 * mul, div and sqrt are correctly rounded in f32, which equals the
 * interpreter's round-once-from-double; integers wrap at their width; x/0
 * and x%0 give 0; mod takes the sign of the divisor; max/min propagate NaN
 * from either side and send ties to the first operand; float->int casts
 * truncate and saturate with NaN -> 0 (llvm.fptosi.sat). Bool operands of
 * integer arithmetic are widened to i64 first (i1 is signed in LLVM). f32
 * exp/log/sin/cos are the project's polynomials (llvm_math.c); f64 ones and
 * pow call libm, bit-identical to the interpreter, and so does erf in both
 * dtypes (f32: libm's f64 erf rounded, as the interpreter does; a libm call
 * per element, not vectorised). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../ir/op_cases.h"
#include "llvm_internal.h"

/* ---- shared helpers ------------------------------------------------------------------ */

void llvm_cg_init(LlvmCG *cg, LLVMContextRef ctx, const char *name) {
    memset(cg, 0, sizeof *cg);
    cg->ctx = ctx;
    cg->mod = LLVMModuleCreateWithNameInContext(name, ctx);
    cg->b = LLVMCreateBuilderInContext(ctx);
    cg->f32 = LLVMFloatTypeInContext(ctx);
    cg->f64 = LLVMDoubleTypeInContext(ctx);
    cg->i1 = LLVMInt1TypeInContext(ctx);
    cg->i8 = LLVMInt8TypeInContext(ctx);
    cg->i32 = LLVMInt32TypeInContext(ctx);
    cg->i64 = LLVMInt64TypeInContext(ctx);
    cg->ptr = LLVMPointerTypeInContext(ctx, 0);
    cg->vd = LLVMVoidTypeInContext(ctx);
}

LLVMTypeRef llvm_reg_type(LlvmCG *cg, DType dt) {
    switch (dt) {
    case DT_F32:
        return cg->f32;
    case DT_F64:
        return cg->f64;
    case DT_I32:
        return cg->i32;
    case DT_I64:
        return cg->i64;
    case DT_BOOL:
        return cg->i1;
    case DT_F16:
        return LLVMHalfTypeInContext(cg->ctx);
    case DT_BF16:
        return LLVMBFloatTypeInContext(cg->ctx);
    }
    return cg->i1; /* not an enumerator: DType is exhaustive above */
}

LLVMTypeRef llvm_mem_type(LlvmCG *cg, DType dt) {
    return dt == DT_BOOL ? cg->i8 : llvm_reg_type(cg, dt);
}

LLVMValueRef llvm_const(LlvmCG *cg, DType dt, double f, int64_t i) {
    if (dt == DT_F32 || dt == DT_F64) return LLVMConstReal(llvm_reg_type(cg, dt), f);
    return LLVMConstInt(llvm_reg_type(cg, dt), (unsigned long long)i, dt != DT_BOOL);
}

bool llvm_fail(LlvmCG *cg, const char *fmt, ...) {
    if (cg->error[0]) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cg->error, sizeof cg->error, fmt, ap);
    va_end(ap);
    return false;
}

static bool is_float(DType t) {
    return t == DT_F32 || t == DT_F64;
}

/* Integer work type: bool widens to i64 (i1 arithmetic and signed compares
 * would be wrong), other integers keep their width. */
static LLVMValueRef int_in(LlvmCG *cg, DType dt, LLVMValueRef v) {
    return dt == DT_BOOL ? LLVMBuildZExt(cg->b, v, cg->i64, "") : v;
}

static LLVMValueRef int_out(LlvmCG *cg, DType dt, LLVMValueRef v) {
    if (dt == DT_BOOL) return LLVMBuildICmp(cg->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
    return v;
}

/* A value as a truth value (interp: ld_i(x) != 0; floats truncate first). */
static LLVMValueRef truth(LlvmCG *cg, DType dt, LLVMValueRef v) {
    if (dt == DT_BOOL) return v;
    if (is_float(dt)) {
        LLVMValueRef a = llvm_intrinsic1(cg, "llvm.fabs", v);
        return LLVMBuildFCmp(cg->b, LLVMRealOGE, a, LLVMConstReal(LLVMTypeOf(v), 1.0), "");
    }
    return LLVMBuildICmp(cg->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
}

/* ---- unary ------------------------------------------------------------------------------ */

static LLVMValueRef emit_neg(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)op;
    if (is_float(sdt)) return LLVMBuildFNeg(cg->b, v[0], "");
    LLVMValueRef x = int_in(cg, sdt, v[0]);
    return int_out(cg, out, LLVMBuildSub(cg->b, LLVMConstNull(LLVMTypeOf(x)), x, ""));
}

static LLVMValueRef emit_abs(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)op;
    if (is_float(sdt)) return llvm_intrinsic1(cg, "llvm.fabs", v[0]);
    LLVMValueRef x = int_in(cg, sdt, v[0]), z = LLVMConstNull(LLVMTypeOf(x));
    LLVMValueRef neg = LLVMBuildICmp(cg->b, LLVMIntSLT, x, z, "");
    return int_out(cg, out, LLVMBuildSelect(cg->b, neg, LLVMBuildSub(cg->b, z, x, ""), x, ""));
}

static LLVMValueRef emit_sign(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)op;
    LLVMValueRef x = v[0];
    if (is_float(sdt)) { /* x > 0 ? 1 : x < 0 ? -1 : x (keeps NaN and signed zeros) */
        LLVMTypeRef t = LLVMTypeOf(x);
        LLVMValueRef z = LLVMConstReal(t, 0);
        LLVMValueRef lt = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOLT, x, z, ""),
                                          LLVMConstReal(t, -1), x, "");
        return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, x, z, ""),
                               LLVMConstReal(t, 1), lt, "");
    }
    x = int_in(cg, sdt, x);
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef z = LLVMConstNull(t);
    LLVMValueRef gt = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSGT, x, z, ""), t, "");
    LLVMValueRef lt = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, x, z, ""), t, "");
    return int_out(cg, out, LLVMBuildSub(cg->b, gt, lt, ""));
}

static LLVMValueRef emit_fmath(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)out;
    if (!is_float(sdt)) {
        llvm_fail(cg, "%s on %s", ir_op_name(op), rt_dtype_name(sdt));
        return NULL;
    }
    bool f32 = sdt == DT_F32;
    switch (op) {
    case OP_FLOOR:
        return llvm_intrinsic1(cg, "llvm.floor", v[0]);
    case OP_SQRT:
        return llvm_intrinsic1(cg, "llvm.sqrt", v[0]);
    case OP_EXP:
        return f32 ? llvm_exp_f32(cg, v[0]) : llvm_intrinsic1(cg, "llvm.exp", v[0]);
    case OP_LOG:
        return f32 ? llvm_log_f32(cg, v[0]) : llvm_intrinsic1(cg, "llvm.log", v[0]);
    case OP_SIN:
        return f32 ? llvm_sin_f32(cg, v[0]) : llvm_intrinsic1(cg, "llvm.sin", v[0]);
    case OP_COS:
        return f32 ? llvm_cos_f32(cg, v[0]) : llvm_intrinsic1(cg, "llvm.cos", v[0]);
    case OP_ERF: { /* libm's erf in f64, rounded for f32: the interpreter's bits */
        LLVMValueRef x = f32 ? LLVMBuildFPExt(cg->b, v[0], cg->f64, "") : v[0];
        LLVMValueRef r = llvm_call_libm(cg, "erf", x);
        return f32 ? LLVMBuildFPTrunc(cg->b, r, cg->f32, "") : r;
    }
    IR_CASES_LEAF:
    case OP_NEG:
    case OP_ABS:
    case OP_SIGN:
    case OP_NOT:
    case OP_CAST:
    case OP_STOP_GRAD:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    IR_CASES_MOVE:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        llvm_fail(cg, "%s is not a float function", ir_op_name(op));
        return NULL;
    }
    llvm_fail(cg, "op %d is not a float function", (int)op);
    return NULL;
}

static LLVMValueRef emit_not(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)op;
    (void)out;
    return LLVMBuildNot(cg->b, truth(cg, sdt, v[0]), "");
}

static LLVMValueRef emit_cast(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)op;
    LLVMValueRef x = v[0];
    LLVMTypeRef to = llvm_reg_type(cg, out);
    if (sdt == out) return x;
    if (is_float(sdt)) {
        if (is_float(out))
            return out == DT_F64 ? LLVMBuildFPExt(cg->b, x, to, "")
                                 : LLVMBuildFPTrunc(cg->b, x, to, "");
        if (out == DT_BOOL)
            return LLVMBuildFCmp(cg->b, LLVMRealUNE, x, LLVMConstReal(LLVMTypeOf(x), 0), "");
        LLVMTypeRef over[2] = {to, LLVMTypeOf(x)};
        return llvm_intrinsic(cg, "llvm.fptosi.sat", over, 2, &x, 1);
    }
    if (is_float(out))
        return sdt == DT_BOOL ? LLVMBuildUIToFP(cg->b, x, to, "")
                              : LLVMBuildSIToFP(cg->b, x, to, "");
    if (out == DT_BOOL) return LLVMBuildICmp(cg->b, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
    if (sdt == DT_BOOL) return LLVMBuildZExt(cg->b, x, to, "");
    return LLVMBuildIntCast2(cg->b, x, to, 1, "");
}

static LLVMValueRef emit_identity(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)cg;
    (void)op;
    (void)out;
    (void)sdt;
    return v[0];
}

/* ---- binary ----------------------------------------------------------------------------- */

static LLVMValueRef emit_arith(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    LLVMBuilderRef b = cg->b;
    if (is_float(sdt)) {
        LLVMValueRef x = v[0], y = v[1];
        switch (op) {
        case OP_ADD:
            return LLVMBuildFAdd(b, x, y, "");
        case OP_SUB:
            return LLVMBuildFSub(b, x, y, "");
        case OP_MUL:
            return LLVMBuildFMul(b, x, y, "");
        case OP_DIV:
            return LLVMBuildFDiv(b, x, y, "");
        case OP_MOD: { /* fmod, then move to the sign of y (Python's %) */
            LLVMValueRef r = LLVMBuildFRem(b, x, y, ""), z = LLVMConstReal(LLVMTypeOf(x), 0);
            LLVMValueRef rneg = LLVMBuildFCmp(b, LLVMRealOLT, r, z, ""),
                         yneg = LLVMBuildFCmp(b, LLVMRealOLT, y, z, "");
            LLVMValueRef fix = LLVMBuildAnd(b, LLVMBuildFCmp(b, LLVMRealUNE, r, z, ""),
                                            LLVMBuildXor(b, rneg, yneg, ""), "");
            return LLVMBuildSelect(b, fix, LLVMBuildFAdd(b, r, y, ""), r, "");
        }
        case OP_POW: {
            if (sdt == DT_F64) return llvm_intrinsic2(cg, "llvm.pow", x, y);
            LLVMValueRef xd = LLVMBuildFPExt(b, x, cg->f64, ""),
                         yd = LLVMBuildFPExt(b, y, cg->f64, "");
            return LLVMBuildFPTrunc(b, llvm_intrinsic2(cg, "llvm.pow", xd, yd), cg->f32, "");
        }
        IR_CASES_LEAF:
        IR_CASES_EW_UNARY:
        case OP_MAX:
        case OP_MIN:
        case OP_LT:
        case OP_LE:
        case OP_EQ:
        case OP_NE:
        case OP_AND:
        case OP_OR:
        case OP_WHERE:
        IR_CASES_REDUCE:
        IR_CASES_MOVE:
        case OP_MATMUL:
        IR_CASES_ORDER:
        IR_CASES_CALL:
        IR_CASES_RAND:
            break;
        }
        llvm_fail(cg, "%s on %s", ir_op_name(op), rt_dtype_name(sdt));
        return NULL;
    }
    if (op == OP_POW) {
        llvm_fail(cg, "pow on %s", rt_dtype_name(sdt));
        return NULL;
    }
    LLVMValueRef x = int_in(cg, sdt, v[0]), y = int_in(cg, sdt, v[1]);
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef z = LLVMConstNull(t), m1 = LLVMConstAllOnes(t), r = NULL;
    switch (op) {
    case OP_ADD:
        r = LLVMBuildAdd(b, x, y, "");
        break;
    case OP_SUB:
        r = LLVMBuildSub(b, x, y, "");
        break;
    case OP_MUL:
        r = LLVMBuildMul(b, x, y, "");
        break;
    case OP_DIV:
    case OP_MOD: {
        /* y == 0 gives 0; y == -1 is negation (div) or 0 (mod), which also
         * avoids INT_MIN / -1; otherwise divide by a safe y */
        LLVMValueRef y0 = LLVMBuildICmp(b, LLVMIntEQ, y, z, ""),
                     ym1 = LLVMBuildICmp(b, LLVMIntEQ, y, m1, "");
        LLVMValueRef odd = LLVMBuildOr(b, y0, ym1, "");
        LLVMValueRef ys = LLVMBuildSelect(b, odd, LLVMConstInt(t, 1, 0), y, "");
        if (op == OP_DIV) {
            LLVMValueRef q = LLVMBuildSDiv(b, x, ys, "");
            r = LLVMBuildSelect(b, y0, z, LLVMBuildSelect(b, ym1, LLVMBuildSub(b, z, x, ""), q, ""),
                                "");
        } else {
            LLVMValueRef rem = LLVMBuildSRem(b, x, ys, "");
            LLVMValueRef fix =
                LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntNE, rem, z, ""),
                             LLVMBuildXor(b, LLVMBuildICmp(b, LLVMIntSLT, rem, z, ""),
                                          LLVMBuildICmp(b, LLVMIntSLT, y, z, ""), ""),
                             "");
            rem = LLVMBuildSelect(b, fix, LLVMBuildAdd(b, rem, y, ""), rem, "");
            r = LLVMBuildSelect(b, odd, z, rem, "");
        }
        break;
    }
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    case OP_POW:
    case OP_MAX:
    case OP_MIN:
    case OP_LT:
    case OP_LE:
    case OP_EQ:
    case OP_NE:
    case OP_AND:
    case OP_OR:
    case OP_WHERE:
    IR_CASES_REDUCE:
    IR_CASES_MOVE:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        llvm_fail(cg, "%s on %s", ir_op_name(op), rt_dtype_name(sdt));
        return NULL;
    }
    if (!r) {
        llvm_fail(cg, "op %d on %s", (int)op, rt_dtype_name(sdt));
        return NULL;
    }
    return int_out(cg, out, r);
}

static LLVMValueRef emit_minmax(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    LLVMBuilderRef b = cg->b;
    bool mx = op == OP_MAX;
    if (is_float(sdt)) { /* (a >= b || a != a) ? a : b, mirrored for min */
        LLVMValueRef ord = LLVMBuildFCmp(b, mx ? LLVMRealOGE : LLVMRealOLE, v[0], v[1], "");
        LLVMValueRef nan = LLVMBuildFCmp(b, LLVMRealUNO, v[0], v[0], "");
        return LLVMBuildSelect(b, LLVMBuildOr(b, ord, nan, ""), v[0], v[1], "");
    }
    LLVMValueRef x = int_in(cg, sdt, v[0]), y = int_in(cg, sdt, v[1]);
    LLVMValueRef c = LLVMBuildICmp(b, mx ? LLVMIntSGE : LLVMIntSLE, x, y, "");
    return int_out(cg, out, LLVMBuildSelect(b, c, x, y, ""));
}

static LLVMValueRef emit_compare(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)out;
    LLVMBuilderRef b = cg->b;
    if (is_float(sdt)) {
        LLVMRealPredicate p = op == OP_LT   ? LLVMRealOLT
                              : op == OP_LE ? LLVMRealOLE
                              : op == OP_EQ ? LLVMRealOEQ
                                            : LLVMRealUNE;
        return LLVMBuildFCmp(b, p, v[0], v[1], "");
    }
    LLVMValueRef x = int_in(cg, sdt, v[0]), y = int_in(cg, sdt, v[1]);
    LLVMIntPredicate p = op == OP_LT   ? LLVMIntSLT
                         : op == OP_LE ? LLVMIntSLE
                         : op == OP_EQ ? LLVMIntEQ
                                       : LLVMIntNE;
    return LLVMBuildICmp(b, p, x, y, "");
}

static LLVMValueRef emit_logic(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)out;
    LLVMValueRef x = truth(cg, sdt, v[0]), y = truth(cg, sdt, v[1]);
    return op == OP_AND ? LLVMBuildAnd(cg->b, x, y, "") : LLVMBuildOr(cg->b, x, y, "");
}

static LLVMValueRef emit_where(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v) {
    (void)op;
    (void)out;
    return LLVMBuildSelect(cg->b, truth(cg, sdt, v[0]), v[1], v[2], "");
}

/* ---- the table -------------------------------------------------------------------------- */

/* One entry per op, named E_<ID>; the table is generated from ops.def, so
 * an op added there without an entry here is a compile error. */
/* clang-format off */
#define SCALAR(fn) {LL_SCALAR, fn}
#define E_INPUT {LL_STRUCT, NULL}
#define E_CONST {LL_INDEX, NULL}
#define E_IOTA {LL_INDEX, NULL}
#define E_NEG SCALAR(emit_neg)
#define E_ABS SCALAR(emit_abs)
#define E_SIGN SCALAR(emit_sign)
#define E_FLOOR SCALAR(emit_fmath)
#define E_EXP SCALAR(emit_fmath)
#define E_LOG SCALAR(emit_fmath)
#define E_SQRT SCALAR(emit_fmath)
#define E_SIN SCALAR(emit_fmath)
#define E_COS SCALAR(emit_fmath)
#define E_ERF SCALAR(emit_fmath)
#define E_NOT SCALAR(emit_not)
#define E_CAST SCALAR(emit_cast)
#define E_STOP_GRAD SCALAR(emit_identity)
#define E_ADD SCALAR(emit_arith)
#define E_SUB SCALAR(emit_arith)
#define E_MUL SCALAR(emit_arith)
#define E_DIV SCALAR(emit_arith)
#define E_MOD SCALAR(emit_arith)
#define E_POW SCALAR(emit_arith)
#define E_MAX SCALAR(emit_minmax)
#define E_MIN SCALAR(emit_minmax)
#define E_LT SCALAR(emit_compare)
#define E_LE SCALAR(emit_compare)
#define E_EQ SCALAR(emit_compare)
#define E_NE SCALAR(emit_compare)
#define E_AND SCALAR(emit_logic)
#define E_OR SCALAR(emit_logic)
#define E_WHERE SCALAR(emit_where)
#define E_SUM {LL_LOOP, NULL}
#define E_REDUCE_MAX {LL_LOOP, NULL}
#define E_REDUCE_MIN {LL_LOOP, NULL}
#define E_ARGMAX {LL_LOOP, NULL}
#define E_RESHAPE {LL_INDEX, NULL}
#define E_PERMUTE {LL_INDEX, NULL}
#define E_BROADCAST {LL_INDEX, NULL}
#define E_SLICE {LL_INDEX, NULL}
#define E_CONCAT {LL_INDEX, NULL}
#define E_GATHER {LL_INDEX, NULL}
#define E_SCATTER_ADD {LL_STRUCT, NULL}
#define E_PAD {LL_INDEX, NULL}
#define E_MATMUL {LL_BLAS, NULL}
#define E_CUMSUM {LL_CALL, NULL}
#define E_ARGSORT {LL_CALL, NULL}
#define E_COMPONENTS {LL_CALL, NULL}
#define E_SOLVE {LL_STRUCT, NULL}
#define E_CHOLESKY {LL_STRUCT, NULL}
#define E_INV {LL_STRUCT, NULL}
#define E_DET {LL_STRUCT, NULL}
#define E_SLOGDET {LL_STRUCT, NULL}
#define E_QR {LL_STRUCT, NULL}
#define E_SVD {LL_STRUCT, NULL}
#define E_EIGH {LL_STRUCT, NULL}
#define E_RNG_UNIFORM {LL_RNG, NULL}
#define E_RNG_NORMAL {LL_RNG, NULL}
#define E_FRESH_SEED {LL_RNG, NULL}
/* clang-format on */

const LlvmOpEntry llvm_op_table[] = {
#define X(id, name, arity, shape, flags, doc) [OP_##id] = E_##id,
#include "../../ir/ops.def"
#undef X
};
_Static_assert(sizeof llvm_op_table / sizeof llvm_op_table[0] == OP_COUNT,
               "llvm_op_table must have one entry per op of ops.def");
