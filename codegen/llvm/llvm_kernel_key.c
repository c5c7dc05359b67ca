/* The structural key of a kernel plan (llvm_internal.h: llvm_kernel_key).
 *
 * Two kernels of any graphs emit the same LLVM IR exactly when they agree
 * on everything the emitter reads: the plan's kind, iteration space,
 * instructions (ops, dtypes, constants, sources), row phases, checks,
 * matmul or call description and parallel axis, and the dtypes of the buffers it
 * touches. Buffer numbers are graph-specific, so they are written as the
 * buffer's position among the kernel's arguments (llvm_kernel_params);
 * an in-place input, which shares the output's argument, comes after them.
 * The graph-specific fields (id, group, check_node, work) are left out:
 * the emitter never reads them. A field added to a plan must be added here
 * too, or two different kernels could share code: the size checks below
 * fail the build until it is. */
#include <stdlib.h>
#include <string.h>

#include "llvm_internal.h"

#if defined(__x86_64__) && defined(__LP64__)
_Static_assert(sizeof(KInstr) == 48, "a KInstr field was added: add it to llvm_kernel_key");
_Static_assert(sizeof(KPhase) == 88, "a KPhase field was added: add it to llvm_kernel_key");
_Static_assert(sizeof(KMatmul) == 288, "a KMatmul field was added: add it to llvm_kernel_key");
_Static_assert(sizeof(KCall) == 48, "a KCall field was added: add it to llvm_kernel_key");
_Static_assert(sizeof(KernelPlan) == 552,
               "a KernelPlan field was added: add it to llvm_kernel_key");
#endif

typedef struct {
    RtBuf *b;
    const int *pos; /* per program buffer: its argument position, or -1 */
} Key;

static void put_i(Key *k, int64_t v) {
    rt_buf_i64(k->b, v);
}

static void put_buf(Key *k, int buf) {
    put_i(k, buf >= 0 ? k->pos[buf] : -1);
}

static void put_ins(Key *k, const KInstr *in) {
    put_i(k, in->kind);
    put_i(k, in->op);
    put_i(k, in->dt);
    put_i(k, in->nsrc);
    for (int j = 0; j < in->nsrc; j++)
        put_i(k, in->src[j]);
    put_i(k, in->axis);
    put_buf(k, in->kind == KI_LOAD ? in->buf : -1);
    put_i(k, in->stream);
    if (in->kind == KI_CONST) rt_buf_bytes(k->b, &in->c, sizeof in->c);
}

static void put_phase(Key *k, const KPhase *ph) {
    put_i(k, ph->ins);
    put_i(k, ph->first_axis);
    put_i(k, ph->rank);
    for (int a = 0; a < ph->rank; a++)
        put_i(k, ph->dims[a]);
    put_i(k, ph->stash_at);
    put_i(k, ph->stash_main);
}

static void put_matmul(Key *k, const KMatmul *m) {
    put_i(k, m->accumulate);
    rt_buf_f64(k->b, m->alpha);
    put_buf(k, m->a_buf);
    put_buf(k, m->b_buf);
    int64_t v[] = {m->a_off, m->b_off, m->trans_a, m->trans_b, m->lda,
                   m->ldb,   m->M,     m->N,       m->K,       m->batch_rank};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        put_i(k, v[i]);
    for (int i = 0; i < m->batch_rank; i++) {
        put_i(k, m->batch_dims[i]);
        put_i(k, m->a_bstride[i]);
        put_i(k, m->b_bstride[i]);
    }
}

static void put_call(Key *k, const KCall *c) {
    put_i(k, c->fn);
    put_buf(k, c->a_buf);
    put_buf(k, c->b_buf);
    put_i(k, c->batch);
    put_i(k, c->m);
    put_i(k, c->n);
    put_i(k, c->k);
}

bool llvm_kernel_key(const KernelProgram *p, const KernelPlan *kp, RtBuf *b) {
    int *params = malloc(sizeof(int) * (size_t)(p->nbufs + 1));
    int *pos = malloc(sizeof(int) * (size_t)(p->nbufs ? p->nbufs : 1));
    int np = params && pos ? llvm_kernel_params(p, kp, params) : -1;
    if (np < 0) {
        free(params);
        free(pos);
        return false;
    }
    for (int i = 0; i < p->nbufs; i++)
        pos[i] = -1;
    for (int i = 0; i < np; i++)
        pos[params[i]] = i;
    if (kp->inplace_buf >= 0 && pos[kp->inplace_buf] < 0) {
        params[np] = kp->inplace_buf;
        pos[kp->inplace_buf] = np++;
    }
    Key k = {b, pos};
    put_i(&k, np);
    for (int i = 0; i < np; i++)
        put_i(&k, p->bufs[params[i]].dt);
    int64_t head[] = {kp->kind,      kp->out_dt,  kp->out_numel, kp->rank,  kp->red_axes,
                      kp->red_op,    kp->nins,    kp->nphases,   kp->naxes, kp->value,
                      kp->out_index, kp->nchecks, kp->par_axis,  kp->par_n};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++)
        put_i(&k, head[i]);
    put_buf(&k, kp->out_buf);
    put_buf(&k, kp->inplace_buf);
    for (int a = 0; a < kp->rank; a++)
        put_i(&k, kp->dims[a]);
    for (int i = 0; i < kp->nins; i++)
        put_ins(&k, &kp->ins[i]);
    for (int i = 0; i < kp->nphases; i++)
        put_phase(&k, &kp->phases[i]);
    for (int i = 0; i < kp->nchecks; i++)
        put_i(&k, kp->checks[i]);
    if (kp->kind == KP_MATMUL) put_matmul(&k, &kp->mm);
    if (kp->kind == KP_CALL) put_call(&k, &kp->call);
    free(params);
    free(pos);
    return !b->oom;
}
