/* main() of an executable made by `dflow build`.
 *
 * The executable carries its program image (dflow_image..dflow_image_end,
 * ir/module_image.h) and the task tables of its graphs (dflow_tabs), both
 * written by codegen/llvm/llvm_aot.c. It takes the flags of `dflow run` that
 * make sense without a compiler: --set for the configs the compiler found
 * settable after compilation (others are refused with the reason), --seed,
 * --out, --progress, --check-numerics, --threads; it writes the same log lines, metrics.csv and
 * summary.json, and exits 0 on success, 1 on an error, 130 on Ctrl-C. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/module_image.h"
#include "runner.h"
#include "runtime/cliopt.h"
#include "runtime/config_text.h"
#include "runtime/outfile.h"

extern const unsigned char dflow_image[];
extern const unsigned char dflow_image_end[];
extern void *const dflow_tabs[];
extern const int64_t dflow_ntabs;
extern const uint32_t dflow_graph_sums[];
extern const uint32_t dflow_image_crc;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    const char *prog;
    const char **set; /* "k=v" */
    int nset;
    uint64_t seed;
    const char *out_dir;
    int progress; /* -1 auto */
    bool check_numerics;
    int threads; /* 0: DFLOW_NUM_THREADS or the cores */
} Args;

static void usage(const char *prog, const Module *m, FILE *f) {
    fprintf(f,
            "usage: %s [--set KEY=VALUE]... [--seed N] [--out DIR] [--progress|--no-progress]\n"
            "          [--check-numerics] [--threads N]\n"
            "\n"
            "A dflow program compiled by `dflow build`.\n"
            "  --set KEY=VALUE  change a config value (only those listed as settable)\n"
            "  --seed N         the run seed (default 0)\n"
            "  --out DIR        write metrics.csv and summary.json into DIR\n"
            "  --progress       show the progress line (default: when stderr is a terminal)\n"
            "  --check-numerics stop at the first kernel that computes a NaN or Inf, naming\n"
            "                   its op, file:line:col and the step\n"
            "  --threads N      use at most N kernel and OpenBLAS threads (default:\n"
            "                   DFLOW_NUM_THREADS, else every core)\n"
            "exit status: 0 success, 1 error, 130 interrupted\n",
            prog);
    if (!m || m->nconfigs == 0) return;
    fprintf(f, "\nconfig:\n");
    for (int i = 0; i < m->nconfigs; i++) {
        const ModuleConfig *c = &m->configs[i];
        fprintf(f, "  %-16s = %-12s %s%s%s\n", c->name, c->value ? c->value : "?",
                c->runtime ? "settable" : "fixed at build", !c->runtime && c->fixed_why ? ": " : "",
                !c->runtime && c->fixed_why ? c->fixed_why : "");
    }
}

/* 0 ok, 1 error (printed), 2 help. */
static int parse_args(int argc, char **argv, Args *a) {
    memset(a, 0, sizeof *a);
    a->prog = argv[0];
    a->progress = -1;
    a->set = calloc((size_t)(argc > 0 ? argc : 1), sizeof *a->set);
    if (!a->set) return 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) return 2;
        if (!strcmp(arg, "--progress") || !strcmp(arg, "--no-progress")) {
            a->progress = arg[2] == 'p';
            continue;
        }
        if (!strcmp(arg, "--check-numerics")) {
            a->check_numerics = true;
            continue;
        }
        const char *names[] = {"--set", "--seed", "--out", "--threads"};
        int which = -1;
        for (int k = 0; k < 4 && which < 0; k++)
            if (rt_opt_is(arg, names[k], &v)) which = k;
        if (which < 0) {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", a->prog, arg);
            return 1;
        }
        if (!v && i + 1 < argc) v = argv[++i];
        if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", a->prog, names[which]);
            return 1;
        }
        if (which == 0) {
            if (!strchr(v, '=') || v[0] == '=') {
                fprintf(stderr, "%s: --set needs KEY=VALUE, got '%s'\n", a->prog, v);
                return 1;
            }
            a->set[a->nset++] = v;
        } else if (which == 1 && !rt_parse_u64(v, &a->seed)) {
            fprintf(stderr, "%s: --seed needs a non-negative integer, got '%s'\n", a->prog, v);
            return 1;
        } else if (which == 2) {
            a->out_dir = v;
        } else if (which == 3 && !rt_threads_parse(v, &a->threads)) {
            fprintf(stderr, "%s: --threads needs an integer from 1 to %d, got '%s'\n", a->prog,
                    RT_POOL_MAX, v);
            return 1;
        }
    }
    return 0;
}

/* The value of one --set as a scalar tensor of the config's slot dtype,
 * type-checked as `dflow run --set` is (runtime/config_text.h). */
static RtTensor *config_value(const ModuleConfig *c, const char *text, const char *prog) {
    RtConfigValue v;
    char why[512];
    if (!rt_config_parse(c->type, c->name, text, &v, why, sizeof why)) {
        fprintf(stderr, "%s: --set: %s\n", prog, why);
        return NULL;
    }
    DType dt = c->type == 'i' ? DT_I64 : c->type == 'f' ? DT_F64 : DT_BOOL;
    RtTensor *t = c->type == 's' ? NULL : rt_tensor_new(dt, rt_shape_scalar());
    if (!t) {
        fprintf(stderr, "%s: --set %s: %s\n", prog, c->name,
                c->type == 's' ? "a string config has no value to change" : "out of memory");
        return NULL;
    }
    if (c->type == 'i')
        ((int64_t *)t->data)[0] = v.i;
    else if (c->type == 'f')
        ((double *)t->data)[0] = v.f;
    else
        ((uint8_t *)t->data)[0] = v.b;
    return t;
}

/* Applies the --set values; new tensors go to owned[] (freed by the caller). */
static bool apply_sets(Module *m, const Args *a, RtTensor **owned) {
    for (int i = 0; i < a->nset; i++) {
        const char *eq = strchr(a->set[i], '=');
        size_t klen = (size_t)(eq - a->set[i]);
        const ModuleConfig *c = NULL;
        for (int k = 0; k < m->nconfigs && !c; k++)
            if (strlen(m->configs[k].name) == klen && !strncmp(m->configs[k].name, a->set[i], klen))
                c = &m->configs[k];
        if (!c) {
            char key[256], why[512];
            snprintf(key, sizeof key, "%.*s", (int)klen, a->set[i]);
            const char **keys = calloc((size_t)(m->nconfigs ? m->nconfigs : 1), sizeof *keys);
            for (int k = 0; keys && k < m->nconfigs; k++)
                keys[k] = m->configs[k].name;
            rt_config_unknown_key(key, keys, keys ? m->nconfigs : 0, why, sizeof why);
            free(keys);
            fprintf(stderr, "%s: --set: %s\n", a->prog, why);
            return false;
        }
        if (!c->runtime) {
            fprintf(stderr,
                    "%s: --set %s: '%s' is fixed in this executable (%s); rebuild with "
                    "`dflow build --set %s`\n",
                    a->prog, a->set[i], c->name,
                    c->fixed_why ? c->fixed_why : "the compiler used its value", a->set[i]);
            return false;
        }
        if (c->slot < 0) continue; /* no graph reads it: nothing changes */
        RtTensor *t = config_value(c, eq + 1, a->prog);
        if (!t) return false;
        rt_tensor_free(owned[i]);
        owned[i] = t;
        m->slots[c->slot].value = t;
    }
    return true;
}

static int run(Module *m, SourceSet *src, BuiltRunner *br, const Args *a) {
    char err[256] = "";
    NumericsCheck numerics = {.step = -1};
    br->numerics = a->check_numerics ? &numerics : NULL;
    int threads = a->threads ? a->threads : rt_pool_default_size();
    GraphRunner runner =
        built_runner_bind(br, dflow_tabs, (int)dflow_ntabs, threads, err, sizeof err);
    if (!runner.run) {
        fprintf(stderr, "%s: %s\n", a->prog, err);
        return 1;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C: the default action */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    ExecOptions o = {
        .program = src->nfiles > 1 ? src->files[1].path : a->prog,
        .seed = a->seed,
        .out_dir = a->out_dir,
        .progress = a->progress < 0 ? isatty(fileno(stderr)) != 0 : a->progress == 1,
        .log = stdout,
        .interrupted = &interrupted,
        .runner = runner,
        .numerics = br->numerics,
    };
    bool ok = ir_exec_module(m, &o);
    sigaction(SIGINT, &old, NULL);
    fflush(stdout);
    diag_print_all(m->diags, stderr);
    if (interrupted) return 130;
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    Args a;
    int pa = parse_args(argc, argv, &a);
    Arena *arena = arena_new();
    SourceSet *src = arena ? source_set_new(arena) : NULL;
    DiagList *d = src ? diag_list_new(arena, src) : NULL;
    BuiltRunner br = {.arena = arena, .src = src};
    char err[256] = "";
    size_t image_n = (size_t)(dflow_image_end - dflow_image);
    /* the image's checksum must be the one linked in: an image edited with
       its checksum recomputed is not the program that was built */
    bool linked = ir_image_header_crc(dflow_image, image_n) == dflow_image_crc;
    if (!linked)
        snprintf(err, sizeof err,
                 "corrupt program image: not the image this executable was built with");
    Module *m =
        d && pa != 1 && linked
            ? ir_image_read_linked(dflow_image, image_n, arena, src, d, built_runner_read_graph,
                                   &br, dflow_graph_sums, (int)dflow_ntabs, err, sizeof err)
            : NULL;
    int rc = 1;
    RtTensor **owned = calloc((size_t)(a.nset ? a.nset : 1), sizeof *owned);
    if (pa == 1) {
        rc = 1;
    } else if (!m) {
        fprintf(stderr, "%s: %s\n", a.prog, arena ? err : "out of memory");
    } else if (pa == 2) {
        usage(a.prog, m, stdout);
        rc = 0;
    } else if (owned && apply_sets(m, &a, owned)) {
        rc = run(m, src, &br, &a);
    }
    for (int i = 0; owned && i < a.nset; i++)
        rt_tensor_free(owned[i]);
    free(owned);
    free(a.set);
    built_runner_free(&br);
    arena_free(arena);
    if (!rt_out_finish_stdout(a.prog) && rc == 0) rc = 1;
    return rc;
}
