/* Statements: bindings, control flow in graphs and on the host, log/print/save.
 *
 * In a graph context (a function body, an optimizer step) statements only
 * build nodes: `if` on a compile-time value lowers the taken branch, `if` on
 * a tensor lowers both and merges every assigned variable with where(), and
 * `for`/`repeat` unroll (within a budget). In a host context (`main`, an
 * `every` block) `for`, `while`, `if` on a run-time value, `log`, `print`
 * and `save` become host statements: the pending graph is flushed first, and
 * variables a loop assigns get a fixed home slot so each iteration reads what
 * the previous one wrote (lower.c). */
#include <string.h>

#include "lower_internal.h"

/* ---- assigned names ------------------------------------------------------------------ */

static void add_name(Lower *L, const char *nm, const char ***names, int *n, int *cap) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*names)[i], nm) == 0) return;
    if (!arena_grow(L->a, names, cap, (size_t)*n + 1, 16)) {
        L->oom = true;
        return;
    }
    (*names)[(*n)++] = nm;
}

void lw_assigned_names(Lower *L, const Block *b, const char ***names, int *n, int *cap) {
    for (int i = 0; i < b->n; i++) {
        const Stmt *st = b->items[i];
        switch (st->kind) {
        case ST_PARAM:
            add_name(L, st->u.param.name, names, n, cap);
            break;
        case ST_LET:
            add_name(L, st->u.let.name, names, n, cap);
            break;
        case ST_ASSIGN:
            for (int k = 0; k < st->u.assign.ntargets; k++) {
                const char *r = ast_target_root(st->u.assign.targets[k]);
                if (r) add_name(L, r, names, n, cap);
            }
            break;
        case ST_IF:
            lw_assigned_names(L, &st->u.ifs.then_b, names, n, cap);
            if (st->u.ifs.has_else) lw_assigned_names(L, &st->u.ifs.else_b, names, n, cap);
            break;
        case ST_FOR:
            add_name(L, st->u.loop.var, names, n, cap);
            lw_assigned_names(L, &st->u.loop.body, names, n, cap);
            break;
        case ST_WHILE:
            lw_assigned_names(L, &st->u.whl.body, names, n, cap);
            break;
        case ST_REPEAT:
            lw_assigned_names(L, &st->u.rep.body, names, n, cap);
            break;
        case ST_EVERY:
            lw_assigned_names(L, &st->u.every.body, names, n, cap);
            break;
        case ST_FN:
            if (st->u.fn && st->u.fn->name) add_name(L, st->u.fn->name, names, n, cap);
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
}

/* ---- assignment ---------------------------------------------------------------------- */

static Value *tree_with(Lower *L, Value *tree, const char *field, Value *v) {
    int n = tree->u.tree.n;
    int at = -1;
    for (int i = 0; i < n; i++)
        if (strcmp(tree->u.tree.names[i], field) == 0) at = i;
    int nn = at < 0 ? n + 1 : n;
    Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)nn);
    const char **names = arena_alloc(L->a, sizeof(char *) * (size_t)nn);
    if (!items || !names) return lw_err(L);
    for (int i = 0; i < n; i++) {
        items[i] = tree->u.tree.items[i];
        names[i] = tree->u.tree.names[i];
    }
    if (at < 0) {
        items[n] = v;
        names[n] = field;
    } else {
        items[at] = v;
    }
    return val_tree(L->a, nn, names, items);
}

static void assign_target(Lower *L, Scope *s, const Expr *t, Value *v) {
    switch (t->kind) {
    case EX_NAME:
        lw_scope_set(L, s, t->u.name, v, t->loc);
        return;
    case EX_FIELD: {
        Value *base = lw_expr(L, s, t->u.field.base);
        if (val_is_error(base)) return;
        if (base->kind != V_TREE) {
            lw_error(L, t->u.field.name_loc, "cannot set field '%s' of %s", t->u.field.name,
                     lw_value_desc(L, base));
            return;
        }
        assign_target(L, s, t->u.field.base, tree_with(L, base, t->u.field.name, v));
        return;
    }
    case EX_INDEX: /* x[i] = v is x = (x with those elements replaced) */
        assign_target(L, s, t->u.index.base, lw_index_update(L, s, t, AS_SET, v, t->loc));
        return;
    case EX_INT:
    case EX_FLOAT:
    case EX_STRING:
    case EX_BOOL:
    case EX_NONE:
    case EX_UNARY:
    case EX_BINARY:
    case EX_IF:
    case EX_CALL:
    case EX_SLICE:
    case EX_LIST:
    case EX_LAMBDA:
        lw_error(L, t->loc, "cannot assign to this expression");
        return;
    }
}

static void lw_assign(Lower *L, Scope *s, const Stmt *st) {
    Value *v = lw_expr(L, s, st->u.assign.value);
    int nt = st->u.assign.ntargets;
    if (st->u.assign.op != AS_SET) {
        const Expr *t = st->u.assign.targets[0];
        if (nt != 1) {
            lw_error(L, st->loc, "an augmented assignment takes one target");
            return;
        }
        if (t->kind == EX_INDEX) { /* x[i] += v: one update, x[idx] += v a scatter */
            assign_target(L, s, t->u.index.base,
                          lw_index_update(L, s, t, st->u.assign.op, v, st->loc));
            return;
        }
        Value *cur = lw_expr(L, s, t);
        OpKindAst op = st->u.assign.op == AS_ADD   ? OPK_ADD
                       : st->u.assign.op == AS_SUB ? OPK_SUB
                       : st->u.assign.op == AS_MUL ? OPK_MUL
                                                   : OPK_DIV;
        v = lw_binop(L, op, cur, v, st->loc);
    }
    if (v && v->kind == V_LOSS) v = lw_loss_value(L, st->loc);
    if (nt == 1) {
        assign_target(L, s, st->u.assign.targets[0], v ? v : lw_err(L));
        return;
    }
    if (val_is_error(v)) {
        for (int i = 0; i < nt; i++)
            assign_target(L, s, st->u.assign.targets[i], lw_err(L));
        return;
    }
    if (v->kind != V_LIST || v->u.tree.n != nt) {
        lw_error(L, st->loc, "cannot unpack %s into %d names", lw_value_desc(L, v), nt);
        for (int i = 0; i < nt; i++)
            assign_target(L, s, st->u.assign.targets[i], lw_err(L));
        return;
    }
    for (int i = 0; i < nt; i++)
        assign_target(L, s, st->u.assign.targets[i], v->u.tree.items[i]);
}

/* ---- homes --------------------------------------------------------------------------- */

static bool refers_to(const Value *v, int slot) {
    if (!v) return false;
    if (v->kind == V_SLOT) return v->u.slot == slot;
    if (v->kind == V_TREE || v->kind == V_LIST) {
        for (int i = 0; i < v->u.tree.n; i++)
            if (refers_to(v->u.tree.items[i], slot)) return true;
    }
    return false;
}

/* True when no binding but `name` (and no other home) holds slot. */
static bool exclusive(Lower *L, Scope *s, const char *name, int slot) {
    for (int i = 0; s && i < s->n; i++)
        if (strcmp(s->b[i].name, name) != 0 && refers_to(s->b[i].v, slot)) return false;
    for (HomeFrame *f = L->homes; f; f = f->prev)
        for (int i = 0; i < f->n; i++)
            if (strcmp(f->names[i], name) != 0 && refers_to(f->homes[i], slot)) return false;
    return true;
}

static Value *make_home(Lower *L, Scope *s, Value *v, const char *name, const char *top) {
    if (!v || val_is_error(v)) return NULL;
    DType dt;
    Shape sh;
    switch (v->kind) {
    case V_SLOT:
        if (lw_is_owned(L, v->u.slot) && exclusive(L, s, top, v->u.slot)) return v;
        /* fall through */
    case V_TENSOR:
    case V_INT:
    case V_FLOAT:
    case V_BOOL:
        if (!lw_type(L, v, &dt, &sh)) return NULL;
        return val_slot(L->a, lw_var_slot(L, name, dt, sh));
    case V_TREE:
    case V_LIST: {
        Value **items =
            arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return NULL;
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? lw_printf(L, "%s.%s", name, v->u.tree.names[i])
                                               : lw_printf(L, "%s.%d", name, i);
            items[i] = make_home(L, s, v->u.tree.items[i], nm, top);
            if (!items[i]) items[i] = v->u.tree.items[i]; /* not a tensor: carried as is */
        }
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return NULL;
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    case V_ERROR:
    case V_NONE:
    case V_STR:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        break;
    }
    return NULL;
}

/* Gives every name assigned in the blocks that exists now a home slot. */
static void push_homes(Lower *L, Scope *s, const Block *b1, const Block *b2) {
    const char **names = NULL;
    int n = 0, cap = 0;
    lw_assigned_names(L, b1, &names, &n, &cap);
    if (b2) lw_assigned_names(L, b2, &names, &n, &cap);
    lw_homes_push(L);
    for (int i = 0; i < n; i++) {
        Binding *b = lw_scope_find(s, names[i]);
        if (!b || !b->v) continue;
        Value *h = make_home(L, s, b->v, names[i], names[i]);
        if (h) lw_home_set(L, names[i], h);
    }
}

static void home_slots(Lower *L, const Value *v, int **slots, int *n, int *cap) {
    if (!v) return;
    if (v->kind == V_TREE || v->kind == V_LIST) {
        for (int i = 0; i < v->u.tree.n; i++)
            home_slots(L, v->u.tree.items[i], slots, n, cap);
        return;
    }
    if (v->kind != V_SLOT) return;
    if (!arena_grow(L->a, slots, cap, (size_t)*n + 1, 16)) {
        L->oom = true;
        return;
    }
    (*slots)[(*n)++] = v->u.slot;
}

/* A host loop begins (after its entry flush): each home of the loop holds,
 * at the head, what it held before the loop or what the last iteration left
 * (lower_defs.h). */
static void loop_begin(Lower *L, Region *r) {
    lw_region_begin(L, r, true);
    int *slots = NULL, n = 0, cap = 0;
    for (int i = 0; L->homes && i < L->homes->n; i++)
        home_slots(L, L->homes->homes[i], &slots, &n, &cap);
    lw_region_heads(L, slots, n);
}

/* ---- host control flow --------------------------------------------------------------- */

static bool host_bound(Lower *L, Value *v, int64_t *k, int *slot, SrcLoc loc) {
    *slot = -1;
    if (val_is_error(v)) return false;
    if (v->kind == V_INT || v->kind == V_FLOAT) return lw_const_int(L, v, k, loc, "a loop bound");
    DType dt;
    Shape sh;
    if (lw_type(L, v, &dt, &sh) && (dt == DT_I32 || dt == DT_I64) && sh.rank == 0) return true;
    lw_error(L, loc, "a loop bound must be an integer, got %s", lw_value_desc(L, v));
    return false;
}

static void host_for(Lower *L, Scope *s, const Stmt *st) {
    Value *lo = lw_expr(L, s, st->u.loop.lo), *hi = lw_expr(L, s, st->u.loop.hi);
    int64_t klo = 0, khi = 0;
    int slo, shi;
    bool ok = host_bound(L, lo, &klo, &slo, st->u.loop.lo->loc);
    ok = host_bound(L, hi, &khi, &shi, st->u.loop.hi->loc) && ok;
    if (!ok) return;
    push_homes(L, s, &st->u.loop.body, NULL);
    Value *bounds[2] = {lo, hi};
    lw_flush(L, bounds, 2, st->loc);
    int var = lw_new_slot(L, st->u.loop.var, SLOT_STEP, DT_I64, rt_shape_scalar());
    HostStmt *hs = ir_host_append(L->m, L->hb, HS_FOR, st->loc);
    if (!hs || var < 0) {
        lw_homes_pop(L);
        return;
    }
    hs->u.loop.var_slot = var;
    hs->u.loop.lo = klo;
    hs->u.loop.hi = khi;
    hs->u.loop.lo_slot =
        val_is_tensorish(bounds[0]) && bounds[0]->kind == V_SLOT ? bounds[0]->u.slot : -1;
    hs->u.loop.hi_slot =
        val_is_tensorish(bounds[1]) && bounds[1]->kind == V_SLOT ? bounds[1]->u.slot : -1;
    Region reg;
    loop_begin(L, &reg);
    Value *vv = val_slot(L->a, var);
    lw_scope_set(L, s, st->u.loop.var, vv, st->u.loop.var_loc);

    HostBlock *saved_hb = L->hb;
    int saved_kind = L->loop_kind;
    Value *saved_var = L->loop_var;
    L->hb = &hs->u.loop.body;
    L->host_loops++;
    L->loop_kind = 1;
    L->loop_var = vv;
    int saved_rt = L->rt_cond;
    L->rt_cond = 0;
    lw_block(L, s, &st->u.loop.body);
    L->rt_cond = saved_rt;
    lw_flush(L, NULL, 0, st->u.loop.body.close);
    lw_region_end(L);
    L->host_loops--;
    L->loop_kind = saved_kind;
    L->loop_var = saved_var;
    L->hb = saved_hb;
    lw_homes_pop(L);
}

/* A bool scalar node for a host condition. */
static Node *cond_node(Lower *L, Value *c, SrcLoc loc) {
    Node *n = lw_need_node(L, c, DT_BOOL, loc, "condition");
    if (!n) return NULL;
    char buf[160];
    if (n->shape.rank != 0) {
        diag_error(L->d, loc, "a condition must be a single bool, got %s",
                   fe_type_str(n->dtype, &n->shape, buf, sizeof buf));
        return NULL;
    }
    return ir_cast(L->gc->g, n, DT_BOOL, loc);
}

static void host_while(Lower *L, Scope *s, const Stmt *st) {
    push_homes(L, s, &st->u.whl.body, NULL);
    lw_flush(L, NULL, 0, st->loc);
    HostStmt *hs = ir_host_append(L->m, L->hb, HS_WHILE, st->loc);
    if (!hs) {
        lw_homes_pop(L);
        return;
    }
    Region reg;
    loop_begin(L, &reg);
    /* the condition graph: evaluated before every iteration */
    Value *c = lw_expr(L, s, st->u.whl.cond);
    Node *cn = val_is_error(c) ? NULL : cond_node(L, c, st->u.whl.cond->loc);
    int cs = lw_new_slot(L, "while_cond", SLOT_VAR, DT_BOOL, rt_shape_scalar());
    hs->u.whl.cond_slot = cs;
    if (cn) lw_gc_output(L, cn, cs);
    GraphCtx *gc = L->gc;
    hs->u.whl.cond.graph = gc->g;
    hs->u.whl.cond.in_slots = gc->in_slots;
    hs->u.whl.cond.out_slots = gc->out_slots;
    lw_gc_emit(L, NULL, st->loc); /* starts a fresh graph without an HS_RUN */

    HostBlock *saved_hb = L->hb;
    int saved_kind = L->loop_kind;
    Value *saved_var = L->loop_var;
    L->hb = &hs->u.whl.body;
    L->host_loops++;
    L->loop_kind = 1;
    L->loop_var = NULL; /* `every` counts iterations of a for loop only */
    lw_block(L, s, &st->u.whl.body);
    lw_flush(L, NULL, 0, st->u.whl.body.close);
    lw_region_end(L);
    L->host_loops--;
    L->loop_kind = saved_kind;
    L->loop_var = saved_var;
    L->hb = saved_hb;
    lw_homes_pop(L);
}

/* Names first bound inside a branch get a home too, so that both branches
 * write the same slot (a constant becomes a typed scalar slot). */
static void home_new_names(Lower *L, Scope *s, const char **names, const bool *existed, int n) {
    for (int i = 0; i < n; i++) {
        if (existed[i] || lw_home_of(L, names[i])) continue;
        Binding *b = lw_scope_find(s, names[i]);
        if (!b || !b->v) continue;
        Value *h = make_home(L, s, b->v, names[i], names[i]);
        if (h) lw_home_set(L, names[i], h);
    }
}

static void host_if(Lower *L, Scope *s, const Stmt *st, Value *c, SrcLoc cloc) {
    Node *cn = cond_node(L, c, cloc);
    if (!cn) return;
    const Block *eb = st->u.ifs.has_else ? &st->u.ifs.else_b : NULL;
    push_homes(L, s, &st->u.ifs.then_b, eb);
    Value *cv[1] = {lw_tensor(L, cn)};
    lw_flush(L, cv, 1, st->loc);
    if (val_is_error(cv[0]) || cv[0]->kind != V_SLOT) {
        lw_homes_pop(L);
        return;
    }
    HostStmt *hs = ir_host_append(L->m, L->hb, HS_IF, st->loc);
    if (!hs) {
        lw_homes_pop(L);
        return;
    }
    hs->u.cond.cond_slot = cv[0]->u.slot;
    HostBlock *saved_hb = L->hb;
    const char **names = NULL;
    int n = 0, cap = 0;
    lw_assigned_names(L, &st->u.ifs.then_b, &names, &n, &cap);
    if (eb) lw_assigned_names(L, eb, &names, &n, &cap);
    bool *existed = arena_alloc(L->a, sizeof(bool) * (size_t)(n ? n : 1));
    if (!existed) {
        lw_homes_pop(L);
        return;
    }
    for (int i = 0; i < n; i++) {
        Binding *b = lw_scope_find(s, names[i]);
        existed[i] = b && b->v;
    }
    L->hb = &hs->u.cond.then_b;
    L->rt_cond++;
    Region reg;
    lw_region_begin(L, &reg, false);
    lw_block(L, s, &st->u.ifs.then_b);
    home_new_names(L, s, names, existed, n);
    lw_flush(L, NULL, 0, st->u.ifs.then_b.close);
    if (eb) {
        lw_region_else(L);
        L->hb = &hs->u.cond.else_b;
        lw_block(L, s, eb);
        home_new_names(L, s, names, existed, n);
        lw_flush(L, NULL, 0, eb->close);
    }
    lw_region_end(L);
    L->rt_cond--;
    L->hb = saved_hb;
    lw_homes_pop(L);
}

/* ---- graph control flow -------------------------------------------------------------- */

static Flow graph_if(Lower *L, Scope *s, const Stmt *st, Value *c, SrcLoc cloc) {
    const char **names = NULL;
    int n = 0, cap = 0;
    lw_assigned_names(L, &st->u.ifs.then_b, &names, &n, &cap);
    if (st->u.ifs.has_else) lw_assigned_names(L, &st->u.ifs.else_b, &names, &n, &cap);
    Value **pre = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    Value **tv = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    if (!pre || !tv) return FLOW_NEXT;
    for (int i = 0; i < n; i++) {
        Binding *b = lw_scope_find(s, names[i]);
        pre[i] = b ? b->v : NULL;
    }
    Value *saved_ret = L->ret;
    L->ret = NULL;
    Flow f1 = lw_block(L, s, &st->u.ifs.then_b);
    Value *r1 = L->ret;
    for (int i = 0; i < n; i++) {
        Binding *b = lw_scope_find(s, names[i]);
        tv[i] = b ? b->v : NULL;
        lw_scope_set(L, s, names[i], pre[i], st->loc);
    }
    L->ret = NULL;
    Flow f2 = st->u.ifs.has_else ? lw_block(L, s, &st->u.ifs.else_b) : FLOW_NEXT;
    Value *r2 = L->ret;
    L->ret = saved_ret;
    if (f1 == FLOW_BREAK || f2 == FLOW_BREAK) {
        lw_error(L, st->loc,
                 "'break' under a condition known only at run time is only supported in main");
        return FLOW_NEXT;
    }
    for (int i = 0; i < n; i++) {
        Binding *b = lw_scope_find(s, names[i]);
        Value *ev = b ? b->v : NULL;
        Value *t = tv[i];
        if (!t || !ev) {
            /* bound in one branch only: the other side is the global of that
             * name (a config value), if any; else undefined after the if */
            lw_scope_set(L, s, names[i], NULL, st->loc);
            Value *g = lw_lookup(L, s, names[i], st->loc);
            if (g && (val_is_const(g) || val_is_tensorish(g))) {
                if (!t) t = g;
                if (!ev) ev = g;
            }
        }
        if (t && ev) lw_scope_set(L, s, names[i], lw_where(L, c, t, ev, st->loc), st->loc);
    }
    if (f1 == FLOW_RETURN && f2 == FLOW_RETURN) {
        L->ret = lw_where(L, c, r1 ? r1 : lw_err(L), r2 ? r2 : lw_err(L), st->loc);
        return FLOW_RETURN;
    }
    if (f1 == FLOW_RETURN || f2 == FLOW_RETURN) {
        lw_error(
            L, st->loc,
            "a 'return' inside an 'if' on a value known only at run time must be in both branches");
        return FLOW_NEXT;
    }
    (void)cloc;
    return FLOW_NEXT;
}

static Flow unrolled_loop(Lower *L, Scope *s, const Stmt *st, const char *var, SrcLoc var_loc,
                          int64_t lo, int64_t hi, const Block *body) {
    if (hi <= lo) return FLOW_NEXT;
    int64_t n;
    if (!ck_sub(hi, lo, &n) || n > L->unroll_left) {
        char count[32] = "more than 2^63 - 1";
        if (ck_sub(hi, lo, &n)) snprintf(count, sizeof count, "%lld", (long long)n);
        lw_error(
            L, st->loc,
            "this loop unrolls %s iterations, more than the %lld left of the compiler's budget "
            "of %d (loops inside functions are unrolled)",
            count, (long long)L->unroll_left, FE_UNROLL_BUDGET);
        L->unroll_left = 0;
        return FLOW_NEXT;
    }
    L->unroll_left -= n;
    int saved_kind = L->loop_kind, saved_rt = L->rt_cond;
    L->loop_kind = 2;
    L->rt_cond = 0;
    L->unrolled_loops++;
    Flow r = FLOW_NEXT;
    for (int64_t i = lo; i < hi; i++) {
        if (var) lw_scope_set(L, s, var, val_int(L->a, i), var_loc);
        int before = L->d->nerrors;
        Flow f = lw_block(L, s, body);
        if (f == FLOW_BREAK) break;
        if (f == FLOW_RETURN) {
            r = FLOW_RETURN;
            break;
        }
        if (L->d->nerrors > before || L->oom)
            break; /* one report per loop, not one per iteration */
    }
    L->unrolled_loops--;
    L->loop_kind = saved_kind;
    L->rt_cond = saved_rt;
    return r;
}

/* A `while` inside a function or step: graphs hold no loops yet, so it is
 * unrolled while its condition is known at compile time (a counter), one
 * iteration at a time out of the same budget as unrolled `for` loops. A
 * condition on a run-time value is an error at the loop. */
static Flow unrolled_while(Lower *L, Scope *s, const Stmt *st) {
    int saved_kind = L->loop_kind, saved_rt = L->rt_cond;
    L->loop_kind = 2;
    L->rt_cond = 0;
    L->unrolled_loops++;
    Flow r = FLOW_NEXT;
    for (;;) {
        Value *c = lw_expr(L, s, st->u.whl.cond);
        if (val_is_error(c)) break;
        if (c->kind != V_BOOL && c->kind != V_INT) {
            lw_error(L, st->u.whl.cond->loc,
                     "inside a function or an optimizer step a 'while' condition must be known at "
                     "compile time, and this one is a value known only at run time: graphs hold "
                     "no loops yet, so the loop is unrolled (a loop on a run-time value runs in "
                     "main)");
            break;
        }
        lw_cfg_bake(L, c, st->u.whl.cond->loc);
        if (val_num(c) == 0) break;
        if (L->unroll_left < 1) {
            lw_error(L, st->loc,
                     "this loop unrolls more iterations than the compiler's budget of %d (loops "
                     "inside functions are unrolled)",
                     FE_UNROLL_BUDGET);
            break;
        }
        L->unroll_left--;
        int before = L->d->nerrors;
        Flow f = lw_block(L, s, &st->u.whl.body);
        if (f == FLOW_BREAK) break;
        if (f == FLOW_RETURN) {
            r = FLOW_RETURN;
            break;
        }
        if (L->d->nerrors > before || L->oom) break;
    }
    L->unrolled_loops--;
    L->loop_kind = saved_kind;
    L->rt_cond = saved_rt;
    return r;
}

/* ---- log, print, save ---------------------------------------------------------------- */

static Node *scalar_node(Lower *L, Value *v, SrcLoc loc, const char *what) {
    if (val_is_error(v)) return NULL;
    if (v->kind == V_LOSS) v = lw_loss_value(L, loc);
    if (val_is_error(v)) return NULL;
    if (v->kind == V_FLOAT)
        return v->cfg ? lw_cfg_node(L, v, DT_F64, loc) : ir_scalar(L->gc->g, DT_F64, v->u.f, loc);
    Node *n = lw_need_node(L, v, DT_COUNT, loc, what);
    if (!n) return NULL;
    char buf[160];
    if (rt_shape_numel(&n->shape) != 1) {
        diag_error(L->d, loc, "%s must be a scalar, got %s", what,
                   fe_type_str(n->dtype, &n->shape, buf, sizeof buf));
        return NULL;
    }
    if (n->shape.rank != 0) n = ir_reshape(L->gc->g, n, rt_shape_scalar(), loc);
    return n;
}

void lw_log(Lower *L, Scope *s, const Arg *items, int n, SrcLoc loc) {
    Value **vals = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    const char **names = arena_alloc(L->a, sizeof(char *) * (size_t)(n ? n : 1));
    int *slots = arena_alloc(L->a, sizeof(int) * (size_t)(n ? n : 1));
    if (!vals || !names || !slots) return;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        names[i] = items[i].name ? items[i].name : "value";
        Value *v = lw_expr(L, s, items[i].value);
        Node *nd = scalar_node(L, v, items[i].value->loc, lw_printf(L, "log: '%s'", names[i]));
        vals[i] = nd ? lw_tensor(L, nd) : lw_err(L);
        ok = ok && nd;
    }
    if (!ok) return;
    lw_flush(L, vals, n, loc);
    for (int i = 0; i < n; i++) {
        if (val_is_error(vals[i]) || vals[i]->kind != V_SLOT) return;
        slots[i] = vals[i]->u.slot;
    }
    HostStmt *hs = ir_host_append(L->m, L->hb, HS_LOG, loc);
    if (!hs) return;
    hs->u.log.names = names;
    hs->u.log.slots = slots;
    hs->u.log.n = n;
}

static void lw_print(Lower *L, Scope *s, const Stmt *st) {
    int n = st->u.print.n;
    Value **vals = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    const char **texts = arena_alloc(L->a, sizeof(char *) * (size_t)(n ? n : 1));
    int *slots = arena_alloc(L->a, sizeof(int) * (size_t)(n ? n : 1));
    if (!vals || !texts || !slots) return;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const Expr *e = st->u.print.items[i];
        Value *v = lw_expr(L, s, e);
        vals[i] = NULL;
        texts[i] = NULL;
        if (val_is_error(v)) {
            ok = false;
            continue;
        }
        if (v->kind == V_STR) {
            texts[i] = v->u.s;
            continue;
        }
        /* a config value prints from its slot, in the same format */
        if (v->kind == V_INT && !v->cfg) {
            texts[i] = lw_printf(L, "%lld", (long long)v->u.i);
            continue;
        }
        if (v->kind == V_FLOAT && !v->cfg) {
            texts[i] = lw_printf(L, "%g", v->u.f);
            continue;
        }
        if (v->kind == V_BOOL && !v->cfg) {
            texts[i] = v->u.b ? "true" : "false";
            continue;
        }
        if (v->kind == V_LOSS) v = lw_loss_value(L, e->loc);
        Node *nd = lw_need_node(L, v, v->kind == V_FLOAT ? DT_F64 : DT_COUNT, e->loc, "print");
        if (!nd) {
            ok = false;
            continue;
        }
        vals[i] = lw_tensor(L, nd);
    }
    if (!ok) return;
    /* flush only the tensor items */
    Value **tv = arena_alloc(L->a, sizeof(Value *) * (size_t)(n ? n : 1));
    int nt = 0;
    for (int i = 0; tv && i < n; i++)
        if (vals[i]) tv[nt++] = vals[i];
    lw_flush(L, tv, nt, st->loc);
    for (int i = 0, k = 0; i < n; i++) {
        if (!vals[i]) {
            slots[i] = -1;
            continue;
        }
        if (val_is_error(tv[k]) || tv[k]->kind != V_SLOT) return;
        slots[i] = tv[k++]->u.slot;
    }
    HostStmt *hs = ir_host_append(L->m, L->hb, HS_PRINT, st->loc);
    if (!hs) return;
    hs->u.print.slots = slots;
    hs->u.print.n = n;
    hs->u.print.texts = texts;
}

static void lw_save(Lower *L, Scope *s, const Stmt *st) {
    Value *v = lw_expr(L, s, st->u.save.value);
    if (val_is_error(v)) return;
    if (v->kind == V_LOSS) v = lw_loss_value(L, st->loc);
    Node *nd = lw_need_node(L, v, DT_COUNT, st->u.save.value->loc, "save");
    if (!nd) return;
    Value *tv[1] = {lw_tensor(L, nd)};
    lw_flush(L, tv, 1, st->loc);
    if (val_is_error(tv[0]) || tv[0]->kind != V_SLOT) return;
    HostStmt *hs = ir_host_append(L->m, L->hb, HS_SAVE, st->loc);
    if (!hs) return;
    hs->u.save.path = st->u.save.path;
    hs->u.save.slot = tv[0]->u.slot;
}

/* ---- statements ---------------------------------------------------------------------- */

static bool in_host(Lower *L) {
    return L->host && L->hb && L->host_scope;
}

/* a constant condition picks a branch now; else a host or graph branch */
static Flow stmt_if(Lower *L, Scope *s, const Stmt *st) {
    Value *c = lw_expr(L, s, st->u.ifs.cond);
    if (val_is_error(c)) return FLOW_NEXT;
    if (c->kind == V_LOSS) c = lw_loss_value(L, st->u.ifs.cond->loc);
    if (val_is_const(c)) {
        lw_cfg_bake(L, c, st->u.ifs.cond->loc);
        if (val_num(c) != 0) return lw_block(L, s, &st->u.ifs.then_b);
        if (st->u.ifs.has_else) return lw_block(L, s, &st->u.ifs.else_b);
        return FLOW_NEXT;
    }
    if (!val_is_tensorish(c)) {
        lw_error(L, st->u.ifs.cond->loc, "a condition must be a bool, got %s", lw_value_desc(L, c));
        return FLOW_NEXT;
    }
    if (in_host(L)) {
        host_if(L, s, st, c, st->u.ifs.cond->loc);
        return FLOW_NEXT;
    }
    Node *cn = cond_node(L, c, st->u.ifs.cond->loc);
    if (!cn) return FLOW_NEXT;
    return graph_if(L, s, st, lw_tensor(L, cn), st->u.ifs.cond->loc);
}

/* in main a host loop; elsewhere unrolled over constant bounds */
static Flow stmt_for(Lower *L, Scope *s, const Stmt *st) {
    if (in_host(L)) {
        host_for(L, s, st);
        return FLOW_NEXT;
    }
    int64_t lo, hi;
    Value *vlo = lw_expr(L, s, st->u.loop.lo), *vhi = lw_expr(L, s, st->u.loop.hi);
    if (val_is_error(vlo) || val_is_error(vhi)) return FLOW_NEXT;
    if (!lw_const_int(L, vlo, &lo, st->u.loop.lo->loc, "a loop bound inside a function") ||
        !lw_const_int(L, vhi, &hi, st->u.loop.hi->loc, "a loop bound inside a function"))
        return FLOW_NEXT;
    return unrolled_loop(L, s, st, st->u.loop.var, st->u.loop.var_loc, lo, hi, &st->u.loop.body);
}

static Flow stmt_repeat(Lower *L, Scope *s, const Stmt *st) {
    Value *cv = lw_expr(L, s, st->u.rep.count);
    int64_t k;
    if (val_is_error(cv) || !lw_const_int(L, cv, &k, st->u.rep.count->loc, "a repeat count"))
        return FLOW_NEXT;
    if (k < 0) {
        lw_error(L, st->u.rep.count->loc, "a repeat count must not be negative, got %lld",
                 (long long)k);
        return FLOW_NEXT;
    }
    return unrolled_loop(L, s, st, NULL, st->loc, 0, k, &st->u.rep.body);
}

/* leaves a host loop, or an unrolled repeat whose condition is known now */
static Flow stmt_break(Lower *L, const Stmt *st) {
    if (L->loop_kind == 1 && in_host(L)) {
        lw_flush(L, NULL, 0, st->loc);
        lw_region_break(L);
        ir_host_append(L->m, L->hb, HS_BREAK, st->loc);
        return FLOW_BREAK;
    }
    if (L->loop_kind == 2) {
        if (L->rt_cond > 0) {
            lw_error(L, st->loc,
                     "'break' under a condition known only at run time cannot leave a 'repeat' "
                     "(it is unrolled); use a 'for' loop");
            return FLOW_NEXT;
        }
        return FLOW_BREAK;
    }
    lw_error(L, st->loc, "'break' outside a loop");
    return FLOW_NEXT;
}

/* `every N` in a main loop: a host if on (i + 1) % N == 0 */
static Flow stmt_every(Lower *L, Scope *s, const Stmt *st) {
    if (!in_host(L) || !L->loop_var) {
        lw_error(
            L, st->loc,
            "'every' inside main must be in a 'for' loop (it runs after every N-th iteration)");
        return FLOW_NEXT;
    }
    Value *nv = lw_expr(L, s, st->u.every.every);
    int64_t k;
    if (val_is_error(nv) || !lw_const_int(L, nv, &k, st->u.every.every->loc, "an every period"))
        return FLOW_NEXT;
    if (k < 1) {
        lw_error(L, st->u.every.every->loc, "an every period must be at least 1, got %lld",
                 (long long)k);
        return FLOW_NEXT;
    }
    /* the test (i + 1) % k runs in the graph, where constants are doubles */
    if (k > INT64_C(1) << 53) {
        lw_error(L, st->u.every.every->loc,
                 "an every period in main must be at most 2^53, got %lld", (long long)k);
        return FLOW_NEXT;
    }
    Value *c =
        lw_binop(L, OPK_EQ,
                 lw_binop(L, OPK_MOD, lw_binop(L, OPK_ADD, L->loop_var, val_int(L->a, 1), st->loc),
                          val_int(L->a, k), st->loc),
                 val_int(L->a, 0), st->loc);
    if (val_is_error(c)) return FLOW_NEXT;
    Stmt fake = *st;
    fake.kind = ST_IF;
    fake.u.ifs.cond = st->u.every.every;
    fake.u.ifs.then_b = st->u.every.body;
    memset(&fake.u.ifs.else_b, 0, sizeof fake.u.ifs.else_b);
    fake.u.ifs.has_else = false;
    host_if(L, s, &fake, c, st->loc);
    return FLOW_NEXT;
}

/* a nested fn closes over the scope it is declared in */
static Flow stmt_fn(Lower *L, Scope *s, const Stmt *st) {
    const Decl *d = st->u.fn;
    if (!d) return FLOW_NEXT;
    Value *v = arena_alloc(L->a, sizeof *v);
    if (!v) return FLOW_NEXT;
    v->kind = V_FUNC;
    v->u.fn.kind = FN_DECL;
    v->u.fn.decl = d;
    v->u.fn.mod = s->mod;
    v->u.fn.closure = s;
    lw_scope_set(L, s, d->name, v, d->name_loc);
    return FLOW_NEXT;
}

Flow lw_stmt(Lower *L, Scope *s, const Stmt *st) {
    if (L->oom) return FLOW_NEXT;
    switch (st->kind) {
    case ST_PARAM: {
        Value *v = lw_param(L, s, st);
        lw_scope_set(L, s, st->u.param.name, v, st->u.param.name_loc);
        return FLOW_NEXT;
    }
    case ST_LET:
        lw_scope_set(L, s, st->u.let.name, lw_expr(L, s, st->u.let.value), st->u.let.name_loc);
        return FLOW_NEXT;
    case ST_ASSIGN:
        lw_assign(L, s, st);
        return FLOW_NEXT;
    case ST_IF:
        return stmt_if(L, s, st);
    case ST_FOR:
        return stmt_for(L, s, st);
    case ST_WHILE:
        if (in_host(L)) {
            host_while(L, s, st);
            return FLOW_NEXT;
        }
        return unrolled_while(L, s, st);
    case ST_REPEAT:
        return stmt_repeat(L, s, st);
    case ST_BREAK:
        return stmt_break(L, st);
    case ST_RETURN:
        L->ret = lw_expr(L, s, st->u.ret.value);
        L->ret_loc = st->u.ret.value ? st->u.ret.value->loc : st->loc;
        return FLOW_RETURN;
    case ST_LOG:
        if (!in_host(L)) {
            lw_error(L, st->loc, "'log' is only allowed in main and in every blocks");
            return FLOW_NEXT;
        }
        lw_log(L, s, st->u.log.items, st->u.log.n, st->loc);
        return FLOW_NEXT;
    case ST_PRINT:
        if (!in_host(L)) {
            lw_error(L, st->loc, "'print' is only allowed in main and in every blocks");
            return FLOW_NEXT;
        }
        lw_print(L, s, st);
        return FLOW_NEXT;
    case ST_SAVE:
        if (!in_host(L)) {
            lw_error(L, st->loc, "'save' is only allowed in main and in every blocks");
            return FLOW_NEXT;
        }
        lw_save(L, s, st);
        return FLOW_NEXT;
    case ST_EVERY:
        return stmt_every(L, s, st);
    case ST_FN:
        return stmt_fn(L, s, st);
    case ST_EXPR:
        lw_expr(L, s, st->u.expr);
        return FLOW_NEXT;
    }
    return FLOW_NEXT;
}

Flow lw_block(Lower *L, Scope *s, const Block *b) {
    for (int i = 0; i < b->n; i++) {
        if (L->oom) return FLOW_NEXT;
        Flow f = lw_stmt(L, s, b->items[i]);
        if (f != FLOW_NEXT) return f;
    }
    return FLOW_NEXT;
}

/* ---- main ---------------------------------------------------------------------------- */

void lw_main(Lower *L, const Decl *d) {
    Scope *s = lw_scope_new(L, NULL, L->main);
    if (!s) return;
    Activation act;
    lw_act_top(L, &act);
    bool saved_host = L->host;
    Scope *saved_scope = L->host_scope;
    HostBlock *saved_hb = L->hb;
    L->host = true;
    L->host_scope = s;
    L->hb = &L->m->main;
    lw_gc_push(L, NULL);
    lw_block(L, s, &d->u.main.body);
    /* statements after the last host statement only matter through their
     * effects, which are all host statements: nothing left to emit */
    lw_gc_pop(L);
    L->hb = saved_hb;
    L->host_scope = saved_scope;
    L->host = saved_host;
    lw_act_pop(L);
}
