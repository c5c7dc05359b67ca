/* The graph IR: pure dataflow over statically shaped tensors.
 *
 * A Graph owns its nodes (in its Arena) in creation order, which is always a
 * valid topological order: a node's sources are created before it. Nodes are
 * made only through the builder functions below; each runs the op's shape and
 * dtype rule and returns NULL with a diagnostic (at the node's SrcLoc) on a
 * mismatch, and returns NULL silently when a source is NULL, so one error does
 * not cascade. Every op is pure, random ones included (their numbers are a
 * function of seed, stream and index), so CSE and re-evaluation are safe.
 *
 * Semantics preamble: elementwise primitives need identical shapes and dtypes
 * (the builders broadcast and promote); reductions drop the reduced axes;
 * bool is stored as one byte; integer division truncates; see ops.def for
 * each op's meaning. */
#ifndef DFLOW_IR_IR_H
#define DFLOW_IR_IR_H

#include <stdbool.h>
#include <stdint.h>

#include "../runtime/tensor.h"
#include "arena.h"
#include "diag.h"

#define IR_MAX_RANK RT_MAX_RANK

typedef enum {
#define X(id, name, arity, shape, flags, doc) OP_##id,
#include "ops.def"
#undef X
} OpKind;

/* The number of ops, kept out of OpKind so that a switch naming every op
 * (ir/op_cases.h) need not name a sentinel too; an int, as an enumerator
 * would be, but not one of another enum that OpKind values compare with. */
enum {
    IR_OP_ROWS = 0
#define X(id, name, arity, shape, flags, doc) +1
#include "ops.def"
#undef X
};
#define OP_COUNT ((int)IR_OP_ROWS)

enum {
    OPF_EW = 1 << 0,        /* elementwise */
    OPF_RED = 1 << 1,       /* reduction over attr.reduce.axes */
    OPF_MOVE = 1 << 2,      /* data movement */
    OPF_CONTR = 1 << 3,     /* contraction (BLAS) */
    OPF_RAND = 1 << 4,      /* counter-based random */
    OPF_DIFF = 1 << 5,      /* has a derivative rule producing nonzero gradients */
    OPF_FLOATONLY = 1 << 6, /* sources must be floating point */
    OPF_CMP = 1 << 7,       /* result is bool */
    OPF_ORDER = 1 << 8,     /* along attr.order.axis, by a runtime routine */
    OPF_CALL = 1 << 9,      /* library call (runtime/linalg.h); opaque to fusion */
};

typedef enum {
    SR_SAME, /* result shape = shape of src0 (all sources equal) */
    SR_ATTR, /* result shape is given by the builder (stored on the node) */
    SR_REDUCE,
    SR_PERMUTE,
    SR_SLICE,
    SR_CONCAT,
    SR_GATHER,
    SR_PAD,
    SR_MATMUL,
    SR_ORDER, /* src0's shape; dtype: cumsum src0's, argsort and components i64 */
    SR_CALL,  /* per op: ir_call_results */
} ShapeRule;

typedef struct {
    const char *name;
    int arity; /* -1 = variadic */
    ShapeRule shape_rule;
    unsigned flags;
    const char *doc;
} OpInfo;

extern const OpInfo ir_ops[OP_COUNT];
const char *ir_op_name(OpKind op);
bool ir_op_from_name(const char *name, OpKind *out);

/* Typed attributes, one member per op family (keyed by Node.op). */
typedef union {
    struct {
        int index;
    } input; /* INPUT */
    struct {
        double value;
        int64_t ivalue;
    } constant; /* CONST: integer and bool dtypes read
                   ivalue (exact), floats value */
    struct {
        int axis;
    } iota; /* IOTA */
    struct {
        uint32_t axes;
    } reduce; /* SUM, REDUCE_*, ARGMAX */
    struct {
        int perm[IR_MAX_RANK];
    } permute; /* PERMUTE */
    struct {
        int64_t start[IR_MAX_RANK], step[IR_MAX_RANK];
    } slice; /* SLICE; stop implied by shape */
    struct {
        int axis;
    } concat; /* CONCAT */
    struct {
        int64_t lo[IR_MAX_RANK], hi[IR_MAX_RANK];
        double value;
    } pad; /* PAD */
    struct {
        uint32_t stream;
        uint32_t k;
    } rng; /* RNG_*, FRESH_SEED (k) */
    struct {
        int axis;
        int flag; /* cumsum: reverse (j >= i); argsort: descending */
    } order;      /* CUMSUM, ARGSORT, COMPONENTS (axis 0) */
} Attr;

enum {
    NODE_PARAM = 1 << 0, /* an input that holds a trainable parameter */
    NODE_NO_FUSE = 1 << 1,
};

typedef struct Node {
    uint32_t id; /* dense index into Graph.nodes */
    OpKind op;
    DType dtype;
    Shape shape;
    int nsrc;
    struct Node **src;
    Attr attr;
    SrcLoc loc;
    uint32_t flags;
    const char *name; /* optional, for dumps: an input's slot name, a param path */
} Node;

typedef struct Graph {
    Arena *arena;
    DiagList *diags;
    const char *name;
    Node **nodes;
    uint32_t nnodes, cap;
    Node **inputs; /* inputs[i]->attr.input.index == i */
    int ninputs, cap_inputs;
    Node **outputs;
    int noutputs, cap_outputs;
    /* set by ir_mark_repeated from the host program: */
    bool repeated; /* run in a loop: compiled before its first run */
    bool once;     /* run outside loops only (an initialiser, a final evaluation):
                      compiled cheaply; neither flag: a graph run directly */
    double runs;   /* expected runs: the product of the enclosing loops' constant trip
                      counts (IR_UNKNOWN_TRIPS for a loop whose count is not constant),
                      summed over call sites; 0: not marked */
} Graph;

#define IR_UNKNOWN_TRIPS 1000.0

Graph *ir_graph_new(Arena *a, DiagList *d, const char *name);
/* Appends an output; returns its index. */
int ir_graph_add_output(Graph *g, Node *n);

/* Raw constructor: no checking beyond arity; for passes that know the shape. */
Node *ir_node_new(Graph *g, OpKind op, DType dt, Shape shape, Node *const *src, int nsrc,
                  const Attr *attr, SrcLoc loc);

/* ---- builders (checked; NULL + diagnostic on error) ---- */
Node *ir_input(Graph *g, DType dt, Shape s, const char *name, SrcLoc loc);
Node *ir_const(Graph *g, DType dt, Shape s, double value, SrcLoc loc);
Node *ir_scalar(Graph *g, DType dt, double value, SrcLoc loc); /* rank-0 const */
/* An integer constant held exactly (a double rounds above 2^53). */
Node *ir_const_int(Graph *g, DType dt, Shape s, int64_t value, SrcLoc loc);
Node *ir_scalar_int(Graph *g, DType dt, int64_t value, SrcLoc loc);
Node *ir_iota(Graph *g, DType dt, Shape s, int axis, SrcLoc loc);
Node *ir_unary(Graph *g, OpKind op, Node *a, SrcLoc loc);
/* Binary elementwise ops with numpy broadcasting and dtype promotion:
 * float beats int beats bool; wider beats narrower; bool in arithmetic -> f32. */
Node *ir_binary(Graph *g, OpKind op, Node *a, Node *b, SrcLoc loc);
Node *ir_where(Graph *g, Node *c, Node *a, Node *b, SrcLoc loc);
Node *ir_cast(Graph *g, Node *a, DType to, SrcLoc loc); /* no-op when same dtype */
Node *ir_reduce(Graph *g, OpKind op, Node *a, uint32_t axes, SrcLoc loc);
Node *ir_reshape(Graph *g, Node *a, Shape s, SrcLoc loc);
Node *ir_permute(Graph *g, Node *a, const int *perm, SrcLoc loc);
Node *ir_broadcast(Graph *g, Node *a, Shape s, SrcLoc loc); /* no-op when same shape */
/* stop[] exclusive; all normalised (0 <= start <= stop <= dim, step >= 1). */
Node *ir_slice(Graph *g, Node *a, const int64_t *start, const int64_t *stop, const int64_t *step,
               SrcLoc loc);
Node *ir_concat(Graph *g, Node *const *xs, int n, int axis, SrcLoc loc);
Node *ir_gather(Graph *g, Node *data, Node *idx, SrcLoc loc);
Node *ir_scatter_add(Graph *g, Node *upd, Node *idx, int64_t rows, SrcLoc loc);
Node *ir_pad(Graph *g, Node *a, const int64_t *lo, const int64_t *hi, double value, SrcLoc loc);
/* The order ops (ops.def): running sum along axis (reverse: from the end),
 * stable sort indices along axis, labels of a bool mask's regions. */
Node *ir_cumsum(Graph *g, Node *a, int axis, bool reverse, SrcLoc loc);
Node *ir_argsort(Graph *g, Node *a, int axis, bool descending, SrcLoc loc);
Node *ir_components(Graph *g, Node *mask, SrcLoc loc);
/* composite_order.c: values picked along axis by indices (take_along_axis),
 * sorted values (stable; gradients go back to the source positions), the k
 * largest along axis and their indices (largest first, equal values
 * by lower index), numpy's linear quantile (drops axis), and sums / means of
 * the rows of x grouped by labels in [0, n) (an empty group's mean is 0). */
Node *ir_take_along(Graph *g, Node *x, Node *idx, int axis, SrcLoc loc);
Node *ir_sort(Graph *g, Node *x, int axis, bool descending, SrcLoc loc);
Node *ir_top_k(Graph *g, Node *x, int64_t k, int axis, SrcLoc loc);
Node *ir_top_k_indices(Graph *g, Node *x, int64_t k, int axis, SrcLoc loc);
Node *ir_quantile(Graph *g, Node *x, double q, int axis, SrcLoc loc);
/* numpy's nanquantile: of the values that are not NaN (NaN when none is) */
Node *ir_nanquantile(Graph *g, Node *x, double q, int axis, SrcLoc loc);
Node *ir_segment_sum(Graph *g, Node *x, Node *labels, int64_t n, SrcLoc loc);
Node *ir_segment_mean(Graph *g, Node *x, Node *labels, int64_t n, SrcLoc loc);
Node *ir_matmul(Graph *g, Node *a, Node *b, SrcLoc loc); /* rank>=2, equal batch dims */
Node *ir_rng(Graph *g, OpKind op, DType dt, Shape s, Node *seed, Node *offset, uint32_t stream,
             SrcLoc loc); /* seed, offset: i64 scalars */
Node *ir_fresh_seed(Graph *g, Node *run_seed, Node *t, uint32_t k, SrcLoc loc);

/* ---- library calls and tuples (docs/architecture.md, "Multi-output nodes") ----
 * A call op (OPF_CALL) with one result holds it; one with several holds a
 * tuple: the results in order, each in C order over its whole shape, packed
 * into one flat tensor of their common dtype. ir_call_results gives the
 * results' shapes (returns their number, 0 when n is no call); ir_tuple_get
 * selects result i (a slice and a reshape of the packed value, so fusion,
 * autodiff and both backends treat the selection as ordinary movement). */
#define IR_MAX_RESULTS 4
Node *ir_call(Graph *g, OpKind op, Node *const *src, SrcLoc loc);
int ir_call_results(const Node *n, Shape *res);
Node *ir_tuple_get(Graph *g, Node *t, int i, SrcLoc loc);
/* Result i, laid out as call t's, of any packed tensor of t's shape (a
 * gradient of t, in derivative rules); ir_tuple_get is ir_tuple_part(t, t). */
Node *ir_tuple_part(Graph *g, const Node *t, Node *packed, int i, SrcLoc loc);
/* How the runtime runs call n (runtime/linalg.h): its RtLaFn, the number
 * of matrices, src[0]'s m x n and solve's k columns of b. */
typedef struct {
    int32_t fn;
    int64_t batch, m, n, k;
} IrCallDims;
IrCallDims ir_call_dims(const Node *n);
/* Composites over calls (composite.c). */
Node *ir_pinv(Graph *g, Node *a, SrcLoc loc);

/* ---- composites: built from primitives so they differentiate for free ---- */
Node *ir_mean(Graph *g, Node *a, uint32_t axes, SrcLoc loc);
Node *ir_relu(Graph *g, Node *a, SrcLoc loc);
Node *ir_sigmoid(Graph *g, Node *a, SrcLoc loc);
Node *ir_tanh(Graph *g, Node *a, SrcLoc loc);
/* x Phi(x) (exact, with erf), or with tanh_form its tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's approximate="tanh" */
Node *ir_gelu(Graph *g, Node *a, bool tanh_form, SrcLoc loc);
Node *ir_logsumexp(Graph *g, Node *a, int axis, SrcLoc loc); /* drops axis */
Node *ir_argmin(Graph *g, Node *a, int axis, SrcLoc loc);    /* i64 index of the first minimum */
Node *ir_softmax(Graph *g, Node *a, int axis, SrcLoc loc);
Node *ir_log_softmax(Graph *g, Node *a, int axis, SrcLoc loc);
/* logits f[N, C], labels integer [N] -> scalar mean negative log-likelihood. */
Node *ir_cross_entropy(Graph *g, Node *logits, Node *labels, SrcLoc loc);
Node *ir_mse(Graph *g, Node *a, Node *b, SrcLoc loc);
/* a // b: Python's floor division (numpy's floor_divide), rounding toward
 * -inf so that a == (a // b) * b + a % b; integer b == 0 gives 0, float NaN. */
Node *ir_floordiv(Graph *g, Node *a, Node *b, SrcLoc loc);
/* key: [n]; the i32 rank of each of the first k keys among all n (how many
 * keys are smaller, or equal at a lower index): for random keys, a uniform
 * draw of k of 0..n-1 without replacement (docs/rng.md). k * n comparisons. */
Node *ir_key_ranks(Graph *g, Node *key, int64_t k, SrcLoc loc);
/* numpy.histogram(x, bins, (lo, hi))[0] as i64[bins]: lo, hi f64 scalars; x of
 * any shape, flattened. N * bins comparisons. */
Node *ir_histogram(Graph *g, Node *x, int64_t bins, Node *lo, Node *hi, SrcLoc loc);
Node *ir_one_hot(Graph *g, Node *labels, int64_t classes, DType dt, SrcLoc loc);
/* Sum to a broadcast-compatible smaller shape (undoes broadcasting). */
Node *ir_sum_to(Graph *g, Node *a, Shape to, SrcLoc loc);
/* Adds/removes size-1 axes: keepdims helper for reductions. */
Node *ir_unsqueeze_axes(Graph *g, Node *a, uint32_t axes, SrcLoc loc);

/* Promotion used by ir_binary; exposed for the frontend. */
DType ir_promote(DType a, DType b);
/* numpy broadcast of two shapes; false if incompatible. */
bool ir_broadcast_shapes(const Shape *a, const Shape *b, Shape *out);

/* ---- checking and printing ---- */
/* Checks topological order, arity, shape and dtype rules, attrs, outputs.
 * Reports "internal error: <pass>: ..." diagnostics; returns false on any. */
bool ir_verify(const Graph *g, const char *after_pass);
/* Stable text form, one node per line:
 *   %12 = add f32[64,128] %10, %11  ; model.dfl:14:9 */
void ir_print(const Graph *g, FILE *out);

#endif
