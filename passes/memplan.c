/* The memory planner: liveness over the fusion plan's steps, in-place
 * decisions, and best-fit offsets in one arena.
 *
 * One forward sweep over the steps. At step t the root of group t gets its
 * storage first (the storage of an input it may update in place, else a
 * best-fit block of the free list, else fresh bytes at the top of the
 * arena), and only then are the values whose last use is step t released:
 * a value read by a step is never handed to that step's output unless the
 * in-place rule allows it. Released blocks merge with their neighbours. The
 * in-place rule needs to know how a group reads each input; a reverse sweep
 * over the group's members (topological order) propagates "read at the
 * root's flat index" and "read elsewhere" marks down to the materialised
 * values it loads, mirroring how codegen/schedule.c evaluates a group. */
#include "memplan.h"

#include <stdlib.h>
#include <string.h>

#include "../runtime/checked.h"
#include "../runtime/grow.h"

enum { READ_ALIGNED = 1, READ_OTHER = 2, READ_ROW = 4 };

MemPlanOptions pass_memplan_defaults(void) {
    MemPlanOptions o;
    memset(&o, 0, sizeof o);
    o.inplace = true;
    o.align = 64;
    return o;
}

/* ---- how a group reads its inputs ------------------------------------------------------ */

/* Does n, evaluated at the root's flat index, evaluate source s there too? */
static bool keeps_index(const Node *n, const Node *s) {
    if (n->op == OP_RESHAPE || n->op == OP_STOP_GRAD) return true;
    if ((ir_ops[n->op].flags & OPF_EW) && !(ir_ops[n->op].flags & OPF_RAND))
        return rt_shape_eq(&s->shape, &n->shape);
    return false;
}

/* Marks in `mark` (per node id, cleared by the caller) how gr reads each
 * node: at the root's flat index (ALIGNED), somewhere in the row of the
 * output being computed (ROW: inside a row phase over the root's own shape
 * that the group computes at its outer loops, before it writes any element
 * of that row), or elsewhere (OTHER). */
static void read_marks(const FusionPlan *fp, const FusionGroup *gr, uint8_t *mark) {
    mark[gr->root->id] = READ_ALIGNED;
    for (int i = gr->nnodes; i-- > 0;) {
        const Node *m = gr->nodes[i];
        uint8_t mm = mark[m->id];
        if (!mm) continue;
        if (m != gr->root && (ir_ops[m->op].flags & OPF_RED)) { /* a row phase */
            const Node *s = m->src[0];
            bool row = fp->phase_outer[m->id] && rt_shape_eq(&s->shape, &gr->root->shape);
            mark[s->id] |= row ? READ_ROW : READ_OTHER;
            continue;
        }
        for (int k = 0; k < m->nsrc; k++) {
            const Node *s = m->src[k];
            uint8_t add = (mm & READ_OTHER) ? READ_OTHER : 0;
            if (mm & READ_ALIGNED) add |= keeps_index(m, s) ? READ_ALIGNED : READ_OTHER;
            if (mm & READ_ROW) add |= keeps_index(m, s) ? READ_ROW : READ_OTHER;
            mark[s->id] |= add;
        }
    }
}

static void clear_marks(const FusionGroup *gr, uint8_t *mark) {
    for (int i = 0; i < gr->nnodes; i++)
        mark[gr->nodes[i]->id] = 0;
    for (int i = 0; i < gr->ninputs; i++)
        mark[gr->inputs[i]->id] = 0;
}

/* ---- the free list ------------------------------------------------------------------------ */

typedef struct {
    int64_t off, size;
} Block;

typedef struct {
    Block *b;
    int n, cap;
    int64_t top; /* high-water mark: the arena's size so far */
    bool oom;
} FreeList;

static int64_t fl_alloc(FreeList *f, int64_t size) {
    int best = -1;
    for (int i = 0; i < f->n; i++)
        if (f->b[i].size >= size && (best < 0 || f->b[i].size < f->b[best].size)) best = i;
    if (best >= 0) {
        int64_t off = f->b[best].off;
        f->b[best].off += size;
        f->b[best].size -= size;
        if (f->b[best].size == 0) {
            memmove(&f->b[best], &f->b[best + 1], sizeof(Block) * (size_t)(f->n - best - 1));
            f->n--;
        }
        return off;
    }
    /* a free block at the top grows instead of leaving a hole below new bytes */
    bool grow_top = f->n > 0 && f->b[f->n - 1].off + f->b[f->n - 1].size == f->top;
    int64_t off = grow_top ? f->b[f->n - 1].off : f->top;
    if (size < 0 || !ck_add(off, size, &f->top)) return -1; /* the arena would pass 2^63 bytes */
    if (grow_top) f->n--;
    return off;
}

static void fl_free(FreeList *f, int64_t off, int64_t size) {
    if (size == 0) return;
    int i = 0;
    while (i < f->n && f->b[i].off < off)
        i++;
    if (!rt_grow(&f->b, &f->cap, (size_t)f->n + 1, 16)) {
        f->oom = true;
        return;
    }
    memmove(&f->b[i + 1], &f->b[i], sizeof(Block) * (size_t)(f->n - i));
    f->b[i] = (Block){off, size};
    f->n++;
    if (i + 1 < f->n && f->b[i].off + f->b[i].size == f->b[i + 1].off) { /* merge right */
        f->b[i].size += f->b[i + 1].size;
        memmove(&f->b[i + 1], &f->b[i + 2], sizeof(Block) * (size_t)(f->n - i - 2));
        f->n--;
    }
    if (i > 0 && f->b[i - 1].off + f->b[i - 1].size == f->b[i].off) { /* merge left */
        f->b[i - 1].size += f->b[i].size;
        memmove(&f->b[i], &f->b[i + 1], sizeof(Block) * (size_t)(f->n - i - 1));
        f->n--;
    }
}

/* ---- planning ----------------------------------------------------------------------------- */

/* v rounded up to a multiple of a; -1 when v is -1 or the result passes int64. */
static int64_t round_up(int64_t v, int64_t a) {
    int64_t r;
    return v >= 0 && ck_add(v, a - 1, &r) ? r / a * a : -1;
}

/* numel * element size of n; -1 when that passes int64. */
static int64_t node_bytes(const Node *n) {
    int64_t b;
    return ck_bytes(rt_shape_numel(&n->shape), rt_dtype_size(n->dtype), &b) ? b : -1;
}

static bool is_output(const Graph *g, const Node *n) {
    for (int j = 0; j < g->noutputs; j++)
        if (g->outputs[j] == n) return true;
    return false;
}

/* The input of group gr (at step t) whose storage its root may take, or -1. */
static int inplace_candidate(const MemPlan *mp, const FusionGroup *gr, int t, const uint8_t *mark,
                             const MemPlanOptions *o, const bool *taken) {
    const MemBuf *rb = &mp->bufs[mp->group_buf[t]];
    if (!o->inplace || gr->kind != FG_MAP) return -1;
    if (o->veto && o->veto(o->veto_ctx, gr)) return -1;
    for (int i = 0; i < gr->ninputs; i++) {
        const Node *x = gr->inputs[i];
        int xb = mp->buf_of[x->id];
        if (xb < 0 || taken[xb]) continue;
        const MemBuf *b = &mp->bufs[xb];
        if (b->last_use != t || !mark[x->id] || (mark[x->id] & READ_OTHER)) continue;
        if (x->dtype != gr->root->dtype || b->bytes != rb->bytes || b->bytes == 0) continue;
        if (rb->place == MB_ARENA && b->place == MB_ARENA) return xb;
        if (rb->place == MB_OUTPUT && b->place == MB_INPUT && o->donated && o->donated[b->input])
            return xb;
    }
    return -1;
}

MemPlan *pass_memplan(const FusionPlan *fp, const MemPlanOptions *opt, Arena *a) {
    MemPlanOptions o = opt ? *opt : pass_memplan_defaults();
    if (o.align <= 0) o.align = 64;
    const Graph *g = fp->graph;
    const Node *big = NULL; /* the value whose bytes pass int64 */
    MemPlan *mp = arena_alloc(a, sizeof *mp);
    size_t cnt = fp->nnodes ? fp->nnodes : 1;
    int nb = g->ninputs + fp->ngroups;
    uint8_t *mark = calloc(cnt, 1);
    bool *taken = calloc((size_t)(nb ? nb : 1), 1);
    FreeList fl = {0};
    if (!mp || !mark || !taken) goto oom;
    mp->fusion = fp;
    mp->nsteps = fp->ngroups;
    mp->buf_of = arena_alloc(a, sizeof(int) * cnt);
    mp->bufs = arena_alloc(a, sizeof(MemBuf) * (size_t)(nb ? nb : 1));
    mp->group_buf = arena_alloc(a, sizeof(int) * (size_t)(fp->ngroups ? fp->ngroups : 1));
    if (!mp->buf_of || !mp->bufs || !mp->group_buf) goto oom;
    for (size_t i = 0; i < cnt; i++)
        mp->buf_of[i] = -1;

    /* values, their sizes and definitions */
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        MemBuf *b = &mp->bufs[mp->nbufs];
        *b = (MemBuf){n, MB_INPUT, 0, -1, -1, -1, -1, i};
        if ((b->bytes = node_bytes(n)) < 0) {
            big = n;
            goto too_big;
        }
        mp->buf_of[n->id] = mp->nbufs++;
    }
    for (int t = 0; t < fp->ngroups; t++) {
        const Node *n = fp->groups[t].root;
        MemBuf *b = &mp->bufs[mp->nbufs];
        *b = (MemBuf){n, is_output(g, n) ? MB_OUTPUT : MB_ARENA, 0, -1, t, t, -1, -1};
        if ((b->bytes = node_bytes(n)) < 0) {
            big = n;
            goto too_big;
        }
        mp->group_buf[t] = mp->nbufs;
        mp->buf_of[n->id] = mp->nbufs++;
    }
    /* liveness: last reading step; outputs live to the end */
    for (int t = 0; t < fp->ngroups; t++) {
        const FusionGroup *gr = &fp->groups[t];
        for (int i = 0; i < gr->ninputs; i++) {
            int xb = mp->buf_of[gr->inputs[i]->id];
            if (xb >= 0 && mp->bufs[xb].last_use < t) mp->bufs[xb].last_use = t;
        }
    }
    for (int j = 0; j < g->noutputs; j++) {
        int xb = mp->buf_of[g->outputs[j]->id];
        if (xb >= 0) mp->bufs[xb].last_use = fp->ngroups;
    }

    /* the sweep */
    for (int t = 0; t < fp->ngroups; t++) {
        const FusionGroup *gr = &fp->groups[t];
        MemBuf *rb = &mp->bufs[mp->group_buf[t]];
        read_marks(fp, gr, mark);
        int xb = inplace_candidate(mp, gr, t, mark, &o, taken);
        clear_marks(gr, mark);
        if (xb >= 0) {
            MemBuf *x = &mp->bufs[xb];
            taken[xb] = true;
            rb->inplace_of = xb;
            mp->ninplace++;
            if (rb->place == MB_ARENA) {
                rb->offset = x->offset;
            } else {
                rb->place = MB_DONATED;
                rb->input = x->input;
                mp->ndonated++;
            }
        } else if (rb->place == MB_ARENA) {
            rb->offset = fl_alloc(&fl, round_up(rb->bytes, o.align));
            if (rb->offset < 0) {
                big = rb->node;
                goto too_big;
            }
        } else if (o.donated) { /* an output: a donated input dead by now */
            for (int i = 0; i < g->ninputs; i++) {
                int db = mp->buf_of[g->inputs[i]->id];
                const MemBuf *x = &mp->bufs[db];
                if (!o.donated[i] || taken[db] || x->last_use >= t || x->bytes == 0) continue;
                if (x->node->dtype != rb->node->dtype ||
                    !rt_shape_eq(&x->node->shape, &rb->node->shape))
                    continue;
                taken[db] = true;
                rb->place = MB_DONATED;
                rb->input = i;
                mp->ndonated++;
                break;
            }
        }
        if (rb->place == MB_ARENA &&
            !ck_add(mp->naive_bytes, round_up(rb->bytes, o.align), &mp->naive_bytes)) {
            big = rb->node;
            goto too_big;
        }
        /* release what dies here (a value taken in place lives on as the root) */
        for (int i = 0; i < gr->ninputs; i++) {
            int b = mp->buf_of[gr->inputs[i]->id];
            if (b < 0 || b == xb) continue;
            MemBuf *x = &mp->bufs[b];
            if (x->last_use == t && x->place == MB_ARENA)
                fl_free(&fl, x->offset, round_up(x->bytes, o.align));
        }
        if (rb->last_use == t && rb->place == MB_ARENA) /* computed, never read */
            fl_free(&fl, rb->offset, round_up(rb->bytes, o.align));
        if (fl.oom) goto oom;
    }
    mp->arena_bytes = fl.top;
    for (int b = 0; b < mp->nbufs; b++) {
        const MemBuf *x = &mp->bufs[b];
        big = x->node;
        if (x->place == MB_INPUT && !ck_add(mp->input_bytes, x->bytes, &mp->input_bytes))
            goto too_big;
        if ((x->place == MB_OUTPUT || x->place == MB_DONATED) &&
            !ck_add(mp->output_bytes, x->bytes, &mp->output_bytes))
            goto too_big;
    }
    free(mark);
    free(taken);
    free(fl.b);
    return mp;
oom:
    free(mark);
    free(taken);
    free(fl.b);
    diag_error(g->diags, srcloc_none(), "out of memory planning the buffers of graph %s",
               g->name ? g->name : "?");
    return NULL;
too_big:
    free(mark);
    free(taken);
    free(fl.b);
    char tb[96] = "";
    if (big) rt_shape_str(&big->shape, tb, sizeof tb);
    diag_error(g->diags, big ? big->loc : srcloc_none(),
               "graph %s: a %s%s value and those live with it need more than 2^63 bytes",
               g->name ? g->name : "?", big ? rt_dtype_name(big->dtype) : "", tb);
    return NULL;
}

/* ---- printing ------------------------------------------------------------------------------ */

const char *pass_memplan_bytes_str(int64_t bytes, char *buf, size_t n) {
    return rt_bytes_str(bytes, buf, n);
}

void pass_memplan_print(const MemPlan *mp, FILE *out) {
    static const char *places[] = {"input", "arena", "output", "donated"};
    for (int b = 0; b < mp->nbufs; b++) {
        const MemBuf *x = &mp->bufs[b];
        char sh[80];
        fprintf(out, "  %%%u %s%s %s", x->node->id, rt_dtype_name(x->node->dtype),
                rt_shape_str(&x->node->shape, sh, sizeof sh), places[x->place]);
        if (x->place == MB_ARENA) fprintf(out, " @%lld", (long long)x->offset);
        fprintf(out, " +%lld live %d..%d", (long long)x->bytes, x->def, x->last_use);
        if (x->inplace_of >= 0)
            fprintf(out, " (in place of %%%u)", mp->bufs[x->inplace_of].node->id);
        if (x->place == MB_DONATED) fprintf(out, " (input #%d)", x->input);
        fputc('\n', out);
    }
    char a[32], n[32];
    fprintf(out, "  arena %s (%s without reuse), %d in place\n",
            pass_memplan_bytes_str(mp->arena_bytes, a, sizeof a),
            pass_memplan_bytes_str(mp->naive_bytes, n, sizeof n), mp->ninplace);
}
