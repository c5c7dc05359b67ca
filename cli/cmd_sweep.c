/* `dflow sweep`: every combination of a grid of config values over seeds,
 * each as its own `dflow run` in DIR/<combination>/seed=<k>/.
 *
 *   dflow sweep prog.dfl [--grid KEY=V1,V2...]... [--seeds A..B | --seeds A,B,...]
 *               [-j N] [--threads T] [--set KEY=V]... [--backend B] --out DIR
 *
 * Every combination is first checked (`dflow check` with its values), so
 * a misspelt key or a value of the wrong type stops the sweep before any
 * run, with the compiler's message. The runs are child processes of this dflow (so one crash cannot
 * take the others down), at most N at a time, each with T threads (default: the cores divided by N,
 * at least 1, so the sweep does not oversubscribe the machine); they share the persistent compile
 * cache, so only the first compiles cold. A run's output goes to its folder's log.txt. A run whose
 * summary.json says "completed" is not run again, so re-running the same
 * command after a kill (even SIGKILL) finishes the sweep. At the end
 * DIR/summary.csv has a row per run (the grid values, the seed, the status,
 * the last value of every metric) and a table of the mean +- std over seeds
 * of each final metric per combination is printed; failed runs are counted
 * and named, never averaged. Exit status 0 when every run completed, 1
 * otherwise (or on a bad argument). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "runtime/cliopt.h"
#include "runtime/metrics.h"
#include "runtime/outfile.h"
#include "runtime/threadpool.h"

#define MAX_KEYS 8
#define MAX_VALS 32
#define MAX_SEEDS 1000
#define MAX_SETS 32
#define MAX_COLS 32

typedef struct {
    const char *prog, *out, *backend;
    const char *keys[MAX_KEYS];
    char *vals[MAX_KEYS][MAX_VALS];
    int nkeys, nvals[MAX_KEYS];
    uint64_t seeds[MAX_SEEDS];
    int nseeds, jobs, threads;
    const char *sets[MAX_SETS];
    int nsets;
} SweepArgs;

typedef struct {
    int combo;
    uint64_t seed;
    char dir[4096];
    pid_t pid;
    int state; /* 0 pending, 1 running, 2 completed, 3 failed */
    int exit_code;
} Job;

static void usage(FILE *f) {
    fputs("usage: dflow sweep prog.dfl [--grid KEY=V1,V2...]... [--seeds A..B | A,B,...]\n"
          "                   [-j N] [--threads T] [--set KEY=V]... [--backend B] --out DIR\n"
          "\n"
          "Runs prog.dfl for every combination of the grid's config values and every seed,\n"
          "each in DIR/KEY=V,.../seed=K/ (metrics.csv, summary.json, log.txt), N at a time.\n"
          "Completed runs are skipped, so the same command resumes a killed sweep. At the\n"
          "end: DIR/summary.csv and a table of the mean +- std over seeds per combination.\n"
          "  --grid KEY=V1,V2  values of one config (repeatable: the grid is their product)\n"
          "  --seeds A..B      the seeds A to B-1 (or a list A,B,...; default 0)\n"
          "  -j N              runs at a time (default 1)\n"
          "  --threads T       threads per run (default: the cores / N, at least 1)\n"
          "  --set KEY=V       a config value for every run\n"
          "  --backend B       as dflow run's\n"
          "  --out DIR         the sweep's folder (required)\n"
          "exit status: 0 every run completed, 1 otherwise\n",
          f);
}

static bool parse_seeds(const char *s, SweepArgs *a) {
    const char *dots = strstr(s, "..");
    if (dots) {
        char lo[32];
        uint64_t b, e;
        snprintf(lo, sizeof lo, "%.*s", (int)(dots - s), s);
        if (!rt_parse_u64(lo, &b) || !rt_parse_u64(dots + 2, &e) || e <= b || e - b > MAX_SEEDS)
            return false;
        for (uint64_t k = b; k < e; k++)
            a->seeds[a->nseeds++] = k;
        return true;
    }
    char *copy = strdup(s), *save = NULL;
    bool ok = copy != NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && ok;
         t = strtok_r(NULL, ",", &save))
        ok = a->nseeds < MAX_SEEDS && rt_parse_u64(t, &a->seeds[a->nseeds++]);
    free(copy);
    return ok && a->nseeds > 0;
}

/* A grid value becomes part of a folder name: no '/', no ',', not empty. */
static bool parse_grid(const char *s, SweepArgs *a) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1] || a->nkeys == MAX_KEYS) return false;
    int k = a->nkeys++;
    a->keys[k] = strndup(s, (size_t)(eq - s));
    char *copy = strdup(eq + 1), *save = NULL;
    if (!a->keys[k] || !copy) return false;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (a->nvals[k] == MAX_VALS || strchr(t, '/')) {
            free(copy);
            return false;
        }
        a->vals[k][a->nvals[k]++] = strdup(t);
    }
    free(copy);
    return a->nvals[k] > 0 && !strchr(a->keys[k], '/') && !strchr(a->keys[k], ',');
}

/* 0 ok, 1 error (printed), 2 help. */
static int parse(int argc, char **argv, SweepArgs *a) {
    memset(a, 0, sizeof *a);
    a->jobs = 1;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *v = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) return 2;
        const char *names[] = {"--grid", "--seeds",   "-j",   "--threads",
                               "--set",  "--backend", "--out"};
        int which = -1;
        for (int k = 0; k < 7 && which < 0; k++)
            if (rt_opt_is(s, names[k], &v)) which = k;
        if (which < 0) {
            if (s[0] == '-' || a->prog) {
                fprintf(stderr, "dflow sweep: unexpected '%s' (try --help)\n", s);
                return 1;
            }
            a->prog = s;
            continue;
        }
        if (!v && i + 1 < argc) v = argv[++i];
        if (!v) {
            fprintf(stderr, "dflow sweep: %s needs a value\n", names[which]);
            return 1;
        }
        bool ok = true;
        uint64_t n = 0;
        switch (which) {
        case 0:
            ok = parse_grid(v, a);
            break;
        case 1:
            ok = parse_seeds(v, a);
            break;
        case 2:
            ok = rt_parse_u64(v, &n) && n >= 1 && n <= 256;
            a->jobs = ok ? (int)n : 1;
            break;
        case 3:
            ok = rt_threads_parse(v, &a->threads);
            break;
        case 4:
            ok = a->nsets < MAX_SETS && strchr(v, '=');
            if (ok) a->sets[a->nsets++] = v;
            break;
        case 5:
            a->backend = v;
            break;
        case 6:
            a->out = v;
            break;
        }
        if (!ok) {
            fprintf(stderr, "dflow sweep: bad %s '%s' (try --help)\n", names[which], v);
            return 1;
        }
    }
    if (!a->prog || !a->out) {
        fprintf(stderr, "dflow sweep: %s\n",
                !a->prog ? "missing the program file" : "--out DIR is required");
        return 1;
    }
    if (a->nseeds == 0) a->seeds[a->nseeds++] = 0;
    if (!a->threads) {
        int t = rt_pool_default_size() / a->jobs;
        a->threads = t >= 1 ? t : 1;
    }
    return 0;
}

static void free_args(SweepArgs *a) {
    for (int k = 0; k < a->nkeys; k++) {
        free((char *)a->keys[k]);
        for (int j = 0; j < a->nvals[k]; j++)
            free(a->vals[k][j]);
    }
}

static int ncombos(const SweepArgs *a) {
    int n = 1;
    for (int k = 0; k < a->nkeys; k++)
        n *= a->nvals[k];
    return n;
}

/* Value index of key k in combination c (the last key varies fastest). */
static int value_of(const SweepArgs *a, int c, int k) {
    for (int j = a->nkeys - 1; j > k; j--)
        c /= a->nvals[j];
    return c % a->nvals[k];
}

static void combo_name(const SweepArgs *a, int c, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
    for (int j = 0; j < a->nkeys && k < n; j++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", j ? "," : "", a->keys[j],
                              a->vals[j][value_of(a, c, j)]);
    if (a->nkeys == 0) snprintf(buf, n, "default");
}

static bool completed(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, "\"status\": \"completed\"") != NULL;
}

/* `dflow check prog --set ...` for combination c: true when it checks. */
static bool check_combo(const SweepArgs *a, int c, const char *self) {
    const char *argv[8 + 2 * (MAX_KEYS + MAX_SETS)];
    char kv[MAX_KEYS][512];
    int n = 0;
    argv[n++] = self;
    argv[n++] = "check";
    argv[n++] = a->prog;
    for (int s = 0; s < a->nsets; s++) {
        argv[n++] = "--set";
        argv[n++] = a->sets[s];
    }
    for (int k = 0; k < a->nkeys; k++) {
        snprintf(kv[k], sizeof kv[k], "%s=%s", a->keys[k], a->vals[k][value_of(a, c, k)]);
        argv[n++] = "--set";
        argv[n++] = kv[k];
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127); /* keep "ok" lines out */
        execv(self, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static pid_t start(const SweepArgs *a, const Job *j, const char *self) {
    char err[256];
    if (!rt_mkdir_p(j->dir, err, sizeof err)) {
        fprintf(stderr, "dflow sweep: %s\n", err);
        return -1;
    }
    char log[4200], seed[32], threads[16];
    snprintf(log, sizeof log, "%s/log.txt", j->dir);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)j->seed);
    snprintf(threads, sizeof threads, "%d", a->threads);
    const char *argv[16 + 2 * (MAX_KEYS + MAX_SETS)];
    int n = 0;
    argv[n++] = self;
    argv[n++] = "run";
    argv[n++] = a->prog;
    for (int s = 0; s < a->nsets; s++) {
        argv[n++] = "--set";
        argv[n++] = a->sets[s];
    }
    static char kv[MAX_KEYS][512];
    for (int k = 0; k < a->nkeys; k++) {
        snprintf(kv[k], sizeof kv[k], "%s=%s", a->keys[k], a->vals[k][value_of(a, j->combo, k)]);
        argv[n++] = "--set";
        argv[n++] = kv[k];
    }
    if (a->backend) {
        argv[n++] = "--backend";
        argv[n++] = a->backend;
    }
    const char *tail[] = {"--seed", seed,   "--threads",     threads,
                          "--out",  j->dir, "--no-progress", NULL};
    for (int k = 0; tail[k]; k++)
        argv[n++] = tail[k];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *lf = freopen(log, "w", stdout);
        if (!lf || dup2(fileno(stdout), 2) < 0) _exit(127);
        execv(self, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static void progress(int done, int failed, int running, int total, int skipped) {
    if (!isatty(2)) return;
    fprintf(stderr, "\rsweep: %d/%d done (%d skipped), %d running, %d failed   ", done, total,
            skipped, running, failed);
}

/* ---- the summary ---- */

typedef struct {
    const char *names[MAX_COLS];
    int n;
} Cols;

static void add_cols(Cols *c, const RtMetrics *m) {
    for (int i = 1; i + 1 < rt_metrics_ncols(m); i++) {
        const char *nm = rt_metrics_col(m, i);
        bool seen = false;
        for (int k = 0; k < c->n; k++)
            seen = seen || !strcmp(c->names[k], nm);
        if (!seen && c->n < MAX_COLS) c->names[c->n++] = strdup(nm);
    }
}

/* Mean and sample std (two passes) of a column's final values over the
 * completed runs of combination c; returns how many there are. */
static int mean_sd(const Job *jobs, int nj, RtMetrics **ms, int c, const char *col, double *mean,
                   double *sd) {
    double s = 0, d2 = 0, v;
    int n = 0;
    *mean = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nj; i++)
            if (jobs[i].combo == c && jobs[i].state == 2 && ms[i] &&
                rt_metrics_last(ms[i], col, &v) && isfinite(v)) {
                if (pass == 0) {
                    s += v;
                    n++;
                } else {
                    d2 += (v - *mean) * (v - *mean);
                }
                if (pass == 0) *mean = s / n;
            }
    *sd = n > 1 ? sqrt(d2 / (n - 1)) : 0;
    return n;
}

static bool write_summary(const SweepArgs *a, const Job *jobs, int nj, RtMetrics **ms) {
    Cols cols = {.n = 0};
    for (int i = 0; i < nj; i++)
        if (ms[i]) add_cols(&cols, ms[i]);
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/summary.csv", a->out);
    RtOutFile o;
    if (!rt_out_open(&o, path, 0666, err, sizeof err)) {
        fprintf(stderr, "dflow sweep: %s\n", err);
        return false;
    }
    for (int k = 0; k < a->nkeys; k++)
        fprintf(o.f, "%s,", a->keys[k]);
    fputs("seed,status", o.f);
    for (int k = 0; k < cols.n; k++)
        fprintf(o.f, ",%s", cols.names[k]);
    fputc('\n', o.f);
    for (int i = 0; i < nj; i++) {
        for (int k = 0; k < a->nkeys; k++)
            fprintf(o.f, "%s,", a->vals[k][value_of(a, jobs[i].combo, k)]);
        fprintf(o.f, "%llu,%s", (unsigned long long)jobs[i].seed,
                jobs[i].state == 2 ? "completed" : "failed");
        for (int k = 0; k < cols.n; k++) {
            double v;
            if (jobs[i].state == 2 && ms[i] && rt_metrics_last(ms[i], cols.names[k], &v))
                fprintf(o.f, ",%.9g", v);
            else
                fputc(',', o.f);
        }
        fputc('\n', o.f);
    }
    bool ok = rt_out_commit(&o, err, sizeof err);
    if (!ok) fprintf(stderr, "dflow sweep: %s\n", err);
    /* the table: mean +- std over the completed seeds */
    printf("%-32s %6s", "combination", "runs");
    for (int k = 0; k < cols.n; k++)
        printf("  %22s", cols.names[k]);
    putchar('\n');
    for (int c = 0; c < ncombos(a); c++) {
        char name[1024];
        combo_name(a, c, name, sizeof name);
        int ok_runs = 0, all = 0;
        for (int i = 0; i < nj; i++)
            if (jobs[i].combo == c) {
                all++;
                ok_runs += jobs[i].state == 2;
            }
        printf("%-32s %3d/%-2d", name, ok_runs, all);
        for (int k = 0; k < cols.n; k++) {
            double mean, sd;
            int n = mean_sd(jobs, nj, ms, c, cols.names[k], &mean, &sd);
            char cell[64];
            if (n == 0)
                snprintf(cell, sizeof cell, "-");
            else if (n == 1)
                snprintf(cell, sizeof cell, "%.4g", mean);
            else
                snprintf(cell, sizeof cell, "%.4g +- %.2g", mean, sd);
            printf("  %22s", cell);
        }
        printf("%s\n", ok_runs < all ? "  (failed runs: see their log.txt)" : "");
    }
    for (int k = 0; k < cols.n; k++)
        free((char *)cols.names[k]);
    return ok;
}

static int run_all(const SweepArgs *a, Job *jobs, int nj, const char *self) {
    int running = 0, done = 0, failed = 0, skipped = 0, next = 0;
    for (int i = 0; i < nj; i++)
        if (completed(jobs[i].dir)) {
            jobs[i].state = 2;
            done++;
            skipped++;
        }
    while (done + failed < nj) {
        while (running < a->jobs && next < nj) {
            Job *j = &jobs[next++];
            if (j->state != 0) continue;
            j->pid = start(a, j, self);
            if (j->pid < 0) {
                j->state = 3;
                failed++;
                continue;
            }
            j->state = 1;
            running++;
        }
        progress(done, failed, running, nj, skipped);
        if (running == 0) break;
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p < 0 && errno == EINTR) continue;
        if (p < 0) break;
        for (int i = 0; i < nj; i++)
            if (jobs[i].state == 1 && jobs[i].pid == p) {
                running--;
                bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && completed(jobs[i].dir);
                jobs[i].state = ok ? 2 : 3;
                jobs[i].exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                if (ok)
                    done++;
                else {
                    failed++;
                    fprintf(stderr, "%sdflow sweep: %s failed (exit %d; see its log.txt)\n",
                            isatty(2) ? "\n" : "", jobs[i].dir, jobs[i].exit_code);
                }
            }
    }
    progress(done, failed, running, nj, skipped);
    if (isatty(2)) fputc('\n', stderr);
    return failed;
}

static int sweep(const SweepArgs *a) {
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "dflow sweep: cannot find this dflow executable\n");
        return 1;
    }
    self[sl] = '\0';
    int nc = ncombos(a), nj = nc * a->nseeds;
    for (int c = 0; c < nc; c++)
        if (!check_combo(a, c, self)) {
            char name[1024];
            combo_name(a, c, name, sizeof name);
            fprintf(stderr, "dflow sweep: %s does not check with %s (above); nothing was run\n",
                    a->prog, name);
            return 1;
        }
    Job *jobs = calloc((size_t)nj, sizeof *jobs);
    RtMetrics **ms = calloc((size_t)nj, sizeof *ms);
    if (!jobs || !ms) {
        fprintf(stderr, "dflow sweep: out of memory\n");
        free(jobs);
        free(ms);
        return 1;
    }
    for (int c = 0, i = 0; c < nc; c++)
        for (int s = 0; s < a->nseeds; s++, i++) {
            char name[1024];
            combo_name(a, c, name, sizeof name);
            jobs[i].combo = c;
            jobs[i].seed = a->seeds[s];
            snprintf(jobs[i].dir, sizeof jobs[i].dir, "%s/%s/seed=%llu", a->out, name,
                     (unsigned long long)a->seeds[s]);
        }
    int failed = run_all(a, jobs, nj, self);
    for (int i = 0; i < nj; i++) {
        char path[4200], err[256];
        snprintf(path, sizeof path, "%s/metrics.csv", jobs[i].dir);
        ms[i] = jobs[i].state == 2 ? rt_metrics_load(path, err, sizeof err) : NULL;
    }
    bool ok = write_summary(a, jobs, nj, ms);
    for (int i = 0; i < nj; i++)
        rt_metrics_free(ms[i]);
    free(ms);
    free(jobs);
    return failed == 0 && ok ? 0 : 1;
}

int cmd_sweep(int argc, char **argv) {
    SweepArgs a;
    int p = parse(argc, argv, &a);
    if (p) free_args(&a);
    if (p == 2) {
        usage(stdout);
        return 0;
    }
    if (p) return 1;
    int rc = sweep(&a);
    free_args(&a);
    return rc;
}