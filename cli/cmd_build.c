/* `dflow build FILE -o PROG`: a standalone executable of a program.
 *
 * Compiles FILE (with --set values fixed into it), asks the frontend which
 * configs the executable may still change (fe_mark_runtime_configs), and
 * hands the module to the LLVM ahead-of-time builder (codegen/llvm/llvm_aot.h),
 * which links the kernels and the program image with the runtime library
 * libdflow_rt.a. That library is found beside the dflow executable (the
 * build tree) or through DFLOW_RT_LIB; the linker is DFLOW_CC or the C
 * compiler dflow was configured with. -o never replaces the program's source
 * nor a file that is not an executable dflow built (codegen/llvm/aot_mark.h);
 * the executable is linked under a temporary name and renamed into place. */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "cli.h"
#include "codegen/llvm/aot_mark.h"
#include "codegen/llvm/llvm_aot.h"
#include "ir/exec.h"

static void help(void) {
    fputs("usage: dflow build FILE -o PROG [options]\n"
          "\n"
          "Compiles FILE into the executable PROG: its kernels ahead of time for this\n"
          "machine's CPU, its data and parameters' initial values inside it. PROG takes\n"
          "the flags of `dflow run` that need no compiler (--set, --seed, --out,\n"
          "--progress; PROG --help lists them with the program's configs) and prints the\n"
          "same lines and files. PROG needs neither LLVM nor dflow.\n"
          "\n"
          "A config can be changed with `PROG --set` only when the compiled program reads\n"
          "it as a value; configs that decide shapes, loop bounds, train steps or data,\n"
          "or that the compiler folded, are fixed at build time (set them here).\n"
          "\n"
          "options:\n"
          "  -o, --output PROG  the executable to write (required); an existing PROG is\n"
          "                     replaced only when dflow build made it\n"
          "  --set KEY=VALUE    a config value to build with (repeatable)\n"
          "  --target-cpu CPU   the CPU to compile for: native (this machine's CPU and its\n"
          "                     features; the default: the same bits as dflow run), or a\n"
          "                     level that runs on any machine that has it: x86-64,\n"
          "                     x86-64-v2, x86-64-v3 (AVX2, FMA), x86-64-v4 (AVX-512);\n"
          "                     reductions may then round differently from dflow run\n"
          "  -v, --verbose      report graphs, image size and the link command\n"
          "  -h, --help         show this help\n"
          "\n"
          "environment: DFLOW_RT_LIB (the runtime library; default: libdflow_rt.a beside\n"
          "dflow), DFLOW_CC (the C compiler that links; default: the one dflow was built\n"
          "with), TMPDIR (where the objects are made).\n",
          stdout);
}

/* libdflow_rt.a: DFLOW_RT_LIB, else beside this executable. */
static bool find_rt_lib(char *out, size_t n) {
    const char *env = getenv("DFLOW_RT_LIB");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return access(out, R_OK) == 0;
    }
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return false;
    self[k] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    int w = snprintf(out, n, "%s/libdflow_rt.a", self);
    return w > 0 && (size_t)w < n && access(out, R_OK) == 0;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            int w = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (w > 0 && (size_t)w < sizeof path) unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

/* "settable: lr, momentum; fixed: hidden, steps" on stdout. */
static void report_configs(const Module *m, const char *output) {
    printf("built %s", output);
    for (int pass = 0; pass < 2; pass++) {
        int k = 0;
        for (int i = 0; i < m->nconfigs; i++) {
            if (m->configs[i].runtime != (pass == 0)) continue;
            printf("%s%s",
                   k++         ? ", "
                   : pass == 0 ? "; settable: "
                               : "; fixed: ",
                   m->configs[i].name);
        }
    }
    printf("\n");
}

/* The CPU names --target-cpu takes (LLVM's, which it would otherwise accept
 * with only a warning when misspelt); NULL for native. False when unknown. */
static bool target_cpu(const char *name, const char **cpu) {
    static const char *const known[] = {"x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"};
    *cpu = NULL;
    if (!name || !strcmp(name, "native")) return true;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(name, known[i])) {
            *cpu = known[i];
            return true;
        }
    return false;
}

/* -o may name a new file or an executable dflow built, never the source nor
 * any other file (a typo must not replace the user's data or code). */
static bool output_may_be_written(const char *output, const char *source) {
    struct stat so, ss;
    if (stat(output, &so) != 0) return true; /* a new file (or a folder that fails later) */
    if (source && stat(source, &ss) == 0 && so.st_dev == ss.st_dev && so.st_ino == ss.st_ino) {
        fprintf(stderr, "dflow build: -o %s is the program's own source; choose another name\n",
                output);
        return false;
    }
    if (S_ISDIR(so.st_mode)) {
        fprintf(stderr, "dflow build: -o %s is a directory\n", output);
        return false;
    }
    if (!S_ISREG(so.st_mode) || !aot_is_built_executable(output)) {
        fprintf(stderr,
                "dflow build: -o %s exists and is not an executable made by dflow build; "
                "remove it or choose another name\n",
                output);
        return false;
    }
    return true;
}

static int build(CliCompile *c, const CliArgs *a) {
    const char *cpu;
    if (!target_cpu(a->target_cpu, &cpu)) {
        fprintf(stderr,
                "dflow build: unknown --target-cpu '%s' (choose native, x86-64, x86-64-v2, "
                "x86-64-v3 or x86-64-v4)\n",
                a->target_cpu);
        return 1;
    }
    char rt_lib[PATH_MAX];
    if (!find_rt_lib(rt_lib, sizeof rt_lib)) {
        fprintf(stderr,
                "dflow build: cannot find libdflow_rt.a (looked beside the dflow executable; set "
                "DFLOW_RT_LIB to its path)\n");
        return 1;
    }
    CompileOptions co = {.overrides = a->overrides, .noverrides = a->noverrides};
    if (!fe_mark_runtime_configs(a->file, &co, c->module, c->diags)) {
        cli_print_new_diags(c, stderr);
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    char work[PATH_MAX];
    snprintf(work, sizeof work, "%s/dflow-build-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(work)) {
        fprintf(stderr, "dflow build: cannot create a temporary folder in %s\n",
                tmp && *tmp ? tmp : "/tmp");
        return 1;
    }
    const char *cc = getenv("DFLOW_CC");
    LlvmBuildOptions bo = {
        .output = a->output,
        .rt_lib = rt_lib,
        .cc = cc && *cc ? cc : DFLOW_BUILD_CC,
        .link_flags = DFLOW_BUILD_LINK_FLAGS,
        .work_dir = work,
        .cpu = cpu,
        .verbose = a->verbose,
        .log = stderr,
    };
    char err[512] = "";
    ir_mark_repeated(c->module);
    bool ok = llvm_build_executable(c->module, c->sources, &bo, err, sizeof err);
    remove_dir(work);
    if (!ok) {
        fprintf(stderr, "dflow build: %s\n", err);
        return 1;
    }
    report_configs(c->module, a->output);
    return 0;
}

int cmd_build(int argc, char **argv) {
    CliArgs a;
    CliParse pr = cli_parse_args(
        "build", argc, argv, OPT_SET | OPT_OUTPUT | OPT_VERBOSE | OPT_PASSES | OPT_TARGET_CPU, &a);
    if (pr == CLI_PARSE_HELP) {
        help();
        cli_args_free(&a);
        return 0;
    }
    if (pr == CLI_PARSE_OK && !a.output) {
        fprintf(stderr, "dflow build: missing -o PROG (the executable to write)\n");
        pr = CLI_PARSE_ERROR;
    }
    if (pr != CLI_PARSE_OK) {
        cli_args_free(&a);
        return 1;
    }
    if (!output_may_be_written(a.output, a.file)) {
        cli_args_free(&a);
        return 1;
    }
    CliCompile c;
    bool ok = cli_compile_for_running(&c, &a);
    int rc = ok ? build(&c, &a) : 1;
    cli_compile_free(&c);
    cli_args_free(&a);
    return rc;
}
