/* --check-numerics for compiled graphs (llvm_numerics.h). */
#include "llvm_numerics.h"

#include <stdlib.h>

#include "../../ir/interp.h"
#include "../../passes/fuse.h"

typedef struct {
    const FusionGroup *gr;
    void *const *bufs;
    const KernelProgram *prog;
    RtTensor **val;  /* per node id: its value in this re-evaluation */
    RtTensor *views; /* the group's inputs, over their buffers */
    DiagList *scratch;
} Replay;

static int input_index(const FusionGroup *gr, const Node *n) {
    for (int i = 0; i < gr->ninputs; i++)
        if (gr->inputs[i] == n) return i;
    return -1;
}

/* n's value, computing what it needs first; NULL when it cannot. */
static RtTensor *value(Replay *r, const Node *n, int depth) {
    if (r->val[n->id]) return r->val[n->id];
    int in = input_index(r->gr, n);
    if (in >= 0) {
        RtTensor *t = &r->views[in];
        t->dtype = n->dtype;
        t->shape = n->shape;
        t->data = r->bufs[r->prog->buf_of[n->id]];
        t->view = true;
        return r->val[n->id] = t;
    }
    if (depth > 10000 || n->nsrc > 8) return NULL;
    RtTensor *src[8];
    for (int k = 0; k < n->nsrc; k++)
        if (!(src[k] = value(r, n->src[k], depth + 1))) return NULL;
    return r->val[n->id] = ir_interp_node(n, src, r->scratch);
}

/* The first op of kernel k (by node id) whose value is not finite, with
 * *at its element; NULL when none is found. */
static const Node *replay(const KernelPlan *kp, const KernelProgram *prog, void *const *bufs,
                          int64_t *at, const void **data, RtTensor ***srcs_out, Replay *r) {
    const FusionGroup *gr = kp->group;
    const Graph *g = prog->graph;
    r->gr = gr;
    r->bufs = bufs;
    r->prog = prog;
    r->val = calloc(g->nnodes ? g->nnodes : 1, sizeof *r->val);
    r->views = calloc((size_t)(gr->ninputs ? gr->ninputs : 1), sizeof *r->views);
    Arena *a = arena_new();
    r->scratch = a ? diag_list_new(a, NULL) : NULL;
    const Node *found = NULL;
    if (r->val && r->views && r->scratch && value(r, gr->root, 0)) {
        for (uint32_t i = 0; i < g->nnodes && !found; i++) {
            const Node *n = g->nodes[i];
            RtTensor *v = r->val[i];
            if (!v || v->view || !ir_numerics_computes(n)) continue;
            int64_t e = ir_numerics_find(v->data, v->dtype, rt_shape_numel(&v->shape));
            if (e < 0) continue;
            found = n;
            *at = e;
            *data = v->data;
            RtTensor **s = calloc((size_t)(n->nsrc ? n->nsrc : 1), sizeof *s);
            for (int k = 0; s && k < n->nsrc; k++)
                s[k] = r->val[n->src[k]->id];
            *srcs_out = s;
        }
    }
    arena_free(a);
    return found;
}

static void replay_free(Replay *r, const Graph *g) {
    for (uint32_t i = 0; r->val && i < g->nnodes; i++)
        if (r->val[i] && !r->val[i]->view) rt_tensor_free(r->val[i]);
    free(r->val);
    free(r->views);
}

bool llvm_numerics_after_kernel(void *ctx, int k, void *const *bufs) {
    const LlvmNumerics *nc = ctx;
    const KernelPlan *kp = &nc->prog->kernels[k];
    const void *out = bufs[kp->out_buf];
    int64_t i = ir_numerics_find(out, kp->out_dt, kp->out_numel);
    if (i < 0) return true;
    const Node *n = NULL;
    int64_t at = i;
    const void *data = out;
    RtTensor **srcs = NULL;
    Replay r = {0};
    if (kp->inplace_buf < 0) n = replay(kp, nc->prog, bufs, &at, &data, &srcs, &r);
    if (!n) {
        n = kp->group->root;
        at = i;
        data = out;
    }
    ir_numerics_error(nc->d, n, data, at, srcs, nc->check);
    free(srcs);
    replay_free(&r, nc->prog->graph);
    return false;
}
