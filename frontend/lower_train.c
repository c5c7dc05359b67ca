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
            collect_leaves(L, v->u.tree.items[i], prefix ? lw_printf(L, "%s.%s", prefix, nm) : nm, out);
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
    if (v && v->kind == V_LOSS) return lw_error(L, tc->loss_expr->loc, "the loss cannot refer to itself");
    return v;
}

Value *lw_loss_value(Lower *L, SrcLoc loc) {
    if (!L->train || !L->train->loss)
        return lw_error(L, loc, "'loss' is only available inside an optimizer step");
    return L->train->loss;
}

Value *lw_loss_call(Lower *L, CallArg *args, int nargs, SrcLoc loc) {
    TrainCtx *tc = L->train;
    if (!tc || !tc->in_step) return lw_error(L, loc, "'loss' is only available inside an optimizer step");
    Value *p = NULL, *on = NULL;
    int npos = 0;
    for (int i = 0; i < nargs; i++) {
        if (!args[i].name) {
            if (npos++ > 0) return lw_error(L, args[i].loc, "loss takes one positional argument (the parameters)");
            p = args[i].v;
        } else if (strcmp(args[i].name, "on") == 0) {
            on = args[i].v;
        } else {
            return lw_error(L, args[i].loc, "loss has no parameter '%s' (it takes the parameters and 'on = batch')",
                            args[i].name);
        }
    }
    if (p && !val_same_structure(p, tc->params))
        return lw_error(L, loc, "loss(p): p must have the structure of params (%d leaves), got %s with %d",
                        val_count_leaves(tc->params), lw_value_desc(L, p), val_count_leaves(p));
    if (on && on->kind != V_TREE) return lw_error(L, loc, "loss(..., on = b): b must be a record like batch");
    Value *v = trace_loss(L, tc, p ? p : NULL, on ? on : tc->batch);
    if (val_is_error(v)) return lw_err(L);
    return v;
}

/* ---- settings ------------------------------------------------------------------------ */

typedef struct {
    const Expr *data, *batch, *shuffle, *steps, *epochs, *loss, *optimizer, *init, *trainable;
    SrcLoc loss_loc;
} Settings;

static const char *const setting_names[] = {"data",      "batch", "shuffle", "steps",     "epochs",
                                            "loss",      "optimizer", "init", "trainable", NULL};

static bool read_settings(Lower *L, const Decl *d, Settings *st) {
    memset(st, 0, sizeof *st);
    bool ok = true;
    for (int i = 0; i < d->u.train.nsettings; i++) {
        const Setting *s = &d->u.train.settings[i];
        const Expr **slot = NULL;
        if (strcmp(s->name, "data") == 0) slot = &st->data;
        else if (strcmp(s->name, "batch") == 0) slot = &st->batch;
        else if (strcmp(s->name, "shuffle") == 0) slot = &st->shuffle;
        else if (strcmp(s->name, "steps") == 0) slot = &st->steps;
        else if (strcmp(s->name, "epochs") == 0) slot = &st->epochs;
        else if (strcmp(s->name, "loss") == 0) slot = &st->loss, st->loss_loc = s->loc;
        else if (strcmp(s->name, "optimizer") == 0) slot = &st->optimizer;
        else if (strcmp(s->name, "init") == 0) slot = &st->init;
        else if (strcmp(s->name, "trainable") == 0) slot = &st->trainable;
        if (!slot) {
            const char *near = fe_closest(s->name, setting_names, 9);
            if (near) diag_error(L->d, s->loc, "unknown train setting '%s' (did you mean '%s'?)", s->name, near);
            else
                diag_error(L->d, s->loc,
                           "unknown train setting '%s' (settings: data, batch, shuffle, steps, epochs, loss, "
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
    const char *missing = !st->data ? "data" : !st->loss ? "loss" : !st->optimizer ? "optimizer" : !st->batch ? "batch" : NULL;
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
static Value *state_slots(Lower *L, Value *v, const char *path, const char *state, const char *train, SrcLoc loc) {
    if (val_is_error(v)) return lw_err(L);
    if (v->kind == V_TREE || v->kind == V_LIST) {
        Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return lw_err(L);
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? v->u.tree.names[i] : lw_printf(L, "%d", i);
            items[i] = state_slots(L, v->u.tree.items[i], path ? lw_printf(L, "%s.%s", path, nm) : nm, state, train,
                                   loc);
            if (val_is_error(items[i])) return lw_err(L);
        }
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    if (v->kind == V_LOSS) v = lw_loss_value(L, loc);
    Node *n = lw_need_node(L, v, v->kind == V_INT ? DT_I64 : DT_COUNT, loc, lw_printf(L, "state %s", state));
    if (!n) return lw_err(L);
    int slot = lw_new_slot(L, lw_printf(L, "%s.%s", path ? path : train, state), SLOT_STATE, n->dtype, n->shape);
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
    if (val_is_const(final)) n = ir_broadcast(L->gc->g, ir_cast(L->gc->g, n, sl->dtype, loc), sl->shape, loc);
    if (!n) return false;
    if (n->dtype != sl->dtype || !rt_shape_eq(&n->shape, &sl->shape)) {
        lw_error(L, loc, "the step turns '%s' from %s into %s", sl->name, fe_type_str(sl->dtype, &sl->shape, b1, sizeof b1),
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
            return lw_error(L, e->loc, "trainable must list parameter trees such as params(mlp).linear0");
    }
    *n = k;
    return v;
}

void lw_train(Lower *L, FeMod *mod, const Decl *d) {
    Settings st;
    Region reg;
    bool in_region = false;
    if (!read_settings(L, d, &st)) return;
    Scope *s = lw_scope_new(L, NULL, mod);
    if (!s) return;
    Activation act;
    lw_act_top(L, &act);
    bool saved_host = L->host;
    Scope *saved_scope = L->host_scope;
    HostBlock *saved_hb = L->hb;
    TrainCtx *saved_train = L->train;
    L->host = true;
    L->host_scope = s;
    L->hb = &L->m->main;
    lw_gc_push(L, lw_printf(L, "%s_setup", d->name));
    int errs = L->d->nerrors;

    /* data, batch, steps, shuffle */
    Value *data = lw_expr(L, s, st.data);
    int64_t batch = 0, steps = 0, epochs = 0;
    bool shuffle = true;
    bool ok = !val_is_error(data);
    ok = const_setting_int(L, s, st.batch, &batch, "batch") && ok;
    if (st.steps) ok = const_setting_int(L, s, st.steps, &steps, "steps") && ok;
    if (st.epochs) ok = const_setting_int(L, s, st.epochs, &epochs, "epochs") && ok;
    if (st.shuffle) {
        Value *sv = lw_expr(L, s, st.shuffle);
        ok = lw_const_bool(L, sv, &shuffle, st.shuffle->loc, "shuffle") && ok;
    }
    if (st.init) {
        lw_error(L, st.init->loc, "train setting 'init' (loading pretrained weights) is not supported yet");
        ok = false;
    }
    Value *opt = lw_expr(L, s, st.optimizer);
    if (!val_is_error(opt) && opt->kind != V_OPTIM) {
        lw_error(L, st.optimizer->loc, "optimizer must be an optimizer such as optim.sgd(lr = 0.1), got %s",
                 lw_value_desc(L, opt));
        ok = false;
    }
    ok = ok && !val_is_error(opt);
    Value *extra[1] = {data};
    if (ok) lw_flush(L, extra, 1, d->loc);
    data = extra[0];
    int nf = 0;
    int64_t rows = -1;
    if (ok) {
        if (data->kind != V_TREE || data->u.tree.n == 0) {
            lw_error(L, st.data->loc, "data must be a record of tensors such as mnist.train, got %s", lw_value_desc(L, data));
            ok = false;
        } else {
            nf = data->u.tree.n;
            for (int i = 0; i < nf && ok; i++) {
                Value *f = data->u.tree.items[i];
                DType dt;
                Shape sh;
                if (!f || f->kind != V_SLOT || !lw_type(L, f, &dt, &sh) || sh.rank < 1) {
                    lw_error(L, st.data->loc,
                             "data: field '%s' must be a tensor with a leading row axis, got %s (use a record of "
                             "tensors such as mnist.train)",
                             data->u.tree.names[i], lw_value_desc(L, f));
                    ok = false;
                } else if (rows >= 0 && sh.dims[0] != rows) {
                    lw_error(L, st.data->loc, "data: fields have different numbers of rows (%lld and %lld)",
                             (long long)rows, (long long)sh.dims[0]);
                    ok = false;
                } else {
                    rows = sh.dims[0];
                }
            }
        }
    }
    if (ok && (batch < 1 || batch > rows)) {
        lw_error(L, st.batch->loc, "batch must be between 1 and the %lld rows of the data, got %lld", (long long)rows,
                 (long long)batch);
        ok = false;
    }
    if (ok && st.steps && steps < 0) {
        lw_error(L, st.steps->loc, "steps must not be negative, got %lld", (long long)steps);
        ok = false;
    }
    if (ok && st.epochs) {
        if (epochs < 0) {
            lw_error(L, st.epochs->loc, "epochs must not be negative, got %lld", (long long)epochs);
            ok = false;
        } else if (!ck_mul(epochs, rows / batch, &steps)) { /* a last partial batch is skipped */
            lw_error(L, st.epochs->loc,
                     "epochs = %lld of %lld steps each is more than 2^63 - 1 steps",
                     (long long)epochs, (long long)(rows / batch));
            ok = false;
        }
    }
    lw_gc_pop(L);
    if (!ok || L->d->nerrors > errs) goto done;
    /* the step and the every blocks run in a loop (lower_defs.h) */
    lw_region_begin(L, &reg, true);
    in_region = true;

    TrainSpec *ts = arena_alloc(L->a, sizeof *ts);
    if (!ts) goto done;
    ts->name = d->name;
    ts->nfields = nf;
    ts->field_names = (const char **)data->u.tree.names;
    ts->data_slots = arena_alloc(L->a, sizeof(int) * (size_t)nf);
    ts->batch_slots = arena_alloc(L->a, sizeof(int) * (size_t)nf);
    if (!ts->data_slots || !ts->batch_slots) goto done;
    Value **bitems = arena_alloc(L->a, sizeof(Value *) * (size_t)nf);
    if (!bitems) goto done;
    for (int i = 0; i < nf; i++) {
        int ds = data->u.tree.items[i]->u.slot;
        Shape bs = L->m->slots[ds].shape;
        bs.dims[0] = batch;
        ts->data_slots[i] = ds;
        ts->batch_slots[i] = lw_new_slot(L, lw_printf(L, "%s.batch.%s", d->name, data->u.tree.names[i]), SLOT_VAR,
                                         L->m->slots[ds].dtype, bs);
        bitems[i] = val_slot(L->a, ts->batch_slots[i]);
    }
    ts->rows = rows;
    ts->batch = batch;
    ts->steps = steps;
    ts->shuffle = shuffle;
    ts->t_slot = lw_new_slot(L, lw_printf(L, "%s.t", d->name), SLOT_STEP, DT_I64, rt_shape_scalar());

    TrainCtx tc;
    memset(&tc, 0, sizeof tc);
    tc.name = d->name;
    tc.loss_expr = st.loss;
    tc.mod = mod;
    tc.batch = val_tree(L->a, nf, (const char **)data->u.tree.names, bitems);
    tc.data = data;
    tc.t = val_slot(L->a, ts->t_slot);
    L->train = &tc;
    L->host = false;
    L->host_scope = NULL;
    L->hb = NULL;
    lw_gc_push(L, lw_printf(L, "%s_step", d->name));

    /* (2) trace the loss, discovering the parameters */
    L->track = true;
    L->ntouched = 0;
    Value *lv = trace_loss(L, &tc, NULL, tc.batch);
    L->track = false;
    Node *ln = NULL;
    if (!val_is_error(lv)) {
        DType dt;
        Shape sh;
        char buf[160];
        if (!val_is_tensorish(lv) || !lw_type(L, lv, &dt, &sh)) {
            lw_error(L, st.loss_loc, "the loss must be a scalar tensor, got %s", lw_value_desc(L, lv));
        } else if (sh.rank != 0 || (dt != DT_F32 && dt != DT_F64)) {
            lw_error(L, st.loss_loc, "the loss must be a floating-point scalar, got %s",
                     fe_type_str(dt, &sh, buf, sizeof buf));
        } else {
            ln = lw_node(L, lv, DT_COUNT, st.loss->loc);
        }
    }
    int np = 0;
    int *pslots = arena_alloc(L->a, sizeof(int) * (size_t)(L->m->nparams ? L->m->nparams : 1));
    for (int i = 0; pslots && i < L->m->nparams; i++) {
        int ps = L->m->param_slots[i];
        for (int j = 0; j < L->ntouched; j++)
            if (L->touched[j] == ps) {
                pslots[np++] = ps;
                break;
            }
    }
    if (ln && st.trainable) {
        lw_gc_pop(L);
        L->host = true;
        L->host_scope = s;
        L->hb = &L->m->main;
        lw_gc_push(L, NULL);
        Value *tv = filter_trainable(L, s, st.trainable, pslots, &np);
        lw_gc_pop(L);
        L->host = false;
        L->host_scope = NULL;
        L->hb = NULL;
        lw_gc_push(L, lw_printf(L, "%s_step", d->name));
        if (val_is_error(tv)) ln = NULL;
        else {
            /* the loss must be traced again in the new step graph */
            lv = trace_loss(L, &tc, NULL, tc.batch);
            ln = val_is_error(lv) ? NULL : lw_node(L, lv, DT_COUNT, st.loss->loc);
        }
    }
    if (ln && np == 0) {
        lw_error(L, d->name_loc, "the loss of train %s uses no parameters: there is nothing to train", d->name);
        ln = NULL;
    }
    if (!ln) {
        lw_gc_pop(L);
        goto done;
    }
    tc.loss = lw_tensor(L, ln);
    tc.params = lw_params_tree(L, pslots, np);

    /* (3) optimizer: bind arguments, states, step */
    const Decl *od = opt->u.optim.decl;
    FeMod *om = opt->u.optim.mod;
    Scope *os = lw_scope_new(L, NULL, om);
    if (!os) {
        lw_gc_pop(L);
        goto done;
    }
    lw_scope_set(L, os, "params", tc.params, od->loc);
    lw_scope_set(L, os, "data", tc.data, od->loc);
    lw_scope_set(L, os, "batch", tc.batch, od->loc);
    lw_scope_set(L, os, "t", tc.t, od->loc);
    for (int i = 0; i < opt->u.optim.n; i++) {
        Value *v = opt->u.optim.vals[i];
        if (!v) {
            /* defaults: evaluated as init-time constants */
            lw_gc_push(L, NULL);
            v = lw_expr(L, os, od->u.opt.params[i].deflt);
            lw_gc_pop(L);
            if (v && v->kind == V_TENSOR) v = lw_error(L, od->u.opt.params[i].deflt->loc, "a default must be a constant");
        }
        lw_scope_set(L, os, opt->u.optim.names[i], v, od->u.opt.params[i].loc);
    }
    int nstates = od->u.opt.nstates;
    Value **state_homes = arena_alloc(L->a, sizeof(Value *) * (size_t)(nstates ? nstates : 1));
    if (!state_homes) {
        lw_gc_pop(L);
        goto done;
    }
    for (int i = 0; i < nstates; i++) {
        const Setting *sd = &od->u.opt.states[i];
        lw_gc_push(L, lw_printf(L, "init_%s.%s", d->name, sd->name));
        Value *iv = lw_expr(L, os, sd->value);
        state_homes[i] = state_slots(L, iv, NULL, sd->name, d->name, sd->loc);
        lw_gc_emit(L, &L->m->init, sd->loc);
        lw_gc_pop(L);
    }
    for (int i = 0; i < nstates; i++) lw_scope_set(L, os, od->u.opt.states[i].name, state_homes[i], od->u.opt.states[i].loc);
    lw_scope_set(L, os, "loss", NULL, od->loc);
    {
        Value *lossv = arena_alloc(L->a, sizeof *lossv);
        if (lossv) lossv->kind = V_LOSS;
        lw_scope_set(L, os, "loss", lossv, od->loc);
    }
    tc.in_step = true;
    tc.fresh_k = 0;
    Activation sact;
    lw_act_top(L, &sact);
    int before = L->d->nerrors;
    lw_block(L, os, &od->u.opt.step);
    lw_act_pop(L);
    tc.in_step = false;
    if (L->d->nerrors == before) {
        Binding *pb = lw_scope_find(os, "params");
        write_back(L, pb && pb->v ? pb->v : lw_err(L), tc.params, "params", od->u.opt.step.close);
        for (int i = 0; i < nstates; i++) {
            Binding *b = lw_scope_find(os, od->u.opt.states[i].name);
            if (!val_is_error(state_homes[i]))
                write_back(L, b && b->v ? b->v : lw_err(L), state_homes[i],
                           lw_printf(L, "state %s", od->u.opt.states[i].name), od->u.opt.step.close);
        }
    }
    ts->loss_slot = lw_new_slot(L, lw_printf(L, "%s.loss", d->name), SLOT_VAR, ln->dtype, rt_shape_scalar());
    lw_gc_output(L, ln, ts->loss_slot);
    ts->step.graph = L->gc->g;
    ts->step.in_slots = L->gc->in_slots;
    ts->step.out_slots = L->gc->out_slots;
    lw_defs_commit(L);
    lw_gc_pop(L);
    lw_region_heads_written(L);
    L->train = saved_train;

    /* (4) every blocks */
    int ne = d->u.train.neverys;
    ts->evals = arena_alloc(L->a, sizeof(TrainEvery) * (size_t)(ne ? ne : 1));
    if (!ts->evals) goto done;
    for (int i = 0; i < ne; i++) {
        const EveryBlock *eb = &d->u.train.everys[i];
        int64_t k = 0;
        Value *kv = lw_expr(L, s, eb->every);
        if (!lw_const_int(L, kv, &k, eb->every->loc, "an every period")) continue;
        if (k < 1) {
            lw_error(L, eb->every->loc, "an every period must be at least 1, got %lld", (long long)k);
            continue;
        }
        TrainEvery *te = &ts->evals[ts->nevals++];
        te->every = k;
        Scope *es = lw_scope_new(L, NULL, mod);
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
    {
        HostStmt *hs = ir_host_append(L->m, &L->m->main, HS_TRAIN, d->loc);
        if (hs) hs->u.train = ts;
    }

done:
    if (in_region) lw_region_end(L);
    L->train = saved_train;
    L->host = saved_host;
    L->host_scope = saved_scope;
    L->hb = saved_hb;
    lw_act_pop(L);
}
