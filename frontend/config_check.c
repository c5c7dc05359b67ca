/* fe_mark_runtime_configs: which configs a compiled program may change.
 *
 * Lowering reads a numeric or bool config of the main module through its
 * SLOT_CONFIG slot wherever it only flows into graphs as a value, and marks
 * it baked wherever it folds one (arithmetic, a branch, a shape, a loop
 * bound, an attribute: ModuleConfig.baked). Not every compile-time use folds
 * through those sites, so a config that was not baked is also tested by
 * experiment: compile the program again with that config perturbed (an
 * extra --set) and compare fingerprints (ir_module_fingerprint: the whole
 * printout and the bytes of the DATA slots, not config slot values) and the
 * other configs' values. Equal means the compiled program does not depend on
 * the value: replacing the slot's value after compilation is exactly what a
 * recompilation would have done. A perturbed compilation that fails means
 * the value matters at compile time. Strings are always fixed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

/* The compilation a verdict is measured against: path compiled with o. */
typedef struct {
    Arena *a;
    Module *m;
    uint64_t fp;
} Compiled;

static bool compile_one(const char *path, const CompileOptions *o, Compiled *c) {
    memset(c, 0, sizeof *c);
    c->a = arena_new();
    if (!c->a) return false;
    SourceSet *s = source_set_new(c->a);
    DiagList *d = s ? diag_list_new(c->a, s) : NULL;
    c->m = d ? fe_compile(c->a, s, d, path, o) : NULL;
    return c->m && ir_module_fingerprint(c->m, &c->fp);
}

static void release(Compiled *c) {
    ir_module_free(c->m);
    arena_free(c->a);
    memset(c, 0, sizeof *c);
}

/* The text of a value that differs from the compiled one, as --set takes it. */
static bool perturbed_text(const ModuleConfig *c, char *buf, size_t n) {
    const char *t = c->value ? c->value : "";
    char *end;
    switch (c->type) {
    case 'i': {
        errno = 0;
        long long v = strtoll(t, &end, 10);
        if (errno || *end) return false;
        snprintf(buf, n, "%lld", v == INT64_MAX ? v - 1 : v + 1);
        return true;
    }
    case 'f': {
        double v = strtod(t, &end);
        if (*end) return false;
        double p = v * 1.5 + 0.125;
        if (!isfinite(p) || p == v) p = v == 0.5 ? 0.75 : 0.5;
        snprintf(buf, n, "%.17g", p);
        return true;
    }
    case 'b':
        snprintf(buf, n, "%s", strcmp(t, "true") == 0 ? "false" : "true");
        return true;
    default:
        return false;
    }
}

/* Why a baked config is fixed, naming where m's compilation first used it. */
static const char *baked_why(Arena *a, const Module *m, SrcLoc loc) {
    const SourceFile *f =
        m->diags && m->diags->sources ? source_get(m->diags->sources, loc.file) : NULL;
    const char *at =
        f && loc.line ? arena_printf(a, " at %s:%u:%u", f->path, loc.line, loc.col) : "";
    return arena_printf(
        a, "the compiler uses its value (a shape, a bound, a branch or a folded constant)%s",
        at ? at : "");
}

/* Every config but `skip` has the same compiled value in both modules. */
static bool others_same(const Module *x, const Module *y, int skip) {
    if (x->nconfigs != y->nconfigs) return false;
    for (int i = 0; i < x->nconfigs; i++) {
        if (i == skip) continue;
        const char *a = x->configs[i].value, *b = y->configs[i].value;
        if (!a || !b || strcmp(a, b) != 0) return false;
    }
    return true;
}

bool fe_mark_runtime_configs(const char *path, const CompileOptions *o, Module *m, DiagList *d) {
    if (!path || !m) return false;
    Arena *ma = m->arena;
    int candidates = 0;
    for (int i = 0; i < m->nconfigs; i++) {
        ModuleConfig *c = &m->configs[i];
        c->runtime = false;
        c->fixed_why = NULL;
        if (c->type == 's')
            c->fixed_why = "a string is fixed when the program is compiled";
        else if (c->type != 'i' && c->type != 'f' && c->type != 'b')
            c->fixed_why = "its value is unknown";
        else if (c->baked)
            c->fixed_why = baked_why(ma, m, c->baked_at);
        else
            candidates++;
    }
    if (candidates == 0) return true;

    /* A fresh compilation, not m itself: passes may have rewritten m. */
    CompileOptions base_o = {0};
    if (o) base_o = *o;
    Compiled base;
    if (!compile_one(path, &base_o, &base) || base.m->nconfigs != m->nconfigs) {
        release(&base);
        diag_error(d, srcloc_none(),
                   "internal error: '%s' did not compile again to check its config values", path);
        return false;
    }
    int nov = base_o.noverrides;
    ConfigOverride *ov = malloc(sizeof *ov * (size_t)(nov + 1));
    if (!ov) {
        release(&base);
        diag_error(d, srcloc_none(), "out of memory");
        return false;
    }
    if (nov) memcpy(ov, base_o.overrides, sizeof *ov * (size_t)nov);
    bool ok = true;
    for (int i = 0; i < m->nconfigs && ok; i++) {
        ModuleConfig *c = &m->configs[i];
        if (c->fixed_why) continue;
        const ModuleConfig *bc = &base.m->configs[i];
        if (bc->baked || strcmp(bc->name, c->name) != 0) {
            c->fixed_why = baked_why(ma, base.m, bc->baked_at);
            continue;
        }
        char text[64];
        if (!perturbed_text(c, text, sizeof text)) {
            c->fixed_why = "its value is unknown";
            continue;
        }
        ov[nov] = (ConfigOverride){c->name, text};
        CompileOptions po = base_o;
        po.overrides = ov;
        po.noverrides = nov + 1;
        Compiled alt;
        if (!compile_one(path, &po, &alt)) {
            c->fixed_why = "the program does not compile with another value of it";
        } else if (alt.m->configs[i].baked || alt.fp != base.fp || !others_same(base.m, alt.m, i)) {
            c->fixed_why =
                "its value decides what the program compiles to (a shape, a loop bound, the "
                "training schedule, data or another config)";
        } else {
            c->runtime = true;
        }
        release(&alt);
        if (!c->runtime && !c->fixed_why) ok = false; /* out of memory for the reason */
    }
    free(ov);
    release(&base);
    if (!ok) diag_error(d, srcloc_none(), "out of memory");
    return ok;
}
