/* Internal interface of the lowering (AST -> Module by tracing).
 *
 * Shared by lower.c (core: environments, graphs under construction, slots,
 * flushes at host statements, parameter paths), lower_expr.c (expressions),
 * lower_call.c (calls and inlining), lower_stmt.c (statements and host
 * control flow), lower_train.c (train blocks and optimizers), lower_data.c
 * (data declarations), builtins.c (the builtin table), sema.c (name checks)
 * and compile.c (fe_compile). Not a public header: only frontend/ includes
 * it. The design is the lead's "Lowering design" note; docs/language.md is
 * the semantics this implements. */
#ifndef DFLOW_FRONTEND_LOWER_INTERNAL_H
#define DFLOW_FRONTEND_LOWER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/module.h"
#include "../runtime/checked.h"
#include "frontend.h"
#include "lower_defs.h"
#include "value.h"

/* Limits that keep any program from hanging or exhausting the compiler. */
#define FE_MAX_CALL_DEPTH 64            /* nested inlined calls */
#define FE_MAX_NUMEL (INT64_C(1) << 31) /* elements of one tensor */
#define FE_UNROLL_BUDGET 100000         /* unrolled iterations (repeat, for in fns) per compile */
#define FE_MAX_NODES 2000000            /* nodes in one graph */
#define FE_MAX_HESSIAN 4096             /* elements of w for an exact hessian_trace */
#define FE_MAX_LITERAL 4096             /* numbers in one tensor literal [..] */
#define FE_MAX_KW 12                    /* keywords of one builtin */
#define FE_MAX_EXPR_DEPTH 4000 /* nesting of one expression (a+b+... chains are left-deep) */
/* items grad's dependence questions visit per compile (lower_defs.c) */
#define FE_REACH_BUDGET 20000000

/* ---- environments ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    Value *v;
    bool is_let;
    SrcLoc loc; /* where it was bound (for "declared here" notes) */
} Binding;

/* A function-level scope (Python-like: one per activation, blocks share it).
 * Lambdas get a scope whose parent is their defining scope. */
struct Scope {
    Scope *parent;
    FeMod *mod; /* the module whose globals are visible */
    Binding *b;
    int n, cap;
};

typedef enum { G_CONFIG, G_DATA, G_FN, G_OPTIM, G_MODEL, G_MODULE } GlobalKind;

typedef struct {
    const char *name;
    GlobalKind kind;
    const Decl *decl; /* NULL for config entries and modules */
    SrcLoc loc;
    Value *v;         /* config value, fn/optimizer value, module; data once evaluated */
    int state;        /* data, model: 0 pending, 1 being evaluated, 2 done */
    bool trained;     /* fn: a train block of its module bears its name, so the
                         name is the model that block trains (lower_call.c) */
    const Expr *expr; /* config: the value expression */
    int cfg;          /* a config of the main module: 1 + index into Module.configs; else 0 */
} Global;

struct FeMod {
    const char *name; /* "" for the program itself, "nn" for std/nn.dfl */
    Program *prog;
    Global *g;
    int n, cap;
    bool configured; /* config evaluated */
};

/* ---- graphs under construction ---------------------------------------------------- */

typedef struct GraphCtx {
    Graph *g;
    int *in_slots;
    int nin, cap_in;
    int *out_slots;
    int nout, cap_out;
    Node **slot_nodes; /* slot -> its input node in g (cache) */
    int cap_slot_nodes;
    GraphRec *rec;     /* what g read and wrote, kept after g is emitted (lower_defs.h) */
    SlotDef **in_defs; /* in_slots[i]'s definition when g read it */
    int cap_in_defs;
    struct GraphCtx *prev;
} GraphCtx;

/* One inlined call: parameter paths are built from these. */
typedef struct Activation {
    const Decl *fn;   /* NULL for a top-level context (train, main, every, optimizer) */
    const char *path; /* NULL at top level; "mlp", "mlp.linear0", ... */
    SrcLoc call;      /* the call inlined (none at top level) */
    bool root;        /* its path starts here: a model's call, or a top-level call */
    const char **callees;
    int *counts;
    int n, cap;
    struct Activation *prev;
} Activation;

/* Loop-carried variables of the host loops being lowered: name -> home. */
typedef struct HomeFrame {
    const char **names;
    Value **homes; /* V_SLOT or trees of V_SLOT */
    int n, cap;
    struct HomeFrame *prev;
} HomeFrame;

/* Where a parameter came from: the calls from its path's root (a model's
 * call, or a top-level call) down to the fn holding its `param`, for the
 * warning about parameters no train block trains. */
typedef struct {
    int slot;
    int ncalls;
    SrcLoc *calls;     /* outermost first */
    const Decl **fns;  /* the fn of each call */
    const char **inst; /* the model instance a call is, or NULL */
    bool trained;      /* a train block's loss uses the parameter */
} ParamOrigin;

/* The parameter whose initialiser is being lowered (implicit shapes). */
typedef struct {
    const char *path;
    DType dt;
    Shape shape;
    SrcLoc loc;
} ParamInit;

/* A train block being lowered: what `loss(p)` needs to re-trace. */
typedef struct TrainCtx {
    const char *name;
    const Expr *loss_expr;
    FeMod *mod;
    Value *batch;  /* record of batch slots */
    Value *data;   /* the training set record */
    Value *t;      /* the step slot */
    Value *loss;   /* the loss traced at the current params (V_TENSOR) */
    Value *params; /* the trainable tree at the start of the step */
    int fresh_k;   /* fresh_seed calls so far in this step */
    bool in_step;  /* lowering the optimizer's step block */
} TrainCtx;

typedef struct Lower {
    Arena *a;
    DiagList *d;
    SourceSet *src;
    Module *m;
    bool check_only;
    const CompileOptions *opts;
    FeMod *main;
    FeMod **mods;
    int nmods, cap_mods;

    GraphCtx *gc;      /* graph being built (stack) */
    HostBlock *hb;     /* host block receiving statements; NULL in graph-only contexts */
    Scope *host_scope; /* the scope a flush materialises */
    HomeFrame *homes;
    Activation *act;
    int call_depth;
    int host_loops;     /* enclosing host for/while (for `break`) */
    int unrolled_loops; /* enclosing unrolled loops (for `break`) */
    bool host;          /* statements here may become host statements */
    ParamInit *pinit;
    TrainCtx *train;
    Value *ovr;   /* loss(p): parameter override tree, or NULL */
    int *touched; /* param slots read while tracking (loss tracing) */
    int ntouched, cap_touched;
    bool track;
    ParamOrigin *porig; /* every param slot: the call that made it (lower_models.c) */
    int nporig, cap_porig;
    int ntrains; /* train blocks lowered */
    int64_t unroll_left;
    int ngraphs;
    Value *ret; /* value of the `return` that ended the current function */
    SrcLoc ret_loc;
    int loop_kind;        /* innermost loop: 0 none, 1 host (for/while), 2 unrolled */
    Value *loop_var;      /* innermost host `for` variable (for `every`) */
    unsigned char *owned; /* slot -> 1 when it holds a host variable (may become a loop home) */
    int cap_owned;
    const char *data_name; /* the data declaration being evaluated (loaders name their slots) */
    const char *src_dir;   /* directory of the program file, a fallback for data paths */
    bool oom;
    int expr_depth;
    int rt_cond;          /* host `if` branches on run-time values since the innermost loop */
    Global **cfg_globals; /* Module.configs[i] -> its Global in the main module */
    /* slot definitions for grad across host statements (lower_defs.c) */
    SlotDef **defs; /* slot -> its current definition */
    int cap_defs;
    Region *region; /* innermost host loop, branch or train being lowered */
    struct PendingGrad *pend;
    int npend, cap_pend;
    int64_t reach_budget;
} Lower;

typedef enum { FLOW_NEXT, FLOW_RETURN, FLOW_BREAK } Flow;
typedef struct BuiltinCall BuiltinCall;

/* ---- lower.c: core ----------------------------------------------------------------- */

Value *lw_error(Lower *L, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
Value *lw_err(Lower *L); /* an error value, no diagnostic */
const char *lw_printf(Lower *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

Scope *lw_scope_new(Lower *L, Scope *parent, FeMod *mod);
Binding *lw_scope_find(Scope *s, const char *name); /* this scope only */
/* Binds or rebinds name in s (no let check); v NULL unbinds it. */
void lw_scope_set(Lower *L, Scope *s, const char *name, Value *v, SrcLoc loc);
/* Name lookup: scope chain, then the module's globals, then builtins.
 * Returns NULL when the name is unknown (no diagnostic). */
Value *lw_lookup(Lower *L, Scope *s, const char *name, SrcLoc loc);
Global *lw_global(FeMod *m, const char *name);
Value *lw_model_decl(Lower *L, FeMod *m, const Global *g);
Value *lw_global_value(Lower *L, FeMod *m, Global *g, SrcLoc loc);
FeMod *lw_find_mod(Lower *L, const char *name);

/* Graph contexts. */
GraphCtx *lw_gc_push(Lower *L, const char *name);
void lw_gc_pop(Lower *L);
/* Ends the current graph: appends HS_RUN to hb when it has outputs, starts a
 * fresh graph in the same context. */
void lw_gc_emit(Lower *L, HostBlock *hb, SrcLoc loc);
/* Adds an output of the current graph writing slot. */
void lw_gc_output(Lower *L, Node *n, int slot);
/* The input node reading slot in the current graph (cached). */
Node *lw_slot_node(Lower *L, int slot, SrcLoc loc);
int lw_new_slot(Lower *L, const char *name, SlotKind k, DType dt, Shape s);
/* A SLOT_VAR slot for a host variable (one a loop may reuse as its home). */
int lw_var_slot(Lower *L, const char *name, DType dt, Shape s);
bool lw_is_owned(Lower *L, int slot);

/* Values and nodes. */
/* dtype and shape of a tensor-like value (V_TENSOR/V_SLOT, or a constant as
 * a scalar); false for other kinds. */
bool lw_type(Lower *L, const Value *v, DType *dt, Shape *s);
/* Node of v in the current graph; constants become scalars of dtype `hint`
 * (ints take an int/float hint, floats a float hint; DT_COUNT = default). */
Node *lw_node(Lower *L, const Value *v, DType hint, SrcLoc loc);
/* Config values (Value.cfg): the node reading v's SLOT_CONFIG slot (made on
 * first use) converted to dt, in the current graph. */
Node *lw_cfg_node(Lower *L, const Value *v, DType dt, SrcLoc loc);
/* Marks the config v is (if any) as read at compile time: it is then fixed
 * when the program is compiled (ModuleConfig.baked). Every fold, branch,
 * shape, bound or attribute that uses a constant's number calls this. */
void lw_cfg_bake(Lower *L, const Value *v, SrcLoc loc);
/* As lw_node, but with a diagnostic when v is not a tensor or number. */
Node *lw_need_node(Lower *L, const Value *v, DType hint, SrcLoc loc, const char *what);
Value *lw_tensor(Lower *L, Node *n);
const char *lw_value_desc(Lower *L, const Value *v); /* "f32[2,3]", "int 3", "tree" */
bool lw_check_numel(Lower *L, const Shape *s, SrcLoc loc, const char *what);

/* Host statements: materialise the host scope (and extra values) into slots,
 * emit the pending graph. extra[i] are rewritten in place. */
void lw_flush(Lower *L, Value **extra, int nextra, SrcLoc loc);
Value *lw_materialize(Lower *L, Value *v, Value *home, const char *name, SrcLoc loc);
Value *lw_home_of(Lower *L, const char *name);
void lw_homes_push(Lower *L);
void lw_homes_pop(Lower *L);
void lw_home_set(Lower *L, const char *name, Value *home);

/* Parameter paths. */
void lw_act_push(Lower *L, Activation *act, const Decl *fn, const char *callee_name);
/* A call of model instance inst: its parameters are inst.<...> wherever the call is. */
void lw_act_push_instance(Lower *L, Activation *act, const Decl *fn, const char *inst);
void lw_act_pop(Lower *L);
void lw_act_top(Lower *L, Activation *act); /* a fresh top-level activation */

/* Params: the value of parameter `path` (creating its slot and init graph on
 * first use). */
Value *lw_param(Lower *L, Scope *s, const Stmt *st);
int lw_find_slot(Lower *L, const char *name, SlotKind k);
void lw_touch(Lower *L, int slot);

/* ---- lower_expr.c ------------------------------------------------------------------ */

Value *lw_expr(Lower *L, Scope *s, const Expr *e);
Value *lw_binop(Lower *L, OpKindAst op, Value *a, Value *b, SrcLoc loc);
Value *lw_unop(Lower *L, OpKindAst op, Value *a, SrcLoc loc);
/* Map a unary node function over the leaves of a tree (or apply to a tensor). */
Value *lw_map1(Lower *L, Value *v, Node *(*f)(Lower *, Node *, void *, SrcLoc), void *ctx,
               SrcLoc loc);
Value *lw_where(Lower *L, Value *c, Value *a, Value *b, SrcLoc loc);
/* The new value of x after `x[index] op= v` (t: the EX_INDEX target): a
 * functional update of the selected elements (lower_expr.c). */
Value *lw_index_update(Lower *L, Scope *s, const Expr *t, AssignOp op, Value *v, SrcLoc loc);
/* Compile-time integer (an int, an integral float); diagnostic otherwise. */
bool lw_const_int(Lower *L, const Value *v, int64_t *out, SrcLoc loc, const char *what);
bool lw_const_num(Lower *L, const Value *v, double *out, SrcLoc loc, const char *what);
bool lw_const_bool(Lower *L, const Value *v, bool *out, SrcLoc loc, const char *what);
/* A shape from a list of ints or a single int. */
bool lw_shape_from(Lower *L, const Value *v, Shape *out, SrcLoc loc, const char *what);
Value *lw_field(Lower *L, Value *base, const char *name, SrcLoc loc);
const char *lw_binop_sym(OpKindAst op);

/* ---- lower_call.c ------------------------------------------------------------------ */

typedef struct {
    const char *name; /* keyword, or NULL */
    SrcLoc loc;
    Value *v;
} CallArg;

Value *lw_call_expr(Lower *L, Scope *s, const Expr *e);
/* Calls a callable value with evaluated arguments. */
Value *lw_call_value(Lower *L, Value *f, const char *fname, CallArg *args, int nargs, SrcLoc loc);
/* Inlines fn decl d of module mod. */
Value *lw_inline_fn(Lower *L, const Decl *d, FeMod *mod, CallArg *args, int nargs, SrcLoc loc);
/* Formats a TypeExpr as written ("f32[B,784]"). */
const char *lw_type_expr_str(Lower *L, const TypeExpr *t, Scope *s);

/* ---- lower_stmt.c ------------------------------------------------------------------ */

Flow lw_block(Lower *L, Scope *s, const Block *b);
Flow lw_stmt(Lower *L, Scope *s, const Stmt *st);
/* Names assigned anywhere in b (not inside nested fns or lambdas). */
void lw_assigned_names(Lower *L, const Block *b, const char ***names, int *n, int *cap);
void lw_main(Lower *L, const Decl *d);
/* Lowers a `log` list into HS_LOG (host context). */
void lw_log(Lower *L, Scope *s, const Arg *items, int n, SrcLoc loc);

/* ---- lower_train.c ----------------------------------------------------------------- */

void lw_train(Lower *L, FeMod *mod, const Decl *d);
/* Models (lower_models.c): lw_param_origin records a new param slot's origin,
 * lw_mark_trained the slots a train block's loss uses; lw_warn_untrained
 * warns, once per call, about parameters a program with train blocks uses
 * but never trains (a model called by the wrong name keeps its initial
 * values: the bug a model-as-value rule exists to prevent). */
void lw_param_origin(Lower *L, int slot);
void lw_mark_trained(Lower *L, const int *slots, int n);
void lw_warn_untrained(Lower *L);
/* loss(p, on = b) inside a step; p may be NULL (current params). */
Value *lw_loss_call(Lower *L, CallArg *args, int nargs, SrcLoc loc);
Value *lw_loss_value(Lower *L, SrcLoc loc);
/* The nested tree (by path components) of the given param slots, leaves V_SLOT. */
Value *lw_params_tree(Lower *L, const int *slots, int n);

/* ---- lower_data.c ------------------------------------------------------------------ */

/* Evaluates a data declaration: a record of slots (or a tensor slot). */
Value *lw_data_decl(Lower *L, FeMod *mod, const Decl *d);
/* Loaders (builtins idx, npy, csv); only inside a data declaration. */
Value *lw_load_idx(Lower *L, BuiltinCall *c);
Value *lw_load_npy(Lower *L, BuiltinCall *c);
Value *lw_load_csv(Lower *L, BuiltinCall *c);
/* first(ds, n): the first n rows of every field. */
Value *lw_first_rows(Lower *L, Value *ds, int64_t n, SrcLoc loc);

/* ---- builtins_linalg.c: library calls (runtime/linalg.h) ----------------------------- */

/* solve(a, b), cholesky, inv, pinv, det: tensors; slogdet, qr, svd, eigh:
 * records of their results (qr(a).q, svd(a).s, ...). */
Value *lw_bi_solve(Lower *L, BuiltinCall *c);
Value *lw_bi_linalg1(Lower *L, BuiltinCall *c);

/* ---- builtins.c -------------------------------------------------------------------- */

enum {
    BF_ANYKW = 1 << 0, /* accepts any keyword (select) */
    BF_INIT = 1 << 1,  /* parameter initialiser: only inside `param ... = ` */
    BF_STEP = 1 << 2,  /* only inside an optimizer step */
    BF_DATA = 1 << 3,  /* a data loader: only in `data` declarations */
};

struct BuiltinCall {
    SrcLoc loc;
    const char *name;
    int npos;
    Value **pos;
    SrcLoc *pos_loc;
    Value *kw[FE_MAX_KW]; /* by index into Builtin.kw; NULL when absent */
    SrcLoc kw_loc[FE_MAX_KW];
    CallArg *extra; /* BF_ANYKW: the keyword arguments */
    int nextra;
};

typedef struct Builtin {
    const char *name;
    int min_pos, max_pos; /* max_pos -1: any number */
    const char *kw[FE_MAX_KW];
    unsigned flags;
    Value *(*fn)(Lower *L, BuiltinCall *c);
} Builtin;

const Builtin *fe_builtin_find(const char *name);
int fe_builtin_index(const char *name); /* -1 when unknown */
const Builtin *fe_builtin_get(int i);
/* Calls builtin i with evaluated arguments (arity/keyword checks included). */
Value *lw_builtin_call(Lower *L, int i, CallArg *args, int nargs, SrcLoc loc);
/* Parameter initialisers and other helpers shared with lower*.c */
Value *lw_rng_tensor(Lower *L, OpKind op, DType dt, Shape s, Value *seed, Value *offset,
                     uint32_t stream, SrcLoc loc);
/* A constant tensor of dtype dt and shape s holding the constant v: an int
 * stays exact in an integer dtype (a double rounds above 2^53). */
Node *lw_const_node(Graph *g, DType dt, Shape s, const Value *v, SrcLoc loc);
Value *lw_zeros_like(Lower *L, Value *v, double fill, SrcLoc loc);
/* A tensor literal: a non-empty list, nested to any depth, of compile-time
 * numbers or bools. It stays a list (a shape, axes, pad widths, a split) until
 * it is used as a tensor: lw_node converts it (ragged: a located error). */
bool lw_is_numeric_list(const Value *v);
/* Its dtype (hint: the dtype of the tensor it meets, or DT_COUNT) and shape;
 * false when it is no numeric list or is ragged. */
bool lw_literal_type(const Value *v, DType hint, DType *dt, Shape *s);
Value *lw_reduce_all(Lower *L, OpKind op, Value *v, SrcLoc loc); /* sum over all leaves/elements */

/* ---- sema.c ------------------------------------------------------------------------ */

/* Name, arity, keyword, let, break/return placement checks over a module. */
bool fe_sema_module(Lower *L, FeMod *mod);
/* "did you mean" helper: closest of cands to name within a small edit distance. */
const char *fe_closest(const char *name, const char *const *cands, int n);

/* ---- compile.c --------------------------------------------------------------------- */

FeMod *lw_load_std(Lower *L, const char *name, SrcLoc loc);
/* Evaluates config entry g of module m (applying a --set override). */
Value *lw_config_value(Lower *L, FeMod *m, Global *g);

#endif
