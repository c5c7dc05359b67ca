/* Library calls into LAPACK (runtime/linalg.h has the contract).
 *
 * Debian's OpenBLAS exports the Fortran LAPACK routines but no LAPACKE, so
 * they are declared here: every argument by pointer, matrices column-major,
 * character arguments followed by their hidden lengths (gfortran's ABI).
 * Each matrix is copied into an f64 column-major workspace (the transpose
 * of the row-major input), factorised there, and written back row-major;
 * the copies cost O(n^2) against the O(n^3) factorisations. */
#include "linalg.h"

#include <cblas.h> /* blasint: OpenBLAS's LAPACK integer */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef blasint la_int;

void dgesv_(const la_int *n, const la_int *nrhs, double *a, const la_int *lda, la_int *ipiv,
            double *b, const la_int *ldb, la_int *info);
void dpotrf_(const char *uplo, const la_int *n, double *a, const la_int *lda, la_int *info,
             size_t uplo_len);
void dgetrf_(const la_int *m, const la_int *n, double *a, const la_int *lda, la_int *ipiv,
             la_int *info);
void dgetri_(const la_int *n, double *a, const la_int *lda, const la_int *ipiv, double *work,
             const la_int *lwork, la_int *info);
void dgeqrf_(const la_int *m, const la_int *n, double *a, const la_int *lda, double *tau,
             double *work, const la_int *lwork, la_int *info);
void dorgqr_(const la_int *m, const la_int *n, const la_int *k, double *a, const la_int *lda,
             const double *tau, double *work, const la_int *lwork, la_int *info);
void dgesdd_(const char *jobz, const la_int *m, const la_int *n, double *a, const la_int *lda,
             double *s, double *u, const la_int *ldu, double *vt, const la_int *ldvt, double *work,
             const la_int *lwork, la_int *iwork, la_int *info, size_t jobz_len);
void dsyevd_(const char *jobz, const char *uplo, const la_int *n, double *a, const la_int *lda,
             double *w, double *work, const la_int *lwork, la_int *iwork, const la_int *liwork,
             la_int *info, size_t jobz_len, size_t uplo_len);

/* The last failure (see rt_linalg_error_text). */
static struct {
    int32_t status;
    int64_t matrix, batch, info;
    char text[160];
} last;

static int32_t fail(int32_t status, int64_t matrix, int64_t batch, int64_t info) {
    last.status = status;
    last.matrix = matrix;
    last.batch = batch;
    last.info = info;
    return status;
}

const char *rt_linalg_error_text(void) {
    const char *what = "";
    char detail[64] = "";
    switch ((RtLaStatus)last.status) {
    case RT_LA_OK:
        return "";
    case RT_LA_SINGULAR:
        what = "matrix is singular";
        snprintf(detail, sizeof detail, "zero pivot U[%lld,%lld]", (long long)last.info - 1,
                 (long long)last.info - 1);
        break;
    case RT_LA_NOT_PD:
        what = "matrix is not positive definite";
        snprintf(detail, sizeof detail, "leading minor %lld", (long long)last.info);
        break;
    case RT_LA_NO_CONVERGE:
        what = "the LAPACK iteration did not converge";
        break;
    case RT_LA_NONFINITE:
        what = "matrix has an inf or nan entry";
        break;
    case RT_LA_OOM:
        what = "out of memory for the LAPACK workspace";
        break;
    case RT_LA_TOO_LARGE:
        what = "matrix dimensions too large for LAPACK";
        break;
    case RT_LA_BAD_ARGUMENT:
        what = "internal error: LAPACK rejected an argument";
        snprintf(detail, sizeof detail, "argument %lld", (long long)-last.info);
        break;
    }
    char where[64] = "";
    if (last.batch > 1)
        snprintf(where, sizeof where, "matrix %lld of the batch", (long long)last.matrix);
    const char *sep = detail[0] && where[0] ? ", " : "";
    if (detail[0] || where[0])
        snprintf(last.text, sizeof last.text, "%s (%s%s%s)", what, where, sep, detail);
    else
        snprintf(last.text, sizeof last.text, "%s", what);
    return last.text;
}

void rt_linalg_error_clear(void) {
    last.status = RT_LA_OK;
}

/* ---- row-major <-> f64 column-major ------------------------------------------------------ */

static double get(const void *p, bool f64, int64_t i) {
    return f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}

static void put(void *p, bool f64, int64_t i, double v) {
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

/* w (column-major, leading dimension r) = the r x c row-major matrix at src. */
static bool to_cm(double *w, const void *src, bool f64, int64_t r, int64_t c) {
    bool finite = true;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) {
            double v = get(src, f64, i * c + j);
            finite = finite && isfinite(v);
            w[i + j * r] = v;
        }
    return finite;
}

/* The r x c row-major matrix at dst = w (column-major, leading dimension ld),
 * entries outside the triangle tri (+1 upper, -1 lower, 0 all) zeroed. */
static void from_cm(void *dst, bool f64, const double *w, int64_t ld, int64_t r, int64_t c,
                    int tri) {
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) {
            bool keep = tri == 0 || (tri > 0 ? j >= i : j <= i);
            put(dst, f64, i * c + j, keep ? w[i + j * ld] : 0.0);
        }
}

/* ---- the calls ----------------------------------------------------------------------------- */

typedef struct {
    bool f64;
    int64_t batch, m, n, k;
    void *out;
    const void *a, *b;
    double *w, *w2, *w3, *work; /* workspaces */
    la_int *iw;
    la_int lwork, liwork;
} Call;

static size_t esz(const Call *c) {
    return c->f64 ? sizeof(double) : sizeof(float);
}

static void *at(const void *p, const Call *c, int64_t elem) {
    return (char *)p + (size_t)elem * esz(c);
}

static int32_t lapack_info(la_int info, int32_t positive, int64_t t, const Call *c) {
    if (info < 0) return fail(RT_LA_BAD_ARGUMENT, t, c->batch, info);
    return info > 0 ? fail(positive, t, c->batch, info) : RT_LA_OK;
}

/* One matrix t of the batch: the op's results into their places in out. */
static int32_t solve1(Call *c, int64_t t) {
    la_int n = (la_int)c->n, k = (la_int)c->k, info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->n * c->n), c->f64, c->n, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    to_cm(c->w2, at(c->b, c, t * c->n * c->k), c->f64, c->n, c->k);
    if (n == 0 || k == 0) return RT_LA_OK;
    dgesv_(&n, &k, c->w, &n, c->iw, c->w2, &n, &info);
    if (info) return lapack_info(info, RT_LA_SINGULAR, t, c);
    from_cm(at(c->out, c, t * c->n * c->k), c->f64, c->w2, c->n, c->n, c->k, 0);
    return RT_LA_OK;
}

static int32_t cholesky1(Call *c, int64_t t) {
    la_int n = (la_int)c->n, info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->n * c->n), c->f64, c->n, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    if (n > 0) dpotrf_("L", &n, c->w, &n, &info, 1);
    if (info) return lapack_info(info, RT_LA_NOT_PD, t, c);
    from_cm(at(c->out, c, t * c->n * c->n), c->f64, c->w, c->n, c->n, c->n, -1);
    return RT_LA_OK;
}

static int32_t inv1(Call *c, int64_t t) {
    la_int n = (la_int)c->n, info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->n * c->n), c->f64, c->n, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    if (n > 0) dgetrf_(&n, &n, c->w, &n, c->iw, &info);
    if (info) return lapack_info(info, RT_LA_SINGULAR, t, c);
    if (n > 0) dgetri_(&n, c->w, &n, c->iw, c->work, &c->lwork, &info);
    if (info) return lapack_info(info, RT_LA_SINGULAR, t, c);
    from_cm(at(c->out, c, t * c->n * c->n), c->f64, c->w, c->n, c->n, c->n, 0);
    return RT_LA_OK;
}

/* LU of matrix t: the sign of det and log|det| (sign 0, -inf when singular). */
static int32_t lu_logdet(Call *c, int64_t t, double *sign, double *logabs) {
    la_int n = (la_int)c->n, info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->n * c->n), c->f64, c->n, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    if (n > 0) dgetrf_(&n, &n, c->w, &n, c->iw, &info);
    if (info < 0) return lapack_info(info, RT_LA_SINGULAR, t, c);
    double s = 1, l = 0;
    for (la_int i = 0; i < n; i++) {
        double u = c->w[i + (int64_t)i * n];
        if (c->iw[i] != i + 1) s = -s;
        if (u < 0) s = -s;
        l += log(fabs(u));
    }
    if (info > 0) s = 0, l = -INFINITY; /* an exactly zero pivot */
    *sign = s;
    *logabs = l;
    return RT_LA_OK;
}

static int32_t det1(Call *c, int64_t t) {
    la_int n = (la_int)c->n, info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->n * c->n), c->f64, c->n, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    if (n > 0) dgetrf_(&n, &n, c->w, &n, c->iw, &info);
    if (info < 0) return lapack_info(info, RT_LA_SINGULAR, t, c);
    /* the product of the pivots (not exp of the log: exact for small integers) */
    double d = 1;
    for (la_int i = 0; i < n; i++)
        d *= c->iw[i] != i + 1 ? -c->w[i + (int64_t)i * n] : c->w[i + (int64_t)i * n];
    put(c->out, c->f64, t, d);
    return RT_LA_OK;
}

static int32_t slogdet1(Call *c, int64_t t) {
    double s = 0, l = 0;
    int32_t st = lu_logdet(c, t, &s, &l);
    if (st) return st;
    put(c->out, c->f64, t, s);
    put(c->out, c->f64, c->batch + t, l);
    return RT_LA_OK;
}

static int64_t rmin(const Call *c) {
    return c->m < c->n ? c->m : c->n;
}

static int32_t qr1(Call *c, int64_t t) {
    la_int m = (la_int)c->m, n = (la_int)c->n, r = (la_int)rmin(c), info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->m * c->n), c->f64, c->m, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    void *q = at(c->out, c, t * c->m * r), *rr = at(c->out, c, c->batch * c->m * r + t * r * c->n);
    if (r == 0) return RT_LA_OK;
    dgeqrf_(&m, &n, c->w, &m, c->w2, c->work, &c->lwork, &info);
    if (info) return lapack_info(info, RT_LA_NO_CONVERGE, t, c);
    from_cm(rr, c->f64, c->w, c->m, r, c->n, +1);
    dorgqr_(&m, &r, &r, c->w, &m, c->w2, c->work, &c->lwork, &info);
    if (info) return lapack_info(info, RT_LA_NO_CONVERGE, t, c);
    from_cm(q, c->f64, c->w, c->m, c->m, r, 0);
    return RT_LA_OK;
}

static int32_t svd1(Call *c, int64_t t) {
    la_int m = (la_int)c->m, n = (la_int)c->n, r = (la_int)rmin(c), info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->m * c->n), c->f64, c->m, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    int64_t nu = c->m * r, ns = r;
    void *u = at(c->out, c, t * nu), *s = at(c->out, c, c->batch * nu + t * ns),
         *vt = at(c->out, c, c->batch * (nu + ns) + t * r * c->n);
    if (r == 0) return RT_LA_OK;
    double *sv = c->w3, *uw = c->w3 + r, *vw = uw + nu;
    dgesdd_("S", &m, &n, c->w, &m, sv, uw, &m, vw, &r, c->work, &c->lwork, c->iw, &info, 1);
    if (info) return lapack_info(info, RT_LA_NO_CONVERGE, t, c);
    from_cm(u, c->f64, uw, c->m, c->m, r, 0);
    for (la_int i = 0; i < r; i++)
        put(s, c->f64, i, sv[i]);
    from_cm(vt, c->f64, vw, r, r, c->n, 0);
    return RT_LA_OK;
}

static int32_t eigh1(Call *c, int64_t t) {
    la_int n = (la_int)c->n, info = 0;
    if (!to_cm(c->w, at(c->a, c, t * c->n * c->n), c->f64, c->n, c->n))
        return fail(RT_LA_NONFINITE, t, c->batch, 0);
    void *w = at(c->out, c, t * c->n), *v = at(c->out, c, c->batch * c->n + t * c->n * c->n);
    if (n == 0) return RT_LA_OK;
    dsyevd_("V", "L", &n, c->w, &n, c->w2, c->work, &c->lwork, c->iw, &c->liwork, &info, 1, 1);
    if (info) return lapack_info(info, RT_LA_NO_CONVERGE, t, c);
    for (la_int i = 0; i < n; i++)
        put(w, c->f64, i, c->w2[i]);
    from_cm(v, c->f64, c->w, c->n, c->n, c->n, 0);
    return RT_LA_OK;
}

/* ---- workspace ----------------------------------------------------------------------------- */

/* LAPACK's optimal lwork (and liwork) for c's op, from a workspace query. */
static int32_t query(Call *c, RtLaFn fn) {
    la_int m = (la_int)c->m, n = (la_int)c->n, r = (la_int)rmin(c), info = 0, q = -1, iq = 0;
    double opt = 1;
    c->lwork = 1;
    c->liwork = 1;
    switch (fn) {
    case RT_LA_INV:
        if (n > 0) dgetri_(&n, c->w, &n, c->iw, &opt, &q, &info);
        break;
    case RT_LA_QR: {
        double o2 = 1;
        if (r > 0) {
            dgeqrf_(&m, &n, c->w, &m, c->w2, &opt, &q, &info);
            dorgqr_(&m, &r, &r, c->w, &m, c->w2, &o2, &q, &info);
        }
        opt = o2 > opt ? o2 : opt;
        break;
    }
    case RT_LA_SVD:
        if (r > 0)
            dgesdd_("S", &m, &n, c->w, &m, c->w3, c->w3, &m, c->w3, &r, &opt, &q, &iq, &info, 1);
        break;
    case RT_LA_EIGH:
        if (n > 0) dsyevd_("V", "L", &n, c->w, &n, c->w2, &opt, &q, &iq, &q, &info, 1, 1);
        c->liwork = iq > 1 ? iq : 1;
        break;
    case RT_LA_SOLVE:
    case RT_LA_CHOLESKY:
    case RT_LA_DET:
    case RT_LA_SLOGDET:
        break;
    }
    if (info < 0) return fail(RT_LA_BAD_ARGUMENT, 0, c->batch, info);
    c->lwork = opt > 1 ? (la_int)opt : 1;
    return RT_LA_OK;
}

static bool fits(int64_t v) {
    return v >= 0 && v <= (int64_t)((sizeof(la_int) == 4 ? INT32_MAX : INT64_MAX) / 8);
}

static int32_t run(Call *c, RtLaFn fn) {
    int32_t st = RT_LA_OK;
    for (int64_t t = 0; t < c->batch && !st; t++) {
        switch (fn) {
        case RT_LA_SOLVE:
            st = solve1(c, t);
            break;
        case RT_LA_CHOLESKY:
            st = cholesky1(c, t);
            break;
        case RT_LA_INV:
            st = inv1(c, t);
            break;
        case RT_LA_DET:
            st = det1(c, t);
            break;
        case RT_LA_SLOGDET:
            st = slogdet1(c, t);
            break;
        case RT_LA_QR:
            st = qr1(c, t);
            break;
        case RT_LA_SVD:
            st = svd1(c, t);
            break;
        case RT_LA_EIGH:
            st = eigh1(c, t);
            break;
        }
    }
    return st;
}

int32_t rt_linalg_call(int32_t fn, int32_t f64, int64_t batch, int64_t m, int64_t n, int64_t k,
                       void *out, const void *a, const void *b) {
    Call c = {.f64 = f64 != 0, .batch = batch, .m = m, .n = n, .k = k, .out = out, .a = a, .b = b};
    if (!fits(m) || !fits(n) || !fits(k) || !fits(m * n) || !fits(n * k))
        return fail(RT_LA_TOO_LARGE, 0, batch, 0);
    int64_t big = m > n ? m : n, r = m < n ? m : n;
    /* w: the matrix; w2: solve's right side, qr's tau, eigh's w; w3: svd's S, U, Vt */
    c.w = calloc((size_t)(m * n + 1), sizeof(double)); /* calloc: queries read them */
    c.w2 = calloc((size_t)(n * (k > 1 ? k : 1) + big + 1), sizeof(double));
    c.w3 = fn == RT_LA_SVD ? calloc((size_t)(r + m * r + r * n + 1), sizeof(double)) : NULL;
    c.iw = calloc((size_t)(8 * big + 1), sizeof(la_int));
    int32_t st = RT_LA_OOM;
    if (c.w && c.w2 && c.iw && (c.w3 || fn != RT_LA_SVD)) {
        st = query(&c, (RtLaFn)fn);
        if (!st && fn == RT_LA_EIGH && c.liwork > 8 * big + 1) {
            la_int *iw = realloc(c.iw, sizeof(la_int) * (size_t)c.liwork);
            if (iw)
                c.iw = iw;
            else
                st = RT_LA_OOM;
        }
        c.work = st ? NULL : malloc(sizeof(double) * (size_t)c.lwork);
        if (!st) st = c.work ? run(&c, (RtLaFn)fn) : RT_LA_OOM;
    }
    if (st == RT_LA_OOM) fail(RT_LA_OOM, 0, batch, 0);
    free(c.w);
    free(c.w2);
    free(c.w3);
    free(c.iw);
    free(c.work);
    return st;
}
