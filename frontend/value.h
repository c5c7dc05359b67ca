/* Values of the lowering's abstract interpreter.
 *
 * Lowering traces the program: every expression evaluates to a Value. Some
 * are compile-time constants (ints, floats, bools, strings: config values,
 * literals, shape dimensions), some stand for run-time tensors (a Node of the
 * graph being built, or a host slot that a graph reads through an input
 * node), and some are structure (trees of named values, lists, functions,
 * imported modules, optimizer instances). Values are immutable once built
 * and live in the compilation's arena. V_ERROR marks an expression that
 * already reported its error: every consumer passes it on silently, so one
 * mistake gives one diagnostic. A number that is a config value remembers
 * which config it is (Value.cfg), so that graphs read it from a slot a built
 * program can change. */
#ifndef DFLOW_FRONTEND_VALUE_H
#define DFLOW_FRONTEND_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/ir.h"
#include "ast.h"

typedef struct Value Value;
typedef struct FeMod FeMod; /* an imported or the main module (lower_internal.h) */
typedef struct Scope Scope; /* a name -> Value environment (lower_internal.h) */

typedef enum {
    V_ERROR,  /* an expression that failed (already reported) */
    V_NONE,   /* no value: `None`, a statement used as a value */
    V_INT,    /* compile-time integer */
    V_FLOAT,  /* compile-time float */
    V_BOOL,   /* compile-time bool */
    V_STR,    /* compile-time string */
    V_TENSOR, /* a node of a graph (always the graph being built) */
    V_SLOT,   /* a host slot; read into a graph through a cached input node */
    V_TREE,   /* named fields: parameter trees, data records */
    V_LIST,   /* [a, b, ...] */
    V_FUNC,   /* something callable */
    V_OPTIM,  /* an optimizer with bound arguments */
    V_MODULE, /* an imported namespace (nn, optim) */
    V_LOSS,   /* `loss` inside an optimizer step */
} ValueKind;

typedef enum {
    FN_DECL,      /* a fn declaration */
    FN_BUILTIN,   /* an entry of the builtin table */
    FN_LAMBDA,    /* fn(params) body, with its defining scope */
    FN_OPTIMIZER, /* an optimizer declaration; calling it binds arguments */
} FuncKind;

/* A V_TENSOR whose floating-point dtype comes only from literals (a float
 * literal met an integer tensor, as in `0.999 ** (t + 1)`): it is "weak", as
 * in JAX. It is built in f32, and built again from its operands in the dtype
 * of the first float tensor it meets (lower_expr.c). */
typedef struct WeakExpr {
    int op; /* an OpKindAst; -1 for unary minus (then b is NULL) */
    const Value *a, *b;
    SrcLoc loc;
} WeakExpr;

struct Value {
    ValueKind kind;
    const WeakExpr *weak; /* V_TENSOR only; NULL: its dtype is its own */
    /* V_INT/V_FLOAT/V_BOOL that is exactly a main-module config value (the
     * Value the config evaluated to, passed around unchanged): 1 + its index
     * into Module.configs; 0 = none. lw_node turns it into a read of the
     * config's SLOT_CONFIG slot; folding it marks the config baked. */
    int cfg;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;
        struct {
            Node *node;
            Graph *graph;
        } t;
        int slot;
        struct {
            int n;
            const char **names;
            Value **items;
        } tree; /* V_TREE (names) / V_LIST (names NULL) */
        struct {
            FuncKind kind;
            const Decl *decl;   /* FN_DECL, FN_OPTIMIZER */
            FeMod *mod;         /* the declaring module */
            int builtin;        /* FN_BUILTIN: index into the builtin table */
            const Expr *lambda; /* FN_LAMBDA: the EX_LAMBDA expression */
            Scope *closure;     /* FN_LAMBDA: the scope it was defined in */
            const char *inst;   /* FN_DECL: the model instance a call of it is (its
                                   parameters' path root), or NULL: a layer, whose
                                   parameters belong to the caller (lower_call.c) */
        } fn;
        struct {
            const Decl *decl;
            FeMod *mod;
            int n;
            const char **names; /* the optimizer's parameter names, in order */
            Value **vals;       /* bound values (defaults filled in lazily) */
            SrcLoc loc;         /* where the instance was made */
        } optim;
        FeMod *mod;
    } u;
};

/* Constructors: arena-allocated; NULL only on out-of-memory (callers treat it
 * as an error value). */
Value *val_error(Arena *a);
Value *val_none(Arena *a);
Value *val_int(Arena *a, int64_t i);
Value *val_float(Arena *a, double f);
Value *val_bool(Arena *a, bool b);
Value *val_str(Arena *a, const char *s);
Value *val_tensor(Arena *a, Node *n, Graph *g); /* NULL node -> V_ERROR */
Value *val_slot(Arena *a, int slot);
Value *val_tree(Arena *a, int n, const char **names, Value **items);
Value *val_list(Arena *a, int n, Value **items);

static inline bool val_is_error(const Value *v) {
    return !v || v->kind == V_ERROR;
}
static inline bool val_is_const(const Value *v) {
    return v && (v->kind == V_INT || v->kind == V_FLOAT || v->kind == V_BOOL);
}
static inline bool val_is_tensorish(const Value *v) {
    return v && (v->kind == V_TENSOR || v->kind == V_SLOT);
}
/* Numeric value of a constant (int/float/bool). */
double val_num(const Value *v);

/* "int", "float", "tensor", "tree", ... for messages. */
const char *val_kind_name(ValueKind k);

/* Field of a tree by name; NULL when absent. */
Value *val_tree_get(const Value *tree, const char *name);
/* True when a and b are trees (or lists) with the same names at every level. */
bool val_same_structure(const Value *a, const Value *b);
/* Number of non-tree leaves under v (v itself when it is not a tree/list). */
int val_count_leaves(const Value *v);

/* "f32[2,3]" / "f32" (scalar) into buf; returns buf. */
char *fe_type_str(DType dt, const Shape *s, char *buf, size_t n);

#endif
