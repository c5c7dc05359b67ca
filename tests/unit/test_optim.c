/* The optimizers of std/optim.dfl, step by step, against reference updates.
 *
 * A linear model (w in R^3, scalar b) is trained full-batch with the mean
 * squared error on 8 fixed rows for three steps, on the interpreter and the
 * CPU backend, logging its parameters after every step; each logged value
 * must match tests/fixtures/optim_expected.txt, written by
 * tests/fixtures/make_optim.py: torch.optim (float64) for sgd (plain, with
 * momentum, with weight decay), adam (default and with other betas and L2
 * decay) and adamw; for mezo an update computed from the docs/rng.md
 * contract (Philox, fresh seeds, parameter streams) and the MeZO rule,
 * independently of runtime/rng.c. "The loss went down" cannot tell a
 * missing bias correction or an unapplied weight decay from the real thing;
 * these values can. The program is f32, so values agree to f32 rounding. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"

#define FIXTURE "tests/fixtures/optim_expected.txt"
#define STEPS 3
#define NVAL 4 /* w0 w1 w2 b */
#define MEZO_SEED "3"

typedef struct {
    char name[32];
    char expr[160];
    double want[STEPS][NVAL];
} OptCase;

/* Reads the case called name from the fixture; fails the test if absent. */
static OptCase load_case(const char *name) {
    OptCase c;
    memset(&c, 0, sizeof c);
    char *text = th_slurp(FIXTURE, NULL);
    cr_assert_not_null(text, "cannot read %s (run the tests from the repository root)", FIXTURE);
    bool found = false;
    int rows = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "case ", 5) == 0) {
            if (found) break;
            char *sp = strchr(line + 5, ' ');
            if (!sp || (size_t)(sp - (line + 5)) != strlen(name) ||
                strncmp(line + 5, name, strlen(name)) != 0)
                continue;
            found = true;
            snprintf(c.name, sizeof c.name, "%s", name);
            snprintf(c.expr, sizeof c.expr, "%s", sp + 1);
            continue;
        }
        if (!found || line[0] == '#') continue;
        int step;
        double *v = rows < STEPS ? c.want[rows] : NULL;
        cr_assert(v && sscanf(line, "%d %lf %lf %lf %lf", &step, &v[0], &v[1], &v[2], &v[3]) == 5 &&
                      step == rows + 1,
                  "%s: bad line in case %s: %s", FIXTURE, name, line);
        rows++;
    }
    free(text);
    cr_assert(found && rows == STEPS, "%s: case %s missing or short (%d rows)", FIXTURE, name,
              rows);
    return c;
}

static const char *program(const char *opt_expr) {
    static char src[2048];
    snprintf(src, sizeof src,
             "import optim\n"
             "data X = npy(\"tests/fixtures/optim_x.npy\")\n"
             "data Y = npy(\"tests/fixtures/optim_y.npy\")\n"
             "data ds = [x = X, y = Y]\n"
             "fn model(x: f32[B, 3]) -> f32[B] {\n"
             "  param w: f32[3] = iota(3) * 0.25 - 0.4\n"
             "  param b: f32 = 0.1\n"
             "  return x @ w + b\n"
             "}\n"
             "train model {\n"
             "  data = ds\n  batch = 8\n  shuffle = false\n  steps = %d\n"
             "  loss = mse(model(batch.x), batch.y)\n"
             "  optimizer = %s\n"
             "  every 1 {\n"
             "    log w0 = params(model).w[0], w1 = params(model).w[1], w2 = params(model).w[2],\n"
             "        b = params(model).b\n"
             "  }\n"
             "}\n",
             STEPS, opt_expr);
    return src;
}

/* The values of metrics.csv row `step` (1-based) in columns w0 w1 w2 b. */
static bool metrics_row(const char *csv, int step, double out[NVAL]) {
    const char *want[NVAL] = {"w0", "w1", "w2", "b"};
    int col[NVAL];
    const char *nl = strchr(csv, '\n');
    if (!nl) return false;
    for (int k = 0; k < NVAL; k++) {
        col[k] = -1;
        int c = 0;
        for (const char *p = csv; p < nl; c++) {
            const char *e = p;
            while (e < nl && *e != ',')
                e++;
            if ((size_t)(e - p) == strlen(want[k]) && strncmp(p, want[k], (size_t)(e - p)) == 0)
                col[k] = c;
            p = e < nl ? e + 1 : nl;
        }
        if (col[k] < 0) return false;
    }
    for (const char *line = nl + 1; *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
        if (atoi(line) != step) continue;
        const char *p = line;
        for (int c = 0; *p && *p != '\n'; c++) {
            for (int k = 0; k < NVAL; k++)
                if (col[k] == c) out[k] = strtod(p, NULL);
            while (*p && *p != ',' && *p != '\n')
                p++;
            if (*p == ',') p++;
        }
        return true;
    }
    return false;
}

static void check_backend(const OptCase *c, const char *backend) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    const char *path = th_write_program(program(c->expr));
    cr_assert_not_null(path);
    char dir[256], out[320], csvp[360];
    cr_assert(th_tempdir(dir, sizeof dir, "optim"));
    snprintf(out, sizeof out, "%s/run", dir);
    SpawnResult r = th_run(300, bin, "run", path, "--backend", backend, "--seed", MEZO_SEED,
                           "--out", out, NULL);
    TH_EXPECT_EXIT(r, 0);
    snprintf(csvp, sizeof csvp, "%s/metrics.csv", out);
    char *csv = th_slurp(csvp, NULL);
    cr_assert_not_null(csv, "%s: no metrics.csv", c->name);
    static const char *names[NVAL] = {"w[0]", "w[1]", "w[2]", "b"};
    for (int s = 0; s < STEPS; s++) {
        double got[NVAL];
        cr_assert(metrics_row(csv, s + 1, got), "%s on %s: no row for step %d in\n%s", c->name,
                  backend, s + 1, csv);
        for (int k = 0; k < NVAL; k++) {
            double want = c->want[s][k];
            cr_expect(fabs(got[k] - want) <= 2e-6 + 1e-5 * fabs(want),
                      "%s on %s: %s after step %d is %.9g, the reference says %.9g", c->name,
                      backend, names[k], s + 1, got[k], want);
        }
    }
    free(csv);
    th_spawn_free(&r);
    th_rmdir(dir);
}

#define OPT_TEST(name)                                                                             \
    Test(optim, name, .timeout = 900) {                                                            \
        OptCase c = load_case(#name);                                                              \
        check_backend(&c, "interp");                                                               \
        check_backend(&c, "cpu");                                                                  \
    }

OPT_TEST(sgd)
OPT_TEST(sgd_momentum)
OPT_TEST(sgd_momentum_wd)
OPT_TEST(adam)
OPT_TEST(adam_betas_wd)
OPT_TEST(adamw)
OPT_TEST(mezo)

/* The fixture itself: the cases differ where their configurations differ
 * (a reference that ignored momentum or decay would pass a broken optimizer). */
Test(optim, fixture_cases_differ) {
    OptCase a = load_case("sgd"), m = load_case("sgd_momentum"), wd = load_case("sgd_momentum_wd");
    OptCase ad = load_case("adam"), aw = load_case("adamw");
    cr_expect_eq(a.want[0][0], m.want[0][0], "momentum cannot matter at step 1");
    cr_expect(fabs(a.want[2][0] - m.want[2][0]) > 1e-3);
    cr_expect(fabs(m.want[0][0] - wd.want[0][0]) > 1e-4);
    cr_expect(fabs(ad.want[0][0] - aw.want[0][0]) > 1e-4);
}
