/* STREAM-style triad a[i] = b[i] + s*c[i]: the memory bandwidth that the
 * fused elementwise benchmarks are compared with in the same run.
 *
 * Arrays are float32 of N elements each (default 64M = 256 MiB, far larger
 * than L3); bytes counted STREAM's way, 3 x 4 bytes per element (write-
 * allocate traffic not counted). Threads: OpenMP, from the first argument.
 * Prints the median of the repeats after one warm-up pass. Build:
 *   cc -O2 -fopenmp bench/triad.c -o triad
 * Usage: triad THREADS [N] [REPS] */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
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

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    long n = argc > 2 ? atol(argv[2]) : 64L << 20;
    int reps = argc > 3 ? atoi(argv[3]) : 10;
    if (threads < 1 || n < 1024 || reps < 1) {
        fprintf(stderr, "usage: triad THREADS [N>=1024] [REPS>=1]\n");
        return 2;
    }
    omp_set_num_threads(threads);
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    float *c = malloc((size_t)n * sizeof *c);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!a || !b || !c || !t) return 1;
        /* first touch in parallel, so pages land where the threads run */
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++)
        a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
    const float s = 3.0f;
    for (int r = -1; r < reps; r++) {
        double t0 = now();
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++)
            a[i] = b[i] + s * c[i];
        if (r >= 0) t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    printf("triad_ms %.3f\n", med * 1e3);
    printf("triad_gbs %.2f\n", 3.0 * 4.0 * (double)n / med * 1e-9);
    if (a[n / 2] != 7.0f) fprintf(stderr, "triad: wrong result %g\n", (double)a[n / 2]);
    free(a), free(b), free(c), free(t);
    return 0;
}
