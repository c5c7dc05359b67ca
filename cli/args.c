/* Argument parsing and compilation shared by the subcommands.
 *
 * Options take their value as the next argument or after '=' (`--seed 3`,
 * `--seed=3`); `--` ends the options. Exactly one program file is expected.
 * Values are validated here (a seed is a non-negative 64-bit integer, --set
 * needs KEY=VALUE), so the subcommands only see well-formed input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime/cliopt.h"
#include "runtime/threadpool.h"

static void usage_hint(const char *cmd) {
    fprintf(stderr, "Try 'dflow %s --help' for the options.\n", cmd);
}

CliParse cli_parse_args(const char *cmd, int argc, char **argv, unsigned allowed, CliArgs *a) {
    memset(a, 0, sizeof *a);
    a->progress = -1;
    a->backend = "auto"; /* the JIT, tiered: short runs never wait on LLVM */
    a->overrides = calloc((size_t)(argc > 0 ? argc : 1), sizeof *a->overrides);
    if (!a->overrides) {
        fprintf(stderr, "dflow %s: out of memory\n", cmd);
        return CLI_PARSE_ERROR;
    }
    bool only_files = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        if (only_files || arg[0] != '-' || arg[1] == '\0') {
            if (a->file) {
                fprintf(stderr, "dflow %s: unexpected argument '%s' (one program file only)\n", cmd,
                        arg);
                usage_hint(cmd);
                return CLI_PARSE_ERROR;
            }
            a->file = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_files = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return CLI_PARSE_HELP;

        /* options with a value */
        static const struct {
            const char *name;
            unsigned bit;
        } valued[] = {
            {"--set", OPT_SET},         {"--seed", OPT_SEED},
            {"--out", OPT_OUT},         {"--backend", OPT_BACKEND},
            {"--after", OPT_AFTER},     {"--output", OPT_OUTPUT},
            {"-o", OPT_OUTPUT},         {"--target-cpu", OPT_TARGET_CPU},
            {"--threads", OPT_THREADS},
        };
        int which = -1;
        for (int k = 0; k < (int)(sizeof valued / sizeof valued[0]); k++)
            if ((allowed & valued[k].bit) && rt_opt_is(arg, valued[k].name, &val)) which = k;
        if (which >= 0) {
            const char *name = valued[which].name;
            if (!val) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "dflow %s: option '%s' needs a value\n", cmd, name);
                    usage_hint(cmd);
                    return CLI_PARSE_ERROR;
                }
                val = argv[++i];
            }
            switch (valued[which].bit) {
            case OPT_SET: {
                const char *eq = strchr(val, '=');
                if (!eq || eq == val) {
                    fprintf(stderr, "dflow %s: --set expects KEY=VALUE, got '%s'\n", cmd, val);
                    usage_hint(cmd);
                    return CLI_PARSE_ERROR;
                }
                size_t klen = (size_t)(eq - val);
                char *key = malloc(klen + 1);
                if (!key) {
                    fprintf(stderr, "dflow %s: out of memory\n", cmd);
                    return CLI_PARSE_ERROR;
                }
                memcpy(key, val, klen);
                key[klen] = '\0';
                a->overrides[a->noverrides].key = key;
                a->overrides[a->noverrides].value = eq + 1;
                a->noverrides++;
                break;
            }
            case OPT_SEED:
                if (!rt_parse_u64(val, &a->seed)) {
                    fprintf(stderr, "dflow %s: --seed expects a non-negative integer, got '%s'\n",
                            cmd, val);
                    usage_hint(cmd);
                    return CLI_PARSE_ERROR;
                }
                break;
            case OPT_OUT:
                if (!*val) {
                    fprintf(stderr, "dflow %s: --out needs a folder name\n", cmd);
                    return CLI_PARSE_ERROR;
                }
                a->out_dir = val;
                break;
            case OPT_OUTPUT:
                if (!*val) {
                    fprintf(stderr, "dflow %s: -o needs a file name\n", cmd);
                    return CLI_PARSE_ERROR;
                }
                a->output = val;
                break;
            case OPT_TARGET_CPU:
                a->target_cpu = val;
                break;
            case OPT_THREADS:
                if (!rt_threads_parse(val, &a->threads)) {
                    fprintf(stderr,
                            "dflow %s: --threads expects an integer from 1 to %d, got '%s'\n", cmd,
                            RT_POOL_MAX, val);
                    usage_hint(cmd);
                    return CLI_PARSE_ERROR;
                }
                break;
            case OPT_BACKEND:
                a->backend = val;
                break;
            case OPT_AFTER:
                a->after = val;
                break;
            }
            continue;
        }
        if ((allowed & OPT_VERBOSE) && (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0)) {
            a->verbose = true;
            continue;
        }
        if ((allowed & OPT_PROGRESS) && strcmp(arg, "--progress") == 0) {
            a->progress = 1;
            continue;
        }
        if ((allowed & OPT_PROGRESS) && strcmp(arg, "--no-progress") == 0) {
            a->progress = 0;
            continue;
        }
        if ((allowed & OPT_MEM_REPORT) && strcmp(arg, "--mem-report") == 0) {
            a->mem_report = true;
            continue;
        }
        if ((allowed & OPT_CHECK_NUMERICS) && strcmp(arg, "--check-numerics") == 0) {
            a->check_numerics = true;
            continue;
        }
        if ((allowed & OPT_PASSES) && strcmp(arg, "--no-passes") == 0) {
            a->no_passes = true;
            continue;
        }
        fprintf(stderr, "dflow %s: unknown option '%s'\n", cmd, arg);
        usage_hint(cmd);
        return CLI_PARSE_ERROR;
    }
    if (!a->file) {
        fprintf(stderr, "dflow %s: missing the program file\n", cmd);
        usage_hint(cmd);
        return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
}

void cli_args_free(CliArgs *a) {
    if (a->overrides)
        for (int i = 0; i < a->noverrides; i++)
            free((char *)a->overrides[i].key);
    free(a->overrides);
    a->overrides = NULL;
    a->noverrides = 0;
}

void cli_print_new_diags(CliCompile *c, FILE *out) {
    if (!c->diags) return;
    for (; c->printed < c->diags->n; c->printed++)
        diag_print(c->diags, c->diags->items[c->printed], out);
}

bool cli_compile(CliCompile *c, const CliArgs *a, bool check_only) {
    memset(c, 0, sizeof *c);
    c->arena = arena_new();
    c->sources = c->arena ? source_set_new(c->arena) : NULL;
    c->diags = c->sources ? diag_list_new(c->arena, c->sources) : NULL;
    if (!c->diags) {
        fprintf(stderr, "dflow: out of memory\n");
        return false;
    }
    CompileOptions o = {a->overrides, a->noverrides, check_only};
    c->module = fe_compile(c->arena, c->sources, c->diags, a->file, &o);
    cli_print_new_diags(c, stderr);
    bool ok = c->module && !diag_has_errors(c->diags);
    if (!ok && c->diags->nerrors == 0) fprintf(stderr, "%s: error: compilation failed\n", a->file);
    if (c->diags->nerrors > c->diags->max_errors)
        fprintf(stderr, "dflow: %d more errors not shown\n",
                c->diags->nerrors - c->diags->max_errors);
    return ok;
}

void cli_compile_free(CliCompile *c) {
    if (c->module) ir_module_free(c->module);
    if (c->arena) arena_free(c->arena);
    memset(c, 0, sizeof *c);
}

bool cli_compile_for_running(CliCompile *c, const CliArgs *a) {
    bool ok = cli_compile(c, a, false);
    if (ok && !a->no_passes) {
        ok = cli_run_passes(c->module, NULL);
        cli_print_new_diags(c, stderr);
    }
    return ok;
}
