/* `dflow run FILE`: compile, then execute the module (ir/exec.h).
 *
 * `log` rows go to stdout, diagnostics and the progress line to stderr (the
 * progress line only when stderr is a terminal, unless --progress or
 * --no-progress says otherwise). Files are written only when --out is given.
 * The tiered LLVM JIT ("auto") is the default backend. After the run, --verbose adds
 * the total compile time and --mem-report the memory plan of every graph by
 * category (parameters and optimizer state from the slot kinds of its
 * inputs, activations from the backend's plan, scratch) and for the run.
 * Ctrl-C sets a flag that the executor checks between steps: the run stops
 * cleanly, keeps metrics.csv/summary.json, and exits with 130; a second
 * Ctrl-C kills the process at once (the handler is one-shot). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "codegen/backend.h"
#include "ir/exec.h"
#include "passes/fuse.h"
#include "passes/memplan.h"
#include "runtime/grow.h"
#include "runtime/threadpool.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void help(void) {
    fputs("usage: dflow run FILE [options]\n"
          "\n"
          "Compiles and runs FILE. `log` rows are printed to stdout\n"
          "(\"step 500: test_acc = 0.9712\"), then a final summary line.\n"
          "\n"
          "options:\n"
          "  --backend NAME    auto (the default: the LLVM JIT, except that a graph whose\n"
          "                    expected runs are cheaper to interpret than to compile is\n"
          "                    interpreted), cpu (every graph compiled: the bits of the\n"
          "                    program `dflow build` makes), interp (the reference\n"
          "                    interpreter); cuda is not built yet\n"
          "  --set KEY=VALUE   override a config value (repeatable; type-checked)\n"
          "  --seed N          the run seed (default 0): parameter init, shuffling, noise\n"
          "  --out DIR         write DIR/metrics.csv and DIR/summary.json (folders are\n"
          "                    created); without --out no files are written. Relative\n"
          "                    `save` paths are resolved inside DIR when it is given\n"
          "  --progress        always show the progress line on stderr\n"
          "  --no-progress     never show it (default: only when stderr is a terminal)\n"
          "  --no-passes       run the graphs as lowered, without the optimisation passes\n"
          "  --mem-report      after the run, print the planned memory per graph and for\n"
          "                    the run (parameters, optimizer state, activations, scratch)\n"
          "                    to stderr\n"
          "  --check-numerics  stop at the first op that computes a NaN or Inf, naming it,\n"
          "                    its file:line:col and the step (scans every value: slower)\n"
          "  --threads N       use at most N threads: kernel threads, compile threads and\n"
          "                    OpenBLAS's (default: DFLOW_NUM_THREADS, else every core)\n"
          "  -v, --verbose     more detail: training setup, loss with every logged row,\n"
          "                    compile times\n"
          "  -h, --help        show this help\n"
          "\n"
          "metrics.csv columns: step, every logged name, loss, time_s. A training run\n"
          "adds a row after each `every` block (with that step's loss) and records the\n"
          "loss about 200 times per train block; `log` in main adds a row each time.\n"
          "\n"
          "Ctrl-C stops the run between steps and keeps the files written so far (exit\n"
          "status 130); a second Ctrl-C kills it.\n"
          "exit status: 0 success, 1 error, 130 interrupted\n"
          "environment: DFLOW_NUM_THREADS is the default of --threads\n",
          stdout);
}

/* ---- reports after the run ---------------------------------------------------------------- */

static int64_t slot_bytes(const Slot *sl) {
    if (sl->kind == SLOT_DATA && sl->value) return (int64_t)rt_tensor_bytes(sl->value);
    return rt_shape_numel(&sl->shape) * (int64_t)rt_dtype_size(sl->dtype);
}

static const BackendGraphStats *stats_of(const BackendGraphStats *st, int n, const Graph *g) {
    for (int i = 0; i < n; i++)
        if (st[i].graph == g) return &st[i];
    return NULL;
}

/* The activations the default plan gives a graph the backend did not compile. */
static int64_t planned_arena(const Graph *g, int64_t *naive, int *inplace) {
    Arena *a = arena_new();
    FusionPlan *fp = a ? pass_fuse_plan(g, a) : NULL;
    MemPlan *mp = fp ? pass_memplan(fp, NULL, a) : NULL;
    int64_t bytes = mp ? mp->arena_bytes : -1;
    *naive = mp ? mp->naive_bytes : -1;
    *inplace = mp ? mp->ninplace : 0;
    arena_free(a);
    return bytes;
}

static void mem_report(const Module *m, const Backend *b, const GraphRunner *r, FILE *out) {
    Arena *ca = arena_new();
    const GraphCall **calls = NULL;
    int ncalls = ca ? ir_module_graphs(m, ca, NULL, &calls) : -1;
    if (ncalls < 0) {
        fprintf(out, "mem: out of memory\n");
        arena_free(ca);
        return;
    }
    int nst = 0, threads = 1;
    BackendGraphStats *st = NULL;
    if (b->graph_stats) {
        nst = b->graph_stats(r, NULL, 0, &threads);
        st = calloc((size_t)(nst ? nst : 1), sizeof *st);
        if (st)
            b->graph_stats(r, st, nst, &threads);
        else
            nst = 0;
    }
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    int64_t peak_act = 0, peak_scratch = 0;
    for (int i = 0; i < ncalls; i++) {
        const GraphCall *c = calls[i];
        const Graph *g = c->graph;
        int64_t par = 0, state = 0, other = 0;
        for (int k = 0; k < g->ninputs; k++) {
            int s = c->in_slots[k];
            bool seen = false;
            for (int q = 0; q < k; q++)
                seen = seen || c->in_slots[q] == s;
            if (seen) continue;
            const Slot *sl = &m->slots[s];
            int64_t by = slot_bytes(sl);
            if (sl->kind == SLOT_PARAM)
                par += by;
            else if (sl->kind == SLOT_STATE)
                state += by;
            else
                other += by;
        }
        const BackendGraphStats *gs = stats_of(st, nst, g);
        int64_t act, naive, scratch = gs ? gs->scratch_bytes : 0;
        int inplace;
        const char *how = "";
        if (gs && gs->compiled) {
            act = gs->arena_bytes;
            naive = gs->naive_bytes;
            inplace = gs->ninplace;
        } else {
            act = planned_arena(g, &naive, &inplace);
            how = gs && gs->fallback ? " (interpreted: compilation failed)"
                  : gs               ? " (interpreted: run once)"
                                     : " (not compiled by this backend)";
        }
        if (act > peak_act) peak_act = act;
        if (scratch > peak_scratch) peak_scratch = scratch;
        fprintf(out,
                "mem: graph %s: parameters %s, optimizer state %s, activations %s (%s without "
                "reuse, %d in place), scratch %s; other inputs %s%s\n",
                g->name ? g->name : "?", pass_memplan_bytes_str(par, b1, sizeof b1),
                pass_memplan_bytes_str(state, b2, sizeof b2),
                pass_memplan_bytes_str(act, b3, sizeof b3),
                pass_memplan_bytes_str(naive, b4, sizeof b4), inplace,
                pass_memplan_bytes_str(scratch, b5, sizeof b5),
                pass_memplan_bytes_str(other, b6, sizeof b6), how);
        if (gs && gs->compiled)
            fprintf(out, "mem: graph %s: %d runs, %lld output tensors allocated by compiled runs\n",
                    g->name ? g->name : "?", gs->runs, (long long)gs->allocs);
    }
    int64_t par = 0, state = 0, data = 0, vars = 0;
    for (int s = 0; s < m->nslots; s++) {
        const Slot *sl = &m->slots[s];
        int64_t by = slot_bytes(sl);
        switch (sl->kind) {
        case SLOT_PARAM:
            par += by;
            break;
        case SLOT_STATE:
            state += by;
            break;
        case SLOT_DATA:
            data += by;
            break;
        case SLOT_VAR:
        case SLOT_SEED:
        case SLOT_STEP:
        case SLOT_CONFIG:
            vars += by;
            break;
        }
    }
    fprintf(
        out,
        "mem: run: parameters %s, optimizer state %s, activations %s (one arena for all "
        "graphs), scratch %s; data %s, other slots %s",
        pass_memplan_bytes_str(par, b1, sizeof b1), pass_memplan_bytes_str(state, b2, sizeof b2),
        pass_memplan_bytes_str(peak_act, b3, sizeof b3),
        pass_memplan_bytes_str(peak_scratch, b4, sizeof b4),
        pass_memplan_bytes_str(data, b5, sizeof b5), pass_memplan_bytes_str(vars, b6, sizeof b6));
    fprintf(
        out, "; planned total %s\n",
        pass_memplan_bytes_str(par + state + peak_act + peak_scratch + data + vars, b2, sizeof b2));
    free(st);
    arena_free(ca);
}

static void compile_report(const Backend *b, const GraphRunner *r, FILE *out) {
    if (!b->graph_stats) return;
    int threads = 1, n = b->graph_stats(r, NULL, 0, &threads);
    BackendGraphStats *st = calloc((size_t)(n ? n : 1), sizeof *st);
    if (!st) return;
    b->graph_stats(r, st, n, &threads);
    double total = 0, opt = 0, mc = 0;
    int compiled = 0, interpreted = 0;
    for (int i = 0; i < n; i++) {
        if (st[i].compiled) {
            compiled++;
            total += st[i].compile_s;
            opt += st[i].opt_s;
            mc += st[i].codegen_s;
        } else {
            interpreted++;
        }
    }
    fprintf(
        out,
        "%s: compiled %d graph%s in %.1f ms (optimiser %.1f, machine code %.1f), %d interpreted; "
        "%d kernel thread%s\n",
        b->name, compiled, compiled == 1 ? "" : "s", 1e3 * total, 1e3 * opt, 1e3 * mc, interpreted,
        threads, threads == 1 ? "" : "s");
    free(st);
}

int cmd_run(int argc, char **argv) {
    CliArgs a;
    CliParse p =
        cli_parse_args("run", argc, argv,
                       OPT_SET | OPT_SEED | OPT_OUT | OPT_BACKEND | OPT_VERBOSE | OPT_PROGRESS |
                           OPT_PASSES | OPT_MEM_REPORT | OPT_CHECK_NUMERICS | OPT_THREADS,
                       &a);
    if (p != CLI_PARSE_OK) {
        cli_args_free(&a);
        if (p == CLI_PARSE_HELP) help();
        return p == CLI_PARSE_HELP ? 0 : 1;
    }
    const char *bname = a.backend;
    const Backend *backend = cg_backend_find(bname);
    if (!backend) {
        if (strcmp(a.backend, "cuda") == 0)
            fprintf(stderr,
                    "dflow run: backend 'cuda' is not built yet; use --backend cpu or interp\n");
        else
            fprintf(stderr, "dflow run: unknown backend '%s' (choose interp, cpu or auto)\n",
                    a.backend);
        cli_args_free(&a);
        return 1;
    }

    CliCompile c;
    bool ok = cli_compile_for_running(&c, &a);
    bool stopped = false;
    if (ok) {
        cli_print_new_diags(&c, stderr); /* the compiler's warnings, before the run */
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C: the default action */
        sigemptyset(&sa.sa_mask);
        interrupted = 0;
        sigaction(SIGINT, &sa, &old);

        /* Every graph is compiled, one-shot graphs (initialisers, final
           evaluations) cheaply (O0): the same machine code as `dflow build`,
           so a built executable prints the same bits. */
        char err[256] = "";
        NumericsCheck numerics = {.step = -1};
        BackendOptions bo = {.verbose = a.verbose,
                             .log = stderr,
                             .interp_runs = 0,
                             .nthreads = a.threads,
                             .numerics = a.check_numerics ? &numerics : NULL};
        if (a.threads) rt_blas_threads(a.threads); /* the interpreter's matrix products */
        GraphRunner runner = backend->runner_new(&bo, err, sizeof err);
        if (!runner.run) {
            fprintf(stderr, "dflow run: backend '%s' failed to start: %s\n", backend->name, err);
            ok = false;
        }
        ExecOptions o = {
            .program = a.file,
            .seed = a.seed,
            .out_dir = a.out_dir,
            .progress = a.progress < 0 ? isatty(fileno(stderr)) != 0 : a.progress == 1,
            .verbose = a.verbose,
            .log = stdout,
            .interrupted = &interrupted,
            .runner = runner,
            .numerics = bo.numerics,
        };
        if (ok) ok = ir_exec_module(c.module, &o);
        if (runner.run && a.verbose) compile_report(backend, &runner, stderr);
        if (runner.run && a.mem_report) mem_report(c.module, backend, &runner, stderr);
        if (runner.run) backend->runner_free(&runner);
        stopped = interrupted != 0;
        sigaction(SIGINT, &old, NULL);
        fflush(stdout);
        cli_print_new_diags(&c, stderr);
    }
    cli_compile_free(&c);
    cli_args_free(&a);
    if (stopped) return 130;
    return ok ? 0 : 1;
}
