/* The program image (module_image.h): write a Module, read it back checked.
 *
 * Layout: a header (magic, version, the length of the rest, its CRC-32);
 * source paths; slots (values aligned for use in place); the module's
 * tables; graphs (signature + backend blob); the init and main blocks,
 * statement by statement. The writer patches the length and CRC in last;
 * the reader checks both before it reads anything else. */
#include "module_image.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "../runtime/checked.h"
#include "../runtime/kprog.h"

#define MAGIC "DFLOWIMG"
#define MAX_ITEMS (1 << 24)
#define LEN_AT 12 /* u64: bytes after the header */
#define CRC_AT 20 /* u32: their CRC-32 */

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct {
    RtBuf *b;
    const Graph **graphs; /* ir_module_graphs: a graph's index is its id */
    int ngraphs;
} W;

static int graph_id(const Graph **gs, int n, const Graph *g) {
    for (int i = 0; i < n; i++)
        if (gs[i] == g) return i;
    return -1;
}

void ir_image_put_loc(RtBuf *b, SrcLoc l) {
    rt_buf_u32(b, l.file);
    rt_buf_u32(b, l.line);
    rt_buf_u32(b, l.col);
    rt_buf_u32(b, l.len);
}

static void put_ints(RtBuf *b, const int *v, int n) {
    for (int i = 0; i < n; i++)
        rt_buf_u32(b, (uint32_t)v[i]);
}

static void put_call(W *w, const GraphCall *c) {
    const Graph *g = c->graph;
    rt_buf_u32(w->b, (uint32_t)graph_id(w->graphs, w->ngraphs, g));
    if (!g) return;
    put_ints(w->b, c->in_slots, g->ninputs);
    put_ints(w->b, c->out_slots, g->noutputs);
}

static void put_block(W *w, const HostBlock *b);

static void put_train(W *w, const TrainSpec *t) {
    RtBuf *b = w->b;
    rt_buf_str(b, t->name);
    rt_buf_i64(b, t->nfields);
    for (int i = 0; i < t->nfields; i++)
        rt_buf_str(b, t->field_names[i]);
    put_ints(b, t->data_slots, t->nfields);
    put_ints(b, t->batch_slots, t->nfields);
    rt_buf_i64(b, t->rows);
    rt_buf_i64(b, t->batch);
    rt_buf_i64(b, t->steps);
    rt_buf_u8(b, t->shuffle);
    rt_buf_u32(b, (uint32_t)t->t_slot);
    put_call(w, &t->step);
    rt_buf_u32(b, (uint32_t)t->loss_slot);
    rt_buf_i64(b, t->nevals);
    for (int i = 0; i < t->nevals; i++) {
        rt_buf_i64(b, t->evals[i].every);
        put_block(w, &t->evals[i].body);
    }
}

static void put_stmt(W *w, const HostStmt *st) {
    RtBuf *b = w->b;
    rt_buf_u8(b, (uint8_t)st->op);
    ir_image_put_loc(b, st->loc);
    switch (st->op) {
    case HS_RUN:
        put_call(w, &st->u.run);
        break;
    case HS_FOR:
        rt_buf_u32(b, (uint32_t)st->u.loop.var_slot);
        rt_buf_i64(b, st->u.loop.lo);
        rt_buf_i64(b, st->u.loop.hi);
        rt_buf_u32(b, (uint32_t)st->u.loop.lo_slot);
        rt_buf_u32(b, (uint32_t)st->u.loop.hi_slot);
        put_block(w, &st->u.loop.body);
        break;
    case HS_WHILE:
        put_call(w, &st->u.whl.cond);
        rt_buf_u32(b, (uint32_t)st->u.whl.cond_slot);
        put_block(w, &st->u.whl.body);
        break;
    case HS_IF:
        rt_buf_u32(b, (uint32_t)st->u.cond.cond_slot);
        put_block(w, &st->u.cond.then_b);
        put_block(w, &st->u.cond.else_b);
        break;
    case HS_BREAK:
        break;
    case HS_LOG:
        rt_buf_i64(b, st->u.log.n);
        for (int i = 0; i < st->u.log.n; i++)
            rt_buf_str(b, st->u.log.names[i]);
        put_ints(b, st->u.log.slots, st->u.log.n);
        break;
    case HS_PRINT:
        rt_buf_i64(b, st->u.print.n);
        put_ints(b, st->u.print.slots, st->u.print.n);
        rt_buf_u8(b, st->u.print.texts != NULL);
        for (int i = 0; st->u.print.texts && i < st->u.print.n; i++)
            rt_buf_str(b, st->u.print.texts[i]);
        break;
    case HS_SAVE:
        rt_buf_str(b, st->u.save.path);
        rt_buf_u32(b, (uint32_t)st->u.save.slot);
        break;
    case HS_TRAIN:
        put_train(w, st->u.train);
        break;
    }
}

static void put_block(W *w, const HostBlock *b) {
    rt_buf_i64(w->b, b->n);
    for (int i = 0; i < b->n; i++)
        put_stmt(w, b->items[i]);
}

static void put_value(RtBuf *b, const RtTensor *t) {
    rt_buf_u8(b, t != NULL);
    if (!t) return;
    rt_buf_align(b, RT_IMAGE_ALIGN);
    rt_buf_bytes(b, t->data, rt_tensor_bytes(t));
}

static void put_slots(RtBuf *b, const Module *m) {
    rt_buf_i64(b, m->nslots);
    for (int s = 0; s < m->nslots; s++) {
        const Slot *sl = &m->slots[s];
        rt_buf_str(b, sl->name);
        rt_buf_u8(b, (uint8_t)sl->kind);
        rt_buf_u8(b, (uint8_t)sl->dtype);
        rt_buf_shape(b, &sl->shape);
        put_value(b, sl->kind == SLOT_DATA || sl->kind == SLOT_CONFIG ? sl->value : NULL);
    }
    rt_buf_u32(b, (uint32_t)m->seed_slot);
    rt_buf_i64(b, m->nparams);
    put_ints(b, m->param_slots, m->nparams);
    rt_buf_i64(b, m->nconfigs);
    for (int i = 0; i < m->nconfigs; i++) {
        const ModuleConfig *c = &m->configs[i];
        rt_buf_str(b, c->name);
        rt_buf_u8(b, (uint8_t)c->type);
        rt_buf_u32(b, (uint32_t)c->slot);
        rt_buf_u8(b, c->runtime);
        rt_buf_str(b, c->value);
        rt_buf_str(b, c->fixed_why);
    }
}

static void put_graph_sig(RtBuf *b, const Graph *g) {
    rt_buf_str(b, g->name);
    rt_buf_i64(b, g->ninputs);
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        rt_buf_u8(b, (uint8_t)n->dtype);
        rt_buf_shape(b, &n->shape);
        rt_buf_str(b, n->name);
        ir_image_put_loc(b, n->loc);
    }
    rt_buf_i64(b, g->noutputs);
    for (int j = 0; j < g->noutputs; j++) {
        const Node *n = g->outputs[j];
        rt_buf_u8(b, (uint8_t)n->dtype);
        rt_buf_shape(b, &n->shape);
        ir_image_put_loc(b, n->loc);
    }
}

uint32_t ir_image_crc(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib counts in uInt */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

uint32_t ir_image_header_crc(const uint8_t *p, size_t n) {
    if (n < IR_IMAGE_HEADER) return 0;
    const uint8_t *c = p + CRC_AT;
    return (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
}

static void patch_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

bool ir_image_write_sums(const Module *m, const SourceSet *src,
                         bool (*write_graph)(void *ctx, const Graph *g, int id, RtBuf *b),
                         void *ctx, RtBuf *b, uint32_t *graph_sums) {
    W w = {.b = b};
    w.ngraphs = ir_module_graphs(m, m->arena, &w.graphs, NULL);
    if (w.ngraphs < 0) return false;
    size_t start = b->n;
    rt_buf_bytes(b, MAGIC, 8);
    rt_buf_u32(b, IR_IMAGE_VERSION);
    rt_buf_i64(b, 0); /* LEN_AT, patched below */
    rt_buf_u32(b, 0); /* CRC_AT */
    int nfiles = src ? src->nfiles : 0;
    rt_buf_i64(b, nfiles);
    for (int i = 1; i < nfiles; i++)
        rt_buf_str(b, src->files[i].path);
    put_slots(b, m);
    rt_buf_i64(b, w.ngraphs);
    for (int i = 0; i < w.ngraphs; i++) {
        size_t at = b->n;
        put_graph_sig(b, w.graphs[i]);
        if (!write_graph(ctx, w.graphs[i], i, b)) return false;
        if (graph_sums) graph_sums[i] = b->oom ? 0 : ir_image_crc(b->data + at, b->n - at);
    }
    put_block(&w, &m->init);
    put_block(&w, &m->main);
    if (b->oom) return false;
    uint8_t *h = b->data + start;
    size_t body = b->n - start - IR_IMAGE_HEADER;
    patch_le(h + LEN_AT, body, 8);
    patch_le(h + CRC_AT, ir_image_crc(h + IR_IMAGE_HEADER, body), 4);
    return true;
}

bool ir_image_write(const Module *m, const SourceSet *src,
                    bool (*write_graph)(void *ctx, const Graph *g, int id, RtBuf *b), void *ctx,
                    RtBuf *b) {
    return ir_image_write_sums(m, src, write_graph, ctx, b, NULL);
}

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct {
    RtReader r;
    Module *m;
    SourceSet *src;
    Graph **graphs;
    int ngraphs;
    int depth;
    const uint32_t *sums; /* per graph, from the linked kernels; NULL: not checked */
    int nsums;
} R;

static void *arena_cb(void *ctx, size_t n) {
    return arena_alloc(ctx, n);
}

static int64_t count(R *rd, size_t min_size) {
    return rt_read_count(&rd->r, MAX_ITEMS, min_size);
}

/* A slot index: in range, or -1 when allowed. */
static int get_slot(R *rd, bool may_be_none) {
    int s = (int)rt_read_u32(&rd->r);
    if (rd->r.bad) return -1;
    if ((s == -1 && may_be_none) || (s >= 0 && s < rd->m->nslots)) return s;
    rt_reader_fail(&rd->r, "a slot index out of range");
    return -1;
}

static int *get_slots(R *rd, int n, bool may_be_none) {
    int *v = rt_reader_alloc(&rd->r, (size_t)n, sizeof *v);
    for (int i = 0; v && i < n; i++)
        v[i] = get_slot(rd, may_be_none);
    return v;
}

SrcLoc ir_image_get_loc(RtReader *r, const SourceSet *src) {
    SrcLoc l;
    l.file = rt_read_u32(r);
    l.line = rt_read_u32(r);
    l.col = rt_read_u32(r);
    l.len = rt_read_u32(r);
    if (!src || (int64_t)l.file >= src->nfiles) l.file = 0; /* a path we do not have */
    return l;
}

static Shape get_shape(R *rd) {
    return rt_read_shape(&rd->r);
}

static DType get_dtype(R *rd) {
    DType dt = (DType)rt_read_u8(&rd->r);
    if (dt >= DT_COUNT) rt_reader_fail(&rd->r, "an unknown dtype");
    return dt;
}

/* A tensor whose data is the image's bytes (aligned by the writer). */
static RtTensor *get_value(R *rd, DType dt, Shape s) {
    if (!rt_read_u8(&rd->r)) return NULL;
    rt_read_align(&rd->r, RT_IMAGE_ALIGN);
    int64_t bytes;
    if (rd->r.bad) return NULL;
    if (!ck_bytes(rt_shape_numel(&s), rt_dtype_size(dt), &bytes)) {
        rt_reader_fail(&rd->r, "a value larger than 2^63 bytes");
        return NULL;
    }
    const uint8_t *p = rt_read_bytes(&rd->r, (size_t)bytes);
    RtTensor *t = p ? arena_alloc(rd->m->arena, sizeof *t) : NULL;
    if (!t) return NULL;
    t->dtype = dt;
    t->shape = s;
    t->data = (void *)p; /* read only in practice: the executor never writes DATA or CONFIG */
    t->view = true;
    return t;
}

static void get_slots_table(R *rd) {
    Module *m = rd->m;
    m->nslots = (int)count(rd, 7);
    m->cap_slots = m->nslots;
    m->slots = rt_reader_alloc(&rd->r, (size_t)m->nslots, sizeof *m->slots);
    for (int s = 0; s < m->nslots && !rd->r.bad; s++) {
        Slot *sl = &m->slots[s];
        sl->name = rt_read_str(&rd->r);
        sl->kind = (SlotKind)rt_read_u8(&rd->r);
        if (sl->kind > SLOT_CONFIG) rt_reader_fail(&rd->r, "an unknown slot kind");
        sl->dtype = get_dtype(rd);
        sl->shape = get_shape(rd);
        sl->value = get_value(rd, sl->dtype, sl->shape);
        if (!sl->name) sl->name = "?";
    }
    m->seed_slot = get_slot(rd, true);
    m->nparams = (int)count(rd, 4);
    m->param_slots = get_slots(rd, m->nparams, false);
    m->nconfigs = (int)count(rd, 11);
    m->configs = rt_reader_alloc(&rd->r, (size_t)m->nconfigs, sizeof *m->configs);
    for (int i = 0; i < m->nconfigs && !rd->r.bad; i++) {
        ModuleConfig *c = &m->configs[i];
        c->name = rt_read_str(&rd->r);
        c->type = (char)rt_read_u8(&rd->r);
        c->slot = get_slot(rd, true);
        c->runtime = rt_read_u8(&rd->r) != 0;
        c->value = rt_read_str(&rd->r);
        c->fixed_why = rt_read_str(&rd->r);
        if (!c->name || !strchr("ifbs", c->type) || !c->type)
            rt_reader_fail(&rd->r, "a bad config entry");
        /* a settable config's slot takes a scalar of its type (cli/built/main.c) */
        DType want = c->type == 'i' ? DT_I64 : c->type == 'f' ? DT_F64 : DT_BOOL;
        if (c->slot >= 0 &&
            (m->slots[c->slot].kind != SLOT_CONFIG || m->slots[c->slot].dtype != want ||
             m->slots[c->slot].shape.rank != 0 || c->type == 's'))
            rt_reader_fail(&rd->r, "a bad config slot");
    }
}

static Node *sig_node(R *rd, bool input) {
    Node *n = arena_alloc(rd->m->arena, sizeof *n);
    if (!n) {
        rt_reader_fail(&rd->r, "out of memory");
        return NULL;
    }
    n->op = input ? OP_INPUT : OP_CONST;
    n->dtype = get_dtype(rd);
    n->shape = get_shape(rd);
    if (input) n->name = rt_read_str(&rd->r);
    n->loc = ir_image_get_loc(&rd->r, rd->src);
    return n;
}

static void get_graphs(R *rd, bool (*read_graph)(void *, Graph *, int, RtReader *), void *ctx) {
    rd->ngraphs = (int)count(rd, 17);
    rd->graphs = rt_reader_alloc(&rd->r, (size_t)rd->ngraphs, sizeof *rd->graphs);
    for (int i = 0; i < rd->ngraphs && !rd->r.bad; i++) {
        size_t at = rd->r.at;
        Graph *g = rt_reader_alloc(&rd->r, 1, sizeof *g);
        if (!g) return;
        g->arena = rd->m->arena;
        g->diags = rd->m->diags;
        g->name = rt_read_str(&rd->r);
        g->ninputs = g->cap_inputs = (int)count(rd, 18);
        g->inputs = rt_reader_alloc(&rd->r, (size_t)g->ninputs, sizeof *g->inputs);
        for (int k = 0; k < g->ninputs && !rd->r.bad; k++) {
            g->inputs[k] = sig_node(rd, true);
            if (g->inputs[k]) g->inputs[k]->attr.input.index = k;
        }
        g->noutputs = g->cap_outputs = (int)count(rd, 17);
        g->outputs = rt_reader_alloc(&rd->r, (size_t)g->noutputs, sizeof *g->outputs);
        for (int k = 0; k < g->noutputs && !rd->r.bad; k++)
            g->outputs[k] = sig_node(rd, false);
        rd->graphs[i] = g;
        if (!rd->r.bad && !read_graph(ctx, g, i, &rd->r))
            rt_reader_fail(&rd->r, "a bad graph program");
        if (!rd->r.bad && rd->sums &&
            (i >= rd->nsums || rd->sums[i] != ir_image_crc(rd->r.p + at, rd->r.at - at)))
            rt_reader_fail(&rd->r, "a graph that does not match the kernels linked with it");
    }
    if (!rd->r.bad && rd->sums && rd->ngraphs != rd->nsums)
        rt_reader_fail(&rd->r, "a graph count that does not match the kernels linked with it");
}

/* The slots a call reads and writes hold exactly what the graph's signature
 * (and so its compiled kernels) takes and gives. */
static void check_call_types(R *rd, const GraphCall *c) {
    const Graph *g = c->graph;
    for (int i = 0; i < g->ninputs && !rd->r.bad; i++) {
        const Slot *s = &rd->m->slots[c->in_slots[i]];
        const Node *n = g->inputs[i];
        if (!n || s->dtype != n->dtype || !rt_shape_eq(&s->shape, &n->shape))
            rt_reader_fail(&rd->r, "a graph input whose slot has another type");
    }
    for (int j = 0; j < g->noutputs && !rd->r.bad; j++) {
        const Slot *s = &rd->m->slots[c->out_slots[j]];
        const Node *n = g->outputs[j];
        if (!n || s->dtype != n->dtype || !rt_shape_eq(&s->shape, &n->shape))
            rt_reader_fail(&rd->r, "a graph output whose slot has another type");
    }
}

static void get_call(R *rd, GraphCall *c) {
    int id = (int)rt_read_u32(&rd->r);
    c->graph = NULL;
    if (id == -1 || rd->r.bad) return;
    if (id < 0 || id >= rd->ngraphs) {
        rt_reader_fail(&rd->r, "a graph index out of range");
        return;
    }
    c->graph = rd->graphs[id];
    c->in_slots = get_slots(rd, c->graph->ninputs, false);
    c->out_slots = get_slots(rd, c->graph->noutputs, false);
    check_call_types(rd, c);
}

static void get_block(R *rd, HostBlock *b);

static TrainSpec *get_train(R *rd) {
    TrainSpec *t = rt_reader_alloc(&rd->r, 1, sizeof *t);
    if (!t) return NULL;
    t->name = rt_read_str(&rd->r);
    t->nfields = (int)count(rd, 4);
    t->field_names = rt_reader_alloc(&rd->r, (size_t)t->nfields, sizeof *t->field_names);
    for (int i = 0; i < t->nfields && !rd->r.bad; i++)
        t->field_names[i] = rt_read_str(&rd->r);
    t->data_slots = get_slots(rd, t->nfields, false);
    t->batch_slots = get_slots(rd, t->nfields, false);
    t->rows = rt_read_i64(&rd->r);
    t->batch = rt_read_i64(&rd->r);
    t->steps = rt_read_i64(&rd->r);
    t->shuffle = rt_read_u8(&rd->r) != 0;
    t->t_slot = get_slot(rd, true);
    get_call(rd, &t->step);
    t->loss_slot = get_slot(rd, true);
    t->nevals = (int)count(rd, 16);
    t->evals = rt_reader_alloc(&rd->r, (size_t)t->nevals, sizeof *t->evals);
    for (int i = 0; i < t->nevals && !rd->r.bad; i++) {
        t->evals[i].every = rt_read_i64(&rd->r);
        get_block(rd, &t->evals[i].body);
    }
    if (!t->name) t->name = "train";
    if (t->rows < 0 || t->batch <= 0 || t->steps < 0 || (t->batch > t->rows && t->rows > 0))
        rt_reader_fail(&rd->r, "a bad train block");
    return t;
}

static void get_stmt(R *rd, HostStmt *st) {
    RtReader *r = &rd->r;
    st->op = (HostOp)rt_read_u8(r);
    st->loc = ir_image_get_loc(&rd->r, rd->src);
    switch (st->op) {
    case HS_RUN:
        get_call(rd, &st->u.run);
        break;
    case HS_FOR:
        st->u.loop.var_slot = get_slot(rd, false);
        st->u.loop.lo = rt_read_i64(r);
        st->u.loop.hi = rt_read_i64(r);
        st->u.loop.lo_slot = get_slot(rd, true);
        st->u.loop.hi_slot = get_slot(rd, true);
        get_block(rd, &st->u.loop.body);
        break;
    case HS_WHILE:
        get_call(rd, &st->u.whl.cond);
        st->u.whl.cond_slot = get_slot(rd, false);
        get_block(rd, &st->u.whl.body);
        break;
    case HS_IF:
        st->u.cond.cond_slot = get_slot(rd, false);
        get_block(rd, &st->u.cond.then_b);
        get_block(rd, &st->u.cond.else_b);
        break;
    case HS_BREAK:
        break;
    case HS_LOG: {
        int n = st->u.log.n = (int)count(rd, 8);
        st->u.log.names = rt_reader_alloc(r, (size_t)n, sizeof(char *));
        for (int i = 0; i < n && !r->bad; i++)
            st->u.log.names[i] = rt_read_str(r);
        st->u.log.slots = get_slots(rd, n, false);
        break;
    }
    case HS_PRINT: {
        int n = st->u.print.n = (int)count(rd, 4);
        st->u.print.slots = get_slots(rd, n, true);
        if (rt_read_u8(r)) {
            st->u.print.texts = rt_reader_alloc(r, (size_t)n, sizeof(char *));
            for (int i = 0; i < n && !r->bad; i++)
                st->u.print.texts[i] = rt_read_str(r);
        }
        for (int i = 0; i < n && !r->bad; i++)
            if (st->u.print.slots[i] < 0 && !(st->u.print.texts && st->u.print.texts[i]))
                rt_reader_fail(r, "a print item without a value");
        break;
    }
    case HS_SAVE:
        st->u.save.path = rt_read_str(r);
        st->u.save.slot = get_slot(rd, false);
        if (!st->u.save.path) rt_reader_fail(r, "a save without a path");
        break;
    case HS_TRAIN:
        st->u.train = get_train(rd);
        break;
    default:
        rt_reader_fail(r, "an unknown statement");
    }
}

static void get_block(R *rd, HostBlock *b) {
    if (++rd->depth > 256) {
        rt_reader_fail(&rd->r, "statements nested too deeply");
        return;
    }
    b->n = b->cap = (int)count(rd, 17);
    b->items = rt_reader_alloc(&rd->r, (size_t)b->n, sizeof *b->items);
    for (int i = 0; i < b->n && !rd->r.bad; i++) {
        b->items[i] = rt_reader_alloc(&rd->r, 1, sizeof(HostStmt));
        if (b->items[i]) get_stmt(rd, b->items[i]);
    }
    rd->depth--;
}

/* The header: magic, version, then the length and CRC-32 of the rest, all
 * checked before anything else is read. */
static void check_header(R *rd) {
    RtReader *r = &rd->r;
    const uint8_t *magic = rt_read_bytes(r, 8);
    if (!magic || memcmp(magic, MAGIC, 8) != 0) {
        rt_reader_fail(r, "not a dflow program image");
        return;
    }
    uint32_t version = rt_read_u32(r);
    if (!r->bad && version != IR_IMAGE_VERSION)
        rt_reader_fail(r, "an image of another dflow version");
    uint64_t len = (uint64_t)rt_read_i64(r);
    uint32_t crc = rt_read_u32(r);
    if (r->bad) return;
    if (len != r->n - r->at)
        rt_reader_fail(r, "an image of another length than its header says");
    else if (crc != ir_image_crc(r->p + r->at, r->n - r->at))
        rt_reader_fail(r, "a checksum mismatch (the image was modified)");
}

Module *ir_image_read_linked(const uint8_t *p, size_t n, Arena *a, SourceSet *src, DiagList *d,
                             bool (*read_graph)(void *ctx, Graph *g, int id, RtReader *r),
                             void *ctx, const uint32_t *graph_sums, int nsums, char *err,
                             size_t errn) {
    R rd = {.r = {.p = p, .n = n, .alloc = arena_cb, .ctx = a},
            .src = src,
            .sums = graph_sums,
            .nsums = nsums};
    Module *m = rt_reader_alloc(&rd.r, 1, sizeof *m);
    if (!m) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    m->arena = a;
    m->diags = d;
    rd.m = m;
    check_header(&rd);
    int nfiles = (int)count(&rd, 4);
    for (int i = 1; i < nfiles && !rd.r.bad; i++) {
        const char *path = rt_read_str(&rd.r);
        if (src) source_add(src, path ? path : "?", "", 0);
    }
    get_slots_table(&rd);
    get_graphs(&rd, read_graph, ctx);
    get_block(&rd, &m->init);
    get_block(&rd, &m->main);
    if (!rd.r.bad && rd.r.at != rd.r.n) rt_reader_fail(&rd.r, "trailing bytes");
    if (rd.r.bad) {
        snprintf(err, errn, "corrupt program image: %s at byte %zu", rd.r.why ? rd.r.why : "?",
                 rd.r.at);
        return NULL;
    }
    return m;
}

Module *ir_image_read(const uint8_t *p, size_t n, Arena *a, SourceSet *src, DiagList *d,
                      bool (*read_graph)(void *ctx, Graph *g, int id, RtReader *r), void *ctx,
                      char *err, size_t errn) {
    return ir_image_read_linked(p, n, a, src, d, read_graph, ctx, NULL, 0, err, errn);
}
