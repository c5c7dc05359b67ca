/* Slot definitions and seeing through host statements for grad
 * (lower_defs.h states the contract). */
#include <stdint.h>
#include <string.h>

#include "lower_internal.h"

typedef enum { DEF_EXTERN, DEF_WRITE, DEF_JOIN } DefKind;
typedef enum { JOIN_HEAD, JOIN_EXIT, JOIN_MERGE } JoinKind;

struct SlotDef {
    DefKind kind;
    int slot;
    const Region *region; /* the innermost region when it was made */
    const GraphRec *gr;   /* DEF_WRITE: the graph and node that wrote it */
    Node *node;
    JoinKind jk; /* DEF_JOIN: where the alternatives meet */
    const Region *of;
    SlotDef **alts; /* DEF_JOIN: the definitions that may reach it */
    int nalts, cap_alts;
};

/* ---- a pointer map (arena-backed, open addressing) ------------------------------------ */

typedef struct {
    const void **keys;
    void **vals;
    size_t cap, n;
} PtrMap;

static size_t ptr_hash(const void *p, size_t cap) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static bool map_grow(Lower *L, PtrMap *m) {
    size_t nc = m->cap ? m->cap * 2 : 256;
    const void **nk = arena_alloc(L->a, sizeof(void *) * nc);
    void **nv = arena_alloc(L->a, sizeof(void *) * nc);
    if (!nk || !nv) {
        L->oom = true;
        return false;
    }
    memset(nk, 0, sizeof(void *) * nc);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t h = ptr_hash(m->keys[i], nc);
        while (nk[h])
            h = (h + 1) & (nc - 1);
        nk[h] = m->keys[i];
        nv[h] = m->vals[i];
    }
    m->keys = nk;
    m->vals = nv;
    m->cap = nc;
    return true;
}

static void *map_get(const PtrMap *m, const void *k) {
    if (!m->cap) return NULL;
    for (size_t h = ptr_hash(k, m->cap);; h = (h + 1) & (m->cap - 1)) {
        if (!m->keys[h]) return NULL;
        if (m->keys[h] == k) return m->vals[h];
    }
}

static void map_put(Lower *L, PtrMap *m, const void *k, void *v) {
    if ((m->n + 1) * 2 > m->cap && !map_grow(L, m)) return;
    size_t h = ptr_hash(k, m->cap);
    while (m->keys[h] && m->keys[h] != k)
        h = (h + 1) & (m->cap - 1);
    if (!m->keys[h]) m->n++;
    m->keys[h] = k;
    m->vals[h] = v;
}

/* ---- definitions ---------------------------------------------------------------------- */

static SlotDef *def_new(Lower *L, DefKind k, int slot) {
    SlotDef *d = arena_alloc(L->a, sizeof *d);
    if (!d) {
        L->oom = true;
        return NULL;
    }
    memset(d, 0, sizeof *d);
    d->kind = k;
    d->slot = slot;
    d->region = L->region;
    return d;
}

static bool defs_reserve(Lower *L, int slot) {
    /* new entries are zeroed: no definition yet */
    if (arena_grow(L->a, &L->defs, &L->cap_defs, (size_t)slot + 1, 64)) return true;
    L->oom = true;
    return false;
}

SlotDef *lw_def_cur(Lower *L, int slot) {
    if (slot < 0 || !defs_reserve(L, slot)) return NULL;
    if (!L->defs[slot]) {
        /* a slot no graph wrote yet belongs to no region: it holds the same
         * host-written content wherever it is read */
        Region *saved = L->region;
        L->region = NULL;
        L->defs[slot] = def_new(L, DEF_EXTERN, slot);
        L->region = saved;
    }
    return L->defs[slot];
}

static void def_set(Lower *L, int slot, SlotDef *d) {
    if (d && defs_reserve(L, slot)) L->defs[slot] = d;
}

void lw_defs_commit(Lower *L) {
    GraphCtx *c = L->gc;
    if (!c || !c->g) return;
    for (int j = 0; j < c->nout; j++) {
        SlotDef *d = def_new(L, DEF_WRITE, c->out_slots[j]);
        if (!d) return;
        d->gr = c->rec;
        d->node = c->g->outputs[j];
        def_set(L, c->out_slots[j], d);
    }
}

void lw_defs_read(Lower *L, int input_index, int slot) {
    GraphCtx *c = L->gc;
    if (!c || !c->rec) return;
    if (!arena_grow(L->a, &c->in_defs, &c->cap_in_defs, (size_t)input_index + 1, 16)) {
        L->oom = true;
        return;
    }
    c->in_defs[input_index] = lw_def_cur(L, slot);
    c->rec->in_slots = c->in_slots;
    c->rec->in_defs = c->in_defs;
    c->rec->nin = input_index + 1;
}

static bool add_alt(Lower *L, SlotDef *j, SlotDef *alt) {
    if (!alt) return true;
    if (!arena_grow(L->a, &j->alts, &j->cap_alts, (size_t)j->nalts + 1, 4)) {
        L->oom = true;
        return false;
    }
    j->alts[j->nalts++] = alt;
    return true;
}

static SlotDef *join_new(Lower *L, int slot, JoinKind k, const Region *of) {
    SlotDef *j = def_new(L, DEF_JOIN, slot);
    if (!j) return NULL;
    j->jk = k;
    j->of = of;
    return j;
}

static bool push_def(Lower *L, SlotDef ***arr, int *n, int *cap, SlotDef *d) {
    if (!arena_grow(L->a, arr, cap, (size_t)*n + 1, 8)) {
        L->oom = true;
        return false;
    }
    (*arr)[(*n)++] = d;
    return true;
}

/* ---- regions -------------------------------------------------------------------------- */

static SlotDef **snapshot(Lower *L, int *n) {
    int ns = L->m->nslots;
    *n = 0;
    SlotDef **s = arena_alloc(L->a, sizeof(SlotDef *) * (size_t)(ns ? ns : 1));
    if (!s) {
        L->oom = true;
        return NULL;
    }
    for (int i = 0; i < ns; i++)
        s[i] = lw_def_cur(L, i);
    *n = ns;
    return s;
}

/* NULL: the slot was made inside the region and held nothing at its start. */
static SlotDef *entry_def(const Region *r, int slot) {
    return slot < r->nentry ? r->entry[slot] : NULL;
}

void lw_defs_init_written(Lower *L, const int *slots, int n) {
    for (Region *r = L->region; r; r = r->parent)
        for (int i = 0; i < n; i++) {
            int s = slots[i];
            if (s >= r->nentry) {
                int ns = L->m->nslots;
                /* the new entries are zeroed: held nothing at the region's start */
                if (!arena_resize(L->a, &r->entry, (size_t)r->nentry, (size_t)ns)) {
                    L->oom = true;
                    return;
                }
                r->nentry = ns;
            }
            r->entry[s] = lw_def_cur(L, s);
        }
}

void lw_region_begin(Lower *L, Region *r, bool loop) {
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->entry = snapshot(L, &r->nentry);
    r->parent = L->region;
    L->region = r;
}

void lw_region_heads(Lower *L, const int *slots, int n) {
    Region *r = L->region;
    if (!r) return;
    for (int i = 0; i < n; i++) {
        SlotDef *j = join_new(L, slots[i], JOIN_HEAD, r);
        if (!j || !add_alt(L, j, lw_def_cur(L, slots[i])) ||
            !push_def(L, &r->heads, &r->nheads, &r->cap_heads, j))
            return;
        def_set(L, slots[i], j);
    }
}

void lw_region_heads_written(Lower *L) {
    Region *r = L->region;
    if (!r) return;
    for (int s = 0; s < L->m->nslots; s++) {
        SlotDef *e = entry_def(r, s), *c = lw_def_cur(L, s);
        if (c == e || (!e && c->kind == DEF_EXTERN)) continue;
        SlotDef *j = join_new(L, s, JOIN_HEAD, r);
        if (!j || !add_alt(L, j, e) || !add_alt(L, j, c)) return;
        def_set(L, s, j);
    }
    r->heads = NULL; /* complete: lw_region_end adds nothing */
    r->nheads = 0;
}

void lw_region_break(Lower *L) {
    Region *r = L->region;
    while (r && !r->loop)
        r = r->parent;
    if (!r) return;
    for (int s = 0; s < L->m->nslots; s++) {
        SlotDef *c = lw_def_cur(L, s);
        if (c != entry_def(r, s)) push_def(L, &r->breaks, &r->nbreaks, &r->cap_breaks, c);
    }
}

void lw_region_else(Lower *L) {
    Region *r = L->region;
    if (!r) return;
    r->then_defs = snapshot(L, &r->nthen);
    /* the else block starts from what the then block did not run */
    for (int s = 0; s < r->nthen; s++) {
        SlotDef *e = entry_def(r, s);
        if (!e && r->then_defs[s]->kind != DEF_EXTERN) e = def_new(L, DEF_EXTERN, s);
        if (e) def_set(L, s, e);
    }
}

void lw_region_end(Lower *L) {
    Region *r = L->region;
    if (!r) return;
    for (int i = 0; i < r->nheads; i++) {
        SlotDef *j = r->heads[i];
        SlotDef *end = lw_def_cur(L, j->slot);
        /* a home the body never wrote keeps its entry content all along */
        add_alt(L, j, end == j ? j->alts[0] : end);
    }
    L->region = r->parent;
    for (int s = 0; s < L->m->nslots; s++) {
        SlotDef *e = entry_def(r, s), *c = lw_def_cur(L, s);
        SlotDef *t = r->then_defs ? (s < r->nthen ? r->then_defs[s] : e) : NULL;
        if (c == e && (!t || t == e)) continue;
        if (!e && c->kind == DEF_EXTERN && (!t || t->kind == DEF_EXTERN)) continue;
        SlotDef *j = join_new(L, s, r->then_defs || !r->loop ? JOIN_MERGE : JOIN_EXIT, r);
        if (!j) return;
        /* alternatives in the same order for every slot of the region, so
         * that two joins of one place compare path by path */
        if (r->then_defs) {
            add_alt(L, j, t);
            add_alt(L, j, c);
        } else {
            add_alt(L, j, e);
            add_alt(L, j, c);
            for (int b = 0; b < r->nbreaks; b++)
                if (r->breaks[b]->slot == s) add_alt(L, j, r->breaks[b]);
        }
        def_set(L, s, j);
    }
}

/* ---- reachability: does a definition or node depend on a target? ---------------------- */

/* One question: does anything reach target t (or, when t is a join, any
 * definition it may hold)? Answers are memoised per question. */
typedef struct Query {
    const SlotDef *t;
    const SlotDef **set; /* t and, for joins, its alternatives (transitively) */
    int nset, capset;
    PtrMap memo; /* item -> (void *)1 in progress, 2 no, 3 yes */
} Query;

enum { R_BUSY = 1, R_NO = 2, R_YES = 3 };

static bool in_region(const Region *inner, const Region *outer) {
    for (const Region *r = inner; r; r = r->parent)
        if (r == outer) return true;
    return false;
}

static bool in_set(const Query *q, const SlotDef *d) {
    for (int i = 0; i < q->nset; i++)
        if (q->set[i] == d) return true;
    return false;
}

static void set_add(Lower *L, Query *q, const SlotDef *d) {
    if (!d || in_set(q, d)) return;
    if (!arena_grow(L->a, &q->set, &q->capset, (size_t)q->nset + 1, 8)) {
        L->oom = true;
        return;
    }
    q->set[q->nset++] = d;
    if (d->kind == DEF_JOIN)
        for (int i = 0; i < d->nalts; i++)
            set_add(L, q, d->alts[i]);
}

static void query_init(Lower *L, Query *q, const SlotDef *t) {
    memset(q, 0, sizeof *q);
    q->t = t;
    set_add(L, q, t);
}

static bool node_in_set(const Query *q, const Node *n) {
    for (int i = 0; i < q->nset; i++)
        if (q->set[i]->kind == DEF_WRITE && q->set[i]->node == n) return true;
    return false;
}

/* Two joins of one place, alternative by alternative. */
static bool paired(const SlotDef *a, const SlotDef *t) {
    return a->kind == DEF_JOIN && t->kind == DEF_JOIN && a != t && a->of == t->of &&
           a->jk == t->jk && a->nalts == t->nalts;
}

static int reach(Lower *L, Query *q, const GraphRec *gr, const void *item, bool is_def);

/* Every target was computed inside one iteration of loop `of` (none is the
 * loop's head): values carried into that iteration are older than all. */
static bool all_inside(const Query *q, const Region *of) {
    for (int i = 0; i < q->nset; i++) {
        const SlotDef *d = q->set[i];
        if (!in_region(d->region, of) || (d->kind == DEF_JOIN && d->jk == JOIN_HEAD && d->of == of))
            return false;
    }
    return q->nset > 0;
}

/* A join reached during a question about t: compared path by path with a
 * join of the same place; a loop's head seen from a target computed inside
 * that loop's iteration holds only earlier values (the walk stops). */
static int join_rule(Lower *L, Query *q, const SlotDef *j, bool *descend) {
    *descend = false;
    if (paired(j, q->t)) {
        for (int i = 0; i < j->nalts; i++) {
            Query sub;
            query_init(L, &sub, q->t->alts[i]);
            if (reach(L, &sub, NULL, j->alts[i], true) == R_YES) return R_YES;
        }
        return R_NO;
    }
    if (j->jk == JOIN_HEAD && all_inside(q, j->of)) return R_NO;
    *descend = true;
    return 0;
}

typedef struct {
    const void *item;
    const GraphRec *gr;
    bool is_def;
    int next; /* next child to visit */
    bool tainted;
} Frame;

/* The children of a frame: a node's operands (an input: the definition it
 * read), a write's node, a join's alternatives. */
static int nchildren(const Frame *f) {
    if (f->is_def) {
        const SlotDef *d = f->item;
        return d->kind == DEF_WRITE ? 1 : d->kind == DEF_JOIN ? d->nalts : 0;
    }
    const Node *n = f->item;
    if (n->op == OP_STOP_GRAD) return 0; /* no derivative flows back through it */
    return n->op == OP_INPUT ? 1 : n->nsrc;
}

static Frame child(const Frame *f, int i) {
    Frame c = {0};
    if (f->is_def) {
        const SlotDef *d = f->item;
        if (d->kind == DEF_WRITE) {
            c.item = d->node;
            c.gr = d->gr;
        } else {
            c.item = d->alts[i];
            c.is_def = true;
        }
        return c;
    }
    const Node *n = f->item;
    if (n->op == OP_INPUT) {
        int k = n->attr.input.index;
        c.is_def = true;
        c.item = f->gr && k >= 0 && k < f->gr->nin ? f->gr->in_defs[k] : NULL;
        return c;
    }
    c.item = n->src[i];
    c.gr = f->gr;
    return c;
}

/* Evaluated on entering an item: R_YES/R_NO when decided there, 0 to visit
 * its children. */
static int enter(Lower *L, Query *q, const Frame *f) {
    if (!f->item) return R_NO;
    if (f->is_def) {
        const SlotDef *d = f->item;
        if (in_set(q, d)) return R_YES;
        if (d->kind == DEF_EXTERN) return R_NO;
        if (d->kind == DEF_JOIN) {
            bool descend;
            int r = join_rule(L, q, d, &descend);
            if (!descend) return r;
        }
        return 0;
    }
    return node_in_set(q, f->item) ? R_YES : 0;
}

/* Iterative depth-first search (graphs are deep). A "no" that relied on an
 * item still in progress (a loop's cycle) is not memoised except at the
 * root, whose answer is exact. */
static int reach(Lower *L, Query *q, const GraphRec *gr, const void *item, bool is_def) {
    intptr_t known = (intptr_t)map_get(&q->memo, item);
    if (known == R_NO || known == R_YES) return (int)known;
    Frame *st = NULL;
    int n = 0, cap = 0;
    int result = R_NO;
    Frame root = {item, gr, is_def, 0, false};
    int r0 = enter(L, q, &root);
    if (r0) {
        map_put(L, &q->memo, item, (void *)(intptr_t)r0);
        return r0;
    }
#define PUSH(fr)                                                                                   \
    do {                                                                                           \
        if (!arena_grow(L->a, &st, &cap, (size_t)n + 1, 64)) {                                     \
            L->oom = true;                                                                         \
            return R_YES;                                                                          \
        }                                                                                          \
        st[n++] = (fr);                                                                            \
    } while (0)
    PUSH(root);
    map_put(L, &q->memo, item, (void *)(intptr_t)R_BUSY);
    while (n > 0) {
        Frame *f = &st[n - 1];
        if (f->next < nchildren(f)) {
            Frame c = child(f, f->next++);
            if (--L->reach_budget < 0) {
                result = R_YES; /* too large to decide: answered as a dependence, so an error */
                break;
            }
            intptr_t m = c.item ? (intptr_t)map_get(&q->memo, c.item) : R_NO;
            if (m == R_YES) goto yes;
            if (m == R_NO) continue;
            if (m == R_BUSY) {
                f->tainted = true;
                continue;
            }
            int r = enter(L, q, &c);
            if (r == R_YES) goto yes;
            if (r == R_NO) {
                map_put(L, &q->memo, c.item, (void *)(intptr_t)R_NO);
                continue;
            }
            map_put(L, &q->memo, c.item, (void *)(intptr_t)R_BUSY);
            PUSH(c);
            continue;
        }
        /* all children answered no */
        bool t = f->tainted;
        map_put(L, &q->memo, f->item, t && n > 1 ? NULL : (void *)(intptr_t)R_NO);
        n--;
        if (n > 0 && t) st[n - 1].tainted = true;
        continue;
    yes:
        /* everything on the stack reaches the target */
        for (int i = 0; i < n; i++)
            map_put(L, &q->memo, st[i].item, (void *)(intptr_t)R_YES);
        result = R_YES;
        n = 0;
    }
#undef PUSH
    if (result == R_YES) map_put(L, &q->memo, item, (void *)(intptr_t)R_YES);
    return result;
}

/* ---- the targets of one grad ---------------------------------------------------------- */

typedef struct {
    int n;
    const SlotDef **defs; /* the definition each target input reads */
    Node **nodes;         /* the target's input node in the current graph */
    Query *q;             /* one question per join target, one for all the others */
    int nq;
} Targets;

static bool targets_init(Lower *L, Targets *T, Node *const *wrt, int nwrt) {
    memset(T, 0, sizeof *T);
    GraphRec *gr = L->gc->rec;
    T->defs = arena_alloc(L->a, sizeof(SlotDef *) * (size_t)(nwrt ? nwrt : 1));
    T->nodes = arena_alloc(L->a, sizeof(Node *) * (size_t)(nwrt ? nwrt : 1));
    T->q = arena_alloc(L->a, sizeof(Query) * (size_t)(nwrt + 1));
    if (!T->defs || !T->nodes || !T->q) {
        L->oom = true;
        return false;
    }
    Query *all = &T->q[0];
    memset(all, 0, sizeof *all);
    T->nq = 1;
    for (int i = 0; i < nwrt; i++) {
        Node *w = wrt[i];
        if (w->op != OP_INPUT) continue;
        int k = w->attr.input.index;
        if (k < 0 || k >= gr->nin) continue;
        const SlotDef *d = gr->in_defs[k];
        if (!d) continue;
        T->defs[T->n] = d;
        T->nodes[T->n] = w;
        T->n++;
        if (d->kind == DEF_JOIN) {
            query_init(L, &T->q[T->nq++], d);
        } else {
            if (!all->t) all->t = d;
            set_add(L, all, d);
        }
    }
    return true;
}

static bool reaches_any(Lower *L, Targets *T, const GraphRec *gr, const void *item, bool is_def) {
    for (int i = 0; i < T->nq; i++)
        if (T->q[i].t && reach(L, &T->q[i], gr, item, is_def) == R_YES) return true;
    return false;
}

static Node *target_node(const Targets *T, const SlotDef *d, const Node *n) {
    for (int i = 0; i < T->n; i++)
        if (T->defs[i] == d || (T->defs[i]->kind == DEF_WRITE && n && T->defs[i]->node == n))
            return T->nodes[i];
    return NULL;
}

/* ---- rebuilding the objective --------------------------------------------------------- */

/* The slot whose current definition is (gr, n), or -1. */
static int slot_holding(Lower *L, const GraphRec *gr, const Node *n) {
    for (int s = 0; s < L->m->nslots && s < L->cap_defs; s++) {
        const SlotDef *d = L->defs[s];
        if (d && d->kind == DEF_WRITE && d->gr == gr && d->node == n) return s;
    }
    return -1;
}

static const char *slot_name(Lower *L, int slot) {
    return slot >= 0 && slot < L->m->nslots ? L->m->slots[slot].name : "?";
}

static void cannot_see(Lower *L, SrcLoc loc, int slot) {
    const char *nm = slot_name(L, slot);
    lw_error(L, loc,
             "grad: the objective was computed, before a host statement (print, log, save, a loop "
             "or a branch on a "
             "run-time value), from '%s', which has changed since; the gradient cannot be traced "
             "through it: "
             "compute the objective again after '%s' changes",
             nm, nm);
}

static void through_join(Lower *L, SrcLoc loc, int slot) {
    const char *nm = slot_name(L, slot);
    lw_error(L, loc,
             "grad: the objective uses '%s', which comes through a host loop or a branch on a "
             "run-time value and "
             "may hold a value computed from what is differentiated; the gradient cannot flow "
             "through it: compute "
             "'%s' in the same iteration or branch as the grad, or cut it with stop_grad()",
             nm, nm);
}

typedef struct {
    const GraphRec *gr;
    Node *n;
    int next;
    /* set for an input whose definition is rebuilt: the graph of that write */
    const GraphRec *via_gr;
    Node *via;
} CFrame;

typedef struct {
    Lower *L;
    Targets *T;
    PtrMap done; /* old node -> node of the current graph */
    SrcLoc loc;
    bool failed;
} Clone;

/* What an item becomes without visiting its operands; NULL when they must be
 * rebuilt (then *via may name the write to rebuild instead). */
static Node *clone_leaf(Clone *C, const GraphRec *gr, Node *n, const GraphRec **via_gr,
                        Node **via) {
    Lower *L = C->L;
    const GraphRec *cur = L->gc->rec;
    *via = NULL;
    const SlotDef *d = NULL;
    int slot = -1;
    if (n->op == OP_INPUT) {
        int k = n->attr.input.index;
        if (k >= 0 && k < gr->nin) {
            d = gr->in_defs[k];
            slot = gr->in_slots[k];
        }
    }
    Node *t = target_node(C->T, d, n->op == OP_INPUT ? NULL : n);
    if (gr == cur && t == n) return n;
    if (t) return t;
    bool yes = reaches_any(L, C->T, gr, n, false);
    if (!yes) {
        if (gr == cur) return n;
        if (n->op == OP_INPUT) {
            if (d && lw_def_cur(L, slot) == d) return lw_slot_node(L, slot, n->loc);
            C->failed = true;
            cannot_see(L, C->loc, slot);
            return NULL;
        }
        int s = slot_holding(L, gr, n);
        if (s >= 0) return lw_slot_node(L, s, n->loc);
        return NULL; /* rebuild its operands */
    }
    if (n->op == OP_INPUT) {
        if (d && d->kind == DEF_WRITE) {
            *via_gr = d->gr;
            *via = d->node;
            return NULL;
        }
        C->failed = true;
        through_join(L, C->loc, slot);
        return NULL;
    }
    return NULL;
}

static Node *clone_node(Clone *C, const GraphRec *gr0, Node *n0) {
    Lower *L = C->L;
    Graph *g = L->gc->g;
    const GraphRec *cur = L->gc->rec;
    CFrame *st = NULL;
    int n = 0, cap = 0;
    CFrame root = {gr0, n0, 0, NULL, NULL};
#define CPUSH(fr)                                                                                  \
    do {                                                                                           \
        if (!arena_grow(L->a, &st, &cap, (size_t)n + 1, 64)) {                                     \
            L->oom = true;                                                                         \
            return NULL;                                                                           \
        }                                                                                          \
        st[n++] = (fr);                                                                            \
    } while (0)
    CPUSH(root);
    while (n > 0 && !C->failed && !L->oom) {
        CFrame *f = &st[n - 1];
        if (map_get(&C->done, f->n)) {
            n--;
            continue;
        }
        if (f->next == 0) {
            const GraphRec *vg = NULL;
            Node *via = NULL;
            Node *leaf = clone_leaf(C, f->gr, f->n, &vg, &via);
            if (C->failed) break;
            if (leaf) {
                map_put(L, &C->done, f->n, leaf);
                n--;
                continue;
            }
            f->via_gr = vg;
            f->via = via;
        }
        if (f->via) {
            /* an input rebuilt from the write that defined it */
            Node *r = map_get(&C->done, f->via);
            if (r) {
                map_put(L, &C->done, f->n, r);
                n--;
                continue;
            }
            f->next = 1;
            CFrame c = {f->via_gr, f->via, 0, NULL, NULL};
            CPUSH(c);
            continue;
        }
        if (f->next < f->n->nsrc) {
            Node *s = f->n->src[f->next++];
            if (!map_get(&C->done, s)) {
                CFrame c = {f->gr, s, 0, NULL, NULL};
                CPUSH(c);
            }
            continue;
        }
        /* operands done: reuse the node when nothing changed */
        Node *srcs[16];
        Node **sp =
            f->n->nsrc <= 16 ? srcs : arena_alloc(L->a, sizeof(Node *) * (size_t)f->n->nsrc);
        if (!sp) {
            L->oom = true;
            break;
        }
        bool same = f->gr == cur;
        for (int i = 0; i < f->n->nsrc; i++) {
            sp[i] = map_get(&C->done, f->n->src[i]);
            if (!sp[i]) {
                C->failed = true;
                break;
            }
            same = same && sp[i] == f->n->src[i];
        }
        if (C->failed) break;
        Node *r = f->n;
        if (!same) {
            r = ir_node_new(g, f->n->op, f->n->dtype, f->n->shape, sp, f->n->nsrc, &f->n->attr,
                            f->n->loc);
            if (!r) {
                C->failed = true;
                break;
            }
            r->flags = f->n->flags;
            r->name = f->n->name;
        }
        map_put(L, &C->done, f->n, r);
        n--;
    }
#undef CPUSH
    if (C->failed || L->oom) return NULL;
    return map_get(&C->done, n0);
}

/* ---- pending checks ------------------------------------------------------------------- */

typedef struct PendingGrad {
    const SlotDef *leaf;
    Targets *T;
    SrcLoc loc;
} PendingGrad;

static void pend(Lower *L, const SlotDef *leaf, Targets *T, SrcLoc loc) {
    if (!arena_grow(L->a, &L->pend, &L->cap_pend, (size_t)L->npend + 1, 16)) {
        L->oom = true;
        return;
    }
    L->pend[L->npend++] = (PendingGrad){leaf, T, loc};
}

/* The definitions the rebuilt objective still reads that may depend on a
 * target through a join: decided when every join is complete. */
static void pend_leaves(Lower *L, Targets *T, Node *y, SrcLoc loc) {
    const GraphRec *gr = L->gc->rec;
    PtrMap seen = {0};
    int n = 0, cap = 64;
    Node **st = arena_alloc(L->a, sizeof(Node *) * (size_t)cap);
    if (!st) {
        L->oom = true;
        return;
    }
    st[n++] = y;
    map_put(L, &seen, y, y);
    while (n > 0) {
        Node *m = st[--n];
        if (m->op == OP_INPUT) {
            int k = m->attr.input.index;
            const SlotDef *d = k >= 0 && k < gr->nin ? gr->in_defs[k] : NULL;
            if (d && d->kind != DEF_EXTERN && !target_node(T, d, NULL)) pend(L, d, T, loc);
            continue;
        }
        for (int i = 0; i < m->nsrc; i++) {
            if (map_get(&seen, m->src[i])) continue;
            map_put(L, &seen, m->src[i], m->src[i]);
            if (!arena_grow(L->a, &st, &cap, (size_t)n + 1, 64)) {
                L->oom = true;
                return;
            }
            st[n++] = m->src[i];
        }
    }
}

Node *lw_see_through(Lower *L, Node *y, Node *const *wrt, int nwrt, SrcLoc loc) {
    if (!L->gc || !L->gc->rec || !y) return y;
    Targets *T = arena_alloc(L->a, sizeof *T);
    if (!T || !targets_init(L, T, wrt, nwrt)) {
        L->oom = true;
        return NULL;
    }
    if (T->n == 0)
        return y; /* targets computed in this graph: nothing earlier can depend on them */
    Clone C = {L, T, {0}, loc, false};
    Node *r = clone_node(&C, L->gc->rec, y);
    if (!r) {
        if (!C.failed && !L->oom)
            lw_error(L, loc, "grad: internal error while tracing through host statements");
        return NULL;
    }
    pend_leaves(L, T, r, loc);
    return r;
}

void lw_defs_check_pending(Lower *L) {
    for (int i = 0; i < L->npend; i++) {
        PendingGrad *p = &L->pend[i];
        if (!p->leaf) continue;
        bool dep = false;
        /* fresh questions: the joins are complete now */
        for (int k = 0; k < p->T->n && !dep; k++) {
            Query q;
            query_init(L, &q, p->T->defs[k]);
            dep = reach(L, &q, NULL, p->leaf, true) == R_YES;
        }
        if (!dep) continue;
        through_join(L, p->loc, p->leaf->slot);
        /* one report per grad */
        for (int j = i + 1; j < L->npend; j++)
            if (L->pend[j].T == p->T) L->pend[j].leaf = NULL;
    }
}
