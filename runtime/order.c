/* The running sum, stable sort order and connected components (order.h). */
#include "order.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

/* ---- cumsum ---------------------------------------------------------------------------- */

/* Integers add with wrap-around (unsigned arithmetic), as elsewhere in dflow. */
#define CUMSUM_ROW(T, ACC)                                                                         \
    do {                                                                                           \
        const T *a = in;                                                                           \
        T *o = out;                                                                                \
        ACC s = 0;                                                                                 \
        for (int64_t j = 0; j < n; j++) {                                                          \
            int64_t at = base + (flag ? n - 1 - j : j) * inner;                                    \
            s = (ACC)(s + (ACC)a[at]);                                                             \
            o[at] = (T)s;                                                                          \
        }                                                                                          \
    } while (0)

static int32_t cumsum(int32_t dt, int32_t flag, const void *in, void *out, int64_t n, int64_t inner,
                      int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; p++)
        for (int64_t c = 0; c < inner; c++) {
            int64_t base = p * n * inner + c;
            switch ((DType)dt) {
            case DT_F32: /* accumulated in f64, as sum() does, rounded per element */
                CUMSUM_ROW(float, double);
                break;
            case DT_F64:
                CUMSUM_ROW(double, double);
                break;
            case DT_I32:
                CUMSUM_ROW(int32_t, uint32_t);
                break;
            case DT_I64:
                CUMSUM_ROW(int64_t, uint64_t);
                break;
            case DT_BOOL:
            case DT_F16:
            case DT_BF16:
                return 1;
            }
        }
    return 0;
}

/* ---- argsort ---------------------------------------------------------------------------- */

/* Does key a come strictly before key b? Ascending: a < b with NaN above
 * every number (numpy's order); descending: the reverse of that order. */
#define LESS_F(a, b) (!isnan(a) && (isnan(b) || (a) < (b)))
#define BEFORE_F(a, b, desc) ((desc) ? LESS_F(b, a) : LESS_F(a, b))
#define BEFORE_I(a, b, desc) ((desc) ? (b) < (a) : (a) < (b))

/* Bottom-up merge sort of idx[0..n) by key[], taking from the right run
 * only when its key comes strictly first: equal keys keep index order. */
#define MERGE_SORT(NAME, T, BEFORE)                                                                \
    static void NAME(const T *key, int64_t *idx, int64_t *tmp, int64_t n, bool desc) {             \
        for (int64_t w = 1; w < n; w *= 2) {                                                       \
            for (int64_t l = 0; l < n; l += 2 * w) {                                               \
                int64_t m = l + w < n ? l + w : n, r = l + 2 * w < n ? l + 2 * w : n;              \
                int64_t i = l, j = m, k = l;                                                       \
                while (i < m && j < r)                                                             \
                    tmp[k++] = BEFORE(key[idx[j]], key[idx[i]], desc) ? idx[j++] : idx[i++];       \
                while (i < m)                                                                      \
                    tmp[k++] = idx[i++];                                                           \
                while (j < r)                                                                      \
                    tmp[k++] = idx[j++];                                                           \
            }                                                                                      \
            memcpy(idx, tmp, sizeof *idx *(size_t)n);                                              \
        }                                                                                          \
    }

MERGE_SORT(sort_f32, float, BEFORE_F)
MERGE_SORT(sort_f64, double, BEFORE_F)
MERGE_SORT(sort_i32, int32_t, BEFORE_I)
MERGE_SORT(sort_i64, int64_t, BEFORE_I)

static size_t dt_size(int32_t dt) {
    return dt == DT_F32 || dt == DT_I32 ? 4 : 8;
}

static int32_t argsort(int32_t dt, int32_t flag, const void *in, void *out, int64_t n,
                       int64_t inner, int64_t lo, int64_t hi) {
    if (n == 0) return 0;
    size_t es = dt_size(dt);
    char *key = malloc(es * (size_t)n);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n), *tmp = malloc(sizeof(int64_t) * (size_t)n);
    int32_t rc = key && idx && tmp ? 0 : 1;
    for (int64_t p = lo; p < hi && !rc; p++)
        for (int64_t c = 0; c < inner && !rc; c++) {
            int64_t base = p * n * inner + c;
            for (int64_t j = 0; j < n; j++) { /* the row, contiguous */
                memcpy(key + (size_t)j * es, (const char *)in + (size_t)(base + j * inner) * es,
                       es);
                idx[j] = j;
            }
            switch ((DType)dt) {
            case DT_F32:
                sort_f32((const float *)key, idx, tmp, n, flag != 0);
                break;
            case DT_F64:
                sort_f64((const double *)key, idx, tmp, n, flag != 0);
                break;
            case DT_I32:
                sort_i32((const int32_t *)key, idx, tmp, n, flag != 0);
                break;
            case DT_I64:
                sort_i64((const int64_t *)key, idx, tmp, n, flag != 0);
                break;
            case DT_BOOL:
            case DT_F16:
            case DT_BF16:
                rc = 1;
                break;
            }
            for (int64_t j = 0; j < n && !rc; j++)
                ((int64_t *)out)[base + j * inner] = idx[j];
        }
    free(key);
    free(idx);
    free(tmp);
    return rc;
}

/* ---- connected components ------------------------------------------------------------- */

static int64_t find(int64_t *parent, int64_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]]; /* path halving */
        i = parent[i];
    }
    return i;
}

/* The smaller root wins, so each root is its region's first element in raster order. */
static void unite(int64_t *parent, int64_t a, int64_t b) {
    a = find(parent, a);
    b = find(parent, b);
    if (a < b)
        parent[b] = a;
    else if (b < a)
        parent[a] = b;
}

static int32_t components(const void *in, void *out, int64_t rows, int64_t cols) {
    int64_t total = rows * cols;
    const uint8_t *m = in;
    int64_t *o = out;
    int64_t *parent = malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    if (!parent) return 1;
    for (int64_t i = 0; i < total; i++) {
        parent[i] = i;
        if (!m[i]) continue;
        if (i % cols > 0 && m[i - 1]) unite(parent, i, i - 1);
        if (i >= cols && m[i - cols]) unite(parent, i, i - cols);
    }
    /* a root comes before every other element of its region: label it on sight */
    int64_t next = 0;
    for (int64_t i = 0; i < total; i++) {
        if (!m[i])
            o[i] = 0;
        else if (find(parent, i) == i)
            o[i] = ++next;
        else
            o[i] = o[find(parent, i)];
    }
    free(parent);
    return 0;
}

int32_t dflow_rt_order(int32_t op, int32_t dt, int32_t flag, const void *in, void *out,
                       int64_t outer, int64_t n, int64_t inner, int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > outer) hi = outer;
    if (lo >= hi) return 0;
    switch (op) {
    case RT_ORDER_CUMSUM:
        return cumsum(dt, flag, in, out, n, inner, lo, hi);
    case RT_ORDER_ARGSORT:
        return argsort(dt, flag, in, out, n, inner, lo, hi);
    case RT_ORDER_COMPONENTS:
        return outer == 1 && dt == DT_BOOL ? components(in, out, n, inner) : 1;
    default:
        return 1;
    }
}
