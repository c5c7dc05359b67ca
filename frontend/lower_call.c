/* Calls: argument binding, signature checks and inlining.
 *
 * Every call of a dflow function is inlined into the graph being built: the
 * callee gets a fresh scope with its parameters bound, runs, and its return
 * value flows back. Typed parameters are checked against their arguments
 * (dtype, rank, dims), binding shape variables such as B in f32[B, 784];
 * `...` matches any run of dimensions. Each inlined call pushes an
 * Activation, which names parameters by path and detects recursion. A call
 * through a model name (a fn a train block names, or `model NAME = f`;
 * Value.u.fn.inst) is that model wherever it stands -- a helper, another
 * model, a lambda, a std function given the model as an argument -- so its
 * parameters are NAME.<path inside>. Any other call of a fn is a layer of
 * its caller: mlp.linear0 is mlp's first call of linear. Lambdas are inlined
 * too but are transparent to paths.
 * Calling an optimizer declaration binds its arguments into an instance
 * (V_OPTIM) that a train block lowers later. */
#include <string.h>

#include "lower_internal.h"

/* ---- types as written ---------------------------------------------------------------- */

static const char *dim_str(Lower *L, const Expr *e, Scope *s) {
    if (!e) return "...";
    if (e->kind == EX_NAME) return e->u.name;
    if (e->kind == EX_INT) return lw_printf(L, "%lld", (long long)e->u.ival);
    /* an expression: show its value when it folds quietly */
    int before = L->d->n;
    Value *v = lw_expr(L, s, e);
    if (L->d->n != before) return "?";
    if (v && v->kind == V_INT) return lw_printf(L, "%lld", (long long)v->u.i);
    return "?";
}

const char *lw_type_expr_str(Lower *L, const TypeExpr *t, Scope *s) {
    const char *r = rt_dtype_name(t->dtype);
    if (!t->has_dims || t->ndims == 0) return r;
    r = lw_printf(L, "%s[", r);
    for (int i = 0; i < t->ndims; i++)
        r = lw_printf(L, "%s%s%s", r, i ? "," : "", dim_str(L, t->dims[i], s));
    return lw_printf(L, "%s]", r);
}

/* A dim name that is not bound anywhere: a shape variable. */
static bool unbound_name(Lower *L, Scope *s, const char *name) {
    FeMod *mod = s ? s->mod : L->main;
    for (Scope *p = s; p; p = p->parent) {
        if (lw_scope_find(p, name)) return false;
        if (p->mod) mod = p->mod;
    }
    return lw_global(mod, name) == NULL;
}

/* Matches value v against type t, binding shape variables into s. */
static bool check_type(Lower *L, Scope *s, const TypeExpr *t, Value *v, const char *what,
                       SrcLoc loc) {
    if (val_is_error(v)) return false;
    if (v->kind == V_LOSS) v = lw_loss_value(L, loc);
    if (val_is_error(v)) return false;
    DType dt;
    Shape sh;
    /* a tensor literal takes the declared dtype, as a number would */
    bool typed =
        lw_is_numeric_list(v) ? lw_literal_type(v, t->dtype, &dt, &sh) : lw_type(L, v, &dt, &sh);
    if (!typed) {
        diag_error(L->d, loc, "%s: expected %s, got %s", what, lw_type_expr_str(L, t, s),
                   lw_value_desc(L, v));
        return false;
    }
    char buf[160];
    int ndims = t->has_dims ? t->ndims : 0;
    if (val_is_const(v)) {
        bool ok = ndims == 0 || (ndims == 1 && !t->dims[0]);
        bool fl = t->dtype == DT_F32 || t->dtype == DT_F64;
        if (v->kind == V_FLOAT && !fl) ok = false;
        if (v->kind == V_BOOL && t->dtype != DT_BOOL) ok = false;
        if ((v->kind == V_INT) && t->dtype == DT_BOOL) ok = false;
        if (!ok) {
            diag_error(L->d, loc, "%s: expected %s, got %s", what, lw_type_expr_str(L, t, s),
                       lw_value_desc(L, v));
            return false;
        }
        return true;
    }
    bool bad = dt != t->dtype;
    int ell = -1;
    for (int i = 0; i < ndims; i++)
        if (!t->dims[i]) ell = ell < 0 ? i : ell;
    int fixed = ell >= 0 ? ndims - 1 : ndims;
    if (ell >= 0 ? sh.rank < fixed : sh.rank != fixed) bad = true;
    if (!bad) {
        for (int i = 0; i < ndims && !bad; i++) {
            if (!t->dims[i]) continue;
            int ai = (ell >= 0 && i > ell) ? sh.rank - (ndims - i) : i;
            int64_t d = sh.dims[ai];
            const Expr *de = t->dims[i];
            if (de->kind == EX_NAME && unbound_name(L, s, de->u.name)) {
                lw_scope_set(L, s, de->u.name, val_int(L->a, d), de->loc);
                continue;
            }
            Value *dv = lw_expr(L, s, de);
            int64_t want;
            if (!lw_const_int(L, dv, &want, de->loc, "a dimension")) return false;
            if (want != d) bad = true;
        }
    }
    if (bad) {
        diag_error(L->d, loc, "%s: expected %s, got %s", what, lw_type_expr_str(L, t, s),
                   fe_type_str(dt, &sh, buf, sizeof buf));
        return false;
    }
    return true;
}

/* ---- argument binding ---------------------------------------------------------------- */

/* Matches args to params by position then keyword. out[i] = the argument for
 * params[i] or NULL (default); out_loc[i] its location. */
static bool bind_args(Lower *L, const char *fname, const Param *ps, int np, CallArg *args,
                      int nargs, SrcLoc loc, Value **out, SrcLoc *out_loc) {
    bool ok = true;
    int pos = 0;
    for (int i = 0; i < np; i++) {
        out[i] = NULL;
        out_loc[i] = loc;
    }
    for (int k = 0; k < nargs; k++) {
        if (!args[k].name) {
            if (pos >= np) {
                diag_error(L->d, args[k].loc, "%s takes %d argument%s, got %d", fname, np,
                           np == 1 ? "" : "s", nargs);
                return false;
            }
            out[pos] = args[k].v;
            out_loc[pos] = args[k].loc;
            pos++;
            continue;
        }
        int j = -1;
        for (int i = 0; i < np; i++)
            if (strcmp(ps[i].name, args[k].name) == 0) j = i;
        if (j < 0) {
            const char **cands = arena_alloc(L->a, sizeof(char *) * (size_t)(np ? np : 1));
            for (int i = 0; cands && i < np; i++)
                cands[i] = ps[i].name;
            const char *near = cands ? fe_closest(args[k].name, cands, np) : NULL;
            if (near)
                diag_error(L->d, args[k].loc, "%s has no parameter '%s' (did you mean '%s'?)",
                           fname, args[k].name, near);
            else
                diag_error(L->d, args[k].loc, "%s has no parameter '%s'", fname, args[k].name);
            ok = false;
            continue;
        }
        if (out[j]) {
            diag_error(L->d, args[k].loc, "argument '%s' of %s is given twice", args[k].name,
                       fname);
            ok = false;
            continue;
        }
        out[j] = args[k].v;
        out_loc[j] = args[k].loc;
    }
    for (int i = 0; i < np && ok; i++) {
        if (!out[i] && !ps[i].deflt) {
            diag_error(L->d, loc, "missing argument '%s' in the call of %s", ps[i].name, fname);
            ok = false;
        }
    }
    return ok;
}

/* Binds parameters into scope s, checking annotations. */
static bool bind_params(Lower *L, Scope *s, const char *fname, const Param *ps, int np,
                        Value **vals, SrcLoc *locs) {
    bool ok = true;
    for (int i = 0; i < np; i++) {
        const Param *p = &ps[i];
        Value *v = vals[i];
        SrcLoc vl = locs[i];
        if (!v) {
            v = lw_expr(L, s, p->deflt);
            vl = p->deflt->loc;
        }
        if (val_is_error(v)) {
            lw_scope_set(L, s, p->name, lw_err(L), p->loc);
            ok = false;
            continue;
        }
        const char *what = lw_printf(L, "argument '%s' of %s", p->name, fname);
        switch (p->kind) {
        case PK_INT: {
            int64_t k;
            if (v->kind == V_INT) break; /* as it is: a config value stays one */
            if (!lw_const_int(L, v, &k, vl, what)) {
                ok = false;
                v = lw_err(L);
            } else {
                v = val_int(L->a, k);
            }
            break;
        }
        case PK_FLOAT: {
            double f;
            if (v->kind == V_FLOAT) break; /* as it is: a config value stays one */
            if (val_is_const(v) && v->cfg) {
                /* an int or bool config as a float: still read from its slot */
                Value *fv = val_float(L->a, val_num(v));
                if (!fv) {
                    L->oom = true;
                    return false;
                }
                fv->cfg = v->cfg;
                v = fv;
                break;
            }
            if (!lw_const_num(L, v, &f, vl, what)) {
                ok = false;
                v = lw_err(L);
            } else {
                v = val_float(L->a, f);
            }
            break;
        }
        case PK_STR:
            if (v->kind != V_STR) {
                diag_error(L->d, vl, "%s must be a string, got %s", what, lw_value_desc(L, v));
                ok = false;
                v = lw_err(L);
            }
            break;
        case PK_TYPE:
            if (!check_type(L, s, p->type, v, what, vl)) {
                ok = false;
                v = lw_err(L);
            }
            break;
        case PK_ANY:
            break;
        }
        lw_scope_set(L, s, p->name, v, p->loc);
    }
    return ok;
}

/* ---- inlining ------------------------------------------------------------------------ */

static Value *recursion_error(Lower *L, const Decl *d, SrcLoc loc) {
    const char *chain = d->name;
    /* walk from the innermost activation back to d's, then print in call order */
    const char *names[FE_MAX_CALL_DEPTH + 1];
    int n = 0;
    for (Activation *a = L->act; a && n < FE_MAX_CALL_DEPTH; a = a->prev) {
        if (!a->fn) break;
        names[n++] = a->fn->name;
        if (a->fn == d) break;
    }
    if (n <= 1) return lw_error(L, loc, "recursion is not supported (%s calls itself)", d->name);
    chain = names[n - 1];
    for (int i = n - 2; i >= 0; i--)
        chain = lw_printf(L, "%s calls %s, which", chain, names[i]);
    return lw_error(L, loc, "recursion is not supported (%s calls %s)", chain, d->name);
}

typedef struct {
    bool host;
    HostBlock *hb;
    int host_loops, unrolled_loops;
    Value *ret;
    SrcLoc ret_loc;
} SavedCtx;

static void save_ctx(Lower *L, SavedCtx *c) {
    c->host = L->host;
    c->hb = L->hb;
    c->host_loops = L->host_loops;
    c->unrolled_loops = L->unrolled_loops;
    c->ret = L->ret;
    c->ret_loc = L->ret_loc;
    L->host = false;
    L->host_loops = 0;
    L->unrolled_loops = 0;
    L->ret = NULL;
}

static void restore_ctx(Lower *L, const SavedCtx *c) {
    L->host = c->host;
    L->hb = c->hb;
    L->host_loops = c->host_loops;
    L->unrolled_loops = c->unrolled_loops;
    L->ret = c->ret;
    L->ret_loc = c->ret_loc;
}

static Value *run_body(Lower *L, Scope *s, const Block *body, const Expr *body_expr) {
    if (body_expr) return lw_expr(L, s, body_expr);
    Flow f = lw_block(L, s, body);
    if (f == FLOW_RETURN && L->ret) return L->ret;
    return val_none(L->a);
}

static Value *inline_fn_in(Lower *L, const Decl *d, FeMod *mod, Scope *closure, const char *inst,
                           CallArg *args, int nargs, SrcLoc loc) {
    if (L->call_depth >= FE_MAX_CALL_DEPTH)
        return lw_error(L, loc, "calls are nested more than %d deep", FE_MAX_CALL_DEPTH);
    for (Activation *a = L->act; a; a = a->prev)
        if (a->fn == d) return recursion_error(L, d, loc);
    int np = d->u.fn.nparams;
    Value **vals = arena_alloc(L->a, sizeof(Value *) * (size_t)(np ? np : 1));
    SrcLoc *locs = arena_alloc(L->a, sizeof(SrcLoc) * (size_t)(np ? np : 1));
    if (!vals || !locs) return lw_err(L);
    if (!bind_args(L, d->name, d->u.fn.params, np, args, nargs, loc, vals, locs)) return lw_err(L);
    Scope *s = lw_scope_new(L, closure, mod);
    if (!s) return lw_err(L);
    if (!bind_params(L, s, d->name, d->u.fn.params, np, vals, locs)) return lw_err(L);

    Activation act;
    if (inst)
        lw_act_push_instance(L, &act, d, inst);
    else
        lw_act_push(L, &act, d, d->name);
    act.call = loc;
    SavedCtx saved;
    save_ctx(L, &saved);
    L->call_depth++;
    Value *r = run_body(L, s, &d->u.fn.body, d->u.fn.body_expr);
    SrcLoc rloc = d->u.fn.body_expr ? d->u.fn.body_expr->loc : (L->ret ? L->ret_loc : d->loc);
    L->call_depth--;
    if (d->u.fn.ret && !val_is_error(r)) {
        if (r->kind == V_NONE) {
            r = lw_error(L, d->u.fn.body.close.line ? d->u.fn.body.close : d->loc,
                         "%s ends without returning a value (declared -> %s)", d->name,
                         lw_type_expr_str(L, d->u.fn.ret, s));
        } else if (!check_type(L, s, d->u.fn.ret, r, lw_printf(L, "return value of %s", d->name),
                               rloc)) {
            r = lw_err(L);
        }
    }
    restore_ctx(L, &saved);
    lw_act_pop(L);
    return r ? r : lw_err(L);
}

Value *lw_inline_fn(Lower *L, const Decl *d, FeMod *mod, CallArg *args, int nargs, SrcLoc loc) {
    return inline_fn_in(L, d, mod, NULL, NULL, args, nargs, loc);
}

static Value *call_lambda(Lower *L, Value *f, CallArg *args, int nargs, SrcLoc loc) {
    const Expr *e = f->u.fn.lambda;
    if (L->call_depth >= FE_MAX_CALL_DEPTH)
        return lw_error(L, loc,
                        "calls are nested more than %d deep (a function that calls itself?)",
                        FE_MAX_CALL_DEPTH);
    int np = e->u.lambda.nparams;
    Value **vals = arena_alloc(L->a, sizeof(Value *) * (size_t)(np ? np : 1));
    SrcLoc *locs = arena_alloc(L->a, sizeof(SrcLoc) * (size_t)(np ? np : 1));
    if (!vals || !locs) return lw_err(L);
    if (!bind_args(L, "the anonymous function", e->u.lambda.params, np, args, nargs, loc, vals,
                   locs))
        return lw_err(L);
    Scope *s = lw_scope_new(L, f->u.fn.closure, f->u.fn.mod);
    if (!s) return lw_err(L);
    if (!bind_params(L, s, "the anonymous function", e->u.lambda.params, np, vals, locs))
        return lw_err(L);
    L->call_depth++;
    bool host = L->host;
    L->host = false;
    Value *r = lw_expr(L, s, e->u.lambda.body);
    L->host = host;
    L->call_depth--;
    return r;
}

static Value *make_optim(Lower *L, Value *f, CallArg *args, int nargs, SrcLoc loc) {
    const Decl *d = f->u.fn.decl;
    int np = d->u.opt.nparams;
    Value **vals = arena_alloc(L->a, sizeof(Value *) * (size_t)(np ? np : 1));
    SrcLoc *locs = arena_alloc(L->a, sizeof(SrcLoc) * (size_t)(np ? np : 1));
    const char **names = arena_alloc(L->a, sizeof(char *) * (size_t)(np ? np : 1));
    if (!vals || !locs || !names) return lw_err(L);
    if (!bind_args(L, lw_printf(L, "optimizer %s", d->name), d->u.opt.params, np, args, nargs, loc,
                   vals, locs))
        return lw_err(L);
    for (int i = 0; i < np; i++) {
        names[i] = d->u.opt.params[i].name;
        if (vals[i] && val_is_error(vals[i])) return lw_err(L);
        if (vals[i] && vals[i]->kind == V_TENSOR)
            return lw_error(L, locs[i],
                            "argument '%s' of optimizer %s must be a constant or a data value",
                            names[i], d->name);
    }
    Value *v = arena_alloc(L->a, sizeof *v);
    if (!v) return lw_err(L);
    v->kind = V_OPTIM;
    v->u.optim.decl = d;
    v->u.optim.mod = f->u.fn.mod;
    v->u.optim.n = np;
    v->u.optim.names = names;
    v->u.optim.vals = vals;
    v->u.optim.loc = loc;
    return v;
}

Value *lw_call_value(Lower *L, Value *f, const char *fname, CallArg *args, int nargs, SrcLoc loc) {
    if (val_is_error(f)) return lw_err(L);
    for (int i = 0; i < nargs; i++)
        if (val_is_error(args[i].v)) return lw_err(L);
    switch (f->kind) {
    case V_FUNC:
        switch (f->u.fn.kind) {
        case FN_BUILTIN:
            return lw_builtin_call(L, f->u.fn.builtin, args, nargs, loc);
        case FN_DECL:
            return inline_fn_in(L, f->u.fn.decl, f->u.fn.mod, f->u.fn.closure, f->u.fn.inst, args,
                                nargs, loc);
        case FN_LAMBDA:
            return call_lambda(L, f, args, nargs, loc);
        case FN_OPTIMIZER:
            return make_optim(L, f, args, nargs, loc);
        }
        break;
    case V_LOSS:
        return lw_loss_call(L, args, nargs, loc);
    case V_ERROR:
    case V_NONE:
    case V_INT:
    case V_FLOAT:
    case V_BOOL:
    case V_STR:
    case V_TENSOR:
    case V_SLOT:
    case V_TREE:
    case V_LIST:
    case V_OPTIM:
    case V_MODULE:
        break;
    }
    if (fname) return lw_error(L, loc, "'%s' is %s, not a function", fname, lw_value_desc(L, f));
    return lw_error(L, loc, "%s is not a function", lw_value_desc(L, f));
}

Value *lw_call_expr(Lower *L, Scope *s, const Expr *e) {
    const Expr *ce = e->u.call.callee;
    Value *f;
    const char *fname = NULL;
    if (ce->kind == EX_NAME) {
        fname = ce->u.name;
        f = lw_lookup(L, s, ce->u.name, ce->loc);
        if (!f) return lw_error(L, ce->loc, "unknown function '%s'", ce->u.name);
    } else {
        if (ce->kind == EX_FIELD) fname = ce->u.field.name;
        f = lw_expr(L, s, ce);
    }
    if (val_is_error(f)) return lw_err(L);
    int n = e->u.call.nargs;
    CallArg *args = arena_alloc(L->a, sizeof(CallArg) * (size_t)(n ? n : 1));
    if (!args) return lw_err(L);
    bool err = false;
    for (int i = 0; i < n; i++) {
        const Arg *a = &e->u.call.args[i];
        args[i].name = a->name;
        args[i].loc = a->value ? a->value->loc : a->name_loc;
        args[i].v = lw_expr(L, s, a->value);
        if (val_is_error(args[i].v)) err = true;
    }
    if (err) return lw_err(L);
    return lw_call_value(L, f, fname, args, n, e->loc);
}
