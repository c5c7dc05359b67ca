/* dflow plot: line plots of two runs' metrics.csv and a heat map of a .npy,
 * checked in the SVG (one line per run and column, legend and axis labels,
 * ticks) and, where Debian's rsvg-convert is installed (scripts/setup.sh),
 * rendered to a PNG of the figure's size; bad input is an error naming the
 * file or column, with no output file left behind. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"
#include "runtime/dataio.h"

/* Renders svg to png with rsvg-convert and checks the PNG's size; skipped
 * (true) when rsvg-convert is not installed. */
static void render(const char *svg, const char *png) {
    if (access("/usr/bin/rsvg-convert", X_OK) != 0) return;
    SpawnResult r = th_run(60, "/usr/bin/rsvg-convert", svg, "-o", png, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    size_t n;
    unsigned char *b = (unsigned char *)th_slurp(png, &n);
    cr_assert(b && n > 1000 && !memcmp(b, "\x89PNG", 4), "%s is not a PNG", png);
    unsigned w = (unsigned)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
    unsigned h = (unsigned)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
    cr_assert(w == 720 && h == 440, "%s is %ux%u", png, w, h);
    free(b);
}

Test(plot, lines_of_two_runs_and_a_heat_map, .timeout = 600) {
    char dir[4096], a[4200], b[4200], svg[4200], png[4200], npy[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "plot"));
    const char *prog =
        th_write_program("main {\n  w = 1.0\n  for s in 0..40 {\n"
                         "    w = w * 0.9\n    log step_ = s, loss = w, acc = 1.0 - w\n"
                         "  }\n}\n");
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    SpawnResult r = th_dflow(60, "run", prog, "--out", a, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = th_dflow(60, "run", prog, "--out", b, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    snprintf(svg, sizeof svg, "%s/lines.svg", dir);
    r = th_dflow(60, "plot", a, b, "-x", "step_", "-y", "loss", "-y", "acc", "--title",
                 "two <runs>", "-o", svg, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    size_t n;
    char *s = th_slurp(svg, &n);
    cr_assert(s && strstr(s, "<svg") && strstr(s, "</svg>"));
    cr_assert_eq(th_count(s, "<polyline"), 4, "2 runs x 2 columns");
    cr_assert(strstr(s, ">step_</text>") && strstr(s, ">loss, acc</text>"), "axis labels");
    cr_assert(strstr(s, ">two &lt;runs&gt;</text>"), "an escaped title");
    cr_assert(th_count(s, ": loss</text>") == 2 && th_count(s, ": acc</text>") == 2, "legend");
    cr_assert(strstr(s, ">0.4</text>") && strstr(s, ">20</text>"), "ticks");
    free(s);
    snprintf(png, sizeof png, "%s/lines.png", dir);
    render(svg, png);
    r = th_dflow(60, "plot", a, "-x", "step_", "--logy", "-o", svg, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    s = th_slurp(svg, &n);
    cr_assert(s && strstr(s, ">0.1</text>") && strstr(s, ">0.02</text>") &&
                  strstr(s, ">0.5</text>"),
              "1-2-5 ticks on a log axis of two decades");
    free(s);

    /* runs in seed=K folders are one line, their mean, with a +-1 std band;
       --panels stacks one panel per column */
    const char *scale[3] = {"0.9", "0.8", "0.7"};
    char seeds[3][4200];
    for (int k = 0; k < 3; k++) {
        char p2[512];
        snprintf(p2, sizeof p2,
                 "main {\n  w = 1.0\n  for s in 0..20 {\n    w = w * %s\n"
                 "    log loss = w, acc = 1.0 - w\n  }\n}\n",
                 scale[k]);
        snprintf(seeds[k], sizeof seeds[k], "%s/sweep/lr=1/seed=%d", dir, k);
        r = th_dflow(60, "run", th_write_program(p2), "--out", seeds[k], NULL);
        TH_EXPECT_EXIT(r, 0);
        th_spawn_free(&r);
    }
    snprintf(svg, sizeof svg, "%s/band.svg", dir);
    r = th_dflow(60, "plot", seeds[0], seeds[1], seeds[2], a, "-y", "loss", "-y", "acc", "--panels",
                 "-o", svg, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    s = th_slurp(svg, &n);
    cr_assert(s && strstr(s, "height=\"840\""), "two panels of 400 below a 40 title strip");
    cr_assert_eq(th_count(s, "<polygon"), 2, "one band per panel (the seeded group)");
    cr_assert_eq(th_count(s, "<polyline"), 4, "2 groups x 2 panels");
    cr_assert(strstr(s, ">lr=1 (3)</text>"), "the group's legend entry: its combination");
    cr_assert(strstr(s, ">loss</text>") && strstr(s, ">acc</text>"), "a y label per panel");
    free(s);
    snprintf(png, sizeof png, "%s/band.png", dir);
    if (access("/usr/bin/rsvg-convert", X_OK) == 0) {
        r = th_run(60, "/usr/bin/rsvg-convert", svg, "-o", png, NULL);
        TH_EXPECT_EXIT(r, 0);
        th_spawn_free(&r);
    }

    /* a heat map of a 3 x 5 matrix: 15 cells and a 32-step colour bar */
    snprintf(npy, sizeof npy, "%s/m.npy", dir);
    int64_t dims[2] = {3, 5};
    RtTensor *t = rt_tensor_new(DT_F32, rt_shape_make(2, dims));
    for (int i = 0; i < 15; i++)
        ((float *)t->data)[i] = (float)i;
    char err[256];
    cr_assert(rt_npy_write(npy, t, err, sizeof err), "%s", err);
    rt_tensor_free(t);
    snprintf(svg, sizeof svg, "%s/heat.svg", dir);
    r = th_dflow(60, "plot", "--heatmap", npy, "-o", svg, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    s = th_slurp(svg, &n);
    cr_assert(s && th_count(s, "<rect") == 1 + 15 + 1 + 32 + 1,
              "background, cells, frame, bar, frame");
    cr_assert(strstr(s, "fill=\"#440154\"") && strstr(s, "fill=\"#fde725\""), "viridis ends");
    cr_assert(strstr(s, ">14</text>") && strstr(s, ">0</text>"), "the colour bar's range");
    free(s);
    snprintf(png, sizeof png, "%s/heat.png", dir);
    render(svg, png);

    /* errors name what is wrong and leave no file */
    snprintf(svg, sizeof svg, "%s/bad.svg", dir);
    const char *why[] = {"no run has rows with both 'step' and 'nope'",
                         "missing/metrics.csv: cannot open", "-o OUT.svg is required"};
    for (int i = 0; i < 3; i++) {
        r = i == 0   ? th_dflow(60, "plot", a, "-y", "nope", "-o", svg, NULL)
            : i == 1 ? th_dflow(60, "plot", "missing", "-o", svg, NULL)
                     : th_dflow(60, "plot", a, NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, why[i]), "%s", r.err);
        th_spawn_free(&r);
        cr_assert(access(svg, F_OK) != 0, "no output after an error");
    }
    th_rmdir(dir);
}
