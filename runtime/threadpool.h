/* A small fixed-size thread pool for splitting a kernel's outermost loop.
 *
 * rt_pool_run cuts a range [0, n) into contiguous chunks, which the calling
 * thread and the workers claim until none is left, then waits for all of
 * them. Chunk bounds are a pure function of (n, grain, size) and a chunk
 * runs the same code whichever thread claims it, so a kernel that computes
 * each element within one point of its range gives the same bits at any
 * thread count. Workers spin briefly after a job (kernels
 * of one graph run come back to back; how long adapts to the gaps seen,
 * tens of microseconds) and then sleep on a condition variable, so an idle
 * pool costs no CPU: that is what lets OpenBLAS or another library use the
 * cores between our kernels. The pool is not
 * reentrant: one rt_pool_run at a time, and never from inside a task.
 * Ownership: rt_pool_new returns a pool the caller frees with rt_pool_free. */
#ifndef DFLOW_RUNTIME_THREADPOOL_H
#define DFLOW_RUNTIME_THREADPOOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct RtPool RtPool;

/* One chunk [lo, hi) of a job; returns status bits that rt_pool_run ORs. */
typedef uint32_t (*RtPoolTask)(void *arg, int64_t lo, int64_t hi);

#define RT_POOL_MAX 256

/* DFLOW_NUM_THREADS when it is set to an integer in 1..RT_POOL_MAX, else the
 * number of online cores (at least 1). */
int rt_pool_default_size(void);
/* A thread count as --threads takes it: a decimal integer in 1..RT_POOL_MAX. */
bool rt_threads_parse(const char *s, int *n);
/* Caps OpenBLAS (the interpreter's matrix products) at n threads. */
void rt_blas_threads(int n);

/* A pool of `nthreads` threads including the caller's (nthreads <= 0: the
 * default size); 1 starts no thread. NULL when a thread cannot be started
 * (the threads already started are joined). */
RtPool *rt_pool_new(int nthreads);
void rt_pool_free(RtPool *p);
int rt_pool_size(const RtPool *p);

/* Runs fn over [0, n) in rt_pool_chunks(p, n, grain) chunks and returns the
 * OR of their statuses. p may be NULL (serial). n <= 0 runs nothing and
 * returns 0. */
uint32_t rt_pool_run(RtPool *p, RtPoolTask fn, void *arg, int64_t n, int64_t grain);
/* How many chunks: n / grain (grain < 1 counts as 1), at most 4 per thread
 * of a pool of several threads, at least 1 (0 when n <= 0). */
int rt_pool_chunks(const RtPool *p, int64_t n, int64_t grain);

/* The bounds of chunk i of `parts` over [0, n): exposed so tests and callers
 * can reproduce the split. */
void rt_pool_chunk(int64_t n, int parts, int i, int64_t *lo, int64_t *hi);

#endif
