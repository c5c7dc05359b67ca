/* The GraphRunner of a built executable (runner.h). */
#include "runner.h"

#include <string.h>

#include "ir/module_image.h"
#include "ir/numerics.h"
#include "ir/oom.h"
#include "runtime/checked.h"
#include "runtime/linalg.h"

/* Bytes of a value of shape s and dtype dt; -1 when that overflows. */
static int64_t value_bytes(const Shape *s, DType dt) {
    int64_t b;
    return ck_bytes(rt_shape_numel(s), rt_dtype_size(dt), &b) ? b : -1;
}

/* Bytes buffer i of p holds, as far as the image says; -1 when unknown. */
static int64_t buf_bytes(const RtKProg *p, const Graph *g, int i) {
    const RtKBuf *bf = &p->bufs[i];
    switch ((RtKBufKind)bf->kind) {
    case RK_INPUT:
        if (bf->input < 0 || bf->input >= g->ninputs) return -1;
        return value_bytes(&g->inputs[bf->input]->shape, g->inputs[bf->input]->dtype);
    case RK_TEMP:
        return bf->offset >= 0 && bf->offset <= p->arena_bytes ? p->arena_bytes - bf->offset : -1;
    case RK_OUTPUT:
        for (int j = 0; j < p->noutputs; j++)
            if (p->out_bufs[j] == i) return value_bytes(&p->out_shape[j], p->out_dtype[j]);
        return -1;
    case RK_EMPTY:
        return 0;
    }
    return -1;
}

/* One kernel's scan record; the buffer must hold the shape it claims, so a
 * modified image cannot make the scan read outside it. */
static void read_scan(RtReader *r, const SourceSet *src, const RtKProg *p, const Graph *g,
                      BuiltScan *s) {
    s->loc = ir_image_get_loc(r, src);
    s->op = rt_read_str(r);
    uint8_t dt = rt_read_u8(r);
    s->buf = (int32_t)rt_read_u32(r);
    s->shape = rt_read_shape(r);
    if (r->bad) return;
    s->dt = dt < DT_COUNT ? (DType)dt : DT_BOOL;
    int64_t need = value_bytes(&s->shape, s->dt);
    if (dt >= DT_COUNT || s->buf < 0 || s->buf >= p->nbufs || need < 0 ||
        need > buf_bytes(p, g, s->buf))
        rt_reader_fail(r, "a kernel output that does not fit its buffer");
}

bool built_runner_read_graph(void *ctx, Graph *g, int id, RtReader *r) {
    BuiltRunner *b = ctx;
    if (id != b->n) return false;
    if (!arena_grow(b->arena, &b->graphs, &b->cap, (size_t)b->n + 1, 8)) return false;
    BuiltGraph *bg = &b->graphs[id];
    memset(bg, 0, sizeof *bg);
    RtKProg *p = &bg->prog;
    if (!rt_kprog_read(r, p)) return false;
    if (p->ninputs != g->ninputs || p->noutputs != g->noutputs) {
        rt_reader_fail(r, "a graph program that does not match its signature");
        return false;
    }
    bg->check_loc = rt_reader_alloc(r, (size_t)p->nkernels, sizeof(SrcLoc));
    bg->check_op = rt_reader_alloc(r, (size_t)p->nkernels, sizeof(char *));
    bg->scan = rt_reader_alloc(r, (size_t)p->nkernels, sizeof(BuiltScan));
    for (int k = 0; k < p->nkernels && !r->bad; k++) {
        bg->check_loc[k] = ir_image_get_loc(r, b->src);
        bg->check_op[k] = rt_read_str(r);
        read_scan(r, b->src, p, g, &bg->scan[k]);
    }
    bg->g = g;
    b->n++;
    return !r->bad;
}

/* RtKExec.after_kernel with --check-numerics (ctx: the BuiltRunner). */
static bool scan_kernel(void *ctx, int k, void *const *bufs) {
    BuiltRunner *b = ctx;
    const BuiltScan *s = &b->cur->scan[k];
    int64_t i = ir_numerics_find(bufs[s->buf], s->dt, rt_shape_numel(&s->shape));
    if (i < 0) return true;
    ir_numerics_error_at(b->cur_d, s->loc, s->op, s->dt, &s->shape, bufs[s->buf], i, 0,
                         b->numerics);
    return false;
}

/* The op that computes output j: the last kernel writing its buffer. */
static const char *output_op(const BuiltGraph *bg, int j) {
    for (int k = bg->prog.nkernels - 1; k >= 0; k--)
        if (bg->scan[k].buf == bg->prog.out_bufs[j]) return bg->scan[k].op;
    return "an output";
}

static int graph_index(const BuiltRunner *b, const Graph *g) {
    for (int i = 0; i < b->n; i++)
        if (b->graphs[i].g == g) return i;
    return -1;
}

static bool run_reuse(void *ctx, const Graph *g, RtTensor *const *in, const bool *donated,
                      RtTensor **out, DiagList *d) {
    BuiltRunner *b = ctx;
    int id = graph_index(b, g);
    if (id < 0 || !ir_check_graph_inputs(g, in, d)) {
        if (id < 0)
            diag_error(d, srcloc_none(), "internal: graph %s is not in the image",
                       g->name ? g->name : "?");
        for (int j = 0; j < g->noutputs; j++)
            out[j] = NULL;
        return false;
    }
    int bad = -1;
    BuiltGraph *bg = &b->graphs[id];
    b->cur = bg;
    b->cur_d = d;
    RtKStatus st = rt_kprog_run(&b->x, &bg->prog, in, donated, out, &bad);
    if (st == RK_CHECK) { /* a library call keeps its reason (runtime/linalg.h) */
        const char *why = rt_linalg_error_text();
        diag_error(d, bg->check_loc[bad], "%s: %s", bg->check_op[bad] ? bg->check_op[bad] : "?",
                   why[0] ? why : "index out of range");
        rt_linalg_error_clear();
    } else if (st == RK_OOM && bad >= 0)
        ir_oom_value(d, g->outputs[bad]->loc, bg->prog.out_dtype[bad], &bg->prog.out_shape[bad],
                     output_op(bg, bad), 0, rt_tensor_live_bytes() + b->x.arena_cap);
    else if (st == RK_OOM) /* the image does not say which values share the arena */
        ir_oom_arena(d, srcloc_none(), g->name, bg->prog.arena_bytes,
                     rt_tensor_live_bytes() + b->x.arena_cap);
    return st == RK_OK;
}

static bool run(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out, DiagList *d) {
    for (int j = 0; j < g->noutputs; j++)
        out[j] = NULL;
    return run_reuse(ctx, g, in, NULL, out, d);
}

GraphRunner built_runner_bind(BuiltRunner *b, void *const *tabs, int ntabs, int threads, char *err,
                              size_t errn) {
    GraphRunner gr = {"cpu", NULL, NULL, NULL};
    if (ntabs != b->n) {
        snprintf(err, errn, "the program image lists %d graphs but %d were linked", b->n, ntabs);
        return gr;
    }
    b->x.pool = rt_pool_new(threads);
    if (!b->x.pool) {
        snprintf(err, errn, "cannot start %d kernel threads", threads);
        return gr;
    }
    if (b->numerics) {
        b->x.after_kernel = scan_kernel;
        b->x.after_ctx = b;
    }
    for (int i = 0; i < b->n; i++) {
        b->graphs[i].prog.tab = (RtTaskFn *)tabs[i];
        rt_kprog_set_grains(&b->graphs[i].prog, rt_pool_size(b->x.pool));
    }
    gr.ctx = b;
    gr.run = run;
    gr.run_reuse = run_reuse;
    return gr;
}

void built_runner_free(BuiltRunner *b) {
    rt_kexec_free(&b->x);
    rt_pool_free(b->x.pool);
    b->x.pool = NULL;
}
