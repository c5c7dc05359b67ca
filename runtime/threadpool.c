/* The kernel thread pool: pthreads, one job at a time, fixed chunks
 * claimed dynamically.
 *
 * A job's range is cut into chunks whose bounds depend only on (n, grain,
 * pool size); the caller and the workers claim chunks from an atomic
 * counter until none is left, so a worker that is descheduled (another
 * process on its core) delays nothing but the chunk it holds, and which
 * thread runs a chunk never changes a result. Jobs are published through a
 * generation word whose low bit says "open": the caller first closes the
 * old job and waits until no worker is still registered on it, then writes
 * the new job and opens it. A worker registers (the `active` count) and
 * checks the generation again before it reads the job, so it never reads a
 * job being rewritten. After a job a worker spins for a while, then sleeps
 * on a condition variable; the publisher takes the mutex only to wake
 * sleepers (the sleeper count and the generation are sequentially
 * consistent, so a wake-up is never lost). How long it spins adapts to the
 * gaps between jobs: about twice the longest recent wait that spinning
 * caught (the gaps between the kernels of one graph run, and between the
 * steps of a training loop: all under 16 us in the MLP benchmark), raised
 * again when a job arrives soon after the worker parked, within
 * [RT_POOL_SPIN_MIN_NS, RT_POOL_SPIN_MAX_NS]; so a worker parks some 20 to
 * 40 us after the last kernel of a graph run instead of a fixed 200 us, yet
 * kernels that come back to back still find it awake. A wait past
 * RT_POOL_YIELD_NS (longer than those gaps) also yields the core between
 * checks, so another process that wants it gets it. */
#include "threadpool.h"

#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define RT_POOL_SPIN_MIN_NS 20000  /* spin at least this long before parking */
#define RT_POOL_SPIN_MAX_NS 100000 /* and at most this long */
#define RT_POOL_SPIN_START_NS 50000
#define RT_POOL_YIELD_NS 20000 /* spinning longer than this yields the core between checks */

#define RT_POOL_CHUNKS_PER_THREAD 4

struct RtPool {
    int size;
    pthread_t *threads;
    int nstarted;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_uint_fast64_t gen; /* (sequence << 1) | open */
    atomic_int sleepers;
    atomic_int active; /* workers registered on the current job */
    atomic_int next;   /* next chunk to claim */
    atomic_int done;   /* chunks finished */
    atomic_uint status;
    atomic_bool stop;
    /* the current job: rewritten only while closed and no worker is active */
    RtPoolTask fn;
    void *arg;
    int64_t n;
    int chunks;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool rt_threads_parse(const char *s, int *n) {
    if (!s || *s < '0' || *s > '9') return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || errno || v < 1 || v > RT_POOL_MAX) return false;
    *n = (int)v;
    return true;
}

void rt_blas_threads(int n) {
    openblas_set_num_threads(n);
}

int rt_pool_default_size(void) {
    int n;
    if (rt_threads_parse(getenv("DFLOW_NUM_THREADS"), &n)) return n;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1) c = 1;
    if (c > RT_POOL_MAX) c = RT_POOL_MAX;
    return (int)c;
}

void rt_pool_chunk(int64_t n, int parts, int i, int64_t *lo, int64_t *hi) {
    /* n * i / parts without overflow for any n below 2^62 and parts <= 256 */
    int64_t q = n / parts, r = n % parts;
    *lo = q * i + (i < r ? i : r);
    *hi = *lo + q + (i < r ? 1 : 0);
}

static int64_t clamp_spin(int64_t ns) {
    return ns < RT_POOL_SPIN_MIN_NS   ? RT_POOL_SPIN_MIN_NS
           : ns > RT_POOL_SPIN_MAX_NS ? RT_POOL_SPIN_MAX_NS
                                      : ns;
}

/* Waits until the generation differs from seen (or stop); returns it.
 * *spin is this worker's spinning budget (ns), adapted to the wait. */
static uint64_t await_job(RtPool *p, uint64_t seen, int64_t *spin) {
    int64_t t0 = now_ns();
    for (unsigned spins = 0;; spins++) {
        uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            /* caught spinning: shrink slowly towards twice this wait */
            int64_t w = 2 * (now_ns() - t0), b = *spin - *spin / 32;
            *spin = clamp_spin(w > b ? w : b);
            return g;
        }
        cpu_relax();
        if ((spins & 31) != 31) continue;
        int64_t t = now_ns() - t0;
        if (t > *spin) break;
        if (t > RT_POOL_YIELD_NS) sched_yield();
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    uint64_t g;
    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    int64_t w = now_ns() - t0;
    if (w <= RT_POOL_SPIN_MAX_NS) *spin = clamp_spin(2 * w); /* parked too early */
    return g;
}

/* Claims and runs chunks of the current job until none is left. */
static void work(RtPool *p) {
    for (;;) {
        int c = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (c >= p->chunks) break;
        int64_t lo, hi;
        rt_pool_chunk(p->n, p->chunks, c, &lo, &hi);
        uint32_t st = p->fn(p->arg, lo, hi);
        if (st) atomic_fetch_or(&p->status, st); /* before `done`: the caller reads it then */
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker(void *varg) {
    RtPool *p = varg;
    uint64_t seen = atomic_load(&p->gen);
    int64_t spin = RT_POOL_SPIN_START_NS;
    for (;;) {
        uint64_t g = await_job(p, seen, &spin);
        if (atomic_load(&p->stop)) break;
        seen = g;
        if (!(g & 1)) continue; /* closed */
        atomic_fetch_add(&p->active, 1);
        if (atomic_load(&p->gen) == g) work(p);
        atomic_fetch_sub(&p->active, 1);
    }
    return NULL;
}

static void wake_all(RtPool *p) {
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_threads(RtPool *p) {
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nstarted; i++)
        pthread_join(p->threads[i], NULL);
    p->nstarted = 0;
}

RtPool *rt_pool_new(int nthreads) {
    if (nthreads <= 0) nthreads = rt_pool_default_size();
    if (nthreads > RT_POOL_MAX) nthreads = RT_POOL_MAX;
    RtPool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->size = nthreads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->active, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->status, 0);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (nthreads > 1) {
        p->threads = calloc((size_t)nthreads - 1, sizeof *p->threads);
        if (!p->threads) {
            rt_pool_free(p);
            return NULL;
        }
        for (int i = 1; i < nthreads; i++) {
            if (pthread_create(&p->threads[i - 1], NULL, worker, p) != 0) {
                rt_pool_free(p);
                return NULL;
            }
            p->nstarted++;
        }
    }
    return p;
}

void rt_pool_free(RtPool *p) {
    if (!p) return;
    stop_threads(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}

int rt_pool_size(const RtPool *p) {
    return p ? p->size : 1;
}

int rt_pool_chunks(const RtPool *p, int64_t n, int64_t grain) {
    if (n <= 0) return 0;
    if (grain < 1) grain = 1;
    int64_t most = (int64_t)rt_pool_size(p) * (p && p->size > 1 ? RT_POOL_CHUNKS_PER_THREAD : 1);
    int64_t c = n / grain;
    if (c > most) c = most;
    return c < 1 ? 1 : (int)c;
}

uint32_t rt_pool_run(RtPool *p, RtPoolTask fn, void *arg, int64_t n, int64_t grain) {
    int chunks = rt_pool_chunks(p, n, grain);
    if (chunks == 0) return 0;
    if (chunks == 1) return fn(arg, 0, n);
    /* close the last job and wait for its stragglers to leave it */
    uint64_t seq = atomic_load_explicit(&p->gen, memory_order_relaxed) >> 1;
    atomic_store(&p->gen, (seq + 1) << 1);
    while (atomic_load(&p->active) > 0)
        cpu_relax();
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->chunks = chunks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->status, 0, memory_order_relaxed);
    atomic_store(&p->gen, ((seq + 2) << 1) | 1); /* seq_cst: pairs with the worker's checks */
    wake_all(p);
    work(p);
    for (unsigned spins = 0; atomic_load_explicit(&p->done, memory_order_acquire) < chunks;
         spins++) {
        cpu_relax();
        if ((spins & 4095) == 4095) sched_yield(); /* a descheduled worker holds a chunk */
    }
    return atomic_load(&p->status);
}
