/* Train blocks and optimizers: `train NAME { ... }` -> HS_TRAIN + TrainSpec.
 *
 * The step graph is built in four moves. (1) Batch slots, one per field of
 * the data record, shaped [batch, ...]; the executor fills them. (2) The
 * loss expression is traced once with `batch` bound to those slots; tracing
 * discovers the parameters it uses (creating their slots and init graphs)
 * and they form the `params` tree, keyed by path. (3) The optimizer's
 * `state` initialisers are lowered into init graphs (one SLOT_STATE per leaf,
 * named "<param path>.<state>"), then its `step` block is lowered with
 * params, loss, batch, data, t and the states bound; `loss(p)` re-traces the
 * loss expression with a parameter override tree. (4) The final params and
 * states become outputs written back to their slots, plus the loss value.
 * `every N { }` blocks are host blocks run by the executor. */
#include <limits.h>
#include <string.h>

#include "lower_internal.h"

/* ---- trees from paths ---------------------------------------------------------------- */

/* Groups (path, value) pairs into a nested tree by dotted components,
 * preserving first-appearance order. Paths are taken from `from` chars on. */
static Value *tree_from_paths(Lower *L, const char **paths, Value **vals, int n, size_t *offs) {
    /* distinct first components */
    const char **names = arena_alloc(L->a, sizeof(char *) * (size_t)(n ? n : 1));
    Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    const char **sub_p = arena_alloc(L->a, sizeof(char *) * (size_t)(n ? n : 1));
    Value **sub_v = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    size_t *sub_o = arena_alloc(L->a, sizeof(size_t) * (size_t)(n ? n : 1));
    bool *done = arena_alloc(L->a, sizeof(bool) * (size_t)(n ? n : 1));
    if (!names || !items || !sub_p || !sub_v || !sub_o || !done) return lw_err(L);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (done[i]) continue;
        const char *p = paths[i] + offs[i];
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        const char *nm = arena_strndup(L->a, p, len);
        if (!dot) {
            names[k] = nm;
            items[k] = vals[i];
            done[i] = true;
            k++;
            continue;
        }
        int m = 0;
        for (int j = i; j < n; j++) {
            if (done[j]) continue;
            const char *q = paths[j] + offs[j];
            if (strncmp(q, p, len) == 0 && q[len] == '.') {
                sub_p[m] = paths[j];
                sub_v[m] = vals[j];
                sub_o[m] = offs[j] + len + 1;
                done[j] = true;
                m++;
            }
        }
        const char **cp = arena_alloc(L->a, sizeof(char *) * (size_t)m);
        Value **cv = arena_alloc(L->a, sizeof(Value *) * (size_t)m);
        size_t *co = arena_alloc(L->a, sizeof(size_t) * (size_t)m);
        if (!cp || !cv || !co) return lw_err(L);
        memcpy(cp, sub_p, sizeof(char *) * (size_t)m);
        memcpy(cv, sub_v, sizeof(Value *) * (size_t)m);
        memcpy(co, sub_o, sizeof(size_t) * (size_t)m);
        names[k] = nm;
        items[k] = tree_from_paths(L, cp, cv, m, co);
        k++;
    }
    return val_tree(L->a, k, names, items);
}

Value *lw_params_tree(Lower *L, const int *slots, int n) {
    const char **paths = arena_alloc(L->a, sizeof(char *) * (size_t)(n ? n : 1));
    Value **vals = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    size_t *offs = arena_alloc(L->a, sizeof(size_t) * (size_t)(n ? n : 1));
    if (!paths || !vals || !offs) return lw_err(L);
    for (int i = 0; i < n; i++) {
        paths[i] = L->m->slots[slots[i]].name;
        vals[i] = val_slot(L->a, slots[i]);
    }
    return tree_from_paths(L, paths, vals, n, offs);
}

/* Leaves of a tree in order, with their dotted paths. */
typedef struct {
    const char **paths;
    Value **vals;
    int n, cap;
} Leaves;

static void collect_leaves(Lower *L, Value *v, const char *prefix, Leaves *out) {
    if (v && (v->kind == V_TREE || v->kind == V_LIST)) {
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? v->u.tree.names[i] : lw_printf(L, "%d", i);
            collect_leaves(L, v->u.tree.items[i], prefix ? lw_printf(L, "%s.%s", prefix, nm) : nm,
                           out);
        }
        return;
    }
    if (out->n == out->cap) {
        size_t nc, c = (size_t)out->cap;
        if (!rt_grow_cap(c, c + 1, 16, INT_MAX, &nc) || !arena_resize(L->a, &out->paths, c, nc) ||
            !arena_resize(L->a, &out->vals, c, nc)) {
            L->oom = true;
            return;
        }
        out->cap = (int)nc;
    }
    out->paths[out->n] = prefix ? prefix : "";
    out->vals[out->n] = v;
    out->n++;
}

/* ---- loss ---------------------------------------------------------------------------- */

static Value *trace_loss(Lower *L, TrainCtx *tc, Value *ovr, Value *batch) {
    Scope *s = lw_scope_new(L, NULL, tc->mod);
    if (!s) return lw_err(L);
    lw_scope_set(L, s, "batch", batch, srcloc_none());
    Activation act;
    lw_act_top(L, &act);
    Value *saved_ovr = L->ovr;
    bool saved_host = L->host;
    L->ovr = ovr;
    L->host = false;
    Value *v = lw_expr(L, s, tc->loss_expr);
    L->ovr = saved_ovr;
    L->host = saved_host;
    lw_act_pop(L);
    if (v && v->kind == V_LOSS)
        return lw_error(L, tc->loss_expr->loc, "the loss cannot refer to itself");
    return v;
}

Value *lw_loss_value(Lower *L, SrcLoc loc) {
    if (!L->train || !L->train->loss)
        return lw_error(L, loc, "'loss' is only available inside an optimizer step");
    return L->train->loss;
}

Value *lw_loss_call(Lower *L, CallArg *args, int nargs, SrcLoc loc) {
    TrainCtx *tc = L->train;
    if (!tc || !tc->in_step)
        return lw_error(L, loc, "'loss' is only available inside an optimizer step");
    Value *p = NULL, *on = NULL;
    int npos = 0;
    for (int i = 0; i < nargs; i++) {
        if (!args[i].name) {
            if (npos++ > 0)
                return lw_error(L, args[i].loc,
                                "loss takes one positional argument (the parameters)");
            p = args[i].v;
        } else if (strcmp(args[i].name, "on") == 0) {
            on = args[i].v;
        } else {
            return lw_error(L, args[i].loc,
                            "loss has no parameter '%s' (it takes the parameters and 'on = batch')",
                            args[i].name);
        }
    }
    if (p && !val_same_structure(p, tc->params))
        return lw_error(L, loc,
                        "loss(p): p must have the structure of params (%d leaves), got %s with %d",
                        val_count_leaves(tc->params), lw_value_desc(L, p), val_count_leaves(p));
    if (on && on->kind != V_TREE)
        return lw_error(L, loc, "loss(..., on = b): b must be a record like batch");
    Value *v = trace_loss(L, tc, p ? p : NULL, on ? on : tc->batch);
    if (val_is_error(v)) return lw_err(L);
    return v;
}

/* ---- settings ------------------------------------------------------------------------ */

typedef struct {
    const Expr *data, *batch, *shuffle, *steps, *epochs, *loss, *optimizer, *init, *trainable;
    SrcLoc loss_loc;
} Settings;

static const char *const setting_names[] = {"data", "batch",     "shuffle", "steps",     "epochs",
                                            "loss", "optimizer", "init",    "trainable", NULL};

static bool read_settings(Lower *L, const Decl *d, Settings *st) {
    memset(st, 0, sizeof *st);
    bool ok = true;
    for (int i = 0; i < d->u.train.nsettings; i++) {
        const Setting *s = &d->u.train.settings[i];
        const Expr **slot = NULL;
        if (strcmp(s->name, "data") == 0)
            slot = &st->data;
        else if (strcmp(s->name, "batch") == 0)
            slot = &st->batch;
        else if (strcmp(s->name, "shuffle") == 0)
            slot = &st->shuffle;
        else if (strcmp(s->name, "steps") == 0)
            slot = &st->steps;
        else if (strcmp(s->name, "epochs") == 0)
            slot = &st->epochs;
        else if (strcmp(s->name, "loss") == 0)
            slot = &st->loss, st->loss_loc = s->loc;
        else if (strcmp(s->name, "optimizer") == 0)
            slot = &st->optimizer;
        else if (strcmp(s->name, "init") == 0)
            slot = &st->init;
        else if (strcmp(s->name, "trainable") == 0)
            slot = &st->trainable;
        if (!slot) {
            const char *near = fe_closest(s->name, setting_names, 9);
            if (near)
                diag_error(L->d, s->loc, "unknown train setting '%s' (did you mean '%s'?)", s->name,
                           near);
            else
                diag_error(L->d, s->loc,
                           "unknown train setting '%s' (settings: data, batch, shuffle, steps, "
                           "epochs, loss, "
                           "optimizer, trainable)",
                           s->name);
            ok = false;
            continue;
        }
        if (*slot) {
            diag_error(L->d, s->loc, "train setting '%s' is given twice", s->name);
            ok = false;
            continue;
        }
        *slot = s->value;
    }
    const char *missing = !st->data        ? "data"
                          : !st->loss      ? "loss"
                          : !st->optimizer ? "optimizer"
                          : !st->batch     ? "batch"
                                           : NULL;
    if (missing) {
        diag_error(L->d, d->name_loc, "train %s needs a '%s' setting", d->name, missing);
        ok = false;
    }
    if (!st->steps && !st->epochs) {
        diag_error(L->d, d->name_loc, "train %s needs 'steps' or 'epochs'", d->name);
        ok = false;
    }
    if (st->steps && st->epochs) {
        diag_error(L->d, st->epochs->loc, "train %s: give 'steps' or 'epochs', not both", d->name);
        ok = false;
    }
    return ok;
}

static bool const_setting_int(Lower *L, Scope *s, const Expr *e, int64_t *out, const char *what) {
    Value *v = lw_expr(L, s, e);
    if (val_is_error(v)) return false;
    return lw_const_int(L, v, out, e->loc, what);
}

/* ---- optimizer ----------------------------------------------------------------------- */

/* Materialises value v (tree, tensor or number) into new SLOT_STATE slots
 * named "<leaf path>.<state>" (or "<train>.<state>" for a non-tree state)
 * and returns the tree of those slots. */
static Value *state_slots(Lower *L, Value *v, const char *path, const char *state,
                          const char *train, SrcLoc loc) {
    if (val_is_error(v)) return lw_err(L);
    if (v->kind == V_TREE || v->kind == V_LIST) {
        Value **items =
            arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return lw_err(L);
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? v->u.tree.names[i] : lw_printf(L, "%d", i);
            items[i] = state_slots(L, v->u.tree.items[i],
                                   path ? lw_printf(L, "%s.%s", path, nm) : nm, state, train, loc);
            if (val_is_error(items[i])) return lw_err(L);
        }
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    if (v->kind == V_LOSS) v = lw_loss_value(L, loc);
    Node *n = lw_need_node(L, v, v->kind == V_INT ? DT_I64 : DT_COUNT, loc,
                           lw_printf(L, "state %s", state));
    if (!n) return lw_err(L);
    int slot = lw_new_slot(L, lw_printf(L, "%s.%s", path ? path : train, state), SLOT_STATE,
                           n->dtype, n->shape);
    if (slot < 0) return lw_err(L);
    lw_gc_output(L, n, slot);
    return val_slot(L->a, slot);
}

/* Writes the final value of a tree of slots back (graph outputs). */
static bool write_back(Lower *L, Value *final, Value *home, const char *what, SrcLoc loc) {
    if (val_is_error(final)) return false;
    if (home->kind == V_TREE || home->kind == V_LIST) {
        if (!val_same_structure(final, home))
            return !val_is_error(lw_error(L, loc, "the step changes the structure of %s", what));
        bool ok = true;
        for (int i = 0; i < home->u.tree.n; i++)
            ok = write_back(L, final->u.tree.items[i], home->u.tree.items[i], what, loc) && ok;
        return ok;
    }
    if (home->kind != V_SLOT) return true;
    int hs = home->u.slot;
    if (final->kind == V_SLOT && final->u.slot == hs) return true;
    const Slot *sl = &L->m->slots[hs];
    if (final->kind == V_LOSS) final = lw_loss_value(L, loc);
    Node *n = lw_need_node(L, final, sl->dtype, loc, what);
    if (!n) return false;
    char b1[160], b2[160];
    if (val_is_const(final))
        n = ir_broadcast(L->gc->g, ir_cast(L->gc->g, n, sl->dtype, loc), sl->shape, loc);
    if (!n) return false;
    if (n->dtype != sl->dtype || !rt_shape_eq(&n->shape, &sl->shape)) {
        lw_error(L, loc, "the step turns '%s' from %s into %s", sl->name,
                 fe_type_str(sl->dtype, &sl->shape, b1, sizeof b1),
                 fe_type_str(n->dtype, &n->shape, b2, sizeof b2));
        return false;
    }
    lw_gc_output(L, n, hs);
    return true;
}

/* ---- the train block ----------------------------------------------------------------- */

static Value *filter_trainable(Lower *L, Scope *s, const Expr *e, int *slots, int *n) {
    Value *v = lw_expr(L, s, e);
    if (val_is_error(v)) return v;
    Leaves lv = {0};
    collect_leaves(L, v, NULL, &lv);
    int k = 0;
    for (int i = 0; i < *n; i++) {
        bool keep = false;
        for (int j = 0; j < lv.n && !keep; j++)
            keep = lv.vals[j] && lv.vals[j]->kind == V_SLOT && lv.vals[j]->u.slot == slots[i];
        if (keep) slots[k++] = slots[i];
    }
    for (int j = 0; j < lv.n; j++) {
        Value *x = lv.vals[j];
        if (!x || x->kind != V_SLOT || L->m->slots[x->u.slot].kind != SLOT_PARAM)
            return lw_error(L, e->loc,
                            "trainable must list parameter trees such as params(mlp).linear0");
    }
    *n = k;
    return v;
}

/* The state of lowering one train block, shared by its steps. */
typedef struct {
    Lower *L;
    FeMod *mod;
    const Decl *d;
    Settings st;
    Scope *s; /* the host scope the settings and every blocks see */
    Value *data, *opt;
    const char *init_from; /* `init = a`: the model whose parameters b starts from */
    int64_t batch, steps, epochs, rows;
    bool shuffle;
    int nf; /* data fields */
    TrainSpec *ts;
    TrainCtx tc;
    Value **bitems;
    Node *ln; /* the loss node of the step graph */
    int *pslots, np;
    Value **state_homes;
    /* the Lower fields the block changes, restored at its end */
    bool saved_host;
    Scope *saved_scope;
    HostBlock *saved_hb;
    TrainCtx *saved_train;
} TrainLw;

/* The settings are host values, evaluated once in a setup graph. */
static bool eval_settings(TrainLw *T) {
    Lower *L = T->L;
    Scope *s = T->s;
    const Settings *st = &T->st;
    T->data = lw_expr(L, s, st->data);
    T->shuffle = true;
    bool ok = !val_is_error(T->data);
    ok = const_setting_int(L, s, st->batch, &T->batch, "batch") && ok;
    if (st->steps) ok = const_setting_int(L, s, st->steps, &T->steps, "steps") && ok;
    if (st->epochs) ok = const_setting_int(L, s, st->epochs, &T->epochs, "epochs") && ok;
    if (st->shuffle) {
        Value *sv = lw_expr(L, s, st->shuffle);
        ok = lw_const_bool(L, sv, &T->shuffle, st->shuffle->loc, "shuffle") && ok;
    }
    if (st->init) {
        Value *iv = lw_expr(L, s, st->init);
        if (!val_is_error(iv) && iv->kind == V_FUNC && iv->u.fn.kind == FN_DECL && iv->u.fn.inst) {
            T->init_from = iv->u.fn.inst;
        } else if (!val_is_error(iv)) {
            lw_error(L, st->init->loc,
                     "init must be a model (a fn a train block trains, or a `model`), got %s; "
                     "loading pretrained weights from a file is not supported yet",
                     lw_value_desc(L, iv));
            ok = false;
        } else {
            ok = false;
        }
    }
    T->opt = lw_expr(L, s, st->optimizer);
    if (!val_is_error(T->opt) && T->opt->kind != V_OPTIM) {
        lw_error(L, st->optimizer->loc,
                 "optimizer must be an optimizer such as optim.sgd(lr = 0.1), got %s",
                 lw_value_desc(L, T->opt));
        ok = false;
    }
    ok = ok && !val_is_error(T->opt);
    /* the data must be slots the executor can slice batches from */
    Value *extra[1] = {T->data};
    if (ok) lw_flush(L, extra, 1, T->d->loc);
    T->data = extra[0];
    return ok;
}

/* The data is a record of slot tensors with a common number of rows. */
static bool check_data(TrainLw *T) {
    Lower *L = T->L;
    Value *data = T->data;
    const Expr *e = T->st.data;
    if (data->kind != V_TREE || data->u.tree.n == 0) {
        lw_error(L, e->loc, "data must be a record of tensors such as mnist.train, got %s",
                 lw_value_desc(L, data));
        return false;
    }
    T->nf = data->u.tree.n;
    for (int i = 0; i < T->nf; i++) {
        Value *f = data->u.tree.items[i];
        DType dt;
        Shape sh;
        if (!f || f->kind != V_SLOT || !lw_type(L, f, &dt, &sh) || sh.rank < 1) {
            lw_error(L, e->loc,
                     "data: field '%s' must be a tensor with a leading row axis, got %s (use a "
                     "record of tensors such as mnist.train)",
                     data->u.tree.names[i], lw_value_desc(L, f));
            return false;
        } else if (T->rows >= 0 && sh.dims[0] != T->rows) {
            lw_error(L, e->loc, "data: fields have different numbers of rows (%lld and %lld)",
                     (long long)T->rows, (long long)sh.dims[0]);
            return false;
        } else {
            T->rows = sh.dims[0];
        }
    }
    return true;
}

/* batch fits the data; steps, or epochs turned into steps, fit an int64. */
static bool check_counts(TrainLw *T) {
    Lower *L = T->L;
    const Settings *st = &T->st;
    if (T->batch < 1 || T->batch > T->rows) {
        lw_error(L, st->batch->loc,
                 "batch must be between 1 and the %lld rows of the data, got %lld",
                 (long long)T->rows, (long long)T->batch);
        return false;
    }
    if (st->steps && T->steps < 0) {
        lw_error(L, st->steps->loc, "steps must not be negative, got %lld", (long long)T->steps);
        return false;
    }
    if (st->epochs) {
        if (T->epochs < 0) {
            lw_error(L, st->epochs->loc, "epochs must not be negative, got %lld",
                     (long long)T->epochs);
            return false;
        } else if (!ck_mul(T->epochs, T->rows / T->batch,
                           &T->steps)) { /* a last partial batch is skipped */
            lw_error(L, st->epochs->loc,
                     "epochs = %lld of %lld steps each is more than 2^63 - 1 steps",
                     (long long)T->epochs, (long long)(T->rows / T->batch));
            return false;
        }
    }
    return true;
}

/* (1) the spec the executor runs: data and batch slots, counts, t */
static bool make_spec(TrainLw *T) {
    Lower *L = T->L;
    const Decl *d = T->d;
    int nf = T->nf;
    TrainSpec *ts = T->ts = arena_alloc(L->a, sizeof *ts);
    if (!ts) return false;
    ts->name = d->name;
    ts->nfields = nf;
    ts->field_names = (const char **)T->data->u.tree.names;
    ts->data_slots = arena_alloc(L->a, sizeof(int) * (size_t)nf);
    ts->batch_slots = arena_alloc(L->a, sizeof(int) * (size_t)nf);
    if (!ts->data_slots || !ts->batch_slots) return false;
    T->bitems = arena_alloc(L->a, sizeof(Value *) * (size_t)nf);
    if (!T->bitems) return false;
    for (int i = 0; i < nf; i++) {
        int ds = T->data->u.tree.items[i]->u.slot;
        Shape bs = L->m->slots[ds].shape;
        bs.dims[0] = T->batch;
        ts->data_slots[i] = ds;
        ts->batch_slots[i] =
            lw_new_slot(L, lw_printf(L, "%s.batch.%s", d->name, T->data->u.tree.names[i]), SLOT_VAR,
                        L->m->slots[ds].dtype, bs);
        T->bitems[i] = val_slot(L->a, ts->batch_slots[i]);
    }
    ts->rows = T->rows;
    ts->batch = T->batch;
    ts->steps = T->steps;
    ts->shuffle = T->shuffle;
    ts->t_slot =
        lw_new_slot(L, lw_printf(L, "%s.t", d->name), SLOT_STEP, DT_I64, rt_shape_scalar());
    return true;
}

/* Leaves the host: what follows is lowered into the step graph. */
static void enter_step(TrainLw *T) {
    Lower *L = T->L;
    TrainCtx *tc = &T->tc;
    memset(tc, 0, sizeof *tc);
    tc->name = T->d->name;
    tc->loss_expr = T->st.loss;
    tc->mod = T->mod;
    tc->batch = val_tree(L->a, T->nf, (const char **)T->data->u.tree.names, T->bitems);
    tc->data = T->data;
    tc->t = val_slot(L->a, T->ts->t_slot);
    L->train = tc;
    L->host = false;
    L->host_scope = NULL;
    L->hb = NULL;
    lw_gc_push(L, lw_printf(L, "%s_step", T->d->name));
}

/* (2) traces the loss, recording the parameter slots it touches; returns
 * its node, or NULL when it is not a floating-point scalar. */
static Node *trace_step_loss(TrainLw *T) {
    Lower *L = T->L;
    L->track = true;
    L->ntouched = 0;
    Value *lv = trace_loss(L, &T->tc, NULL, T->tc.batch);
    L->track = false;
    if (val_is_error(lv)) return NULL;
    DType dt;
    Shape sh;
    char buf[160];
    if (!val_is_tensorish(lv) || !lw_type(L, lv, &dt, &sh)) {
        lw_error(L, T->st.loss_loc, "the loss must be a scalar tensor, got %s",
                 lw_value_desc(L, lv));
    } else if (sh.rank != 0 || (dt != DT_F32 && dt != DT_F64)) {
        lw_error(L, T->st.loss_loc, "the loss must be a floating-point scalar, got %s",
                 fe_type_str(dt, &sh, buf, sizeof buf));
    } else {
        return lw_node(L, lv, DT_COUNT, T->st.loss->loc);
    }
    return NULL;
}

/* The touched parameters in declaration order (the params tree's order). */
static void collect_params(TrainLw *T) {
    Lower *L = T->L;
    T->np = 0;
    T->pslots = arena_alloc(L->a, sizeof(int) * (size_t)(L->m->nparams ? L->m->nparams : 1));
    for (int i = 0; T->pslots && i < L->m->nparams; i++) {
        int ps = L->m->param_slots[i];
        for (int j = 0; j < L->ntouched; j++)
            if (L->touched[j] == ps) {
                T->pslots[T->np++] = ps;
                break;
            }
    }
    lw_mark_trained(L, T->pslots, T->np);
}

/* `trainable` is a host expression: evaluated outside the step graph, it
 * narrows the parameters; the loss is then traced again in a fresh step
 * graph. Returns the new loss node or NULL. */
static Node *restrict_trainable(TrainLw *T) {
    Lower *L = T->L;
    lw_gc_pop(L);
    L->host = true;
    L->host_scope = T->s;
    L->hb = &L->m->main;
    lw_gc_push(L, NULL);
    Value *tv = filter_trainable(L, T->s, T->st.trainable, T->pslots, &T->np);
    lw_gc_pop(L);
    L->host = false;
    L->host_scope = NULL;
    L->hb = NULL;
    lw_gc_push(L, lw_printf(L, "%s_step", T->d->name));
    if (val_is_error(tv)) return NULL;
    /* the loss must be traced again in the new step graph */
    Value *lv = trace_loss(L, &T->tc, NULL, T->tc.batch);
    return val_is_error(lv) ? NULL : lw_node(L, lv, DT_COUNT, T->st.loss->loc);
}

/* (3) the optimizer's scope: params, data, batch, t and its arguments
 * (defaults evaluated as init-time constants) */
static Scope *bind_optimizer(TrainLw *T) {
    Lower *L = T->L;
    const Value *opt = T->opt;
    const Decl *od = opt->u.optim.decl;
    Scope *os = lw_scope_new(L, NULL, opt->u.optim.mod);
    if (!os) return NULL;
    lw_scope_set(L, os, "params", T->tc.params, od->loc);
    lw_scope_set(L, os, "data", T->tc.data, od->loc);
    lw_scope_set(L, os, "batch", T->tc.batch, od->loc);
    lw_scope_set(L, os, "t", T->tc.t, od->loc);
    for (int i = 0; i < opt->u.optim.n; i++) {
        Value *v = opt->u.optim.vals[i];
        if (!v) {
            lw_gc_push(L, NULL);
            v = lw_expr(L, os, od->u.opt.params[i].deflt);
            lw_gc_pop(L);
            if (v && v->kind == V_TENSOR)
                v = lw_error(L, od->u.opt.params[i].deflt->loc, "a default must be a constant");
        }
        lw_scope_set(L, os, opt->u.optim.names[i], v, od->u.opt.params[i].loc);
    }
    return os;
}

/* (3) each `state` initialiser becomes an init graph filling its slots;
 * the states and `loss` are bound in the optimizer's scope */
static bool lower_states(TrainLw *T, Scope *os) {
    Lower *L = T->L;
    const Decl *od = T->opt->u.optim.decl, *d = T->d;
    int nstates = od->u.opt.nstates;
    T->state_homes = arena_alloc(L->a, sizeof(Value *) * (size_t)(nstates ? nstates : 1));
    if (!T->state_homes) return false;
    for (int i = 0; i < nstates; i++) {
        const Setting *sd = &od->u.opt.states[i];
        lw_gc_push(L, lw_printf(L, "init_%s.%s", d->name, sd->name));
        Value *iv = lw_expr(L, os, sd->value);
        T->state_homes[i] = state_slots(L, iv, NULL, sd->name, d->name, sd->loc);
        lw_gc_emit(L, &L->m->init, sd->loc);
        lw_gc_pop(L);
    }
    for (int i = 0; i < nstates; i++)
        lw_scope_set(L, os, od->u.opt.states[i].name, T->state_homes[i], od->u.opt.states[i].loc);
    lw_scope_set(L, os, "loss", NULL, od->loc);
    Value *lossv = arena_alloc(L->a, sizeof *lossv);
    if (lossv) lossv->kind = V_LOSS;
    lw_scope_set(L, os, "loss", lossv, od->loc);
    return true;
}

/* (3) the optimizer's `step` block; (4) the final params and states are
 * written back to their slots */
static void lower_opt_step(TrainLw *T, Scope *os) {
    Lower *L = T->L;
    const Decl *od = T->opt->u.optim.decl;
    T->tc.in_step = true;
    T->tc.fresh_k = 0;
    Activation sact;
    lw_act_top(L, &sact);
    int before = L->d->nerrors;
    lw_block(L, os, &od->u.opt.step);
    lw_act_pop(L);
    T->tc.in_step = false;
    if (L->d->nerrors != before) return;
    Binding *pb = lw_scope_find(os, "params");
    write_back(L, pb && pb->v ? pb->v : lw_err(L), T->tc.params, "params", od->u.opt.step.close);
    for (int i = 0; i < od->u.opt.nstates; i++) {
        Binding *b = lw_scope_find(os, od->u.opt.states[i].name);
        if (!val_is_error(T->state_homes[i]))
            write_back(L, b && b->v ? b->v : lw_err(L), T->state_homes[i],
                       lw_printf(L, "state %s", od->u.opt.states[i].name), od->u.opt.step.close);
    }
}

/* (4) the loss becomes an output too; the step graph joins the spec */
static void finish_step(TrainLw *T) {
    Lower *L = T->L;
    TrainSpec *ts = T->ts;
    ts->loss_slot = lw_new_slot(L, lw_printf(L, "%s.loss", T->d->name), SLOT_VAR, T->ln->dtype,
                                rt_shape_scalar());
    lw_gc_output(L, T->ln, ts->loss_slot);
    ts->step.graph = L->gc->g;
    ts->step.in_slots = L->gc->in_slots;
    ts->step.out_slots = L->gc->out_slots;
    lw_defs_commit(L);
    lw_gc_pop(L);
    lw_region_heads_written(L);
    L->train = T->saved_train;
}

/* `every N { }` blocks: host blocks the executor runs every N steps */
static bool lower_everys(TrainLw *T) {
    Lower *L = T->L;
    TrainSpec *ts = T->ts;
    int ne = T->d->u.train.neverys;
    ts->evals = arena_alloc(L->a, sizeof(TrainEvery) * (size_t)(ne ? ne : 1));
    if (!ts->evals) return false;
    for (int i = 0; i < ne; i++) {
        const EveryBlock *eb = &T->d->u.train.everys[i];
        int64_t k = 0;
        Value *kv = lw_expr(L, T->s, eb->every);
        if (!lw_const_int(L, kv, &k, eb->every->loc, "an every period")) continue;
        if (k < 1) {
            lw_error(L, eb->every->loc, "an every period must be at least 1, got %lld",
                     (long long)k);
            continue;
        }
        TrainEvery *te = &ts->evals[ts->nevals++];
        te->every = k;
        Scope *es = lw_scope_new(L, NULL, T->mod);
        Activation eact;
        lw_act_top(L, &eact);
        L->host = true;
        L->host_scope = es;
        L->hb = &te->body;
        lw_gc_push(L, NULL);
        lw_block(L, es, &eb->body);
        lw_gc_pop(L);
        lw_act_pop(L);
    }
    return true;
}

static bool has_params_under(Lower *L, const char *root) {
    size_t n = strlen(root);
    for (int i = 0; i < L->m->nparams; i++) {
        const char *p = L->m->slots[L->m->param_slots[i]].name;
        if (strncmp(p, root, n) == 0 && p[n] == '.') return true;
    }
    return false;
}

/* `train b { init = a }`: a graph, run just before the block trains, that
 * copies each parameter a.<p> into b.<p> for every parameter b.<p> the loss
 * uses (a was trained by an earlier block, or is a model of its own). */
static bool emit_init_copy(TrainLw *T) {
    Lower *L = T->L;
    const char *to = T->d->name, *from = T->init_from;
    SrcLoc loc = T->st.init->loc;
    size_t tn = strlen(to);
    if (strcmp(to, from) == 0) {
        lw_error(L, loc, "init = %s: a model cannot start from itself", from);
        return false;
    }
    lw_gc_push(L, lw_printf(L, "%s_init_from_%s", to, from));
    int copied = 0;
    bool ok = true;
    char b1[160], b2[160];
    for (int i = 0; i < T->np && ok; i++) {
        const Slot *dst = &L->m->slots[T->pslots[i]];
        if (strncmp(dst->name, to, tn) != 0 || dst->name[tn] != '.') continue;
        const char *src_path = lw_printf(L, "%s%s", from, dst->name + tn);
        int src = lw_find_slot(L, src_path, SLOT_PARAM);
        if (src < 0 && !has_params_under(L, from)) {
            lw_error(L, loc,
                     "init = %s: model %s has no parameters yet (train or use it before this "
                     "train block)",
                     from, from);
            ok = false;
        } else if (src < 0) {
            lw_error(L, loc, "init = %s: %s has no parameter '%s' to start '%s' from", from, from,
                     src_path, dst->name);
            ok = false;
        } else if (L->m->slots[src].dtype != dst->dtype ||
                   !rt_shape_eq(&L->m->slots[src].shape, &dst->shape)) {
            lw_error(L, loc, "init = %s: '%s' is %s but '%s' is %s", from, src_path,
                     fe_type_str(L->m->slots[src].dtype, &L->m->slots[src].shape, b1, sizeof b1),
                     dst->name, fe_type_str(dst->dtype, &dst->shape, b2, sizeof b2));
            ok = false;
        } else {
            Node *n = lw_slot_node(L, src, loc);
            lw_gc_output(L, n ? ir_unary(L->gc->g, OP_STOP_GRAD, n, loc) : NULL, T->pslots[i]);
            copied++;
        }
    }
    if (ok && copied == 0) {
        lw_error(L, loc, "init = %s: the loss of train %s uses no parameters of model %s", from, to,
                 to);
        ok = false;
    }
    if (ok) lw_gc_emit(L, &L->m->main, loc);
    lw_gc_pop(L);
    return ok;
}

/* The step graph and everything after it, once the settings are valid.
 * Returns with the step graph popped whatever happens. */
static void lower_train_loop(TrainLw *T) {
    Lower *L = T->L;
    if (!make_spec(T)) return;
    enter_step(T);
    T->ln = trace_step_loss(T);
    collect_params(T);
    if (T->ln && T->st.trainable) T->ln = restrict_trainable(T);
    if (T->ln && T->np == 0) {
        lw_error(L, T->d->name_loc,
                 "the loss of train %s uses no parameters: there is nothing to train", T->d->name);
        T->ln = NULL;
    }
    if (!T->ln) {
        lw_gc_pop(L);
        return;
    }
    T->tc.loss = lw_tensor(L, T->ln);
    T->tc.params = lw_params_tree(L, T->pslots, T->np);
    Scope *os = bind_optimizer(T);
    if (!os || !lower_states(T, os)) {
        lw_gc_pop(L);
        return;
    }
    lower_opt_step(T, os);
    finish_step(T);
    if (!lower_everys(T)) return;
    if (T->init_from && !emit_init_copy(T)) return;
    HostStmt *hs = ir_host_append(L->m, &L->m->main, HS_TRAIN, T->d->loc);
    if (hs) hs->u.train = T->ts;
}

void lw_train(Lower *L, FeMod *mod, const Decl *d) {
    TrainLw T = {.L = L, .mod = mod, .d = d, .rows = -1};
    L->ntrains++;
    if (!read_settings(L, d, &T.st)) return;
    T.s = lw_scope_new(L, NULL, mod);
    if (!T.s) return;
    Activation act;
    lw_act_top(L, &act);
    T.saved_host = L->host;
    T.saved_scope = L->host_scope;
    T.saved_hb = L->hb;
    T.saved_train = L->train;
    L->host = true;
    L->host_scope = T.s;
    L->hb = &L->m->main;
    lw_gc_push(L, lw_printf(L, "%s_setup", d->name));
    int errs = L->d->nerrors;
    bool ok = eval_settings(&T);
    ok = ok && check_data(&T);
    ok = ok && check_counts(&T);
    lw_gc_pop(L);
    if (ok && L->d->nerrors == errs) {
        /* the step and the every blocks run in a loop (lower_defs.h) */
        Region reg;
        lw_region_begin(L, &reg, true);
        lower_train_loop(&T);
        lw_region_end(L);
    }
    L->train = T.saved_train;
    L->host = T.saved_host;
    L->host_scope = T.saved_scope;
    L->hb = T.saved_hb;
    lw_act_pop(L);
}
