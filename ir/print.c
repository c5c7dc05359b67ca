/* The textual form of a graph, as `dflow ir` shows it and golden tests
 * compare it:
 *
 *   graph NAME(%0 x: f32[64,784], %1 param mlp.W: f32[784,128])
 *     %2 = matmul f32[64,128] %0, %1  ; model.dfl:14:9
 *     %3 = sum f32[64] %2 axes={1}
 *     return %3
 *
 * Inputs appear only in the header. Attributes print by name in a fixed order;
 * numbers use the shortest text that reads back to the same double, so the
 * dump is stable across platforms. Nothing here allocates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "op_cases.h"
#include "shape.h"

/* Shortest %g rendering of v that round-trips. */
static void print_num(FILE *out, double v) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, out);
}

static void print_i64s(FILE *out, const char *key, const int64_t *v, int n) {
    fprintf(out, " %s=[", key);
    for (int i = 0; i < n; i++)
        fprintf(out, i ? ",%lld" : "%lld", (long long)v[i]);
    fputc(']', out);
}

static void print_attrs(FILE *out, const Node *n) {
    const Attr *a = &n->attr;
    int rank = n->nsrc ? n->src[0]->shape.rank : n->shape.rank;
    switch (n->op) {
    case OP_CONST:
        fputs(" value=", out);
        if (rt_dtype_is_int(n->dtype))
            fprintf(out, "%lld", (long long)a->constant.ivalue);
        else
            print_num(out, a->constant.value);
        break;
    case OP_IOTA:
        fprintf(out, " axis=%d", a->iota.axis);
        break;
    case OP_SUM:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
    case OP_ARGMAX: {
        fputs(" axes={", out);
        bool first = true;
        for (int i = 0; i < 32; i++) {
            if (a->reduce.axes >> i & 1) {
                fprintf(out, first ? "%d" : ",%d", i);
                first = false;
            }
        }
        fputc('}', out);
        break;
    }
    case OP_PERMUTE:
        fputs(" perm=[", out);
        for (int i = 0; i < rank; i++)
            fprintf(out, i ? ",%d" : "%d", a->permute.perm[i]);
        fputc(']', out);
        break;
    case OP_SLICE:
        print_i64s(out, "start", a->slice.start, rank);
        print_i64s(out, "step", a->slice.step, rank);
        break;
    case OP_CONCAT:
        fprintf(out, " axis=%d", a->concat.axis);
        break;
    case OP_PAD:
        print_i64s(out, "lo", a->pad.lo, rank);
        print_i64s(out, "hi", a->pad.hi, rank);
        fputs(" value=", out);
        print_num(out, a->pad.value);
        break;
    case OP_RNG_UNIFORM:
    case OP_RNG_NORMAL:
        fprintf(out, " stream=0x%08x", a->rng.stream);
        break;
    case OP_FRESH_SEED:
        fprintf(out, " k=%u", a->rng.k);
        break;
    IR_CASES_ORDER:
        fprintf(out, " axis=%d", a->order.axis);
        if (a->order.flag) fputs(n->op == OP_CUMSUM ? " reverse" : " descending", out);
        break;
    case OP_INPUT:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    case OP_RESHAPE:
    case OP_BROADCAST:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_CALL:
        break;
    }
}

static void print_loc(FILE *out, const Graph *g, SrcLoc loc) {
    if (loc.line == 0) return;
    const SourceFile *f = g->diags ? source_get(g->diags->sources, loc.file) : NULL;
    if (f)
        fprintf(out, "  ; %s:%u:%u", f->path, loc.line, loc.col);
    else
        fprintf(out, "  ; %u:%u", loc.line, loc.col);
}

void ir_print(const Graph *g, FILE *out) {
    if (!g || !out) return;
    char tb[128];
    fprintf(out, "graph %s(", g->name ? g->name : "main");
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        if (!n) continue;
        fprintf(out, "%s%%%u", i ? ", " : "", n->id);
        if (n->flags & NODE_PARAM) fputs(" param", out);
        if (n->name) fprintf(out, " %s", n->name);
        fprintf(out, ": %s", ir_type_str(n->dtype, &n->shape, tb, sizeof tb));
    }
    fputs(")\n", out);
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!n || n->op == OP_INPUT) continue;
        fprintf(out, "  %%%u = %s %s", n->id, ir_op_name(n->op),
                ir_type_str(n->dtype, &n->shape, tb, sizeof tb));
        for (int k = 0; k < n->nsrc; k++)
            fprintf(out, k ? ", %%%u" : " %%%u", n->src[k] ? n->src[k]->id : 0u);
        print_attrs(out, n);
        if (n->name) fprintf(out, " name=\"%s\"", n->name);
        if (n->flags & NODE_NO_FUSE) fputs(" no_fuse", out);
        print_loc(out, g, n->loc);
        fputc('\n', out);
    }
    fputs("  return", out);
    for (int i = 0; i < g->noutputs; i++)
        fprintf(out, i ? ", %%%u" : " %%%u", g->outputs[i] ? g->outputs[i]->id : 0u);
    fputc('\n', out);
}
