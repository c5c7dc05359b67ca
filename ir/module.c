/* Module: slots, graphs and the structured host program (ir/module.h).
 *
 * Constructors append into arena-backed growable arrays; the printer walks
 * the host program depth-first and prints each graph where it is run, so a
 * dump reads top to bottom like the program. Printing is stable (no
 * addresses), which lets tests compare dumps; slot values are never printed
 * (a CONFIG slot's value may change after compilation). The module owns the
 * RtTensors of its DATA and CONFIG slots; everything else belongs to the
 * arena. */
#include "module.h"

#include <string.h>

Module *ir_module_new(Arena *a, DiagList *d) {
    Module *m = arena_alloc(a, sizeof *m);
    if (!m) return NULL;
    m->arena = a;
    m->diags = d;
    m->seed_slot = ir_module_add_slot(m, "seed", SLOT_SEED, DT_I64, rt_shape_scalar());
    if (m->seed_slot < 0) return NULL;
    return m;
}

void ir_module_free(Module *m) {
    if (!m) return;
    for (int i = 0; i < m->nslots; i++) {
        rt_tensor_free(m->slots[i].value);
        m->slots[i].value = NULL;
    }
}

int ir_module_add_slot(Module *m, const char *name, SlotKind kind, DType dt, Shape s) {
    if (!m) return -1;
    if (!arena_grow(m->arena, &m->slots, &m->cap_slots, (size_t)m->nslots + 1, 32)) return -1;
    Slot *sl = &m->slots[m->nslots];
    memset(sl, 0, sizeof *sl);
    sl->name = arena_strdup(m->arena, name ? name : "");
    sl->kind = kind;
    sl->dtype = dt;
    sl->shape = s;
    if (kind == SLOT_PARAM) {
        if (!arena_resize(m->arena, &m->param_slots, (size_t)m->nparams, (size_t)m->nparams + 1))
            return -1;
        m->param_slots[m->nparams++] = m->nslots;
    }
    return m->nslots++;
}

HostStmt *ir_host_append(Module *m, HostBlock *b, HostOp op, SrcLoc loc) {
    if (!m || !b) return NULL;
    if (!arena_grow(m->arena, &b->items, &b->cap, (size_t)b->n + 1, 8)) return NULL;
    HostStmt *s = arena_alloc(m->arena, sizeof *s);
    if (!s) return NULL;
    s->op = op;
    s->loc = loc;
    b->items[b->n++] = s;
    return s;
}

/* ---- printing ---------------------------------------------------------------------- */

static const char *slot_kind_name(SlotKind k) {
    switch (k) {
    case SLOT_VAR:
        return "var";
    case SLOT_PARAM:
        return "param";
    case SLOT_STATE:
        return "state";
    case SLOT_DATA:
        return "data";
    case SLOT_SEED:
        return "seed";
    case SLOT_STEP:
        return "step";
    case SLOT_CONFIG:
        return "config";
    }
    return "?";
}

static void indent(FILE *out, int depth) {
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

static void print_type(FILE *out, DType dt, const Shape *s) {
    char buf[160];
    fprintf(out, "%s%s", rt_dtype_name(dt), rt_shape_str(s, buf, sizeof buf));
}

static void print_call(const Module *m, const GraphCall *c, FILE *out, int depth) {
    const Graph *g = c->graph;
    indent(out, depth);
    fprintf(out, "run %s (", g && g->name ? g->name : "?");
    for (int i = 0; g && i < g->ninputs; i++)
        fprintf(out, "%s$%d", i ? ", " : "", c->in_slots[i]);
    fputs(") -> (", out);
    for (int j = 0; g && j < g->noutputs; j++)
        fprintf(out, "%s$%d", j ? ", " : "", c->out_slots[j]);
    fputs(") {\n", out);
    if (g) {
        /* ir_print has no indentation parameter; graphs print flush left
         * between the braces, which keeps them diffable against ir_print. */
        ir_print(g, out);
    }
    indent(out, depth);
    fputs("}\n", out);
    (void)m;
}

static void print_block(const Module *m, const HostBlock *b, FILE *out, int depth);

static void print_stmt(const Module *m, const HostStmt *s, FILE *out, int depth) {
    switch (s->op) {
    case HS_RUN:
        print_call(m, &s->u.run, out, depth);
        break;
    case HS_FOR:
        indent(out, depth);
        fprintf(out, "for $%d in ", s->u.loop.var_slot);
        if (s->u.loop.lo_slot >= 0)
            fprintf(out, "$%d", s->u.loop.lo_slot);
        else
            fprintf(out, "%lld", (long long)s->u.loop.lo);
        fputs("..", out);
        if (s->u.loop.hi_slot >= 0)
            fprintf(out, "$%d", s->u.loop.hi_slot);
        else
            fprintf(out, "%lld", (long long)s->u.loop.hi);
        fputs(" {\n", out);
        print_block(m, &s->u.loop.body, out, depth + 1);
        indent(out, depth);
        fputs("}\n", out);
        break;
    case HS_WHILE:
        indent(out, depth);
        fputs("while {\n", out);
        print_call(m, &s->u.whl.cond, out, depth + 1);
        indent(out, depth + 1);
        fprintf(out, "test $%d\n", s->u.whl.cond_slot);
        print_block(m, &s->u.whl.body, out, depth + 1);
        indent(out, depth);
        fputs("}\n", out);
        break;
    case HS_IF:
        indent(out, depth);
        fprintf(out, "if $%d {\n", s->u.cond.cond_slot);
        print_block(m, &s->u.cond.then_b, out, depth + 1);
        indent(out, depth);
        fputs("} else {\n", out);
        print_block(m, &s->u.cond.else_b, out, depth + 1);
        indent(out, depth);
        fputs("}\n", out);
        break;
    case HS_BREAK:
        indent(out, depth);
        fputs("break\n", out);
        break;
    case HS_LOG:
        indent(out, depth);
        fputs("log", out);
        for (int i = 0; i < s->u.log.n; i++)
            fprintf(out, "%s %s = $%d", i ? "," : "", s->u.log.names[i], s->u.log.slots[i]);
        fputc('\n', out);
        break;
    case HS_PRINT:
        indent(out, depth);
        fputs("print", out);
        for (int i = 0; i < s->u.print.n; i++) {
            if (s->u.print.texts && s->u.print.texts[i])
                fprintf(out, "%s \"%s\"", i ? "," : "", s->u.print.texts[i]);
            else
                fprintf(out, "%s $%d", i ? "," : "", s->u.print.slots[i]);
        }
        fputc('\n', out);
        break;
    case HS_SAVE:
        indent(out, depth);
        fprintf(out, "save \"%s\" $%d\n", s->u.save.path, s->u.save.slot);
        break;
    case HS_TRAIN: {
        const TrainSpec *t = s->u.train;
        indent(out, depth);
        fprintf(out, "train %s rows=%lld batch=%lld steps=%lld shuffle=%s t=$%d loss=$%d {\n",
                t->name, (long long)t->rows, (long long)t->batch, (long long)t->steps,
                t->shuffle ? "true" : "false", t->t_slot, t->loss_slot);
        for (int i = 0; i < t->nfields; i++) {
            indent(out, depth + 1);
            fprintf(out, "field %s data=$%d batch=$%d\n", t->field_names[i], t->data_slots[i],
                    t->batch_slots[i]);
        }
        indent(out, depth + 1);
        fputs("step:\n", out);
        print_call(m, &t->step, out, depth + 1);
        for (int i = 0; i < t->nevals; i++) {
            indent(out, depth + 1);
            fprintf(out, "every %lld {\n", (long long)t->evals[i].every);
            print_block(m, &t->evals[i].body, out, depth + 2);
            indent(out, depth + 1);
            fputs("}\n", out);
        }
        indent(out, depth);
        fputs("}\n", out);
        break;
    }
    }
}

static void print_block(const Module *m, const HostBlock *b, FILE *out, int depth) {
    for (int i = 0; i < b->n; i++)
        print_stmt(m, b->items[i], out, depth);
}

void ir_module_print(const Module *m, FILE *out) {
    if (!m) return;
    fputs("slots:\n", out);
    for (int i = 0; i < m->nslots; i++) {
        const Slot *s = &m->slots[i];
        fprintf(out, "  $%d %s %s ", i, slot_kind_name(s->kind), s->name);
        print_type(out, s->dtype, &s->shape);
        if (s->kind == SLOT_DATA && !s->value) fputs(" (not loaded)", out);
        fputc('\n', out);
    }
    fputs("init:\n", out);
    print_block(m, &m->init, out, 1);
    fputs("main:\n", out);
    print_block(m, &m->main, out, 1);
}

/* ---- verification ------------------------------------------------------------------- */

static bool verify_call(const Module *m, const GraphCall *c, const char *after) {
    const Graph *g = c->graph;
    if (!g) return true;
    bool ok = ir_verify(g, after);
    for (int i = 0; i < g->ninputs; i++) {
        int s = c->in_slots[i];
        if (s < 0 || s >= m->nslots) {
            diag_error(m->diags, g->inputs[i]->loc,
                       "internal error: %s: graph %s input %d reads slot %d",
                       after ? after : "lower", g->name, i, s);
            ok = false;
        } else if (m->slots[s].dtype != g->inputs[i]->dtype ||
                   !rt_shape_eq(&m->slots[s].shape, &g->inputs[i]->shape)) {
            diag_error(m->diags, g->inputs[i]->loc,
                       "internal error: %s: graph %s input %d does not match slot %s",
                       after ? after : "lower", g->name, i, m->slots[s].name);
            ok = false;
        }
    }
    for (int j = 0; j < g->noutputs; j++) {
        int s = c->out_slots[j];
        if (s < 0 || s >= m->nslots) {
            diag_error(m->diags, g->outputs[j]->loc,
                       "internal error: %s: graph %s output %d writes slot %d",
                       after ? after : "lower", g->name, j, s);
            ok = false;
        } else if (m->slots[s].dtype != g->outputs[j]->dtype ||
                   !rt_shape_eq(&m->slots[s].shape, &g->outputs[j]->shape)) {
            diag_error(m->diags, g->outputs[j]->loc,
                       "internal error: %s: graph %s output %d does not match slot %s",
                       after ? after : "lower", g->name, j, m->slots[s].name);
            ok = false;
        }
    }
    return ok;
}

typedef struct {
    const Module *m;
    const char *after;
    bool ok;
} Verify;

/* Every call is checked, so that one run reports all that is wrong. */
static bool verify_visit(void *ctx, const GraphCall *c) {
    Verify *v = ctx;
    v->ok = verify_call(v->m, c, v->after) && v->ok;
    return true;
}

bool ir_module_verify(const Module *m, const char *after_pass) {
    if (!m) return false;
    Verify v = {m, after_pass, true};
    ir_module_each_call(m, verify_visit, &v);
    return v.ok;
}
