/* The builtin functions: one table row each (name, arity, keywords, flags,
 * handler), shared by sema.c (arity and keyword checks before tracing) and
 * the lowering (lw_builtin_call).
 *
 * Handlers receive evaluated arguments and build nodes in the current graph
 * through the IR builders and composites. Math on constants folds at compile
 * time (sqrt(d) with d from config is a float); unary math, zeros_like and
 * randn_like map over trees; dot and norm reduce over every leaf. Random
 * tensors follow docs/rng.md: the run seed unless `seed =` is given; the
 * stream from the draw's kind and `stream =` when it names a seed or a stream
 * (draw_stream), else from the call's source location, and for parameter
 * initialisers from the parameter's path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../passes/autodiff.h"
#include "../runtime/rng.h"
#include "lower_internal.h"

static Graph *G(Lower *L) {
    return L->gc ? L->gc->g : NULL;
}

/* ---- small helpers ------------------------------------------------------------------- */

static bool is_float_dt(DType t) {
    return t == DT_F32 || t == DT_F64;
}

static Value *need_graph(Lower *L, BuiltinCall *c) {
    if (!G(L))
        return lw_error(L, c->loc, "%s() needs a tensor context (not allowed in config)", c->name);
    return NULL;
}

static Node *pos_node(Lower *L, BuiltinCall *c, int i, DType hint) {
    return lw_need_node(L, c->pos[i], hint, c->pos_loc[i],
                        lw_printf(L, "%s: argument %d", c->name, i + 1));
}

static bool opt_dtype(Lower *L, BuiltinCall *c, int kwi, DType *dt) {
    Value *v = c->kw[kwi];
    if (!v) return true;
    if (v->kind != V_STR || !rt_dtype_from_name(v->u.s, dt) || *dt == DT_F16 || *dt == DT_BF16) {
        lw_error(L, c->kw_loc[kwi],
                 "%s: dtype must be one of \"f32\", \"f64\", \"i32\", \"i64\", \"bool\"", c->name);
        return false;
    }
    return true;
}

static const char *tstr(Lower *L, const Node *n) {
    char buf[160];
    return lw_printf(L, "%s", fe_type_str(n->dtype, &n->shape, buf, sizeof buf));
}

/* The position of a call as rng.md names it: "name.dfl:line:col", with the
 * file's base name so that the numbers do not depend on how the path was typed. */
static const char *loc_name(Lower *L, SrcLoc loc) {
    const SourceFile *f = source_get(L->src, loc.file);
    const char *path = f ? f->path : "";
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return lw_printf(L, "%s:%u:%u", base, loc.line, loc.col);
}

/* The stream of a random draw (docs/rng.md, "Streams"). A draw that names its
 * seed or its stream is a key, as in JAX: its stream is the FNV-1a hash of
 * "kind:stream" (stream = 0 unless given), so the same kind, seed and stream
 * give the same numbers wherever the call stands, and two kinds drawn from one
 * seed (randn and sample) are different streams. Only a draw that names
 * neither takes its stream from its position. A leaf of a tree (randn_like of
 * a parameter tree) appends ":" and its path, so leaves differ. */
static uint32_t draw_stream(Lower *L, BuiltinCall *c, const char *kind, bool named, uint32_t stream,
                            const char *path) {
    const char *base = named ? lw_printf(L, "%s:%u", kind, stream) : loc_name(L, c->loc);
    return rt_fnv1a32(path ? lw_printf(L, "%s:%s", base, path) : base);
}

/* Shape from varargs positional ints or a single list/int; in a param
 * initialiser with no shape, the param's. */
static bool shape_args(Lower *L, BuiltinCall *c, int first, int count, Shape *out) {
    memset(out, 0, sizeof *out);
    if (count == 0) {
        if (L->pinit) *out = L->pinit->shape;
        return true;
    }
    if (count == 1) return lw_shape_from(L, c->pos[first], out, c->pos_loc[first], c->name);
    if (count > IR_MAX_RANK) {
        lw_error(L, c->loc, "%s: rank %d is more than the maximum %d", c->name, count, IR_MAX_RANK);
        return false;
    }
    out->rank = count;
    for (int i = 0; i < count; i++)
        if (!lw_const_int(L, c->pos[first + i], &out->dims[i], c->pos_loc[first + i],
                          lw_printf(L, "%s: a dimension", c->name)))
            return false;
    return lw_check_numel(L, out, c->loc, c->name);
}

/* Axes from an int or a list of ints (negative count from the end). */
static bool axes_of(Lower *L, Value *v, SrcLoc loc, int rank, uint32_t *mask, const char *fname) {
    *mask = 0;
    Value *one[1];
    Value **items = one;
    int n = 1;
    if (v->kind == V_LIST) {
        items = v->u.tree.items;
        n = v->u.tree.n;
    } else {
        one[0] = v;
    }
    for (int i = 0; i < n; i++) {
        int64_t a;
        if (!lw_const_int(L, items[i], &a, loc, lw_printf(L, "%s: axis", fname))) return false;
        int64_t ax = a < 0 ? a + rank : a;
        if (ax < 0 || ax >= rank) {
            lw_error(L, loc, "%s: axis %lld is out of range for rank %d", fname, (long long)a,
                     rank);
            return false;
        }
        *mask |= 1u << ax;
    }
    return true;
}

static Node *reduced_keepdims(Lower *L, Node *r, const Shape *in, uint32_t mask, SrcLoc loc) {
    if (!r) return NULL;
    Shape s = *in;
    for (int i = 0; i < s.rank; i++)
        if (mask & (1u << i)) s.dims[i] = 1;
    return ir_reshape(G(L), r, s, loc);
}

static uint32_t all_axes(int rank) {
    return rank >= 32 ? 0xffffffffu : ((1u << rank) - 1);
}

/* ---- random -------------------------------------------------------------------------- */

Value *lw_rng_tensor(Lower *L, OpKind op, DType dt, Shape s, Value *seed, Value *offset,
                     uint32_t stream, SrcLoc loc) {
    Graph *g = G(L);
    if (!g) return lw_err(L);
    if (!lw_check_numel(L, &s, loc, op == OP_RNG_NORMAL ? "randn" : "rand")) return lw_err(L);
    if (!seed) seed = val_slot(L->a, L->m->seed_slot);
    Node *sn = lw_need_node(L, seed, DT_I64, loc, "seed");
    Node *on =
        offset ? lw_need_node(L, offset, DT_I64, loc, "offset") : ir_scalar(g, DT_I64, 0, loc);
    if (!sn || !on) return lw_err(L);
    if (sn->shape.rank != 0 || !(sn->dtype == DT_I32 || sn->dtype == DT_I64))
        return lw_error(L, loc, "seed must be an integer scalar, got %s", tstr(L, sn));
    Node *r = ir_rng(g, op, is_float_dt(dt) ? dt : DT_F32, s, sn, on, stream, loc);
    if (r && !is_float_dt(dt)) r = ir_cast(g, r, dt, loc);
    return lw_tensor(L, r);
}

static bool stream_kw(Lower *L, BuiltinCall *c, int kwi, uint32_t *stream) {
    if (!c->kw[kwi]) return true;
    int64_t k;
    if (!lw_const_int(L, c->kw[kwi], &k, c->kw_loc[kwi], lw_printf(L, "%s: stream", c->name)))
        return false;
    *stream = (uint32_t)k;
    return true;
}

/* ---- constructors -------------------------------------------------------------------- */

static Value *make_filled(Lower *L, BuiltinCall *c, double v) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Shape s;
    DType dt = L->pinit && c->npos == 0 ? L->pinit->dt : DT_F32;
    if (!opt_dtype(L, c, 0, &dt) || !shape_args(L, c, 0, c->npos, &s)) return lw_err(L);
    return lw_tensor(L, ir_const(G(L), dt, s, v, c->loc));
}

static Value *bi_zeros(Lower *L, BuiltinCall *c) {
    return make_filled(L, c, 0.0);
}
static Value *bi_ones(Lower *L, BuiltinCall *c) {
    return make_filled(L, c, 1.0);
}

static Value *bi_full(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Shape s;
    DType dt = DT_F32;
    if (!opt_dtype(L, c, 0, &dt) || !shape_args(L, c, 0, 1, &s)) return lw_err(L);
    Value *fv = c->pos[1];
    if (val_is_const(fv)) {
        if (!c->kw[0] && fv->kind == V_INT) dt = DT_F32;
        if (!c->kw[0] && fv->kind == V_BOOL) dt = DT_BOOL;
        if (fv->cfg) /* a config fill value is read from its slot */
            return lw_tensor(L,
                             ir_broadcast(G(L), lw_cfg_node(L, fv, dt, c->pos_loc[1]), s, c->loc));
        return lw_tensor(L, lw_const_node(G(L), dt, s, fv, c->loc));
    }
    Node *n = pos_node(L, c, 1, dt);
    if (!n) return lw_err(L);
    if (n->shape.rank != 0)
        return lw_error(L, c->pos_loc[1], "full: the fill value must be a scalar, got %s",
                        tstr(L, n));
    return lw_tensor(
        L, ir_broadcast(G(L), ir_cast(G(L), n, c->kw[0] ? dt : n->dtype, c->loc), s, c->loc));
}

static Value *bi_eye(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int64_t n, m;
    DType dt = DT_F32;
    if (!opt_dtype(L, c, 0, &dt)) return lw_err(L);
    if (!lw_const_int(L, c->pos[0], &n, c->pos_loc[0], "eye: n")) return lw_err(L);
    m = n;
    if (c->npos > 1 && !lw_const_int(L, c->pos[1], &m, c->pos_loc[1], "eye: m")) return lw_err(L);
    Shape s = {.rank = 2, .dims = {n, m}};
    if (!lw_check_numel(L, &s, c->loc, "eye")) return lw_err(L);
    Graph *g = G(L);
    Node *r = ir_iota(g, DT_I32, s, 0, c->loc), *k = ir_iota(g, DT_I32, s, 1, c->loc);
    return lw_tensor(L, ir_cast(g, ir_binary(g, OP_EQ, r, k, c->loc), dt, c->loc));
}

static Value *bi_iota(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    DType dt = DT_I32;
    Shape s;
    if (!opt_dtype(L, c, 0, &dt) || !shape_args(L, c, 0, 1, &s)) return lw_err(L);
    if (s.rank != 1) return lw_error(L, c->loc, "iota: expected a length n, giving 0..n-1");
    return lw_tensor(L, ir_iota(G(L), dt, s, 0, c->loc));
}

/* tensor(x, dtype =): a tensor literal (a nested list of numbers) or a number
 * as a tensor, where the list would otherwise stay a list (x.shape, log). */
static Value *bi_tensor(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    DType dt = DT_COUNT;
    if (!opt_dtype(L, c, 0, &dt)) return lw_err(L);
    Value *v = c->pos[0];
    if (v->kind == V_LIST && !lw_is_numeric_list(v))
        return lw_error(L, c->pos_loc[0],
                        "tensor: expected numbers or nested lists of numbers, got %s",
                        v->u.tree.n ? "a list holding other values" : "an empty list");
    Node *n = lw_need_node(L, v, dt, c->pos_loc[0], "tensor");
    if (!n) return lw_err(L);
    return lw_tensor(L, dt == DT_COUNT ? n : ir_cast(G(L), n, dt, c->loc));
}

/* A constant with the type of each leaf of v: reads only types, so the
 * tensor it mimics is not an input of the graph. */
static Value *like_rec(Lower *L, Value *v, double fill, DType dt, SrcLoc loc) {
    if (val_is_error(v)) return lw_err(L);
    if (v->kind == V_TREE || v->kind == V_LIST) {
        Value **items =
            arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return lw_err(L);
        for (int i = 0; i < v->u.tree.n; i++) {
            items[i] = like_rec(L, v->u.tree.items[i], fill, dt, loc);
            if (val_is_error(items[i])) return lw_err(L);
        }
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    if (v->kind == V_LOSS) v = lw_loss_value(L, loc);
    DType t;
    Shape s;
    if (!lw_type(L, v, &t, &s))
        return lw_error(L, loc, "expected a tensor or a tree, got %s", lw_value_desc(L, v));
    if (val_is_const(v)) t = v->kind == V_FLOAT ? DT_F32 : v->kind == V_BOOL ? DT_BOOL : DT_I64;
    return lw_tensor(L, ir_const(G(L), dt == DT_COUNT ? t : dt, s, fill, loc));
}

Value *lw_zeros_like(Lower *L, Value *v, double fill, SrcLoc loc) {
    return like_rec(L, v, fill, DT_COUNT, loc);
}

static Value *like(Lower *L, BuiltinCall *c, double fill) {
    Value *e = need_graph(L, c);
    if (e) return e;
    DType dt = DT_COUNT;
    if (c->kw[0] && !opt_dtype(L, c, 0, &dt)) return lw_err(L);
    return like_rec(L, c->pos[0], fill, dt, c->loc);
}

static Value *bi_zeros_like(Lower *L, BuiltinCall *c) {
    return like(L, c, 0.0);
}
static Value *bi_ones_like(Lower *L, BuiltinCall *c) {
    return like(L, c, 1.0);
}

static Value *bi_full_like(Lower *L, BuiltinCall *c) {
    double f;
    if (!lw_const_num(L, c->pos[1], &f, c->pos_loc[1], "full_like: value")) return lw_err(L);
    return like(L, c, f);
}

/* randn(shape..., seed =, stream =, dtype =) */
static Value *rand_shape(Lower *L, BuiltinCall *c, OpKind op) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Shape s;
    DType dt = L->pinit && c->npos == 0 ? L->pinit->dt : DT_F32;
    uint32_t stream = 0;
    if (!opt_dtype(L, c, 2, &dt) || !shape_args(L, c, 0, c->npos, &s) ||
        !stream_kw(L, c, 1, &stream))
        return lw_err(L);
    bool named = c->kw[0] || c->kw[1];
    uint32_t st = draw_stream(L, c, op == OP_RNG_NORMAL ? "randn" : "rand", named, stream, NULL);
    return lw_rng_tensor(L, op, dt, s, c->kw[0], NULL, st, c->loc);
}

static Value *bi_randn(Lower *L, BuiltinCall *c) {
    return rand_shape(L, c, OP_RNG_NORMAL);
}
static Value *bi_rand(Lower *L, BuiltinCall *c) {
    return rand_shape(L, c, OP_RNG_UNIFORM);
}

/* randn_like(t, seed =, stream =): the kind of randn (randn_like(x, seed = 3)
 * is randn of x's shape with seed 3); each leaf of a tree appends its path to
 * the stream's name. */
static Value *rand_like_rec(Lower *L, BuiltinCall *c, Value *v, const char *path, OpKind op,
                            bool named, uint32_t stream) {
    if (val_is_error(v)) return lw_err(L);
    if (v->kind == V_TREE || v->kind == V_LIST) {
        Value **items =
            arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return lw_err(L);
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? v->u.tree.names[i] : lw_printf(L, "%d", i);
            items[i] =
                rand_like_rec(L, c, v->u.tree.items[i], path ? lw_printf(L, "%s.%s", path, nm) : nm,
                              op, named, stream);
            if (val_is_error(items[i])) return lw_err(L);
        }
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    DType dt;
    Shape s;
    if (v->kind == V_LOSS) v = lw_loss_value(L, c->loc);
    if (!lw_type(L, v, &dt, &s))
        return lw_error(L, c->pos_loc[0], "%s: expected a tensor or a tree, got %s", c->name,
                        lw_value_desc(L, v));
    uint32_t st = draw_stream(L, c, op == OP_RNG_NORMAL ? "randn" : "rand", named, stream, path);
    return lw_rng_tensor(L, op, is_float_dt(dt) ? dt : DT_F32, s, c->kw[0], NULL, st, c->loc);
}

static Value *rand_like(Lower *L, BuiltinCall *c, OpKind op) {
    Value *e = need_graph(L, c);
    if (e) return e;
    uint32_t stream = 0;
    if (!stream_kw(L, c, 1, &stream)) return lw_err(L);
    return rand_like_rec(L, c, c->pos[0], NULL, op, c->kw[0] || c->kw[1], stream);
}

static Value *bi_randn_like(Lower *L, BuiltinCall *c) {
    return rand_like(L, c, OP_RNG_NORMAL);
}
static Value *bi_rand_like(Lower *L, BuiltinCall *c) {
    return rand_like(L, c, OP_RNG_UNIFORM);
}

/* ---- parameter initialisers ---------------------------------------------------------- */

static bool fans(const Shape *s, double *fan_in, double *fan_out) {
    if (s->rank == 0) {
        *fan_in = *fan_out = 1;
    } else if (s->rank == 1) {
        *fan_in = *fan_out = (double)s->dims[0];
    } else if (s->rank == 2) {
        *fan_in = (double)s->dims[0];
        *fan_out = (double)s->dims[1];
    } else {
        double rf = 1;
        for (int i = 2; i < s->rank; i++)
            rf *= (double)s->dims[i];
        *fan_in = (double)s->dims[1] * rf;
        *fan_out = (double)s->dims[0] * rf;
    }
    return true;
}

static Value *init_rng(Lower *L, BuiltinCall *c, OpKind op, double scale, double shift) {
    ParamInit *p = L->pinit;
    Value *r = lw_rng_tensor(L, op, p->dt, p->shape, NULL, NULL, rt_fnv1a32(p->path), c->loc);
    if (val_is_error(r)) return r;
    Node *n = r->u.t.node;
    Graph *g = G(L);
    if (scale != 1.0) n = ir_binary(g, OP_MUL, n, ir_scalar(g, n->dtype, scale, c->loc), c->loc);
    if (shift != 0.0) n = ir_binary(g, OP_ADD, n, ir_scalar(g, n->dtype, shift, c->loc), c->loc);
    return lw_tensor(L, n);
}

static Value *bi_glorot_uniform(Lower *L, BuiltinCall *c) {
    double fi, fo, gain = 1.0;
    if (c->kw[0] && !lw_const_num(L, c->kw[0], &gain, c->kw_loc[0], "glorot_uniform: gain"))
        return lw_err(L);
    fans(&L->pinit->shape, &fi, &fo);
    double a = gain * sqrt(6.0 / (fi + fo > 0 ? fi + fo : 1));
    return init_rng(L, c, OP_RNG_UNIFORM, 2 * a, -a);
}

static Value *bi_he_normal(Lower *L, BuiltinCall *c) {
    double fi, fo;
    fans(&L->pinit->shape, &fi, &fo);
    return init_rng(L, c, OP_RNG_NORMAL, sqrt(2.0 / (fi > 0 ? fi : 1)), 0.0);
}

static Value *bi_normal(Lower *L, BuiltinCall *c) {
    double sd = 1.0, mu = 0.0;
    if (c->kw[0] && !lw_const_num(L, c->kw[0], &sd, c->kw_loc[0], "normal: std")) return lw_err(L);
    if (c->kw[1] && !lw_const_num(L, c->kw[1], &mu, c->kw_loc[1], "normal: mean")) return lw_err(L);
    return init_rng(L, c, OP_RNG_NORMAL, sd, mu);
}

static Value *bi_uniform(Lower *L, BuiltinCall *c) {
    double lo = 0.0, hi = 1.0;
    if (c->npos > 0 && !lw_const_num(L, c->pos[0], &lo, c->pos_loc[0], "uniform: lo"))
        return lw_err(L);
    if (c->npos > 1 && !lw_const_num(L, c->pos[1], &hi, c->pos_loc[1], "uniform: hi"))
        return lw_err(L);
    if (c->npos == 1) {
        hi = lo;
        lo = -hi;
    }
    return init_rng(L, c, OP_RNG_UNIFORM, hi - lo, lo);
}

/* ---- elementwise math ---------------------------------------------------------------- */

typedef enum {
    M_EXP,
    M_LOG,
    M_SQRT,
    M_ABS,
    M_SIGN,
    M_FLOOR,
    M_TANH,
    M_SIGMOID,
    M_RELU,
    M_GELU,
    M_GELU_TANH,
    M_ERF,
    M_SIN,
    M_COS,
    M_STOP
} MathFn;

static Node *math_node(Lower *L, Node *n, void *ctx, SrcLoc loc) {
    MathFn f = *(MathFn *)ctx;
    Graph *g = G(L);
    bool needs_float = f != M_ABS && f != M_SIGN && f != M_RELU && f != M_STOP;
    if (needs_float && !is_float_dt(n->dtype)) n = ir_cast(g, n, DT_F32, loc);
    switch (f) {
    case M_EXP:
        return ir_unary(g, OP_EXP, n, loc);
    case M_LOG:
        return ir_unary(g, OP_LOG, n, loc);
    case M_SQRT:
        return ir_unary(g, OP_SQRT, n, loc);
    case M_ABS:
        return ir_unary(g, OP_ABS, n, loc);
    case M_SIGN:
        return ir_unary(g, OP_SIGN, n, loc);
    case M_FLOOR:
        return ir_unary(g, OP_FLOOR, n, loc);
    case M_TANH:
        return ir_tanh(g, n, loc);
    case M_SIGMOID:
        return ir_sigmoid(g, n, loc);
    case M_RELU:
        return ir_relu(g, n, loc);
    case M_GELU:
        return ir_gelu(g, n, false, loc);
    case M_GELU_TANH:
        return ir_gelu(g, n, true, loc);
    case M_ERF:
        return ir_unary(g, OP_ERF, n, loc);
    case M_SIN:
        return ir_unary(g, OP_SIN, n, loc);
    case M_COS:
        return ir_unary(g, OP_COS, n, loc);
    case M_STOP:
        return ir_unary(g, OP_STOP_GRAD, n, loc);
    }
    return NULL;
}

static Value *math_fold(Lower *L, MathFn f, Value *v, SrcLoc loc, const char *name) {
    if (f != M_STOP) lw_cfg_bake(L, v, loc);
    double x = val_num(v);
    bool isint = v->kind == V_INT || v->kind == V_BOOL;
    switch (f) {
    case M_EXP:
        return val_float(L->a, exp(x));
    case M_LOG:
        if (x <= 0) return lw_error(L, loc, "%s of %g is not a real number", name, x);
        return val_float(L->a, log(x));
    case M_SQRT:
        if (x < 0) return lw_error(L, loc, "%s of %g is not a real number", name, x);
        return val_float(L->a, sqrt(x));
    case M_ABS:
        return isint ? val_int(L->a, (int64_t)fabs(x)) : val_float(L->a, fabs(x));
    case M_SIGN:
        return isint ? val_int(L->a, (x > 0) - (x < 0))
                     : val_float(L->a, (double)((x > 0) - (x < 0)));
    case M_FLOOR:
        return isint ? v : val_float(L->a, floor(x));
    case M_TANH:
        return val_float(L->a, tanh(x));
    case M_SIGMOID:
        return val_float(L->a, 1.0 / (1.0 + exp(-x)));
    case M_RELU:
        return isint ? val_int(L->a, x > 0 ? (int64_t)x : 0) : val_float(L->a, x > 0 ? x : 0);
    case M_GELU:
        return val_float(L->a, 0.5 * x * (1 + erf(x * 0.7071067811865476)));
    case M_GELU_TANH:
        return val_float(L->a,
                         0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
    case M_ERF:
        return val_float(L->a, erf(x));
    case M_SIN:
        return val_float(L->a, sin(x));
    case M_COS:
        return val_float(L->a, cos(x));
    case M_STOP:
        return v;
    }
    return v;
}

static Value *math(Lower *L, BuiltinCall *c, MathFn f) {
    Value *v = c->pos[0];
    if (val_is_const(v)) return math_fold(L, f, v, c->pos_loc[0], c->name);
    Value *e = need_graph(L, c);
    if (e) return e;
    return lw_map1(L, v, math_node, &f, c->loc);
}

#define MATH_BUILTIN(fname, id)                                                                    \
    static Value *bi_##fname(Lower *L, BuiltinCall *c) {                                           \
        return math(L, c, id);                                                                     \
    }
MATH_BUILTIN(exp, M_EXP)
MATH_BUILTIN(log, M_LOG)
MATH_BUILTIN(sqrt, M_SQRT)
MATH_BUILTIN(abs, M_ABS)
MATH_BUILTIN(sign, M_SIGN)
MATH_BUILTIN(floor, M_FLOOR)
MATH_BUILTIN(tanh, M_TANH)
MATH_BUILTIN(sigmoid, M_SIGMOID)
MATH_BUILTIN(relu, M_RELU)
MATH_BUILTIN(erf, M_ERF)

/* gelu(x, approximate = "none" | "tanh"), PyTorch's spelling: the exact
   x Phi(x) by default, the tanh approximation on request. */
static Value *bi_gelu(Lower *L, BuiltinCall *c) {
    Value *k = c->kw[0];
    bool tanh_form = false;
    if (k && k->kind != V_NONE) {
        if (k->kind != V_STR || (strcmp(k->u.s, "none") != 0 && strcmp(k->u.s, "tanh") != 0))
            return lw_error(L, c->kw_loc[0],
                            "gelu: approximate must be \"none\" or \"tanh\", got %s",
                            lw_value_desc(L, k));
        tanh_form = strcmp(k->u.s, "tanh") == 0;
    }
    return math(L, c, tanh_form ? M_GELU_TANH : M_GELU);
}
MATH_BUILTIN(sin, M_SIN)
MATH_BUILTIN(cos, M_COS)
MATH_BUILTIN(stop_grad, M_STOP)

static Value *bi_pow(Lower *L, BuiltinCall *c) {
    return lw_binop(L, OPK_POW, c->pos[0], c->pos[1], c->loc);
}

/* clip(x, lo, hi): lo/hi numbers (either may be None) */
static Value *bi_clip(Lower *L, BuiltinCall *c) {
    Value *x = c->pos[0];
    Value *lo = c->npos > 1 ? c->pos[1] : c->kw[0];
    Value *hi = c->npos > 2 ? c->pos[2] : c->kw[1];
    if (lo && lo->kind == V_NONE) lo = NULL;
    if (hi && hi->kind == V_NONE) hi = NULL;
    if (!lo && !hi) return lw_error(L, c->loc, "clip: give a lower bound, an upper bound or both");
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    Graph *g = G(L);
    if (lo) {
        Node *b = lw_need_node(L, lo, n->dtype, c->loc, "clip: lower bound");
        n = b ? ir_binary(g, OP_MAX, n, b, c->loc) : NULL;
    }
    if (hi && n) {
        Node *b = lw_need_node(L, hi, n->dtype, c->loc, "clip: upper bound");
        n = b ? ir_binary(g, OP_MIN, n, b, c->loc) : NULL;
    }
    (void)x;
    return lw_tensor(L, n);
}

static Value *bi_where(Lower *L, BuiltinCall *c) {
    Value *cv = c->pos[0];
    if (val_is_const(cv)) {
        lw_cfg_bake(L, cv, c->pos_loc[0]);
        return val_num(cv) != 0 ? c->pos[1] : c->pos[2];
    }
    Value *e = need_graph(L, c);
    if (e) return e;
    return lw_where(L, cv, c->pos[1], c->pos[2], c->loc);
}

/* ---- reductions ---------------------------------------------------------------------- */

Value *lw_reduce_all(Lower *L, OpKind op, Value *v, SrcLoc loc) {
    if (val_is_error(v)) return lw_err(L);
    Graph *g = G(L);
    if (!g) return lw_err(L);
    if (v->kind == V_TREE || v->kind == V_LIST) {
        Value *acc = NULL;
        for (int i = 0; i < v->u.tree.n; i++) {
            Value *r = lw_reduce_all(L, op, v->u.tree.items[i], loc);
            if (val_is_error(r)) return lw_err(L);
            if (!acc) {
                acc = r;
                continue;
            }
            if (op == OP_SUM)
                acc = lw_binop(L, OPK_ADD, acc, r, loc);
            else {
                Node *a = lw_node(L, acc, DT_COUNT, loc), *b = lw_node(L, r, DT_COUNT, loc);
                acc = lw_tensor(L, ir_binary(g, op == OP_REDUCE_MAX ? OP_MAX : OP_MIN, a, b, loc));
            }
        }
        return acc ? acc : val_float(L->a, 0.0);
    }
    Node *n = lw_need_node(L, v, DT_COUNT, loc, "reduction");
    if (!n) return lw_err(L);
    if (n->shape.rank == 0) return lw_tensor(L, n);
    return lw_tensor(L, ir_reduce(g, op, n, all_axes(n->shape.rank), loc));
}

/* kw: axis, keepdims */
static Value *reduce(Lower *L, BuiltinCall *c, OpKind op, bool mean) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Value *v = c->pos[0];
    if ((v->kind == V_TREE || v->kind == V_LIST) && !c->kw[0]) {
        if (mean)
            return lw_error(L, c->loc, "mean of a tree is not defined; take the mean of each leaf");
        return lw_reduce_all(L, op, v, c->loc);
    }
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    Graph *g = G(L);
    uint32_t mask = all_axes(n->shape.rank);
    if (c->kw[0] && c->kw[0]->kind != V_NONE &&
        !axes_of(L, c->kw[0], c->kw_loc[0], n->shape.rank, &mask, c->name))
        return lw_err(L);
    bool keep = false;
    if (c->kw[1] &&
        !lw_const_bool(L, c->kw[1], &keep, c->kw_loc[1], lw_printf(L, "%s: keepdims", c->name)))
        return lw_err(L);
    if (n->shape.rank == 0)
        return lw_tensor(L, mean && !is_float_dt(n->dtype) ? ir_cast(g, n, DT_F32, c->loc) : n);
    for (int i = 0; i < n->shape.rank; i++)
        if ((mask & (1u << i)) && n->shape.dims[i] == 0 && op != OP_SUM)
            return lw_error(L, c->loc, "%s of an empty axis of %s", c->name, tstr(L, n));
    Node *r;
    if (mean) {
        if (!is_float_dt(n->dtype)) n = ir_cast(g, n, DT_F32, c->loc);
        r = ir_mean(g, n, mask, c->loc);
    } else {
        r = ir_reduce(g, op, n, mask, c->loc);
    }
    if (keep) r = reduced_keepdims(L, r, &n->shape, mask, c->loc);
    return lw_tensor(L, r);
}

static Value *bi_sum(Lower *L, BuiltinCall *c) {
    return reduce(L, c, OP_SUM, false);
}
static Value *bi_mean(Lower *L, BuiltinCall *c) {
    return reduce(L, c, OP_SUM, true);
}

static Value *minmax(Lower *L, BuiltinCall *c, bool isMax) {
    if (c->npos == 2) {
        Value *a = c->pos[0], *b = c->pos[1];
        if (val_is_const(a) && val_is_const(b)) {
            lw_cfg_bake(L, a, c->pos_loc[0]);
            lw_cfg_bake(L, b, c->pos_loc[1]);
            double x = val_num(a), y = val_num(b);
            bool pick_a = isMax ? x >= y : x <= y;
            return pick_a ? a : b;
        }
        Value *e = need_graph(L, c);
        if (e) return e;
        DType ta, tb;
        Shape sa, sb;
        lw_type(L, a, &ta, &sa);
        lw_type(L, b, &tb, &sb);
        Node *x = lw_need_node(L, a, val_is_const(a) ? tb : DT_COUNT, c->pos_loc[0], c->name);
        Node *y = lw_need_node(L, b, val_is_const(b) ? ta : DT_COUNT, c->pos_loc[1], c->name);
        if (!x || !y) return lw_err(L);
        Shape o;
        if (!ir_broadcast_shapes(&x->shape, &y->shape, &o))
            return lw_error(L, c->loc, "shape mismatch in %s: %s and %s", c->name, tstr(L, x),
                            tstr(L, y));
        return lw_tensor(L, ir_binary(G(L), isMax ? OP_MAX : OP_MIN, x, y, c->loc));
    }
    return reduce(L, c, isMax ? OP_REDUCE_MAX : OP_REDUCE_MIN, false);
}

static Value *bi_max(Lower *L, BuiltinCall *c) {
    return minmax(L, c, true);
}
static Value *bi_min(Lower *L, BuiltinCall *c) {
    return minmax(L, c, false);
}

/* One axis (default: flatten); for argmax/argmin/logsumexp/softmax. */
static Node *single_axis(Lower *L, BuiltinCall *c, Node *n, int kwi, int *axis, int dflt) {
    Graph *g = G(L);
    if (!c->kw[kwi] || c->kw[kwi]->kind == V_NONE) {
        if (dflt >= 0 || (dflt == -1 && n->shape.rank > 0)) {
            *axis = dflt >= 0 ? dflt : n->shape.rank - 1;
            return n;
        }
        Shape f = {.rank = 1, .dims = {rt_shape_numel(&n->shape)}};
        *axis = 0;
        return ir_reshape(g, n, f, c->loc);
    }
    uint32_t mask;
    if (c->kw[kwi]->kind == V_LIST) {
        lw_error(L, c->kw_loc[kwi], "%s takes a single axis", c->name);
        return NULL;
    }
    if (!axes_of(L, c->kw[kwi], c->kw_loc[kwi], n->shape.rank, &mask, c->name)) return NULL;
    for (int i = 0; i < 32; i++)
        if (mask & (1u << i)) *axis = i;
    return n;
}

static Value *arg_ext(Lower *L, BuiltinCall *c, bool neg) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    int axis = 0;
    n = single_axis(L, c, n, 0, &axis, -2);
    if (!n) return lw_err(L);
    if (n->shape.dims[axis] == 0) return lw_error(L, c->loc, "%s of an empty axis", c->name);
    bool keep = false;
    if (c->kw[1] && !lw_const_bool(L, c->kw[1], &keep, c->kw_loc[1], "keepdims")) return lw_err(L);
    Node *r =
        neg ? ir_argmin(G(L), n, axis, c->loc) : ir_reduce(G(L), OP_ARGMAX, n, 1u << axis, c->loc);
    if (keep && n) r = reduced_keepdims(L, r, &n->shape, 1u << axis, c->loc);
    return lw_tensor(L, r);
}

static Value *bi_argmax(Lower *L, BuiltinCall *c) {
    return arg_ext(L, c, false);
}
static Value *bi_argmin(Lower *L, BuiltinCall *c) {
    return arg_ext(L, c, true);
}

static Value *bi_logsumexp(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    if (!is_float_dt(n->dtype)) n = ir_cast(G(L), n, DT_F32, c->loc);
    int axis = 0;
    n = single_axis(L, c, n, 0, &axis, -2);
    if (!n) return lw_err(L);
    bool keep = false;
    if (c->kw[1] && !lw_const_bool(L, c->kw[1], &keep, c->kw_loc[1], "keepdims")) return lw_err(L);
    Node *r = ir_logsumexp(G(L), n, axis, c->loc);
    if (keep) r = reduced_keepdims(L, r, &n->shape, 1u << axis, c->loc);
    return lw_tensor(L, r);
}

static Value *softmaxish(Lower *L, BuiltinCall *c, bool logp) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    if (n->shape.rank == 0) return lw_error(L, c->loc, "%s needs at least one axis", c->name);
    if (!is_float_dt(n->dtype)) n = ir_cast(G(L), n, DT_F32, c->loc);
    int axis = n->shape.rank - 1;
    n = single_axis(L, c, n, 0, &axis, -1);
    if (!n) return lw_err(L);
    return lw_tensor(L, logp ? ir_log_softmax(G(L), n, axis, c->loc)
                             : ir_softmax(G(L), n, axis, c->loc));
}

static Value *bi_softmax(Lower *L, BuiltinCall *c) {
    return softmaxish(L, c, false);
}
static Value *bi_log_softmax(Lower *L, BuiltinCall *c) {
    return softmaxish(L, c, true);
}

/* ---- order: running sums, sorting, quantiles, groups, components --------------------- */

/* x and its axis: the `axis` keyword kw[0], by default the last axis (dflt
 * -1) or all elements flattened (dflt -2). */
static Node *axis_arg(Lower *L, BuiltinCall *c, int *axis, int dflt) {
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return NULL;
    if (n->shape.rank == 0) {
        lw_error(L, c->loc, "%s needs at least one axis, got %s", c->name, tstr(L, n));
        return NULL;
    }
    return single_axis(L, c, n, 0, axis, dflt);
}

static bool kw_flag(Lower *L, BuiltinCall *c, int kwi, bool *out, const char *what) {
    *out = false;
    return !c->kw[kwi] || lw_const_bool(L, c->kw[kwi], out, c->kw_loc[kwi], what);
}

static Value *bi_cumsum(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int axis = 0;
    bool rev;
    Node *n = axis_arg(L, c, &axis, -1);
    if (!n || !kw_flag(L, c, 1, &rev, "cumsum: reverse")) return lw_err(L);
    if (n->dtype == DT_BOOL) n = ir_cast(G(L), n, DT_I64, c->loc);
    return lw_tensor(L, ir_cumsum(G(L), n, axis, rev, c->loc));
}

static Value *sort_like(Lower *L, BuiltinCall *c, bool values) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int axis = 0;
    bool desc;
    Node *n = axis_arg(L, c, &axis, -1);
    if (!n || !kw_flag(L, c, 1, &desc, lw_printf(L, "%s: descending", c->name))) return lw_err(L);
    if (n->dtype == DT_BOOL) n = ir_cast(G(L), n, DT_I32, c->loc);
    return lw_tensor(L, values ? ir_sort(G(L), n, axis, desc, c->loc)
                               : ir_argsort(G(L), n, axis, desc, c->loc));
}

static Value *bi_sort(Lower *L, BuiltinCall *c) {
    return sort_like(L, c, true);
}
static Value *bi_argsort(Lower *L, BuiltinCall *c) {
    return sort_like(L, c, false);
}

static Value *top_k_like(Lower *L, BuiltinCall *c, bool values) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int axis = 0;
    Node *n = axis_arg(L, c, &axis, -1);
    int64_t k;
    if (!n || !lw_const_int(L, c->pos[1], &k, c->pos_loc[1], lw_printf(L, "%s: k", c->name)))
        return lw_err(L);
    if (n->dtype == DT_BOOL) n = ir_cast(G(L), n, DT_I32, c->loc);
    return lw_tensor(L, values ? ir_top_k(G(L), n, k, axis, c->loc)
                               : ir_top_k_indices(G(L), n, k, axis, c->loc));
}

static Value *bi_top_k(Lower *L, BuiltinCall *c) {
    return top_k_like(L, c, true);
}
static Value *bi_top_k_indices(Lower *L, BuiltinCall *c) {
    return top_k_like(L, c, false);
}

/* quantile(x, q) with q in [0, 1], percentile(x, p) with p in [0, 100];
 * the nan forms leave NaN out */
static Node *one_quantile(Lower *L, BuiltinCall *c, Node *n, Value *qv, int axis, double scale,
                          bool nan) {
    double q;
    if (!lw_const_num(L, qv, &q, c->pos_loc[1], lw_printf(L, "%s: q", c->name))) return NULL;
    if (!(q >= 0 && q <= scale)) {
        lw_error(L, c->pos_loc[1], "%s: %g is not in [0, %g]", c->name, q, scale);
        return NULL;
    }
    return nan ? ir_nanquantile(G(L), n, q / scale, axis, c->loc)
               : ir_quantile(G(L), n, q / scale, axis, c->loc);
}

/* A list of q gives the quantiles stacked along a new first axis (numpy). */
static Value *quantile_like(Lower *L, BuiltinCall *c, double scale, bool nan) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int axis = 0;
    Node *n = axis_arg(L, c, &axis, -2);
    if (!n) return lw_err(L);
    if (!is_float_dt(n->dtype)) n = ir_cast(G(L), n, DT_F32, c->loc);
    Value *qv = c->pos[1];
    if (qv->kind != V_LIST) return lw_tensor(L, one_quantile(L, c, n, qv, axis, scale, nan));
    int k = qv->u.tree.n;
    if (k == 0) return lw_error(L, c->pos_loc[1], "%s: an empty list of q", c->name);
    Node **parts = arena_alloc(L->a, sizeof(Node *) * (size_t)k);
    if (!parts) return lw_err(L);
    for (int i = 0; i < k; i++) {
        Node *r = one_quantile(L, c, n, qv->u.tree.items[i], axis, scale, nan);
        if (!r) return lw_err(L);
        Shape s = {.rank = r->shape.rank + 1, .dims = {1}};
        for (int d = 0; d < r->shape.rank; d++)
            s.dims[d + 1] = r->shape.dims[d];
        parts[i] = ir_reshape(G(L), r, s, c->loc);
    }
    return lw_tensor(L, ir_concat(G(L), parts, k, 0, c->loc));
}

static Value *bi_quantile(Lower *L, BuiltinCall *c) {
    return quantile_like(L, c, 1.0, false);
}
static Value *bi_percentile(Lower *L, BuiltinCall *c) {
    return quantile_like(L, c, 100.0, false);
}
static Value *bi_nanquantile(Lower *L, BuiltinCall *c) {
    return quantile_like(L, c, 1.0, true);
}
static Value *bi_nanpercentile(Lower *L, BuiltinCall *c) {
    return quantile_like(L, c, 100.0, true);
}

/* segment_sum(x, labels, n), or the design's segment_mean(x, key = labels,
 * groups = n): each of labels and n positionally or by keyword, once. */
static Value *segment(Lower *L, BuiltinCall *c, bool mean) {
    Value *e = need_graph(L, c);
    if (e) return e;
    static const char *what[2] = {"labels (key =)", "n (groups =)"};
    Value *arg[2];
    SrcLoc at[2];
    for (int i = 0; i < 2; i++) {
        bool pos = c->npos > i + 1, kw = c->kw[i] != NULL;
        if (pos == kw)
            return lw_error(L, kw ? c->kw_loc[i] : c->loc, "%s: give %s %s", c->name, what[i],
                            kw ? "once, not also positionally" : "(positionally or by keyword)");
        arg[i] = pos ? c->pos[i + 1] : c->kw[i];
        at[i] = pos ? c->pos_loc[i + 1] : c->kw_loc[i];
    }
    Node *x = pos_node(L, c, 0, DT_COUNT);
    Node *lb = lw_need_node(L, arg[0], DT_I64, at[0], lw_printf(L, "%s: labels", c->name));
    int64_t k;
    if (!x || !lb || !lw_const_int(L, arg[1], &k, at[1], lw_printf(L, "%s: n", c->name)))
        return lw_err(L);
    if (x->dtype == DT_BOOL) x = ir_cast(G(L), x, DT_F32, c->loc);
    return lw_tensor(L, mean ? ir_segment_mean(G(L), x, lb, k, c->loc)
                             : ir_segment_sum(G(L), x, lb, k, c->loc));
}

static Value *bi_segment_sum(Lower *L, BuiltinCall *c) {
    return segment(L, c, false);
}
static Value *bi_segment_mean(Lower *L, BuiltinCall *c) {
    return segment(L, c, true);
}

static Value *bi_components(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *m = pos_node(L, c, 0, DT_BOOL);
    if (!m) return lw_err(L);
    if (m->dtype != DT_BOOL || m->shape.rank < 1 || m->shape.rank > 2)
        return lw_error(L, c->loc, "components: needs a bool mask of rank 1 or 2, got %s",
                        tstr(L, m));
    return lw_tensor(L, ir_components(G(L), m, c->loc));
}

/* ---- shapes -------------------------------------------------------------------------- */

static Value *bi_reshape(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    Value *sv = c->pos[1];
    Shape s = {0};
    if (sv->kind == V_INT) {
        lw_cfg_bake(L, sv, c->pos_loc[1]);
        s.rank = 1;
        s.dims[0] = sv->u.i;
    } else if (sv->kind == V_LIST && sv->u.tree.n <= IR_MAX_RANK) {
        s.rank = sv->u.tree.n;
        for (int i = 0; i < s.rank; i++)
            if (!lw_const_int(L, sv->u.tree.items[i], &s.dims[i], c->pos_loc[1],
                              "reshape: a dimension"))
                return lw_err(L);
    } else {
        return lw_error(L, c->pos_loc[1], "reshape: the shape must be a list of integers");
    }
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < s.rank; i++) {
        if (s.dims[i] == -1) {
            if (infer >= 0)
                return lw_error(L, c->pos_loc[1], "reshape: only one dimension may be -1");
            infer = i;
        } else if (s.dims[i] < 0) {
            return lw_error(L, c->pos_loc[1], "reshape: negative dimension %lld",
                            (long long)s.dims[i]);
        } else if (!ck_mul(known, s.dims[i] ? s.dims[i] : 1, &known)) {
            return lw_error(L, c->pos_loc[1],
                            "reshape: the dimensions multiply to more than 2^63 - 1");
        }
    }
    int64_t numel = rt_shape_numel(&n->shape);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return lw_error(L, c->loc, "reshape: cannot infer the -1 dimension of %s", tstr(L, n));
        s.dims[infer] = numel / known;
    }
    if (!lw_check_numel(L, &s, c->loc, "reshape")) return lw_err(L);
    if (rt_shape_numel(&s) != numel) {
        char buf[160];
        return lw_error(L, c->loc, "reshape: cannot reshape %s (%lld elements) into %s", tstr(L, n),
                        (long long)numel, fe_type_str(n->dtype, &s, buf, sizeof buf));
    }
    return lw_tensor(L, ir_reshape(G(L), n, s, c->loc));
}

static Value *bi_permute(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    Value *pv = c->pos[1];
    int r = n->shape.rank;
    if (pv->kind != V_LIST || pv->u.tree.n != r)
        return lw_error(L, c->pos_loc[1], "permute: expected a list of %d axes for %s", r,
                        tstr(L, n));
    int perm[IR_MAX_RANK];
    bool seen[IR_MAX_RANK] = {false};
    for (int i = 0; i < r; i++) {
        int64_t a;
        if (!lw_const_int(L, pv->u.tree.items[i], &a, c->pos_loc[1], "permute: an axis"))
            return lw_err(L);
        if (a < 0) a += r;
        if (a < 0 || a >= r || seen[a])
            return lw_error(L, c->pos_loc[1], "permute: not a permutation of 0..%d", r - 1);
        seen[a] = true;
        perm[i] = (int)a;
    }
    return lw_tensor(L, ir_permute(G(L), n, perm, c->loc));
}

static Value *bi_transpose(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    int r = n->shape.rank;
    if (r < 2) return lw_tensor(L, n);
    int perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return lw_tensor(L, ir_permute(G(L), n, perm, c->loc));
}

/* The tensors of concat/stack: one list argument or several. */
static int gather_operands(Lower *L, BuiltinCall *c, Node ***out) {
    Value **items = c->pos;
    int n = c->npos;
    if (n == 1 && c->pos[0]->kind == V_LIST) {
        items = c->pos[0]->u.tree.items;
        n = c->pos[0]->u.tree.n;
    }
    if (n < 1) {
        lw_error(L, c->loc, "%s: needs at least one tensor", c->name);
        return -1;
    }
    Node **ns = arena_alloc(L->a, sizeof(Node *) * (size_t)n);
    if (!ns) return -1;
    for (int i = 0; i < n; i++) {
        ns[i] = lw_need_node(L, items[i], DT_COUNT, c->loc, c->name);
        if (!ns[i]) return -1;
    }
    *out = ns;
    return n;
}

static Value *concat_axis(Lower *L, BuiltinCall *c, Node **ns, int n, int rank, int *axis) {
    int64_t a = 0;
    if (c->kw[0] && !lw_const_int(L, c->kw[0], &a, c->kw_loc[0], lw_printf(L, "%s: axis", c->name)))
        return lw_err(L);
    if (a < 0) a += rank;
    if (a < 0 || a >= rank)
        return lw_error(L, c->loc, "%s: axis out of range for rank %d", c->name, rank);
    *axis = (int)a;
    (void)ns;
    (void)n;
    return NULL;
}

static Value *bi_concat(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node **ns;
    int n = gather_operands(L, c, &ns);
    if (n < 0) return lw_err(L);
    int r = ns[0]->shape.rank, axis;
    if (r == 0) return lw_error(L, c->loc, "concat: cannot join scalars (use stack)");
    if ((e = concat_axis(L, c, ns, n, r, &axis))) return e;
    for (int i = 1; i < n; i++) {
        bool ok = ns[i]->shape.rank == r;
        for (int k = 0; ok && k < r; k++)
            ok = k == axis || ns[i]->shape.dims[k] == ns[0]->shape.dims[k];
        if (!ok)
            return lw_error(L, c->loc, "concat: shapes %s and %s differ outside axis %d",
                            tstr(L, ns[0]), tstr(L, ns[i]), axis);
    }
    return lw_tensor(L, ir_concat(G(L), ns, n, axis, c->loc));
}

static Value *bi_stack(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node **ns;
    int n = gather_operands(L, c, &ns);
    if (n < 0) return lw_err(L);
    int r = ns[0]->shape.rank, axis;
    if (r + 1 > IR_MAX_RANK) return lw_error(L, c->loc, "stack: rank too large");
    if ((e = concat_axis(L, c, ns, n, r + 1, &axis))) return e;
    /* every operand is checked against the first before any is reshaped */
    for (int i = 1; i < n; i++)
        if (!rt_shape_eq(&ns[i]->shape, &ns[0]->shape))
            return lw_error(L, c->loc, "stack: shapes %s and %s differ", tstr(L, ns[0]),
                            tstr(L, ns[i]));
    Shape s = {.rank = r + 1};
    for (int k = 0, j = 0; k < r + 1; k++)
        s.dims[k] = k == axis ? 1 : ns[0]->shape.dims[j++];
    for (int i = 0; i < n; i++)
        ns[i] = ir_reshape(G(L), ns[i], s, c->loc);
    return lw_tensor(L, ir_concat(G(L), ns, n, axis, c->loc));
}

static Value *bi_pad(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    int r = n->shape.rank;
    int64_t lo[IR_MAX_RANK] = {0}, hi[IR_MAX_RANK] = {0};
    Value *w = c->pos[1];
    if (w->kind != V_LIST || w->u.tree.n != r)
        return lw_error(L, c->pos_loc[1], "pad: expected %d [before, after] pairs for %s", r,
                        tstr(L, n));
    for (int i = 0; i < r; i++) {
        Value *p = w->u.tree.items[i];
        if (p->kind != V_LIST || p->u.tree.n != 2 ||
            !lw_const_int(L, p->u.tree.items[0], &lo[i], c->pos_loc[1], "pad") ||
            !lw_const_int(L, p->u.tree.items[1], &hi[i], c->pos_loc[1], "pad") || lo[i] < 0 ||
            hi[i] < 0)
            return lw_error(L, c->pos_loc[1],
                            "pad: each axis takes a pair [before, after] of non-negative ints");
    }
    double v = 0;
    if (c->kw[0] && !lw_const_num(L, c->kw[0], &v, c->kw_loc[0], "pad: value")) return lw_err(L);
    Shape o = n->shape;
    for (int i = 0; i < r; i++)
        if (!ck_add(o.dims[i], lo[i], &o.dims[i]) || !ck_add(o.dims[i], hi[i], &o.dims[i]))
            return lw_error(L, c->pos_loc[1], "pad: axis %d: %lld + %lld + %lld is too large", i,
                            (long long)n->shape.dims[i], (long long)lo[i], (long long)hi[i]);
    if (!lw_check_numel(L, &o, c->loc, "pad")) return lw_err(L);
    return lw_tensor(L, ir_pad(G(L), n, lo, hi, v, c->loc));
}

static Value *bi_outer(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *a = pos_node(L, c, 0, DT_COUNT), *b = pos_node(L, c, 1, DT_COUNT);
    if (!a || !b) return lw_err(L);
    if (a->shape.rank != 1 || b->shape.rank != 1)
        return lw_error(L, c->loc, "outer: expected two vectors, got %s and %s", tstr(L, a),
                        tstr(L, b));
    Shape sa = {.rank = 2, .dims = {a->shape.dims[0], 1}},
          sb = {.rank = 2, .dims = {1, b->shape.dims[0]}};
    Shape o = {.rank = 2, .dims = {a->shape.dims[0], b->shape.dims[0]}};
    if (!lw_check_numel(L, &o, c->loc, "outer")) return lw_err(L);
    Graph *g = G(L);
    return lw_tensor(L, ir_binary(g, OP_MUL, ir_reshape(g, a, sa, c->loc),
                                  ir_reshape(g, b, sb, c->loc), c->loc));
}

static Value *bi_squeeze(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    uint32_t mask = 0;
    if (c->kw[0]) {
        if (!axes_of(L, c->kw[0], c->kw_loc[0], n->shape.rank, &mask, "squeeze")) return lw_err(L);
        for (int i = 0; i < n->shape.rank; i++)
            if ((mask & (1u << i)) && n->shape.dims[i] != 1)
                return lw_error(L, c->kw_loc[0], "squeeze: axis %d of %s is not of size 1", i,
                                tstr(L, n));
    } else {
        for (int i = 0; i < n->shape.rank; i++)
            if (n->shape.dims[i] == 1) mask |= 1u << i;
    }
    Shape s = {.rank = 0};
    for (int i = 0; i < n->shape.rank; i++)
        if (!(mask & (1u << i))) s.dims[s.rank++] = n->shape.dims[i];
    return lw_tensor(L, ir_reshape(G(L), n, s, c->loc));
}

static Value *bi_expand_dims(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    int r = n->shape.rank;
    int64_t a;
    if (!lw_const_int(L, c->pos[1], &a, c->pos_loc[1], "expand_dims: axis")) return lw_err(L);
    if (a < 0) a += r + 1;
    if (a < 0 || a > r || r + 1 > IR_MAX_RANK)
        return lw_error(L, c->pos_loc[1], "expand_dims: axis out of range");
    Shape s = {.rank = r + 1};
    for (int k = 0, j = 0; k < r + 1; k++)
        s.dims[k] = k == a ? 1 : n->shape.dims[j++];
    return lw_tensor(L, ir_reshape(G(L), n, s, c->loc));
}

/* ---- linear algebra ------------------------------------------------------------------ */

static Value *bi_dot(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Value *a = c->pos[0], *b = c->pos[1];
    bool ta = a->kind == V_TREE || a->kind == V_LIST, tb = b->kind == V_TREE || b->kind == V_LIST;
    if (ta != tb || (ta && !val_same_structure(a, b)))
        return lw_error(L, c->loc, "dot: operands of different structure (%s and %s)",
                        lw_value_desc(L, a), lw_value_desc(L, b));
    if (!ta) {
        DType da, db;
        Shape sa, sb;
        if (lw_type(L, a, &da, &sa) && lw_type(L, b, &db, &sb) && !val_is_const(a) &&
            !val_is_const(b) && !rt_shape_eq(&sa, &sb)) {
            char b1[160], b2[160];
            return lw_error(L, c->loc, "dot: shapes differ: %s and %s",
                            fe_type_str(da, &sa, b1, sizeof b1),
                            fe_type_str(db, &sb, b2, sizeof b2));
        }
    }
    return lw_reduce_all(L, OP_SUM, lw_binop(L, OPK_MUL, a, b, c->loc), c->loc);
}

static Value *bi_norm(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Value *sq = lw_binop(L, OPK_MUL, c->pos[0], c->pos[0], c->loc);
    Value *s = lw_reduce_all(L, OP_SUM, sq, c->loc);
    if (val_is_error(s)) return s;
    if (val_is_const(s)) return val_float(L->a, sqrt(val_num(s)));
    Node *n = lw_node(L, s, DT_COUNT, c->loc);
    if (!n) return lw_err(L);
    if (!is_float_dt(n->dtype)) n = ir_cast(G(L), n, DT_F32, c->loc);
    return lw_tensor(L, ir_unary(G(L), OP_SQRT, n, c->loc));
}

/* ---- losses -------------------------------------------------------------------------- */

static Value *bi_cross_entropy(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *lg = pos_node(L, c, 0, DT_COUNT), *lb = pos_node(L, c, 1, DT_COUNT);
    if (!lg || !lb) return lw_err(L);
    if (lg->shape.rank != 2 || !is_float_dt(lg->dtype) || lb->shape.rank != 1 ||
        !(lb->dtype == DT_I32 || lb->dtype == DT_I64) || lb->shape.dims[0] != lg->shape.dims[0])
        return lw_error(
            L, c->loc,
            "cross_entropy: expected logits f32[N,C] and integer labels [N], got %s and %s",
            tstr(L, lg), tstr(L, lb));
    if (lg->shape.dims[1] == 0)
        return lw_error(L, c->loc, "cross_entropy: no classes in %s", tstr(L, lg));
    return lw_tensor(L, ir_cross_entropy(G(L), lg, lb, c->loc));
}

static Value *bi_mse(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    DType ta, tb;
    Shape sa, sb;
    lw_type(L, c->pos[0], &ta, &sa);
    lw_type(L, c->pos[1], &tb, &sb);
    Node *a =
        lw_need_node(L, c->pos[0], val_is_const(c->pos[0]) ? tb : DT_COUNT, c->pos_loc[0], "mse");
    Node *b =
        lw_need_node(L, c->pos[1], val_is_const(c->pos[1]) ? ta : DT_COUNT, c->pos_loc[1], "mse");
    if (!a || !b) return lw_err(L);
    Shape o;
    if (!ir_broadcast_shapes(&a->shape, &b->shape, &o))
        return lw_error(L, c->loc, "shape mismatch in mse: %s and %s", tstr(L, a), tstr(L, b));
    if (!is_float_dt(a->dtype)) a = ir_cast(G(L), a, DT_F32, c->loc);
    if (!is_float_dt(b->dtype)) b = ir_cast(G(L), b, DT_F32, c->loc);
    return lw_tensor(L, ir_mse(G(L), a, b, c->loc));
}

static Value *bi_one_hot(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *lb = pos_node(L, c, 0, DT_COUNT);
    int64_t k;
    if (!lb || !lw_const_int(L, c->pos[1], &k, c->pos_loc[1], "one_hot: classes")) return lw_err(L);
    if (!(lb->dtype == DT_I32 || lb->dtype == DT_I64))
        return lw_error(L, c->loc, "one_hot: labels must be integers, got %s", tstr(L, lb));
    DType dt = DT_F32;
    if (!opt_dtype(L, c, 0, &dt)) return lw_err(L);
    return lw_tensor(L, ir_one_hot(G(L), lb, k, dt, c->loc));
}

/* ---- autodiff ------------------------------------------------------------------------ */

static Node *scalar_objective(Lower *L, BuiltinCall *c) {
    Value *y = c->pos[0];
    if (y->kind == V_LOSS) y = lw_loss_value(L, c->loc);
    if (val_is_error(y)) return NULL;
    if (val_is_const(y)) {
        lw_error(L, c->pos_loc[0],
                 "%s: the expression is a constant (%s); it must depend on the variables", c->name,
                 lw_value_desc(L, y));
        return NULL;
    }
    Node *n = lw_need_node(L, y, DT_COUNT, c->pos_loc[0], c->name);
    if (!n) return NULL;
    if (n->shape.rank != 0 || !is_float_dt(n->dtype)) {
        lw_error(L, c->pos_loc[0],
                 "%s: the expression must be a floating-point scalar, got %s (use sum() or mean())",
                 c->name, tstr(L, n));
        return NULL;
    }
    return n;
}

typedef struct {
    Node **nodes;
    int n, cap;
} NodeVec;

static bool wrt_nodes(Lower *L, Value *w, NodeVec *out, SrcLoc loc, const char *fname) {
    if (val_is_error(w)) return false;
    if (w->kind == V_TREE || w->kind == V_LIST) {
        for (int i = 0; i < w->u.tree.n; i++)
            if (!wrt_nodes(L, w->u.tree.items[i], out, loc, fname)) return false;
        return true;
    }
    if (!val_is_tensorish(w)) {
        lw_error(L, loc, "%s: can only differentiate with respect to tensors, got %s", fname,
                 lw_value_desc(L, w));
        return false;
    }
    Node *n = lw_node(L, w, DT_COUNT, loc);
    if (!n) return false;
    if (!is_float_dt(n->dtype)) {
        lw_error(L, loc, "%s: cannot differentiate with respect to %s (not floating point)", fname,
                 tstr(L, n));
        return false;
    }
    if (!arena_grow(L->a, &out->nodes, &out->cap, (size_t)out->n + 1, 16)) return false;
    out->nodes[out->n++] = n;
    return true;
}

static Value *rebuild(Lower *L, Value *shape_of, Node **grads, int *k) {
    if (shape_of->kind == V_TREE || shape_of->kind == V_LIST) {
        Value **items = arena_alloc(
            L->a, sizeof(Value *) * (size_t)(shape_of->u.tree.n ? shape_of->u.tree.n : 1));
        if (!items) return lw_err(L);
        for (int i = 0; i < shape_of->u.tree.n; i++)
            items[i] = rebuild(L, shape_of->u.tree.items[i], grads, k);
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *shape_of;
        r->u.tree.items = items;
        return r;
    }
    return lw_tensor(L, grads[(*k)++]);
}

static Value *bi_grad(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *y = scalar_objective(L, c);
    if (!y) return lw_err(L);
    NodeVec w = {0};
    if (!wrt_nodes(L, c->pos[1], &w, c->pos_loc[1], "grad")) return lw_err(L);
    Node **out = arena_alloc(L->a, sizeof(Node *) * (size_t)(w.n ? w.n : 1));
    if (!out) return lw_err(L);
    /* through the graphs that host statements cut off (lower_defs.h) */
    y = lw_see_through(L, y, w.nodes, w.n, c->loc);
    if (!y) return lw_err(L);
    if (!pass_grad(G(L), y, NULL, w.nodes, w.n, out)) return lw_err(L);
    for (int i = 0; i < w.n; i++)
        if (!out[i]) return lw_err(L);
    int k = 0;
    return rebuild(L, c->pos[1], out, &k);
}

static Value *bi_hvp(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *y = scalar_objective(L, c);
    if (!y) return lw_err(L);
    Node *w = pos_node(L, c, 1, DT_COUNT), *v = pos_node(L, c, 2, DT_COUNT);
    if (!w || !v) return lw_err(L);
    if (!is_float_dt(w->dtype) || w->dtype != v->dtype || !rt_shape_eq(&w->shape, &v->shape))
        return lw_error(
            L, c->loc,
            "hvp: w and v must be floating-point tensors of the same type, got %s and %s",
            tstr(L, w), tstr(L, v));
    if (!(y = lw_see_through(L, y, &w, 1, c->loc))) return lw_err(L);
    return lw_tensor(L, pass_hvp(G(L), y, w, v, c->loc));
}

static Value *bi_hessian_trace(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *y = scalar_objective(L, c);
    if (!y) return lw_err(L);
    Node *w = pos_node(L, c, 1, DT_COUNT);
    if (!w) return lw_err(L);
    if (!is_float_dt(w->dtype))
        return lw_error(L, c->pos_loc[1], "hessian_trace: w must be floating point, got %s",
                        tstr(L, w));
    if (rt_shape_numel(&w->shape) > FE_MAX_HESSIAN)
        return lw_error(L, c->pos_loc[1],
                        "hessian_trace: w has %lld elements; the exact trace takes one "
                        "Hessian-vector product per "
                        "element (at most %d)",
                        (long long)rt_shape_numel(&w->shape), FE_MAX_HESSIAN);
    if (!(y = lw_see_through(L, y, &w, 1, c->loc))) return lw_err(L);
    return lw_tensor(L, pass_hessian_trace(G(L), y, w, c->loc));
}

/* ---- sampling and seeds -------------------------------------------------------------- */

/* n and k of sample, choice and permutation: n in 1..2^31-1, k >= 0. */
static bool draw_counts(Lower *L, BuiltinCall *c, int64_t *n, int64_t *k) {
    if (!lw_const_int(L, c->pos[0], n, c->pos_loc[0], lw_printf(L, "%s: n", c->name))) return false;
    if (*n < 1 || *n > INT32_MAX) {
        lw_error(L, c->pos_loc[0], "%s: n must be between 1 and 2^31-1, got %lld", c->name,
                 (long long)*n);
        return false;
    }
    if (c->npos < 2) {
        *k = *n;
        return true;
    }
    if (!lw_const_int(L, c->pos[1], k, c->pos_loc[1], lw_printf(L, "%s: k", c->name))) return false;
    if (*k < 0) {
        lw_error(L, c->pos_loc[1], "%s: k must not be negative, got %lld", c->name, (long long)*k);
        return false;
    }
    return true;
}

/* The Philox index of a draw's first word: step * per (step = 0 unless given). */
static bool draw_offset(Lower *L, BuiltinCall *c, Value *step, SrcLoc loc, int64_t per,
                        Value **offset) {
    *offset = NULL;
    if (!step) return true;
    *offset = lw_binop(L, OPK_MUL, step, val_int(L->a, per), loc);
    if (val_is_error(*offset)) return false;
    if (val_is_const(*offset) && (*offset)->kind != V_INT) {
        lw_error(L, loc, "%s: step must be an integer", c->name);
        return false;
    }
    return true;
}

/* k indices uniform in 0..n-1 with replacement (i32[k]): element i is
 * min(floor(n * U), n - 1) of Philox index step * k + i. */
static Value *draw_with_replacement(Lower *L, BuiltinCall *c, int64_t n, int64_t k, Value *seed,
                                    Value *step, SrcLoc step_loc, uint32_t stream) {
    Graph *g = G(L);
    Value *offset;
    if (!draw_offset(L, c, step, step_loc, k, &offset)) return lw_err(L);
    Shape s = {.rank = 1, .dims = {k}};
    Value *u = lw_rng_tensor(L, OP_RNG_UNIFORM, DT_F32, s, seed, offset, stream, c->loc);
    if (val_is_error(u)) return u;
    Node *x = ir_cast(g, u->u.t.node, DT_F64, c->loc);
    x = ir_binary(g, OP_MUL, x, ir_scalar(g, DT_F64, (double)n, c->loc), c->loc);
    x = ir_unary(g, OP_FLOOR, x, c->loc);
    x = ir_binary(g, OP_MIN, x, ir_scalar(g, DT_F64, (double)(n - 1), c->loc), c->loc);
    return lw_tensor(L, ir_cast(g, x, DT_I32, c->loc));
}

/* k distinct indices of 0..n-1 (i32[k]), every ordered k-subset equally likely
 * (docs/rng.md, "sampling without replacement"): n keys
 * key_j = U_j + 2^-24 U_{n+j} in f64 from the 2n uniforms at Philox index
 * step * 2n + 0..2n-1, and element i is the rank of key_i among all n. */
static Value *draw_without_replacement(Lower *L, BuiltinCall *c, int64_t n, int64_t k, Value *seed,
                                       Value *step, SrcLoc step_loc, uint32_t stream) {
    Graph *g = G(L);
    if (k > n)
        return lw_error(L, c->loc, "%s: cannot draw %lld distinct indices of %lld", c->name,
                        (long long)k, (long long)n);
    Shape cmp = {.rank = 2, .dims = {k, n}};
    if (!lw_check_numel(L, &cmp, c->loc, lw_printf(L, "%s: its k x n comparison", c->name)))
        return lw_err(L);
    Value *offset;
    if (!draw_offset(L, c, step, step_loc, 2 * n, &offset)) return lw_err(L);
    Shape s = {.rank = 1, .dims = {2 * n}};
    Value *u = lw_rng_tensor(L, OP_RNG_UNIFORM, DT_F32, s, seed, offset, stream, c->loc);
    if (val_is_error(u)) return u;
    Node *x = ir_cast(g, u->u.t.node, DT_F64, c->loc);
    int64_t zero = 0, one = 1, two_n = 2 * n;
    Node *hi = ir_slice(g, x, &zero, &n, &one, c->loc),
         *lo = ir_slice(g, x, &n, &two_n, &one, c->loc);
    Node *key =
        ir_binary(g, OP_ADD, hi,
                  ir_binary(g, OP_MUL, lo, ir_scalar(g, DT_F64, 0x1p-24, c->loc), c->loc), c->loc);
    return lw_tensor(L, ir_key_ranks(g, key, k, c->loc));
}

/* sample(n, k, seed =, step =, stream =): k indices uniform in 0..n-1 (i32[k]),
 * with replacement, element i from Philox index step*k + i. */
static Value *bi_sample(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int64_t n, k;
    uint32_t stream = 0;
    if (!draw_counts(L, c, &n, &k) || !stream_kw(L, c, 2, &stream)) return lw_err(L);
    stream = draw_stream(L, c, "sample", c->kw[0] || c->kw[2], stream, NULL);
    return draw_with_replacement(L, c, n, k, c->kw[0], c->kw[1], c->kw_loc[1], stream);
}

/* choice(n, k, replace =, seed =, step =, stream =): with replace = true (the
 * default, as numpy's) sample's algorithm, else k distinct indices. */
static Value *bi_choice(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int64_t n, k;
    bool replace = true;
    uint32_t stream = 0;
    if (!draw_counts(L, c, &n, &k) ||
        (c->kw[0] && !lw_const_bool(L, c->kw[0], &replace, c->kw_loc[0], "choice: replace")) ||
        !stream_kw(L, c, 3, &stream))
        return lw_err(L);
    stream = draw_stream(L, c, "choice", c->kw[1] || c->kw[3], stream, NULL);
    return replace ? draw_with_replacement(L, c, n, k, c->kw[1], c->kw[2], c->kw_loc[2], stream)
                   : draw_without_replacement(L, c, n, k, c->kw[1], c->kw[2], c->kw_loc[2], stream);
}

/* permutation(n, seed =, step =, stream =): 0..n-1 in a uniformly random order. */
static Value *bi_permutation(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int64_t n, k;
    uint32_t stream = 0;
    if (!draw_counts(L, c, &n, &k) || !stream_kw(L, c, 2, &stream)) return lw_err(L);
    stream = draw_stream(L, c, "permutation", c->kw[0] || c->kw[2], stream, NULL);
    return draw_without_replacement(L, c, n, n, c->kw[0], c->kw[1], c->kw_loc[1], stream);
}

/* histogram(x, bins, lo, hi): numpy.histogram(x, bins, (lo, hi))[0], i64[bins]
 * (ir_histogram). lo and hi are numbers (lo == hi widens to lo - 0.5, hi + 0.5
 * and lo > hi is an error, as in numpy) or scalar tensors (unchecked). */
static Value *bi_histogram(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    int64_t bins;
    if (!lw_const_int(L, c->pos[1], &bins, c->pos_loc[1], "histogram: bins")) return lw_err(L);
    if (bins < 1 || bins > 1 << 20)
        return lw_error(L, c->pos_loc[1], "histogram: bins must be between 1 and 2^20, got %lld",
                        (long long)bins);
    Value *lo = c->pos[2], *hi = c->pos[3];
    if (val_is_const(lo) && val_is_const(hi)) {
        double a, b;
        if (!lw_const_num(L, lo, &a, c->pos_loc[2], "histogram: lo") ||
            !lw_const_num(L, hi, &b, c->pos_loc[3], "histogram: hi"))
            return lw_err(L);
        if (!(a <= b) || !isfinite(a) || !isfinite(b))
            return lw_error(L, c->loc, "histogram: lo (%g) must be finite and at most hi (%g)", a,
                            b);
        if (a == b) {
            lo = val_float(L->a, a - 0.5);
            hi = val_float(L->a, b + 0.5);
        }
    }
    Node *x = pos_node(L, c, 0, DT_COUNT);
    Node *ln = lw_need_node(L, lo, DT_F64, c->pos_loc[2], "histogram: lo");
    Node *hn = lw_need_node(L, hi, DT_F64, c->pos_loc[3], "histogram: hi");
    if (!x || !ln || !hn) return lw_err(L);
    if (ln->shape.rank != 0 || hn->shape.rank != 0)
        return lw_error(L, c->loc, "histogram: lo and hi must be scalars, got %s and %s",
                        tstr(L, ln), tstr(L, hn));
    if (x->dtype == DT_F16 || x->dtype == DT_BF16)
        return lw_error(L, c->pos_loc[0], "histogram: x must be f32, f64 or an integer, got %s",
                        tstr(L, x));
    Shape cmp = {.rank = 2, .dims = {rt_shape_numel(&x->shape), bins + 1}};
    if (!lw_check_numel(L, &cmp, c->loc, "histogram: its N x bins comparison")) return lw_err(L);
    Graph *g = G(L);
    return lw_tensor(L, ir_histogram(g, x, bins, ir_cast(g, ln, DT_F64, c->loc),
                                     ir_cast(g, hn, DT_F64, c->loc), c->loc));
}

static Value *bi_fresh_seed(Lower *L, BuiltinCall *c) {
    TrainCtx *tc = L->train;
    if (!tc || !tc->in_step)
        return lw_error(L, c->loc, "fresh_seed() is only available inside an optimizer step");
    Graph *g = G(L);
    Node *s = lw_slot_node(L, L->m->seed_slot, c->loc);
    Node *t = lw_node(L, tc->t, DT_I64, c->loc);
    return lw_tensor(L, ir_fresh_seed(g, s, t, (uint32_t)tc->fresh_k++, c->loc));
}

/* ---- misc ---------------------------------------------------------------------------- */

static Value *bi_len(Lower *L, BuiltinCall *c) {
    Value *v = c->pos[0];
    switch (v->kind) {
    case V_LIST:
    case V_TREE:
        return val_int(L->a, v->u.tree.n);
    case V_STR:
        return val_int(L->a, (int64_t)strlen(v->u.s));
    case V_TENSOR:
    case V_SLOT: {
        DType dt;
        Shape s;
        lw_type(L, v, &dt, &s);
        if (s.rank == 0) return lw_error(L, c->loc, "len of a scalar");
        return val_int(L->a, s.dims[0]);
    }
    case V_ERROR:
    case V_NONE:
    case V_INT:
    case V_FLOAT:
    case V_BOOL:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        break;
    }
    return lw_error(L, c->loc, "len of %s", lw_value_desc(L, v));
}

static Value *convert(Lower *L, BuiltinCall *c, DType to) {
    Value *v = c->pos[0];
    if (v->kind == V_STR) {
        char *end;
        if (to == DT_F32) {
            double f = strtod(v->u.s, &end);
            if (end != v->u.s && !*end) return val_float(L->a, f);
        } else {
            long long i = strtoll(v->u.s, &end, 10);
            if (end != v->u.s && !*end) return val_int(L->a, i);
        }
        return lw_error(L, c->loc, "%s: cannot convert \"%s\"", c->name, v->u.s);
    }
    if (val_is_const(v)) {
        if (to == DT_F32 && v->kind == V_FLOAT) return v; /* unchanged: a config stays one */
        lw_cfg_bake(L, v, c->pos_loc[0]);
        if (to == DT_F32) return val_float(L->a, val_num(v));
        double x = val_num(v);
        if (!(fabs(x) < 9.2e18)) return lw_error(L, c->loc, "int: %g is out of range", x);
        return val_int(L->a, (int64_t)x);
    }
    Value *e = need_graph(L, c);
    if (e) return e;
    Node *n = pos_node(L, c, 0, DT_COUNT);
    if (!n) return lw_err(L);
    return lw_tensor(L, ir_cast(G(L), n, to, c->loc));
}

static Value *bi_float(Lower *L, BuiltinCall *c) {
    return convert(L, c, DT_F32);
}
static Value *bi_int(Lower *L, BuiltinCall *c) {
    return convert(L, c, DT_I32);
}

static Value *bi_first(Lower *L, BuiltinCall *c) {
    int64_t n;
    if (!lw_const_int(L, c->pos[1], &n, c->pos_loc[1], "first: n")) return lw_err(L);
    Value *e = need_graph(L, c);
    if (e) return e;
    return lw_first_rows(L, c->pos[0], n, c->loc);
}

/* accuracy(f, ds) = mean(argmax(f(ds.x), axis = 1) == ds.y) */
static Value *bi_accuracy(Lower *L, BuiltinCall *c) {
    Value *e = need_graph(L, c);
    if (e) return e;
    Value *ds = c->pos[1];
    if (ds->kind != V_TREE)
        return lw_error(L, c->pos_loc[1], "accuracy: expected a data record with fields x and y");
    Value *x = val_tree_get(ds, "x"), *y = val_tree_get(ds, "y");
    if (!x || !y) {
        /* the first field is the input, the last the label */
        if (ds->u.tree.n < 2)
            return lw_error(L, c->pos_loc[1],
                            "accuracy: the record needs an input and a label field");
        x = ds->u.tree.items[0];
        y = ds->u.tree.items[ds->u.tree.n - 1];
    }
    CallArg a = {NULL, c->pos_loc[1], x};
    Value *logits = lw_call_value(L, c->pos[0], NULL, &a, 1, c->loc);
    if (val_is_error(logits)) return logits;
    Node *lg = lw_need_node(L, logits, DT_COUNT, c->loc, "accuracy");
    Node *lb = lw_need_node(L, y, DT_COUNT, c->loc, "accuracy");
    if (!lg || !lb) return lw_err(L);
    if (lg->shape.rank != 2 || lb->shape.rank != 1 || lb->shape.dims[0] != lg->shape.dims[0])
        return lw_error(L, c->loc, "accuracy: expected scores [N,C] and labels [N], got %s and %s",
                        tstr(L, lg), tstr(L, lb));
    Graph *g = G(L);
    Node *am = ir_reduce(g, OP_ARGMAX, lg, 1u << 1, c->loc);
    Node *eq = ir_binary(g, OP_EQ, am, lb, c->loc);
    return lw_tensor(L, ir_mean(g, ir_cast(g, eq, DT_F32, c->loc), 1u, c->loc));
}

static Value *bi_params(Lower *L, BuiltinCall *c) {
    Value *f = c->pos[0];
    const char *root = NULL;
    if (f->kind == V_FUNC && f->u.fn.kind == FN_DECL)
        root = f->u.fn.inst ? f->u.fn.inst : f->u.fn.decl->name;
    else if (f->kind == V_STR)
        root = f->u.s;
    if (!root)
        return lw_error(L, c->pos_loc[0], "params: expected a function, got %s",
                        lw_value_desc(L, f));
    size_t rl = strlen(root);
    int *slots = arena_alloc(L->a, sizeof(int) * (size_t)(L->m->nparams ? L->m->nparams : 1));
    if (!slots) return lw_err(L);
    int n = 0;
    for (int i = 0; i < L->m->nparams; i++) {
        const char *p = L->m->slots[L->m->param_slots[i]].name;
        if (strncmp(p, root, rl) == 0 && p[rl] == '.') slots[n++] = L->m->param_slots[i];
    }
    if (n == 0)
        return lw_error(
            L, c->loc,
            "params(%s): no parameters traced yet under '%s' (call it in a train block or before)",
            root, root);
    Value *t = lw_params_tree(L, slots, n);
    Value *sub = val_tree_get(t, root);
    return sub ? sub : t;
}

static Value *bi_select(Lower *L, BuiltinCall *c) {
    Value *k = c->pos[0];
    if (k->kind != V_STR)
        return lw_error(L, c->pos_loc[0], "select: the key must be a string, got %s",
                        lw_value_desc(L, k));
    for (int i = 0; i < c->nextra; i++)
        if (strcmp(c->extra[i].name, k->u.s) == 0) return c->extra[i].v;
    const char *alts = "";
    for (int i = 0; i < c->nextra; i++)
        alts = lw_printf(L, "%s%s%s", alts, i ? ", " : "", c->extra[i].name);
    return lw_error(L, c->pos_loc[0], "select: no alternative named '%s' (alternatives: %s)",
                    k->u.s, alts);
}

/* ---- the table ----------------------------------------------------------------------- */

#define NOKW                                                                                       \
    { NULL }
static const Builtin builtins[] = {
    /* constructors */
    {"zeros", 0, IR_MAX_RANK, {"dtype"}, 0, bi_zeros},
    {"ones", 0, IR_MAX_RANK, {"dtype"}, 0, bi_ones},
    {"full", 2, 2, {"dtype"}, 0, bi_full},
    {"eye", 1, 2, {"dtype"}, 0, bi_eye},
    {"iota", 1, 1, {"dtype"}, 0, bi_iota},
    {"tensor", 1, 1, {"dtype"}, 0, bi_tensor},
    {"zeros_like", 1, 1, {"dtype"}, 0, bi_zeros_like},
    {"ones_like", 1, 1, {"dtype"}, 0, bi_ones_like},
    {"full_like", 2, 2, {"dtype"}, 0, bi_full_like},
    {"randn", 0, IR_MAX_RANK, {"seed", "stream", "dtype"}, 0, bi_randn},
    {"rand", 0, IR_MAX_RANK, {"seed", "stream", "dtype"}, 0, bi_rand},
    {"randn_like", 1, 1, {"seed", "stream"}, 0, bi_randn_like},
    {"rand_like", 1, 1, {"seed", "stream"}, 0, bi_rand_like},
    /* parameter initialisers */
    {"glorot_uniform", 0, 0, {"gain"}, BF_INIT, bi_glorot_uniform},
    {"he_normal", 0, 0, NOKW, BF_INIT, bi_he_normal},
    {"normal", 0, 0, {"std", "mean"}, BF_INIT, bi_normal},
    {"uniform", 0, 2, NOKW, BF_INIT, bi_uniform},
    /* math */
    {"exp", 1, 1, NOKW, 0, bi_exp},
    {"log", 1, 1, NOKW, 0, bi_log},
    {"sqrt", 1, 1, NOKW, 0, bi_sqrt},
    {"abs", 1, 1, NOKW, 0, bi_abs},
    {"sign", 1, 1, NOKW, 0, bi_sign},
    {"floor", 1, 1, NOKW, 0, bi_floor},
    {"tanh", 1, 1, NOKW, 0, bi_tanh},
    {"sigmoid", 1, 1, NOKW, 0, bi_sigmoid},
    {"relu", 1, 1, NOKW, 0, bi_relu},
    {"gelu", 1, 1, {"approximate"}, 0, bi_gelu},
    {"erf", 1, 1, NOKW, 0, bi_erf},
    {"sin", 1, 1, NOKW, 0, bi_sin},
    {"cos", 1, 1, NOKW, 0, bi_cos},
    {"stop_grad", 1, 1, NOKW, 0, bi_stop_grad},
    {"pow", 2, 2, NOKW, 0, bi_pow},
    {"clip", 1, 3, {"lo", "hi"}, 0, bi_clip},
    {"where", 3, 3, NOKW, 0, bi_where},
    /* reductions */
    {"sum", 1, 1, {"axis", "keepdims"}, 0, bi_sum},
    {"mean", 1, 1, {"axis", "keepdims"}, 0, bi_mean},
    {"max", 1, 2, {"axis", "keepdims"}, 0, bi_max},
    {"min", 1, 2, {"axis", "keepdims"}, 0, bi_min},
    {"argmax", 1, 1, {"axis", "keepdims"}, 0, bi_argmax},
    {"argmin", 1, 1, {"axis", "keepdims"}, 0, bi_argmin},
    {"logsumexp", 1, 1, {"axis", "keepdims"}, 0, bi_logsumexp},
    /* order */
    {"cumsum", 1, 1, {"axis", "reverse"}, 0, bi_cumsum},
    {"sort", 1, 1, {"axis", "descending"}, 0, bi_sort},
    {"argsort", 1, 1, {"axis", "descending"}, 0, bi_argsort},
    {"top_k", 2, 2, {"axis"}, 0, bi_top_k},
    {"top_k_indices", 2, 2, {"axis"}, 0, bi_top_k_indices},
    {"quantile", 2, 2, {"axis"}, 0, bi_quantile},
    {"percentile", 2, 2, {"axis"}, 0, bi_percentile},
    {"nanquantile", 2, 2, {"axis"}, 0, bi_nanquantile},
    {"nanpercentile", 2, 2, {"axis"}, 0, bi_nanpercentile},
    {"segment_sum", 1, 3, {"key", "groups"}, 0, bi_segment_sum},
    {"segment_mean", 1, 3, {"key", "groups"}, 0, bi_segment_mean},
    {"components", 1, 1, NOKW, 0, bi_components},
    /* shapes */
    {"reshape", 2, 2, NOKW, 0, bi_reshape},
    {"permute", 2, 2, NOKW, 0, bi_permute},
    {"transpose", 1, 1, NOKW, 0, bi_transpose},
    {"concat", 1, -1, {"axis"}, 0, bi_concat},
    {"stack", 1, -1, {"axis"}, 0, bi_stack},
    {"pad", 2, 2, {"value"}, 0, bi_pad},
    {"outer", 2, 2, NOKW, 0, bi_outer},
    {"squeeze", 1, 1, {"axis"}, 0, bi_squeeze},
    {"expand_dims", 2, 2, NOKW, 0, bi_expand_dims},
    /* linear algebra */
    {"dot", 2, 2, NOKW, 0, bi_dot},
    {"norm", 1, 1, NOKW, 0, bi_norm},
    {"solve", 2, 2, NOKW, 0, lw_bi_solve},
    {"cholesky", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"inv", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"pinv", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"det", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"slogdet", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"qr", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"svd", 1, 1, NOKW, 0, lw_bi_linalg1},
    {"eigh", 1, 1, NOKW, 0, lw_bi_linalg1},
    /* losses */
    {"cross_entropy", 2, 2, NOKW, 0, bi_cross_entropy},
    {"mse", 2, 2, NOKW, 0, bi_mse},
    {"softmax", 1, 1, {"axis"}, 0, bi_softmax},
    {"log_softmax", 1, 1, {"axis"}, 0, bi_log_softmax},
    {"one_hot", 2, 2, {"dtype"}, 0, bi_one_hot},
    /* autodiff */
    {"grad", 2, 2, NOKW, 0, bi_grad},
    {"hvp", 3, 3, NOKW, 0, bi_hvp},
    {"hessian_trace", 2, 2, NOKW, 0, bi_hessian_trace},
    /* sampling, seeds */
    {"sample", 2, 2, {"seed", "step", "stream"}, 0, bi_sample},
    {"choice", 2, 2, {"replace", "seed", "step", "stream"}, 0, bi_choice},
    {"permutation", 1, 1, {"seed", "step", "stream"}, 0, bi_permutation},
    {"histogram", 4, 4, NOKW, 0, bi_histogram},
    {"fresh_seed", 0, 0, NOKW, BF_STEP, bi_fresh_seed},
    /* data */
    {"idx", 1, 1, {"scale", "split"}, BF_DATA, lw_load_idx},
    {"npy", 1, 1, {"split"}, BF_DATA, lw_load_npy},
    {"csv", 1, 1, {"header", "y", "labels", "dtype", "split"}, BF_DATA, lw_load_csv},
    {"first", 2, 2, NOKW, 0, bi_first},
    {"accuracy", 2, 2, NOKW, 0, bi_accuracy},
    /* misc */
    {"len", 1, 1, NOKW, 0, bi_len},
    {"float", 1, 1, NOKW, 0, bi_float},
    {"int", 1, 1, NOKW, 0, bi_int},
    {"params", 1, 1, NOKW, 0, bi_params},
    {"select", 1, 1, NOKW, BF_ANYKW, bi_select},
};
#define NBUILTINS ((int)(sizeof builtins / sizeof builtins[0]))

int fe_builtin_index(const char *name) {
    for (int i = 0; i < NBUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0) return i;
    return -1;
}

const Builtin *fe_builtin_find(const char *name) {
    int i = fe_builtin_index(name);
    return i < 0 ? NULL : &builtins[i];
}

const Builtin *fe_builtin_get(int i) {
    return i >= 0 && i < NBUILTINS ? &builtins[i] : NULL;
}

Value *lw_builtin_call(Lower *L, int i, CallArg *args, int nargs, SrcLoc loc) {
    const Builtin *b = fe_builtin_get(i);
    if (!b) return lw_error(L, loc, "internal error: builtin %d", i);
    BuiltinCall c;
    memset(&c, 0, sizeof c);
    c.loc = loc;
    c.name = b->name;
    c.pos = arena_alloc(L->a, sizeof(Value *) * (size_t)(nargs ? nargs : 1));
    c.pos_loc = arena_alloc(L->a, sizeof(SrcLoc) * (size_t)(nargs ? nargs : 1));
    c.extra = arena_alloc(L->a, sizeof(CallArg) * (size_t)(nargs ? nargs : 1));
    if (!c.pos || !c.pos_loc || !c.extra) return lw_err(L);
    bool ok = true;
    for (int k = 0; k < nargs; k++) {
        Value *v = args[k].v;
        if (val_is_error(v)) return lw_err(L);
        if (!args[k].name) {
            c.pos[c.npos] = v;
            c.pos_loc[c.npos] = args[k].loc;
            c.npos++;
            continue;
        }
        int j = -1;
        for (int q = 0; q < FE_MAX_KW && b->kw[q]; q++)
            if (strcmp(b->kw[q], args[k].name) == 0) j = q;
        if (j < 0) {
            if (b->flags & BF_ANYKW) {
                c.extra[c.nextra++] = args[k];
                continue;
            }
            const char *near = fe_closest(args[k].name, b->kw, FE_MAX_KW);
            if (near)
                lw_error(L, args[k].loc, "%s has no keyword '%s' (did you mean '%s'?)", b->name,
                         args[k].name, near);
            else if (!b->kw[0])
                lw_error(L, args[k].loc, "%s takes no keyword arguments (got '%s')", b->name,
                         args[k].name);
            else
                lw_error(L, args[k].loc, "%s has no keyword '%s'", b->name, args[k].name);
            ok = false;
            continue;
        }
        if (c.kw[j]) {
            lw_error(L, args[k].loc, "keyword '%s' is given twice", args[k].name);
            ok = false;
            continue;
        }
        c.kw[j] = v;
        c.kw_loc[j] = args[k].loc;
    }
    if (!ok) return lw_err(L);
    if (c.npos < b->min_pos || (b->max_pos >= 0 && c.npos > b->max_pos)) {
        if (b->min_pos == b->max_pos)
            return lw_error(L, loc, "%s takes %d argument%s, got %d", b->name, b->min_pos,
                            b->min_pos == 1 ? "" : "s", c.npos);
        if (b->max_pos < 0)
            return lw_error(L, loc, "%s takes at least %d argument%s, got %d", b->name, b->min_pos,
                            b->min_pos == 1 ? "" : "s", c.npos);
        return lw_error(L, loc, "%s takes %d to %d arguments, got %d", b->name, b->min_pos,
                        b->max_pos, c.npos);
    }
    if ((b->flags & BF_INIT) && !L->pinit)
        return lw_error(L, loc,
                        "%s() initialises a parameter: use it as `param W: f32[...] = %s()`",
                        b->name, b->name);
    for (int k = 0; k < c.npos; k++)
        if (c.pos[k]->kind == V_LOSS && strcmp(b->name, "grad") != 0) {
            c.pos[k] = lw_loss_value(L, c.pos_loc[k]);
            if (val_is_error(c.pos[k])) return lw_err(L);
        }
    return b->fn(L, &c);
}
