/* fe_compile: a .dfl file in, a checked Module out.
 *
 * The order: load and parse the program; register its globals and load the
 * std modules it imports (each parsed as std/<name>.dfl); check every --set
 * key against `config`; run sema over every module; evaluate the data
 * declarations in source order; lower `train` blocks and `main` in source
 * order into Module.main (a train becomes HS_TRAIN where it is declared);
 * verify every graph. Any error makes it return NULL; diagnostics are in d.
 * Config values are evaluated lazily (they may be used before their line),
 * with a --set override parsed as a literal of the declared value's type.
 * Every config of the main module gets an entry in Module.configs; its
 * number travels tagged with that entry (Value.cfg) so that graphs read it
 * through a SLOT_CONFIG slot (lower.c) unless something folds it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/config_text.h"
#include "lower_internal.h"

/* ---- globals ------------------------------------------------------------------------- */

static Global *add_global(Lower *L, FeMod *m, const char *name, GlobalKind k, const Decl *d,
                          SrcLoc loc) {
    Global *old = lw_global(m, name);
    if (old) {
        Diag *dg = diag_error(L->d, loc, "'%s' is already declared", name);
        diag_add_note(L->d, dg, old->loc, "'%s' was first declared here", name);
        return NULL;
    }
    if (!arena_grow(L->a, &m->g, &m->cap, (size_t)m->n + 1, 16)) return NULL;
    Global *g = &m->g[m->n++];
    memset(g, 0, sizeof *g);
    g->name = name;
    g->kind = k;
    g->decl = d;
    g->loc = loc;
    return g;
}

static FeMod *new_mod(Lower *L, const char *name, Program *p) {
    FeMod *m = arena_alloc(L->a, sizeof *m);
    if (!m) return NULL;
    m->name = name;
    m->prog = p;
    if (!arena_grow(L->a, &L->mods, &L->cap_mods, (size_t)L->nmods + 1, 8)) return NULL;
    L->mods[L->nmods++] = m;
    return m;
}

static void register_globals(Lower *L, FeMod *m);

FeMod *lw_load_std(Lower *L, const char *name, SrcLoc loc) {
    FeMod *m = lw_find_mod(L, name);
    if (m) return m;
    const char *text = fe_std_source(name);
    if (!text) {
        diag_error(L->d, loc, "unknown module '%s' (the standard modules are nn and optim)", name);
        return NULL;
    }
    uint32_t fid = source_add(L->src, lw_printf(L, "std/%s.dfl", name), text, strlen(text));
    if (!fid) return NULL;
    Program *p = fe_parse(L->a, L->d, fid);
    if (!p) return NULL;
    m = new_mod(L, name, p);
    if (!m) return NULL;
    register_globals(L, m);
    return m;
}

static void register_globals(Lower *L, FeMod *m) {
    Program *p = m->prog;
    for (int i = 0; i < p->ndecls; i++) {
        const Decl *d = p->decls[i];
        switch (d->kind) {
        case DC_IMPORT:
            for (int k = 0; k < d->u.import.n; k++) {
                const char *nm = d->u.import.names[k];
                FeMod *im = lw_load_std(L, nm, d->u.import.locs[k]);
                if (!im) continue;
                Global *g = add_global(L, m, nm, G_MODULE, d, d->u.import.locs[k]);
                if (!g) continue;
                Value *v = arena_alloc(L->a, sizeof *v);
                if (!v) continue;
                v->kind = V_MODULE;
                v->u.mod = im;
                g->v = v;
                g->state = 2;
            }
            break;
        case DC_CONFIG:
            for (int k = 0; k < d->u.config.n; k++) {
                const Setting *s = &d->u.config.items[k];
                Global *g = add_global(L, m, s->name, G_CONFIG, d, s->loc);
                if (g) g->expr = s->value;
            }
            break;
        case DC_DATA:
            add_global(L, m, d->name, G_DATA, d, d->name_loc);
            break;
        case DC_FN:
            add_global(L, m, d->name, G_FN, d, d->name_loc);
            break;
        case DC_OPTIMIZER:
            add_global(L, m, d->name, G_OPTIM, d, d->name_loc);
            break;
        case DC_MODEL:
            add_global(L, m, d->name, G_MODEL, d, d->name_loc);
            break;
        case DC_TRAIN:
        case DC_MAIN:
            break;
        }
    }
    for (int i = 0; i < p->ndecls; i++) {
        Global *g = p->decls[i]->kind == DC_TRAIN ? lw_global(m, p->decls[i]->name) : NULL;
        if (g && g->kind == G_FN) g->trained = true;
    }
}

/* ---- config -------------------------------------------------------------------------- */

static const ConfigOverride *find_override(Lower *L, const char *key) {
    const CompileOptions *o = L->opts;
    if (!o) return NULL;
    const ConfigOverride *found = NULL;
    for (int i = 0; i < o->noverrides; i++)
        if (o->overrides[i].key && strcmp(o->overrides[i].key, key) == 0) found = &o->overrides[i];
    return found; /* the last --set of a key wins */
}

/* The --set text as a value of the declared value's type (runtime/config_text.h:
 * the same check as a built executable's --set). */
static Value *parse_override(Lower *L, Global *g, Value *decl, const char *text) {
    char type = decl->kind == V_INT     ? 'i'
                : decl->kind == V_FLOAT ? 'f'
                : decl->kind == V_BOOL  ? 'b'
                : decl->kind == V_STR   ? 's'
                                        : 0;
    if (!type) return lw_err(L);
    RtConfigValue v;
    char why[512];
    if (!rt_config_parse(type, g->name, text, &v, why, sizeof why))
        return lw_error(L, g->loc, "%s", why);
    switch (type) {
    case 'i':
        return val_int(L->a, v.i);
    case 'f':
        return val_float(L->a, v.f);
    case 'b':
        return val_bool(L->a, v.b);
    default:
        return val_str(L->a, arena_strdup(L->a, text ? text : ""));
    }
}

/* Shortest text that reads back as the same double (what --set would take). */
static const char *float_text(Lower *L, double f) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, f);
        if (strtod(buf, NULL) == f) break;
    }
    return lw_printf(L, "%s", buf);
}

/* Records main-module config g's value in Module.configs and returns the
 * Value that stands for it: a fresh copy carrying the config's index, so
 * that graphs read it from its slot. A config defined as another config
 * (b = a) copies a's number at compile time: a is then baked. */
static Value *tag_config(Lower *L, Global *g, Value *v) {
    ModuleConfig *c = &L->m->configs[g->cfg - 1];
    switch (v->kind) {
    case V_INT:
        c->type = 'i';
        c->value = lw_printf(L, "%lld", (long long)v->u.i);
        break;
    case V_FLOAT:
        c->type = 'f';
        c->value = float_text(L, v->u.f);
        break;
    case V_BOOL:
        c->type = 'b';
        c->value = v->u.b ? "true" : "false";
        break;
    case V_STR:
        c->type = 's';
        c->value = v->u.s;
        return v;
    case V_ERROR:
    case V_NONE:
    case V_TENSOR:
    case V_SLOT:
    case V_TREE:
    case V_LIST:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        return v;
    }
    lw_cfg_bake(L, v, g->expr->loc);
    Value *t = arena_alloc(L->a, sizeof *t);
    if (!t) return lw_err(L);
    *t = *v;
    t->cfg = g->cfg;
    return t;
}

Value *lw_config_value(Lower *L, FeMod *m, Global *g) {
    Scope *s = lw_scope_new(L, NULL, m);
    GraphCtx *saved = L->gc;
    L->gc = NULL; /* config values are constants: no graph to build nodes in */
    int before = L->d->nerrors;
    Value *v = s ? lw_expr(L, s, g->expr) : lw_err(L);
    L->gc = saved;
    if (!val_is_error(v) && !val_is_const(v) && v->kind != V_STR)
        v = lw_error(L, g->expr->loc,
                     "config value '%s' must be an int, float, bool or string constant, got %s",
                     g->name, lw_value_desc(L, v));
    if (val_is_error(v) && L->d->nerrors == before)
        v = lw_error(L, g->expr->loc,
                     "config value '%s' must be an int, float, bool or string constant", g->name);
    if (val_is_error(v)) return v;
    if (m == L->main) {
        const ConfigOverride *o = find_override(L, g->name);
        if (o) v = parse_override(L, g, v, o->value);
    }
    if (m == L->main && g->cfg > 0 && g->cfg <= L->m->nconfigs && !val_is_error(v))
        v = tag_config(L, g, v);
    return v;
}

static void check_override_keys(Lower *L) {
    const CompileOptions *o = L->opts;
    if (!o) return;
    const char **keys = arena_alloc(L->a, sizeof(char *) * (size_t)(L->main->n + 1));
    int nk = 0;
    for (int i = 0; keys && i < L->main->n; i++)
        if (L->main->g[i].kind == G_CONFIG) keys[nk++] = L->main->g[i].name;
    for (int i = 0; i < o->noverrides; i++) {
        const char *k = o->overrides[i].key ? o->overrides[i].key : "";
        Global *g = lw_global(L->main, k);
        if (g && g->kind == G_CONFIG) continue;
        char why[512];
        rt_config_unknown_key(k, keys, keys ? nk : 0, why, sizeof why);
        diag_error(L->d, srcloc_none(), "--set: %s", why);
    }
}

/* Module.configs: one entry per config of the main module, in order. */
static bool config_table(Lower *L) {
    int n = 0;
    for (int i = 0; i < L->main->n; i++)
        n += L->main->g[i].kind == G_CONFIG;
    if (n == 0) return true;
    L->m->configs = arena_alloc(L->a, sizeof(ModuleConfig) * (size_t)n);
    L->cfg_globals = arena_alloc(L->a, sizeof(Global *) * (size_t)n);
    if (!L->m->configs || !L->cfg_globals) {
        diag_error(L->d, srcloc_none(), "out of memory");
        return false;
    }
    for (int i = 0; i < L->main->n; i++) {
        Global *g = &L->main->g[i];
        if (g->kind != G_CONFIG) continue;
        ModuleConfig *c = &L->m->configs[L->m->nconfigs];
        c->name = g->name;
        c->slot = -1;
        L->cfg_globals[L->m->nconfigs] = g;
        g->cfg = ++L->m->nconfigs;
    }
    return true;
}

/* ---- the entry point ----------------------------------------------------------------- */

static const char *dir_of(Lower *L, const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return NULL;
    if (slash == path) return "/";
    return arena_strndup(L->a, path, (size_t)(slash - path));
}

Module *fe_compile(Arena *a, SourceSet *s, DiagList *d, const char *path, const CompileOptions *o) {
    if (!a || !s || !d || !path) return NULL;
    uint32_t fid = source_load(s, path, d);
    if (!fid) return NULL;
    Program *p = fe_parse(a, d, fid);
    if (!p || diag_has_errors(d)) return NULL;

    Lower L;
    memset(&L, 0, sizeof L);
    L.a = a;
    L.d = d;
    L.src = s;
    L.opts = o;
    L.check_only = o && o->check_only;
    L.unroll_left = FE_UNROLL_BUDGET;
    L.reach_budget = FE_REACH_BUDGET;
    L.src_dir = dir_of(&L, path);
    L.m = ir_module_new(a, d);
    if (!L.m) return NULL;
    L.main = new_mod(&L, "", p);
    if (!L.main) return NULL;
    register_globals(&L, L.main);
    if (!config_table(&L)) {
        ir_module_free(L.m);
        return NULL;
    }
    check_override_keys(&L);
    if (diag_has_errors(d)) {
        ir_module_free(L.m);
        return NULL;
    }

    /* sema: std modules first, so that their errors read first */
    for (int i = L.nmods - 1; i >= 0; i--)
        fe_sema_module(&L, L.mods[i]);
    if (diag_has_errors(d)) {
        ir_module_free(L.m);
        return NULL;
    }

    /* config, data and models, in source order (a missing file or a model of
       something that is not a fn is an error even when unused) */
    for (int i = 0; i < L.main->n; i++) {
        Global *g = &L.main->g[i];
        if (g->kind == G_CONFIG || g->kind == G_DATA || g->kind == G_MODEL)
            lw_global_value(&L, L.main, g, g->loc);
    }
    for (int i = 0; i < p->ndecls && !L.oom; i++) {
        const Decl *dc = p->decls[i];
        if (dc->kind == DC_TRAIN)
            lw_train(&L, L.main, dc);
        else if (dc->kind == DC_MAIN)
            lw_main(&L, dc);
    }
    if (!L.oom) lw_defs_check_pending(&L);
    if (!L.oom) lw_warn_untrained(&L);
    if (L.oom) diag_error(d, srcloc_none(), "out of memory while compiling '%s'", path);
#ifdef DFLOW_VERIFY
    if (!diag_has_errors(d)) ir_module_verify(L.m, "lower");
#endif
    if (diag_has_errors(d)) {
        ir_module_free(L.m);
        return NULL;
    }
    return L.m;
}
