/* Shape and dtype rules: one function, ir_infer, decides whether a node is
 * well formed and what it produces, per the op's ShapeRule class from ops.def.
 *
 * Rules are total: they never assert, they return false with a message that
 * names the op and prints the operand types ("matmul: inner dimensions differ:
 * f32[128,784] @ f32[512,10]"). They check the primitive form only (equal
 * shapes and dtypes for elementwise ops); broadcasting and promotion are the
 * builders' job (graph.c), so a rule never inserts nodes. */
#include "shape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/checked.h"
#include "op_cases.h"

bool ir_dtype_numeric(DType t) {
    return t == DT_F32 || t == DT_F64 || t == DT_I32 || t == DT_I64;
}

bool ir_dtype_arith(DType t) {
    return ir_dtype_numeric(t) || t == DT_BOOL;
}

static bool dtype_float(DType t) {
    return t == DT_F32 || t == DT_F64;
}

static bool dtype_int(DType t) {
    return t == DT_I32 || t == DT_I64;
}

static const char *dtname(DType t) {
    static const char *names[DT_COUNT] = {"f32", "f64", "f16", "bf16", "i32", "i64", "bool"};
    return (unsigned)t < DT_COUNT ? names[t] : "?";
}

char *ir_type_str(DType dt, const Shape *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "%s[", dtname(dt));
    for (int i = 0; i < s->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)s->dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

bool ir_broadcast_shapes(const Shape *a, const Shape *b, Shape *out) {
    Shape r;
    r.rank = a->rank > b->rank ? a->rank : b->rank;
    if (r.rank > IR_MAX_RANK) return false;
    for (int i = 0; i < r.rank; i++) {
        int ia = a->rank - r.rank + i, ib = b->rank - r.rank + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da == db || db == 1)
            r.dims[i] = da;
        else if (da == 1)
            r.dims[i] = db;
        else
            return false;
    }
    for (int i = r.rank; i < IR_MAX_RANK; i++)
        r.dims[i] = 0;
    *out = r;
    return true;
}

/* ---- helpers ---------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t n;
} Err;

static bool fail(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(Err *e, const char *fmt, ...) {
    if (e->buf && e->n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->buf, e->n, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* Type string of a source, in a rotating set of static-free buffers. */
typedef struct {
    char s[4][96];
} TypeBufs;

static const char *ts(TypeBufs *b, int slot, const Node *n) {
    return ir_type_str(n->dtype, &n->shape, b->s[slot & 3], sizeof b->s[0]);
}

static bool shape_valid(const Shape *s) {
    if (s->rank < 0 || s->rank > IR_MAX_RANK) return false;
    for (int i = 0; i < s->rank; i++)
        if (s->dims[i] < 0) return false;
    return true;
}

/* A rank outside 0..IR_MAX_RANK or a negative dimension. */
static bool bad_shape(Err *e, const char *nm, DType dt, const Shape *s) {
    if (s->rank < 0 || s->rank > IR_MAX_RANK)
        return fail(e, "%s: invalid result rank %d (0..%d)", nm, s->rank, IR_MAX_RANK);
    char sb[96];
    return fail(e, "%s: invalid result shape %s (a negative dimension)", nm,
                ir_type_str(dt, s, sb, sizeof sb));
}

static bool shape_eq(const Shape *a, const Shape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

/* numel with overflow detection (-1 when it does not fit in int64, see
 * ck_numel: the non-zero dimensions of an empty shape must multiply out too). */
static int64_t numel(const Shape *s) {
    int64_t n;
    return ck_numel(s->rank, s->dims, &n) ? n : -1;
}

static Shape shape_clean(Shape s) {
    for (int i = s.rank < 0 ? 0 : s.rank; i < IR_MAX_RANK; i++)
        s.dims[i] = 0;
    return s;
}

/* A constant must be exactly representable in its dtype. An integer constant is its ivalue; value
 * must be that number rounded (ir_const sets ivalue 0 for a value that is not a whole int64). */
static bool const_fits(DType dt, double v, int64_t i) {
    bool whole = v == (double)i;
    switch (dt) {
    case DT_F32:
    case DT_F64:
        return true;
    case DT_BOOL:
        return whole && (i == 0 || i == 1);
    case DT_I32:
        return whole && i >= INT32_MIN && i <= INT32_MAX;
    case DT_I64:
        return whole;
    case DT_F16:
    case DT_BF16:
        return false; /* no arithmetic yet */
    }
    return false;
}

/* An op reached a rule that is not its own: a bug in the op table or in this
 * file, reported rather than guessed at. */
static bool not_handled(Err *e, OpKind op, const char *rule) {
    return fail(e, "internal error: op %s is not handled by the %s shape rule", ir_op_name(op),
                rule);
}

/* A value held as a double (a pad value): whole and in range for integers. */
static bool double_fits(DType dt, double v) {
    bool whole = v == floor(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0;
    return const_fits(dt, v, whole ? (int64_t)v : 0) && (whole || !rt_dtype_is_int(dt));
}

static bool int_scalar(const Node *n) {
    return n->dtype == DT_I64 && n->shape.rank == 0;
}

/* ---- per-class rules ---------------------------------------------------------- */

/* Binary elementwise ops: equal dtypes, then the op's own dtype rule. */
static bool rule_binary(OpKind op, Node *const *src, DType *dt, Err *e) {
    const char *nm = ir_ops[op].name;
    TypeBufs b;
    DType d0 = src[0]->dtype;
    if (src[1]->dtype != d0)
        return fail(e, "%s: operand dtypes differ: %s and %s", nm, ts(&b, 0, src[0]),
                    ts(&b, 1, src[1]));
    switch (op) {
    case OP_POW:
        if (!dtype_float(d0))
            return fail(e, "%s: needs floating-point operands, got %s and %s", nm,
                        ts(&b, 0, src[0]), ts(&b, 1, src[1]));
        *dt = d0;
        return true;
    case OP_LT:
    case OP_LE:
    case OP_EQ:
    case OP_NE:
        if (!ir_dtype_arith(d0)) return fail(e, "%s: unsupported dtype %s", nm, ts(&b, 0, src[0]));
        *dt = DT_BOOL;
        return true;
    case OP_AND:
    case OP_OR:
        if (d0 != DT_BOOL)
            return fail(e, "%s: needs bool operands, got %s and %s", nm, ts(&b, 0, src[0]),
                        ts(&b, 1, src[1]));
        *dt = DT_BOOL;
        return true;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MOD:
    case OP_MAX:
    case OP_MIN:
        if (!ir_dtype_numeric(d0))
            return fail(e, "%s: needs numeric operands, got %s and %s", nm, ts(&b, 0, src[0]),
                        ts(&b, 1, src[1]));
        *dt = d0;
        return true;
    IR_CASES_EW_UNARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_NOT_EW:
        return not_handled(e, op, "binary elementwise");
    }
    return not_handled(e, op, "binary elementwise");
}

static bool rule_same(OpKind op, Node *const *src, int nsrc, DType *dt, Shape *shape, Err *e) {
    const char *nm = ir_ops[op].name;
    TypeBufs b;
    for (int i = 1; i < nsrc; i++)
        if (!shape_eq(&src[i]->shape, &src[0]->shape))
            return fail(e, "%s: operand shapes differ: %s and %s", nm, ts(&b, 0, src[0]),
                        ts(&b, 1, src[i]));
    *shape = src[0]->shape;
    DType d0 = src[0]->dtype;
    switch (op) {
    case OP_NEG:
    case OP_ABS:
    case OP_SIGN:
        if (!ir_dtype_numeric(d0))
            return fail(e, "%s: needs a numeric operand, got %s", nm, ts(&b, 0, src[0]));
        *dt = d0;
        return true;
    case OP_FLOOR:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
        if (!dtype_float(d0))
            return fail(e, "%s: needs a floating-point operand, got %s", nm, ts(&b, 0, src[0]));
        *dt = d0;
        return true;
    case OP_NOT:
        if (d0 != DT_BOOL)
            return fail(e, "%s: needs a bool operand, got %s", nm, ts(&b, 0, src[0]));
        *dt = DT_BOOL;
        return true;
    case OP_CAST:
        if (!ir_dtype_arith(d0))
            return fail(e, "%s: cannot convert from %s", nm, ts(&b, 0, src[0]));
        if (!ir_dtype_arith(*dt)) return fail(e, "%s: cannot convert to %s", nm, dtname(*dt));
        return true;
    case OP_STOP_GRAD:
        if (!ir_dtype_arith(d0)) return fail(e, "%s: unsupported dtype %s", nm, ts(&b, 0, src[0]));
        *dt = d0;
        return true;
    case OP_WHERE:
        if (d0 != DT_BOOL)
            return fail(e, "%s: condition must be bool, got %s", nm, ts(&b, 0, src[0]));
        if (src[1]->dtype != src[2]->dtype || !ir_dtype_arith(src[1]->dtype))
            return fail(e, "%s: branch dtypes differ: %s and %s", nm, ts(&b, 1, src[1]),
                        ts(&b, 2, src[2]));
        *dt = src[1]->dtype;
        return true;
    IR_CASES_EW_BINARY:
        return rule_binary(op, src, dt, e);
    IR_CASES_NOT_EW:
        return not_handled(e, op, "elementwise");
    }
    return not_handled(e, op, "elementwise");
}

static bool rule_reduce(OpKind op, Node *a, const Attr *attr, DType *dt, Shape *shape, Err *e) {
    const char *nm = ir_ops[op].name;
    TypeBufs b;
    uint32_t axes = attr->reduce.axes;
    if (a->shape.rank < 32 && (axes >> a->shape.rank) != 0)
        return fail(e, "%s: axis mask 0x%x out of range for %s", nm, axes, ts(&b, 0, a));
    if (op == OP_SUM ? !ir_dtype_numeric(a->dtype) : !ir_dtype_arith(a->dtype))
        return fail(e, "%s: unsupported operand %s", nm, ts(&b, 0, a));
    if (op == OP_SUM && !dtype_float(a->dtype) && a->dtype != DT_I64) /* ir_reduce casts */
        return fail(e, "%s: an integer sum is i64 (cast the operand first), got %s", nm,
                    ts(&b, 0, a));
    Shape r = {0};
    for (int i = 0; i < a->shape.rank; i++)
        if (!(axes >> i & 1)) r.dims[r.rank++] = a->shape.dims[i];
    if (op == OP_ARGMAX) {
        if (axes == 0 || (axes & (axes - 1)) != 0)
            return fail(e, "%s: needs exactly one axis, got mask 0x%x", nm, axes);
        int ax = __builtin_ctz(axes);
        if (a->shape.dims[ax] == 0)
            return fail(e, "%s: axis %d of %s is empty", nm, ax, ts(&b, 0, a));
        *dt = DT_I64;
    } else {
        *dt = a->dtype;
    }
    *shape = r;
    return true;
}

static bool rule_attr(OpKind op, Node *const *src, const Attr *attr, DType *dt, Shape *shape,
                      Err *e) {
    const char *nm = ir_ops[op].name;
    TypeBufs b;
    char sb[96];
    switch (op) {
    case OP_INPUT:
        if ((unsigned)*dt >= DT_COUNT) return fail(e, "%s: bad dtype", nm);
        if (attr->input.index < 0) return fail(e, "%s: negative index %d", nm, attr->input.index);
        return true;
    case OP_CONST:
        if (!ir_dtype_arith(*dt)) return fail(e, "%s: unsupported dtype %s", nm, dtname(*dt));
        if (!const_fits(*dt, attr->constant.value, attr->constant.ivalue))
            return fail(e, "%s: value %.17g is not representable in %s", nm, attr->constant.value,
                        dtname(*dt));
        return true;
    case OP_IOTA:
        if (!ir_dtype_numeric(*dt)) return fail(e, "%s: unsupported dtype %s", nm, dtname(*dt));
        if (attr->iota.axis < 0 || attr->iota.axis >= shape->rank)
            return fail(e, "%s: axis %d out of range for %s", nm, attr->iota.axis,
                        ir_type_str(*dt, shape, sb, sizeof sb));
        return true;
    case OP_RESHAPE:
        if (numel(shape) != numel(&src[0]->shape))
            return fail(e, "%s: cannot reshape %s to %s (element counts differ)", nm,
                        ts(&b, 0, src[0]), ir_type_str(src[0]->dtype, shape, sb, sizeof sb));
        *dt = src[0]->dtype;
        return true;
    case OP_BROADCAST: {
        const Shape *in = &src[0]->shape;
        bool ok = in->rank <= shape->rank;
        for (int i = 0; ok && i < in->rank; i++) {
            int64_t d = in->dims[i], o = shape->dims[shape->rank - in->rank + i];
            ok = d == o || d == 1;
        }
        if (!ok)
            return fail(e, "%s: cannot broadcast %s to %s", nm, ts(&b, 0, src[0]),
                        ir_type_str(src[0]->dtype, shape, sb, sizeof sb));
        *dt = src[0]->dtype;
        return true;
    }
    case OP_SCATTER_ADD: {
        Node *u = src[0], *idx = src[1];
        if (!ir_dtype_numeric(u->dtype))
            return fail(e, "%s: unsupported updates %s", nm, ts(&b, 0, u));
        if (!dtype_int(idx->dtype))
            return fail(e, "%s: indices must be integer, got %s", nm, ts(&b, 1, idx));
        bool ok = shape->rank >= 1 && u->shape.rank == idx->shape.rank + shape->rank - 1;
        for (int i = 0; ok && i < idx->shape.rank; i++)
            ok = u->shape.dims[i] == idx->shape.dims[i];
        for (int i = 1; ok && i < shape->rank; i++)
            ok = u->shape.dims[idx->shape.rank + i - 1] == shape->dims[i];
        if (!ok)
            return fail(e, "%s: updates %s do not match indices %s and result %s", nm, ts(&b, 0, u),
                        ts(&b, 1, idx), ir_type_str(u->dtype, shape, sb, sizeof sb));
        *dt = u->dtype;
        return true;
    }
    case OP_RNG_UNIFORM:
    case OP_RNG_NORMAL:
        if (!int_scalar(src[0]) || !int_scalar(src[1]))
            return fail(e, "%s: seed and offset must be i64 scalars, got %s and %s", nm,
                        ts(&b, 0, src[0]), ts(&b, 1, src[1]));
        if (!dtype_float(*dt))
            return fail(e, "%s: result must be f32 or f64, not %s", nm, dtname(*dt));
        return true;
    case OP_FRESH_SEED:
        if (!int_scalar(src[0]) || !int_scalar(src[1]))
            return fail(e, "%s: run seed and step must be i64 scalars, got %s and %s", nm,
                        ts(&b, 0, src[0]), ts(&b, 1, src[1]));
        if (*dt != DT_I64 || shape->rank != 0)
            return fail(e, "%s: result must be an i64 scalar", nm);
        return true;
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_REDUCE:
    case OP_PERMUTE:
    case OP_SLICE:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_PAD:
    IR_CASES_CONTR:
    IR_CASES_ORDER:
    IR_CASES_CALL:
        return not_handled(e, op, "builder-given (SR_ATTR)");
    }
    return not_handled(e, op, "builder-given (SR_ATTR)");
}

static bool rule_permute(Node *a, const Attr *attr, DType *dt, Shape *shape, Err *e) {
    TypeBufs b;
    unsigned seen = 0;
    Shape r = {.rank = a->shape.rank};
    for (int i = 0; i < a->shape.rank; i++) {
        int p = attr->permute.perm[i];
        if (p < 0 || p >= a->shape.rank || (seen >> p & 1)) {
            char pb[64];
            size_t k = 0;
            for (int j = 0; j < a->shape.rank && k < sizeof pb; j++)
                k += (size_t)snprintf(pb + k, sizeof pb - k, j ? ",%d" : "%d",
                                      attr->permute.perm[j]);
            return fail(e, "permute: [%s] is not a permutation of the axes of %s", pb,
                        ts(&b, 0, a));
        }
        seen |= 1u << p;
        r.dims[i] = a->shape.dims[p];
    }
    *dt = a->dtype;
    *shape = r;
    return true;
}

static bool rule_slice(Node *a, const Attr *attr, DType *dt, Shape *shape, Err *e) {
    TypeBufs b;
    char sb[96];
    if (shape->rank != a->shape.rank)
        return fail(e, "slice: result %s has a different rank from %s",
                    ir_type_str(a->dtype, shape, sb, sizeof sb), ts(&b, 0, a));
    for (int i = 0; i < a->shape.rank; i++) {
        int64_t st = attr->slice.start[i], sp = attr->slice.step[i], n = shape->dims[i],
                d = a->shape.dims[i];
        if (sp < 1) return fail(e, "slice: axis %d: step %lld must be >= 1", i, (long long)sp);
        if (st < 0 || st > d)
            return fail(e, "slice: axis %d: start %lld out of range for size %lld", i,
                        (long long)st, (long long)d);
        if (n > 0 && (n - 1) > (d - 1 - st) / sp)
            return fail(e, "slice: axis %d: %lld elements from %lld step %lld exceed size %lld", i,
                        (long long)n, (long long)st, (long long)sp, (long long)d);
    }
    *dt = a->dtype;
    return true;
}

static bool rule_concat(Node *const *src, int nsrc, const Attr *attr, DType *dt, Shape *shape,
                        Err *e) {
    TypeBufs b;
    if (nsrc < 1) return fail(e, "concat: needs at least one operand");
    const Node *a = src[0];
    int ax = attr->concat.axis;
    if (a->shape.rank < 1 || ax < 0 || ax >= a->shape.rank)
        return fail(e, "concat: axis %d out of range for %s", ax, ts(&b, 0, a));
    Shape r = a->shape;
    for (int i = 1; i < nsrc; i++) {
        const Node *x = src[i];
        if (x->dtype != a->dtype)
            return fail(e, "concat: operand dtypes differ: %s and %s", ts(&b, 0, a), ts(&b, 1, x));
        bool ok = x->shape.rank == a->shape.rank;
        for (int k = 0; ok && k < a->shape.rank; k++)
            ok = k == ax || x->shape.dims[k] == a->shape.dims[k];
        if (!ok)
            return fail(e, "concat: shapes %s and %s differ off axis %d", ts(&b, 0, a),
                        ts(&b, 1, x), ax);
        if (!ck_add(r.dims[ax], x->shape.dims[ax], &r.dims[ax]))
            return fail(e, "concat: axis %d of the result is too large (more than 2^63 - 1)", ax);
    }
    if (!ir_dtype_arith(a->dtype)) return fail(e, "concat: unsupported dtype %s", ts(&b, 0, a));
    *dt = a->dtype;
    *shape = r;
    return true;
}

static bool rule_gather(Node *d, Node *idx, DType *dt, Shape *shape, Err *e) {
    TypeBufs b;
    if (!dtype_int(idx->dtype))
        return fail(e, "gather: indices must be integer, got %s", ts(&b, 1, idx));
    if (d->shape.rank < 1) return fail(e, "gather: cannot index a scalar %s", ts(&b, 0, d));
    if (!ir_dtype_arith(d->dtype)) return fail(e, "gather: unsupported dtype %s", ts(&b, 0, d));
    int rank = idx->shape.rank + d->shape.rank - 1;
    if (rank > IR_MAX_RANK)
        return fail(e, "gather: result of %s indexed by %s has rank %d > %d", ts(&b, 0, d),
                    ts(&b, 1, idx), rank, IR_MAX_RANK);
    Shape r = {.rank = rank};
    for (int i = 0; i < idx->shape.rank; i++)
        r.dims[i] = idx->shape.dims[i];
    for (int i = 1; i < d->shape.rank; i++)
        r.dims[idx->shape.rank + i - 1] = d->shape.dims[i];
    *dt = d->dtype;
    *shape = r;
    return true;
}

static bool rule_pad(Node *a, const Attr *attr, DType *dt, Shape *shape, Err *e) {
    TypeBufs b;
    Shape r = a->shape;
    for (int i = 0; i < a->shape.rank; i++) {
        int64_t lo = attr->pad.lo[i], hi = attr->pad.hi[i];
        if (lo < 0 || hi < 0)
            return fail(e, "pad: axis %d: negative padding (%lld, %lld)", i, (long long)lo,
                        (long long)hi);
        if (!ck_add(r.dims[i], lo, &r.dims[i]) || !ck_add(r.dims[i], hi, &r.dims[i]))
            return fail(e, "pad: axis %d: %lld + %lld + %lld is too large (more than 2^63 - 1)", i,
                        (long long)a->shape.dims[i], (long long)lo, (long long)hi);
    }
    if (!ir_dtype_arith(a->dtype)) return fail(e, "pad: unsupported dtype %s", ts(&b, 0, a));
    if (!double_fits(a->dtype, attr->pad.value))
        return fail(e, "pad: value %.17g is not representable in %s", attr->pad.value,
                    dtname(a->dtype));
    *dt = a->dtype;
    *shape = r;
    return true;
}

static bool rule_matmul(Node *a, Node *bb, DType *dt, Shape *shape, Err *e) {
    TypeBufs b;
    int ra = a->shape.rank, rb = bb->shape.rank;
    if (ra < 2 || rb < 2)
        return fail(e, "matmul: operands must have rank >= 2: %s @ %s", ts(&b, 0, a),
                    ts(&b, 1, bb));
    if (a->dtype != bb->dtype || !ir_dtype_numeric(a->dtype))
        return fail(e, "matmul: operand dtypes differ or are not numeric: %s @ %s", ts(&b, 0, a),
                    ts(&b, 1, bb));
    if (a->shape.dims[ra - 1] != bb->shape.dims[rb - 2])
        return fail(e, "matmul: inner dimensions differ: %s @ %s", ts(&b, 0, a), ts(&b, 1, bb));
    bool ok = ra == rb;
    for (int i = 0; ok && i < ra - 2; i++)
        ok = a->shape.dims[i] == bb->shape.dims[i];
    if (!ok)
        return fail(e, "matmul: batch dimensions differ: %s @ %s", ts(&b, 0, a), ts(&b, 1, bb));
    Shape r = a->shape;
    r.dims[ra - 1] = bb->shape.dims[rb - 1];
    *dt = a->dtype;
    *shape = r;
    return true;
}

/* cumsum keeps its source's dtype; argsort and components give i64 indices
 * and labels; components reads a bool mask of rank 1 or 2 (axis 0). */
static bool rule_order(OpKind op, Node *a, const Attr *attr, DType *dt, Shape *shape, Err *e) {
    TypeBufs b;
    const char *nm = ir_ops[op].name;
    int r = a->shape.rank;
    if (r == 0) return fail(e, "%s: needs at least one axis, got %s", nm, ts(&b, 0, a));
    if (attr->order.axis < 0 || attr->order.axis >= r)
        return fail(e, "%s: axis %d is out of range for %s", nm, attr->order.axis, ts(&b, 0, a));
    if (op == OP_COMPONENTS) {
        if (a->dtype != DT_BOOL || r > 2 || attr->order.axis != 0)
            return fail(e, "%s: needs a bool mask of rank 1 or 2, got %s", nm, ts(&b, 0, a));
    } else if (!ir_dtype_numeric(a->dtype)) {
        return fail(e, "%s: unsupported %s", nm, ts(&b, 0, a));
    }
    *dt = op == OP_CUMSUM ? a->dtype : DT_I64;
    *shape = a->shape;
    return true;
}

void ir_order_dims(const Node *n, int64_t d[3]) {
    const Shape *s = &n->shape;
    int ax = n->attr.order.axis;
    if (n->op == OP_COMPONENTS) ax = s->rank - 1;
    d[0] = d[2] = 1;
    d[1] = s->rank ? s->dims[ax] : 1;
    for (int i = 0; i < ax; i++)
        d[0] *= s->dims[i];
    for (int i = ax + 1; i < s->rank; i++)
        d[2] *= s->dims[i];
    if (n->op == OP_COMPONENTS) { /* rows x columns: the columns run along the last axis */
        d[2] = d[1];
        d[1] = d[0];
        d[0] = 1;
    }
}

/* ---- library calls ---------------------------------------------------------------------- */

static Shape with_tail(const Shape *batch_of, int keep, int tail, int64_t d0, int64_t d1) {
    Shape r = {.rank = keep + tail};
    for (int i = 0; i < keep; i++)
        r.dims[i] = batch_of->dims[i];
    if (tail > 0) r.dims[keep] = d0;
    if (tail > 1) r.dims[keep + 1] = d1;
    return r;
}

/* The results of a call (see ir.h); checks the sources. */
static int call_results(OpKind op, Node *const *src, Shape *res, Err *e) {
    TypeBufs b;
    const char *nm = ir_ops[op].name;
    const Node *a = src[0];
    int r = a->shape.rank, nb = r - 2;
    for (int i = 0; i < ir_ops[op].arity; i++)
        if (!rt_dtype_is_float(src[i]->dtype) || src[i]->dtype == DT_F16 ||
            src[i]->dtype == DT_BF16)
            return fail(e, "%s: needs an f32 or f64 matrix, got %s", nm, ts(&b, 0, src[i])), 0;
    if (r < 2) return fail(e, "%s: needs a matrix (rank >= 2), got %s", nm, ts(&b, 0, a)), 0;
    int64_t m = a->shape.dims[r - 2], n = a->shape.dims[r - 1], k = m < n ? m : n;
    bool square = op != OP_QR && op != OP_SVD;
    if (square && m != n) return fail(e, "%s: needs a square matrix, got %s", nm, ts(&b, 0, a)), 0;
    switch (op) {
    case OP_SOLVE: {
        const Node *rhs = src[1];
        bool ok = rhs->dtype == a->dtype && rhs->shape.rank == r && rhs->shape.dims[r - 2] == n;
        for (int i = 0; ok && i < nb; i++)
            ok = rhs->shape.dims[i] == a->shape.dims[i];
        if (!ok)
            return fail(e,
                        "solve: %s does not fit the right-hand side %s (same dtype and batch, "
                        "[.., n, n] and [.., n, k])",
                        ts(&b, 0, a), ts(&b, 1, rhs)),
                   0;
        res[0] = rhs->shape;
        return 1;
    }
    case OP_CHOLESKY:
    case OP_INV:
        res[0] = a->shape;
        return 1;
    case OP_DET:
        res[0] = with_tail(&a->shape, nb, 0, 0, 0);
        return 1;
    case OP_SLOGDET:
        res[0] = res[1] = with_tail(&a->shape, nb, 0, 0, 0);
        return 2;
    case OP_QR:
        res[0] = with_tail(&a->shape, nb, 2, m, k);
        res[1] = with_tail(&a->shape, nb, 2, k, n);
        return 2;
    case OP_SVD:
        res[0] = with_tail(&a->shape, nb, 2, m, k);
        res[1] = with_tail(&a->shape, nb, 1, k, 0);
        res[2] = with_tail(&a->shape, nb, 2, k, n);
        return 3;
    case OP_EIGH:
        res[0] = with_tail(&a->shape, nb, 1, n, 0);
        res[1] = a->shape;
        return 2;
    IR_CASES_NOT_CALL:
        break;
    }
    return fail(e, "internal error: %s is not a library call", nm), 0;
}

int ir_call_results(const Node *n, Shape *res) {
    Err e = {NULL, 0};
    return call_results(n->op, n->src, res, &e);
}

/* A call's node holds its one result, or a tuple: all results packed flat. */
static bool rule_call(OpKind op, Node *const *src, DType *dt, Shape *shape, Err *e) {
    Shape res[IR_MAX_RESULTS];
    int nres = call_results(op, src, res, e);
    if (nres == 0) return false;
    *dt = src[0]->dtype;
    if (nres == 1) {
        *shape = res[0];
        return true;
    }
    int64_t total = 0;
    for (int i = 0; i < nres; i++)
        total += numel(&res[i]);
    *shape = (Shape){.rank = 1, .dims = {total}};
    return true;
}

/* The op's ShapeRule class decides which rule checks it. */
static bool apply_rule(OpKind op, Node *const *src, int nsrc, const Attr *attr, DType *dt,
                       Shape *shape, Err *e) {
    ShapeRule rule = ir_ops[op].shape_rule;
    switch (rule) {
    case SR_SAME:
        return rule_same(op, src, nsrc, dt, shape, e);
    case SR_ATTR:
        return rule_attr(op, src, attr, dt, shape, e);
    case SR_REDUCE:
        return rule_reduce(op, src[0], attr, dt, shape, e);
    case SR_PERMUTE:
        return rule_permute(src[0], attr, dt, shape, e);
    case SR_SLICE:
        return rule_slice(src[0], attr, dt, shape, e);
    case SR_CONCAT:
        return rule_concat(src, nsrc, attr, dt, shape, e);
    case SR_GATHER:
        return rule_gather(src[0], src[1], dt, shape, e);
    case SR_PAD:
        return rule_pad(src[0], attr, dt, shape, e);
    case SR_MATMUL:
        return rule_matmul(src[0], src[1], dt, shape, e);
    case SR_ORDER:
        return rule_order(op, src[0], attr, dt, shape, e);
    case SR_CALL:
        return rule_call(op, src, dt, shape, e);
    }
    return fail(e, "internal error: %s: shape rule %d is not handled", ir_ops[op].name, (int)rule);
}

bool ir_infer(OpKind op, Node *const *src, int nsrc, const Attr *attr, DType *dt, Shape *shape,
              char *err, size_t errn) {
    Err e = {err, errn};
    if (err && errn) err[0] = '\0';
    if ((unsigned)op >= OP_COUNT) return fail(&e, "bad op %d", (int)op);
    const OpInfo *info = &ir_ops[op];
    if (info->arity >= 0 ? nsrc != info->arity : nsrc < 1)
        return fail(&e, "%s: expects %d operands, got %d", info->name, info->arity, nsrc);
    for (int i = 0; i < nsrc; i++) {
        if (!src[i]) return fail(&e, "%s: operand %d is missing", info->name, i);
        if (op != OP_INPUT && !ir_dtype_arith(src[i]->dtype))
            return fail(&e, "%s: %s has no arithmetic yet", info->name, dtname(src[i]->dtype));
    }
    /* Shapes chosen by the builder must themselves be valid. */
    if (info->shape_rule == SR_ATTR || info->shape_rule == SR_SLICE) {
        if (!shape_valid(shape)) return bad_shape(&e, info->name, *dt, shape);
        if (numel(shape) < 0) return fail(&e, "%s: result has too many elements", info->name);
        *shape = shape_clean(*shape);
    }
    bool ok = apply_rule(op, src, nsrc, attr, dt, shape, &e);
    if (!ok) return false;
    if (!shape_valid(shape)) return bad_shape(&e, info->name, *dt, shape);
    if (numel(shape) < 0) return fail(&e, "%s: result has too many elements", info->name);
    *shape = shape_clean(*shape);
    return true;
}
