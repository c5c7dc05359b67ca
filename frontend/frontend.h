/* The frontend's entry point: a .dfl file in, a checked Module out.
 *
 * fe_compile parses the file and the std modules it imports, applies --set
 * overrides to `config` (type-checked against the declared value), checks
 * names, arity, dtypes and static shapes, and lowers `train` and `main` into
 * a Module of graphs and host statements. All of it lives in arena `a`.
 * Errors are collected in d (several per run); on any error it returns NULL.
 * Data files named by `data` declarations are read here (their shapes decide
 * the program's shapes) and owned by the returned Module. Module.configs
 * lists the program's config entries; fe_mark_runtime_configs tells which of
 * them a compiled program may still change. */
#ifndef DFLOW_FRONTEND_FRONTEND_H
#define DFLOW_FRONTEND_FRONTEND_H

#include "../ir/module.h"
#include "ast.h"

typedef struct {
    const char *key;   /* config name */
    const char *value; /* text as typed after '=' */
} ConfigOverride;

typedef struct {
    const ConfigOverride *overrides;
    int noverrides;
    bool check_only; /* `dflow check`: stop after checking (data headers only) */
} CompileOptions;

Module *fe_compile(Arena *a, SourceSet *s, DiagList *d, const char *path, const CompileOptions *o);

/* Decides m->configs[i].runtime for a module m that fe_compile made from
 * `path` with options o: true when the config is an int, float or bool that
 * reaches graphs only as a value (through its SLOT_CONFIG slot), so that a
 * built program may replace the slot's value (--set) and get exactly what a
 * recompilation with that value would give. Configs that decide shapes,
 * loop bounds, train steps or batch, data, or that were folded at compile
 * time stay fixed (fixed_why says why). It compiles the program again, once
 * plus once per config still in question, with that config perturbed, and
 * compares fingerprints (config_check.c); their diagnostics are discarded.
 * False, with a diagnostic in d, only when that machinery fails (out of
 * memory, or the program no longer compiles). */
bool fe_mark_runtime_configs(const char *path, const CompileOptions *o, Module *m, DiagList *d);

/* The standard library sources embedded at build time: name -> text, or NULL. */
const char *fe_std_source(const char *module_name);

#endif
