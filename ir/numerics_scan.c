/* --check-numerics (numerics.h): the scan and the message, without the op
 * table, so a built executable (which carries no graph nodes) links them. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "numerics.h"

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

void ir_numerics_error_at(DiagList *d, SrcLoc loc, const char *op, DType dt, const Shape *shape,
                          const void *p, int64_t i, int from_operand, const NumericsCheck *c) {
    double v = value_at(p, dt, i);
    const char *what = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
    char at[200] = " in", sh[128], step[48] = "", from[64] = "";
    if (shape->rank > 0) {
        char c0[160];
        coords(shape, i, c0, sizeof c0);
        snprintf(at, sizeof at, " at element %s of", c0);
    }
    rt_shape_str(shape, sh, sizeof sh);
    if (c && c->step >= 0) snprintf(step, sizeof step, " (step %lld)", (long long)c->step);
    if (from_operand > 0)
        snprintf(from, sizeof from, "; its operand %d already held a non-finite value",
                 from_operand);
    diag_error(d, loc, "--check-numerics: %s produced %s%s %s%s%s%s", op, what, at,
               rt_dtype_name(dt), sh, step, from);
}
