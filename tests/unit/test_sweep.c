/* dflow sweep: a 2 x 3 grid over 3 seeds in which one combination fails on
 * purpose (the others finish, the table and summary.csv mark it, exit 1);
 * a sweep killed with SIGKILL completes when run again without redoing
 * the runs that had completed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"

/* lr = 2 fails at run time (an index out of range): a located error, exit 1 */
static const char *prog_text = "config { lr = 0.1; lam = 0.0; steps = 30 }\n"
                               "main {\n"
                               "  w = full([4], 1.0) + randn([4], seed = seed) * 0.1\n"
                               "  for s in 0..steps {\n"
                               "    w = w - lr * grad(sum(w * w) + lam * sum(abs(w)), w)\n"
                               "    log loss = sum(w * w), wn = sum(abs(w))\n"
                               "  }\n"
                               "  if lr > 1.5 {\n"
                               "    print w[int(full([1], 9.0))]\n"
                               "  }\n"
                               "}\n";

Test(sweep, a_failing_combination_does_not_stop_the_others, .timeout = 600) {
    char dir[4096], out[4200], path[4300];
    cr_assert(th_tempdir(dir, sizeof dir, "sweep"));
    snprintf(out, sizeof out, "%s/sw", dir);
    const char *prog = th_write_program(prog_text);
    SpawnResult r = th_dflow(300, "sweep", prog, "--grid", "lam=0,0.5", "--grid", "lr=0.1,0.3,2",
                             "--seeds", "0..3", "-j", "2", "--out", out, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.out, "lam=0,lr=0.1") && strstr(r.out, "3/3"), "%s", r.out);
    cr_assert_eq(th_count(r.out, "0/3"), 2, "the two lr=2 combinations: %s", r.out);
    cr_assert_eq(th_count(r.out, "(failed runs: see their log.txt)"), 2, "%s", r.out);
    cr_assert_eq(th_count(r.err, " failed (exit 1; see its log.txt)"), 6, "%s", r.err);
    cr_assert(strstr(r.out, " +- "), "a mean +- std over seeds: %s", r.out);
    th_spawn_free(&r);
    snprintf(path, sizeof path, "%s/summary.csv", out);
    size_t n;
    char *csv = th_slurp(path, &n);
    cr_assert(csv && !strncmp(csv, "lam,lr,seed,status,", 19), "%s", csv);
    cr_assert_eq(th_count(csv, "\n"), 1 + 18, "%s", csv);
    cr_assert_eq(th_count(csv, ",completed,"), 12, "%s", csv);
    cr_assert_eq(th_count(csv, ",failed,"), 6, "%s", csv);
    free(csv);
    snprintf(path, sizeof path, "%s/lam=0.5,lr=2/seed=1/log.txt", out);
    char *log = th_slurp(path, &n);
    cr_assert(log && strstr(log, ":9:12: error: gather: index 9 out of range"), "%s", log);
    free(log);
    /* dflow plot of the sweep's folder: a mean line and band per combination */
    snprintf(path, sizeof path, "%s/sweep.svg", dir);
    r = th_dflow(60, "plot", out, "--logy", "-o", path, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    char *svg = th_slurp(path, &n);
    cr_assert(svg && th_count(svg, "<polygon") == 6 && strstr(svg, ">lam=0,lr=0.1 (3)</text>"),
              "six combinations of three seeds");
    free(svg);
    /* -x a grid key: each final against it, a line per value of the other key */
    r = th_dflow(60, "plot", out, "-x", "lr", "-y", "wn", "-o", path, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    svg = th_slurp(path, &n);
    cr_assert(svg && th_count(svg, "<polyline") == 2 && th_count(svg, "<polygon") == 2 &&
                  strstr(svg, ">lam=0.5</text>") && strstr(svg, ">lr</text>"),
              "finals against lr, one line per lam (the failed lr = 2 left out)");
    free(svg);
    th_rmdir(dir);
}

static double mtime_of(const char *path) {
    struct stat st;
    cr_assert(stat(path, &st) == 0, "%s", path);
    return (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
}

/* about a second a run: 3000 products of 256 x 256 matrices */
static const char *slow_text = "config { lr = 0.1; steps = 3000 }\n"
                               "main {\n"
                               "  w = randn([256, 256], seed = seed) * 0.05\n"
                               "  for s in 0..steps {\n"
                               "    w = tanh(w @ w) * lr * 10.0\n"
                               "  }\n"
                               "  log loss = sum(w * w)\n"
                               "}\n";

static int completed_runs(const char *out) {
    int n = 0;
    const char *lrs[] = {"0.1", "0.2"};
    for (int l = 0; l < 2; l++)
        for (int s = 0; s < 3; s++) {
            char p[4400];
            snprintf(p, sizeof p, "%s/lr=%s/seed=%d/summary.json", out, lrs[l], s);
            n += access(p, F_OK) == 0;
        }
    return n;
}

Test(sweep, a_killed_sweep_resumes_without_redoing_runs, .timeout = 600) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    char dir[4096], out[4200], first[4300];
    cr_assert(th_tempdir(dir, sizeof dir, "sweep"));
    snprintf(out, sizeof out, "%s/sw", dir);
    const char *prog = th_write_program(slow_text);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(bin, bin, "sweep", prog, "--grid", "lr=0.1,0.2", "--seeds", "0..3", "-j", "1",
              "--threads", "1", "--out", out, (char *)NULL);
        _exit(127);
    }
    cr_assert(pid > 0);
    snprintf(first, sizeof first, "%s/lr=0.1/seed=0/summary.json", out);
    struct timespec ts = {0, 20000000};
    for (int i = 0; i < 3000 && access(first, F_OK) != 0; i++)
        nanosleep(&ts, NULL);
    cr_assert(access(first, F_OK) == 0, "the first run never completed");
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_lt(completed_runs(out), 6, "the sweep was killed before its end");
    double before = mtime_of(first);
    SpawnResult r = th_dflow(600, "sweep", prog, "--grid", "lr=0.1,0.2", "--seeds", "0..3", "-j",
                             "2", "--threads", "1", "--out", out, NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert_eq(th_count(r.out, "3/3"), 2, "%s", r.out);
    th_spawn_free(&r);
    cr_assert_eq(mtime_of(first), before, "a completed run was run again");
    char path[4300];
    snprintf(path, sizeof path, "%s/summary.csv", out);
    size_t n;
    char *csv = th_slurp(path, &n);
    cr_assert(csv && th_count(csv, ",completed,") == 6, "%s", csv);
    free(csv);
    th_rmdir(dir);
}

/* Every combination is checked before anything runs: a misspelt key or a
 * value of the wrong type stops the sweep with the compiler's message. */
Test(sweep, a_combination_that_does_not_check_runs_nothing, .timeout = 600) {
    char dir[4096], out[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "sweep"));
    snprintf(out, sizeof out, "%s/sw", dir);
    const char *prog = th_write_program(prog_text);
    SpawnResult r = th_dflow(120, "sweep", prog, "--grid", "lam=0,0.5", "--grid", "lr=0.1,fast",
                             "--out", out, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "'lr' is a float; --set gave 'fast'") &&
                  strstr(r.err, "does not check with lam=0,lr=fast (above); nothing was run"),
              "%s", r.err);
    th_spawn_free(&r);
    cr_assert(access(out, F_OK) != 0, "no run folder was made");
    r = th_dflow(120, "sweep", prog, "--grid", "rate=0.1", "--out", out, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "unknown config key 'rate'"), "%s", r.err);
    th_spawn_free(&r);
    th_rmdir(dir);
}
