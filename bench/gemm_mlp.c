/* The GEMMs of one MLP SGD step alone, through OpenBLAS: the floor that the
 * whole dflow step is measured against (target: step <= 1.5x this).
 *
 * Shapes are the anchor workload's (784-256-10, batch 128): forward
 * X@W1 and H@W2, backward dW2 = H^T dY, dH = dY W2^T, dW1 = X^T dH (no dX:
 * X is data). Prints the median over repeated steps after warm-up, plus a
 * 1024^3 sgemm rate as a check of the machine's BLAS peak. With THREADS > 1
 * the step is timed two ways and the faster is the floor: OpenBLAS's own
 * threads, and each GEMM split by rows of C over THREADS OpenMP threads
 * calling single-threaded OpenBLAS (what dflow does: on these skinny shapes
 * OpenBLAS's threading costs more than it gains). At 1 thread it also
 * prints the core type OpenBLAS picked and each GEMM alone (median), with
 * dW1 both as a fresh product (beta 0: OpenBLAS first zeroes C) and
 * accumulated onto a start value already in C (beta 1, as dflow does when
 * the product's only reader adds it to something). Build:
 *   cc -O2 -fopenmp bench/gemm_mlp.c -o gemm_mlp -lopenblas -lm
 * Usage: gemm_mlp THREADS [STEPS] */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
char *openblas_get_corename(void); /* OpenBLAS's own; not in every cblas.h */
#include <omp.h>                   /* pulls in complex.h: no macro-sized names like I below */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *filled(size_t n, unsigned seed) {
    float *p = malloc(n * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return p;
}

/* C[m,n] = op(A) op(B), row-major */
static void mm(int ta, int tb, int m, int n, int k, const float *a, const float *b, float *c) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
}

/* the same product with C's rows split into `parts` blocks, one per thread */
static void mm_split(int parts, int ta, int tb, int m, int n, int k, const float *a, const float *b,
                     float *c) {
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int r0 = (int)((long)m * p / parts), r1 = (int)((long)m * (p + 1) / parts);
        if (r1 <= r0) continue;
        /* rows r0.. of op(A): row offset when A is stored as is, column offset when transposed */
        const float *ap = ta ? a + r0 : a + (long)r0 * k;
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    r1 - r0, n, k, 1.0f, ap, ta ? m : k, b, tb ? k : n, 0.0f, c + (long)r0 * n, n);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int steps = argc > 2 ? atoi(argv[2]) : 400;
    if (threads < 1 || steps < 10) {
        fprintf(stderr, "usage: gemm_mlp THREADS [STEPS>=10]\n");
        return 2;
    }
    enum { NB = 128, NI = 784, NH = 256, NO = 10 };
    float *x = filled((size_t)NB * NI, 1), *w1 = filled((size_t)NI * NH, 2),
          *h = filled((size_t)NB * NH, 3);
    float *w2 = filled((size_t)NH * NO, 4), *y = filled((size_t)NB * NO, 5),
          *dy = filled((size_t)NB * NO, 6);
    float *dw2 = filled((size_t)NH * NO, 7), *dh = filled((size_t)NB * NH, 8),
          *dw1 = filled((size_t)NI * NH, 9);
    double *t = malloc((size_t)steps * sizeof *t);
    if (!x || !w1 || !h || !w2 || !y || !dy || !dw2 || !dh || !dw1 || !t) return 1;
    int warm = steps / 5;
    double best = 1e30;
    /* way 0: OpenBLAS's threads; way 1 (threads > 1 only): rows split over ours */
    for (int way = 0; way < (threads > 1 ? 2 : 1); way++) {
        openblas_set_num_threads(way == 0 ? threads : 1);
        for (int s = 0; s < warm + steps; s++) {
            double t0 = now();
            if (way == 0) {
                mm(0, 0, NB, NH, NI, x, w1, h);   /* H = X W1 */
                mm(0, 0, NB, NO, NH, h, w2, y);   /* Y = H W2 */
                mm(1, 0, NH, NO, NB, h, dy, dw2); /* dW2 = H^T dY */
                mm(0, 1, NB, NH, NO, dy, w2, dh); /* dH = dY W2^T */
                mm(1, 0, NI, NH, NB, x, dh, dw1); /* dW1 = X^T dH */
            } else {
                mm_split(threads, 0, 0, NB, NH, NI, x, w1, h);
                mm_split(threads, 0, 0, NB, NO, NH, h, w2, y);
                mm_split(threads, 1, 0, NH, NO, NB, h, dy, dw2);
                mm_split(threads, 0, 1, NB, NH, NO, dy, w2, dh);
                mm_split(threads, 1, 0, NI, NH, NB, x, dh, dw1);
            }
            if (s >= warm) t[s - warm] = now() - t0;
        }
        qsort(t, (size_t)steps, sizeof *t, cmp_double);
        double med = t[steps / 2];
        printf("gemm_mlp_%s_ms %.4f\n", way == 0 ? "blas_threads" : "split", med * 1e3);
        if (med < best) best = med;
    }
    if (threads == 1) { /* each GEMM alone */
        printf("openblas_core %s\n", openblas_get_corename());
        static const char *names[6] = {"x_w1", "h_w2", "ht_dy", "dy_w2t", "xt_dh", "xt_dh_beta1"};
        for (int g = 0; g < 6; g++) {
            for (int s = 0; s < warm + steps; s++) {
                double t0 = now();
                switch (g) {
                case 0:
                    mm(0, 0, NB, NH, NI, x, w1, h);
                    break;
                case 1:
                    mm(0, 0, NB, NO, NH, h, w2, y);
                    break;
                case 2:
                    mm(1, 0, NH, NO, NB, h, dy, dw2);
                    break;
                case 3:
                    mm(0, 1, NB, NH, NO, dy, w2, dh);
                    break;
                case 4:
                    mm(1, 0, NI, NH, NB, x, dh, dw1);
                    break;
                default:
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NI, NH, NB, 1.0f, x, NI,
                                dh, NH, 1.0f, dw1, NH);
                    break;
                }
                if (s >= warm) t[s - warm] = now() - t0;
            }
            qsort(t, (size_t)steps, sizeof *t, cmp_double);
            printf("gemm_%s_us %.1f\n", names[g], t[steps / 2] * 1e6);
        }
    }
    double flop = 2.0 * ((double)NB * NI * NH * 2 + (double)NB * NH * NO * 3);
    printf("gemm_mlp_ms %.4f\n", best * 1e3);
    printf("gemm_mlp_gflops %.1f\n", flop / best * 1e-9);

    /* the machine's sgemm rate at 1024^3 (anchors.md: ~105 GFLOP/s, 1 thread) */
    openblas_set_num_threads(threads);
    enum { N = 1024 };
    float *a = filled((size_t)N * N, 10), *b = filled((size_t)N * N, 11),
          *c = filled((size_t)N * N, 12);
    if (!a || !b || !c) return 1;
    best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t0 = now();
        mm(0, 0, N, N, N, a, b, c);
        double dt = now() - t0;
        if (r > 0 && dt < best) best = dt;
    }
    printf("sgemm1024_gflops %.1f\n", 2.0 * N * N * N / best * 1e-9);
    free(x), free(w1), free(h), free(w2), free(y), free(dy), free(dw2), free(dh), free(dw1),
        free(t);
    free(a), free(b), free(c);
    return 0;
}
