/* AST construction, the parser entry point and the AST printer.
 *
 * The constructors are what parser.y's actions call: each allocates one node
 * in the compilation's arena and turns the parser's PtrVec lists into the
 * counted arrays of ast.h. None of them fails loudly: on out-of-memory they
 * mark the context and return NULL, and fe_parse reports it once.
 * ast_print_program writes a deterministic S-expression dump (one statement
 * per line, blocks in braces) that the parser tests compare against. */
#include "ast.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "parse_internal.h"

static void *node(ParseCtx *c, size_t n) {
    void *p = arena_alloc(c->arena, n);
    if (!p) c->oom = true;
    return p;
}

/* ---- lists ---- */

PtrVec *fe_vec(ParseCtx *c) {
    return node(c, sizeof(PtrVec));
}

PtrVec *fe_push(ParseCtx *c, PtrVec *v, void *p) {
    if (!v) return NULL;
    if (!arena_grow(c->arena, &v->items, &v->cap, (size_t)v->n + 1, 4)) {
        c->oom = true;
        return v;
    }
    v->items[v->n++] = p;
    return v;
}

PtrVec *fe_vec1(ParseCtx *c, void *first) {
    return fe_push(c, fe_vec(c), first);
}

PtrVec *fe_append(ParseCtx *c, PtrVec *v, PtrVec *w) {
    for (int i = 0; w && i < w->n; i++)
        fe_push(c, v, w->items[i]);
    return v;
}

static int vec_n(const PtrVec *v) {
    return v ? v->n : 0;
}

/* The items of v as a pointer array (shared with v; v is not reused). */
static void **vec_ptrs(const PtrVec *v) {
    return v ? v->items : NULL;
}

/* Copies a list of pointers to T into a contiguous array of T. */
static void *vec_structs(ParseCtx *c, const PtrVec *v, size_t size) {
    int n = vec_n(v);
    if (n == 0) return NULL;
    unsigned char *out = node(c, size * (size_t)n);
    if (!out) return NULL;
    for (int i = 0; i < n; i++)
        if (v->items[i]) memcpy(out + size * (size_t)i, v->items[i], size);
    return out;
}

/* ---- expressions ---- */

Expr *fe_expr(ParseCtx *c, ExprKind k, SrcLoc loc) {
    Expr *e = node(c, sizeof *e);
    if (e) {
        e->kind = k;
        e->loc = loc;
    }
    return e;
}

Expr *fe_int(ParseCtx *c, SrcLoc loc, int64_t v) {
    Expr *e = fe_expr(c, EX_INT, loc);
    if (e) e->u.ival = v;
    return e;
}

Expr *fe_float(ParseCtx *c, SrcLoc loc, double v) {
    Expr *e = fe_expr(c, EX_FLOAT, loc);
    if (e) e->u.fval = v;
    return e;
}

Expr *fe_string(ParseCtx *c, SrcLoc loc, const char *s) {
    Expr *e = fe_expr(c, EX_STRING, loc);
    if (e) e->u.sval = s ? s : "";
    return e;
}

Expr *fe_bool(ParseCtx *c, SrcLoc loc, bool v) {
    Expr *e = fe_expr(c, EX_BOOL, loc);
    if (e) e->u.ival = v;
    return e;
}

Expr *fe_name(ParseCtx *c, SrcLoc loc, const char *name) {
    Expr *e = fe_expr(c, EX_NAME, loc);
    if (e) e->u.name = name ? name : "";
    return e;
}

Expr *fe_unary(ParseCtx *c, SrcLoc loc, OpKindAst op, Expr *a) {
    Expr *e = fe_expr(c, EX_UNARY, loc);
    if (e) {
        e->u.op.op = op;
        e->u.op.a = a;
    }
    return e;
}

Expr *fe_binary(ParseCtx *c, SrcLoc loc, OpKindAst op, Expr *a, Expr *b) {
    Expr *e = fe_expr(c, EX_BINARY, loc);
    if (e) {
        e->u.op.op = op;
        e->u.op.a = a;
        e->u.op.b = b;
    }
    return e;
}

Expr *fe_if_expr(ParseCtx *c, SrcLoc loc, Expr *cond, Expr *a, Expr *b) {
    Expr *e = fe_expr(c, EX_IF, loc);
    if (e) {
        e->u.ife.cond = cond;
        e->u.ife.then_e = a;
        e->u.ife.else_e = b;
    }
    return e;
}

/* A call is located at its callee, so "unknown function" points at the name. */
Expr *fe_call(ParseCtx *c, SrcLoc loc, Expr *callee, PtrVec *args) {
    Expr *e = fe_expr(c, EX_CALL, callee ? callee->loc : loc);
    if (e) {
        e->u.call.callee = callee;
        e->u.call.args = vec_structs(c, args, sizeof(Arg));
        e->u.call.nargs = vec_n(args);
    }
    return e;
}

Expr *fe_index(ParseCtx *c, SrcLoc loc, Expr *base, PtrVec *idx) {
    Expr *e = fe_expr(c, EX_INDEX, loc);
    if (e) {
        e->u.index.base = base;
        e->u.index.idx = (Expr **)vec_ptrs(idx);
        e->u.index.nidx = vec_n(idx);
    }
    return e;
}

Expr *fe_slice(ParseCtx *c, SrcLoc loc, Expr *lo, Expr *hi) {
    Expr *e = fe_expr(c, EX_SLICE, loc);
    if (e) {
        e->u.slice.lo = lo;
        e->u.slice.hi = hi;
    }
    return e;
}

Expr *fe_field(ParseCtx *c, SrcLoc loc, Expr *base, const char *name, SrcLoc name_loc) {
    Expr *e = fe_expr(c, EX_FIELD, loc);
    if (e) {
        e->u.field.base = base;
        e->u.field.name = name ? name : "";
        e->u.field.name_loc = name_loc;
    }
    return e;
}

Expr *fe_list(ParseCtx *c, SrcLoc loc, PtrVec *items) {
    Expr *e = fe_expr(c, EX_LIST, loc);
    if (e) {
        e->u.list.items = vec_structs(c, items, sizeof(Arg));
        e->u.list.n = vec_n(items);
    }
    return e;
}

Expr *fe_lambda(ParseCtx *c, SrcLoc loc, PtrVec *params, Expr *body) {
    Expr *e = fe_expr(c, EX_LAMBDA, loc);
    if (e) {
        e->u.lambda.params = vec_structs(c, params, sizeof(Param));
        e->u.lambda.nparams = vec_n(params);
        e->u.lambda.body = body;
    }
    return e;
}

Arg *fe_arg(ParseCtx *c, const char *name, SrcLoc name_loc, Expr *value) {
    Arg *a = node(c, sizeof *a);
    if (a) {
        a->name = name;
        a->name_loc = name_loc;
        a->value = value;
    }
    return a;
}

Param *fe_param(ParseCtx *c, const char *name, SrcLoc loc, ParamKind k, TypeExpr *t, Expr *deflt) {
    Param *p = node(c, sizeof *p);
    if (p) {
        p->name = name;
        p->loc = loc;
        p->kind = k;
        p->type = t;
        p->deflt = deflt;
    }
    return p;
}

static const struct {
    const char *name;
    DType dt;
} dtypes[] = {
    {"f32", DT_F32}, {"f64", DT_F64}, {"f16", DT_F16},   {"bf16", DT_BF16},
    {"i32", DT_I32}, {"i64", DT_I64}, {"bool", DT_BOOL},
};

static const char *dtype_name(DType t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].dt == t) return dtypes[i].name;
    return "?";
}

TypeExpr *fe_type(ParseCtx *c, SrcLoc loc, const char *dtype_name_s, bool has_dims, PtrVec *dims) {
    TypeExpr *t = node(c, sizeof *t);
    if (!t) return NULL;
    t->loc = loc;
    t->dtype = DT_F32;
    for (size_t i = 0; dtype_name_s && i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, dtype_name_s) == 0) t->dtype = dtypes[i].dt;
    t->has_dims = has_dims;
    t->ndims = vec_n(dims);
    t->dims = (Expr **)vec_ptrs(dims);
    return t;
}

Setting *fe_setting(ParseCtx *c, const char *name, SrcLoc loc, Expr *value) {
    Setting *s = node(c, sizeof *s);
    if (s) {
        s->name = name ? name : "";
        s->loc = loc;
        s->value = value;
    }
    return s;
}

Block *fe_block(ParseCtx *c, SrcLoc open, SrcLoc close, PtrVec *stmts) {
    Block *b = node(c, sizeof *b);
    if (b) {
        b->items = (Stmt **)vec_ptrs(stmts);
        b->n = vec_n(stmts);
        b->open = open;
        b->close = close;
    }
    return b;
}

/* ---- statements ---- */

Stmt *fe_stmt(ParseCtx *c, StmtKind k, SrcLoc loc) {
    Stmt *s = node(c, sizeof *s);
    if (s) {
        s->kind = k;
        s->loc = loc;
    }
    return s;
}

Stmt *fe_param_stmt(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, TypeExpr *t,
                    Expr *init) {
    Stmt *s = fe_stmt(c, ST_PARAM, loc);
    if (s) {
        s->u.param.name = name;
        s->u.param.name_loc = name_loc;
        s->u.param.type = t;
        s->u.param.init = init;
    }
    return s;
}

Stmt *fe_let(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, Expr *value) {
    Stmt *s = fe_stmt(c, ST_LET, loc);
    if (s) {
        s->u.let.name = name;
        s->u.let.name_loc = name_loc;
        s->u.let.value = value;
    }
    return s;
}

Stmt *fe_assign(ParseCtx *c, SrcLoc loc, PtrVec *targets, AssignOp op, Expr *value) {
    Stmt *s = fe_stmt(c, ST_ASSIGN, loc);
    if (s) {
        s->u.assign.targets = (Expr **)vec_ptrs(targets);
        s->u.assign.ntargets = vec_n(targets);
        s->u.assign.op = op;
        s->u.assign.value = value;
    }
    return s;
}

static Block empty_block(void) {
    Block b;
    memset(&b, 0, sizeof b);
    return b;
}

Stmt *fe_if_stmt(ParseCtx *c, SrcLoc loc, Expr *cond, Block *then_b, Block *else_b) {
    Stmt *s = fe_stmt(c, ST_IF, loc);
    if (s) {
        s->u.ifs.cond = cond;
        s->u.ifs.then_b = then_b ? *then_b : empty_block();
        s->u.ifs.else_b = else_b ? *else_b : empty_block();
        s->u.ifs.has_else = else_b != NULL;
    }
    return s;
}

/* `else if`: the else block holds the one nested if statement. */
Stmt *fe_else_if(ParseCtx *c, SrcLoc loc, Expr *cond, Block *then_b, Stmt *else_if) {
    Block *b = NULL;
    if (else_if) {
        PtrVec *v = fe_vec1(c, else_if);
        b = fe_block(c, else_if->loc, else_if->loc, v);
    }
    Stmt *s = fe_if_stmt(c, loc, cond, then_b, b);
    if (s) s->u.ifs.has_else = true;
    return s;
}

Stmt *fe_for(ParseCtx *c, SrcLoc loc, const char *var, SrcLoc var_loc, Expr *lo, Expr *hi,
             Block *body) {
    Stmt *s = fe_stmt(c, ST_FOR, loc);
    if (s) {
        s->u.loop.var = var;
        s->u.loop.var_loc = var_loc;
        s->u.loop.lo = lo;
        s->u.loop.hi = hi;
        s->u.loop.body = body ? *body : empty_block();
    }
    return s;
}

Stmt *fe_while(ParseCtx *c, SrcLoc loc, Expr *cond, Block *body) {
    Stmt *s = fe_stmt(c, ST_WHILE, loc);
    if (s) {
        s->u.whl.cond = cond;
        s->u.whl.body = body ? *body : empty_block();
    }
    return s;
}

Stmt *fe_repeat(ParseCtx *c, SrcLoc loc, Expr *count, Block *body) {
    Stmt *s = fe_stmt(c, ST_REPEAT, loc);
    if (s) {
        s->u.rep.count = count;
        s->u.rep.body = body ? *body : empty_block();
    }
    return s;
}

Stmt *fe_return(ParseCtx *c, SrcLoc loc, Expr *value) {
    Stmt *s = fe_stmt(c, ST_RETURN, loc);
    if (s) s->u.ret.value = value;
    return s;
}

Stmt *fe_log(ParseCtx *c, SrcLoc loc, PtrVec *items) {
    Stmt *s = fe_stmt(c, ST_LOG, loc);
    if (s) {
        s->u.log.items = vec_structs(c, items, sizeof(Arg));
        s->u.log.n = vec_n(items);
    }
    return s;
}

Stmt *fe_save(ParseCtx *c, SrcLoc loc, const char *path, Expr *value) {
    Stmt *s = fe_stmt(c, ST_SAVE, loc);
    if (s) {
        s->u.save.path = path ? path : "";
        s->u.save.value = value;
    }
    return s;
}

Stmt *fe_print(ParseCtx *c, SrcLoc loc, PtrVec *items) {
    Stmt *s = fe_stmt(c, ST_PRINT, loc);
    if (s) {
        s->u.print.items = (Expr **)vec_ptrs(items);
        s->u.print.n = vec_n(items);
    }
    return s;
}

Stmt *fe_every(ParseCtx *c, SrcLoc loc, Expr *every, Block *body) {
    Stmt *s = fe_stmt(c, ST_EVERY, loc);
    if (s) {
        s->u.every.every = every;
        s->u.every.body = body ? *body : empty_block();
    }
    return s;
}

Stmt *fe_fn_stmt(ParseCtx *c, Decl *fn) {
    Stmt *s = fe_stmt(c, ST_FN, fn ? fn->loc : srcloc_none());
    if (s) s->u.fn = fn;
    return s;
}

Stmt *fe_expr_stmt(ParseCtx *c, Expr *e) {
    Stmt *s = fe_stmt(c, ST_EXPR, e ? e->loc : srcloc_none());
    if (s) s->u.expr = e;
    return s;
}

/* ---- declarations ---- */

Decl *fe_decl(ParseCtx *c, DeclKind k, SrcLoc loc, const char *name, SrcLoc name_loc) {
    Decl *d = node(c, sizeof *d);
    if (d) {
        d->kind = k;
        d->loc = loc;
        d->name = name;
        d->name_loc = name_loc;
    }
    return d;
}

Decl *fe_import(ParseCtx *c, SrcLoc loc, PtrVec *names) {
    Decl *d = fe_decl(c, DC_IMPORT, loc, NULL, srcloc_none());
    int n = vec_n(names);
    if (!d || n == 0) return d;
    const char **ns = node(c, sizeof *ns * (size_t)n);
    SrcLoc *ls = node(c, sizeof *ls * (size_t)n);
    if (!ns || !ls) return d;
    for (int i = 0; i < n; i++) {
        const Expr *e = names->items[i];
        ns[i] = e ? e->u.name : "";
        ls[i] = e ? e->loc : srcloc_none();
    }
    d->u.import.names = ns;
    d->u.import.locs = ls;
    d->u.import.n = n;
    return d;
}

Decl *fe_config(ParseCtx *c, SrcLoc loc, PtrVec *items) {
    Decl *d = fe_decl(c, DC_CONFIG, loc, NULL, srcloc_none());
    if (d) {
        d->u.config.items = vec_structs(c, items, sizeof(Setting));
        d->u.config.n = vec_n(items);
    }
    return d;
}

Decl *fe_data(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, Expr *value) {
    Decl *d = fe_decl(c, DC_DATA, loc, name, name_loc);
    if (d) d->u.data.value = value;
    return d;
}

Decl *fe_fn(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, PtrVec *params,
            TypeExpr *ret, Block *body, Expr *body_expr) {
    Decl *d = fe_decl(c, DC_FN, loc, name, name_loc);
    if (d) {
        d->u.fn.params = vec_structs(c, params, sizeof(Param));
        d->u.fn.nparams = vec_n(params);
        d->u.fn.ret = ret;
        d->u.fn.body = body ? *body : empty_block();
        d->u.fn.body_expr = body_expr;
    }
    return d;
}

FeOptItem *fe_opt_state(ParseCtx *c, Setting *s) {
    FeOptItem *it = node(c, sizeof *it);
    if (it) {
        it->state = s;
        it->loc = s ? s->loc : srcloc_none();
    }
    return it;
}

FeOptItem *fe_opt_step(ParseCtx *c, SrcLoc loc, Block *body) {
    FeOptItem *it = node(c, sizeof *it);
    if (it) {
        it->is_step = true;
        it->loc = loc;
        it->step = body;
    }
    return it;
}

Decl *fe_optimizer(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, PtrVec *params,
                   PtrVec *items) {
    Decl *d = fe_decl(c, DC_OPTIMIZER, loc, name, name_loc);
    if (!d) return NULL;
    d->u.opt.params = vec_structs(c, params, sizeof(Param));
    d->u.opt.nparams = vec_n(params);
    PtrVec *states = fe_vec(c);
    const FeOptItem *step = NULL;
    for (int i = 0; i < vec_n(items); i++) {
        const FeOptItem *it = items->items[i];
        if (!it) continue;
        if (!it->is_step) {
            if (it->state) fe_push(c, states, it->state);
        } else if (step) {
            Diag *g = diag_error(c->diags, it->loc, "optimizer '%s' has more than one step block",
                                 name ? name : "");
            diag_add_note(c->diags, g, step->loc, "the first step block is here");
        } else {
            step = it;
        }
    }
    d->u.opt.states = vec_structs(c, states, sizeof(Setting));
    d->u.opt.nstates = vec_n(states);
    if (step && step->step)
        d->u.opt.step = *step->step;
    else if (!step)
        diag_error(c->diags, name_loc, "optimizer '%s' has no step block", name ? name : "");
    return d;
}

FeTrainItem *fe_train_setting(ParseCtx *c, Setting *s) {
    FeTrainItem *it = node(c, sizeof *it);
    if (it) it->setting = s;
    return it;
}

FeTrainItem *fe_train_every(ParseCtx *c, SrcLoc loc, Expr *every, Block *body) {
    FeTrainItem *it = node(c, sizeof *it);
    EveryBlock *e = node(c, sizeof *e);
    if (!it || !e) return NULL;
    e->every = every;
    e->loc = loc;
    e->body = body ? *body : empty_block();
    it->is_every = true;
    it->every = e;
    return it;
}

Decl *fe_model(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, Expr *value) {
    Decl *d = fe_decl(c, DC_MODEL, loc, name, name_loc);
    if (d) d->u.model.value = value;
    return d;
}

Decl *fe_train(ParseCtx *c, SrcLoc loc, const char *name, SrcLoc name_loc, PtrVec *items) {
    Decl *d = fe_decl(c, DC_TRAIN, loc, name, name_loc);
    if (!d) return NULL;
    PtrVec *settings = fe_vec(c), *everys = fe_vec(c);
    for (int i = 0; i < vec_n(items); i++) {
        const FeTrainItem *it = items->items[i];
        if (!it) continue;
        if (it->is_every)
            fe_push(c, everys, it->every);
        else if (it->setting)
            fe_push(c, settings, it->setting);
    }
    d->u.train.settings = vec_structs(c, settings, sizeof(Setting));
    d->u.train.nsettings = vec_n(settings);
    d->u.train.everys = vec_structs(c, everys, sizeof(EveryBlock));
    d->u.train.neverys = vec_n(everys);
    return d;
}

Decl *fe_main(ParseCtx *c, SrcLoc loc, Block *body) {
    Decl *d = fe_decl(c, DC_MAIN, loc, NULL, srcloc_none());
    if (d) d->u.main.body = body ? *body : empty_block();
    return d;
}

void fe_add_decl(ParseCtx *c, Decl *d) {
    if (d) fe_push(c, &c->decls, d);
}

/* ---- queries ---- */

const char *ast_target_root(const Expr *t) {
    while (t) {
        if (t->kind == EX_NAME) return t->u.name;
        if (t->kind == EX_FIELD)
            t = t->u.field.base;
        else if (t->kind == EX_INDEX)
            t = t->u.index.base;
        else
            return NULL;
    }
    return NULL;
}

/* ---- entry point ---- */

Program *fe_parse(Arena *a, DiagList *d, uint32_t file) {
    const SourceFile *f = d ? source_get(d->sources, file) : NULL;
    if (!a || !f) {
        if (d) diag_error(d, srcloc_none(), "internal error: fe_parse on unknown file %u", file);
        return NULL;
    }
    ParseCtx c;
    memset(&c, 0, sizeof c);
    c.arena = a;
    c.diags = d;
    c.file = file;
    c.line = 1;
    c.col = 1;
    c.prev_kind = -1;
    int errors_before = d->nerrors;
    int rc = fe_run_parser(&c, f->text, f->size);
    if (c.oom) {
        diag_error(d, fe_loc(&c, 0, 0, 0), "out of memory while parsing");
        return NULL;
    }
    if (rc != 0 && d->nerrors == errors_before)
        diag_error(d, fe_loc(&c, 0, 0, 0), "could not parse this file");
    Program *p = arena_alloc(a, sizeof *p);
    if (!p) return NULL;
    p->file = file;
    p->decls = (Decl **)c.decls.items;
    p->ndecls = c.decls.n;
    return p;
}

/* ---- printing ---- */

static const char *op_text(OpKindAst op) {
    static const char *const t[] = {
        [OPK_ADD] = "+",       [OPK_SUB] = "-",  [OPK_MUL] = "*",    [OPK_DIV] = "/",
        [OPK_FLOORDIV] = "//", [OPK_MOD] = "%",  [OPK_MATMUL] = "@", [OPK_POW] = "**",
        [OPK_EQ] = "==",       [OPK_NE] = "!=",  [OPK_LT] = "<",     [OPK_LE] = "<=",
        [OPK_GT] = ">",        [OPK_GE] = ">=",  [OPK_AND] = "&&",   [OPK_OR] = "||",
        [OPK_NEG] = "-",       [OPK_PLUS] = "+", [OPK_NOT] = "!",
    };
    return (unsigned)op < sizeof t / sizeof t[0] && t[op] ? t[op] : "?";
}

/* The shortest %g form that reads back as the same double (whole numbers as
 * 250.0), always with a '.' or exponent so it cannot pass for an integer. */
static void print_float(double v, FILE *out) {
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (v == (double)(int64_t)v && v > -1e15 && v < 1e15) snprintf(buf, sizeof buf, "%.1f", v);
    fputs(buf, out);
    if (!strpbrk(buf, ".eEn")) fputs(".0", out);
}

static void print_string(const char *s, FILE *out) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", out);
        else if (ch == '\t')
            fputs("\\t", out);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void print_expr(const Expr *e, FILE *out);

static void print_args(const Arg *args, int n, FILE *out) {
    for (int i = 0; args && i < n; i++) {
        fputc(' ', out);
        if (args[i].name) fprintf(out, "%s=", args[i].name);
        print_expr(args[i].value, out);
    }
}

static void print_type(const TypeExpr *t, FILE *out) {
    if (!t) {
        fputs("<null>", out);
        return;
    }
    fputs(dtype_name(t->dtype), out);
    if (!t->has_dims) return;
    fputc('[', out);
    for (int i = 0; i < t->ndims; i++) {
        if (i) fputc(',', out);
        if (t->dims[i])
            print_expr(t->dims[i], out);
        else
            fputs("...", out);
    }
    fputc(']', out);
}

static void print_params(const Param *ps, int n, FILE *out) {
    fputc('(', out);
    for (int i = 0; ps && i < n; i++) {
        const Param *p = &ps[i];
        if (i) fputc(' ', out);
        fputs(p->name ? p->name : "?", out);
        switch (p->kind) {
        case PK_TYPE:
            fputc(':', out);
            print_type(p->type, out);
            break;
        case PK_INT:
            fputs(":int", out);
            break;
        case PK_FLOAT:
            fputs(":float", out);
            break;
        case PK_STR:
            fputs(":str", out);
            break;
        case PK_ANY:
            break;
        }
        if (p->deflt) {
            fputc('=', out);
            print_expr(p->deflt, out);
        }
    }
    fputc(')', out);
}

static void print_expr(const Expr *e, FILE *out) {
    if (!e) {
        fputs("<null>", out);
        return;
    }
    switch (e->kind) {
    case EX_INT:
        fprintf(out, "%" PRId64, e->u.ival);
        break;
    case EX_FLOAT:
        print_float(e->u.fval, out);
        break;
    case EX_STRING:
        print_string(e->u.sval, out);
        break;
    case EX_BOOL:
        fputs(e->u.ival ? "true" : "false", out);
        break;
    case EX_NONE:
        fputs("None", out);
        break;
    case EX_NAME:
        fputs(e->u.name, out);
        break;
    case EX_UNARY:
        fprintf(out, "(%s ", op_text(e->u.op.op));
        print_expr(e->u.op.a, out);
        fputc(')', out);
        break;
    case EX_BINARY:
        fprintf(out, "(%s ", op_text(e->u.op.op));
        print_expr(e->u.op.a, out);
        fputc(' ', out);
        print_expr(e->u.op.b, out);
        fputc(')', out);
        break;
    case EX_IF:
        fputs("(if ", out);
        print_expr(e->u.ife.cond, out);
        fputc(' ', out);
        print_expr(e->u.ife.then_e, out);
        fputc(' ', out);
        print_expr(e->u.ife.else_e, out);
        fputc(')', out);
        break;
    case EX_CALL:
        fputs("(call ", out);
        print_expr(e->u.call.callee, out);
        print_args(e->u.call.args, e->u.call.nargs, out);
        fputc(')', out);
        break;
    case EX_INDEX:
        fputs("(index ", out);
        print_expr(e->u.index.base, out);
        for (int i = 0; i < e->u.index.nidx; i++) {
            fputc(' ', out);
            print_expr(e->u.index.idx[i], out);
        }
        fputc(')', out);
        break;
    case EX_SLICE:
        fputs("(: ", out);
        if (e->u.slice.lo)
            print_expr(e->u.slice.lo, out);
        else
            fputc('_', out);
        fputc(' ', out);
        if (e->u.slice.hi)
            print_expr(e->u.slice.hi, out);
        else
            fputc('_', out);
        fputc(')', out);
        break;
    case EX_FIELD:
        fputs("(. ", out);
        print_expr(e->u.field.base, out);
        fprintf(out, " %s)", e->u.field.name);
        break;
    case EX_LIST:
        fputs("(list", out);
        print_args(e->u.list.items, e->u.list.n, out);
        fputc(')', out);
        break;
    case EX_LAMBDA:
        fputs("(fn ", out);
        print_params(e->u.lambda.params, e->u.lambda.nparams, out);
        fputc(' ', out);
        print_expr(e->u.lambda.body, out);
        fputc(')', out);
        break;
    }
}

void ast_print_expr(const Expr *e, FILE *out) {
    print_expr(e, out);
}

static void indent(int depth, FILE *out) {
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

static void print_decl(const Decl *d, int depth, FILE *out);
static void print_stmt(const Stmt *s, int depth, FILE *out);

/* "{", the statements one per line, "}" at the indentation of the owner. */
static void print_block(const Block *b, int depth, FILE *out) {
    fputs("{\n", out);
    for (int i = 0; i < b->n; i++) {
        indent(depth + 1, out);
        print_stmt(b->items[i], depth + 1, out);
        fputc('\n', out);
    }
    indent(depth, out);
    fputc('}', out);
}

static const char *assign_text(AssignOp op) {
    switch (op) {
    case AS_SET:
        return "=";
    case AS_ADD:
        return "+=";
    case AS_SUB:
        return "-=";
    case AS_MUL:
        return "*=";
    case AS_DIV:
        return "/=";
    }
    return "?";
}

static void print_stmt(const Stmt *s, int depth, FILE *out) {
    if (!s) {
        fputs("<null>", out);
        return;
    }
    switch (s->kind) {
    case ST_PARAM:
        fprintf(out, "(param %s ", s->u.param.name);
        print_type(s->u.param.type, out);
        if (s->u.param.init) {
            fputc(' ', out);
            print_expr(s->u.param.init, out);
        }
        fputc(')', out);
        break;
    case ST_LET:
        fprintf(out, "(let %s ", s->u.let.name);
        print_expr(s->u.let.value, out);
        fputc(')', out);
        break;
    case ST_ASSIGN:
        fprintf(out, "(%s ", assign_text(s->u.assign.op));
        if (s->u.assign.ntargets == 1) {
            print_expr(s->u.assign.targets[0], out);
        } else {
            fputc('[', out);
            for (int i = 0; i < s->u.assign.ntargets; i++) {
                if (i) fputc(' ', out);
                print_expr(s->u.assign.targets[i], out);
            }
            fputc(']', out);
        }
        fputc(' ', out);
        print_expr(s->u.assign.value, out);
        fputc(')', out);
        break;
    case ST_IF:
        fputs("(if ", out);
        print_expr(s->u.ifs.cond, out);
        fputc(' ', out);
        print_block(&s->u.ifs.then_b, depth, out);
        if (s->u.ifs.has_else) {
            fputs(" else ", out);
            print_block(&s->u.ifs.else_b, depth, out);
        }
        fputc(')', out);
        break;
    case ST_FOR:
        fprintf(out, "(for %s ", s->u.loop.var);
        print_expr(s->u.loop.lo, out);
        fputc(' ', out);
        print_expr(s->u.loop.hi, out);
        fputc(' ', out);
        print_block(&s->u.loop.body, depth, out);
        fputc(')', out);
        break;
    case ST_WHILE:
        fputs("(while ", out);
        print_expr(s->u.whl.cond, out);
        fputc(' ', out);
        print_block(&s->u.whl.body, depth, out);
        fputc(')', out);
        break;
    case ST_REPEAT:
        fputs("(repeat ", out);
        print_expr(s->u.rep.count, out);
        fputc(' ', out);
        print_block(&s->u.rep.body, depth, out);
        fputc(')', out);
        break;
    case ST_BREAK:
        fputs("(break)", out);
        break;
    case ST_RETURN:
        fputs("(return ", out);
        print_expr(s->u.ret.value, out);
        fputc(')', out);
        break;
    case ST_LOG:
        fputs("(log", out);
        print_args(s->u.log.items, s->u.log.n, out);
        fputc(')', out);
        break;
    case ST_SAVE:
        fputs("(save ", out);
        print_string(s->u.save.path, out);
        fputc(' ', out);
        print_expr(s->u.save.value, out);
        fputc(')', out);
        break;
    case ST_PRINT:
        fputs("(print", out);
        for (int i = 0; i < s->u.print.n; i++) {
            fputc(' ', out);
            print_expr(s->u.print.items[i], out);
        }
        fputc(')', out);
        break;
    case ST_EVERY:
        fputs("(every ", out);
        print_expr(s->u.every.every, out);
        fputc(' ', out);
        print_block(&s->u.every.body, depth, out);
        fputc(')', out);
        break;
    case ST_FN:
        print_decl(s->u.fn, depth, out);
        break;
    case ST_EXPR:
        print_expr(s->u.expr, out);
        break;
    }
}

static void print_settings(const Setting *s, int n, int depth, FILE *out) {
    for (int i = 0; s && i < n; i++) {
        fputc('\n', out);
        indent(depth + 1, out);
        fprintf(out, "%s=", s[i].name);
        print_expr(s[i].value, out);
    }
}

static void print_decl(const Decl *d, int depth, FILE *out) {
    if (!d) {
        fputs("<null>", out);
        return;
    }
    switch (d->kind) {
    case DC_IMPORT:
        fputs("(import", out);
        for (int i = 0; i < d->u.import.n; i++)
            fprintf(out, " %s", d->u.import.names[i]);
        fputc(')', out);
        break;
    case DC_CONFIG:
        fputs("(config", out);
        print_settings(d->u.config.items, d->u.config.n, depth, out);
        fputc(')', out);
        break;
    case DC_DATA:
        fprintf(out, "(data %s ", d->name);
        print_expr(d->u.data.value, out);
        fputc(')', out);
        break;
    case DC_FN:
        fprintf(out, "(fn %s ", d->name);
        print_params(d->u.fn.params, d->u.fn.nparams, out);
        if (d->u.fn.ret) {
            fputs(" -> ", out);
            print_type(d->u.fn.ret, out);
        }
        if (d->u.fn.body_expr) {
            fputs(" = ", out);
            print_expr(d->u.fn.body_expr, out);
        } else {
            fputc(' ', out);
            print_block(&d->u.fn.body, depth, out);
        }
        fputc(')', out);
        break;
    case DC_OPTIMIZER:
        fprintf(out, "(optimizer %s ", d->name);
        print_params(d->u.opt.params, d->u.opt.nparams, out);
        for (int i = 0; i < d->u.opt.nstates; i++) {
            fputc('\n', out);
            indent(depth + 1, out);
            fprintf(out, "(state %s ", d->u.opt.states[i].name);
            print_expr(d->u.opt.states[i].value, out);
            fputc(')', out);
        }
        fputc('\n', out);
        indent(depth + 1, out);
        fputs("(step ", out);
        print_block(&d->u.opt.step, depth + 1, out);
        fputs("))", out);
        break;
    case DC_MODEL:
        fprintf(out, "(model %s ", d->name);
        print_expr(d->u.model.value, out);
        fputc(')', out);
        break;
    case DC_TRAIN:
        fprintf(out, "(train %s", d->name);
        print_settings(d->u.train.settings, d->u.train.nsettings, depth, out);
        for (int i = 0; i < d->u.train.neverys; i++) {
            fputc('\n', out);
            indent(depth + 1, out);
            fputs("(every ", out);
            print_expr(d->u.train.everys[i].every, out);
            fputc(' ', out);
            print_block(&d->u.train.everys[i].body, depth + 1, out);
            fputc(')', out);
        }
        fputc(')', out);
        break;
    case DC_MAIN:
        fputs("(main ", out);
        print_block(&d->u.main.body, depth, out);
        fputc(')', out);
        break;
    }
}

void ast_print_program(const Program *p, FILE *out) {
    if (!p) {
        fputs("<null program>\n", out);
        return;
    }
    for (int i = 0; i < p->ndecls; i++) {
        print_decl(p->decls[i], 0, out);
        fputc('\n', out);
    }
}
