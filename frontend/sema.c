/* Semantic checks that need no tracing: names, arity, placement.
 *
 * Runs over every declaration of a module before lowering and reports, at
 * the offending token and without stopping at the first: unknown names
 * (Python function scope: a name assigned anywhere in a body is local to the
 * whole body), duplicate declarations and parameters, `let` names assigned
 * again, `break` outside a loop, `return` outside a function, `param` outside
 * a function, `log`/`print`/`save` inside functions, unknown train settings,
 * and calls of known functions, optimizers and builtins with the wrong
 * number of arguments or unknown keywords. Shapes and dtypes are checked
 * later, while tracing (lower*.c), where the values are known. */
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "../runtime/closest.h"
#include "lower_internal.h"

/* ---- "did you mean" ------------------------------------------------------------------ */

const char *fe_closest(const char *name, const char *const *cands, int n) {
    return rt_closest(name, cands, n); /* shared with built executables' --set */
}

/* ---- scopes -------------------------------------------------------------------------- */

typedef enum { NK_VAR, NK_LET, NK_PARAM, NK_SPECIAL } NameKind;

typedef struct SScope {
    const char **names;
    NameKind *kinds;
    SrcLoc *locs;
    bool *bound; /* bound so far in walk order (for let checks) */
    SrcLoc *at;  /* where it became bound (for "first declared here" notes) */
    int n, cap;
    struct SScope *parent; /* enclosing body (lambdas, nested fns) */
} SScope;

typedef struct {
    Lower *L;
    FeMod *mod;
    int loops;  /* enclosing loops in the current body */
    bool in_fn; /* a fn body (return, param allowed) */
    bool host;  /* main / every (log, print, save allowed) */
    bool ok;
    int depth;     /* expression nesting */
    bool too_deep; /* reported once */
} Sema;

static void s_add(Sema *S, SScope *sc, const char *name, NameKind k, SrcLoc loc) {
    for (int i = 0; i < sc->n; i++)
        if (strcmp(sc->names[i], name) == 0) {
            if (k == NK_LET && sc->kinds[i] != NK_LET) sc->kinds[i] = NK_LET, sc->locs[i] = loc;
            return;
        }
    if (sc->n == sc->cap) {
        /* five parallel arrays, one capacity */
        Arena *a = S->L->a;
        size_t nc, c = (size_t)sc->cap;
        if (!rt_grow_cap(c, c + 1, 16, INT_MAX, &nc) || !arena_resize(a, &sc->names, c, nc) ||
            !arena_resize(a, &sc->kinds, c, nc) || !arena_resize(a, &sc->locs, c, nc) ||
            !arena_resize(a, &sc->bound, c, nc) || !arena_resize(a, &sc->at, c, nc))
            return;
        sc->cap = (int)nc;
    }
    sc->names[sc->n] = name;
    sc->kinds[sc->n] = k;
    sc->locs[sc->n] = loc;
    sc->bound[sc->n] = k == NK_PARAM || k == NK_SPECIAL;
    sc->at[sc->n] = loc;
    sc->n++;
}

static int s_find(const SScope *sc, const char *name) {
    for (int i = 0; sc && i < sc->n; i++)
        if (strcmp(sc->names[i], name) == 0) return i;
    return -1;
}

static bool s_visible_local(const SScope *sc, const char *name) {
    for (; sc; sc = sc->parent)
        if (s_find(sc, name) >= 0) return true;
    return false;
}

static bool s_known(Sema *S, const SScope *sc, const char *name) {
    if (s_visible_local(sc, name)) return true;
    if (lw_global(S->mod, name)) return true;
    if (strcmp(name, "seed") == 0) return true;
    return fe_builtin_index(name) >= 0;
}

static Diag *err(Sema *S, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static Diag *err(Sema *S, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = arena_vprintf(S->L->a, fmt, ap);
    va_end(ap);
    S->ok = false;
    return diag_error(S->L->d, loc, "%s", msg ? msg : "error");
}

/* Suggests a near name from locals, globals and builtins. */
static const char *suggest(Sema *S, const SScope *sc, const char *name) {
    int cap = 64, n = 0;
    for (const SScope *p = sc; p; p = p->parent)
        cap += p->n;
    cap += S->mod->n;
    const char **c = arena_alloc(S->L->a, sizeof(char *) * (size_t)(cap + 128));
    if (!c) return NULL;
    for (const SScope *p = sc; p; p = p->parent)
        for (int i = 0; i < p->n; i++)
            c[n++] = p->names[i];
    for (int i = 0; i < S->mod->n; i++)
        c[n++] = S->mod->g[i].name;
    for (int i = 0; fe_builtin_get(i) && n < cap + 120; i++)
        c[n++] = fe_builtin_get(i)->name;
    return fe_closest(name, c, n);
}

static void unknown_name(Sema *S, const SScope *sc, const char *name, SrcLoc loc, bool call) {
    const char *near = suggest(S, sc, name);
    const char *what = call ? "unknown function" : "unknown name";
    S->ok = false;
    if (near)
        diag_error(S->L->d, loc, "%s '%s' (did you mean '%s'?)", what, name, near);
    else
        diag_error(S->L->d, loc, "%s '%s'", what, name);
}

/* ---- pre-scan: every name a body binds ----------------------------------------------- */

static bool unbound_dim(Sema *S, const SScope *sc, const char *name) {
    return !s_visible_local(sc, name) && !lw_global(S->mod, name) && strcmp(name, "seed") != 0;
}

static void scan_params(Sema *S, SScope *sc, const Param *ps, int np) {
    for (int i = 0; i < np; i++) {
        for (int j = 0; j < i; j++)
            if (strcmp(ps[i].name, ps[j].name) == 0) {
                Diag *dg = err(S, ps[i].loc, "duplicate parameter '%s'", ps[i].name);
                diag_add_note(S->L->d, dg, ps[j].loc, "'%s' was first declared here", ps[i].name);
                break;
            }
        s_add(S, sc, ps[i].name, NK_PARAM, ps[i].loc);
    }
    /* shape variables: bare names in dims that are bound nowhere */
    for (int i = 0; i < np; i++) {
        const TypeExpr *t = ps[i].kind == PK_TYPE ? ps[i].type : NULL;
        for (int k = 0; t && k < t->ndims; k++) {
            const Expr *d = t->dims[k];
            if (d && d->kind == EX_NAME && unbound_dim(S, sc, d->u.name))
                s_add(S, sc, d->u.name, NK_PARAM, d->loc);
        }
    }
}

static void scan_block(Sema *S, SScope *sc, const Block *b);

static void scan_stmt(Sema *S, SScope *sc, const Stmt *st) {
    switch (st->kind) {
    case ST_PARAM:
        s_add(S, sc, st->u.param.name, NK_VAR, st->u.param.name_loc);
        break;
    case ST_LET:
        s_add(S, sc, st->u.let.name, NK_LET, st->u.let.name_loc);
        break;
    case ST_ASSIGN:
        for (int k = 0; k < st->u.assign.ntargets; k++) {
            const Expr *t = st->u.assign.targets[k];
            if (t->kind == EX_NAME) s_add(S, sc, t->u.name, NK_VAR, t->loc);
        }
        break;
    case ST_IF:
        scan_block(S, sc, &st->u.ifs.then_b);
        if (st->u.ifs.has_else) scan_block(S, sc, &st->u.ifs.else_b);
        break;
    case ST_FOR:
        s_add(S, sc, st->u.loop.var, NK_VAR, st->u.loop.var_loc);
        scan_block(S, sc, &st->u.loop.body);
        break;
    case ST_WHILE:
        scan_block(S, sc, &st->u.whl.body);
        break;
    case ST_REPEAT:
        scan_block(S, sc, &st->u.rep.body);
        break;
    case ST_EVERY:
        scan_block(S, sc, &st->u.every.body);
        break;
    case ST_FN:
        if (st->u.fn && st->u.fn->name) s_add(S, sc, st->u.fn->name, NK_VAR, st->u.fn->name_loc);
        break;
    case ST_BREAK:
    case ST_RETURN:
    case ST_LOG:
    case ST_SAVE:
    case ST_PRINT:
    case ST_EXPR:
        break;
    }
}

static void scan_block(Sema *S, SScope *sc, const Block *b) {
    for (int i = 0; i < b->n; i++)
        scan_stmt(S, sc, b->items[i]);
}

/* ---- calls --------------------------------------------------------------------------- */

static void check_params_call(Sema *S, const char *fname, const Param *ps, int np, const Expr *e) {
    int npos = 0;
    for (int i = 0; i < e->u.call.nargs; i++) {
        const Arg *a = &e->u.call.args[i];
        if (!a->name) {
            npos++;
            continue;
        }
        int j = -1;
        for (int k = 0; k < np; k++)
            if (strcmp(ps[k].name, a->name) == 0) j = k;
        if (j < 0) {
            const char **c = arena_alloc(S->L->a, sizeof(char *) * (size_t)(np ? np : 1));
            for (int k = 0; c && k < np; k++)
                c[k] = ps[k].name;
            const char *near = c ? fe_closest(a->name, c, np) : NULL;
            S->ok = false;
            if (near)
                diag_error(S->L->d, a->name_loc, "%s has no parameter '%s' (did you mean '%s'?)",
                           fname, a->name, near);
            else
                diag_error(S->L->d, a->name_loc, "%s has no parameter '%s'", fname, a->name);
            continue;
        }
        if (j < npos) {
            S->ok = false;
            diag_error(S->L->d, a->name_loc, "argument '%s' of %s is given twice", a->name, fname);
        }
        for (int k = 0; k < i; k++)
            if (e->u.call.args[k].name && strcmp(e->u.call.args[k].name, a->name) == 0) {
                S->ok = false;
                Diag *dg = diag_error(S->L->d, a->name_loc, "argument '%s' of %s is given twice",
                                      a->name, fname);
                diag_add_note(S->L->d, dg, e->u.call.args[k].name_loc, "'%s' was first given here",
                              a->name);
                break;
            }
    }
    if (npos > np) {
        S->ok = false;
        diag_error(S->L->d, e->loc, "%s takes %d argument%s, got %d", fname, np, np == 1 ? "" : "s",
                   npos);
        return;
    }
    for (int k = npos; k < np; k++) {
        if (ps[k].deflt) continue;
        bool given = false;
        for (int i = 0; i < e->u.call.nargs; i++)
            if (e->u.call.args[i].name && strcmp(e->u.call.args[i].name, ps[k].name) == 0)
                given = true;
        if (!given) {
            S->ok = false;
            diag_error(S->L->d, e->loc, "missing argument '%s' in the call of %s", ps[k].name,
                       fname);
        }
    }
}

static void check_builtin_call(Sema *S, const Builtin *b, const Expr *e) {
    int npos = 0;
    for (int i = 0; i < e->u.call.nargs; i++) {
        const Arg *a = &e->u.call.args[i];
        if (!a->name) {
            npos++;
            continue;
        }
        if (b->flags & BF_ANYKW) continue;
        bool found = false;
        for (int k = 0; k < FE_MAX_KW && b->kw[k]; k++)
            found = found || strcmp(b->kw[k], a->name) == 0;
        if (!found) {
            const char *near = fe_closest(a->name, b->kw, FE_MAX_KW);
            S->ok = false;
            if (near)
                diag_error(S->L->d, a->name_loc, "%s has no keyword '%s' (did you mean '%s'?)",
                           b->name, a->name, near);
            else if (!b->kw[0])
                diag_error(S->L->d, a->name_loc, "%s takes no keyword arguments (got '%s')",
                           b->name, a->name);
            else
                diag_error(S->L->d, a->name_loc, "%s has no keyword '%s'", b->name, a->name);
        }
    }
    if (npos < b->min_pos || (b->max_pos >= 0 && npos > b->max_pos)) {
        S->ok = false;
        if (b->min_pos == b->max_pos)
            diag_error(S->L->d, e->loc, "%s takes %d argument%s, got %d", b->name, b->min_pos,
                       b->min_pos == 1 ? "" : "s", npos);
        else if (b->max_pos < 0)
            diag_error(S->L->d, e->loc, "%s takes at least %d argument%s, got %d", b->name,
                       b->min_pos, b->min_pos == 1 ? "" : "s", npos);
        else
            diag_error(S->L->d, e->loc, "%s takes %d to %d arguments, got %d", b->name, b->min_pos,
                       b->max_pos, npos);
    }
}

/* The global decl a callee names (unless shadowed by a local), or a builtin. */
static void check_call(Sema *S, const SScope *sc, const Expr *e) {
    const Expr *ce = e->u.call.callee;
    FeMod *m = S->mod;
    const char *name = NULL;
    if (ce->kind == EX_NAME) {
        name = ce->u.name;
        if (s_visible_local(sc, name)) return;
    } else if (ce->kind == EX_FIELD && ce->u.field.base->kind == EX_NAME &&
               !s_visible_local(sc, ce->u.field.base->u.name)) {
        Global *g = lw_global(S->mod, ce->u.field.base->u.name);
        if (!g || g->kind != G_MODULE || !g->v || g->v->kind != V_MODULE) return;
        m = g->v->u.mod;
        name = ce->u.field.name;
        if (!lw_global(m, name)) return; /* reported by check_expr */
    } else {
        return;
    }
    Global *g = lw_global(m, name);
    if (g) {
        if (g->kind == G_FN)
            check_params_call(S, name, g->decl->u.fn.params, g->decl->u.fn.nparams, e);
        else if (g->kind == G_OPTIM)
            check_params_call(S, lw_printf(S->L, "optimizer %s", name), g->decl->u.opt.params,
                              g->decl->u.opt.nparams, e);
        return;
    }
    if (m != S->mod) return;
    const Builtin *b = fe_builtin_find(name);
    if (b) check_builtin_call(S, b, e);
}

/* ---- expressions --------------------------------------------------------------------- */

static void check_fn_body(Sema *S, SScope *parent, const Param *ps, int np, const Block *body,
                          const Expr *body_expr, const TypeExpr *ret);

static void check_expr_in(Sema *S, SScope *sc, const Expr *e);

static void check_expr(Sema *S, SScope *sc, const Expr *e) {
    if (!e) return;
    if (S->depth >= FE_MAX_EXPR_DEPTH) {
        if (!S->too_deep)
            diag_error(S->L->d, e->loc, "expression nested too deeply (more than %d levels)",
                       FE_MAX_EXPR_DEPTH);
        S->too_deep = true;
        S->ok = false;
        return;
    }
    S->depth++;
    check_expr_in(S, sc, e);
    S->depth--;
}

static void check_expr_in(Sema *S, SScope *sc, const Expr *e) {
    switch (e->kind) {
    case EX_NAME:
        if (!s_known(S, sc, e->u.name)) unknown_name(S, sc, e->u.name, e->loc, false);
        break;
    case EX_UNARY:
        check_expr(S, sc, e->u.op.a);
        break;
    case EX_BINARY:
        check_expr(S, sc, e->u.op.a);
        check_expr(S, sc, e->u.op.b);
        break;
    case EX_IF:
        check_expr(S, sc, e->u.ife.cond);
        check_expr(S, sc, e->u.ife.then_e);
        check_expr(S, sc, e->u.ife.else_e);
        break;
    case EX_CALL: {
        const Expr *ce = e->u.call.callee;
        if (ce->kind == EX_NAME && !s_known(S, sc, ce->u.name))
            unknown_name(S, sc, ce->u.name, ce->loc, true);
        else
            check_expr(S, sc, ce);
        for (int i = 0; i < e->u.call.nargs; i++)
            check_expr(S, sc, e->u.call.args[i].value);
        check_call(S, sc, e);
        break;
    }
    case EX_INDEX:
        check_expr(S, sc, e->u.index.base);
        for (int i = 0; i < e->u.index.nidx; i++)
            check_expr(S, sc, e->u.index.idx[i]);
        break;
    case EX_SLICE:
        check_expr(S, sc, e->u.slice.lo);
        check_expr(S, sc, e->u.slice.hi);
        break;
    case EX_FIELD: {
        const Expr *b = e->u.field.base;
        check_expr(S, sc, b);
        if (b->kind == EX_NAME && !s_visible_local(sc, b->u.name)) {
            Global *g = lw_global(S->mod, b->u.name);
            if (g && g->kind == G_MODULE && g->v && g->v->kind == V_MODULE &&
                !lw_global(g->v->u.mod, e->u.field.name)) {
                S->ok = false;
                diag_error(S->L->d, e->u.field.name_loc, "module '%s' has no '%s'",
                           g->v->u.mod->name, e->u.field.name);
            }
        }
        break;
    }
    case EX_LIST:
        for (int i = 0; i < e->u.list.n; i++)
            check_expr(S, sc, e->u.list.items[i].value);
        break;
    case EX_LAMBDA: {
        Sema saved = *S;
        S->loops = 0;
        S->in_fn = false;
        S->host = false;
        check_fn_body(S, sc, e->u.lambda.params, e->u.lambda.nparams, NULL, e->u.lambda.body, NULL);
        bool ok = S->ok;
        *S = saved;
        S->ok = S->ok && ok;
        break;
    }
    case EX_INT:
    case EX_FLOAT:
    case EX_STRING:
    case EX_BOOL:
    case EX_NONE:
        break;
    }
}

/* ---- statements ---------------------------------------------------------------------- */

static void check_block(Sema *S, SScope *sc, const Block *b);

static void bind_walk(Sema *S, SScope *sc, const char *name, SrcLoc loc, bool is_let) {
    int i = s_find(sc, name);
    if (i < 0) return;
    if (is_let) {
        if (sc->bound[i] && sc->kinds[i] != NK_SPECIAL) {
            Diag *dg = err(S, loc, "'%s' is already defined; 'let' declares a new name", name);
            diag_add_note(S->L->d, dg, sc->at[i], "'%s' was first defined here", name);
        }
    } else if (sc->kinds[i] == NK_LET) {
        Diag *dg = err(S, loc, "cannot assign to '%s': it was declared with 'let'", name);
        diag_add_note(S->L->d, dg, sc->locs[i], "'%s' declared here", name);
    }
    if (!sc->bound[i]) sc->at[i] = loc;
    sc->bound[i] = true;
}

/* `param NAME` declares NAME: a second declaration of one name in one body
 * (another param, an argument, a let, an earlier assignment) would silently
 * hide the first. */
static void bind_param(Sema *S, SScope *sc, const char *name, SrcLoc loc) {
    int i = s_find(sc, name);
    if (i < 0) return;
    if (sc->bound[i] && sc->kinds[i] != NK_SPECIAL) {
        Diag *dg =
            err(S, loc,
                "'%s' is already declared in this function; a param needs a name of its own", name);
        diag_add_note(S->L->d, dg, sc->at[i], "'%s' was first declared here", name);
        return;
    }
    sc->at[i] = loc;
    sc->bound[i] = true;
}

static void check_stmt(Sema *S, SScope *sc, const Stmt *st) {
    switch (st->kind) {
    case ST_PARAM:
        if (!S->in_fn)
            err(S, st->loc, "'param %s' is only allowed inside a function", st->u.param.name);
        if (st->u.param.type)
            for (int k = 0; k < st->u.param.type->ndims; k++)
                check_expr(S, sc, st->u.param.type->dims[k]);
        check_expr(S, sc, st->u.param.init);
        bind_param(S, sc, st->u.param.name, st->u.param.name_loc);
        break;
    case ST_LET:
        check_expr(S, sc, st->u.let.value);
        bind_walk(S, sc, st->u.let.name, st->u.let.name_loc, true);
        break;
    case ST_ASSIGN:
        check_expr(S, sc, st->u.assign.value);
        for (int k = 0; k < st->u.assign.ntargets; k++) {
            const Expr *t = st->u.assign.targets[k];
            if (t->kind == EX_NAME) {
                if (st->u.assign.op != AS_SET) check_expr(S, sc, t);
                bind_walk(S, sc, t->u.name, t->loc, false);
            } else {
                check_expr(S, sc, t);
                const char *r = ast_target_root(t);
                if (r) {
                    int i = s_find(sc, r);
                    if (i >= 0 && sc->kinds[i] == NK_LET) {
                        S->ok = false;
                        Diag *dg =
                            diag_error(S->L->d, t->loc,
                                       "cannot assign into '%s': it was declared with 'let'", r);
                        diag_add_note(S->L->d, dg, sc->locs[i], "'%s' declared here", r);
                    }
                }
            }
        }
        break;
    case ST_IF:
        check_expr(S, sc, st->u.ifs.cond);
        check_block(S, sc, &st->u.ifs.then_b);
        if (st->u.ifs.has_else) check_block(S, sc, &st->u.ifs.else_b);
        break;
    case ST_FOR:
        check_expr(S, sc, st->u.loop.lo);
        check_expr(S, sc, st->u.loop.hi);
        bind_walk(S, sc, st->u.loop.var, st->u.loop.var_loc, false);
        S->loops++;
        check_block(S, sc, &st->u.loop.body);
        S->loops--;
        break;
    case ST_WHILE:
        check_expr(S, sc, st->u.whl.cond); /* in a fn or step: unrolled (lower_stmt.c) */
        S->loops++;
        check_block(S, sc, &st->u.whl.body);
        S->loops--;
        break;
    case ST_REPEAT:
        check_expr(S, sc, st->u.rep.count);
        S->loops++;
        check_block(S, sc, &st->u.rep.body);
        S->loops--;
        break;
    case ST_BREAK:
        if (S->loops == 0) err(S, st->loc, "'break' outside a loop");
        break;
    case ST_RETURN:
        if (!S->in_fn) err(S, st->loc, "'return' outside a function");
        check_expr(S, sc, st->u.ret.value);
        break;
    case ST_LOG:
        if (!S->host) err(S, st->loc, "'log' is only allowed in main and in every blocks");
        for (int i = 0; i < st->u.log.n; i++) {
            check_expr(S, sc, st->u.log.items[i].value);
            for (int j = 0; j < i; j++)
                if (st->u.log.items[i].name && st->u.log.items[j].name &&
                    strcmp(st->u.log.items[i].name, st->u.log.items[j].name) == 0)
                    err(S, st->u.log.items[i].name_loc, "'%s' is logged twice in one row",
                        st->u.log.items[i].name);
        }
        break;
    case ST_SAVE:
        if (!S->host) err(S, st->loc, "'save' is only allowed in main and in every blocks");
        check_expr(S, sc, st->u.save.value);
        break;
    case ST_PRINT:
        if (!S->host) err(S, st->loc, "'print' is only allowed in main and in every blocks");
        for (int i = 0; i < st->u.print.n; i++)
            check_expr(S, sc, st->u.print.items[i]);
        break;
    case ST_EVERY:
        check_expr(S, sc, st->u.every.every);
        if (!S->host || S->loops == 0)
            err(S, st->loc,
                "'every' inside main must be in a 'for' loop (it runs after every N-th iteration)");
        check_block(S, sc, &st->u.every.body);
        break;
    case ST_FN: {
        const Decl *d = st->u.fn;
        if (!d) break;
        Sema saved = *S;
        S->loops = 0;
        S->in_fn = true;
        S->host = false;
        check_fn_body(S, sc, d->u.fn.params, d->u.fn.nparams, &d->u.fn.body, d->u.fn.body_expr,
                      d->u.fn.ret);
        bool ok = S->ok;
        *S = saved;
        S->ok = S->ok && ok;
        bind_walk(S, sc, d->name, d->name_loc, false);
        break;
    }
    case ST_EXPR:
        check_expr(S, sc, st->u.expr);
        break;
    }
}

static void check_block(Sema *S, SScope *sc, const Block *b) {
    for (int i = 0; i < b->n; i++)
        check_stmt(S, sc, b->items[i]);
}

static void check_type_dims(Sema *S, SScope *sc, const TypeExpr *t) {
    for (int k = 0; t && k < t->ndims; k++)
        check_expr(S, sc, t->dims[k]);
}

static void check_fn_body(Sema *S, SScope *parent, const Param *ps, int np, const Block *body,
                          const Expr *body_expr, const TypeExpr *ret) {
    SScope sc;
    memset(&sc, 0, sizeof sc);
    sc.parent = parent;
    scan_params(S, &sc, ps, np);
    if (body) scan_block(S, &sc, body);
    for (int i = 0; i < np; i++) {
        if (ps[i].kind == PK_TYPE) check_type_dims(S, &sc, ps[i].type);
        check_expr(S, &sc, ps[i].deflt);
    }
    check_type_dims(S, &sc, ret);
    if (body_expr) check_expr(S, &sc, body_expr);
    if (body) check_block(S, &sc, body);
}

/* ---- declarations -------------------------------------------------------------------- */

static void check_decl(Sema *S, const Decl *d) {
    switch (d->kind) {
    case DC_IMPORT:
        break;
    case DC_CONFIG:
        for (int i = 0; i < d->u.config.n; i++) {
            SScope sc;
            memset(&sc, 0, sizeof sc);
            check_expr(S, &sc, d->u.config.items[i].value);
        }
        break;
    case DC_DATA: {
        SScope sc;
        memset(&sc, 0, sizeof sc);
        check_expr(S, &sc, d->u.data.value);
        break;
    }
    case DC_MODEL: {
        SScope sc;
        memset(&sc, 0, sizeof sc);
        check_expr(S, &sc, d->u.model.value);
        break;
    }
    case DC_FN:
        S->loops = 0;
        S->in_fn = true;
        S->host = false;
        check_fn_body(S, NULL, d->u.fn.params, d->u.fn.nparams, &d->u.fn.body, d->u.fn.body_expr,
                      d->u.fn.ret);
        break;
    case DC_OPTIMIZER: {
        SScope sc;
        memset(&sc, 0, sizeof sc);
        scan_params(S, &sc, d->u.opt.params, d->u.opt.nparams);
        static const char *specials[] = {"params", "data", "batch", "t", "loss"};
        for (int i = 0; i < 5; i++)
            s_add(S, &sc, specials[i], NK_SPECIAL, d->loc);
        for (int i = 0; i < d->u.opt.nparams; i++)
            check_expr(S, &sc, d->u.opt.params[i].deflt);
        for (int i = 0; i < d->u.opt.nstates; i++) {
            for (int j = 0; j < i; j++)
                if (strcmp(d->u.opt.states[i].name, d->u.opt.states[j].name) == 0) {
                    Diag *dg = err(S, d->u.opt.states[i].loc, "duplicate state '%s'",
                                   d->u.opt.states[i].name);
                    diag_add_note(S->L->d, dg, d->u.opt.states[j].loc,
                                  "'%s' was first declared here", d->u.opt.states[i].name);
                    break;
                }
            check_expr(S, &sc, d->u.opt.states[i].value);
        }
        for (int i = 0; i < d->u.opt.nstates; i++)
            s_add(S, &sc, d->u.opt.states[i].name, NK_VAR, d->u.opt.states[i].loc);
        for (int i = 0; i < sc.n; i++)
            sc.bound[i] = true;
        scan_block(S, &sc, &d->u.opt.step);
        S->loops = 0;
        S->in_fn = false;
        S->host = false;
        check_block(S, &sc, &d->u.opt.step);
        break;
    }
    case DC_TRAIN: {
        SScope sc;
        memset(&sc, 0, sizeof sc);
        s_add(S, &sc, "batch", NK_SPECIAL, d->loc);
        static const char *known[] = {"data", "batch",     "shuffle", "steps",    "epochs",
                                      "loss", "optimizer", "init",    "trainable"};
        for (int i = 0; i < d->u.train.nsettings; i++) {
            const Setting *st = &d->u.train.settings[i];
            bool found = false;
            for (int k = 0; k < 9; k++)
                found = found || strcmp(known[k], st->name) == 0;
            if (!found) {
                const char *near = fe_closest(st->name, known, 9);
                S->ok = false;
                if (near)
                    diag_error(S->L->d, st->loc, "unknown train setting '%s' (did you mean '%s'?)",
                               st->name, near);
                else
                    diag_error(S->L->d, st->loc,
                               "unknown train setting '%s' (settings: data, batch, shuffle, steps, "
                               "epochs, loss, "
                               "optimizer, trainable)",
                               st->name);
            }
            for (int j = 0; j < i; j++)
                if (strcmp(d->u.train.settings[j].name, st->name) == 0) {
                    Diag *dg = err(S, st->loc, "train setting '%s' is given twice", st->name);
                    diag_add_note(S->L->d, dg, d->u.train.settings[j].loc,
                                  "'%s' was first given here", st->name);
                    break;
                }
            check_expr(S, &sc, st->value);
        }
        for (int i = 0; i < d->u.train.neverys; i++) {
            const EveryBlock *eb = &d->u.train.everys[i];
            SScope es;
            memset(&es, 0, sizeof es);
            check_expr(S, &es, eb->every);
            scan_block(S, &es, &eb->body);
            S->loops = 0;
            S->in_fn = false;
            S->host = true;
            check_block(S, &es, &eb->body);
        }
        break;
    }
    case DC_MAIN: {
        SScope sc;
        memset(&sc, 0, sizeof sc);
        scan_block(S, &sc, &d->u.main.body);
        S->loops = 0;
        S->in_fn = false;
        S->host = true;
        check_block(S, &sc, &d->u.main.body);
        break;
    }
    }
}

bool fe_sema_module(Lower *L, FeMod *mod) {
    Sema S = {.L = L, .mod = mod, .ok = true};
    Program *p = mod->prog;
    int mains = 0;
    for (int i = 0; i < p->ndecls; i++) {
        const Decl *d = p->decls[i];
        if (d->kind == DC_MAIN && ++mains > 1) {
            S.ok = false;
            diag_error(L->d, d->loc, "a program has at most one main block");
        }
        check_decl(&S, d);
    }
    return S.ok;
}
