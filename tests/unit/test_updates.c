/* Element updates: x[i] = v, x[a:b, j] op= v, x[idx] += v (a scatter:
 * repeated indices sum) as functional updates, and their gradients, on
 * both backends against numpy (tests/fixtures/make_updates.py). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"

/* Every number in text, in order (brackets, commas and words skipped). */
static int numbers(const char *text, double *out, int max) {
    int n = 0;
    for (const char *p = text; *p && n < max;) {
        char *end;
        if ((*p == '-' || (*p >= '0' && *p <= '9')) &&
            (p == text || !isalpha((unsigned char)p[-1]))) {
            double v = strtod(p, &end);
            if (end != p) {
                out[n++] = v;
                p = end;
                continue;
            }
        }
        p++;
    }
    return n;
}

Test(updates, match_numpy_on_both_backends, .timeout = 600) {
    FILE *f = fopen("tests/fixtures/updates.txt", "r");
    cr_assert(f, "tests/fixtures/updates.txt is missing");
    static double want[512];
    int nw = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *p = strchr(line, ' ');
        while (p && nw < 512) {
            char *end;
            double v = strtod(p, &end);
            if (end == p) break;
            want[nw++] = v;
            p = end;
        }
    }
    fclose(f);
    cr_assert_eq(nw, 12 + 5 + 24 + 6 + 1 + 4);
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r =
            th_dflow(120, "run", "tests/programs/updates.dfl", "--backend", backends[b], NULL);
        TH_EXPECT_EXIT(r, 0);
        char *done = strstr(r.out, "done");
        if (done) *done = '\0';
        static double got[512];
        int ng = numbers(r.out, got, 512);
        cr_assert_eq(ng, nw, "%s: %d numbers printed, %d expected:\n%s", backends[b], ng, nw,
                     r.out);
        for (int i = 0; i < nw; i++) /* printed to 6 significant digits */
            cr_assert(fabs(got[i] - want[i]) <= 1e-5 * fmax(1.0, fabs(want[i])),
                      "%s: number %d is %g, numpy %.9g", backends[b], i, got[i], want[i]);
        th_spawn_free(&r);
    }
}

Test(updates, refusals_are_located_errors, .timeout = 600) {
    const char *cases[][2] = {
        {"main {\n  x = zeros([4])\n  x[int(iota(2))] = 1.0\n  print x\n}\n",
         ":3:4: error: through an integer tensor index only += and -= are supported"},
        {"main {\n  x = zeros([4])\n  x[1:3] = ones([3])\n  print x\n}\n",
         ":3:4: error: cannot assign f32[3] to the indexed elements, which is f32[2]"},
        {"main {\n  x = zeros([4])\n  x[5] = 1.0\n  print x\n}\n",
         ":3:5: error: index 5 is out of range for axis 0 of f32[4]"},
        {"main {\n  t = [a = 1]\n  t[0] = 2.0\n}\n",
         ":3:4: error: only a tensor's elements can be assigned"},
        {"main {\n  x = ones([3])\n  print x[x > 1.0]\n}\n",
         ":3:13: error: a bool mask selects a number of elements known only at run time"},
        {"main {\n  x = ones([3])\n  x[ones([2]) > 0.0] = 2.0\n  print x\n}\n",
         ":3:15: error: a mask of bool[2] does not fit f32[3]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        SpawnResult r = th_dflow(60, "run", th_write_program(cases[i][0]), NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, cases[i][1]), "case %zu: %s", i, r.err);
        th_spawn_free(&r);
    }
}

/* A scatter index out of range is a run-time error naming the line. */
Test(updates, a_scatter_index_out_of_range_is_a_run_time_error, .timeout = 600) {
    const char *prog = th_write_program("main {\n  x = zeros([4])\n  i = int(iota(3)) * 2\n"
                                        "  x[i] += 1.0\n  print x\n}\n");
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r = th_dflow(60, "run", prog, "--backend", backends[b], NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, ":4:") && strstr(r.err, "out of range"), "%s: %s", backends[b],
                  r.err);
        th_spawn_free(&r);
    }
}
