/* The abstract syntax tree of a .dfl program.
 *
 * Built by parser.y through the constructors in ast.c; everything lives in
 * the compilation's Arena. Every node keeps the SrcLoc of its representative
 * token (an operator, a name, a keyword) for diagnostics. Lists are arrays
 * with a count. The tree mirrors docs/language.md's grammar closely; meaning
 * (names, types, shapes) is decided later by sema.c and lower.c. */
#ifndef DFLOW_FRONTEND_AST_H
#define DFLOW_FRONTEND_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "../ir/arena.h"
#include "../ir/diag.h"
#include "../runtime/tensor.h"

typedef struct Expr Expr;
typedef struct Stmt Stmt;
typedef struct Decl Decl;

typedef enum {
    EX_INT,    /* integer literal: ival */
    EX_FLOAT,  /* float literal: fval */
    EX_STRING, /* sval (unescaped) */
    EX_BOOL,   /* ival 0/1 */
    EX_NONE,   /* None (only meaningful as an index) */
    EX_NAME,   /* name */
    EX_UNARY,  /* op a: '-', '+', '!' */
    EX_BINARY, /* a op b: + - * / % @ ** == != < <= > >= && || */
    EX_IF,     /* if cond then a else b */
    EX_CALL,   /* callee(args) */
    EX_INDEX,  /* base[idx, ...]; each index an Expr or EX_SLICE / EX_NONE */
    EX_SLICE,  /* [lo]:[hi] inside an index; lo/hi may be NULL */
    EX_FIELD,  /* base.name */
    EX_LIST,   /* [args]: shapes, splits, trees; may have named args */
    EX_LAMBDA, /* fn(params) body */
} ExprKind;

typedef enum {
    OPK_ADD,
    OPK_SUB,
    OPK_MUL,
    OPK_DIV,
    OPK_FLOORDIV,
    OPK_MOD,
    OPK_MATMUL,
    OPK_POW,
    OPK_EQ,
    OPK_NE,
    OPK_LT,
    OPK_LE,
    OPK_GT,
    OPK_GE,
    OPK_AND,
    OPK_OR,
    OPK_NEG,
    OPK_PLUS,
    OPK_NOT,
} OpKindAst;

typedef struct {
    const char *name; /* NULL for a positional argument */
    SrcLoc name_loc;
    Expr *value;
} Arg;

typedef struct TypeExpr TypeExpr;
typedef struct Param Param;

struct Expr {
    ExprKind kind;
    SrcLoc loc;
    union {
        int64_t ival;
        double fval;
        const char *sval;
        const char *name;
        struct {
            OpKindAst op;
            Expr *a, *b;
        } op; /* b NULL for unary */
        struct {
            Expr *cond, *then_e, *else_e;
        } ife;
        struct {
            Expr *callee;
            Arg *args;
            int nargs;
        } call;
        struct {
            Expr *base;
            Expr **idx;
            int nidx;
        } index;
        struct {
            Expr *lo, *hi;
        } slice;
        struct {
            Expr *base;
            const char *name;
            SrcLoc name_loc;
        } field;
        struct {
            Arg *items;
            int n;
        } list;
        struct {
            Param *params;
            int nparams;
            Expr *body;
        } lambda;
    } u;
};

/* dtype[dims]: dims are expressions or "..." (ellipsis = NULL entry + flag). */
struct TypeExpr {
    SrcLoc loc;
    DType dtype;
    bool has_dims; /* f32 alone is a scalar; f32[] too */
    int ndims;
    Expr **dims; /* dims[i] == NULL means "..." */
};

typedef enum {
    PK_ANY,   /* no annotation */
    PK_TYPE,  /* a tensor type */
    PK_INT,   /* int (compile-time) */
    PK_FLOAT, /* float */
    PK_STR,   /* str */
} ParamKind;

struct Param {
    const char *name;
    SrcLoc loc;
    ParamKind kind;
    TypeExpr *type; /* PK_TYPE */
    Expr *deflt;    /* default value or NULL */
};

typedef struct {
    Stmt **items;
    int n;
    SrcLoc open, close; /* the braces, for "missing '}'" notes */
} Block;

typedef enum {
    ST_PARAM,  /* param name: type [= init] */
    ST_LET,    /* let name = value */
    ST_ASSIGN, /* targets (op)= value */
    ST_IF,     /* if cond then_b [else else_b | else_if] */
    ST_FOR,    /* for var in lo..hi body */
    ST_WHILE,
    ST_REPEAT, /* repeat count body */
    ST_BREAK,
    ST_RETURN,
    ST_LOG,  /* log n1 = e1, n2 = e2 */
    ST_SAVE, /* save "path" value */
    ST_PRINT,
    ST_EVERY, /* every n body */
    ST_FN,    /* a nested fn declaration */
    ST_EXPR,
} StmtKind;

typedef enum { AS_SET, AS_ADD, AS_SUB, AS_MUL, AS_DIV } AssignOp;

struct Stmt {
    StmtKind kind;
    SrcLoc loc;
    union {
        struct {
            const char *name;
            SrcLoc name_loc;
            TypeExpr *type;
            Expr *init;
        } param;
        struct {
            const char *name;
            SrcLoc name_loc;
            Expr *value;
        } let;
        struct {
            Expr **targets;
            int ntargets;
            AssignOp op;
            Expr *value;
        } assign;
        struct {
            Expr *cond;
            Block then_b;
            Block else_b;
            bool has_else;
        } ifs; /* else-if = else block of one ST_IF */
        struct {
            const char *var;
            SrcLoc var_loc;
            Expr *lo, *hi;
            Block body;
        } loop;
        struct {
            Expr *cond;
            Block body;
        } whl;
        struct {
            Expr *count;
            Block body;
        } rep;
        struct {
            Expr *value;
        } ret;
        struct {
            Arg *items;
            int n;
        } log; /* every item named */
        struct {
            const char *path;
            Expr *value;
        } save;
        struct {
            Expr **items;
            int n;
        } print;
        struct {
            Expr *every;
            Block body;
        } every;
        Decl *fn;
        Expr *expr;
    } u;
};

typedef enum {
    DC_IMPORT,
    DC_CONFIG,
    DC_DATA,
    DC_FN,
    DC_OPTIMIZER,
    DC_MODEL,
    DC_TRAIN,
    DC_MAIN
} DeclKind;

typedef struct {
    const char *name;
    SrcLoc loc;
    Expr *value;
} Setting; /* name = value (config entries, train settings, optimizer state) */

typedef struct {
    Expr *every;
    SrcLoc loc;
    Block body;
} EveryBlock;

struct Decl {
    DeclKind kind;
    SrcLoc loc;
    const char *name; /* NULL for import/config/main */
    SrcLoc name_loc;
    union {
        struct {
            const char **names;
            SrcLoc *locs;
            int n;
        } import;
        struct {
            Setting *items;
            int n;
        } config;
        struct {
            Expr *value;
        } data;
        struct {
            Param *params;
            int nparams;
            TypeExpr *ret;   /* may be NULL */
            Block body;      /* used when body_expr is NULL */
            Expr *body_expr; /* fn f(x) = expr */
        } fn;
        struct {
            Param *params;
            int nparams;
            Setting *states;
            int nstates;
            Block step;
        } opt;
        struct {
            Expr *value; /* names the fn (or another model) it instantiates */
        } model;
        struct {
            Setting *settings;
            int nsettings;
            EveryBlock *everys;
            int neverys;
        } train;
        struct {
            Block body;
        } main;
    } u;
};

typedef struct {
    uint32_t file;
    Decl **decls;
    int ndecls;
} Program;

/* Parses one source file (already in the SourceSet). Returns a Program even
 * with errors when recovery allowed it (check diag_has_errors), NULL when
 * nothing could be built. Reports every syntax error it can, at file:line:col;
 * a missing closer names the line of its opener in a note. */
Program *fe_parse(Arena *a, DiagList *d, uint32_t file);

/* The name an assignment target writes through: x for x, x.f, x[i] and
 * x.f[i].g; NULL when the target has no such root. */
const char *ast_target_root(const Expr *t);

/* Printing the AST back as text (for tests and `dflow check --ast`). */
void ast_print_program(const Program *p, FILE *out);
/* One expression in the same S-expression form, e.g. (+ a (* b c)). */
void ast_print_expr(const Expr *e, FILE *out);

#endif
