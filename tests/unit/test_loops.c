/* Loops inside functions. An LSTM over length-20 sequences trained by
 * backpropagation through `repeat` (the cell's weights declared once,
 * outside the loop, so all steps share them): it learns its task, and the
 * gradient through the 20 steps matches a central difference in f64, on
 * both backends. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"

Test(loops, an_lstm_trains_through_repeat_and_its_gradient_is_right, .timeout = 600) {
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r =
            th_dflow(300, "run", "tests/programs/lstm_repeat.dfl", "--backend", backends[b], NULL);
        TH_EXPECT_EXIT(r, 0);
        cr_assert(th_number_after(r.out, "accuracy") > 0.95, "%s: %s", backends[b], r.out);
        double rel = th_number_after(r.out, "relative difference");
        cr_assert(rel < 1e-6, "%s: %s", backends[b], r.out);
        cr_assert(fabs(th_number_after(r.out, "autodiff")) > 0.1, "a gradient that is not zero: %s",
                  r.out);
        th_spawn_free(&r);
    }
}

/* .dtype is a compile-time string that dtype = accepts (the LSTM's state
 * takes its weights' dtype, f32 in training and f64 in the check). */
Test(loops, a_tensors_dtype_field_feeds_dtype_arguments, .timeout = 600) {
    const char *prog = "main {\n  x = zeros([2], dtype = \"f64\")\n  print x.dtype, x.rank\n"
                       "  print (ones([3], dtype = x.dtype) / 3.0)[0] - 1.0 / 3.0\n}\n";
    SpawnResult r = th_dflow(60, "run", th_write_program(prog), NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "f64 1\n0\n"), "f64 arithmetic, not f32: %s", r.out);
    th_spawn_free(&r);
}

/* `while` inside a function unrolls while its condition is known at compile
 * time (a counter): bisection for sqrt(2) in 30 steps, on both backends; a
 * condition on a run-time value is an error at the condition, and a loop
 * past the unroll budget an error at the loop. */
Test(loops, while_inside_a_function_unrolls_on_a_compile_time_condition, .timeout = 600) {
    const char *prog = th_write_program("fn bisect(lo0, hi0) {\n"
                                        "  lo = lo0\n  hi = hi0\n  k = 0\n"
                                        "  while k < 30 {\n"
                                        "    mid = (lo + hi) / 2.0\n"
                                        "    lo = where(mid * mid < 2.0, mid, lo)\n"
                                        "    hi = where(mid * mid < 2.0, hi, mid)\n"
                                        "    k = k + 1\n  }\n  return lo\n}\n"
                                        "main { print bisect(full([1], 0.0), full([1], 2.0)) }\n");
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r = th_dflow(60, "run", prog, "--backend", backends[b], NULL);
        TH_EXPECT_EXIT(r, 0);
        cr_assert(strstr(r.out, "[1.41421]"), "%s: %s", backends[b], r.out);
        th_spawn_free(&r);
    }
    const char *cases[][2] = {
        {"fn f(x) {\n  y = x\n  while sum(y) < 100.0 {\n    y = y * 2.0\n  }\n  return y\n}\n"
         "main { print f(ones([3])) }\n",
         ":3:16: error: inside a function or an optimizer step a 'while' condition must be known "
         "at compile time"},
        {"fn f(x) {\n  k = 0\n  while k >= 0 {\n    k = k + 1\n  }\n  return x\n}\n"
         "main { print f(ones([3])) }\n",
         ":3:3: error: this loop unrolls more iterations than the compiler's budget"},
    };
    for (int i = 0; i < 2; i++) {
        SpawnResult r = th_dflow(60, "run", th_write_program(cases[i][0]), NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, cases[i][1]), "case %d: %s", i, r.err);
        th_spawn_free(&r);
    }
}
