/* The frontend's entry point: a .dfl file in, a checked Module out.
 *
 * fe_compile parses the file and the std modules it imports, applies --set
 * overrides to `config` (type-checked against the declared value), checks
 * names, arity, dtypes and static shapes, and lowers `train` and `main` into
 * a Module of graphs and host statements. All of it lives in arena `a`.
 * Errors are collected in d (several per run); on any error it returns NULL.
 * Data files named by `data` declarations are read here (their shapes decide
 * the program's shapes) and owned by the returned Module. */
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

/* The standard library sources embedded at build time: name -> text, or NULL. */
const char *fe_std_source(const char *module_name);

#endif
