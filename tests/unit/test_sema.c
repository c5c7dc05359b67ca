/* Semantic errors, in process: every tests/errors file that is not a syntax
 * error (sema_*, shape_*, data_*) is compiled with fe_compile in check-only
 * mode and each of its `# expect: LINE:COL: error: SUBSTRING` lines must
 * match a reported diagnostic at exactly that place; compilation must fail.
 * Also the --set checks (unknown keys, type mismatches, accepted forms) and
 * the "did you mean" helper, which no file can express. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "frontend/lower_internal.h"
#include "helpers/ir_helpers.h"

#define CORPUS_DIR "tests/errors"
#define MAX_FILES 512

typedef ThPath Case;

/* the corpus's semantic cases: syntax_* files are the parser's */
static int list_semantic(Case *out, int max) {
    return th_list_programs(CORPUS_DIR, "syntax_", out, max);
}

typedef struct {
    Arena *a;
    SourceSet *s;
    DiagList *d;
    Module *m;
} Compiled;

static Compiled compile(const char *path, const ConfigOverride *ov, int nov, bool check_only) {
    Compiled c;
    c.a = arena_new();
    c.s = source_set_new(c.a);
    c.d = diag_list_new(c.a, c.s);
    CompileOptions o = {ov, nov, check_only};
    c.m = fe_compile(c.a, c.s, c.d, path, &o);
    return c;
}

static void release(Compiled *c) {
    ir_module_free(c->m);
    arena_free(c->a);
}

static bool has_error(const Compiled *c, unsigned line, unsigned col, const char *sub) {
    for (int i = 0; i < c->d->n; i++) {
        const Diag *g = c->d->items[i];
        if (g->severity != DIAG_ERROR) continue;
        if ((line == 0 || (g->loc.line == line && g->loc.col == col)) && strstr(g->msg, sub))
            return true;
    }
    return false;
}

/* A note chained to an error (clashes point at the first declaration). */
static bool has_note(const Compiled *c, unsigned line, unsigned col, const char *sub) {
    for (int i = 0; i < c->d->n; i++)
        for (const Diag *g = c->d->items[i]->note; g; g = g->note)
            if (g->loc.line == line && g->loc.col == col && strstr(g->msg, sub)) return true;
    return false;
}

static char *dump(const Compiled *c) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f) {
        diag_print_all(c->d, f);
        fclose(f);
    }
    return buf;
}

Test(sema, corpus_has_semantic_files) {
    static Case cases[MAX_FILES];
    int n = list_semantic(cases, MAX_FILES);
    cr_assert_geq(n, 15, "only %d semantic error files in %s", n, CORPUS_DIR);
}

ParameterizedTestParameters(sema, corpus) {
    static Case cases[MAX_FILES];
    int n = list_semantic(cases, MAX_FILES);
    return cr_make_param_array(Case, cases, (size_t)n);
}

ParameterizedTest(Case *tc, sema, corpus) {
    FILE *f = fopen(tc->path, "r");
    cr_assert_not_null(f, "cannot open %s", tc->path);
    char line[1024];
    struct {
        unsigned line, col;
        char sub[512];
        bool note; /* `# note: LINE:COL: TEXT`: a note of an error */
    } want[16];
    int nw = 0;
    while (fgets(line, sizeof line, f) && nw < 16) {
        unsigned l, c;
        int off = 0;
        bool note = false;
        if ((sscanf(line, "# expect: %u:%u: error: %n", &l, &c, &off) == 2 && off > 0) ||
            (note = sscanf(line, "# note: %u:%u: %n", &l, &c, &off) == 2 && off > 0)) {
            want[nw].line = l;
            want[nw].col = c;
            want[nw].note = note;
            snprintf(want[nw].sub, sizeof want[nw].sub, "%s", line + off);
            want[nw].sub[strcspn(want[nw].sub, "\r\n")] = 0;
            nw++;
        } else if (line[0] != '#') {
            break;
        }
    }
    fclose(f);
    cr_assert_gt(nw, 0, "%s has no '# expect:' line", tc->path);
    Compiled c = compile(tc->path, NULL, 0, true);
    char *text = dump(&c);
    cr_expect_null(c.m, "%s compiled without errors", tc->path);
    for (int i = 0; i < nw; i++) {
        if (want[i].note)
            cr_expect(has_note(&c, want[i].line, want[i].col, want[i].sub),
                      "%s: no note '%s' at %u:%u; got:\n%s", tc->path, want[i].sub, want[i].line,
                      want[i].col, text ? text : "");
        else
            cr_expect(has_error(&c, want[i].line, want[i].col, want[i].sub),
                      "%s: no error '%s' at %u:%u; got:\n%s", tc->path, want[i].sub, want[i].line,
                      want[i].col, text ? text : "");
    }
    free(text);
    release(&c);
}

/* ---- --set ---------------------------------------------------------------------------- */

static char dir[256];

static const char *write_prog(const char *name, const char *src) {
    static char path[512];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/dflow_sema_XXXXXX", tmp && *tmp ? tmp : "/tmp");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(src, f);
    fclose(f);
    return path;
}

static const char *CFG = "config { steps = 10; lr = 0.5; flag = true; name = \"adam\" }\n"
                         "main { x = zeros([steps]) * lr\n log s = sum(x) }\n";

Test(sema, set_int_rejects_text) {
    ConfigOverride ov[] = {{"steps", "abc"}};
    Compiled c = compile(write_prog("a.dfl", CFG), ov, 1, true);
    cr_expect_null(c.m);
    cr_expect(has_error(&c, 1, 10, "'steps' is an int; --set gave 'abc'"));
    release(&c);
}

Test(sema, set_int_rejects_float) {
    ConfigOverride ov[] = {{"steps", "1.5"}};
    Compiled c = compile(write_prog("a.dfl", CFG), ov, 1, true);
    cr_expect_null(c.m);
    cr_expect(has_error(&c, 0, 0, "'steps' is an int; --set gave '1.5'"));
    release(&c);
}

Test(sema, set_float_accepts_int_and_bool_words) {
    ConfigOverride ov[] = {{"lr", "2"}, {"flag", "false"}, {"name", "sgd"}, {"steps", "4"}};
    Compiled c = compile(write_prog("a.dfl", CFG), ov, 4, true);
    cr_expect_not_null(c.m);
    cr_expect_eq(c.d->nerrors, 0);
    /* steps=4 decides a shape: the slot of x is f32[4] */
    bool found = false;
    for (int i = 0; c.m && i < c.m->nslots; i++)
        if (strcmp(c.m->slots[i].name, "x") == 0)
            found = c.m->slots[i].shape.rank == 1 && c.m->slots[i].shape.dims[0] == 4;
    cr_expect(found || !c.m, "x should be f32[4] after --set steps=4");
    release(&c);
}

Test(sema, set_bool_rejects_other_words) {
    ConfigOverride ov[] = {{"flag", "yes"}};
    Compiled c = compile(write_prog("a.dfl", CFG), ov, 1, true);
    cr_expect_null(c.m);
    cr_expect(has_error(&c, 0, 0, "'flag' is a bool"));
    release(&c);
}

Test(sema, set_unknown_key_suggests) {
    ConfigOverride ov[] = {{"stpes", "3"}};
    Compiled c = compile(write_prog("a.dfl", CFG), ov, 1, true);
    cr_expect_null(c.m);
    cr_expect(has_error(&c, 0, 0, "--set: unknown config key 'stpes' (did you mean 'steps'?)"));
    release(&c);
}

Test(sema, several_errors_in_one_run) {
    const char *src = "fn f(x) = x\n"
                      "main {\n"
                      "  a = f(1, 2)\n"
                      "  b = nope + 1\n"
                      "  c = sum(a, axes = 0)\n"
                      "}\n";
    Compiled c = compile(write_prog("b.dfl", src), NULL, 0, true);
    cr_expect_null(c.m);
    cr_expect(has_error(&c, 3, 7, "f takes 1 argument, got 2"));
    cr_expect(has_error(&c, 4, 7, "unknown name 'nope'"));
    cr_expect(has_error(&c, 5, 14, "sum has no keyword 'axes'"));
    release(&c);
}

Test(sema, error_value_does_not_cascade) {
    /* one bad shape, then many uses of the failed value: one diagnostic */
    const char *src = "main {\n"
                      "  a = ones([3]) + ones([4])\n"
                      "  b = a * 2\n"
                      "  c = sum(b) + a\n"
                      "  log v = c\n"
                      "}\n";
    Compiled c = compile(write_prog("c.dfl", src), NULL, 0, true);
    cr_expect_null(c.m);
    cr_expect_eq(c.d->nerrors, 1, "expected exactly one error, got %d", c.d->nerrors);
    release(&c);
}

Test(sema, closest_name) {
    const char *cands[] = {"mnist", "steps", "hidden", NULL};
    cr_expect_str_eq(fe_closest("mnsit", cands, 4), "mnist");
    cr_expect_str_eq(fe_closest("step", cands, 4), "steps");
    cr_expect_null(fe_closest("zzzzzz", cands, 4));
}

/* Odd but legal programs compile cleanly; odd illegal ones get their one
 * located error (not a crash, not a silent success). */
Test(sema, odd_programs_compile_or_fail_where_they_should) {
    static const struct {
        const char *src;
        unsigned line, col; /* 0: must compile without diagnostics */
        const char *error;
    } progs[] = {
        {"main { x = [1, [2, 3]] + 1 }\n", 0, 0, NULL}, /* a scalar maps over a tree */
        {"main { x = ones([2])[None, :, None][0, 0, 0, 0] }\n", 1, 46,
         "too many indices for f32[1,2,1]"},
        {"fn f(x: f32[...]) = x\nmain { y = f(1.0) + f(ones([2, 3])) }\n", 0, 0, NULL},
        {"main { for i in 0..3 { for j in i..4 { x = i + j } } }\n", 0, 0, NULL},
        {"main { x = reshape(ones([6]), [-1, -1]) }\n", 1, 31, "only one dimension may be -1"},
        {"main { x = eye(-3) }\n", 1, 12, "eye: negative dimension -3"},
        {"main { x = 1 / 0 }\n", 1, 14, "division by zero"},
        {"main { x = 2 ** 100 }\n", 1, 14, "integer overflow in '**'"},
        {"main { x = iota(4)[10:20] ; log n = len(x) }\n", 0, 0,
         NULL}, /* an empty slice, as in numpy */
        {"main { x = sample(0, 3) }\n", 1, 19, "sample: n must be between 1 and 2^31-1, got 0"},
        {"main { x = ones([2]) ; x.y = 3 }\n", 1, 26, "cannot set field 'y' of f32[2]"},
        {"fn g(f) = f(f)\nmain { y = g(g) }\n", 1, 11, "recursion is not supported"},
        {"main { l = fn(a) a(a) ; y = l(l) }\n", 1, 18, "calls are nested more than 64 deep"},
        /* checked although never called (lowering alone would never see it) */
        {"fn f(a, b) = a + b\nfn unused(x) = f(x)\nmain { y = f(1, 2) }\n", 2, 16,
         "missing argument 'b' in the call of f"},
    };
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "odd%zu.dfl", i);
        Compiled c = compile(write_prog(name, progs[i].src), NULL, 0, true);
        char *text = dump(&c);
        if (!progs[i].error) {
            cr_expect(c.m && c.d->n == 0, "%s should compile cleanly:\n%s\ngot:\n%s", name,
                      progs[i].src, text);
        } else {
            cr_expect_null(c.m, "%s compiled:\n%s", name, progs[i].src);
            cr_expect(has_error(&c, progs[i].line, progs[i].col, progs[i].error),
                      "%s: no error '%s' at %u:%u; got:\n%s", name, progs[i].error, progs[i].line,
                      progs[i].col, text);
        }
        free(text);
        release(&c);
    }
}

/* A typed parameter checks the rank as well as the named dimensions: a
 * rank-3 tensor whose leading dims fit f32[B, 784] is an error at the
 * argument, and so is a rank-1 one; `...` accepts extra leading axes only. */
Test(sema, typed_parameter_rank_mismatch_is_a_located_error) {
    const char *fn = "fn f(x: f32[B, 784]) -> f32[B] {\n  return sum(x, axis = 1)\n}\n"
                     "fn g(x: f32[..., 784]) -> f32 {\n  return sum(x)\n}\n";
    static const struct {
        const char *call;
        const char *error; /* NULL: accepted */
    } cases[] = {
        {"  y = f(ones([2, 784, 3]))\n",
         "argument 'x' of f: expected f32[B,784], got f32[2,784,3]"},
        {"  y = f(ones([784]))\n", "argument 'x' of f: expected f32[B,784], got f32[784]"},
        {"  y = f(ones([2, 785]))\n", "argument 'x' of f: expected f32[B,784], got f32[2,785]"},
        {"  y = g(ones([784, 2]))\n", "argument 'x' of g: expected f32[...,784], got f32[784,2]"},
        {"  y = f(ones([2, 784]))\n", NULL},
        {"  y = g(ones([3, 2, 784]))\n", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char src[512], name[32];
        snprintf(src, sizeof src, "%smain {\n%s}\n", fn, cases[i].call);
        snprintf(name, sizeof name, "rank%zu.dfl", i);
        Compiled c = compile(write_prog(name, src), NULL, 0, true);
        char *text = dump(&c);
        if (!cases[i].error) {
            cr_expect(c.m && c.d->n == 0, "%s should compile:\n%s\ngot:\n%s", name, src, text);
        } else {
            cr_expect_null(c.m, "%s compiled:\n%s", name, src);
            cr_expect(has_error(&c, 8, 9, cases[i].error), "%s: no error '%s' at 8:9; got:\n%s",
                      name, cases[i].error, text);
        }
        free(text);
        release(&c);
    }
}

/* ---- docs/language.md covers the builtin table ----------------------------------------- */

/* Does word occur as an identifier inside a `code span` of text[0..n) (as
 * `word =` when as_keyword)? */
static bool doc_mentions(const char *text, size_t n, const char *word, bool as_keyword) {
    size_t wl = strlen(word);
    bool in_code = false;
    for (size_t i = 0; i < n; i++) {
        const char *p = text + i;
        if (*p == '`') {
            in_code = !in_code;
            continue;
        }
        if (!in_code || i + wl > n || strncmp(p, word, wl) != 0) continue;
        char l = i ? p[-1] : ' ', r = p[wl];
        bool id_l = l == '_' || (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9');
        bool id_r = r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9');
        if (id_l || id_r) continue;
        if (!as_keyword) return true;
        const char *q = p + wl;
        while (*q == ' ')
            q++;
        if (*q == '=' && q[1] != '=') return true;
    }
    return false;
}

/* The documentation units of a Markdown text: a table row, or a paragraph
 * (lines up to a blank line or a table). Calls f on each until it is true. */
static bool doc_units(const char *doc, bool (*f)(const char *, size_t, const void *),
                      const void *ctx) {
    const char *p = doc;
    while (*p) {
        const char *start = p, *end;
        if (*p == '|') {
            end = strchr(p, '\n');
            end = end ? end : p + strlen(p);
        } else {
            end = p;
            while (*end && !(end[0] == '\n' && (end[1] == '\n' || end[1] == '|')))
                end++;
        }
        if (f(start, (size_t)(end - start), ctx)) return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

typedef struct {
    const char *name, *kw;
} DocAsk;

static bool unit_has(const char *u, size_t n, const void *ctx) {
    const DocAsk *a = ctx;
    return doc_mentions(u, n, a->name, false) && (!a->kw || doc_mentions(u, n, a->kw, true));
}

/* Every builtin has its name in a code span of the language reference, and
 * each of its keywords `name =` in the same table row or paragraph. */
Test(sema, every_builtin_is_documented) {
    FILE *f = fopen("docs/language.md", "r");
    cr_assert_not_null(f, "docs/language.md (run from the repository root)");
    static char doc[1 << 18];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    int nb = 0;
    for (int i = 0; fe_builtin_get(i); i++, nb++) {
        const Builtin *b = fe_builtin_get(i);
        DocAsk a = {b->name, NULL};
        cr_expect(doc_units(doc, unit_has, &a),
                  "builtin '%s' is not documented in docs/language.md", b->name);
        for (int k = 0; k < FE_MAX_KW && b->kw[k]; k++) {
            DocAsk ak = {b->name, b->kw[k]};
            cr_expect(doc_units(doc, unit_has, &ak),
                      "keyword '%s =' of '%s' is not documented beside it in docs/language.md",
                      b->kw[k], b->name);
        }
    }
    cr_expect_gt(nb, 50, "the builtin table has %d entries", nb);
}

/* ---- one diagnostic per place ------------------------------------------------------------ */

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A function inlined at three call sites reports its shape error three
 * times while tracing; it is printed once. */
Test(sema, an_error_in_an_inlined_function_is_printed_once) {
    const char *path = th_write_program("fn f(x) {\n"
                                        "  y = zeros([2]) + zeros([3])\n"
                                        "  return x\n"
                                        "}\n"
                                        "main {\n"
                                        "  a = f(1)\n"
                                        "  b = f(2)\n"
                                        "  c = f(3)\n"
                                        "}\n");
    Compiled c = compile(path, NULL, 0, false);
    cr_expect_null(c.m);
    char *text = dump(&c);
    cr_assert_not_null(text);
    cr_expect_eq(count_of(text, ":2:18: error: shape mismatch in '+'"), 1, "printed:\n%s", text);
    cr_expect_eq(count_of(text, "error:"), 1, "printed:\n%s", text);
    free(text);
    release(&c);
}
