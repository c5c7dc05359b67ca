/* Lowering core: environments, graphs under construction, slots, flushes,
 * loop homes, parameter paths and parameter slots.
 *
 * Lowering is tracing: lw_expr evaluates the AST against a Scope, and every
 * tensor operation appends a checked node to the current graph (GraphCtx).
 * When a host statement must run between graphs (a `for`, a `log`), lw_flush
 * turns every tensor of the host scope into a slot (a graph output), emits the
 * graph as HS_RUN and starts a fresh one; later uses read the slot back
 * through a cached input node. Variables assigned in a host loop get a fixed
 * "home" slot so that each iteration reads what the previous one wrote.
 * Parameters are slots named by their call path (mlp.linear0.W) and are
 * initialised by graphs in Module.init the first time a path is traced. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lower_internal.h"

/* ---- diagnostics -------------------------------------------------------------------- */

Value *lw_err(Lower *L) {
    Value *v = val_error(L->a);
    return v;
}

Value *lw_error(Lower *L, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = arena_vprintf(L->a, fmt, ap);
    va_end(ap);
    diag_error(L->d, loc, "%s", msg ? msg : "error");
    return lw_err(L);
}

const char *lw_printf(Lower *L, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vprintf(L->a, fmt, ap);
    va_end(ap);
    return s ? s : "";
}

/* ---- scopes ------------------------------------------------------------------------- */

Scope *lw_scope_new(Lower *L, Scope *parent, FeMod *mod) {
    Scope *s = arena_alloc(L->a, sizeof *s);
    if (!s) return NULL;
    s->parent = parent;
    s->mod = mod ? mod : (parent ? parent->mod : L->main);
    return s;
}

Binding *lw_scope_find(Scope *s, const char *name) {
    if (!s) return NULL;
    for (int i = s->n - 1; i >= 0; i--)
        if (strcmp(s->b[i].name, name) == 0) return &s->b[i];
    return NULL;
}

void lw_scope_set(Lower *L, Scope *s, const char *name, Value *v, SrcLoc loc) {
    if (!s) return;
    Binding *b = lw_scope_find(s, name);
    if (b) {
        b->v = v;
        if (loc.line) b->loc = loc;
        return;
    }
    if (!arena_grow(L->a, &s->b, &s->cap, (size_t)s->n + 1, 16)) {
        L->oom = true;
        return;
    }
    Binding *nb = &s->b[s->n++];
    memset(nb, 0, sizeof *nb);
    nb->name = name;
    nb->v = v;
    nb->loc = loc;
}

Global *lw_global(FeMod *m, const char *name) {
    if (!m) return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->g[i].name, name) == 0) return &m->g[i];
    return NULL;
}

FeMod *lw_find_mod(Lower *L, const char *name) {
    for (int i = 0; i < L->nmods; i++)
        if (strcmp(L->mods[i]->name, name) == 0) return L->mods[i];
    return NULL;
}

Value *lw_global_value(Lower *L, FeMod *m, Global *g, SrcLoc loc) {
    switch (g->kind) {
    case G_CONFIG:
        if (g->state == 2) return g->v ? g->v : lw_err(L);
        if (g->state == 1)
            return lw_error(L, loc, "config value '%s' is defined in terms of itself", g->name);
        g->state = 1;
        g->v = lw_config_value(L, m, g);
        g->state = 2;
        return g->v ? g->v : lw_err(L);
    case G_MODULE:
        return g->v ? g->v : lw_err(L);
    case G_FN:
    case G_OPTIM:
        if (!g->v) {
            Value *v = arena_alloc(L->a, sizeof *v);
            if (!v) return lw_err(L);
            v->kind = V_FUNC;
            v->u.fn.kind = g->kind == G_FN ? FN_DECL : FN_OPTIMIZER;
            v->u.fn.decl = g->decl;
            v->u.fn.mod = m;
            if (g->trained) v->u.fn.inst = g->name;
            g->v = v;
        }
        return g->v;
    case G_MODEL:
        if (g->state == 2) return g->v ? g->v : lw_err(L);
        if (g->state == 1)
            return lw_error(L, loc, "model '%s' is defined in terms of itself", g->name);
        g->state = 1;
        g->v = lw_model_decl(L, m, g);
        g->state = 2;
        return g->v ? g->v : lw_err(L);
    case G_DATA:
        if (g->state == 2) return g->v ? g->v : lw_err(L);
        if (g->state == 1)
            return lw_error(L, loc, "data '%s' is defined in terms of itself", g->name);
        g->state = 1;
        g->v = lw_data_decl(L, m, g->decl);
        g->state = 2;
        return g->v ? g->v : lw_err(L);
    }
    return lw_err(L);
}

/* `model NAME = f`: f's fn with NAME as its instance. */
Value *lw_model_decl(Lower *L, FeMod *m, const Global *g) {
    const Expr *e = g->decl->u.model.value;
    Scope *s = lw_scope_new(L, NULL, m);
    Value *f = s ? lw_expr(L, s, e) : NULL;
    if (val_is_error(f)) return lw_err(L);
    if (f->kind != V_FUNC || f->u.fn.kind != FN_DECL)
        return lw_error(L, e->loc, "model %s: expected a fn declaration such as mlp, got %s",
                        g->name, lw_value_desc(L, f));
    Value *v = arena_alloc(L->a, sizeof *v);
    if (!v) return lw_err(L);
    *v = *f;
    v->u.fn.inst = g->name;
    return v;
}

Value *lw_lookup(Lower *L, Scope *s, const char *name, SrcLoc loc) {
    FeMod *mod = s ? s->mod : L->main;
    for (Scope *p = s; p; p = p->parent) {
        Binding *b = lw_scope_find(p, name);
        if (b && b->v) return b->v;
        if (p->mod) mod = p->mod;
    }
    Global *g = lw_global(mod, name);
    if (g) return lw_global_value(L, mod, g, loc);
    if (strcmp(name, "seed") == 0) return val_slot(L->a, L->m->seed_slot);
    int bi = fe_builtin_index(name);
    if (bi >= 0) {
        Value *v = arena_alloc(L->a, sizeof *v);
        if (!v) return lw_err(L);
        v->kind = V_FUNC;
        v->u.fn.kind = FN_BUILTIN;
        v->u.fn.builtin = bi;
        return v;
    }
    return NULL;
}

/* ---- graphs ------------------------------------------------------------------------- */

static bool grow_ints(Lower *L, int **p, int n, int *cap) {
    if (arena_grow(L->a, p, cap, (size_t)n + 1, 16)) return true;
    L->oom = true;
    return false;
}

static void gc_reset(Lower *L, GraphCtx *c, const char *name) {
    char nm[64];
    if (name)
        snprintf(nm, sizeof nm, "%s", name);
    else
        snprintf(nm, sizeof nm, "g%d", L->ngraphs);
    L->ngraphs++;
    c->g = ir_graph_new(L->a, L->d, nm);
    c->in_slots = NULL;
    c->nin = c->cap_in = 0;
    c->out_slots = NULL;
    c->nout = c->cap_out = 0;
    c->slot_nodes = NULL;
    c->cap_slot_nodes = 0;
    c->in_defs = NULL;
    c->cap_in_defs = 0;
    c->rec = arena_alloc(L->a, sizeof *c->rec);
    if (c->rec) memset(c->rec, 0, sizeof *c->rec), c->rec->g = c->g;
    if (!c->g || !c->rec) L->oom = true;
}

GraphCtx *lw_gc_push(Lower *L, const char *name) {
    GraphCtx *c = arena_alloc(L->a, sizeof *c);
    if (!c) {
        L->oom = true;
        return L->gc;
    }
    gc_reset(L, c, name);
    c->prev = L->gc;
    L->gc = c;
    return c;
}

void lw_gc_pop(Lower *L) {
    if (L->gc) L->gc = L->gc->prev;
}

void lw_gc_output(Lower *L, Node *n, int slot) {
    GraphCtx *c = L->gc;
    if (!c || !c->g || !n || slot < 0) return;
    if (!grow_ints(L, &c->out_slots, c->nout, &c->cap_out)) return;
    if (ir_graph_add_output(c->g, n) < 0) return;
    c->out_slots[c->nout++] = slot;
}

void lw_gc_emit(Lower *L, HostBlock *hb, SrcLoc loc) {
    GraphCtx *c = L->gc;
    if (!c || !c->g) return;
    lw_defs_commit(L); /* its writes happen when it runs, here */
    if (hb == &L->m->init) lw_defs_init_written(L, c->out_slots, c->nout);
    if (c->g->noutputs > 0 && hb) {
        HostStmt *st = ir_host_append(L->m, hb, HS_RUN, loc);
        if (!st) {
            L->oom = true;
            return;
        }
        st->u.run.graph = c->g;
        st->u.run.in_slots = c->in_slots;
        st->u.run.out_slots = c->out_slots;
    }
    gc_reset(L, c, NULL);
}

int lw_new_slot(Lower *L, const char *name, SlotKind k, DType dt, Shape s) {
    int id = ir_module_add_slot(L->m, name, k, dt, s);
    if (id < 0) L->oom = true;
    return id;
}

int lw_var_slot(Lower *L, const char *name, DType dt, Shape s) {
    int id = lw_new_slot(L, name, SLOT_VAR, dt, s);
    if (id < 0) return id;
    if (!arena_grow(L->a, &L->owned, &L->cap_owned, (size_t)id + 1, 64)) {
        L->oom = true;
        return id;
    }
    L->owned[id] = 1;
    return id;
}

bool lw_is_owned(Lower *L, int slot) {
    return slot >= 0 && slot < L->cap_owned && L->owned[slot];
}

Node *lw_slot_node(Lower *L, int slot, SrcLoc loc) {
    GraphCtx *c = L->gc;
    if (!c || !c->g || slot < 0 || slot >= L->m->nslots) return NULL;
    if (!arena_grow(L->a, &c->slot_nodes, &c->cap_slot_nodes, (size_t)slot + 1, 64)) {
        L->oom = true;
        return NULL;
    }
    if (c->slot_nodes[slot]) return c->slot_nodes[slot];
    const Slot *sl = &L->m->slots[slot];
    if (!grow_ints(L, &c->in_slots, c->nin, &c->cap_in)) return NULL;
    Node *n = ir_input(c->g, sl->dtype, sl->shape, sl->name, loc);
    if (!n) return NULL;
    if (sl->kind == SLOT_PARAM) n->flags |= NODE_PARAM;
    c->in_slots[c->nin] = slot;
    lw_defs_read(L, c->nin, slot);
    c->nin++;
    c->slot_nodes[slot] = n;
    return n;
}

/* ---- values and nodes --------------------------------------------------------------- */

bool lw_type(Lower *L, const Value *v, DType *dt, Shape *s) {
    if (!v) return false;
    switch (v->kind) {
    case V_TENSOR:
        *dt = v->u.t.node->dtype;
        *s = v->u.t.node->shape;
        return true;
    case V_SLOT:
        if (v->u.slot < 0 || v->u.slot >= L->m->nslots) return false;
        *dt = L->m->slots[v->u.slot].dtype;
        *s = L->m->slots[v->u.slot].shape;
        return true;
    case V_INT:
        *dt = DT_I64;
        *s = rt_shape_scalar();
        return true;
    case V_FLOAT:
        *dt = DT_F32;
        *s = rt_shape_scalar();
        return true;
    case V_BOOL:
        *dt = DT_BOOL;
        *s = rt_shape_scalar();
        return true;
    case V_LIST:
        return lw_literal_type(v, DT_COUNT, dt, s);
    case V_ERROR:
    case V_NONE:
    case V_STR:
    case V_TREE:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        break;
    }
    return false;
}

/* The product of the non-zero dimensions of s, or FE_MAX_NUMEL + 1 past the
 * limit: an empty tensor's other dimensions are still the index ranges of
 * its kernels, so they obey the limit too (and never overflow). */
static int64_t dims_extent(const Shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        if (s->dims[i] > 0 && (!ck_mul(n, s->dims[i], &n) || n > FE_MAX_NUMEL))
            return FE_MAX_NUMEL + 1;
    return n;
}

Value *lw_tensor(Lower *L, Node *n) {
    if (!n) return lw_err(L);
    /* every result passes here: one place bounds what any op may produce */
    if (rt_shape_numel(&n->shape) < 0 || dims_extent(&n->shape) > FE_MAX_NUMEL) {
        char buf[160];
        return lw_error(L, n->loc,
                        "this gives %s, more than 2^31 elements (the limit for one tensor)",
                        fe_type_str(n->dtype, &n->shape, buf, sizeof buf));
    }
    return val_tensor(L->a, n, L->gc ? L->gc->g : NULL);
}

Node *lw_const_node(Graph *g, DType dt, Shape s, const Value *v, SrcLoc loc) {
    if (v->kind == V_INT && (rt_dtype_is_int(dt) || dt == DT_BOOL))
        return ir_const_int(g, dt, s, v->u.i, loc);
    return ir_const(g, dt, s, val_num(v), loc);
}

/* ---- tensor literals ------------------------------------------------------------------ */

bool lw_is_numeric_list(const Value *v) {
    if (!v || v->kind != V_LIST || v->u.tree.n == 0) return false;
    for (int i = 0; i < v->u.tree.n; i++) {
        const Value *e = v->u.tree.items[i];
        if (!(e->kind == V_INT || e->kind == V_FLOAT || e->kind == V_BOOL || lw_is_numeric_list(e)))
            return false;
    }
    return true;
}

/* The dtype a numeric list takes: f32 once a float is in it (f64 beside an f64
 * tensor), bool when all are bools, otherwise i64, or the dtype of the tensor
 * it meets (hint), as an integer constant would. */
static void list_dtype(const Value *v, bool *any_float, bool *all_bool) {
    for (int i = 0; i < v->u.tree.n; i++) {
        const Value *e = v->u.tree.items[i];
        if (e->kind == V_LIST)
            list_dtype(e, any_float, all_bool);
        else {
            *any_float |= e->kind == V_FLOAT;
            *all_bool &= e->kind == V_BOOL;
        }
    }
}

static DType literal_dtype(const Value *v, DType hint) {
    bool any_float = false, all_bool = true;
    list_dtype(v, &any_float, &all_bool);
    if (any_float) return hint == DT_F64 ? DT_F64 : DT_F32;
    if (all_bool) return DT_BOOL;
    if (hint == DT_F32 || hint == DT_F64 || hint == DT_I32 || hint == DT_I64) return hint;
    return DT_I64;
}

/* The shape of a numeric list: the lengths along its first items; false (with
 * a message in why) when it is ragged, so it is no tensor. */
static bool literal_check(const Value *v, const Shape *s, int depth, char *why, size_t n) {
    if (depth == s->rank) {
        if (v->kind == V_LIST) {
            snprintf(why, n, "a list where a number is expected at depth %d", depth);
            return false;
        }
        return true;
    }
    if (v->kind != V_LIST) {
        snprintf(why, n, "a number where a list of %lld is expected at depth %d",
                 (long long)s->dims[depth], depth);
        return false;
    }
    if (v->u.tree.n != s->dims[depth]) {
        snprintf(why, n, "a list of %d where the first has %lld, at depth %d", v->u.tree.n,
                 (long long)s->dims[depth], depth);
        return false;
    }
    for (int i = 0; i < v->u.tree.n; i++)
        if (!literal_check(v->u.tree.items[i], s, depth + 1, why, n)) return false;
    return true;
}

static bool literal_shape(const Value *v, Shape *s, char *why, size_t n) {
    memset(s, 0, sizeof *s);
    for (const Value *e = v; e->kind == V_LIST; e = e->u.tree.items[0]) {
        if (s->rank == IR_MAX_RANK || e->u.tree.n == 0) {
            snprintf(why, n, "more than %d nested lists, or an empty one", IR_MAX_RANK);
            return false;
        }
        s->dims[s->rank++] = e->u.tree.n;
    }
    return literal_check(v, s, 0, why, n);
}

bool lw_literal_type(const Value *v, DType hint, DType *dt, Shape *s) {
    char why[160];
    if (!lw_is_numeric_list(v) || !literal_shape(v, s, why, sizeof why)) return false;
    *dt = literal_dtype(v, hint);
    return true;
}

static int literal_leaves(Lower *L, const Value *v, Graph *g, DType dt, Node **out, int k,
                          SrcLoc loc) {
    for (int i = 0; i < v->u.tree.n; i++) {
        const Value *e = v->u.tree.items[i];
        if (e->kind == V_LIST) {
            k = literal_leaves(L, e, g, dt, out, k, loc);
            continue;
        }
        lw_cfg_bake(L, e, loc); /* a config number in a literal is fixed at compile time */
        Shape one = {.rank = 1, .dims = {1}};
        out[k++] = lw_const_node(g, dt, one, e, loc);
    }
    return k;
}

/* A tensor literal: the numbers of a (nested) list as a constant tensor, one
 * constant per number concatenated, so every backend and pass already knows
 * it; FE_MAX_LITERAL bounds that (bigger data comes from a file). */
static Node *literal_node(Lower *L, const Value *v, DType hint, SrcLoc loc) {
    Graph *g = L->gc->g;
    Shape s;
    char why[160];
    if (!literal_shape(v, &s, why, sizeof why)) {
        diag_error(L->d, loc, "a ragged list is not a tensor: %s", why);
        return NULL;
    }
    int64_t n = rt_shape_numel(&s);
    if (n > FE_MAX_LITERAL) {
        diag_error(L->d, loc,
                   "a tensor literal holds at most %d numbers, this one %lld (load bigger data "
                   "with npy() or csv())",
                   FE_MAX_LITERAL, (long long)n);
        return NULL;
    }
    DType dt = literal_dtype(v, hint);
    Node **leaves = arena_alloc(L->a, sizeof(Node *) * (size_t)n);
    if (!leaves) {
        L->oom = true;
        return NULL;
    }
    literal_leaves(L, v, g, dt, leaves, 0, loc);
    return ir_reshape(g, ir_concat(g, leaves, (int)n, 0, loc), s, loc);
}

Node *lw_node(Lower *L, const Value *v, DType hint, SrcLoc loc) {
    if (!v || !L->gc || !L->gc->g) return NULL;
    Graph *g = L->gc->g;
    switch (v->kind) {
    case V_TENSOR:
        if (v->u.t.graph != g) {
            diag_error(
                L->d, loc,
                "this value was computed in another context (a tensor of the enclosing function "
                "cannot be used here)");
            return NULL;
        }
        return v->u.t.node;
    case V_SLOT:
        return lw_slot_node(L, v->u.slot, loc);
    /* A config value reads its slot, converted to the dtype the constant
     * would have had, so the numbers are those of the folded constant. */
    case V_INT: {
        DType dt = DT_I64;
        if (hint == DT_F32 || hint == DT_F64 || hint == DT_I32 || hint == DT_I64) dt = hint;
        if (v->cfg) return lw_cfg_node(L, v, dt, loc);
        return lw_const_node(g, dt, rt_shape_scalar(), v, loc);
    }
    case V_FLOAT: {
        DType dt = hint == DT_F64 ? DT_F64 : DT_F32;
        if (v->cfg) return lw_cfg_node(L, v, dt, loc);
        return ir_scalar(g, dt, v->u.f, loc);
    }
    case V_BOOL:
        if (v->cfg) return lw_cfg_node(L, v, DT_BOOL, loc);
        return ir_scalar(g, DT_BOOL, v->u.b ? 1.0 : 0.0, loc);
    case V_LOSS: {
        Value *lv = lw_loss_value(L, loc);
        if (val_is_error(lv) || lv->kind == V_LOSS) return NULL;
        return lw_node(L, lv, hint, loc);
    }
    case V_LIST:
        if (lw_is_numeric_list(v)) return literal_node(L, v, hint, loc);
        break;
    case V_ERROR:
    case V_NONE:
    case V_STR:
    case V_TREE:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
        break;
    }
    return NULL;
}

/* ---- config values ------------------------------------------------------------------ */

static ModuleConfig *cfg_of(Lower *L, const Value *v) {
    if (!v || v->cfg <= 0 || v->cfg > L->m->nconfigs) return NULL;
    return &L->m->configs[v->cfg - 1];
}

void lw_cfg_bake(Lower *L, const Value *v, SrcLoc loc) {
    ModuleConfig *c = cfg_of(L, v);
    if (!c || c->baked) return;
    c->baked = true;
    c->baked_at = loc;
}

/* The SLOT_CONFIG slot of config c, holding its compiled value. */
static int config_slot(Lower *L, ModuleConfig *c, int index) {
    const Value *cv = L->cfg_globals && L->cfg_globals[index] ? L->cfg_globals[index]->v : NULL;
    DType dt;
    if (!cv || !(cv->kind == V_INT || cv->kind == V_FLOAT || cv->kind == V_BOOL)) return -1;
    dt = cv->kind == V_INT ? DT_I64 : cv->kind == V_FLOAT ? DT_F64 : DT_BOOL;
    RtTensor *t = rt_tensor_new(dt, rt_shape_scalar());
    if (!t) {
        L->oom = true;
        return -1;
    }
    if (cv->kind == V_FLOAT)
        rt_tensor_set_f64(t, 0, cv->u.f);
    else
        rt_tensor_set_i64(t, 0, cv->kind == V_INT ? cv->u.i : (int64_t)cv->u.b);
    int id = lw_new_slot(L, lw_printf(L, "config.%s", c->name), SLOT_CONFIG, dt, rt_shape_scalar());
    if (id < 0) {
        rt_tensor_free(t);
        return -1;
    }
    L->m->slots[id].value = t;
    c->slot = id;
    return id;
}

Node *lw_cfg_node(Lower *L, const Value *v, DType dt, SrcLoc loc) {
    ModuleConfig *c = cfg_of(L, v);
    if (!c || !L->gc || !L->gc->g) return NULL;
    int slot = c->slot >= 0 ? c->slot : config_slot(L, c, v->cfg - 1);
    Node *n = slot >= 0 ? lw_slot_node(L, slot, loc) : NULL;
    if (n && n->dtype != dt) n = ir_cast(L->gc->g, n, dt, loc);
    return n;
}

const char *lw_value_desc(Lower *L, const Value *v) {
    char buf[160];
    DType dt;
    Shape s;
    if (!v) return "nothing";
    switch (v->kind) {
    case V_INT:
        return lw_printf(L, "int %lld", (long long)v->u.i);
    case V_FLOAT:
        return lw_printf(L, "float %g", v->u.f);
    case V_BOOL:
        return v->u.b ? "bool true" : "bool false";
    case V_STR:
        return lw_printf(L, "str \"%s\"", v->u.s);
    case V_TENSOR:
    case V_SLOT:
        if (lw_type(L, v, &dt, &s)) return lw_printf(L, "%s", fe_type_str(dt, &s, buf, sizeof buf));
        return "tensor";
    case V_ERROR:
    case V_NONE:
    case V_TREE:
    case V_LIST:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        break;
    }
    return val_kind_name(v->kind);
}

Node *lw_need_node(Lower *L, const Value *v, DType hint, SrcLoc loc, const char *what) {
    if (val_is_error(v)) return NULL;
    if (v->kind != V_TENSOR && v->kind != V_SLOT && !val_is_const(v) && v->kind != V_LOSS &&
        !lw_is_numeric_list(v)) {
        diag_error(L->d, loc, "%s: expected a tensor or a number, got %s", what,
                   lw_value_desc(L, v));
        return NULL;
    }
    return lw_node(L, v, hint, loc);
}

bool lw_check_numel(Lower *L, const Shape *s, SrcLoc loc, const char *what) {
    if (s->rank < 0 || s->rank > IR_MAX_RANK) {
        diag_error(L->d, loc, "%s: rank %d is more than the maximum %d", what, s->rank,
                   IR_MAX_RANK);
        return false;
    }
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 0) {
            diag_error(L->d, loc, "%s: negative dimension %lld", what, (long long)s->dims[i]);
            return false;
        }
    }
    if (dims_extent(s) > FE_MAX_NUMEL) {
        char buf[160];
        diag_error(L->d, loc, "%s: %s has more than 2^31 elements (the limit for one tensor)", what,
                   fe_type_str(DT_F32, s, buf, sizeof buf) + 3);
        return false;
    }
    return true;
}

/* ---- homes of loop-carried variables ------------------------------------------------ */

void lw_homes_push(Lower *L) {
    HomeFrame *f = arena_alloc(L->a, sizeof *f);
    if (!f) {
        L->oom = true;
        return;
    }
    f->prev = L->homes;
    L->homes = f;
}

void lw_homes_pop(Lower *L) {
    if (L->homes) L->homes = L->homes->prev;
}

void lw_home_set(Lower *L, const char *name, Value *home) {
    HomeFrame *f = L->homes;
    if (!f || !home) return;
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) {
            f->homes[i] = home;
            return;
        }
    if (f->n == f->cap) {
        size_t nc, c = (size_t)f->cap;
        if (!rt_grow_cap(c, c + 1, 8, INT_MAX, &nc) || !arena_resize(L->a, &f->names, c, nc) ||
            !arena_resize(L->a, &f->homes, c, nc)) {
            L->oom = true;
            return;
        }
        f->cap = (int)nc;
    }
    f->names[f->n] = name;
    f->homes[f->n] = home;
    f->n++;
}

Value *lw_home_of(Lower *L, const char *name) {
    for (HomeFrame *f = L->homes; f; f = f->prev)
        for (int i = 0; i < f->n; i++)
            if (strcmp(f->names[i], name) == 0) return f->homes[i];
    return NULL;
}

static bool holds_slot(const Value *v, int slot) {
    if (!v) return false;
    if (v->kind == V_SLOT) return v->u.slot == slot;
    if (v->kind == V_TREE || v->kind == V_LIST)
        for (int i = 0; i < v->u.tree.n; i++)
            if (holds_slot(v->u.tree.items[i], slot)) return true;
    return false;
}

static bool is_home_slot(Lower *L, int slot) {
    for (HomeFrame *f = L->homes; f; f = f->prev)
        for (int i = 0; i < f->n; i++)
            if (holds_slot(f->homes[i], slot)) return true;
    return false;
}

/* The slot a node was already written to in this flush, so that names bound
 * to the same node share one slot. Never a loop home: a home changes in the
 * loop while the other name must keep its value. */
static int flushed_slot(Lower *L, Node *n) {
    GraphCtx *c = L->gc;
    for (int j = 0; j < c->nout; j++)
        if (c->g->outputs[j] == n && L->m->slots[c->out_slots[j]].kind == SLOT_VAR &&
            !is_home_slot(L, c->out_slots[j]))
            return c->out_slots[j];
    return -1;
}

static bool same_type(Lower *L, const Value *v, int slot) {
    DType dt;
    Shape s;
    if (!lw_type(L, v, &dt, &s)) return false;
    return dt == L->m->slots[slot].dtype && rt_shape_eq(&s, &L->m->slots[slot].shape);
}

static Value *home_mismatch(Lower *L, const Value *v, int slot, const char *name, SrcLoc loc) {
    char buf[160];
    const Slot *sl = &L->m->slots[slot];
    return lw_error(L, loc,
                    "'%s' changes type inside the loop: %s before it, %s after one iteration (give "
                    "it its final "
                    "type before the loop, e.g. 0.0 rather than 0, or zeros([...]))",
                    name, fe_type_str(sl->dtype, &sl->shape, buf, sizeof buf), lw_value_desc(L, v));
}

Value *lw_materialize(Lower *L, Value *v, Value *home, const char *name, SrcLoc loc) {
    if (val_is_error(v)) return v ? v : lw_err(L);
    if (home && home->kind == V_SLOT) {
        int hs = home->u.slot;
        const Slot *sl = &L->m->slots[hs];
        if (v->kind == V_SLOT && v->u.slot == hs) return v;
        if (v->kind == V_TENSOR || v->kind == V_SLOT) {
            if (!same_type(L, v, hs)) return home_mismatch(L, v, hs, name, loc);
            Node *n = lw_node(L, v, sl->dtype, loc);
            if (!n) return lw_err(L);
            lw_gc_output(L, n, hs);
            return home;
        }
        if (val_is_const(v)) {
            if (!L->gc || !L->gc->g) return lw_err(L);
            DType hdt = sl->dtype;
            Shape hsh = sl->shape;
            Node *n = v->cfg ? ir_broadcast(L->gc->g, lw_cfg_node(L, v, hdt, loc), hsh, loc)
                             : lw_const_node(L->gc->g, hdt, hsh, v, loc);
            if (!n) return lw_err(L);
            lw_gc_output(L, n, hs);
            return home;
        }
        if (v->kind == V_LOSS) {
            Node *n = lw_node(L, v, sl->dtype, loc);
            if (!n) return lw_err(L);
            if (!same_type(L, val_tensor(L->a, n, L->gc->g), hs))
                return home_mismatch(L, val_tensor(L->a, n, L->gc->g), hs, name, loc);
            lw_gc_output(L, n, hs);
            return home;
        }
        return lw_error(
            L, loc,
            "'%s' holds a %s and cannot change inside a loop or a branch on a run-time value", name,
            val_kind_name(v->kind));
    }
    if (home && (home->kind == V_TREE || home->kind == V_LIST)) {
        if (!val_same_structure(v, home))
            return lw_error(L, loc, "'%s' changes its tree structure inside the loop", name);
        Value **items =
            arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return lw_err(L);
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? lw_printf(L, "%s.%s", name, v->u.tree.names[i])
                                               : lw_printf(L, "%s.%d", name, i);
            items[i] = lw_materialize(L, v->u.tree.items[i], home->u.tree.items[i], nm, loc);
        }
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    switch (v->kind) {
    case V_TENSOR: {
        if (!L->gc || v->u.t.graph != L->gc->g)
            return lw_error(L, loc, "internal error: '%s' holds a tensor of a finished graph",
                            name);
        Node *n = v->u.t.node;
        if (n->op == OP_INPUT) {
            /* an unchanged slot value read in this graph */
            for (int i = 0; i < L->gc->nin; i++)
                if (L->gc->g->inputs[i] == n) return val_slot(L->a, L->gc->in_slots[i]);
        }
        int s = flushed_slot(L, n);
        if (s < 0) {
            s = lw_var_slot(L, name, n->dtype, n->shape);
            if (s < 0) return lw_err(L);
            lw_gc_output(L, n, s);
        }
        return val_slot(L->a, s);
    }
    case V_TREE:
    case V_LIST: {
        Value **items =
            arena_alloc(L->a, sizeof(Value *) * (size_t)(v->u.tree.n ? v->u.tree.n : 1));
        if (!items) return lw_err(L);
        bool changed = false;
        for (int i = 0; i < v->u.tree.n; i++) {
            const char *nm = v->kind == V_TREE ? lw_printf(L, "%s.%s", name, v->u.tree.names[i])
                                               : lw_printf(L, "%s.%d", name, i);
            items[i] = lw_materialize(L, v->u.tree.items[i], NULL, nm, loc);
            changed = changed || items[i] != v->u.tree.items[i];
        }
        if (!changed) return v;
        Value *r = arena_alloc(L->a, sizeof *r);
        if (!r) return lw_err(L);
        *r = *v;
        r->u.tree.items = items;
        return r;
    }
    case V_ERROR:
    case V_NONE:
    case V_INT:
    case V_FLOAT:
    case V_BOOL:
    case V_STR:
    case V_SLOT:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        break;
    }
    return v;
}

void lw_flush(Lower *L, Value **extra, int nextra, SrcLoc loc) {
    Scope *s = L->host_scope;
    if (s) {
        for (int i = 0; i < s->n; i++) {
            Binding *b = &s->b[i];
            if (!b->v) continue;
            /* a type change of a loop variable is reported where it was last assigned */
            Value *home = lw_home_of(L, b->name);
            b->v = lw_materialize(L, b->v, home, b->name, home && b->loc.line ? b->loc : loc);
        }
    }
    for (int i = 0; i < nextra; i++)
        extra[i] = lw_materialize(L, extra[i], NULL, "tmp", loc);
    lw_gc_emit(L, L->hb, loc);
}

/* ---- parameter paths ---------------------------------------------------------------- */

void lw_act_top(Lower *L, Activation *act) {
    memset(act, 0, sizeof *act);
    act->prev = L->act;
    L->act = act;
}

void lw_act_push(Lower *L, Activation *act, const Decl *fn, const char *callee_name) {
    memset(act, 0, sizeof *act);
    act->fn = fn;
    Activation *parent = L->act;
    if (!parent || !parent->path) {
        act->path = callee_name;
        act->root = true;
    } else {
        int k = -1;
        for (int i = 0; i < parent->n; i++)
            if (strcmp(parent->callees[i], callee_name) == 0) k = i;
        if (k < 0) {
            if (parent->n == parent->cap) {
                size_t nc, c = (size_t)parent->cap;
                if (!rt_grow_cap(c, c + 1, 8, INT_MAX, &nc) ||
                    !arena_resize(L->a, &parent->callees, c, nc) ||
                    !arena_resize(L->a, &parent->counts, c, nc)) {
                    L->oom = true;
                    act->path = callee_name;
                    act->prev = L->act;
                    L->act = act;
                    return;
                }
                parent->cap = (int)nc;
            }
            k = parent->n++;
            parent->callees[k] = callee_name;
            parent->counts[k] = 0;
        }
        act->path = lw_printf(L, "%s.%s%d", parent->path, callee_name, parent->counts[k]++);
    }
    act->prev = L->act;
    L->act = act;
}

void lw_act_push_instance(Lower *L, Activation *act, const Decl *fn, const char *inst) {
    memset(act, 0, sizeof *act);
    act->fn = fn;
    act->path = inst;
    act->root = true;
    act->prev = L->act;
    L->act = act;
}

void lw_act_pop(Lower *L) {
    if (L->act) L->act = L->act->prev;
}

/* ---- parameters --------------------------------------------------------------------- */

int lw_find_slot(Lower *L, const char *name, SlotKind k) {
    for (int i = 0; i < L->m->nslots; i++)
        if (L->m->slots[i].kind == k && strcmp(L->m->slots[i].name, name) == 0) return i;
    return -1;
}

void lw_touch(Lower *L, int slot) {
    if (!L->track) return;
    for (int i = 0; i < L->ntouched; i++)
        if (L->touched[i] == slot) return;
    if (!grow_ints(L, &L->touched, L->ntouched, &L->cap_touched)) return;
    L->touched[L->ntouched++] = slot;
}

/* The leaf of tree t at dotted path p ("mlp.linear0.W"), or NULL. */
static Value *tree_at_path(Lower *L, Value *t, const char *p) {
    while (t && t->kind == V_TREE && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        Value *next = NULL;
        for (int i = 0; i < t->u.tree.n; i++)
            if (strlen(t->u.tree.names[i]) == n && strncmp(t->u.tree.names[i], p, n) == 0)
                next = t->u.tree.items[i];
        t = next;
        p = dot ? dot + 1 : p + n;
        if (!dot) break;
    }
    (void)L;
    return (t && t->kind != V_TREE && t->kind != V_LIST) ? t : NULL;
}

/* Evaluates a param's declared type into (dtype, shape). */
static bool param_type(Lower *L, Scope *s, const TypeExpr *t, DType *dt, Shape *sh) {
    *dt = t->dtype;
    memset(sh, 0, sizeof *sh);
    if (!t->has_dims) return true;
    if (t->ndims > IR_MAX_RANK) {
        diag_error(L->d, t->loc, "rank %d is more than the maximum %d", t->ndims, IR_MAX_RANK);
        return false;
    }
    sh->rank = t->ndims;
    for (int i = 0; i < t->ndims; i++) {
        if (!t->dims[i]) {
            diag_error(L->d, t->loc, "a param's type cannot contain '...'");
            return false;
        }
        Value *v = lw_expr(L, s, t->dims[i]);
        int64_t k;
        if (val_is_error(v)) return false;
        if (!lw_const_int(L, v, &k, t->dims[i]->loc, "a param dimension")) return false;
        sh->dims[i] = k;
    }
    return lw_check_numel(L, sh, t->loc, "param");
}

Value *lw_param(Lower *L, Scope *s, const Stmt *st) {
    const char *name = st->u.param.name;
    if (!L->act || !L->act->path)
        return lw_error(L, st->loc, "'param %s' is only allowed inside a function", name);
    DType dt;
    Shape sh;
    if (!param_type(L, s, st->u.param.type, &dt, &sh)) return lw_err(L);
    const char *path = lw_printf(L, "%s.%s", L->act->path, name);
    char b1[160], b2[160];

    if (L->ovr) {
        Value *o = tree_at_path(L, L->ovr, path);
        if (o) {
            DType odt;
            Shape os;
            if (!val_is_error(o) && lw_type(L, o, &odt, &os) &&
                (odt != dt || !rt_shape_eq(&os, &sh))) {
                if (val_is_const(o)) return o;
                return lw_error(
                    L, st->loc, "parameter '%s' is %s but the tree passed to loss() holds %s", path,
                    fe_type_str(dt, &sh, b1, sizeof b1), fe_type_str(odt, &os, b2, sizeof b2));
            }
            return o;
        }
    }

    int slot = lw_find_slot(L, path, SLOT_PARAM);
    if (slot >= 0) {
        const Slot *sl = &L->m->slots[slot];
        if (sl->dtype != dt || !rt_shape_eq(&sl->shape, &sh))
            return lw_error(L, st->loc, "parameter '%s' was %s where first traced, and is %s here",
                            path, fe_type_str(sl->dtype, &sl->shape, b1, sizeof b1),
                            fe_type_str(dt, &sh, b2, sizeof b2));
        lw_touch(L, slot);
        return val_slot(L->a, slot);
    }
    slot = lw_new_slot(L, path, SLOT_PARAM, dt, sh);
    if (slot < 0) return lw_err(L);
    lw_param_origin(L, slot);

    /* The initialiser runs once, in its own graph in Module.init. */
    ParamInit pi = {path, dt, sh, st->loc};
    ParamInit *saved_pi = L->pinit;
    bool saved_host = L->host;
    Value *saved_ovr = L->ovr;
    TrainCtx *saved_train = L->train;
    L->pinit = &pi;
    L->host = false;
    L->ovr = NULL;
    L->train = NULL; /* an initialiser sees neither loss nor fresh_seed */
    lw_gc_push(L, lw_printf(L, "init_%s", path));
    Value *iv;
    if (st->u.param.init)
        iv = lw_expr(L, s, st->u.param.init);
    else
        iv = val_float(L->a, 0.0);
    if (!val_is_error(iv)) {
        Node *n = lw_need_node(L, iv, dt, st->u.param.init ? st->u.param.init->loc : st->loc,
                               "param initialiser");
        if (n) {
            Graph *g = L->gc->g;
            SrcLoc il = st->u.param.init ? st->u.param.init->loc : st->loc;
            Shape bs;
            if (!ir_broadcast_shapes(&n->shape, &sh, &bs) || !rt_shape_eq(&bs, &sh)) {
                diag_error(L->d, il, "the initialiser of '%s' gives %s, which does not fit %s",
                           path, fe_type_str(n->dtype, &n->shape, b1, sizeof b1),
                           fe_type_str(dt, &sh, b2, sizeof b2));
            } else {
                n = ir_broadcast(g, ir_cast(g, n, dt, il), sh, il);
                lw_gc_output(L, n, slot);
            }
        }
    }
    lw_gc_emit(L, &L->m->init, st->loc);
    lw_gc_pop(L);
    L->pinit = saved_pi;
    L->host = saved_host;
    L->ovr = saved_ovr;
    L->train = saved_train;
    lw_touch(L, slot);
    return val_slot(L->a, slot);
}
