/* Parser tests: the spec's programs, AST shapes, newline and keyword rules,
 * syntax-error text and positions, the tests/errors/syntax_*.dfl corpus, and
 * robustness against nesting and mutated input.
 *
 * Each case parses source text into a fresh arena and compares either
 * ast_print_program / ast_print_expr output or the collected diagnostics,
 * rendered as "LINE:COL: error: message" (notes as "LINE:COL: note: ..."),
 * so that failures show exactly what the parser produced. Files are read
 * relative to the repository root, where ctest runs the test binaries. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"
#include "runtime/grow.h"

typedef struct {
    Arena *arena;
    SourceSet *src;
    DiagList *diags;
    Program *prog;
} Parse;

static Parse parse_text(const char *path, const char *text, size_t len) {
    Parse p;
    p.arena = arena_new();
    cr_assert_not_null(p.arena);
    p.src = source_set_new(p.arena);
    p.diags = diag_list_new(p.arena, p.src);
    p.diags->max_errors = 1000;
    uint32_t f = source_add(p.src, path, text, len);
    cr_assert(f != 0);
    p.prog = fe_parse(p.arena, p.diags, f);
    return p;
}

static Parse parse(const char *text) {
    return parse_text("test.dfl", text, strlen(text));
}

static void parse_free(Parse *p) {
    arena_free(p->arena);
    p->arena = NULL;
}

/* Everything the diagnostics say, one "LINE:COL: severity: message" a line. */
static char *diag_text(const DiagList *d) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    static const char *sev[] = {"error", "warning", "note"};
    for (int i = 0; i < d->n; i++)
        for (const Diag *g = d->items[i]; g; g = g->note)
            fprintf(f, "%u:%u: %s: %s\n", g->loc.line, g->loc.col, sev[g->severity], g->msg);
    fclose(f);
    return buf;
}

static char *program_text(const Program *p) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ast_print_program(p, f);
    fclose(f);
    return buf;
}

static char *expr_text(const Expr *e) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ast_print_expr(e, f);
    fclose(f);
    return buf;
}

/* Parses src, which must be free of errors, and returns its dump. */
static char *dump_ok(const char *src) {
    Parse p = parse(src);
    char *diags = diag_text(p.diags);
    cr_assert(!diag_has_errors(p.diags), "unexpected errors for:\n%s\n%s", src, diags);
    free(diags);
    char *out = program_text(p.prog);
    parse_free(&p);
    return out;
}

static void expect_program(const char *src, const char *want) {
    char *got = dump_ok(src);
    cr_expect_str_eq(got, want, "source:\n%s\ngot:\n%s\nwant:\n%s", src, got, want);
    free(got);
}

/* The value of `x = <expr>` inside a main block, printed. */
static char *value_of(const char *expr) {
    char src[1024];
    snprintf(src, sizeof src, "main {\n  x = %s\n}\n", expr);
    Parse p = parse(src);
    char *diags = diag_text(p.diags);
    cr_assert(!diag_has_errors(p.diags), "unexpected errors for '%s':\n%s", expr, diags);
    free(diags);
    cr_assert_eq(p.prog->ndecls, 1);
    const Decl *m = p.prog->decls[0];
    cr_assert_eq(m->kind, DC_MAIN);
    cr_assert_eq(m->u.main.body.n, 1, "'%s' is not one statement", expr);
    const Stmt *s = m->u.main.body.items[0];
    cr_assert_eq(s->kind, ST_ASSIGN);
    char *out = expr_text(s->u.assign.value);
    parse_free(&p);
    return out;
}

static void expect_expr(const char *expr, const char *want) {
    char *got = value_of(expr);
    cr_expect_str_eq(got, want, "'%s' parsed as %s, want %s", expr, got, want);
    free(got);
}

/* The diagnostics of a source that must have errors. */
static char *errors_of(const char *src) {
    Parse p = parse(src);
    cr_assert(diag_has_errors(p.diags), "no error for:\n%s", src);
    char *out = diag_text(p.diags);
    parse_free(&p);
    return out;
}

static void expect_errors(const char *src, const char *want) {
    char *got = errors_of(src);
    cr_expect_str_eq(got, want, "source:\n%s\ngot:\n%s\nwant:\n%s", src, got, want);
    free(got);
}

/* ---- the programs of the language design, sections 1-8 ---- */

static const char spec_01[] =
    "import nn, optim\n"
    "config { batch_size = 128; hidden = 256; steps = 3000; lr = 0.1 }\n"
    "data mnist = idx(\"data/mnist10k\", scale = 1.0 / 255, split = [8000, 2000])\n"
    "\n"
    "fn mlp(x: f32[B, 784]) -> f32[B, 10] {\n"
    "  h = relu(nn.linear(x, hidden))\n"
    "  return nn.linear(h, 10)\n"
    "}\n"
    "\n"
    "train mlp {\n"
    "  data      = mnist.train\n"
    "  batch     = batch_size\n"
    "  shuffle   = true\n"
    "  steps     = steps\n"
    "  loss      = cross_entropy(mlp(batch.x), batch.y)\n"
    "  optimizer = optim.sgd(lr = lr, momentum = 0.9)\n"
    "  every 500 {\n"
    "    log test_acc = mean(argmax(mlp(mnist.test.x), axis = 1) == mnist.test.y)\n"
    "  }\n"
    "}\n";

static const char spec_02[] = "fn linear(x: f32[..., I], out: int) -> f32[..., out] {\n"
                              "  param W: f32[I, out] = glorot_uniform()\n"
                              "  param b: f32[out]    = zeros()\n"
                              "  return x @ W + b\n"
                              "}\n";

static const char spec_03[] =
    "optimizer sgd(lr, momentum = 0.0, weight_decay = 0.0) {\n"
    "  state v = zeros_like(params)\n"
    "  step {\n"
    "    g = grad(loss, params)                 # reverse-mode autodiff of the objective\n"
    "    v = momentum * v + g + weight_decay * params\n"
    "    params -= lr * v\n"
    "  }\n"
    "}\n"
    "\n"
    "optimizer mezo(lr, eps = 1e-3) {\n"
    "  step {\n"
    "    z = randn_like(params, seed = fresh_seed())   # never materialised\n"
    "    c = (loss(params + eps * z) - loss(params - eps * z)) / (2 * eps)\n"
    "    params -= lr * c * z\n"
    "  }\n"
    "}\n"
    "\n"
    "optimizer mezo_svrg(lr_full, lr_mb, eps = 1e-3, q = 2, full = 512, share_z = true) {\n"
    "  state anchor = params\n"
    "  state g_full = zeros_like(params)\n"
    "  step {\n"
    "    if t % q == 0 {\n"
    "      anchor = params\n"
    "      z = randn_like(params, seed = fresh_seed())\n"
    "      big = first(data, full)                        # the large batch, run in micro-batches\n"
    "      g_full = (loss(params + eps * z, on = big) -\n"
    "                loss(params - eps * z, on = big)) / (2 * eps) * z\n"
    "      params -= lr_full * g_full\n"
    "    } else {\n"
    "      z  = randn_like(params, seed = fresh_seed())\n"
    "      z2 = if share_z then z else randn_like(params, seed = fresh_seed())\n"
    "      c  = (loss(params + eps * z)  - loss(params - eps * z))  / (2 * eps)\n"
    "      ca = (loss(anchor + eps * z2) - loss(anchor - eps * z2)) / (2 * eps)\n"
    "      params -= lr_mb * (c * z - ca * z2 + g_full)\n"
    "    }\n"
    "  }\n"
    "}\n";

static const char spec_04[] =
    "import nn, optim, text\n"
    "config { seq = 64; dim = 128; layers = 4; heads = 4; method = \"mezo_svrg\" }\n"
    "data sst = text.classification(\"data/uci_sentences.tsv\", tokenizer = \"data/vocab.txt\",\n"
    "                               max_len = seq, split = [2400, 600])\n"
    "data lm  = safetensors(\"runs/pretrained.safetensors\")      # optional\n"
    "\n"
    "fn classifier(tok: i32[B, seq]) -> f32[B, 2] {\n"
    "  h = nn.embedding(tok, vocab = sst.vocab_size, dim = dim) + nn.positions(seq, dim)\n"
    "  repeat layers { h = nn.transformer_block(h, heads = heads, causal = false) }\n"
    "  return nn.linear(nn.layernorm(h)[:, 0], 2)\n"
    "}\n"
    "\n"
    "train classifier {\n"
    "  init      = lm                                  # load pretrained weights when given\n"
    "  data      = sst.train\n"
    "  batch     = 64\n"
    "  loss      = cross_entropy(classifier(batch.tok), batch.label)\n"
    "  optimizer = select(method, sgd = optim.sgd(lr = 1e-3),\n"
    "                     mezo = optim.mezo(lr = 1e-6),\n"
    "                     mezo_svrg = optim.mezo_svrg(lr_full = 1e-3, lr_mb = 1e-6))\n"
    "  trainable = [params(classifier).transformer_block3, params(classifier).linear0]\n"
    "  steps     = 2000\n"
    "  every 100 { log val_acc = accuracy(classifier, sst.test) }\n"
    "}\n";

static const char spec_05[] =
    "fn cip_penalty(f: f32[N, K], y: i32[N], dom: i32[N], M: int, L: int) -> f32 {\n"
    "  means = group_mean(f, key = dom * L + y, groups = M * L)     # f32[M*L, K]\n"
    "  mu = reshape(means, [M, L, K])\n"
    "  d = mu[:, None, :, :] - mu[None, :, :, :]                     # every pair of domains\n"
    "  return sum(d ** 2) / (M * M)\n"
    "}\n";

static const char spec_06[] =
    "config { d = 50; n = 50; eta = 0.05; batch_size = 1; steps = 20000 }\n"
    "\n"
    "fn recon(w: f32[d], xb: f32[M, d]) -> f32 {\n"
    "  return mean(sum((xb - outer(relu(xb @ w), w)) ** 2, axis = 1))\n"
    "}\n"
    "\n"
    "main {\n"
    "  X = eye(n, d)                                   # orthogonal data\n"
    "  w = randn([d], seed = seed) / sqrt(d)\n"
    "  w0 = w\n"
    "  for s in 0..steps {\n"
    "    xb = X[sample(n, batch_size, seed = seed, step = s)]\n"
    "    w -= eta * grad(recon(w, xb), w)\n"
    "  }\n"
    "  log alignment = abs(dot(w, w0)) / (norm(w) * norm(w0)),\n"
    "      sparsity  = max(w ** 2) / sum(w ** 2),\n"
    "      sharpness = hessian_trace(recon(w, X), w)   # exact, via d Hessian-vector products\n"
    "}\n";

static const char spec_07[] =
    "main {\n"
    "  rel, irr = cd(classifier, tok, mask = span(3, 6))    # rel + irr == classifier(tok)\n"
    "  tree     = acd(classifier, tok, label = 1)            # hierarchy of interacting spans\n"
    "  bands    = trim(model, x, transform = \"fft2\", bands = radial_bands(8), method = \"cd\")\n"
    "}\n";

static const char spec_08[] =
    "train model {\n"
    "loss = cross_entropy(model(x), y) + lam * mean(softmax_pair(cd(model, x, mask = blob)))\n"
    "}\n";

static const char spec_09[] =
    "fn awd_loss(x: f32[B, T]) -> f32 {\n"
    "  param h: f32[10] = wavelet(\"db5\") + 0.1 * randn([10])\n"
    "  w = wavelet_pair(h)                        # highpass by alternating flip\n"
    "  c = dwt(x, w, levels = 4, mode = \"zero\")\n"
    "  attr = trim(teacher, c, inverse = fn(c) idwt(c, w), method = \"saliency\")\n"
    "  return mean((idwt(c, w) - x) ** 2) + wavelet_constraints(h) +\n"
    "         lam_wave * l1(c) + lam_attr * l1(attr)          # grad of a grad w.r.t. h\n"
    "}\n";

static const char spec_10[] =
    "data g = graph(\"data/graph.edges\")                        # CSR, degrees\n"
    "main {\n"
    "  q = l1_pagerank(g, seed_node = 17, alpha = 0.15, rho = 1e-4)   # touches the cluster only\n"
    "  S, phi = sweep_cut(g, q / g.deg)\n"
    "  log size = len(S), conductance = phi\n"
    "}\n";

static const char spec_11[] =
    "data m = npy(\"data/lowrank_sparse.npz\")                   # fields Z, Lstar, Sstar\n"
    "main {\n"
    "  L = zeros_like(m.Z)\n"
    "  S = zeros_like(m.Z)\n"
    "  for t in 0..iters {\n"
    "    L = project_rank(m.Z - S, r)          # truncated SVD\n"
    "    S = project_sparse(m.Z - L, s)        # keep s largest |entries|\n"
    "    log err = norm(L - m.Lstar) + norm(S - m.Sstar)\n"
    "  }\n"
    "}\n";

static const char *const spec_programs[] = {
    spec_01, spec_02, spec_03, spec_04, spec_05, spec_06,
    spec_07, spec_08, spec_09, spec_10, spec_11,
};

Test(parse, spec_programs_parse) {
    for (size_t i = 0; i < sizeof spec_programs / sizeof spec_programs[0]; i++) {
        Parse p = parse(spec_programs[i]);
        char *diags = diag_text(p.diags);
        cr_expect(!diag_has_errors(p.diags), "spec program %zu:\n%s", i + 1, diags);
        cr_expect(p.prog && p.prog->ndecls > 0, "spec program %zu is empty", i + 1);
        free(diags);
        parse_free(&p);
    }
}

Test(parse, spec_program_1_dump) {
    expect_program(
        spec_01,
        "(import nn optim)\n"
        "(config\n"
        "  batch_size=128\n"
        "  hidden=256\n"
        "  steps=3000\n"
        "  lr=0.1)\n"
        "(data mnist (call idx \"data/mnist10k\" scale=(/ 1.0 255) split=(list 8000 2000)))\n"
        "(fn mlp (x:f32[B,784]) -> f32[B,10] {\n"
        "  (= h (call relu (call (. nn linear) x hidden)))\n"
        "  (return (call (. nn linear) h 10))\n"
        "})\n"
        "(train mlp\n"
        "  data=(. mnist train)\n"
        "  batch=batch_size\n"
        "  shuffle=true\n"
        "  steps=steps\n"
        "  loss=(call cross_entropy (call mlp (. batch x)) (. batch y))\n"
        "  optimizer=(call (. optim sgd) lr=lr momentum=0.9)\n"
        "  (every 500 {\n"
        "    (log test_acc=(call mean (== (call argmax (call mlp (. (. mnist test) x)) axis=1) (. "
        "(. mnist test) y))))\n"
        "  }))\n");
}

Test(parse, spec_shapes) {
    /* section 2: three optimizers with their states and step blocks */
    Parse p = parse(spec_03);
    cr_assert(!diag_has_errors(p.diags));
    cr_assert_eq(p.prog->ndecls, 3);
    const Decl *svrg = p.prog->decls[2];
    cr_expect_eq(svrg->kind, DC_OPTIMIZER);
    cr_expect_str_eq(svrg->name, "mezo_svrg");
    cr_expect_eq(svrg->u.opt.nparams, 6);
    cr_expect_eq(svrg->u.opt.nstates, 2);
    cr_expect_str_eq(svrg->u.opt.states[1].name, "g_full");
    cr_expect_eq(svrg->u.opt.step.n, 1);
    const Stmt *ifs = svrg->u.opt.step.items[0];
    cr_expect_eq(ifs->kind, ST_IF);
    cr_expect(ifs->u.ifs.has_else);
    cr_expect_eq(ifs->u.ifs.then_b.n, 5);
    cr_expect_eq(ifs->u.ifs.else_b.n, 5);
    parse_free(&p);

    /* section 3: settings, including keyword-like names, and one every block */
    p = parse(spec_04);
    cr_assert(!diag_has_errors(p.diags));
    const Decl *t = p.prog->decls[p.prog->ndecls - 1];
    cr_expect_eq(t->kind, DC_TRAIN);
    cr_expect_eq(t->u.train.nsettings, 7);
    cr_expect_str_eq(t->u.train.settings[1].name, "data");
    cr_expect_str_eq(t->u.train.settings[4].name, "optimizer");
    cr_expect_eq(t->u.train.neverys, 1);
    parse_free(&p);

    /* section 2's linear: typed parameters with ellipsis and int */
    p = parse(spec_02);
    cr_assert(!diag_has_errors(p.diags));
    const Decl *lin = p.prog->decls[0];
    cr_expect_eq(lin->u.fn.nparams, 2);
    cr_expect_eq(lin->u.fn.params[0].kind, PK_TYPE);
    cr_expect_eq(lin->u.fn.params[0].type->dtype, DT_F32);
    cr_expect_eq(lin->u.fn.params[0].type->ndims, 2);
    cr_expect_null(lin->u.fn.params[0].type->dims[0]);
    cr_expect_eq(lin->u.fn.params[1].kind, PK_INT);
    cr_expect_eq(lin->u.fn.body.items[0]->kind, ST_PARAM);
    parse_free(&p);
}

/* ---- docs/language.md: every complete program in it parses ---- */

static bool starts_with_decl(const char *s) {
    static const char *const kw[] = {"import",    "config", "data", "fn",
                                     "optimizer", "train",  "main"};
    while (*s == ' ' || *s == '\n' || *s == '\t')
        s++;
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++) {
        size_t n = strlen(kw[i]);
        if (strncmp(s, kw[i], n) == 0 && (s[n] == ' ' || s[n] == '\n' || s[n] == '{')) return true;
    }
    return false;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) cr_assert(rt_grow(&buf, &cap, cap + 1, cap));
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

Test(parse, docs_language_programs) {
    size_t len = 0;
    char *doc = read_file("docs/language.md", &len);
    if (!doc) cr_skip_test("docs/language.md not found (run from the repository root)");
    int nprog = 0;
    const char *p = doc;
    while ((p = strstr(p, "```")) != NULL) {
        const char *open_end = strchr(p, '\n');
        if (!open_end) break;
        const char *body = open_end + 1;
        const char *close = strstr(body, "\n```");
        if (!close) break;
        size_t n = (size_t)(close - body) + 1;
        if (open_end == p + 3 && starts_with_decl(body)) {
            Parse r = parse_text("docs/language.md", body, n);
            char *diags = diag_text(r.diags);
            cr_expect(!diag_has_errors(r.diags), "program %d of docs/language.md:\n%.*s\n%s",
                      nprog + 1, (int)n, body, diags);
            free(diags);
            parse_free(&r);
            nprog++;
        }
        p = close + 4;
    }
    cr_expect(nprog > 0, "no programs found in docs/language.md");
    free(doc);
}

/* ---- expressions: precedence and associativity ---- */

Test(parse, precedence) {
    expect_expr("a + b * c", "(+ a (* b c))");
    expect_expr("a - b - c", "(- (- a b) c)");
    expect_expr("a * b % c / d @ e", "(@ (/ (% (* a b) c) d) e)");
    expect_expr("x @ W + b", "(+ (@ x W) b)");
    expect_expr("-x ** 2", "(- (** x 2))");
    expect_expr("2 ** -x", "(** 2 (- x))");
    expect_expr("a ** b ** c", "(** a (** b c))");
    expect_expr("-a * b", "(* (- a) b)");
    expect_expr("!a == b", "(== (! a) b)");
    expect_expr("+a", "(+ a)");
    expect_expr("a || b && c == d", "(|| a (&& b (== c d)))");
    expect_expr("a && b || c", "(|| (&& a b) c)");
    expect_expr("a + 1 < b * 2", "(< (+ a 1) (* b 2))");
    expect_expr("a != b", "(!= a b)");
    expect_expr("a <= b", "(<= a b)");
    expect_expr("a >= b", "(>= a b)");
    expect_expr("a > b", "(> a b)");
    expect_expr("(a + b) * c", "(* (+ a b) c)");
    expect_expr("t % q == 0", "(== (% t q) 0)");
    expect_expr("if c then a else b + 1", "(if c a (+ b 1))");
    expect_expr("if a then if b then 1 else 2 else 3", "(if a (if b 1 2) 3)");
    expect_expr("f(x)(y)[0].z ** 2", "(** (. (index (call (call f x) y) 0) z) 2)");
}

Test(parse, literals) {
    expect_expr("0", "0");
    expect_expr("9223372036854775807", "9223372036854775807");
    expect_expr("1.0", "1.0");
    expect_expr("1e-3", "0.001");
    expect_expr("2.5E+2", "250.0");
    expect_expr("1.0 / 255", "(/ 1.0 255)");
    expect_expr("\"a\\n\\t\\\"b\\\\\"", "\"a\\n\\t\\\"b\\\\\"");
    expect_expr("true && false", "(&& true false)");
    expect_expr("None", "None");
}

Test(parse, calls_lists_slices) {
    expect_expr("f()", "(call f)");
    expect_expr("f(x, axis = 1)", "(call f x axis=1)");
    expect_expr("f(x,\n y,\n)", "(call f x y)");
    expect_expr("[a, b]", "(list a b)");
    expect_expr("[]", "(list)");
    expect_expr("[8000, 2000]", "(list 8000 2000)");
    expect_expr("x[:, 0]", "(index x (: _ _) 0)");
    expect_expr("x[a:b]", "(index x (: a b))");
    expect_expr("x[1:]", "(index x (: 1 _))");
    expect_expr("x[:n]", "(index x (: _ n))");
    expect_expr("x[-1]", "(index x (- 1))");
    expect_expr(
        "mu[:, None, :, :] - mu[None, :, :, :]",
        "(- (index mu (: _ _) None (: _ _) (: _ _)) (index mu None (: _ _) (: _ _) (: _ _)))");
    expect_expr("nn.layernorm(h)[:, 0]", "(index (call (. nn layernorm) h) (: _ _) 0)");
    expect_expr("fn(c) idwt(c, w)", "(fn (c) (call idwt c w))");
    expect_expr("trim(t, c, inverse = fn(c) idwt(c, w), method = \"saliency\")",
                "(call trim t c inverse=(fn (c) (call idwt c w)) method=\"saliency\")");
    expect_expr("fn(a, b = 2) a + b", "(fn (a b=2) (+ a b))");
}

/* ---- newline rules ---- */

Test(parse, range_is_not_a_float) {
    expect_program("main {\n  for s in 0..steps { x = s }\n}\n",
                   "(main {\n  (for s 0 steps {\n    (= x s)\n  })\n})\n");
    expect_program("main {\n  for i in 1..n-1 {\n  }\n}\n",
                   "(main {\n  (for i 1 (- n 1) {\n  })\n})\n");
    expect_program("main {\n  for i in a+1 .. 2*b {\n  }\n}\n",
                   "(main {\n  (for i (+ a 1) (* 2 b) {\n  })\n})\n");
}

Test(parse, newline_rules) {
    /* inside brackets, after an operator, a comma or '=', newlines continue */
    expect_program("main {\n"
                   "  x = f(1,\n"
                   "        2)\n"
                   "  y = 1 +\n"
                   "      2\n"
                   "  z =\n"
                   "    [1,\n"
                   "  2]\n"
                   "  w = g(\n"
                   "    a\n"
                   "  )\n"
                   "}\n",
                   "(main {\n"
                   "  (= x (call f 1 2))\n"
                   "  (= y (+ 1 2))\n"
                   "  (= z (list 1 2))\n"
                   "  (= w (call g a))\n"
                   "})\n");
    /* blank lines, comments and ';' */
    expect_program("\n\n# header\nmain {   # trailing\n\n  a = 1; b = 2;\n\n  c = 3 # done\n}\n\n",
                   "(main {\n  (= a 1)\n  (= b 2)\n  (= c 3)\n})\n");
    /* a newline ends a statement even where an operator could follow */
    expect_program("main {\n  a = b\n  -c\n}\n", "(main {\n  (= a b)\n  (- c)\n})\n");
    /* then/else may start a line */
    expect_program("main {\n  z = if a\n    then b\n    else c\n}\n",
                   "(main {\n  (= z (if a b c))\n})\n");
    /* one-line blocks and CRLF line ends */
    expect_program("main { x = 1 }\r\nfn f(x) = x * 2\r\n",
                   "(main {\n  (= x 1)\n})\n(fn f (x) = (* x 2))\n");
    /* an empty program and a program of comments */
    expect_program("", "");
    expect_program("# nothing here\n\n", "");
}

Test(parse, if_else_chains) {
    const char *want = "(main {\n"
                       "  (if a {\n"
                       "    (= x 1)\n"
                       "  } else {\n"
                       "    (if b {\n"
                       "      (= x 2)\n"
                       "    } else {\n"
                       "      (= x 3)\n"
                       "    })\n"
                       "  })\n"
                       "})\n";
    expect_program("main {\n  if a { x = 1 } else if b { x = 2 } else { x = 3 }\n}\n", want);
    expect_program("main {\n"
                   "  if a {\n"
                   "    x = 1\n"
                   "  }\n"
                   "  else if b {\n"
                   "    x = 2\n"
                   "  }\n"
                   "\n"
                   "  else {\n"
                   "    x = 3\n"
                   "  }\n"
                   "}\n",
                   want);
    Parse p = parse("main {\n  if a { x = 1 } else if b { x = 2 }\n}\n");
    cr_assert(!diag_has_errors(p.diags));
    const Stmt *s = p.prog->decls[0]->u.main.body.items[0];
    cr_expect_eq(s->kind, ST_IF);
    cr_expect(s->u.ifs.has_else);
    cr_assert_eq(s->u.ifs.else_b.n, 1);
    const Stmt *inner = s->u.ifs.else_b.items[0];
    cr_expect_eq(inner->kind, ST_IF);
    cr_expect(!inner->u.ifs.has_else);
    parse_free(&p);
}

/* ---- statements ---- */

Test(parse, statements) {
    expect_program("main {\n"
                   "  rel, irr = cd(classifier, tok, mask = span(3, 6))\n"
                   "  S, phi = sweep_cut(g, q / g.deg)\n"
                   "  w -= eta * g\n"
                   "  a.b += 1\n"
                   "  x[i, :] *= 2\n"
                   "  y /= 3\n"
                   "  let k = 4\n"
                   "  while k > 0 { k = k - 1; break }\n"
                   "  repeat 3 { k = k + 1 }\n"
                   "  every 10 { print k }\n"
                   "  log size = len(S), conductance = phi\n"
                   "  save \"w.npy\" w\n"
                   "  print a, b\n"
                   "  print(a, b)\n"
                   "  print(a)\n"
                   "  print()\n"
                   "  f(x)\n"
                   "  fn sq(v) = v * v\n"
                   "  fn g(v: f32[N], n: int, s: str = \"a\", r: float = 1.5) -> f32[N] {\n"
                   "    return v\n"
                   "  }\n"
                   "}\n",
                   "(main {\n"
                   "  (= [rel irr] (call cd classifier tok mask=(call span 3 6)))\n"
                   "  (= [S phi] (call sweep_cut g (/ q (. g deg))))\n"
                   "  (-= w (* eta g))\n"
                   "  (+= (. a b) 1)\n"
                   "  (*= (index x i (: _ _)) 2)\n"
                   "  (/= y 3)\n"
                   "  (let k 4)\n"
                   "  (while (> k 0) {\n"
                   "    (= k (- k 1))\n"
                   "    (break)\n"
                   "  })\n"
                   "  (repeat 3 {\n"
                   "    (= k (+ k 1))\n"
                   "  })\n"
                   "  (every 10 {\n"
                   "    (print k)\n"
                   "  })\n"
                   "  (log size=(call len S) conductance=phi)\n"
                   "  (save \"w.npy\" w)\n"
                   "  (print a b)\n"
                   "  (print a b)\n"
                   "  (print a)\n"
                   "  (print)\n"
                   "  (call f x)\n"
                   "  (fn sq (v) = (* v v))\n"
                   "  (fn g (v:f32[N] n:int s:str=\"a\" r:float=1.5) -> f32[N] {\n"
                   "    (return v)\n"
                   "  })\n"
                   "})\n");
}

Test(parse, declarations) {
    expect_program("import nn, optim\n"
                   "config { a = 1, b = 2.5\n  c = \"s\"; d = true }\n"
                   "data m = npy(\"data/x.npz\")\n"
                   "fn f() -> f32 = 1.0\n"
                   "optimizer o(lr, mom = 0.9) {\n"
                   "  state v = zeros_like(params)\n"
                   "\n"
                   "  step { params -= lr * v }\n"
                   "}\n"
                   "train f {\n"
                   "  steps = 10, batch = 2\n"
                   "  every 5 { log l = loss }\n"
                   "}\n"
                   "main {\n}\n",
                   "(import nn optim)\n"
                   "(config\n  a=1\n  b=2.5\n  c=\"s\"\n  d=true)\n"
                   "(data m (call npy \"data/x.npz\"))\n"
                   "(fn f () -> f32 = 1.0)\n"
                   "(optimizer o (lr mom=0.9)\n"
                   "  (state v (call zeros_like params))\n"
                   "  (step {\n"
                   "    (-= params (* lr v))\n"
                   "  }))\n"
                   "(train f\n"
                   "  steps=10\n"
                   "  batch=2\n"
                   "  (every 5 {\n"
                   "    (log l=loss)\n"
                   "  }))\n"
                   "(main {\n})\n");
    expect_program("fn t(x: f32[], y: bool[2, 3], z: i64, w: bf16[...]) = x\n",
                   "(fn t (x:f32[] y:bool[2,3] z:i64 w:bf16[...]) = x)\n");
}

/* Words that are keywords where a declaration or statement begins are
 * names everywhere else. */
Test(parse, keywords_as_names) {
    expect_program("train m {\n"
                   "  data = mnist.train\n"
                   "  optimizer = optim.sgd(lr = 0.1)\n"
                   "  loss = loss(p, on = data)\n"
                   "  step = step\n"
                   "}\n",
                   "(train m\n"
                   "  data=(. mnist train)\n"
                   "  optimizer=(call (. optim sgd) lr=0.1)\n"
                   "  loss=(call loss p on=data)\n"
                   "  step=step)\n");
    expect_expr("log(x) + exp(y)", "(+ (call log x) (call exp y))");
    expect_expr("first(data, full)", "(call first data full)");
    expect_expr("sample(n, k, seed = seed, step = s)", "(call sample n k seed=seed step=s)");
    expect_expr("x.if.for.data.None", "(. (. (. (. x if) for) data) None)");
    expect_expr("f32(state) + int(main) + float(train)",
                "(+ (+ (call f32 state) (call int main)) (call float train))");
    expect_expr("[import, config, optimizer]", "(list import config optimizer)");
    expect_program("main {\n  log(x)\n  log = 3\n  log log = log(log)\n  data, step = f()\n}\n",
                   "(main {\n"
                   "  (call log x)\n"
                   "  (= log 3)\n"
                   "  (log log=(call log log))\n"
                   "  (= [data step] (call f))\n"
                   "})\n");
}

/* ---- locations ---- */

Test(parse, locations) {
    Parse p = parse("main {\n  x = foo(a) + b * 2\n}\n");
    cr_assert(!diag_has_errors(p.diags));
    const Decl *m = p.prog->decls[0];
    cr_expect_eq(m->loc.line, 1);
    cr_expect_eq(m->loc.col, 1);
    cr_expect_eq(m->u.main.body.open.line, 1);
    cr_expect_eq(m->u.main.body.open.col, 6);
    cr_expect_eq(m->u.main.body.close.line, 3);
    cr_expect_eq(m->u.main.body.close.col, 1);
    const Stmt *s = m->u.main.body.items[0];
    cr_expect_eq(s->loc.line, 2);
    cr_expect_eq(s->loc.col, 5); /* the '=' */
    const Expr *x = s->u.assign.targets[0];
    cr_expect_eq(x->loc.col, 3);
    cr_expect_eq(x->loc.len, 1);
    const Expr *plus = s->u.assign.value;
    cr_expect_eq(plus->kind, EX_BINARY);
    cr_expect_eq(plus->loc.col, 14); /* the '+' */
    const Expr *call = plus->u.op.a;
    cr_expect_eq(call->kind, EX_CALL);
    cr_expect_eq(call->loc.col, 7); /* the callee */
    cr_expect_eq(call->loc.len, 3);
    cr_expect_eq(plus->u.op.b->loc.col, 18); /* the '*' */
    cr_expect_eq(plus->u.op.b->u.op.b->loc.col, 20);
    cr_expect_eq(x->loc.file, p.prog->file);
    parse_free(&p);

    p = parse("data mnist = idx(\"d\")\nfn f(x: f32[B]) = nn.linear(x)\n");
    cr_assert(!diag_has_errors(p.diags));
    const Decl *d = p.prog->decls[0];
    cr_expect_eq(d->name_loc.col, 6);
    cr_expect_eq(d->name_loc.len, 5);
    const Decl *f = p.prog->decls[1];
    cr_expect_eq(f->loc.line, 2);
    cr_expect_eq(f->u.fn.params[0].loc.col, 6);
    cr_expect_eq(f->u.fn.params[0].type->loc.col, 9);
    const Expr *fld = f->u.fn.body_expr->u.call.callee;
    cr_expect_eq(fld->kind, EX_FIELD);
    cr_expect_eq(fld->loc.col, 19);
    cr_expect_eq(fld->loc.len, 9); /* nn.linear */
    cr_expect_eq(fld->u.field.name_loc.col, 22);
    parse_free(&p);
}

/* ---- syntax errors: text and position ---- */

Test(parse, error_messages) {
    expect_errors("main {\n  x = )\n}\n", "2:7: error: unexpected ')', expected an expression\n");
    expect_errors("main {\n  x = 1 +\n}\n", "3:1: error: unexpected '}', expected an expression\n");
    expect_errors("data mnist idx(\"a\")\n", "1:12: error: unexpected name 'idx', expected '='\n");
    expect_errors("main {\n  for s in 0 steps {\n  }\n}\n",
                  "2:14: error: unexpected name 'steps', expected '..'\n");
    expect_errors("main {\n  x = 1 2\n}\n",
                  "2:9: error: unexpected integer '2', expected ';' or newline\n");
    expect_errors("x = 1\n", "1:1: error: unexpected name 'x', expected a declaration "
                             "(import, config, data, fn, optimizer, model, train or main)\n");
    expect_errors("main x\n", "1:6: error: unexpected name 'x', expected '{'\n");
    expect_errors("main {\n  b = a < b < c\n}\n",
                  "2:13: error: comparisons do not chain: write a < b && b < c\n");
    expect_errors("main {\n  x = 1\n  else { }\n}\n",
                  "3:3: error: 'else' without a matching 'if' (it must follow the if's '}')\n");
    expect_errors("fn f(x: f33) = x\n", "1:9: error: unexpected name 'f33', expected a type (a "
                                        "dtype such as f32[N], or int, float, str)\n");
    expect_errors("optimizer o(lr) {\n  state v = 0\n}\n",
                  "1:11: error: optimizer 'o' has no step block\n");
    expect_errors("optimizer o(lr) {\n  step { }\n  step { }\n}\n",
                  "3:3: error: optimizer 'o' has more than one step block\n"
                  "2:3: note: the first step block is here\n");
}

Test(parse, lexical_errors) {
    expect_errors("main {\n  x = 1.\n}\n",
                  "2:7: error: invalid number '1.': a digit must follow '.'\n");
    expect_errors("main {\n  x = 1e+\n}\n",
                  "2:7: error: invalid number '1e+': the exponent has no digits\n");
    expect_errors("main {\n  x = 12ab\n}\n",
                  "2:7: error: invalid number '12ab': a number cannot run into a name\n");
    expect_errors("main {\n  x = .5\n}\n",
                  "2:7: error: invalid number '.5': a digit must come before '.' (write 0.5)\n");
    expect_errors("main {\n  x = 99999999999999999999\n}\n",
                  "2:7: error: integer literal '99999999999999999999' is too large\n");
    expect_errors("main {\n  x = 1 $ 2\n}\n", "2:9: error: invalid character '$'\n");
    expect_errors("main {\n  x = 'a'\n}\n", "2:7: error: strings use double quotes, not '\n");
    expect_errors("main {\n\tx = \x01\n}\n", "2:6: error: invalid character '\\x01'\n");
    expect_errors("main {\n  s = \"abc\n}\n",
                  "2:7: error: unterminated string (a string must end on the line it starts)\n");
    expect_errors("main {\n  print \"a\\qb\"\n}\n",
                  "2:11: error: unknown escape '\\q' in string\n");
    expect_errors(
        "main {\n  x = \xce\xb1\n}\n",
        "2:7: error: unexpected non-ASCII character (allowed only in strings and comments)\n");
    /* non-ASCII text is fine in strings and comments */
    free(dump_ok("# \xce\xb1\xce\xb2\nmain { s = \"\xce\xb1\" }\n"));
}

/* A missing closer names its opener, in the message and in a note. */
Test(parse, missing_closers) {
    expect_errors("main {\n  x = 1\n",
                  "3:1: error: unexpected end of file, expected '}' to close '{' at line 1\n"
                  "1:6: note: to match this '{'\n");
    expect_errors("main {\n  x = max(1, 2\n  y = 3\n}\n",
                  "3:3: error: unexpected name 'y', expected ')' to close '(' at line 2\n"
                  "2:10: note: to match this '('\n");
    expect_errors("main {\n  x = [1, 2\n}\n",
                  "3:1: error: unexpected '}', expected ']' to close '[' at line 2\n"
                  "2:7: note: to match this '['\n");
    expect_errors("main {\n  x = f(a, b]\n}\n",
                  "2:13: error: unexpected ']', expected ')' to close '(' at line 2\n"
                  "2:8: note: to match this '('\n");
    expect_errors("main {\n  if f(x {\n    y = 1\n  }\n}\n",
                  "2:10: error: unexpected '{', expected ')' to close '(' at line 2\n"
                  "2:7: note: to match this '('\n");
    expect_errors("main {\n  x = (1 +\n",
                  "3:1: error: unexpected end of file, expected an expression\n"
                  "2:7: note: '(' opened here is never closed\n");
    expect_errors("fn f(x) {\n  if x > 0 {\n    return x\n}\n",
                  "5:1: error: unexpected end of file, expected '}' to close '{' at line 1\n"
                  "1:9: note: to match this '{'\n");
}

/* Recovery at statement and declaration boundaries: every error is
 * reported once, and code after an error is still checked. */
Test(parse, several_errors) {
    expect_errors("main {\n"
                  "  x = 1 2\n"
                  "  y = (3 +)\n"
                  "  z = 4\n"
                  "}\n"
                  "fn f(a: f32[B, ) {\n"
                  "  return a *\n"
                  "}\n"
                  "data d npy(\"x.npy\")\n"
                  "config { a = 1 b = 2 }\n"
                  "train m {\n  steps 3\n  every 2 { log x = }\n}\n",
                  "2:9: error: unexpected integer '2', expected ';' or newline\n"
                  "3:11: error: unexpected ')', expected an expression\n"
                  "6:16: error: unexpected ')', expected an expression or '...'\n"
                  "8:1: error: unexpected '}', expected an expression\n"
                  "9:8: error: unexpected name 'npy', expected '='\n"
                  "10:16: error: unexpected name 'b', expected ',', ';' or newline\n"
                  "12:9: error: unexpected integer '3', expected '='\n"
                  "13:21: error: unexpected '}', expected an expression\n");
    /* the good statements around the broken ones stay in the tree */
    Parse q = parse(
        "main {\n  a = 0\n  x = 1 2\n  y = (3 +)\n  z = 4\n  while x { } else { }\n  w = 5\n}\n");
    cr_expect_eq(q.diags->nerrors, 3);
    char *tree = program_text(q.prog);
    cr_expect_str_eq(tree, "(main {\n  (= a 0)\n  (= z 4)\n  (while x {\n  })\n  (= w 5)\n})\n");
    free(tree);
    parse_free(&q);
    /* the good declarations around the broken ones survive */
    Parse p = parse("fn a() = 1\nfn b( = 2\nfn c() = 3\n");
    cr_expect(diag_has_errors(p.diags));
    cr_assert_eq(p.prog->ndecls, 2);
    cr_expect_str_eq(p.prog->decls[0]->name, "a");
    cr_expect_str_eq(p.prog->decls[1]->name, "c");
    parse_free(&p);
}

/* ---- the tests/errors corpus (syntax half) ---- */

/* Checks one "LINE:COL: error: TEXT" expectation against the diagnostics. */
static bool expectation_met(const DiagList *d, const char *line, char *why, size_t whylen) {
    unsigned ln, col;
    char sev[16];
    int off = 0;
    if (sscanf(line, "%u:%u: %15[a-z]: %n", &ln, &col, sev, &off) != 3 || off == 0) {
        snprintf(why, whylen, "malformed expect line '%s'", line);
        return false;
    }
    const char *text = line + off;
    for (int i = 0; i < d->n; i++)
        for (const Diag *g = d->items[i]; g; g = g->note) {
            const char *gs = g->severity == DIAG_ERROR  ? "error"
                             : g->severity == DIAG_NOTE ? "note"
                                                        : "warning";
            if (g->loc.line == ln && g->loc.col == col && strcmp(gs, sev) == 0 &&
                strstr(g->msg, text))
                return true;
        }
    snprintf(why, whylen, "no diagnostic matches '%s'", line);
    return false;
}

Test(parse, error_corpus) {
    DIR *dir = opendir("tests/errors");
    if (!dir) cr_skip_test("tests/errors not found (run from the repository root)");
    int nfiles = 0;
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        const char *name = ent->d_name;
        size_t n = strlen(name);
        if (strncmp(name, "syntax_", 7) != 0 || n < 5 || strcmp(name + n - 4, ".dfl") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "tests/errors/%s", name);
        size_t len = 0;
        char *text = read_file(path, &len);
        cr_assert_not_null(text, "cannot read %s", path);
        Parse p = parse_text(path, text, len);
        char *diags = diag_text(p.diags);
        cr_expect(diag_has_errors(p.diags), "%s: no error reported", path);
        int nexpect = 0;
        for (const char *l = text; l && *l;) {
            const char *e = strchr(l, '\n');
            if (strncmp(l, "# expect: ", 10) == 0) {
                char line[512];
                size_t m = e ? (size_t)(e - l) - 10 : strlen(l + 10);
                if (m >= sizeof line) m = sizeof line - 1;
                memcpy(line, l + 10, m);
                line[m] = '\0';
                char why[700];
                cr_expect(expectation_met(p.diags, line, why, sizeof why), "%s: %s; got:\n%s", path,
                          why, diags);
                nexpect++;
            }
            l = e ? e + 1 : NULL;
        }
        cr_expect(nexpect > 0, "%s has no '# expect:' line", path);
        free(diags);
        free(text);
        parse_free(&p);
        nfiles++;
    }
    closedir(dir);
    cr_expect(nfiles >= 20, "only %d syntax_*.dfl files in tests/errors", nfiles);
}

/* ---- robustness ---- */

Test(parse, deep_nesting) {
    enum { DEPTH = 20000 };
    char *src = malloc(2 * DEPTH + 64);
    char *q = src + sprintf(src, "main {\n  x = ");
    for (int i = 0; i < DEPTH; i++)
        *q++ = '(';
    *q++ = '1';
    for (int i = 0; i < DEPTH; i++)
        *q++ = ')';
    strcpy(q, "\n}\n");
    char *got = errors_of(src);
    cr_expect(strstr(got, "error: input nested too deeply") != NULL, "%s", got);
    free(got);
    free(src);

    /* long flat sequences are fine: they do not nest */
    enum { TERMS = 50000 };
    src = malloc(4 * TERMS + 64);
    q = src + sprintf(src, "main {\n  x = 1");
    for (int i = 0; i < TERMS; i++)
        q += sprintf(q, " + 1");
    strcpy(q, "\n}\n");
    Parse p = parse(src);
    cr_expect(!diag_has_errors(p.diags));
    parse_free(&p);
    free(src);
}

/* Random byte mutations of the spec programs must never crash, hang or
 * grow without bound; under ASan/UBSan this also checks memory safety. */
Test(parse, mutations_do_not_crash, .timeout = 60) {
    static const char alphabet[] = "(){}[],.;:=+-*/%@<>!&|\"#\\\n\t 0123456789eE_aZ\x01\x80\xff";
    uint64_t rng = 0x9e3779b97f4a7c15u;
    char buf[4096];
    int runs = 0;
    for (size_t prog = 0; prog < sizeof spec_programs / sizeof spec_programs[0]; prog++) {
        size_t base = strlen(spec_programs[prog]);
        for (int iter = 0; iter < 150; iter++) {
            size_t n = base < sizeof buf - 64 ? base : sizeof buf - 64;
            memcpy(buf, spec_programs[prog], n);
            rng = rng * 6364136223846793005u + 1442695040888963407u;
            int edits = 1 + (int)((rng >> 60) & 7);
            for (int e = 0; e < edits; e++) {
                rng = rng * 6364136223846793005u + 1442695040888963407u;
                size_t pos = n ? (size_t)(rng >> 33) % n : 0;
                char ch = alphabet[(rng >> 17) % (sizeof alphabet - 1)];
                switch ((rng >> 8) & 7) {
                case 0:
                case 1:
                case 2:
                    buf[pos] = ch;
                    break; /* replace */
                case 3:
                case 4:
                case 5: /* insert */
                    if (n + 1 < sizeof buf) {
                        memmove(buf + pos + 1, buf + pos, n - pos);
                        buf[pos] = ch;
                        n++;
                    }
                    break;
                case 6: /* delete */
                    if (n > 0) {
                        memmove(buf + pos, buf + pos + 1, n - pos - 1);
                        n--;
                    }
                    break;
                default: /* truncate */
                    n = pos;
                    break;
                }
            }
            Parse p = parse_text("fuzz.dfl", buf, n);
            cr_assert_not_null(p.prog);
            char *out = program_text(p.prog); /* printing a recovered tree must be safe too */
            free(out);
            parse_free(&p);
            runs++;
        }
    }
    cr_expect_eq(runs, 150 * (int)(sizeof spec_programs / sizeof spec_programs[0]));
}
