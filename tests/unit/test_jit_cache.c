/* Compile latency machinery of the LLVM backend: structurally identical
 * kernels share code (within a graph and across graphs), the persistent
 * compile cache serves a second runner every kernel the first compiled,
 * ignores damaged or foreign entries, stays within its bound and is safe
 * under concurrent runs; and the results are bit for bit the same whether
 * kernels came from the cache or were compiled, on 1 or 2 compile threads.
 * Each test uses its own cache folder (never the user's). Last, the
 * tiering of `--backend auto`. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/llvm/llvm_backend.h"
#include "codegen/llvm/llvm_cache.h"
#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"
#include "ir/ir.h"
#include "runtime/tensor.h"

static SrcLoc L = {1, 1, 1, 1};

typedef struct {
    Arena *a;
    DiagList *d;
    Graph *g;
    RtTensor *in[8];
    int nin;
} Prog;

static void prog_init(Prog *p, const char *name) {
    memset(p, 0, sizeof *p);
    p->a = arena_new();
    p->d = th_diag_list(p->a, "t.dfl", "x\n");
    p->g = ir_graph_new(p->a, p->d, name);
}

static void prog_free(Prog *p) {
    for (int i = 0; i < p->nin; i++)
        rt_tensor_free(p->in[i]);
    arena_free(p->a);
}

/* An input filled with a fixed pattern of mixed signs. */
static Node *input(Prog *p, DType dt, Shape s) {
    RtTensor *t = rt_tensor_new(dt, s);
    cr_assert_not_null(t);
    int64_t n = rt_shape_numel(&s);
    for (int64_t i = 0; i < n; i++)
        rt_tensor_set_f64(t, i,
                          dt == DT_I64 ? (double)(i % 10)
                                       : 0.37 * (double)((i * 7919 + p->nin * 13) % 23) - 4.1);
    p->in[p->nin++] = t;
    return ir_input(p->g, dt, s, NULL, L);
}

/* Two independent branches of the same structure: sum(exp(v) * 2) of two
 * inputs of one shape. */
static void twin_graph(Prog *p) {
    for (int k = 0; k < 2; k++) {
        Node *v = input(p, DT_F32, th_shape(2, 16, 33));
        Node *e =
            ir_binary(p->g, OP_MUL, ir_unary(p->g, OP_EXP, v, L), ir_scalar(p->g, DT_F32, 2, L), L);
        ir_graph_add_output(p->g, ir_reduce(p->g, OP_SUM, e, 1u << 1, L));
    }
}

/* A graph with much of what the emitter does: an MLP training step
 * (matmuls, softmax cross-entropy, reductions, gradients), f32 sin (a
 * kernel with an exact variant) and normal random numbers. */
static void rich_graph(Prog *p) {
    Node *x = input(p, DT_F32, th_shape(2, 32, 20));
    Node *y = input(p, DT_I64, th_shape(1, 32));
    Node *w[4] = {input(p, DT_F32, th_shape(2, 20, 16)), input(p, DT_F32, th_shape(1, 16)),
                  input(p, DT_F32, th_shape(2, 16, 10)), input(p, DT_F32, th_shape(1, 10))};
    th_mlp_sgd_step(p->g, x, y, w, L);
    Node *seed = ir_scalar(p->g, DT_I64, 7, L), *off = ir_scalar(p->g, DT_I64, 0, L);
    Node *z = ir_rng(p->g, OP_RNG_NORMAL, DT_F32, th_shape(1, 1000), seed, off, 3, L);
    ir_graph_add_output(
        p->g,
        ir_unary(p->g, OP_SIN, ir_binary(p->g, OP_MUL, z, ir_scalar(p->g, DT_F32, 40, L), L), L));
}

static GraphRunner runner(const char *cache_dir, int threads) {
    char err[200] = "";
    LlvmOptions o = {.cache_dir = cache_dir, .compile_threads = threads, .poison = true};
    GraphRunner r = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(r.run, "llvm runner: %s", err);
    return r;
}

/* Runs g on r; the outputs' bytes concatenated into out (caller frees). */
static unsigned char *run_bytes(GraphRunner *r, Prog *p, size_t *n) {
    RtTensor *out[8] = {0};
    cr_assert(r->run(r->ctx, p->g, p->in, out, p->d), "run failed: %s", th_last_diag(p->d));
    const LlvmGraphInfo *in = llvm_runner_graph(r, llvm_runner_ngraphs(r) - 1);
    cr_assert(in && !in->fallback, "fell back: %s", in ? in->reason : "?");
    size_t total = 0;
    for (int j = 0; j < p->g->noutputs; j++)
        total += rt_tensor_bytes(out[j]);
    unsigned char *b = malloc(total ? total : 1);
    size_t at = 0;
    for (int j = 0; j < p->g->noutputs; j++) {
        memcpy(b + at, out[j]->data, rt_tensor_bytes(out[j]));
        at += rt_tensor_bytes(out[j]);
        rt_tensor_free(out[j]);
    }
    *n = total;
    return b;
}

/* Runs a fresh rich graph on a fresh runner; returns the output bytes and
 * the graph's compile record. */
static unsigned char *rich_run(const char *cache, int threads, size_t *n, LlvmGraphInfo *info) {
    Prog p;
    prog_init(&p, "rich");
    rich_graph(&p);
    GraphRunner r = runner(cache, threads);
    unsigned char *b = run_bytes(&r, &p, n);
    *info = *llvm_runner_graph(&r, 0);
    llvm_runner_free(&r);
    prog_free(&p);
    return b;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".obj") != NULL;
    if (d) closedir(d);
    return n;
}

/* Applies f to every entry file of dir. */
static void each_entry(const char *dir, void (*f)(const char *path, int i)) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    char path[4096];
    int i = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strstr(e->d_name, ".obj")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        f(path, i++);
    }
    closedir(d);
}

Test(jit_cache, identical_kernels_share_code_within_and_across_graphs) {
    Prog a, b;
    prog_init(&a, "twins");
    twin_graph(&a);
    prog_init(&b, "twins_again");
    twin_graph(&b);
    GraphRunner r = runner(NULL, 2);
    size_t na, nb;
    unsigned char *ba = run_bytes(&r, &a, &na);
    const LlvmGraphInfo *ia = llvm_runner_graph(&r, 0);
    cr_assert_eq(ia->nkernels, 2);
    cr_expect_eq(ia->nunique, 1, "the twin kernels compiled %d times", ia->nunique);
    cr_expect_eq(ia->nshared, 1);
    unsigned char *bb = run_bytes(&r, &b, &nb);
    const LlvmGraphInfo *ib = llvm_runner_graph(&r, 1);
    cr_expect_eq(ib->nunique, 0, "a second graph of the same structure compiled %d kernels",
                 ib->nunique);
    cr_expect_eq(ib->nshared, 2);
    /* shared code, per-graph buffers: both branches computed from their own input */
    cr_assert_eq(na, nb);
    cr_expect(memcmp(ba, bb, na) == 0);
    cr_expect(memcmp(ba, ba + na / 2, na / 2) != 0, "the two outputs of different inputs agree?");
    free(ba);
    free(bb);
    llvm_runner_free(&r);
    prog_free(&a);
    prog_free(&b);
}

Test(jit_cache, a_second_runner_loads_every_kernel_and_gets_the_same_bits) {
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "jitcache"));
    size_t n0, n1, n2, n3;
    LlvmGraphInfo i0, i1, i2, i3;
    unsigned char *none = rich_run(NULL, 1, &n0, &i0); /* no cache, one thread */
    unsigned char *miss = rich_run(dir, 2, &n1, &i1);  /* empty cache, two threads */
    unsigned char *hit = rich_run(dir, 2, &n2, &i2);   /* warm */
    unsigned char *hit1 = rich_run(dir, 1, &n3, &i3);  /* warm, one thread */
    cr_assert_gt(i1.nunique, 3);
    cr_expect_eq(i1.ncached, 0);
    cr_expect_eq(i2.ncached, i2.nunique, "warm: %d of %d kernels from the cache", i2.ncached,
                 i2.nunique);
    cr_expect_eq(i3.ncached, i3.nunique);
    cr_expect_lt(i2.opt_s, 1e-9, "a warm run optimised something");
    cr_expect_eq(count_entries(dir), i1.nunique + 1, "one entry per kernel plus the glue");
    cr_assert(n0 == n1 && n1 == n2 && n2 == n3);
    cr_expect(memcmp(none, miss, n0) == 0, "2 compile threads changed the results");
    cr_expect(memcmp(miss, hit, n0) == 0, "cached code changed the results");
    cr_expect(memcmp(miss, hit1, n0) == 0);
    free(none);
    free(miss);
    free(hit);
    free(hit1);
    th_rmdir(dir);
}

static void flip_byte(const char *path, int i) {
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long at = i % 3 == 0 ? 3 : i % 3 == 1 ? size / 2 : size - 1; /* magic, middle, last byte */
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
}

static void truncate_half(const char *path, int i) {
    (void)i;
    struct stat st;
    cr_assert(stat(path, &st) == 0);
    cr_assert(truncate(path, st.st_size / 2) == 0);
}

static const char *first_entry;
static void remember_first(const char *path, int i) {
    if (i == 0) first_entry = strdup(path);
}
static void copy_first_over(const char *path, int i) {
    if (i == 0) return;
    size_t n;
    char *data = th_slurp(first_entry, &n);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    free(data);
}

Test(jit_cache, damaged_or_foreign_entries_are_ignored) {
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "jitcache"));
    size_t n0, n;
    LlvmGraphInfo i0, in;
    unsigned char *want = rich_run(dir, 2, &n0, &i0);
    void (*damage[])(const char *, int) = {flip_byte, truncate_half, copy_first_over};
    for (size_t d = 0; d < sizeof damage / sizeof *damage; d++) {
        if (damage[d] == copy_first_over) each_entry(dir, remember_first);
        each_entry(dir, damage[d]);
        unsigned char *got = rich_run(dir, 2, &n, &in);
        int expect_hits = damage[d] == copy_first_over ? 1 : 0; /* the original stays valid */
        cr_expect_leq(in.ncached, expect_hits, "damage %zu: %d damaged entries used", d,
                      in.ncached);
        cr_assert_eq(n, n0);
        cr_expect(memcmp(got, want, n) == 0, "damage %zu changed the results", d);
        free(got);
        /* the entries were rewritten: the next run finds all of them */
        got = rich_run(dir, 1, &n, &in);
        cr_expect_eq(in.ncached, in.nunique, "damage %zu: entries not rewritten", d);
        free(got);
    }
    free((void *)first_entry);
    free(want);
    th_rmdir(dir);
}

Test(jit_cache, concurrent_runs_share_one_folder_safely) {
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "jitcache"));
    enum { N = 4 };
    int fds[N][2];
    pid_t pid[N];
    for (int i = 0; i < N; i++) {
        cr_assert(pipe(fds[i]) == 0);
        pid[i] = fork();
        cr_assert_geq(pid[i], 0);
        if (pid[i] == 0) { /* a concurrent "run": its output bytes down the pipe */
            close(fds[i][0]);
            size_t n;
            LlvmGraphInfo in;
            unsigned char *b = rich_run(dir, 1 + i % 2, &n, &in);
            bool ok = write(fds[i][1], b, n) == (ssize_t)n;
            _exit(ok ? 0 : 3);
        }
        close(fds[i][1]);
    }
    size_t n0;
    LlvmGraphInfo i0;
    unsigned char *want = rich_run(NULL, 1, &n0, &i0);
    unsigned char *got = malloc(n0 + 1);
    for (int i = 0; i < N; i++) {
        size_t at = 0;
        for (ssize_t r; at <= n0 && (r = read(fds[i][0], got + at, n0 + 1 - at)) > 0;)
            at += (size_t)r;
        close(fds[i][0]);
        int st = 0;
        waitpid(pid[i], &st, 0);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run %d failed (status %d)", i, st);
        cr_expect_eq(at, n0, "run %d wrote %zu bytes", i, at);
        cr_expect(memcmp(got, want, n0) == 0, "run %d computed other bits", i);
    }
    size_t n;
    LlvmGraphInfo in;
    unsigned char *after = rich_run(dir, 2, &n, &in);
    cr_expect_eq(in.ncached, in.nunique, "after the concurrent runs: %d of %d cached", in.ncached,
                 in.nunique);
    cr_expect(memcmp(after, want, n0) == 0);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        cr_expect(strncmp(e->d_name, ".tmp-", 5) != 0, "a temporary file was left: %s", e->d_name);
    if (d) closedir(d);
    free(after);
    free(got);
    free(want);
    th_rmdir(dir);
}

Test(jit_cache, entries_round_trip_and_the_folder_stays_bounded) {
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "jitcache"));
    LlvmCache *c = llvm_cache_open(dir, 10 * 1000);
    cr_assert_not_null(c);
    static unsigned char blob[2000];
    for (int i = 0; i < 12; i++) {
        memset(blob, i + 1, sizeof blob);
        LlvmKey k = llvm_key_add(llvm_key_seed(), &i, sizeof i);
        cr_assert(llvm_cache_put(c, k, blob, sizeof blob));
        void *got;
        size_t n;
        cr_assert(llvm_cache_get(c, k, &got, &n));
        cr_expect(n == sizeof blob && memcmp(got, blob, n) == 0);
        free(got);
        usleep(2000); /* distinct modification times */
    }
    LlvmKey other = llvm_key_add(llvm_key_seed(), "x", 1);
    void *got;
    size_t n;
    cr_expect(!llvm_cache_get(c, other, &got, &n), "a key never stored was found");
    cr_expect_gt(llvm_cache_trim(c), 0);
    int left = count_entries(dir);
    cr_expect(left >= 3 && left <= 4, "%d entries of 2 kB left under a 10 kB bound", left);
    int last = 11; /* the newest entry survives */
    LlvmKey k = llvm_key_add(llvm_key_seed(), &last, sizeof last);
    cr_expect(llvm_cache_get(c, k, &got, &n));
    free(got);
    llvm_cache_close(c);
    th_rmdir(dir);
}

Test(jit_cache, the_folder_follows_the_environment) {
    char buf[4096];
    setenv("XDG_CACHE_HOME", "/some/where", 1);
    unsetenv("DFLOW_NO_CACHE");
    cr_expect_str_eq(llvm_cache_default_dir(buf, sizeof buf), "/some/where/dflow");
    setenv("XDG_CACHE_HOME", "relative", 1); /* ignored, as the XDG spec says */
    setenv("HOME", "/home/u", 1);
    cr_expect_str_eq(llvm_cache_default_dir(buf, sizeof buf), "/home/u/.cache/dflow");
    setenv("DFLOW_NO_CACHE", "1", 1);
    cr_expect_null(llvm_cache_default_dir(buf, sizeof buf));
    setenv("DFLOW_NO_CACHE", "0", 1);
    cr_expect_not_null(llvm_cache_default_dir(buf, sizeof buf));
}

/* --backend auto: a graph goes to the interpreter when the model expects
 * interpreting its runs to be cheaper than compiling it, else it is
 * compiled (a small graph run 5 times: interpreted; in a loop of unknown
 * count, or large: compiled); plain cpu (tiered off) compiles everything.
 * The same answer at any compile thread count. */
Test(jit_cache, auto_interprets_only_small_graphs_run_once) {
    for (int threads = 1; threads <= 2; threads++) {
        Prog small, big, loop;
        prog_init(&small, "small_once");
        twin_graph(&small);
        small.g->once = true;
        prog_init(&big, "big_once");
        Node *x = input(&big, DT_F32, th_shape(1, 1 << 21));
        ir_graph_add_output(big.g, ir_unary(big.g, OP_EXP, ir_unary(big.g, OP_SIN, x, L), L));
        big.g->once = true;
        prog_init(&loop, "small_loop");
        twin_graph(&loop);
        loop.g->repeated = true; /* runs not known: as if in a loop of 1000 */
        Prog few;
        prog_init(&few, "small_loop_of_5");
        twin_graph(&few);
        few.g->repeated = true;
        few.g->runs = 5;
        char err[200] = "";
        LlvmOptions o = {.compile_threads = threads, .tiered = true};
        GraphRunner r = llvm_runner_new(&o, err, sizeof err);
        cr_assert_not_null(r.run, "%s", err);
        RtTensor *out[2] = {0};
        Prog *ps[4] = {&small, &big, &loop, &few};
        for (int i = 0; i < 4; i++) {
            cr_assert(r.run(r.ctx, ps[i]->g, ps[i]->in, out, ps[i]->d));
            for (int j = 0; j < ps[i]->g->noutputs; j++)
                rt_tensor_free(out[j]);
        }
        const LlvmGraphInfo *is = llvm_runner_graph(&r, 0), *ib = llvm_runner_graph(&r, 1),
                            *il = llvm_runner_graph(&r, 2);
        cr_expect(is->fallback && strstr(is->reason, "cheaper to interpret"), "small: %s",
                  is->reason);
        cr_expect(!ib->fallback, "2M elements of sin and exp interpreted: %s", ib->reason);
        cr_expect(!il->fallback, "a graph run in a loop was interpreted: %s", il->reason);
        cr_expect(llvm_runner_graph(&r, 3)->fallback, "a small graph run 5 times was compiled");
        llvm_runner_free(&r);
        GraphRunner c = runner(NULL, threads); /* tiered off */
        cr_assert(c.run(c.ctx, small.g, small.in, out, small.d));
        for (int j = 0; j < small.g->noutputs; j++)
            rt_tensor_free(out[j]);
        cr_expect(!llvm_runner_graph(&c, 0)->fallback, "cpu interpreted a graph");
        llvm_runner_free(&c);
        for (int i = 0; i < 4; i++)
            prog_free(ps[i]);
    }
}

/* Graph.runs comes from the loops' constant trip counts (ir_mark_repeated):
 * under --backend auto the same small loop body is interpreted when the
 * loop runs 5 times and compiled when it runs 100000 times. */
Test(jit_cache, auto_reads_the_trip_count_of_loops, .timeout = 120) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    const char *src[2] = {"main {\n  x = iota(8) / 8\n  for s in 0..5 { x = x * 0.5 + 1 }\n"
                          "  log s = sum(x)\n}\n",
                          "main {\n  x = iota(8) / 8\n  for s in 0..100000 { x = x * 0.5 + 1 }\n"
                          "  log s = sum(x)\n}\n"};
    for (int i = 0; i < 2; i++) {
        const char *prog = th_write_program(src[i]);
        SpawnResult r = th_run(100, bin, "run", prog, "--backend", "auto", "-v", NULL);
        TH_EXPECT_EXIT(r, 0);
        bool interpreted = strstr(r.err, "running on the interpreter (cheaper to interpret") &&
                           !strstr(r.err, " kernels (");
        cr_expect(i == 0 ? interpreted : !interpreted, "loop %d:\n%s", i, r.err);
        th_spawn_free(&r);
    }
}
