/* Models as values (docs/language.md, "Models"): a trained model called
 * from a helper, passed as an argument or wrapped in a lambda uses its
 * trained parameters; `model NAME = f` makes another instance; `init =`
 * starts one model from another; a model inside two others, and one
 * parameter used twice, are one parameter; a call that makes parameters no
 * train block trains is a located warning. Every program runs on the
 * interpreter and the CPU backend with the same output. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"

/* Runs prog on both backends; returns the interpreter's stdout (caller
 * frees) after checking that the CPU backend printed the same. */
static char *run_both(const char *prog, const char *set) {
    SpawnResult a = set ? th_dflow(300, "run", prog, "--backend", "interp", "--set", set, NULL)
                        : th_dflow(300, "run", prog, "--backend", "interp", NULL);
    TH_EXPECT_EXIT(a, 0);
    SpawnResult c = set ? th_dflow(300, "run", prog, "--backend", "cpu", "--set", set, NULL)
                        : th_dflow(300, "run", prog, "--backend", "cpu", NULL);
    TH_EXPECT_EXIT(c, 0);
    cr_assert(!strstr(a.err, "warning") && !strstr(c.err, "warning"), "%s", a.err);
    /* the last line holds the timing; everything before it must agree */
    char *ea = strstr(a.out, "done:"), *ec = strstr(c.out, "done:");
    cr_assert(ea && ec);
    cr_assert_eq(ea - a.out, ec - c.out, "interp:\n%s\ncpu:\n%s", a.out, c.out);
    cr_assert(!strncmp(a.out, c.out, (size_t)(ea - a.out)), "interp:\n%s\ncpu:\n%s", a.out, c.out);
    char *out = strdup(a.out);
    th_spawn_free(&a);
    th_spawn_free(&c);
    return out;
}

/* The bug this replaces: a helper calling `mlp` got fresh parameters
 * (accuracy 0.49 against 0.99 directly). */
Test(models, a_helper_an_argument_and_a_lambda_see_the_trained_model, .timeout = 600) {
    char *out = run_both("tests/programs/models_helper.dfl", NULL);
    double direct = th_number_after(out, "direct");
    cr_assert(direct > 0.95, "%s", out);
    cr_assert_eq(th_number_after(out, "helper"), direct, "%s", out);
    cr_assert_eq(th_number_after(out, "argument"), direct, "%s", out);
    cr_assert_eq(th_number_after(out, "lambda"), direct, "%s", out);
    cr_assert_eq(th_number_after(out, "builtin"), direct, "%s", out);
    free(out);
}

/* Two instances of one fn, each trained; `init = a` starts b from a: with a
 * zero learning rate b is exactly a. */
Test(models, two_instances_and_init_from_an_earlier_stage, .timeout = 600) {
    char *out = run_both("tests/programs/models_two_stage.dfl", NULL);
    double a = th_number_after(out, "stage 1 (a)"), b = th_number_after(out, "stage 2 (b)");
    cr_assert(a > 0.95 && b > 0.95, "%s", out);
    cr_assert(th_number_after(out, "linear0.W") > 0.01, "b trained on from a: %s", out);
    free(out);
    out = run_both("tests/programs/models_two_stage.dfl", "lr_b=0.0");
    cr_assert_eq(th_number_after(out, "stage 2 (b)"), a, "%s", out);
    cr_assert_eq(th_number_after(out, "linear0.W"), 0.0, "%s", out);
    free(out);
    SpawnResult r = th_dflow(60, "ir", "tests/programs/models_two_stage.dfl", NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "param a.linear0.W") && strstr(r.out, "param b.linear0.W"), "%s",
              r.out);
    cr_assert(!strstr(r.out, "param mlp."), "no third instance: %s", r.out);
    th_spawn_free(&r);
}

/* The model `enc` inside `clf` and `energy` is one set of parameters, the
 * one `train clf` trains; `lm` uses its one E for input and output. */
Test(models, a_shared_model_and_tied_embeddings_are_one_parameter, .timeout = 600) {
    const char *prog = "tests/programs/models_tied.dfl";
    char *out = run_both(prog, NULL);
    cr_assert(th_number_after(out, "clf accuracy") > 0.95, "%s", out);
    cr_assert(th_number_after(out, "lm accuracy") > 0.9, "chance is 0.125: %s", out);
    free(out);
    SpawnResult r = th_dflow(60, "ir", prog, NULL);
    TH_EXPECT_EXIT(r, 0);
    const char *want[] = {"param clf.linear0.W", "param enc.linear0.W", "param lm.E"};
    for (int i = 0; i < 3; i++)
        cr_assert(strstr(r.out, want[i]), "%s missing", want[i]);
    cr_assert(!strstr(r.out, "clf.enc") && !strstr(r.out, "energy.enc"), "one encoder");
    th_spawn_free(&r);
}

/* A gradient through one tensor used twice (the tied embedding's two uses)
 * is the sum of both paths: against a central difference in f64. */
Test(models, the_gradient_of_a_tied_matrix_sums_both_uses, .timeout = 600) {
    const char *prog = th_write_program(
        "fn tied_loss(E, tok, y) = cross_entropy(tanh(E[tok]) @ transpose(E), y)\n"
        "main {\n"
        "  E = randn([5, 3], seed = 4, dtype = \"f64\")\n"
        "  d = randn([5, 3], seed = 5, dtype = \"f64\")\n"
        "  tok = int(floor(rand([6], seed = 6) * 4.99))\n"
        "  y = int(floor(rand([6], seed = 7) * 4.99))\n"
        "  g = grad(tied_loss(E, tok, y), E)\n"
        "  h = 1e-6\n"
        "  fd = (tied_loss(E + h * d, tok, y) - tied_loss(E - h * d, tok, y)) / (2 * h)\n"
        "  print \"ad\", sum(g * d)\n"
        "  print \"fd\", fd\n"
        "}\n");
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r = th_dflow(120, "run", prog, "--backend", backends[b], NULL);
        TH_EXPECT_EXIT(r, 0);
        double ad = th_number_after(r.out, "ad"), fd = th_number_after(r.out, "fd");
        cr_assert(fabs(ad - fd) < 1e-6 * (1 + fabs(fd)) && fabs(ad) > 1e-3, "%s: %s", backends[b],
                  r.out);
        th_spawn_free(&r);
    }
}

/* Calling a model by a name no train block trains gives it parameters of
 * its own: a warning at the call naming the trained model of that fn. */
Test(models, an_untrained_instance_is_a_located_warning, .timeout = 600) {
    const char *prog = th_write_program(
        "import nn, optim\n"
        "data pts = [x = randn([64, 2], seed = 1), y = int(rand([64], seed = 2) > 0.5)]\n"
        "fn mlp(x: f32[B, 2]) -> f32[B, 2] = nn.linear(x, 2)\n"
        "model other = mlp\n"
        "fn acc(x, y) = mean(argmax(other(x), axis = 1) == y)\n"
        "train mlp {\n"
        "  data = pts; batch = 16; steps = 2\n"
        "  loss = cross_entropy(mlp(batch.x), batch.y)\n"
        "  optimizer = optim.sgd(lr = 0.1)\n"
        "}\n"
        "main { print acc(pts.x, pts.y) }\n");
    SpawnResult r = th_dflow(120, "run", prog, NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.err, ":5:28: warning: this call of model 'other' (a mlp) makes parameters "
                            "of its own (other.linear0.W, ...) that no train block trains: they "
                            "keep their initial values\n"),
              "%s", r.err);
    cr_assert(strstr(r.err, "note: the trained mlp is 'mlp': call it by that name"), "%s", r.err);
    cr_assert_eq(strstr(r.err, "warning") - r.err, strstr(r.err, "warning:") - r.err);
    th_spawn_free(&r);
}

Test(models, bad_models_and_inits_are_located_errors, .timeout = 600) {
    const char *head = "import nn, optim\n"
                       "data pts = [x = randn([64, 2], seed = 1), y = int(rand([64], seed = 2) > "
                       "0.5)]\n"
                       "fn mlp(x: f32[B, 2]) -> f32[B, 2] = nn.linear(x, 2)\n"
                       "fn wide(x: f32[B, 2]) -> f32[B, 2] = nn.linear(relu(nn.linear(x, 4)), 2)\n";
    const char *cases[][2] = {
        {"model m = 3\nmain { print 1 }\n", ":5:11: error: model m: expected a fn declaration"},
        {"model w = wide\ntrain w {\n  init = pts\n  data = pts; batch = 16; steps = 1\n"
         "  loss = cross_entropy(w(batch.x), batch.y); optimizer = optim.sgd(lr = 0.1)\n}\n",
         ":7:10: error: init must be a model (a fn a train block trains, or a `model`), got"},
        {"model w = wide\ntrain w {\n  init = mlp\n  data = pts; batch = 16; steps = 1\n"
         "  loss = cross_entropy(w(batch.x), batch.y); optimizer = optim.sgd(lr = 0.1)\n}\n"
         "train mlp {\n  data = pts; batch = 16; steps = 1\n"
         "  loss = cross_entropy(mlp(batch.x), batch.y); optimizer = optim.sgd(lr = 0.1)\n}\n",
         ":7:10: error: init = mlp: model mlp has no parameters yet (train or use it before this "
         "train block)"},
        {"train mlp {\n  data = pts; batch = 16; steps = 1\n"
         "  loss = cross_entropy(mlp(batch.x), batch.y); optimizer = optim.sgd(lr = 0.1)\n}\n"
         "model w = wide\ntrain w {\n  init = mlp\n  data = pts; batch = 16; steps = 1\n"
         "  loss = cross_entropy(w(batch.x), batch.y); optimizer = optim.sgd(lr = 0.1)\n}\n",
         ":11:10: error: init = mlp: 'mlp.linear0.W' is f32[2,2] but 'w.linear0.W' is f32[2,4]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char src[2048];
        snprintf(src, sizeof src, "%s%s", head, cases[i][0]);
        SpawnResult r = th_dflow(120, "check", th_write_program(src), NULL);
        if (strstr(cases[i][1], "init = mlp")) { /* found while lowering the train block */
            th_spawn_free(&r);
            r = th_dflow(120, "run", th_write_program(src), NULL);
        }
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, cases[i][1]), "case %zu: %s", i, r.err);
        th_spawn_free(&r);
    }
}
