/* Scheduling: each fusion group becomes a KernelPlan (codegen/kernel.h).
 *
 * A group's value is built by evaluating its root at a symbolic position:
 * the loop variables of the iteration space. Evaluating a node at a
 * position emits scalar instructions: a materialised node is a load at the
 * position's flat index; an elementwise node evaluates its sources at the
 * same position; a movement node maps the position into its source's
 * coordinates (permute swaps them, broadcast zeroes them, slice scales and
 * shifts, pad and concat select with clamped coordinates, gather loads its
 * index first) and recurses. A position carries its flat index and/or its
 * coordinates and converts lazily, so a pure elementwise chain never pays
 * for coordinates: each map kernel is first built over one flat loop and
 * rebuilt over the full loop nest only when some index needed division.
 * Instructions are hash-consed and index arithmetic is folded on the fly,
 * so evaluating a node twice at the same position costs nothing. A row
 * phase (a reduction the fusion pass computes inside its readers) becomes a
 * KI_REDUCE instruction: its source evaluated at the reader's kept
 * coordinates plus fresh loop variables over the reduced axes (a KPhase);
 * memoised by position, so every use inside one row is one phase. */
#include "../ir/op_cases.h"
#include "../ir/shape.h"
#include "../runtime/grow.h"
#include "kernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Shape shape;
    int flat;        /* instruction, or -1 */
    bool has_coords; /* coord[0..rank) are instructions */
    int coord[IR_MAX_RANK];
} Pos;

typedef struct {
    uint32_t node;
    Pos pos;
    int result;
} Memo;

typedef struct {
    Arena *a;
    const FusionPlan *fp;
    KernelProgram *prog;
    const Node *root;
    KInstr *ins;
    int nins, cap;
    Memo *memo;
    int nmemo, capmemo;
    int *checks;
    int nchecks, capchecks;
    const Node *check_node;
    KPhase *phases;
    int nphases, capphases;
    int rank;         /* the kernel's main axes */
    int naxes;        /* loop axes allocated so far: the main ones, then the phases' */
    bool need_coords; /* a flat position had to be divided into coordinates */
    bool oom;
    const char *fail; /* why a plan could not be made (with oom set) */
} Sched;

/* ---- instructions ------------------------------------------------------------------------ */

/* Room for one more element in a heap array of this plan (runtime/grow.h). */
#define grow(pp, cap, n) rt_grow((pp), (cap), (size_t)(n) + 1, 64)

static int add(Sched *s, const KInstr *in) {
    for (int i = 0; i < s->nins; i++)
        if (memcmp(&s->ins[i], in, sizeof *in) == 0) return i;
    if (!grow(&s->ins, &s->cap, s->nins)) {
        s->oom = true;
        return 0;
    }
    s->ins[s->nins] = *in;
    return s->nins++;
}

static KInstr blank(KInstrKind kind, DType dt) {
    KInstr in;
    memset(&in, 0, sizeof in); /* padding too: instructions are compared bytewise */
    in.kind = kind;
    in.dt = dt;
    return in;
}

static int k_const_i(Sched *s, DType dt, int64_t v) {
    KInstr in = blank(KI_CONST, dt);
    in.c.i = v;
    return add(s, &in);
}

static int k_const_f(Sched *s, DType dt, double v) {
    KInstr in = blank(KI_CONST, dt);
    in.c.f = v;
    return add(s, &in);
}

static int k_loop(Sched *s, int axis) {
    KInstr in = blank(KI_LOOP, DT_I64);
    in.axis = axis;
    return add(s, &in);
}

static int k_load(Sched *s, int buf, int idx) {
    KInstr in = blank(KI_LOAD, s->prog->bufs[buf].dt);
    in.buf = buf;
    in.nsrc = 1;
    in.src[0] = idx;
    return add(s, &in);
}

static int k_op(Sched *s, OpKind op, DType dt, int n, int a, int b, int c) {
    KInstr in = blank(KI_OP, dt);
    in.op = op;
    in.nsrc = n;
    in.src[0] = a;
    in.src[1] = n > 1 ? b : 0;
    in.src[2] = n > 2 ? c : 0;
    return add(s, &in);
}

static bool const_i(const Sched *s, int id, int64_t *v) {
    if (s->oom || s->ins[id].kind != KI_CONST || s->ins[id].dt != DT_I64) return false;
    *v = s->ins[id].c.i;
    return true;
}

/* i64 index arithmetic on non-negative values, folded where constant. */
static int iconst(Sched *s, int64_t v) {
    return k_const_i(s, DT_I64, v);
}

static int iadd(Sched *s, int a, int b) {
    int64_t x, y;
    bool ca = const_i(s, a, &x), cb = const_i(s, b, &y);
    if (ca && cb) return iconst(s, (int64_t)((uint64_t)x + (uint64_t)y));
    if (ca && x == 0) return b;
    if (cb && y == 0) return a;
    return k_op(s, OP_ADD, DT_I64, 2, a, b, 0);
}

static int isub(Sched *s, int a, int b) {
    int64_t x, y;
    bool ca = const_i(s, a, &x), cb = const_i(s, b, &y);
    if (ca && cb) return iconst(s, (int64_t)((uint64_t)x - (uint64_t)y));
    if (cb && y == 0) return a;
    return k_op(s, OP_SUB, DT_I64, 2, a, b, 0);
}

static int imulc(Sched *s, int a, int64_t c) {
    int64_t x;
    if (c == 0) return iconst(s, 0);
    if (c == 1) return a;
    if (const_i(s, a, &x)) return iconst(s, (int64_t)((uint64_t)x * (uint64_t)c));
    return k_op(s, OP_MUL, DT_I64, 2, a, iconst(s, c), 0);
}

static int idivc(Sched *s, int a, int64_t c) {
    int64_t x;
    if (c == 1) return a;
    if (const_i(s, a, &x)) return iconst(s, x / c);
    return k_op(s, OP_DIV, DT_I64, 2, a, iconst(s, c), 0);
}

static int imodc(Sched *s, int a, int64_t c) {
    int64_t x;
    if (c == 1) return iconst(s, 0);
    if (const_i(s, a, &x)) return iconst(s, x % c);
    return k_op(s, OP_MOD, DT_I64, 2, a, iconst(s, c), 0);
}

/* clamp(a, lo, hi) on i64 (signed: a may be below lo). */
static int iclamp(Sched *s, int a, int64_t lo, int64_t hi) {
    int64_t x;
    if (const_i(s, a, &x)) return iconst(s, x < lo ? lo : x > hi ? hi : x);
    int t = k_op(s, OP_MIN, DT_I64, 2, a, iconst(s, hi), 0);
    return k_op(s, OP_MAX, DT_I64, 2, t, iconst(s, lo), 0);
}

/* lo <= a < hi as a bool instruction. */
static int iin_range(Sched *s, int a, int64_t lo, int64_t hi) {
    int64_t x;
    if (const_i(s, a, &x)) return k_const_i(s, DT_BOOL, x >= lo && x < hi);
    int ge = k_op(s, OP_LE, DT_BOOL, 2, iconst(s, lo), a, 0);
    int lt = k_op(s, OP_LT, DT_BOOL, 2, a, iconst(s, hi), 0);
    return k_op(s, OP_AND, DT_BOOL, 2, ge, lt, 0);
}

static void add_check(Sched *s, int cond, const Node *n) {
    if (s->ins[cond].kind == KI_CONST && s->ins[cond].c.i) return;
    for (int i = 0; i < s->nchecks; i++)
        if (s->checks[i] == cond) return;
    if (!grow(&s->checks, &s->capchecks, s->nchecks)) {
        s->oom = true;
        return;
    }
    s->checks[s->nchecks++] = cond;
    if (!s->check_node) s->check_node = n;
}

/* ---- constants with the interpreter's conversions ------------------------------------------ */

static int64_t f_to_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

/* A dtype a kernel cannot compute in: the plan fails (like running out of
 * memory, with the reason) rather than guess another dtype. */
static int no_dtype(Sched *s, DType dt) {
    s->oom = true;
    s->fail = dt == DT_F16 ? "f16 constants are not supported in kernels yet"
                           : "bf16 constants are not supported in kernels yet";
    return 0;
}

/* A CONST node's value (interp fill_const: integers are the exact ivalue,
 * which shape inference has checked fits the width). */
static int node_const(Sched *s, DType dt, double v, int64_t iv) {
    switch (dt) {
    case DT_F32:
        return k_const_f(s, dt, (double)(float)v);
    case DT_F64:
        return k_const_f(s, dt, v);
    case DT_I32:
        return k_const_i(s, dt, (int32_t)(uint32_t)(uint64_t)iv);
    case DT_I64:
        return k_const_i(s, dt, iv);
    case DT_BOOL:
        return k_const_i(s, DT_BOOL, iv != 0);
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic yet: shape inference refuses such a constant */
    }
    return no_dtype(s, dt);
}

/* A pad value (interp st_f: integers saturate, bool is v != 0). */
static int store_const(Sched *s, DType dt, double v) {
    int64_t iv = f_to_i64(v);
    switch (dt) {
    case DT_F32:
        return k_const_f(s, dt, (double)(float)v);
    case DT_F64:
        return k_const_f(s, dt, v);
    case DT_I32:
        return k_const_i(s, dt, iv > INT32_MAX ? INT32_MAX : iv < INT32_MIN ? INT32_MIN : iv);
    case DT_I64:
        return k_const_i(s, dt, iv);
    case DT_BOOL:
        return k_const_i(s, DT_BOOL, v != 0);
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic yet: shape inference refuses such a pad */
    }
    return no_dtype(s, dt);
}

static int zero_of(Sched *s, DType dt) {
    return (dt == DT_F32 || dt == DT_F64) ? k_const_f(s, dt, 0.0) : k_const_i(s, dt, 0);
}

/* ---- positions ----------------------------------------------------------------------------- */

static void strides_of(const Shape *sh, int64_t *st) {
    int64_t acc = 1;
    for (int i = sh->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= sh->dims[i];
    }
}

static Pos pos_flat(const Shape *sh, int flat) {
    Pos p;
    memset(&p, 0, sizeof p);
    p.shape = *sh;
    p.flat = flat;
    p.has_coords = sh->rank == 0;
    return p;
}

static Pos pos_coords(const Shape *sh) {
    Pos p;
    memset(&p, 0, sizeof p);
    p.shape = *sh;
    p.flat = -1;
    p.has_coords = true;
    return p;
}

static Pos pos_scalar(Sched *s) {
    Shape sh = {.rank = 0};
    return pos_flat(&sh, iconst(s, 0));
}

static int flat_of(Sched *s, Pos *p) {
    if (p->flat >= 0) return p->flat;
    int64_t st[IR_MAX_RANK];
    strides_of(&p->shape, st);
    int acc = iconst(s, 0);
    for (int i = 0; i < p->shape.rank; i++)
        if (p->shape.dims[i] != 1) acc = iadd(s, acc, imulc(s, p->coord[i], st[i]));
    p->flat = acc;
    return acc;
}

static void coords_of(Sched *s, Pos *p) {
    if (p->has_coords) return;
    int64_t st[IR_MAX_RANK];
    strides_of(&p->shape, st);
    for (int i = 0; i < p->shape.rank; i++) {
        if (p->shape.dims[i] == 1) {
            p->coord[i] = iconst(s, 0);
            continue;
        }
        int c = idivc(s, p->flat, st[i]);
        if (i > 0) c = imodc(s, c, p->shape.dims[i]);
        if (c != p->flat) s->need_coords = true;
        p->coord[i] = c;
    }
    p->has_coords = true;
}

/* ---- evaluating a node at a position ----------------------------------------------------------
 */

static int build(Sched *s, const Node *n, Pos *p);

static bool materialised(const Sched *s, const Node *n) {
    FusionRole r = s->fp->role[n->id];
    return n != s->root && (r == FN_INPUT || r == FN_ROOT);
}

static bool same_pos(const Pos *a, const Pos *b) {
    if (a->flat != b->flat || a->has_coords != b->has_coords) return false;
    if (a->has_coords)
        for (int i = 0; i < a->shape.rank; i++)
            if (a->coord[i] != b->coord[i]) return false;
    return true;
}

static int build_movement(Sched *s, const Node *n, Pos *p) {
    const Node *src = n->src[0];
    Pos q = pos_coords(&src->shape);
    int r = n->shape.rank;
    switch (n->op) {
    case OP_RESHAPE:
        if (p->has_coords && rt_shape_eq_squeezed(&n->shape, &src->shape)) {
            int i = 0;
            for (int k = 0; k < src->shape.rank; k++) {
                if (src->shape.dims[k] == 1) {
                    q.coord[k] = iconst(s, 0);
                    continue;
                }
                while (n->shape.dims[i] == 1)
                    i++;
                q.coord[k] = p->coord[i++];
            }
        } else {
            q = pos_flat(&src->shape, flat_of(s, p));
        }
        return build(s, src, &q);
    case OP_PERMUTE:
        coords_of(s, p);
        for (int i = 0; i < r; i++)
            q.coord[n->attr.permute.perm[i]] = p->coord[i];
        return build(s, src, &q);
    case OP_BROADCAST: {
        if (rt_shape_numel(&src->shape) == 1) {
            q = pos_flat(&src->shape, iconst(s, 0));
            return build(s, src, &q);
        }
        coords_of(s, p);
        int lead = r - src->shape.rank;
        for (int k = 0; k < src->shape.rank; k++)
            q.coord[k] = src->shape.dims[k] == 1 ? iconst(s, 0) : p->coord[k + lead];
        return build(s, src, &q);
    }
    case OP_SLICE:
        coords_of(s, p);
        for (int i = 0; i < r; i++)
            q.coord[i] = iadd(s, iconst(s, n->attr.slice.start[i]),
                              imulc(s, p->coord[i], n->attr.slice.step[i]));
        return build(s, src, &q);
    case OP_PAD: {
        int fill = store_const(s, n->dtype, n->attr.pad.value);
        if (rt_shape_numel(&src->shape) == 0) return fill;
        coords_of(s, p);
        int valid = k_const_i(s, DT_BOOL, 1);
        for (int i = 0; i < r; i++) {
            int64_t lo = n->attr.pad.lo[i], d = src->shape.dims[i];
            if (lo == 0 && n->attr.pad.hi[i] == 0) {
                q.coord[i] = p->coord[i];
                continue;
            }
            int c = isub(s, p->coord[i], iconst(s, lo)); /* signed: may be negative */
            int in = iin_range(s, c, 0, d);
            valid = s->ins[valid].kind == KI_CONST ? in : k_op(s, OP_AND, DT_BOOL, 2, valid, in, 0);
            q.coord[i] = iclamp(s, c, 0, d - 1);
        }
        int v = build(s, src, &q);
        return k_op(s, OP_WHERE, n->dtype, 3, valid, v, fill);
    }
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return -1;
    }
    return -1; /* not an op */
}

static int build_concat(Sched *s, const Node *n, Pos *p) {
    int ax = n->attr.concat.axis;
    coords_of(s, p);
    /* where(c < end_0, v_0, where(c < end_1, v_1, ... v_last)), built from the last source */
    int result = -1;
    int64_t end = n->shape.dims[ax];
    for (int k = n->nsrc - 1; k >= 0; k--) {
        const Node *src = n->src[k];
        int64_t d = src->shape.dims[ax], start = end - d;
        if (d > 0) {
            Pos q = pos_coords(&src->shape);
            for (int i = 0; i < n->shape.rank; i++)
                q.coord[i] = p->coord[i];
            q.coord[ax] = iclamp(s, isub(s, p->coord[ax], iconst(s, start)), 0, d - 1);
            int v = build(s, src, &q);
            if (result < 0) {
                result = v;
            } else {
                int below = k_op(s, OP_LT, DT_BOOL, 2, p->coord[ax], iconst(s, end), 0);
                result = k_op(s, OP_WHERE, n->dtype, 3, below, v, result);
            }
        }
        end = start;
    }
    return result >= 0 ? result : zero_of(s, n->dtype);
}

static int build_gather(Sched *s, const Node *n, Pos *p) {
    const Node *data = n->src[0], *idx = n->src[1];
    int q = idx->shape.rank;
    int64_t rows = data->shape.dims[0];
    coords_of(s, p);
    if (rows == 0) {
        add_check(s, k_const_i(s, DT_BOOL, 0), n);
        return zero_of(s, n->dtype);
    }
    Pos ip = pos_coords(&idx->shape);
    for (int i = 0; i < q; i++)
        ip.coord[i] = p->coord[i];
    int iv = build(s, idx, &ip);
    if (idx->dtype != DT_I64) iv = k_op(s, OP_CAST, DT_I64, 1, iv, 0, 0);
    add_check(s, iin_range(s, iv, 0, rows), n);
    Pos dp = pos_coords(&data->shape);
    dp.coord[0] = iclamp(s, iv, 0, rows - 1);
    for (int i = 1; i < data->shape.rank; i++)
        dp.coord[i] = p->coord[q + i - 1];
    return build(s, data, &dp);
}

/* The identity of a reduction (its value over an empty row), as the interpreter has it. */
static int red_identity(Sched *s, OpKind op, DType dt) {
    bool fl = dt == DT_F32 || dt == DT_F64;
    if (op == OP_SUM) return zero_of(s, dt);
    bool mx = op == OP_REDUCE_MAX;
    if (fl) return k_const_f(s, dt, mx ? -__builtin_inf() : __builtin_inf());
    if (dt == DT_BOOL) return k_const_i(s, dt, mx ? 0 : 1);
    if (dt == DT_I32) return k_const_i(s, dt, mx ? INT32_MIN : INT32_MAX);
    return k_const_i(s, dt, mx ? INT64_MIN : INT64_MAX);
}

/* Row phase n at position p (over n's kept axes): its source at p's
 * coordinates and new loops over the reduced axes. */
static int build_phase(Sched *s, const Node *n, Pos *p) {
    const Node *src = n->src[0];
    uint32_t axes = n->attr.reduce.axes;
    coords_of(s, p);
    Pos q = pos_coords(&src->shape);
    KPhase ph;
    memset(&ph, 0, sizeof ph);
    ph.first_axis = s->naxes;
    ph.stash_at = ph.stash_main = -1;
    for (int i = 0, o = 0; i < src->shape.rank; i++) {
        if (!(axes >> i & 1)) {
            q.coord[i] = p->coord[o++];
            continue;
        }
        int64_t d = src->shape.dims[i];
        if (d == 0) return red_identity(s, n->op, n->dtype);
        q.coord[i] = d == 1 ? iconst(s, 0) : k_loop(s, ph.first_axis + ph.rank);
        ph.dims[ph.rank++] = d;
    }
    s->naxes += ph.rank;
    if (s->naxes - s->rank > 64) { /* cg_kernel_deps keeps phase axes in a 64-bit mask */
        s->fail = "too many row phases in one kernel";
        s->oom = true;
        return 0;
    }
    OpKind rop = s->root->op;
    bool map_root = !(ir_ops[rop].flags & OPF_RED) && rop != OP_MATMUL && rop != OP_SCATTER_ADD;
    if (map_root && rt_shape_eq(&src->shape, &s->root->shape)) ph.stash_at = flat_of(s, &q);
    KInstr in = blank(KI_REDUCE, n->dtype);
    in.op = n->op;
    in.nsrc = 1;
    in.src[0] = build(s, src, &q);
    in.axis = s->nphases;
    if (!grow(&s->phases, &s->capphases, s->nphases)) {
        s->oom = true;
        return 0;
    }
    ph.ins = add(s, &in);
    s->phases[s->nphases++] = ph;
    return ph.ins;
}

static int build_uncached(Sched *s, const Node *n, Pos *p) {
    if (materialised(s, n)) return k_load(s, s->prog->buf_of[n->id], flat_of(s, p));
    if (ir_ops[n->op].flags & OPF_RED) return build_phase(s, n, p);
    switch (n->op) {
    case OP_CONST:
        return node_const(s, n->dtype, n->attr.constant.value, n->attr.constant.ivalue);
    case OP_IOTA: {
        coords_of(s, p);
        int c = p->coord[n->attr.iota.axis];
        return n->dtype == DT_I64 ? c : k_op(s, OP_CAST, n->dtype, 1, c, 0, 0);
    }
    case OP_STOP_GRAD:
        return build(s, n->src[0], p);
    case OP_RNG_UNIFORM:
    case OP_RNG_NORMAL: {
        Pos sc = pos_scalar(s), oc = pos_scalar(s);
        int seed = build(s, n->src[0], &sc), off = build(s, n->src[1], &oc);
        KInstr in = blank(KI_RNG, n->dtype);
        in.op = n->op;
        in.nsrc = 2;
        in.src[0] = seed;
        in.src[1] = iadd(s, off, flat_of(s, p));
        in.stream = n->attr.rng.stream;
        return add(s, &in);
    }
    case OP_FRESH_SEED: {
        Pos sc = pos_scalar(s), tc = pos_scalar(s);
        KInstr in = blank(KI_FRESH_SEED, DT_I64);
        in.nsrc = 2;
        in.src[0] = build(s, n->src[0], &sc);
        in.src[1] = build(s, n->src[1], &tc);
        in.stream = n->attr.rng.k;
        return add(s, &in);
    }
    case OP_CONCAT:
        return build_concat(s, n, p);
    case OP_GATHER:
        return build_gather(s, n, p);
    case OP_INPUT:
    case OP_NEG:
    case OP_ABS:
    case OP_SIGN:
    case OP_FLOOR:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
    case OP_NOT:
    case OP_CAST:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_RESHAPE:
    case OP_PERMUTE:
    case OP_BROADCAST:
    case OP_SLICE:
    case OP_SCATTER_ADD:
    case OP_PAD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
        break;
    }
    if (ir_ops[n->op].flags & OPF_EW) {
        int v[3] = {0, 0, 0};
        for (int k = 0; k < n->nsrc && k < 3; k++)
            v[k] = build(s, n->src[k], p);
        return k_op(s, n->op, n->dtype, n->nsrc, v[0], v[1], v[2]);
    }
    /* movement ops; reductions, matmuls and scatters are always materialised */
    return build_movement(s, n, p);
}

static int build(Sched *s, const Node *n, Pos *p) {
    if (s->oom) return 0;
    for (int i = 0; i < s->nmemo; i++)
        if (s->memo[i].node == n->id && same_pos(&s->memo[i].pos, p)) return s->memo[i].result;
    Pos key = *p;
    int r = build_uncached(s, n, p);
    if (r < 0 || s->oom) {
        s->oom = s->oom || r < 0;
        return 0;
    }
    if (!grow(&s->memo, &s->capmemo, s->nmemo)) {
        s->oom = true;
        return 0;
    }
    s->memo[s->nmemo++] = (Memo){n->id, key, r};
    return r;
}

/* ---- kernels ------------------------------------------------------------------------------------
 */

static void reset(Sched *s) {
    s->nins = s->nmemo = s->nchecks = s->nphases = s->naxes = s->rank = 0;
    s->need_coords = false;
    s->check_node = NULL;
}

/* Loop variables over shape sh: axis i of the position is loop i (0 for size-1 axes). */
static Pos loop_pos(Sched *s, const Shape *sh, KernelPlan *k) {
    Pos p = pos_coords(sh);
    k->rank = sh->rank;
    s->naxes = s->rank = k->rank;
    for (int i = 0; i < sh->rank; i++) {
        k->dims[i] = sh->dims[i];
        p.coord[i] = sh->dims[i] == 1 ? iconst(s, 0) : k_loop(s, i);
    }
    return p;
}

/* One flat loop over sh; false (nothing built) when it needed coordinates. */
static bool try_flat(Sched *s, const Node *n, const Shape *sh, KernelPlan *k, int *value,
                     int *flat) {
    reset(s);
    k->rank = sh->rank ? 1 : 0;
    k->dims[0] = rt_shape_numel(sh);
    s->naxes = s->rank = k->rank;
    Pos p = pos_flat(sh, k->rank ? k_loop(s, 0) : iconst(s, 0));
    *value = build(s, n, &p);
    *flat = p.flat;
    return !s->need_coords;
}

static void plan_map(Sched *s, KernelPlan *k) {
    const Node *r = s->root;
    if (try_flat(s, r, &r->shape, k, &k->value, &k->out_index)) return;
    reset(s);
    Pos p = loop_pos(s, &r->shape, k);
    k->value = build(s, r, &p);
    k->out_index = flat_of(s, &p);
}

static void plan_reduce(Sched *s, KernelPlan *k) {
    const Node *r = s->root, *src = r->src[0];
    int rank = src->shape.rank;
    uint32_t axes = r->attr.reduce.axes, all = rank ? (uint32_t)((1ull << rank) - 1) : 0;
    k->kind = KP_REDUCE;
    k->red_op = r->op;
    int flat;
    if (rank >= 1 && axes == all && (r->op != OP_ARGMAX || rank == 1) &&
        try_flat(s, src, &src->shape, k, &k->value, &flat)) {
        k->red_axes = 1;
        k->out_index = iconst(s, 0);
        return;
    }
    reset(s);
    Pos p = loop_pos(s, &src->shape, k);
    k->red_axes = axes;
    k->value = build(s, src, &p);
    int64_t st[IR_MAX_RANK];
    strides_of(&r->shape, st);
    int idx = iconst(s, 0);
    for (int i = 0, o = 0; i < rank; i++) {
        if (axes >> i & 1) continue;
        if (r->shape.dims[o] != 1) idx = iadd(s, idx, imulc(s, p.coord[i], st[o]));
        o++;
    }
    k->out_index = idx;
}

/* Integer matmul: a reduction over the loop nest (batch.., M, N, K). */
static bool plan_int_matmul(Sched *s, KernelPlan *k) {
    const Node *r = s->root, *a = r->src[0], *b = r->src[1];
    int rank = r->shape.rank;
    if (rank + 1 > IR_MAX_RANK) return false;
    reset(s);
    Shape it = r->shape;
    it.rank = rank + 1;
    it.dims[rank] = a->shape.dims[rank - 1];
    Pos p = loop_pos(s, &it, k);
    Pos pa = pos_coords(&a->shape), pb = pos_coords(&b->shape), po = pos_coords(&r->shape);
    for (int i = 0; i < rank - 2; i++)
        pa.coord[i] = pb.coord[i] = po.coord[i] = p.coord[i];
    pa.coord[rank - 2] = po.coord[rank - 2] = p.coord[rank - 2];
    pb.coord[rank - 1] = po.coord[rank - 1] = p.coord[rank - 1];
    pa.coord[rank - 1] = pb.coord[rank - 2] = p.coord[rank];
    int va = build(s, a, &pa), vb = build(s, b, &pb);
    k->kind = KP_REDUCE;
    k->red_op = OP_SUM;
    k->red_axes = 1u << rank;
    k->value = k_op(s, OP_MUL, r->dtype, 2, va, vb, 0);
    k->out_index = flat_of(s, &po);
    return true;
}

static bool plan_matmul(Sched *s, KernelPlan *k, const Node *r) {
    if (r->dtype != DT_F32 && r->dtype != DT_F64) return plan_int_matmul(s, k);
    FuseView va, vb;
    KMatmul *m = &k->mm;
    m->alpha = 1;
    if (r != s->root) { /* root = x + r, r + x or x - r: C starts as x (or -x) */
        const Node *t = s->root, *x = t->src[0] == r ? t->src[1] : t->src[0];
        reset(s);
        Pos p = loop_pos(s, &t->shape, k);
        int v = build(s, x, &p);
        if (t->op == OP_SUB && t->src[0] == r) v = k_op(s, OP_NEG, t->dtype, 1, v, 0, 0);
        if (t->op == OP_SUB && t->src[1] == r) m->alpha = -1;
        k->value = v;
        k->out_index = flat_of(s, &p);
        m->accumulate = true;
    }
    if (!pass_fuse_view(r->src[0], s->fp->role, &va) ||
        !pass_fuse_view(r->src[1], s->fp->role, &vb) ||
        !pass_fuse_blas_matrix(&va, &m->trans_a, &m->lda) ||
        !pass_fuse_blas_matrix(&vb, &m->trans_b, &m->ldb))
        return false; /* the fusion pass materialises every operand that is not a view */
    int rank = r->shape.rank;
    k->kind = KP_MATMUL;
    m->a_buf = s->prog->buf_of[va.base->id];
    m->b_buf = s->prog->buf_of[vb.base->id];
    m->a_off = va.offset;
    m->b_off = vb.offset;
    m->M = va.shape.dims[rank - 2];
    m->K = va.shape.dims[rank - 1];
    m->N = vb.shape.dims[rank - 1];
    m->batch_rank = rank - 2;
    for (int i = 0; i < rank - 2; i++) {
        m->batch_dims[i] = r->shape.dims[i];
        m->a_bstride[i] = va.strides[i];
        m->b_bstride[i] = vb.strides[i];
    }
    return m->a_buf >= 0 && m->b_buf >= 0 && m->M <= INT32_MAX && m->N <= INT32_MAX &&
           m->K <= INT32_MAX;
}

static void plan_scatter(Sched *s, KernelPlan *k) {
    const Node *r = s->root, *upd = r->src[0], *idx = r->src[1];
    int q = idx->shape.rank;
    int64_t rows = r->shape.dims[0], rowlen = rows ? rt_shape_numel(&r->shape) / rows : 0;
    reset(s);
    k->kind = KP_SCATTER;
    Pos p = loop_pos(s, &upd->shape, k);
    Pos ip = pos_coords(&idx->shape);
    for (int i = 0; i < q; i++)
        ip.coord[i] = p.coord[i];
    int iv = build(s, idx, &ip);
    if (idx->dtype != DT_I64) iv = k_op(s, OP_CAST, DT_I64, 1, iv, 0, 0);
    add_check(s, iin_range(s, iv, 0, rows), r);
    Shape row = {.rank = r->shape.rank - 1};
    for (int i = 1; i < r->shape.rank; i++)
        row.dims[i - 1] = r->shape.dims[i];
    Pos rp = pos_coords(&row);
    for (int i = 0; i < row.rank; i++)
        rp.coord[i] = p.coord[q + i];
    int at = iadd(s, imulc(s, iclamp(s, iv, 0, rows ? rows - 1 : 0), rowlen), flat_of(s, &rp));
    k->out_index = at;
    k->value = build(s, upd, &p);
}

/* An order op: the runtime routine over its source's buffer (the fusion
 * pass materialises it); the plan's one load names that buffer. */
static void plan_order(Sched *s, KernelPlan *k) {
    const Node *r = s->root;
    reset(s);
    k->kind = KP_ORDER;
    k->red_op = r->op;
    k->red_axes = (uint32_t)r->attr.order.flag;
    k->rank = 3;
    ir_order_dims(r, k->dims);
    int zero = iconst(s, 0);
    k->value = k_load(s, s->prog->buf_of[r->src[0]->id], zero);
    k->out_index = zero;
}

/* A library call: one task over the whole buffers (fusion materialised its
 * operands); a failure is reported as the call's check. */
static bool plan_call(Sched *s, KernelPlan *k) {
    const Node *r = s->root;
    IrCallDims d = ir_call_dims(r);
    int a = s->prog->buf_of[r->src[0]->id], b = r->nsrc > 1 ? s->prog->buf_of[r->src[1]->id] : -1;
    k->kind = KP_CALL;
    k->call = (KCall){d.fn, a, b, d.batch, d.m, d.n, d.k};
    s->check_node = r;
    return a >= 0 && (r->nsrc < 2 || b >= 0);
}

/* Copies the scratch instruction list into the kernel (arena). */
static bool finish(Sched *s, KernelPlan *k) {
    if (s->oom) return false;
    k->nins = s->nins;
    k->ins = arena_alloc(s->a, sizeof(KInstr) * (size_t)(s->nins ? s->nins : 1));
    k->nchecks = s->nchecks;
    k->checks = arena_alloc(s->a, sizeof(int) * (size_t)(s->nchecks ? s->nchecks : 1));
    if (!k->ins || !k->checks) return false;
    if (s->nins) memcpy(k->ins, s->ins, sizeof(KInstr) * (size_t)s->nins);
    if (s->nchecks) memcpy(k->checks, s->checks, sizeof(int) * (size_t)s->nchecks);
    k->check_node = s->check_node;
    k->nphases = s->nphases;
    k->naxes = s->naxes > k->rank ? s->naxes : k->rank;
    k->phases = arena_alloc(s->a, sizeof(KPhase) * (size_t)(s->nphases ? s->nphases : 1));
    if (!k->phases) return false;
    if (s->nphases) memcpy(k->phases, s->phases, sizeof(KPhase) * (size_t)s->nphases);
    return true;
}

void cg_kernel_deps(const KernelPlan *k, uint32_t *main, uint64_t *phase) {
    for (int i = 0; i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        uint32_t m = 0;
        uint64_t ph = 0;
        if (in->kind == KI_LOOP) {
            if (in->axis < k->rank)
                m = 1u << in->axis;
            else
                ph = 1ull << (in->axis - k->rank);
        }
        for (int j = 0; j < in->nsrc; j++) { /* sources come first */
            m |= main[in->src[j]];
            ph |= phase[in->src[j]];
        }
        if (in->kind == KI_REDUCE) {
            const KPhase *p = &k->phases[in->axis];
            for (int a = 0; a < p->rank; a++)
                ph &= ~(1ull << (p->first_axis + a - k->rank));
        }
        main[i] = m;
        phase[i] = ph;
    }
}

/* ---- keeping a phase's summand --------------------------------------------------------------- */

static int find_ins(const KernelPlan *k, const KInstr *in) {
    for (int i = 0; i < k->nins; i++)
        if (memcmp(&k->ins[i], in, sizeof *in) == 0) return i;
    return -1;
}

typedef struct {
    const KernelPlan *k;
    const KPhase *ph;
    const uint64_t *dph;
    int main_axis[IR_MAX_RANK]; /* per phase axis: the main axis it runs along */
    int *memo;                  /* per instruction: its image + 2, 1 = none, 0 = unknown */
} Subst;

/* Instruction i of the phase's scope with each phase loop replaced by the
 * main loop of the same output axis, if the kernel has it; else -1. */
static int subst(Subst *S, int i, int depth) {
    const KernelPlan *k = S->k;
    if (S->memo[i]) return S->memo[i] - 2;
    uint64_t own = 0;
    for (int a = 0; a < S->ph->rank; a++)
        own |= 1ull << (S->ph->first_axis + a - k->rank);
    int r = i;
    const KInstr *in = &k->ins[i];
    if (!(S->dph[i] & own)) {
        r = i; /* the same in both scopes */
    } else if (depth > 256 || in->kind == KI_REDUCE) {
        r = -1;
    } else if (in->kind == KI_LOOP) {
        KInstr l = *in;
        l.axis = S->main_axis[in->axis - S->ph->first_axis];
        r = find_ins(k, &l);
    } else {
        KInstr c = *in;
        for (int j = 0; j < in->nsrc && r >= 0; j++)
            r = c.src[j] = subst(S, in->src[j], depth + 1);
        if (r >= 0) r = find_ins(k, &c);
    }
    S->memo[i] = r + 2;
    return r;
}

/* Is instruction t part of the map's own value (not inside a phase's row)? */
static bool in_value(const KernelPlan *k, int i, int t, uint8_t *seen) {
    if (i == t) return true;
    if (seen[i]) return false;
    seen[i] = 1;
    const KInstr *in = &k->ins[i];
    if (in->kind == KI_REDUCE) return false;
    for (int j = 0; j < in->nsrc; j++)
        if (in_value(k, in->src[j], t, seen)) return true;
    return false;
}

/* Picks the phase whose summand the map's value recomputes at the output
 * point the phase visits (the last such phase), and records where. */
static void plan_stash(KernelPlan *k) {
    if (k->kind != KP_MAP || !k->nphases) return;
    size_t n = (size_t)k->nins;
    uint32_t *dm = malloc(sizeof(uint32_t) * n);
    uint64_t *dp = malloc(sizeof(uint64_t) * n);
    int *memo = malloc(sizeof(int) * n);
    uint8_t *seen = malloc(n);
    if (!dm || !dp || !memo || !seen) goto done;
    cg_kernel_deps(k, dm, dp);
    int chosen = -1;
    for (int p = k->nphases - 1; p >= 0 && chosen < 0; p--) {
        KPhase *ph = &k->phases[p];
        int ri = ph->ins, b = k->ins[ri].src[0];
        if (ph->stash_at < 0 || dp[ri] || k->ins[b].dt != k->out_dt) continue;
        Subst S = {k, ph, dp, {0}, memo};
        /* the phase reduces trailing axes of the output's shape: its axis j is
           main axis rank - ph->rank + j */
        for (int a = 0; a < ph->rank; a++)
            S.main_axis[a] = k->rank - ph->rank + a;
        if (k->rank < ph->rank) continue;
        memset(memo, 0, sizeof(int) * n);
        int m = subst(&S, b, 0);
        memset(seen, 0, n);
        if (m < 0 || m == b || !in_value(k, k->value, m, seen)) continue;
        ph->stash_main = m;
        chosen = p;
    }
    for (int p = 0; p < k->nphases; p++)
        if (p != chosen) k->phases[p].stash_at = k->phases[p].stash_main = -1;
done:
    free(dm);
    free(dp);
    free(memo);
    free(seen);
}

/* ---- splitting across threads ------------------------------------------------------------ */

/* The first allowed axis long enough to split well, else the longest. */
static int pick_axis(const KernelPlan *k, uint32_t allowed) {
    int best = -1;
    for (int a = 0; a < k->rank; a++) {
        if (!(allowed >> a & 1) || k->dims[a] < 2) continue;
        if (k->dims[a] >= 16) return a;
        if (best < 0 || k->dims[a] > k->dims[best]) best = a;
    }
    return best;
}

/* Rough cost per point: loads and arithmetic 1, transcendental functions
 * ~8, a Philox block and Box-Muller ~24. Only the ratio to the runner's
 * threshold matters. */
static double point_cost(const KernelPlan *k) {
    double c = 0;
    for (int i = 0; i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        switch (in->kind) {
        case KI_LOAD:
            c += 1;
            break;
        case KI_RNG:
            c += 24;
            break;
        case KI_FRESH_SEED:
            c += 8;
            break;
        case KI_REDUCE:
            c += 1;
            break;
        case KI_OP:
            switch (in->op) {
            case OP_EXP:
            case OP_LOG:
            case OP_SIN:
            case OP_COS:
            case OP_POW:
            case OP_SQRT:
                c += 8;
                break;
            case OP_ERF:
                c += 24;
                break;
            IR_CASES_LEAF:
            case OP_NEG:
            case OP_ABS:
            case OP_SIGN:
            case OP_FLOOR:
            case OP_NOT:
            case OP_CAST:
            case OP_STOP_GRAD:
            case OP_ADD:
            case OP_SUB:
            case OP_MUL:
            case OP_DIV:
            case OP_MOD:
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
                c += in->dt == DT_I64 ? 0.25 : 1;
                break;
            }
            break;
        case KI_CONST:
        case KI_LOOP:
            break;
        }
    }
    return c < 1 ? 1 : c;
}

/* The main axes every outermost row phase depends on (all of them when
 * there is no phase): a split along one of them gives each task whole rows,
 * so a row is reduced once and by the task that writes it. */
static uint32_t phase_axes(const KernelPlan *k) {
    uint32_t all = k->rank ? (uint32_t)((1ull << k->rank) - 1) : 0;
    if (!k->nphases) return all;
    uint32_t *m = malloc(sizeof(uint32_t) * (size_t)k->nins);
    uint64_t *ph = malloc(sizeof(uint64_t) * (size_t)k->nins);
    if (!m || !ph) {
        free(m);
        free(ph);
        return 0;
    }
    cg_kernel_deps(k, m, ph);
    for (int i = 0; i < k->nphases; i++) {
        int in = k->phases[i].ins;
        if (!ph[in]) all &= m[in];
    }
    free(m);
    free(ph);
    return all;
}

/* Fills par_axis, par_n and work (kernel.h): maps split any axis, reductions
 * a kept axis (each output element stays with one task), scatters never;
 * matmuls the longer of C's rows and columns (the other operand is then the
 * one each task packs in full, the smaller one). With row phases, only an
 * axis of phase_axes. */
static void plan_parallel(KernelPlan *k) {
    k->par_axis = -1;
    k->par_n = 1;
    k->inplace_buf = -1;
    int64_t points = 1;
    bool empty = false;
    for (int a = 0; a < k->rank; a++) {
        points *= k->dims[a];
        empty = empty || k->dims[a] == 0;
    }
    switch (k->kind) {
    case KP_MAP:
        k->work = (double)points * point_cost(k);
        if (!empty) k->par_axis = pick_axis(k, phase_axes(k));
        break;
    case KP_REDUCE:
        k->work = (double)points * point_cost(k);
        if (!empty) k->par_axis = pick_axis(k, phase_axes(k) & ~k->red_axes);
        break;
    case KP_SCATTER:
        k->work = (double)points * point_cost(k);
        break;
    case KP_ORDER: /* a sort: about n log n compares per row; components: one task */
        k->work = (double)points * (k->red_op == OP_ARGSORT ? 4 + log2((double)k->dims[1] + 1) : 2);
        if (!empty && k->red_op != OP_COMPONENTS && k->dims[0] > 1) k->par_axis = 0;
        break;
    case KP_CALL: /* O(n^3) per matrix; one task (LAPACK threads on its own) */
        k->work = (double)k->call.batch * (double)k->call.n * (double)k->call.n *
                  (double)(k->call.m > k->call.k ? k->call.m : k->call.k);
        k->par_axis = -1;
        k->par_n = 1;
        return;
    case KP_MATMUL: {
        const KMatmul *m = &k->mm;
        double batch = 1;
        for (int i = 0; i < m->batch_rank; i++)
            batch *= (double)m->batch_dims[i];
        k->work = batch * (double)m->M * (double)m->N * (double)m->K / 8;
        if (m->K > 0 && k->out_numel > 0 && (m->M > 1 || m->N > 1)) {
            k->par_axis = m->M >= m->N ? 0 : 1;
            k->par_n = m->M >= m->N ? m->M : m->N;
        }
        return;
    }
    }
    if (k->par_axis >= 0) k->par_n = k->dims[k->par_axis];
}

static bool computable(DType t) {
    return t == DT_F32 || t == DT_F64 || t == DT_I32 || t == DT_I64 || t == DT_BOOL;
}

static const char *type_str(const Node *n, char *buf, size_t len) {
    char sh[80];
    snprintf(buf, len, "%s%s", rt_dtype_name(n->dtype), rt_shape_str(&n->shape, sh, sizeof sh));
    return buf;
}

KernelProgram *cg_schedule(const Graph *g, const FusionPlan *fp, Arena *a, char *why, size_t whyn) {
    snprintf(why, whyn, "out of memory");
    KernelProgram *p = arena_alloc(a, sizeof *p);
    if (!p) return NULL;
    p->graph = g;
    p->fusion = fp;
    size_t cnt = g->nnodes ? g->nnodes : 1;
    p->buf_of = arena_alloc(a, sizeof(int) * cnt);
    p->bufs = arena_alloc(a, sizeof(KBuffer) * (size_t)(g->ninputs + fp->ngroups + 1));
    p->kernels = arena_alloc(a, sizeof(KernelPlan) * (size_t)(fp->ngroups ? fp->ngroups : 1));
    p->out_bufs = arena_alloc(a, sizeof(int) * (size_t)(g->noutputs ? g->noutputs : 1));
    if (!p->buf_of || !p->bufs || !p->kernels || !p->out_bufs) return NULL;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        p->buf_of[i] = -1;
        const Node *n = g->nodes[i];
        if (fp->role[i] != FN_DEAD && !computable(n->dtype)) {
            char b[96];
            snprintf(why, whyn, "no %s arithmetic (%%%u: %s %s)", rt_dtype_name(n->dtype), n->id,
                     ir_op_name(n->op), type_str(n, b, sizeof b));
            return NULL;
        }
    }
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        p->buf_of[n->id] = p->nbufs;
        p->bufs[p->nbufs++] = (KBuffer){n, n->dtype, n->shape, KB_INPUT, i};
    }
    for (int i = 0; i < fp->ngroups; i++) {
        const Node *n = fp->groups[i].root;
        p->buf_of[n->id] = p->nbufs;
        p->bufs[p->nbufs++] = (KBuffer){n, n->dtype, n->shape, KB_TEMP, -1};
    }
    for (int j = 0; j < g->noutputs; j++) {
        int b = p->buf_of[g->outputs[j]->id];
        p->out_bufs[j] = b;
        if (b >= 0 && p->bufs[b].kind == KB_TEMP) p->bufs[b].kind = KB_OUTPUT;
    }
    Sched s = {.a = a, .fp = fp, .prog = p};
    bool ok = true;
    for (int i = 0; ok && i < fp->ngroups; i++) {
        const FusionGroup *gr = &fp->groups[i];
        KernelPlan *k = &p->kernels[p->nkernels++];
        memset(k, 0, sizeof *k);
        k->id = gr->id;
        k->group = gr;
        k->out_buf = p->buf_of[gr->root->id];
        k->out_dt = gr->root->dtype;
        k->out_numel = rt_shape_numel(&gr->root->shape);
        s.root = gr->root;
        reset(&s);
        switch (gr->kind) {
        case FG_MAP:
        case FG_COPY:
            plan_map(&s, k);
            break;
        case FG_REDUCE:
            plan_reduce(&s, k);
            break;
        case FG_SCATTER:
            plan_scatter(&s, k);
            break;
        case FG_ORDER:
            plan_order(&s, k);
            break;
        case FG_CALL:
            if (!plan_call(&s, k)) { /* the fusion pass materialises every operand */
                snprintf(why, whyn, "%s %%%u: an operand is not in memory",
                         ir_op_name(gr->root->op), gr->root->id);
                ok = false;
            }
            break;
        case FG_MATMUL:
            if (!plan_matmul(&s, k, gr->matmul)) {
                snprintf(why, whyn, "matmul %%%u: operands are not BLAS views", gr->root->id);
                ok = false;
            }
            break;
        }
        ok = ok && finish(&s, k);
        if (!ok && s.fail) snprintf(why, whyn, "%%%u: %s", gr->root->id, s.fail);
        if (ok) plan_stash(k);
        if (ok) plan_parallel(k);
    }
    free(s.ins);
    free(s.memo);
    free(s.checks);
    free(s.phases);
    return ok ? p : NULL;
}

/* ---- printing
 * ------------------------------------------------------------------------------------ */

static void print_ins(const KernelPlan *k, int i, FILE *out) {
    const KInstr *in = &k->ins[i];
    fprintf(out, "    i%d = ", i);
    switch (in->kind) {
    case KI_LOOP:
        fprintf(out, "loop %d", in->axis);
        break;
    case KI_CONST:
        if (in->dt == DT_F32 || in->dt == DT_F64)
            fprintf(out, "const %s %.17g", rt_dtype_name(in->dt), in->c.f);
        else
            fprintf(out, "const %s %lld", rt_dtype_name(in->dt), (long long)in->c.i);
        break;
    case KI_LOAD:
        fprintf(out, "load %s b%d[i%d]", rt_dtype_name(in->dt), in->buf, in->src[0]);
        break;
    case KI_OP:
        fprintf(out, "%s %s", ir_op_name(in->op), rt_dtype_name(in->dt));
        for (int j = 0; j < in->nsrc; j++)
            fprintf(out, "%s i%d", j ? "," : "", in->src[j]);
        break;
    case KI_RNG:
        fprintf(out, "%s %s seed=i%d index=i%d stream=0x%08x", ir_op_name(in->op),
                rt_dtype_name(in->dt), in->src[0], in->src[1], in->stream);
        break;
    case KI_FRESH_SEED:
        fprintf(out, "fresh_seed i%d, i%d k=%u", in->src[0], in->src[1], in->stream);
        break;
    case KI_REDUCE: {
        const KPhase *ph = &k->phases[in->axis];
        fprintf(out, "%s %s i%d over loops %d..%d [", ir_op_name(in->op), rt_dtype_name(in->dt),
                in->src[0], ph->first_axis, ph->first_axis + ph->rank - 1);
        for (int d = 0; d < ph->rank; d++)
            fprintf(out, d ? ",%lld" : "%lld", (long long)ph->dims[d]);
        fputc(']', out);
        if (ph->stash_main >= 0) fprintf(out, " kept at i%d for i%d", ph->stash_at, ph->stash_main);
        break;
    }
    }
    fputc('\n', out);
}

void cg_program_print(const KernelProgram *p, FILE *out) {
    for (int b = 0; b < p->nbufs; b++) {
        const KBuffer *kb = &p->bufs[b];
        char sh[80];
        fprintf(out, "buffer b%d %s%s %s %%%u\n", b, rt_dtype_name(kb->dt),
                rt_shape_str(&kb->shape, sh, sizeof sh),
                kb->kind == KB_INPUT    ? "input"
                : kb->kind == KB_OUTPUT ? "output"
                                        : "temp",
                kb->node->id);
    }
    static const char *kinds[] = {"map", "reduce", "matmul", "scatter", "order", "call"};
    for (int i = 0; i < p->nkernels; i++) {
        const KernelPlan *k = &p->kernels[i];
        fprintf(out, "kernel k%d %s -> b%d loops [", k->id, kinds[k->kind], k->out_buf);
        for (int d = 0; d < k->rank; d++)
            fprintf(out, d ? ",%lld" : "%lld", (long long)k->dims[d]);
        fputc(']', out);
        if (k->kind == KP_REDUCE || k->kind == KP_ORDER)
            fprintf(out, " %s %s=0x%x", ir_op_name(k->red_op),
                    k->kind == KP_ORDER ? "flag" : "axes", k->red_axes);
        if (k->kind == KP_CALL) {
            fprintf(out, " %s b%d", ir_op_name(k->group->root->op), k->call.a_buf);
            if (k->call.b_buf >= 0) fprintf(out, " b%d", k->call.b_buf);
            fprintf(out, " batch=%lld m=%lld n=%lld k=%lld", (long long)k->call.batch,
                    (long long)k->call.m, (long long)k->call.n, (long long)k->call.k);
        }
        if (k->kind == KP_MATMUL) {
            const KMatmul *m = &k->mm;
            fprintf(out, " b%d%s @ b%d%s M=%lld N=%lld K=%lld batch=%d", m->a_buf,
                    m->trans_a ? "^T" : "", m->b_buf, m->trans_b ? "^T" : "", (long long)m->M,
                    (long long)m->N, (long long)m->K, m->batch_rank);
            if (m->accumulate) fprintf(out, " alpha=%g onto i%d", m->alpha, k->value);
            fputc('\n', out);
            if (!m->accumulate) continue;
            for (int j = 0; j < k->nins; j++)
                print_ins(k, j, out);
            fprintf(out, "    start value i%d at i%d\n", k->value, k->out_index);
            continue;
        }
        fputc('\n', out);
        for (int j = 0; j < k->nins; j++)
            print_ins(k, j, out);
        fprintf(out, "    value i%d at i%d", k->value, k->out_index);
        for (int j = 0; j < k->nchecks; j++)
            fprintf(out, "%s i%d", j ? "," : " checks", k->checks[j]);
        fputc('\n', out);
    }
}
