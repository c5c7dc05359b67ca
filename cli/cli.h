/* The `dflow` command's shared pieces: argument parsing, compiling a
 * program for a subcommand, and printing diagnostics.
 *
 * Every subcommand returns its exit status: 0 success, 1 any user error
 * (bad flag, compile error, run-time error), 130 interrupted by Ctrl-C.
 * Usage errors name the offending flag and point at `--help`. */
#ifndef DFLOW_CLI_CLI_H
#define DFLOW_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend/frontend.h"

#ifndef DFLOW_VERSION
#define DFLOW_VERSION "0.1.0"
#endif

/* Which options a subcommand accepts. */
enum {
    OPT_SET = 1 << 0,             /* --set k=v (repeatable) */
    OPT_SEED = 1 << 1,            /* --seed N */
    OPT_OUT = 1 << 2,             /* --out DIR */
    OPT_BACKEND = 1 << 3,         /* --backend NAME */
    OPT_AFTER = 1 << 4,           /* --after PASS */
    OPT_VERBOSE = 1 << 5,         /* --verbose, -v */
    OPT_PROGRESS = 1 << 6,        /* --progress / --no-progress */
    OPT_PASSES = 1 << 7,          /* --no-passes */
    OPT_MEM_REPORT = 1 << 8,      /* --mem-report */
    OPT_OUTPUT = 1 << 9,          /* -o FILE, --output FILE */
    OPT_TARGET_CPU = 1 << 10,     /* --target-cpu NAME */
    OPT_CHECK_NUMERICS = 1 << 11, /* --check-numerics */
    OPT_THREADS = 1 << 12,        /* --threads N */
};

typedef struct {
    const char *file;
    ConfigOverride *overrides; /* malloc'd; cli_args_free */
    int noverrides;
    uint64_t seed;
    const char *out_dir;
    const char *backend;
    const char *after;
    bool verbose;
    int progress; /* -1 auto (when stderr is a terminal), 0 off, 1 on */
    bool no_passes;
    bool mem_report;
    bool check_numerics;
    int threads; /* --threads N; 0: DFLOW_NUM_THREADS or the cores */
    const char *output;
    const char *target_cpu;
} CliArgs;

typedef enum { CLI_PARSE_OK, CLI_PARSE_ERROR, CLI_PARSE_HELP } CliParse;

/* Parses argv[0..argc) (the arguments after the subcommand name). On an
 * error prints "dflow CMD: ..." plus a hint to stderr. */
CliParse cli_parse_args(const char *cmd, int argc, char **argv, unsigned allowed, CliArgs *a);
void cli_args_free(CliArgs *a);

/* A compilation: arena, sources, diagnostics, module. */
typedef struct {
    Arena *arena;
    SourceSet *sources;
    DiagList *diags;
    Module *module;
    int printed; /* diagnostics already printed */
} CliCompile;

/* Compiles a.file; prints the diagnostics; false on any error. */
bool cli_compile(CliCompile *c, const CliArgs *a, bool check_only);
/* cli_compile, then every pass unless --no-passes (run and build). */
bool cli_compile_for_running(CliCompile *c, const CliArgs *a);
/* Prints the diagnostics added since the last call. */
void cli_print_new_diags(CliCompile *c, FILE *out);
void cli_compile_free(CliCompile *c);

/* Runs the pass pipeline (up to `after`; NULL = all) on every graph of m
 * (cmd_ir.c). False with diagnostics in m->diags. */
bool cli_run_passes(Module *m, const char *after);

int cmd_check(int argc, char **argv);
int cmd_ir(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_sweep(int argc, char **argv);

#endif
