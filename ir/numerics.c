/* --check-numerics (numerics.h). */
#include "numerics.h"

#include <math.h>
#include <string.h>

int64_t ir_numerics_find(const void *p, DType dt, int64_t n) {
    if (dt == DT_F32) {
        const float *f = p;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(f[i])) return i;
    } else if (dt == DT_F64) {
        const double *f = p;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(f[i])) return i;
    }
    return -1;
}

bool ir_numerics_computes(const Node *n) {
    if (n->op == OP_INPUT || n->op == OP_CONST || n->op == OP_IOTA || n->op == OP_STOP_GRAD)
        return false;
    return !(ir_ops[n->op].flags & OPF_MOVE);
}

static double value_at(const void *p, DType dt, int64_t i) {
    return dt == DT_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* "[1,3]": the coordinates of flat index i in s. */
static void coords(const Shape *s, int64_t i, char *buf, size_t n) {
    int64_t c[RT_MAX_RANK];
    for (int a = s->rank - 1; a >= 0; a--) {
        int64_t d = s->dims[a] > 0 ? s->dims[a] : 1;
        c[a] = i % d;
        i /= d;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int a = 0; a < s->rank && k < n; a++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", a ? "," : "", (long long)c[a]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

void ir_numerics_error(DiagList *d, const Node *n, const void *p, int64_t i, RtTensor *const *srcs,
                       const NumericsCheck *c) {
    double v = value_at(p, n->dtype, i);
    const char *what = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    char at[200] = " in", sh[128], step[48] = "", from[64] = "";
    if (n->shape.rank > 0) {
        char c0[160];
        coords(&n->shape, i, c0, sizeof c0);
        snprintf(at, sizeof at, " at element %s of", c0);
    }
    rt_shape_str(&n->shape, sh, sizeof sh);
    if (c && c->step >= 0) snprintf(step, sizeof step, " (step %lld)", (long long)c->step);
    for (int k = 0; srcs && k < n->nsrc && !from[0]; k++) {
        const RtTensor *t = srcs[k];
        if (t && ir_numerics_find(t->data, t->dtype, rt_shape_numel(&t->shape)) >= 0)
            snprintf(from, sizeof from, "; its operand %d already held a non-finite value", k + 1);
    }
    diag_error(d, n->loc, "--check-numerics: %s produced %s%s %s%s%s%s", ir_op_name(n->op), what,
               at, rt_dtype_name(n->dtype), sh, step, from);
}
