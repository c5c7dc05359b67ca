/* Outputs are never lost or half-written (runtime/outfile.h, runtime/metrics.c).
 *
 * In process: rt_out_* writes whole files through a temporary name, leaves
 * no temporary behind, keeps the old file when a write fails, and names the
 * path and the reason. Through `dflow run`: a full disk (/dev/full behind a
 * symlink, or RLIMIT_FSIZE, which fails writes past a size as a full disk
 * would), a directory in the way and a read-only folder each end the run with
 * exit 1 naming the path and the reason, summary.json says "failed", and what
 * was already complete is kept: metrics.csv holds only whole rows, an older
 * `save` file survives. The tests run as root, so the read-only folder is
 * tested by running dflow as the unprivileged user `nobody` (setpriv). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/spawn.h"
#include "runtime/outfile.h"

static const char *PROGRAM = "main {\n"
                             "  x = ones([1000])\n"
                             "  for i in 0..200 {\n"
                             "    log v = sum(x) * i\n"
                             "  }\n"
                             "  save \"x.npy\" x\n"
                             "}\n";

static char dir[512], prog[600], out[600];

static void setup(void) {
    cr_assert(th_tempdir(dir, sizeof dir, "outputs"));
    snprintf(prog, sizeof prog, "%s/p.dfl", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    FILE *f = fopen(prog, "w");
    cr_assert(f && fputs(PROGRAM, f) >= 0 && fclose(f) == 0);
    cr_assert_eq(mkdir(out, 0755), 0);
}

static void teardown(void) {
    th_rmdir(dir);
}

TestSuite(outputs, .init = setup, .fini = teardown, .timeout = 300);

static const char *in_out(const char *name) {
    static char p[4][700];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", out, name);
    return s;
}

static SpawnResult run_prog(void) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    return th_run(120, bin, "run", prog, "--out", out, NULL);
}

/* No "NAME.tmp-" file is left in the folder. */
static void expect_no_temporaries(const char *folder) {
    DIR *d = opendir(folder);
    cr_assert(d);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_expect(!strstr(e->d_name, ".tmp-"), "left behind: %s", e->d_name);
    closedir(d);
}

/* Every line of metrics.csv is a whole row ("step,v,time_s"); returns the row count. */
static int whole_rows(void) {
    size_t n;
    char *s = th_slurp(in_out("metrics.csv"), &n);
    cr_assert(s, "no metrics.csv");
    cr_expect(n == 0 || s[n - 1] == '\n', "a torn last row: ...%s", n > 40 ? s + n - 40 : s);
    int rows = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"), rows++) {
        int commas = 0;
        for (char *c = line; *c; c++)
            commas += *c == ',';
        cr_expect_eq(commas, 2, "row %d is '%s'", rows, line);
    }
    free(s);
    return rows - 1;
}

static void expect_failed_summary(void) {
    char *js = th_slurp(in_out("summary.json"), NULL);
    cr_assert(js, "no summary.json");
    cr_expect(strstr(js, "\"status\": \"failed\""), "%s", js);
    free(js);
}

/* ---- in process ---- */

Test(outputs, a_whole_file_replaces_the_old_one_and_leaves_no_temporary) {
    const char *p = in_out("f.bin");
    char err[256];
    cr_assert(rt_out_write_file(p, "old", 3, 0666, err, sizeof err), "%s", err);
    cr_assert(rt_out_write_file(p, "new!", 4, 0777, err, sizeof err), "%s", err);
    size_t n;
    char *s = th_slurp(p, &n);
    cr_assert(s && n == 4 && !memcmp(s, "new!", 4));
    free(s);
    struct stat st;
    mode_t um = umask(0);
    umask(um);
    cr_assert_eq(stat(p, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0777 & ~um, "mode %o", st.st_mode & 0777);
    expect_no_temporaries(out);
}

Test(outputs, a_failed_write_keeps_the_old_file) {
    const char *p = in_out("keep.bin");
    char err[256];
    cr_assert(rt_out_write_file(p, "old", 3, 0666, err, sizeof err), "%s", err);
    RtOutFile o;
    cr_assert(rt_out_open(&o, p, 0666, err, sizeof err), "%s", err);
    fputs("half", o.f);
    rt_out_abort(&o); /* a writer that gave up */
    char *s = th_slurp(p, NULL);
    cr_expect_str_eq(s, "old");
    free(s);
    expect_no_temporaries(out);

    char want[1024];
    cr_assert_eq(mkdir(in_out("adir"), 0755), 0);
    cr_expect_not(rt_out_write_file(in_out("adir"), "x", 1, 0666, err, sizeof err));
    snprintf(want, sizeof want, "cannot write '%s': Is a directory", in_out("adir"));
    cr_expect_str_eq(err, want);
    cr_expect_not(rt_out_write_file("/dev/full", "x", 1, 0666, err, sizeof err));
    cr_expect_str_eq(err, "cannot write '/dev/full': No space left on device");
    struct stat st;
    cr_assert_eq(stat("/dev/full", &st), 0);
    cr_expect(S_ISCHR(st.st_mode), "/dev/full was replaced");
    cr_expect_not(rt_out_write_file(in_out("no/such/folder"), "x", 1, 0666, err, sizeof err));
    cr_expect(strstr(err, "No such file or directory"), "%s", err);
}

/* ---- through dflow run ---- */

Test(outputs, a_full_disk_under_metrics_ends_the_run) {
    cr_assert_eq(symlink("/dev/full", in_out("metrics.csv")), 0);
    SpawnResult r = run_prog();
    TH_EXPECT_EXIT(r, 1);
    char want[1024];
    snprintf(want, sizeof want, "error: metrics: cannot write '%s': No space left on device",
             in_out("metrics.csv"));
    cr_expect(strstr(r.err, want), "%s", r.err);
    th_spawn_free(&r);
    expect_failed_summary();
}

Test(outputs, a_full_disk_under_the_summary_ends_the_run_and_keeps_the_metrics) {
    cr_assert_eq(symlink("/dev/full", in_out("summary.json")), 0);
    SpawnResult r = run_prog();
    TH_EXPECT_EXIT(r, 1);
    char want[1024];
    snprintf(want, sizeof want, "summary: cannot write '%s': No space left on device",
             in_out("summary.json"));
    cr_expect(strstr(r.err, want), "%s", r.err);
    th_spawn_free(&r);
    cr_expect_eq(whole_rows(), 200);
}

Test(outputs, a_full_disk_under_save_ends_the_run) {
    cr_assert_eq(symlink("/dev/full", in_out("x.npy")), 0);
    SpawnResult r = run_prog();
    TH_EXPECT_EXIT(r, 1);
    char want[1024];
    snprintf(want, sizeof want, "save: cannot write '%s': No space left on device",
             in_out("x.npy"));
    cr_expect(strstr(r.err, want), "%s", r.err);
    th_spawn_free(&r);
    cr_expect_eq(whole_rows(), 200);
    expect_failed_summary();
}

Test(outputs, a_directory_in_the_way_ends_the_run) {
    const char *names[] = {"metrics.csv", "summary.json", "x.npy"};
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++)
            unlink(in_out(names[k])); /* the last run's files */
        cr_assert_eq(mkdir(in_out(names[i]), 0755), 0);
        SpawnResult r = run_prog();
        TH_EXPECT_EXIT(r, 1);
        char want[1024];
        snprintf(want, sizeof want, "cannot write '%s': Is a directory", in_out(names[i]));
        cr_expect(strstr(r.err, want), "%s: %s", names[i], r.err);
        th_spawn_free(&r);
        cr_assert_eq(rmdir(in_out(names[i])), 0);
    }
}

/* A disk that fills in the middle of a row: RLIMIT_FSIZE fails writes past
 * the limit (EFBIG, with SIGXFSZ ignored) as a full disk fails them (the
 * limit is inherited by the dflow child). The rows before stay whole, the
 * torn one is cut, and an older x.npy that the new save cannot complete is
 * kept whole. */
Test(outputs, a_disk_full_mid_row_cuts_the_torn_row_and_keeps_old_files) {
    const char *old = "an older x.npy";
    FILE *f = fopen(in_out("x.npy"), "w");
    cr_assert(f && fputs(old, f) >= 0 && fclose(f) == 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {3001, 3001}; /* metrics rows are ~12 bytes: the limit falls mid-row */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    SpawnResult r = run_prog();
    TH_EXPECT_EXIT(r, 1);
    char want[1024];
    snprintf(want, sizeof want, "metrics: cannot write '%s': File too large",
             in_out("metrics.csv"));
    cr_expect(strstr(r.err, want), "%s", r.err);
    th_spawn_free(&r);
    int rows = whole_rows();
    cr_expect(rows > 50 && rows < 200, "%d rows", rows);
    expect_failed_summary();

    /* the metrics fit now, the 4 KB array does not */
    rl.rlim_cur = rl.rlim_max = 3000;
    cr_assert_eq(unlink(in_out("metrics.csv")), 0);
    const char *bin = th_dflow_bin();
    char src[600];
    snprintf(src, sizeof src, "%s/q.dfl", dir);
    f = fopen(src, "w");
    cr_assert(f && fputs("main {\n  save \"x.npy\" ones([1000])\n}\n", f) >= 0 && fclose(f) == 0);
    r = th_run(120, bin, "run", src, "--out", out, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_expect(strstr(r.err, "save: cannot write"), "%s", r.err);
    th_spawn_free(&r);
    char *s = th_slurp(in_out("x.npy"), NULL);
    cr_expect_str_eq(s, old);
    free(s);
    expect_no_temporaries(out);
}

/* A folder that may not be written: root may write anywhere, so dflow runs
 * as `nobody` (setpriv) over a folder owned by root with mode 0555. */
Test(outputs, a_read_only_folder_ends_the_run) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    cr_assert_eq(chmod(dir, 0755), 0);
    cr_assert_eq(chmod(prog, 0644), 0);
    cr_assert_eq(chmod(out, 0555), 0);
    SpawnResult r;
    if (geteuid() == 0) {
        if (access("/usr/bin/setpriv", X_OK) != 0) cr_skip_test("running as root without setpriv");
        r = th_run(120, "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin,
                   "run", prog, "--out", out, NULL);
    } else {
        r = run_prog();
    }
    TH_EXPECT_EXIT(r, 1);
    char want[1024];
    snprintf(want, sizeof want, "metrics: cannot write '%s': Permission denied",
             in_out("metrics.csv"));
    cr_expect(strstr(r.err, want), "%s", r.err);
    th_spawn_free(&r);
    chmod(out, 0755);
}

/* A log that cannot be written (stdout on a full disk) is a failed run too,
 * for dflow and for an executable it built. */
Test(outputs, a_full_disk_under_stdout_is_exit_1) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    SpawnResult r = th_run(120, "/bin/sh", "-c", "exec \"$0\" run \"$1\" --out \"$2\" > /dev/full",
                           bin, prog, out, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_expect(strstr(r.err, "dflow: cannot write standard output"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(120, "/bin/sh", "-c", "exec \"$0\" run \"$1\" --out \"$2\" > /dev/null", bin, prog,
               out, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
}
