/* Linear-algebra test references (linalg_ref.h). */
#include "linalg_ref.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "ir_helpers.h"

/* A batch of row-major matrices in double. */
typedef struct {
    int64_t batch, r, c;
    double *v;
} Mat;

static Mat mat_new(int64_t batch, int64_t r, int64_t c) {
    Mat m = {batch, r, c, calloc((size_t)(batch * r * c + 1), sizeof(double))};
    cr_assert_not_null(m.v);
    return m;
}

/* t as the current batch of matrices r x c (a vector [.., n] is r = 1 or c = 1). */
static int64_t cur_batch;
static Mat mat_of(const RtTensor *t, int64_t r, int64_t c) {
    int64_t n = rt_shape_numel(&t->shape);
    cr_assert_eq(n, cur_batch * r * c, "a result of %lld elements, not %lld x %lld x %lld",
                 (long long)n, (long long)cur_batch, (long long)r, (long long)c);
    Mat m = mat_new(cur_batch, r, c);
    for (int64_t i = 0; i < n; i++)
        m.v[i] = rt_tensor_get_f64(t, i);
    return m;
}

static double *at(const Mat *m, int64_t b, int64_t i, int64_t j) {
    return &m->v[(b * m->r + i) * m->c + j];
}

static Mat mat_mul(const Mat *a, const Mat *b) {
    Mat p = mat_new(a->batch, a->r, b->c);
    for (int64_t t = 0; t < a->batch; t++)
        for (int64_t i = 0; i < a->r; i++)
            for (int64_t j = 0; j < b->c; j++) {
                double s = 0;
                for (int64_t k = 0; k < a->c; k++)
                    s += *at(a, t, i, k) * *at(b, t, k, j);
                *at(&p, t, i, j) = s;
            }
    return p;
}

static Mat mat_t(const Mat *a) {
    Mat p = mat_new(a->batch, a->c, a->r);
    for (int64_t t = 0; t < a->batch; t++)
        for (int64_t i = 0; i < a->r; i++)
            for (int64_t j = 0; j < a->c; j++)
                *at(&p, t, j, i) = *at(a, t, i, j);
    return p;
}

/* a with column j of matrix t scaled by s[t, j]. */
static Mat mat_scale_cols(const Mat *a, const Mat *s) {
    Mat p = mat_new(a->batch, a->r, a->c);
    for (int64_t t = 0; t < a->batch; t++)
        for (int64_t i = 0; i < a->r; i++)
            for (int64_t j = 0; j < a->c; j++)
                *at(&p, t, i, j) = *at(a, t, i, j) * s->v[t * a->c + j];
    return p;
}

static Mat mat_eye(int64_t batch, int64_t n) {
    Mat p = mat_new(batch, n, n);
    for (int64_t t = 0; t < batch; t++)
        for (int64_t i = 0; i < n; i++)
            *at(&p, t, i, i) = 1;
    return p;
}

static double max_abs(const Mat *a) {
    double m = 0;
    for (int64_t i = 0; i < a->batch * a->r * a->c; i++)
        m = fmax(m, fabs(a->v[i]));
    return m;
}

static void expect_near(const char *what, const char *rel, const Mat *got, const Mat *want,
                        double tol) {
    cr_assert(got->batch == want->batch && got->r == want->r && got->c == want->c,
              "%s: %s: shapes differ", what, rel);
    for (int64_t i = 0; i < got->batch * got->r * got->c; i++)
        if (!(fabs(got->v[i] - want->v[i]) <= tol)) {
            cr_expect(false, "%s: %s: element %lld is %.17g, want %.17g (tolerance %g)", what, rel,
                      (long long)i, got->v[i], want->v[i], tol);
            return;
        }
}

/* The lower (lower > 0) or upper triangle of every matrix is exactly zero. */
static void expect_zero_triangle(const char *what, const Mat *m, bool upper) {
    for (int64_t t = 0; t < m->batch; t++)
        for (int64_t i = 0; i < m->r; i++)
            for (int64_t j = 0; j < m->c; j++)
                if ((upper ? j > i : j < i) && *at(m, t, i, j) != 0) {
                    cr_expect(false, "%s: entry [%lld,%lld] of matrix %lld is %g, not 0", what,
                              (long long)i, (long long)j, (long long)t, *at(m, t, i, j));
                    return;
                }
}

static void free_mats(Mat *m, int n) {
    for (int i = 0; i < n; i++)
        free(m[i].v);
}

Node *th_la_graph(Graph *g, OpKind op, DType dt, Shape sa, Shape sb, SrcLoc loc) {
    Node *src[2] = {ir_input(g, dt, sa, "a", loc), NULL};
    if (op == OP_SOLVE) src[1] = ir_input(g, dt, sb, "b", loc);
    Node *t = ir_call(g, op, src, loc);
    cr_assert_not_null(t, "building %s", ir_op_name(op));
    Shape res[IR_MAX_RESULTS];
    int n = ir_call_results(t, res);
    for (int i = 0; i < n; i++)
        ir_graph_add_output(g, ir_tuple_get(g, t, i, loc));
    return t;
}

RtTensor *th_la_input(OpKind op, int which, DType dt, Shape s, uint64_t *rng) {
    RtTensor *t = rt_tensor_new(dt, s);
    cr_assert_not_null(t);
    int r = s.rank;
    int64_t n = rt_shape_numel(&s), rows = s.dims[r - 2], cols = s.dims[r - 1];
    int64_t per = rows * cols, batch = per ? n / per : 0;
    double *m = calloc((size_t)(n + 1), sizeof(double));
    cr_assert_not_null(m);
    for (int64_t i = 0; i < n; i++)
        m[i] = th_uniform(rng, -1, 1);
    bool spd = op == OP_CHOLESKY || op == OP_EIGH;
    /* det and slogdet get plain random matrices: partial pivoting then swaps rows,
       which the sign must count */
    bool square = which == 0 && (op == OP_SOLVE || op == OP_INV);
    for (int64_t b = 0; b < batch; b++) {
        double *a = m + b * per;
        if (spd) { /* M M^T / n + I, symmetric to the last bit */
            double *p = calloc((size_t)per, sizeof(double));
            cr_assert_not_null(p);
            for (int64_t i = 0; i < rows; i++)
                for (int64_t j = 0; j <= i; j++) {
                    double acc = 0;
                    for (int64_t k = 0; k < cols; k++)
                        acc += a[i * cols + k] * a[j * cols + k];
                    p[i * cols + j] = p[j * cols + i] = acc / (double)cols + (i == j);
                }
            for (int64_t i = 0; i < per; i++)
                a[i] = p[i];
            free(p);
        } else if (square) {
            for (int64_t i = 0; i < rows; i++)
                a[i * cols + i] += (double)rows;
        }
    }
    for (int64_t i = 0; i < n; i++)
        rt_tensor_set_f64(t, i, m[i]);
    free(m);
    return t;
}

void th_la_verify(const char *what, OpKind op, const RtTensor *a, const RtTensor *b,
                  RtTensor *const *res) {
    int r = a->shape.rank;
    int64_t m = a->shape.dims[r - 2], n = a->shape.dims[r - 1], k = m < n ? m : n;
    cur_batch = 1;
    for (int i = 0; i < r - 2; i++)
        cur_batch *= a->shape.dims[i];
    Mat A = mat_of(a, m, n);
    double tol = (a->dtype == DT_F32 ? 1e-5 : 1e-12) * fmax(1, max_abs(&A));
    Mat w[8] = {A};
    int nw = 1;
    switch (op) {
    case OP_SOLVE: {
        int64_t c = b->shape.dims[r - 1];
        Mat B = mat_of(b, n, c), X = mat_of(res[0], n, c);
        Mat AX = mat_mul(&A, &X);
        expect_near(what, "A X = B", &AX, &B, tol * fmax(1, max_abs(&X)));
        w[nw++] = B, w[nw++] = X, w[nw++] = AX;
        break;
    }
    case OP_CHOLESKY: {
        Mat Lm = mat_of(res[0], n, n), Lt = mat_t(&Lm), LLt = mat_mul(&Lm, &Lt);
        expect_zero_triangle(what, &Lm, true);
        expect_near(what, "L L^T = A", &LLt, &A, tol);
        w[nw++] = Lm, w[nw++] = Lt, w[nw++] = LLt;
        break;
    }
    case OP_INV: {
        Mat Y = mat_of(res[0], n, n), AY = mat_mul(&A, &Y), I = mat_eye(A.batch, n);
        expect_near(what, "A inv(A) = I", &AY, &I, tol * fmax(1, max_abs(&Y)));
        w[nw++] = Y, w[nw++] = AY, w[nw++] = I;
        break;
    }
    case OP_DET:
    case OP_SLOGDET: {
        /* det of the factors-free kind: the product of U's pivots against a
         * cofactor expansion would need n!, so compare with Gaussian
         * elimination in double (partial pivoting, written here) */
        for (int64_t t = 0; t < A.batch; t++) {
            double *q = malloc(sizeof(double) * (size_t)(n * n + 1)), d = 1;
            cr_assert_not_null(q);
            for (int64_t i = 0; i < n * n; i++)
                q[i] = A.v[t * n * n + i];
            for (int64_t c = 0; c < n && d != 0; c++) {
                int64_t p = c;
                for (int64_t i = c + 1; i < n; i++)
                    if (fabs(q[i * n + c]) > fabs(q[p * n + c])) p = i;
                if (q[p * n + c] == 0) {
                    d = 0;
                    break;
                }
                if (p != c) {
                    d = -d;
                    for (int64_t j = 0; j < n; j++) {
                        double s = q[c * n + j];
                        q[c * n + j] = q[p * n + j];
                        q[p * n + j] = s;
                    }
                }
                d *= q[c * n + c];
                for (int64_t i = c + 1; i < n; i++) {
                    double f = q[i * n + c] / q[c * n + c];
                    for (int64_t j = c; j < n; j++)
                        q[i * n + j] -= f * q[c * n + j];
                }
            }
            free(q);
            double rtol = a->dtype == DT_F32 ? 1e-5 : 1e-12;
            if (op == OP_DET) {
                double got = rt_tensor_get_f64(res[0], t);
                cr_expect(fabs(got - d) <= rtol * fmax(1, fabs(d)), "%s: det %d: %.17g, want %.17g",
                          what, (int)t, got, d);
            } else {
                double sg = rt_tensor_get_f64(res[0], t), la = rt_tensor_get_f64(res[1], t);
                cr_expect_eq(sg, d > 0 ? 1 : d < 0 ? -1 : 0, "%s: sign %d: %g", what, (int)t, sg);
                if (d != 0)
                    cr_expect(fabs(la - log(fabs(d))) <= rtol * fmax(1, fabs(la)),
                              "%s: logabsdet %d: %.17g, want %.17g", what, (int)t, la,
                              log(fabs(d)));
                else
                    cr_expect(isinf(la) && la < 0, "%s: logabsdet of a singular matrix: %g", what,
                              la);
            }
        }
        break;
    }
    case OP_QR: {
        Mat Q = mat_of(res[0], m, k), R = mat_of(res[1], k, n), QR = mat_mul(&Q, &R);
        Mat Qt = mat_t(&Q), QtQ = mat_mul(&Qt, &Q), I = mat_eye(A.batch, k);
        expect_near(what, "Q R = A", &QR, &A, tol);
        expect_near(what, "Q^T Q = I", &QtQ, &I, a->dtype == DT_F32 ? 1e-5 : 1e-12);
        expect_zero_triangle(what, &R, false);
        w[nw++] = Q, w[nw++] = R, w[nw++] = QR, w[nw++] = Qt, w[nw++] = QtQ, w[nw++] = I;
        break;
    }
    case OP_SVD: {
        Mat U = mat_of(res[0], m, k), S = mat_of(res[1], 1, k), Vt = mat_of(res[2], k, n);
        Mat US = mat_scale_cols(&U, &S), USV = mat_mul(&US, &Vt);
        expect_near(what, "U diag(S) Vt = A", &USV, &A, tol);
        for (int64_t t = 0; t < A.batch; t++)
            for (int64_t i = 0; i < k; i++) {
                double s = S.v[t * k + i];
                cr_expect(s >= 0 && (i == 0 || s <= S.v[t * k + i - 1]),
                          "%s: S[%d] = %g is negative or out of order", what, (int)i, s);
            }
        Mat Ut = mat_t(&U), UtU = mat_mul(&Ut, &U);
        Mat I = mat_eye(A.batch, k);
        expect_near(what, "U^T U = I", &UtU, &I, a->dtype == DT_F32 ? 1e-5 : 1e-12);
        w[nw++] = U, w[nw++] = S, w[nw++] = Vt, w[nw++] = US, w[nw++] = USV, w[nw++] = Ut;
        free_mats(&UtU, 1);
        free_mats(&I, 1);
        break;
    }
    case OP_EIGH: {
        Mat W = mat_of(res[0], 1, n), V = mat_of(res[1], n, n);
        Mat VW = mat_scale_cols(&V, &W), Vt = mat_t(&V), VWVt = mat_mul(&VW, &Vt);
        expect_near(what, "V diag(w) V^T = A", &VWVt, &A, tol);
        for (int64_t t = 0; t < A.batch; t++)
            for (int64_t i = 1; i < n; i++)
                cr_expect(W.v[t * n + i - 1] <= W.v[t * n + i], "%s: w not ascending at %d", what,
                          (int)i);
        Mat VtV = mat_mul(&Vt, &V), I = mat_eye(A.batch, n);
        expect_near(what, "V^T V = I", &VtV, &I, a->dtype == DT_F32 ? 1e-5 : 1e-12);
        w[nw++] = W, w[nw++] = V, w[nw++] = VW, w[nw++] = Vt, w[nw++] = VWVt, w[nw++] = VtV;
        free_mats(&I, 1);
        break;
    }
    default:
        cr_expect(false, "%s: %s is no library call", what, ir_op_name(op));
        break;
    }
    free_mats(w, nw);
}
