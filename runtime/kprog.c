/* Running compiled graphs (kprog.h): storage placement, the kernel loop over
 * the thread pool, output hand-over, and the image form of a program. */
#include "kprog.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checked.h"

#define ARENA_ALIGN 64
/* Chunks of about this much work (schedule.c's units, about one per scalar
 * operation): waking a spinning worker costs about a microsecond, a few
 * thousand operations. A kernel is split from PAR_MIN_WORK on. */
#define PAR_MIN_WORK 32768.0
#define PAR_CHUNK_WORK 16384.0

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t up8(size_t n) {
    return (n + 7) / 8 * 8;
}

size_t rt_kprog_scratch_bytes(const RtKProg *p) {
    size_t nb = (size_t)(p->nbufs ? p->nbufs : 1), nk = (size_t)(p->nkernels ? p->nkernels : 1);
    size_t ni = (size_t)(p->ninputs ? p->ninputs : 1), no = (size_t)(p->noutputs ? p->noutputs : 1);
    return up8(sizeof(void *) * nb) + up8(sizeof(RtTensor *) * nb) + up8(sizeof(int32_t) * nb) +
           up8(ni) + up8(sizeof(RtTensor *) * no) + up8(sizeof(double) * nk);
}

void rt_kprog_scratch(RtKProg *p, void *mem) {
    size_t nb = (size_t)(p->nbufs ? p->nbufs : 1);
    size_t ni = (size_t)(p->ninputs ? p->ninputs : 1), no = (size_t)(p->noutputs ? p->noutputs : 1);
    char *c = mem;
    memset(c, 0, rt_kprog_scratch_bytes(p));
    p->ptrs = (void **)c, c += up8(sizeof(void *) * nb);
    p->store = (RtTensor **)c, c += up8(sizeof(RtTensor *) * nb);
    p->first_out = (int32_t *)c, c += up8(sizeof(int32_t) * nb);
    p->claimed = (bool *)c, c += up8(ni);
    p->fresh = (RtTensor **)c, c += up8(sizeof(RtTensor *) * no);
    p->kernel_s = (double *)c;
}

int rt_kprog_set_grains(RtKProg *p, int threads) {
    int split = 0;
    for (int i = 0; i < p->nkernels; i++) {
        RtKKernel *k = &p->kernels[i];
        k->grain = 0;
        if (threads < 2 || k->par_n < 2 || k->work < PAR_MIN_WORK) continue;
        double per = k->work / (double)k->par_n; /* work per unit of the range */
        int64_t grain = (int64_t)(PAR_CHUNK_WORK / per) + 1;
        /* a matmul chunk packs the whole unsplit operand: one chunk per thread
           (MLP step at 2 threads: 0.76 ms against 0.86 ms with 4 per thread) */
        if (k->matmul && grain < (k->par_n + threads - 1) / threads)
            grain = (k->par_n + threads - 1) / threads;
        if (grain >= k->par_n) continue;
        k->grain = grain;
        split++;
    }
    return split;
}

void rt_kexec_blas_threads(RtKExec *x, int n) {
    if (x->blas_threads == n) return;
    openblas_set_num_threads(n);
    x->blas_threads = n;
}

void rt_kexec_free(RtKExec *x) {
    free(x->arena);
    x->arena = NULL;
    x->arena_cap = 0;
}

static bool ensure_arena(RtKExec *x, int64_t bytes) {
    if (bytes <= x->arena_cap) return true;
    int64_t padded;
    if (!ck_add(bytes, ARENA_ALIGN - 1, &padded)) return false; /* past 2^63: cannot be had */
    size_t n = (size_t)(padded / ARENA_ALIGN * ARENA_ALIGN);
    void *m = aligned_alloc(ARENA_ALIGN, n);
    if (!m) return false;
    if (x->poison) memset(m, 0xff, n); /* NaN in every float, -1 in every integer */
    free(x->arena);
    x->arena = m;
    x->arena_cap = (int64_t)n;
    x->allocs++;
    return true;
}

/* The offered tensor for output j, else a fresh one (NULL: out of memory). */
static RtTensor *output_tensor(RtKExec *x, RtKProg *p, int j, RtTensor **offered) {
    if (offered[j]) return offered[j];
    RtTensor *t = rt_tensor_new(p->out_dtype[j], p->out_shape[j]);
    if (!t) return NULL;
    if (x->poison) memset(t->data, 0xff, rt_tensor_bytes(t));
    p->fresh[j] = t;
    x->allocs++;
    return t;
}

/* Points every buffer at its storage for this run; on failure *bad is the
 * output that could not be allocated. */
static bool place_buffers(RtKExec *x, RtKProg *p, RtTensor *const *in, const bool *donated,
                          RtTensor **offered, int *bad) {
    char *base = x->arena;
    for (int b = 0; b < p->nbufs; b++) {
        const RtKBuf *kb = &p->bufs[b];
        p->store[b] = NULL;
        p->first_out[b] = -1;
        p->ptrs[b] = kb->kind == RK_INPUT                  ? in[kb->input]->data
                     : kb->kind == RK_TEMP && base != NULL ? base + kb->offset
                                                           : NULL;
    }
    for (int j = 0; j < p->noutputs; j++) {
        int b = p->out_bufs[j];
        const RtKBuf *kb = &p->bufs[b];
        if (kb->kind != RK_OUTPUT || p->first_out[b] >= 0) continue;
        int d = kb->input;
        RtTensor *t;
        if (d >= 0 && donated && donated[d] && !p->claimed[d]) {
            t = in[d];
            p->claimed[d] = true;
        } else {
            t = output_tensor(x, p, j, offered);
            if (!t) {
                *bad = j;
                return false;
            }
            if (d >= 0 && kb->inplace) /* not donated now: update a copy */
                memcpy(t->data, in[d]->data, rt_tensor_bytes(t));
        }
        p->store[b] = t;
        p->first_out[b] = j;
        p->ptrs[b] = t->data;
    }
    return true;
}

typedef struct {
    RtTaskFn fn;
    void **bufs;
} TaskArg;

static uint32_t task_tramp(void *arg, int64_t lo, int64_t hi) {
    const TaskArg *a = arg;
    return (uint32_t)a->fn(a->bufs, lo, hi);
}

static uint32_t run_task(RtKExec *x, RtTaskFn fn, void **bufs, int64_t n, int64_t grain) {
    if (grain <= 0 || n <= 1) return (uint32_t)fn(bufs, 0, n);
    TaskArg a = {fn, bufs};
    return rt_pool_run(x->pool, task_tramp, &a, n, grain);
}

/* The first kernel that failed an index check (*stopped false) or that
 * x->after_kernel refused (*stopped true), or -1. */
static int run_kernels(RtKExec *x, RtKProg *p, bool *stopped) {
    /* matmuls are split across our pool: OpenBLAS on one thread per call
       (letting it run its own threads instead made the MLP step 1.45 ms
       against 0.76 ms at 2 threads: its idle threads spin against ours) */
    rt_kexec_blas_threads(x, 1);
    for (int i = 0; i < p->nkernels; i++) {
        const RtKKernel *k = &p->kernels[i];
        double t0 = x->profile ? now() : 0;
        uint32_t st = run_task(x, p->tab[2 * i], p->ptrs, k->par_n, k->grain);
        if ((st & 2) && p->tab[2 * i + 1]) /* an argument beyond the fast path's range */
            st = run_task(x, p->tab[2 * i + 1], p->ptrs, k->par_n, k->grain);
        if (x->profile) p->kernel_s[i] += now() - t0;
        if (st & 1) return i;
        if (x->after_kernel && !x->after_kernel(x->after_ctx, i, p->ptrs)) {
            *stopped = true;
            return i;
        }
    }
    return -1;
}

/* Fills out[] after the kernels ran; false (out of memory for output *bad)
 * leaves the fresh tensors for the caller to free. */
static bool hand_over(RtKExec *x, RtKProg *p, RtTensor *const *in, const bool *donated,
                      RtTensor **offered, RtTensor **out, int *bad) {
    for (int j = 0; j < p->noutputs; j++) {
        int b = p->out_bufs[j];
        const RtKBuf *kb = &p->bufs[b];
        const RtTensor *src;
        if (kb->kind == RK_INPUT) {
            int i = kb->input;
            if (donated && donated[i] && !p->claimed[i]) {
                p->claimed[i] = true;
                out[j] = in[i];
                continue;
            }
            src = in[i];
        } else if (p->first_out[b] == j) {
            out[j] = p->store[b];
            continue;
        } else {
            src = p->store[b];
        }
        out[j] = output_tensor(x, p, j, offered);
        if (!out[j]) {
            *bad = j;
            return false;
        }
        memcpy(out[j]->data, src->data, rt_tensor_bytes(src));
    }
    return true;
}

RtKStatus rt_kprog_run(RtKExec *x, RtKProg *p, RtTensor *const *in, const bool *donated,
                       RtTensor **out, int *bad) {
    RtTensor *offbuf[16];
    RtTensor **offered = p->noutputs <= 16 ? offbuf : malloc(sizeof *offered * (size_t)p->noutputs);
    *bad = -1;
    if (!offered) return RK_OOM;
    for (int j = 0; j < p->noutputs; j++) {
        offered[j] = out[j];
        out[j] = NULL;
        p->fresh[j] = NULL;
    }
    memset(p->claimed, 0, (size_t)(p->ninputs ? p->ninputs : 1));
    RtKStatus st = RK_OK;
    if (!ensure_arena(x, p->arena_bytes) || !place_buffers(x, p, in, donated, offered, bad)) {
        st = RK_OOM;
    } else {
        bool stopped = false;
        int k = run_kernels(x, p, &stopped);
        if (k >= 0) {
            *bad = k;
            st = stopped ? RK_STOPPED : RK_CHECK;
        } else if (!hand_over(x, p, in, donated, offered, out, bad)) {
            st = RK_OOM;
        }
    }
    if (st != RK_OK) /* free what this run allocated; offered and donated storage is the caller's */
        for (int j = 0; j < p->noutputs; j++) {
            rt_tensor_free(p->fresh[j]);
            out[j] = NULL;
        }
    if (offered != offbuf) free(offered);
    return st;
}

/* ---- the image form ---- */

#define MAX_ITEMS (1 << 24)

void rt_buf_shape(RtBuf *b, const Shape *s) {
    rt_buf_u8(b, (uint8_t)s->rank);
    for (int i = 0; i < s->rank; i++)
        rt_buf_i64(b, s->dims[i]);
}

Shape rt_read_shape(RtReader *r) {
    Shape s = rt_shape_scalar();
    int rank = rt_read_u8(r);
    if (rank > RT_MAX_RANK) {
        rt_reader_fail(r, "a rank out of range");
        return s;
    }
    s.rank = rank;
    for (int i = 0; i < rank; i++)
        s.dims[i] = rt_read_i64(r);
    if (rt_shape_numel(&s) < 0) rt_reader_fail(r, "an invalid shape");
    return s;
}

void rt_kprog_write(const RtKProg *p, RtBuf *b) {
    rt_buf_i64(b, p->ninputs);
    rt_buf_i64(b, p->noutputs);
    rt_buf_i64(b, p->arena_bytes);
    rt_buf_i64(b, p->nbufs);
    for (int i = 0; i < p->nbufs; i++) {
        rt_buf_u8(b, p->bufs[i].kind);
        rt_buf_u8(b, p->bufs[i].inplace);
        rt_buf_u32(b, (uint32_t)p->bufs[i].input);
        rt_buf_i64(b, p->bufs[i].offset);
    }
    rt_buf_i64(b, p->nkernels);
    for (int i = 0; i < p->nkernels; i++) {
        rt_buf_i64(b, p->kernels[i].par_n);
        rt_buf_f64(b, p->kernels[i].work);
        rt_buf_u8(b, p->kernels[i].matmul);
    }
    for (int j = 0; j < p->noutputs; j++) {
        rt_buf_u32(b, (uint32_t)p->out_bufs[j]);
        rt_buf_u8(b, (uint8_t)p->out_dtype[j]);
        rt_buf_shape(b, &p->out_shape[j]);
    }
}

/* Checks that every index in p is in range, so a corrupt image cannot make
 * a run touch memory it should not (offsets against the arena size). */
static void check_program(RtReader *r, const RtKProg *p) {
    for (int i = 0; i < p->nbufs && !r->bad; i++) {
        const RtKBuf *kb = &p->bufs[i];
        bool ok = kb->kind <= RK_EMPTY;
        if (kb->kind == RK_INPUT) ok = ok && kb->input >= 0 && kb->input < p->ninputs;
        if (kb->kind == RK_OUTPUT) ok = ok && kb->input >= -1 && kb->input < p->ninputs;
        if (kb->kind == RK_TEMP) ok = ok && kb->offset >= 0 && kb->offset <= p->arena_bytes;
        if (!ok) rt_reader_fail(r, "a buffer out of range");
    }
    for (int j = 0; j < p->noutputs && !r->bad; j++)
        if (p->out_bufs[j] < 0 || p->out_bufs[j] >= p->nbufs || p->out_dtype[j] >= DT_COUNT)
            rt_reader_fail(r, "an output out of range");
}

bool rt_kprog_read(RtReader *r, RtKProg *p) {
    memset(p, 0, sizeof *p);
    p->ninputs = (int)rt_read_count(r, MAX_ITEMS, 0);
    /* each output's record below takes at least 6 bytes (buffer, dtype,
       rank): a count the image cannot hold is refused before the output
       tables are allocated for it (a 1 KiB image once asked for 1.4 GB) */
    p->noutputs = (int)rt_read_count(r, MAX_ITEMS, 6);
    p->arena_bytes = rt_read_i64(r);
    if (p->arena_bytes < 0) rt_reader_fail(r, "a negative arena size");
    p->nbufs = (int)rt_read_count(r, MAX_ITEMS, 14);
    p->bufs = rt_reader_alloc(r, (size_t)p->nbufs, sizeof *p->bufs);
    for (int i = 0; i < p->nbufs && !r->bad; i++) {
        p->bufs[i].kind = rt_read_u8(r);
        p->bufs[i].inplace = rt_read_u8(r) != 0;
        p->bufs[i].input = (int32_t)rt_read_u32(r);
        p->bufs[i].offset = rt_read_i64(r);
    }
    p->nkernels = (int)rt_read_count(r, MAX_ITEMS, 17);
    p->kernels = rt_reader_alloc(r, (size_t)p->nkernels, sizeof *p->kernels);
    for (int i = 0; i < p->nkernels && !r->bad; i++) {
        p->kernels[i].par_n = rt_read_i64(r);
        p->kernels[i].work = rt_read_f64(r);
        p->kernels[i].matmul = rt_read_u8(r) != 0;
        if (p->kernels[i].par_n < 0) rt_reader_fail(r, "a negative kernel range");
    }
    p->out_bufs = rt_reader_alloc(r, (size_t)p->noutputs, sizeof *p->out_bufs);
    p->out_dtype = rt_reader_alloc(r, (size_t)p->noutputs, sizeof *p->out_dtype);
    p->out_shape = rt_reader_alloc(r, (size_t)p->noutputs, sizeof *p->out_shape);
    for (int j = 0; j < p->noutputs && !r->bad; j++) {
        p->out_bufs[j] = (int32_t)rt_read_u32(r);
        p->out_dtype[j] = (DType)rt_read_u8(r);
        p->out_shape[j] = rt_read_shape(r);
    }
    check_program(r, p);
    void *scratch = r->bad ? NULL : rt_reader_alloc(r, rt_kprog_scratch_bytes(p), 1);
    if (scratch) rt_kprog_scratch(p, scratch);
    return !r->bad;
}
