/* `dflow ir FILE [--after PASS]`: prints the compiled module (every graph
 * and the host program) as lowered, or after running the pass pipeline on
 * each graph up to and including PASS (`--after all` runs all of it). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "passes/fuse.h"
#include "passes/pass.h"
#include "runtime/grow.h"

/* "fold, simplify, cse, dce" from the pipeline's own list. */
static void put_pass_names(FILE *f) {
    int n = 0;
    const PassInfo *ps = pass_pipeline_list(&n);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", ps[i].name);
}

static void help(void) {
    fputs("usage: dflow ir FILE [--after PASS] [--set KEY=VALUE]...\n"
          "\n"
          "Prints the program's IR: its graphs (one node per line) and the host program\n"
          "that runs them. Without --after: the IR as lowered from the source.\n"
          "\n"
          "options:\n"
          "  --after PASS      run the pass pipeline on every graph up to PASS, then print;\n"
          "                    PASS is one of: ",
          stdout);
    put_pass_names(stdout);
    fputs(", all, or fuse (all passes, then\n"
          "                    each graph's fused kernels as the CPU backend groups them)\n"
          "  --set KEY=VALUE   override a config value (repeatable)\n"
          "  -h, --help        show this help\n",
          stdout);
}

/* Runs the pipeline (up to `after`; NULL = all) on every graph of m. */
bool cli_run_passes(Module *m, const char *after) {
    Arena *a = arena_new();
    const GraphCall **calls = NULL;
    int n = a ? ir_module_graphs(m, a, NULL, &calls) : -1;
    bool ok = n >= 0;
    for (int i = 0; ok && i < n; i++)
        ok = pass_run_pipeline(calls[i]->graph, after);
    arena_free(a);
    return ok;
}

/* `--after fuse`: fusion decides kernels without rewriting the graph, so the
 * whole pipeline runs and each graph's kernel list follows the module. */
static bool print_fusion(Module *m, FILE *out) {
    Arena *a = arena_new();
    const Graph **graphs = NULL;
    int n = a ? ir_module_graphs(m, a, &graphs, NULL) : -1;
    for (int i = 0; i < n; i++) {
        fputc('\n', out);
        pass_fuse_print_graph(graphs[i], out);
    }
    arena_free(a);
    return n >= 0;
}

int cmd_ir(int argc, char **argv) {
    CliArgs a;
    CliParse p = cli_parse_args("ir", argc, argv, OPT_SET | OPT_AFTER, &a);
    if (p != CLI_PARSE_OK) {
        cli_args_free(&a);
        if (p == CLI_PARSE_HELP) help();
        return p == CLI_PARSE_HELP ? 0 : 1;
    }
    bool fuse = a.after && strcmp(a.after, "fuse") == 0;
    bool all = a.after && (strcmp(a.after, "all") == 0 || fuse);
    if (a.after && !all && !pass_pipeline_has(a.after)) {
        fprintf(stderr, "dflow ir: unknown pass '%s'; passes: ", a.after);
        put_pass_names(stderr);
        fputs(", fuse, all\n", stderr);
        cli_args_free(&a);
        return 1;
    }
    CliCompile c;
    bool ok = cli_compile(&c, &a, true);
    if (ok && a.after) {
        ok = cli_run_passes(c.module, all ? NULL : a.after);
        cli_print_new_diags(&c, stderr);
    }
    if (ok) ir_module_print(c.module, stdout);
    if (ok && fuse) ok = print_fusion(c.module, stdout);
    cli_compile_free(&c);
    cli_args_free(&a);
    return ok ? 0 : 1;
}
