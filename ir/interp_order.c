/* The interpreter's order ops (ops.def): written apart from the runtime
 * routine the compiled kernels call (runtime/order.c), by other means, so
 * that test_llvm's comparison of the two checks each: cumsum in double (int64
 * for integers, wrapped when stored), argsort by qsort on (key, index) pairs,
 * components by a breadth-first flood fill from each region's first element. */
#include <stdlib.h>
#include <string.h>

#include "interp_impl.h"
#include "op_cases.h"
#include "shape.h"

typedef struct {
    double f;
    int64_t i;   /* integer keys exactly */
    int64_t pos; /* the index along the row: the tie-break, so qsort is stable */
} Key;

/* Ascending with NaN above every number; ties by position. */
static int cmp_f(const void *pa, const void *pb) {
    const Key *a = pa, *b = pb;
    bool na = isnan(a->f), nb = isnan(b->f);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->f != b->f) return a->f < b->f ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}
/* The reverse order of the keys, ties still by position. */
static int cmp_f_desc(const void *pa, const void *pb) {
    const Key *a = pa, *b = pb;
    bool na = isnan(a->f), nb = isnan(b->f);
    if (na != nb) return na ? -1 : 1;
    if (!na && a->f != b->f) return a->f > b->f ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}
static int cmp_i(const void *pa, const void *pb) {
    const Key *a = pa, *b = pb;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}
static int cmp_i_desc(const void *pa, const void *pb) {
    const Key *a = pa, *b = pb;
    if (a->i != b->i) return a->i > b->i ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

static bool argsort(const Node *n, const RtTensor *a, RtTensor *o, const int64_t *od) {
    int64_t len = od[1], inner = od[2];
    Key *k = malloc(sizeof(Key) * (size_t)(len ? len : 1));
    if (!k) return false;
    bool fl = interp_is_float(a->dtype), desc = n->attr.order.flag != 0;
    int (*cmp)(const void *, const void *) =
        fl ? (desc ? cmp_f_desc : cmp_f) : (desc ? cmp_i_desc : cmp_i);
    for (int64_t p = 0; p < od[0]; p++)
        for (int64_t c = 0; c < inner; c++) {
            int64_t base = p * len * inner + c;
            for (int64_t j = 0; j < len; j++) {
                int64_t at = base + j * inner;
                k[j] = (Key){fl ? ld_f(a->data, a->dtype, at) : 0,
                             fl ? 0 : ld_i(a->data, a->dtype, at), j};
            }
            qsort(k, (size_t)len, sizeof *k, cmp);
            for (int64_t j = 0; j < len; j++)
                st_i(o->data, DT_I64, base + j * inner, k[j].pos);
        }
    free(k);
    return true;
}

static void cumsum(const Node *n, const RtTensor *a, RtTensor *o, const int64_t *od) {
    int64_t len = od[1], inner = od[2];
    bool fl = interp_is_float(a->dtype), rev = n->attr.order.flag != 0;
    for (int64_t p = 0; p < od[0]; p++)
        for (int64_t c = 0; c < inner; c++) {
            double s = 0;
            uint64_t si = 0;
            for (int64_t j = 0; j < len; j++) {
                int64_t at = p * len * inner + (rev ? len - 1 - j : j) * inner + c;
                if (fl) {
                    s += ld_f(a->data, a->dtype, at);
                    st_f(o->data, o->dtype, at, s);
                } else {
                    si += (uint64_t)ld_i(a->data, a->dtype, at);
                    st_i(o->data, o->dtype, at, (int64_t)si);
                }
            }
        }
}

static bool components(const RtTensor *a, RtTensor *o, int64_t rows, int64_t cols) {
    int64_t total = rows * cols, next = 0;
    int64_t *queue = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    if (!queue) return false;
    const uint8_t *m = a->data;
    int64_t *lab = o->data; /* zeroed by ir_interp_alloc */
    for (int64_t s = 0; s < total; s++) {
        if (!m[s] || lab[s]) continue;
        lab[s] = ++next;
        int64_t head = 0, tail = 0;
        queue[tail++] = s;
        while (head < tail) {
            int64_t e = queue[head++], r = e / cols, c = e % cols;
            int64_t nb[4] = {r > 0 ? e - cols : -1, r + 1 < rows ? e + cols : -1,
                             c > 0 ? e - 1 : -1, c + 1 < cols ? e + 1 : -1};
            for (int q = 0; q < 4; q++)
                if (nb[q] >= 0 && m[nb[q]] && !lab[nb[q]]) {
                    lab[nb[q]] = next;
                    queue[tail++] = nb[q];
                }
        }
    }
    free(queue);
    return true;
}

RtTensor *ir_interp_order(const Node *n, RtTensor *const *src, DiagList *d) {
    RtTensor *o = ir_interp_alloc(n, d);
    if (!o) return NULL;
    int64_t od[3];
    ir_order_dims(n, od);
    bool ok = true;
    switch (n->op) {
    case OP_CUMSUM:
        cumsum(n, src[0], o, od);
        break;
    case OP_ARGSORT:
        ok = argsort(n, src[0], o, od);
        break;
    case OP_COMPONENTS:
        ok = components(src[0], o, od[1], od[2]);
        break;
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_REDUCE:
    IR_CASES_MOVE:
    IR_CASES_CONTR:
    IR_CASES_CALL:
    IR_CASES_RAND:
        rt_tensor_free(o);
        diag_error(d, n->loc, "internal error: op %s is not an order op", ir_op_name(n->op));
        return NULL;
    }
    if (!ok) {
        rt_tensor_free(o);
        diag_error(d, n->loc, "%s: out of memory", ir_op_name(n->op));
        return NULL;
    }
    return o;
}
