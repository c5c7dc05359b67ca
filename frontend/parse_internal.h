/* Private glue between lexer.l, parser.y and ast.c (not a public header).
 *
 * One ParseCtx lives for one fe_parse call: it holds the arena, the
 * diagnostics, the file id and the declarations built so far (so that a parse
 * aborted at end of file still returns what it had). The lexer keeps its
 * state here too: the position it is at, the stack of open brackets (for the
 * newline rule and for "expected ')' to close '(' at line 3"), the previous
 * token (for the newline rule), a one-token lookahead, and a snapshot of the
 * context of the token it last handed to the parser, which is the token a
 * syntax error is reported at. The AST constructors are declared here as
 * well; they never fail loudly: on out-of-memory they set ctx->oom and
 * return NULL, and fe_parse reports it once. */
#ifndef DFLOW_FRONTEND_PARSE_INTERNAL_H
#define DFLOW_FRONTEND_PARSE_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include "ast.h"

typedef struct {
    char kind; /* '(' '[' '{' */
    SrcLoc loc;
    int indent; /* column of the first token on the opener's line */
} FeOpener;

/* A token as the raw scanner produced it, before the newline rule. */
typedef struct {
    int kind; /* token kind (parser.h); 0 = end of file */
    union {
        int64_t ival;
        double fval;
        const char *str;
    } val;
    int first_line, first_column, last_line, last_column;
    char text[40]; /* the lexeme, cut short, for messages */
} FeRawTok;

typedef struct ParseCtx {
    Arena *arena;
    DiagList *diags;
    uint32_t file;
    PtrVec decls; /* Decl*, in source order */
    bool oom;
    jmp_buf *fatal; /* where a flex fatal error (out of memory) returns */

    /* scanner position: the next character's line and column (1-based) */
    int line, col;

    /* newline rule and bracket matching */
    FeOpener *opens;
    int nopen, capopen;
    int prev_kind;    /* last token delivered to the parser; -1 at start */
    int prev_line;    /* its last line */
    FeRawTok pending; /* one token of lookahead taken by the newline rule */
    bool has_pending;
    int line_indent; /* column of the first token on the current line */
    bool recovering; /* a syntax error was reported and no newline ended it yet */

    /* context of the token last delivered (the parser's lookahead) */
    bool la_has_open;
    FeOpener la_open; /* innermost open bracket before that token */
    int la_prev_line; /* line where the token before it ended */
    char la_text[40];
} ParseCtx;

/* ---- lexer (lexer.l) ---- */
/* Scans and parses text into c->decls; returns yyparse's status (0 = ok). */
int fe_run_parser(ParseCtx *c, const char *text, size_t size);
/* The SrcLoc of a line/column position in c's file. */
SrcLoc fe_loc(const ParseCtx *c, int line, int col, int len);

/* ---- constructors (ast.c) ---- */
PtrVec *fe_vec(ParseCtx *c);                          /* a new empty list */
PtrVec *fe_vec1(ParseCtx *c, void *first);            /* a list of one (first may be NULL: empty) */
PtrVec *fe_push(ParseCtx *c, PtrVec *v, void *p);     /* appends p unless NULL; returns v */
PtrVec *fe_append(ParseCtx *c, PtrVec *v, PtrVec *w); /* appends all of w */

Expr *fe_expr(ParseCtx *c, ExprKind k, SrcLoc loc);
Expr *fe_int(ParseCtx *c, SrcLoc loc, int64_t v);
Expr *fe_float(ParseCtx *c, SrcLoc loc, double v);
Expr *fe_string(ParseCtx *c, SrcLoc loc, const char *s);
Expr *fe_bool(ParseCtx *c, SrcLoc loc, bool v);
Expr *fe_name(ParseCtx *c, SrcLoc loc, const char *name);
Expr *fe_unary(ParseCtx *c, SrcLoc loc, OpKindAst op, Expr *a);
Expr *fe_binary(ParseCtx *c, SrcLoc loc, OpKindAst op, Expr *a, Expr *b);
Expr *fe_if_expr(ParseCtx *c, SrcLoc loc, Expr *cond, Expr *a, Expr *b);
Expr *fe_call(ParseCtx *c, SrcLoc loc, Expr *callee, PtrVec *args); /* args: Arg* */
Expr *fe_index(ParseCtx *c, SrcLoc loc, Expr *base, PtrVec *idx);   /* idx: Expr* */
Expr *fe_slice(ParseCtx *c, SrcLoc loc, Expr *lo, Expr *hi);
Expr *fe_field(ParseCtx *c, SrcLoc loc, Expr *base, const char *name, SrcLoc name_loc);
Expr *fe_list(ParseCtx *c, SrcLoc loc, PtrVec *items);                /* items: Arg* */
Expr *fe_lambda(ParseCtx *c, SrcLoc loc, PtrVec *params, Expr *body); /* params: Param* */

Arg *fe_arg(ParseCtx *c, const char *name, SrcLoc name_loc, Expr *value);
Param *fe_param(ParseCtx *c, const char *name, SrcLoc loc, ParamKind k, TypeExpr *t, Expr *deflt);
TypeExpr *fe_type(ParseCtx *c, SrcLoc loc, const char *dtype_name, bool has_dims, PtrVec *dims);
Setting *fe_setting(ParseCtx *c, const char *name, SrcLoc loc, Expr *value);
Block *fe_block(ParseCtx *c, SrcLoc open, SrcLoc close, PtrVec *stmts); /* stmts: Stmt* */

Stmt *fe_stmt(ParseCtx *c, StmtKind k, SrcLoc loc);
Stmt *fe_param_stmt(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, TypeExpr *t,
                    Expr *init);
Stmt *fe_let(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, Expr *value);
Stmt *fe_assign(ParseCtx *c, SrcLoc loc, PtrVec *targets, AssignOp op, Expr *value);
Stmt *fe_if_stmt(ParseCtx *c, SrcLoc loc, Expr *cond, Block *then_b, Block *else_b);
Stmt *fe_else_if(ParseCtx *c, SrcLoc loc, Expr *cond, Block *then_b, Stmt *else_if);
Stmt *fe_for(ParseCtx *c, SrcLoc loc, const char *var, SrcLoc var_loc, Expr *lo, Expr *hi,
             Block *body);
Stmt *fe_while(ParseCtx *c, SrcLoc loc, Expr *cond, Block *body);
Stmt *fe_repeat(ParseCtx *c, SrcLoc loc, Expr *count, Block *body);
Stmt *fe_return(ParseCtx *c, SrcLoc loc, Expr *value);
Stmt *fe_log(ParseCtx *c, SrcLoc loc, PtrVec *items); /* Arg*, all named */
Stmt *fe_save(ParseCtx *c, SrcLoc loc, const char *path, Expr *value);
Stmt *fe_print(ParseCtx *c, SrcLoc loc, PtrVec *items); /* Expr* */
Stmt *fe_every(ParseCtx *c, SrcLoc loc, Expr *every, Block *body);
Stmt *fe_fn_stmt(ParseCtx *c, Decl *fn);
Stmt *fe_expr_stmt(ParseCtx *c, Expr *e);

Decl *fe_decl(ParseCtx *c, DeclKind k, SrcLoc loc, const char *name, SrcLoc name_loc);
Decl *fe_import(ParseCtx *c, SrcLoc loc, PtrVec *names); /* names: Expr* (EX_NAME) */
Decl *fe_config(ParseCtx *c, SrcLoc loc, PtrVec *items); /* Setting* */
Decl *fe_data(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, Expr *value);
Decl *fe_fn(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, PtrVec *params,
            TypeExpr *ret, Block *body, Expr *body_expr);
/* items: FeOptItem*; reports a missing or repeated `step` block. */
Decl *fe_optimizer(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, PtrVec *params,
                   PtrVec *items);
/* items: Setting* and EveryBlock* mixed, told apart by the marker below. */
Decl *fe_train(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, PtrVec *items);
Decl *fe_model(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, Expr *value);
Decl *fe_main(ParseCtx *c, SrcLoc loc, Block *body);
void fe_add_decl(ParseCtx *c, Decl *d);

/* Train-body items are either settings or every blocks; both go through one
 * list of this tagged wrapper. */
typedef struct {
    bool is_every;
    Setting *setting;
    EveryBlock *every;
} FeTrainItem;
FeTrainItem *fe_train_setting(ParseCtx *c, Setting *s);
FeTrainItem *fe_train_every(ParseCtx *c, SrcLoc loc, Expr *every, Block *body);

/* Optimizer-body items: `state name = expr` or `step { ... }`. */
typedef struct {
    bool is_step;
    SrcLoc loc;
    Setting *state;
    Block *step;
} FeOptItem;
FeOptItem *fe_opt_state(ParseCtx *c, Setting *s);
FeOptItem *fe_opt_step(ParseCtx *c, SrcLoc loc, Block *body);

#endif
