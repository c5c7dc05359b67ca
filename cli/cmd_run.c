/* `dflow run FILE`: compile, then execute the module (ir/exec.h).
 *
 * `log` rows go to stdout, diagnostics and the progress line to stderr (the
 * progress line only when stderr is a terminal, unless --progress or
 * --no-progress says otherwise). Files are written only when --out is given.
 * Ctrl-C sets a flag that the executor checks between steps: the run stops
 * cleanly, keeps metrics.csv/summary.json, and exits with 130; a second
 * Ctrl-C kills the process at once (the handler is one-shot). */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "codegen/backend.h"
#include "ir/exec.h"

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
          "  --backend NAME    interp (the reference interpreter; default), cpu (LLVM JIT),\n"
          "                    auto (= cpu here); cuda is not built yet\n"
          "  --set KEY=VALUE   override a config value (repeatable; type-checked)\n"
          "  --seed N          the run seed (default 0): parameter init, shuffling, noise\n"
          "  --out DIR         write DIR/metrics.csv and DIR/summary.json (folders are\n"
          "                    created); without --out no files are written. Relative\n"
          "                    `save` paths are resolved inside DIR when it is given\n"
          "  --progress        always show the progress line on stderr\n"
          "  --no-progress     never show it (default: only when stderr is a terminal)\n"
          "  --no-passes       run the graphs as lowered, without the optimisation passes\n"
          "  -v, --verbose     more detail: training setup, loss with every logged row\n"
          "  -h, --help        show this help\n"
          "\n"
          "metrics.csv columns: step, every logged name, loss, time_s. A training run\n"
          "adds a row after each `every` block (with that step's loss) and records the\n"
          "loss about 200 times per train block; `log` in main adds a row each time.\n"
          "\n"
          "Ctrl-C stops the run between steps and keeps the files written so far (exit\n"
          "status 130); a second Ctrl-C kills it.\n"
          "exit status: 0 success, 1 error, 130 interrupted\n",
          stdout);
}

int cmd_run(int argc, char **argv) {
    CliArgs a;
    CliParse p = cli_parse_args("run", argc, argv,
                                OPT_SET | OPT_SEED | OPT_OUT | OPT_BACKEND | OPT_VERBOSE |
                                    OPT_PROGRESS | OPT_PASSES,
                                &a);
    if (p != CLI_PARSE_OK) {
        cli_args_free(&a);
        if (p == CLI_PARSE_HELP) help();
        return p == CLI_PARSE_HELP ? 0 : 1;
    }
    /* auto means the fastest backend built here: the LLVM JIT on the CPU. */
    const char *bname = strcmp(a.backend, "auto") == 0 ? "cpu" : a.backend;
    const Backend *backend = cg_backend_find(bname);
    if (!backend) {
        if (strcmp(a.backend, "cuda") == 0)
            fprintf(stderr, "dflow run: backend 'cuda' is not built yet; use --backend cpu or interp\n");
        else
            fprintf(stderr, "dflow run: unknown backend '%s' (choose interp, cpu or auto)\n",
                    a.backend);
        cli_args_free(&a);
        return 1;
    }

    CliCompile c;
    bool ok = cli_compile(&c, &a, false);
    if (ok && !a.no_passes) {
        ok = cli_run_passes(c.module, NULL);
        cli_print_new_diags(&c, stderr);
    }
    bool stopped = false;
    if (ok) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C: the default action */
        sigemptyset(&sa.sa_mask);
        interrupted = 0;
        sigaction(SIGINT, &sa, &old);

        /* One-shot graphs (initialisers, final evaluations) are interpreted:
           compiling them would cost more than running them once. */
        char err[256] = "";
        BackendOptions bo = {.verbose = a.verbose, .log = stderr, .interp_runs = 1};
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
        };
        if (ok) ok = ir_exec_module(c.module, &o);
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
