/* `dflow plot`: its arguments (plot.h draws).
 *
 *   dflow plot RUN... [-x COL] [-y COL]... [--logx] [--logy] [--band] [--panels]
 *                     [--title T] -o OUT.svg
 *   dflow plot --heatmap FILE.npy [--title T] -o OUT.svg
 *
 * A RUN is a run's --out folder or a metrics.csv. The output is written
 * whole through a temporary name, or not at all on an error. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "plot.h"
#include "runtime/outfile.h"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the sub-folders of dir (prefix: only those starting
 * with it); returns the count, names malloc'd into out. */
static int subdirs(const char *dir, const char *prefix, char **out, int max) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix))) continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) out[n++] = strdup(p);
    }
    if (d) closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_str);
    return n;
}

/* A RUN that is a sweep's folder (it holds summary.csv and no metrics.csv)
 * stands for every run of it: DIR/<combination>/seed=K. */
static bool add_run(PlotArgs *a, const char *s, char **owned, int *nowned) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/metrics.csv", s);
    bool sweep =
        stat(p, &st) != 0 && (snprintf(p, sizeof p, "%s/summary.csv", s), stat(p, &st) == 0);
    if (!sweep) {
        if (a->nruns == PLOT_MAX_RUNS) return false;
        a->runs[a->nruns++] = s;
        return true;
    }
    if (a->nsweeps < PLOT_MAX_RUNS) a->sweeps[a->nsweeps++] = s;
    int before = a->nruns;
    char *combos[PLOT_MAX_RUNS];
    int nc = subdirs(s, "", combos, PLOT_MAX_RUNS);
    bool ok = true;
    for (int c = 0; c < nc; c++) {
        char *seeds[PLOT_MAX_RUNS];
        int ns = subdirs(combos[c], "seed=", seeds, PLOT_MAX_RUNS);
        for (int k = 0; k < ns; k++) {
            if (a->nruns == PLOT_MAX_RUNS || *nowned == 2 * PLOT_MAX_RUNS) {
                ok = false;
                free(seeds[k]);
                continue;
            }
            owned[(*nowned)++] = seeds[k];
            a->runs[a->nruns++] = seeds[k];
        }
        free(combos[c]);
    }
    a->sweep_runs += a->nruns - before;
    return ok;
}

static void usage(FILE *f) {
    fputs("usage: dflow plot RUN... [-x COL] [-y COL]... [--logx] [--logy] [--band] [--panels]\n"
          "                 [--title T] -o OUT.svg\n"
          "       dflow plot --heatmap FILE.npy [--title T] -o OUT.svg\n"
          "\n"
          "Line plots of metrics.csv columns (RUN: a run's --out folder or a metrics.csv;\n"
          "several runs are overlaid with a legend), or a heat map of a 2-D .npy tensor.\n"
          "  -x COL        the x column (default step)\n"
          "  -y COL        a y column (repeatable; default loss)\n"
          "  --logx, --logy  logarithmic axes (values <= 0 are left out)\n"
          "  --band        the runs are repetitions: their mean and a +-1 std band (runs in\n"
          "                folders named seed=K are grouped by the folder above anyway)\n"
          "  --panels      one panel per -y column, one above the other\n"
          "  --title T     a title above the plot\n"
          "  -o OUT.svg    the SVG file to write\n"
          "exit status: 0 success, 1 error\n",
          f);
}

/* 0 ok, 1 error (printed), 2 help. */
static int parse(int argc, char **argv, PlotArgs *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) return 2;
        if (!strcmp(s, "--logx") || !strcmp(s, "--logy")) {
            *(s[5] == 'x' ? &a->logx : &a->logy) = true;
            continue;
        }
        if (!strcmp(s, "--band") || !strcmp(s, "--panels")) {
            *(s[2] == 'b' ? &a->band : &a->panels) = true;
            continue;
        }
        const char **slot = !strcmp(s, "-x")          ? &a->x
                            : !strcmp(s, "-y")        ? (a->ny < PLOT_MAX_Y ? &a->ys[a->ny] : NULL)
                            : !strcmp(s, "--title")   ? &a->title
                            : !strcmp(s, "-o")        ? &a->out
                            : !strcmp(s, "--heatmap") ? &a->heatmap
                                                      : (const char **)&a->runs[0];
        if (slot == (const char **)&a->runs[0]) { /* not an option */
            if (s[0] == '-') {
                fprintf(stderr, "dflow plot: unknown option '%s' (try --help)\n", s);
                return 1;
            }
            if (!add_run(a, s, a->owned, &a->nowned)) {
                fprintf(stderr, "dflow plot: at most %d runs in one plot\n", PLOT_MAX_RUNS);
                return 1;
            }
            continue;
        }
        if (!slot) {
            fprintf(stderr, "dflow plot: at most %d -y columns\n", PLOT_MAX_Y);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dflow plot: %s needs a value\n", s);
            return 1;
        }
        *slot = argv[++i];
        if (slot == &a->ys[a->ny]) a->ny++;
    }
    if (!a->out) {
        fprintf(stderr, "dflow plot: -o OUT.svg is required\n");
        return 1;
    }
    if (!a->heatmap && a->nruns == 0) {
        fprintf(stderr, "dflow plot: nothing to plot: give runs or --heatmap FILE.npy\n");
        return 1;
    }
    if (!a->x) a->x = "step";
    if (a->ny == 0) a->ys[a->ny++] = "loss";
    return 0;
}

static int plot_to(const PlotArgs *a) {
    char err[512];
    RtOutFile o;
    if (!rt_out_open(&o, a->out, 0666, err, sizeof err)) {
        fprintf(stderr, "dflow plot: %s\n", err);
        return 1;
    }
    if (a->heatmap ? plot_heatmap(a, o.f) : plot_lines(a, o.f)) {
        rt_out_abort(&o);
        return 1;
    }
    if (!rt_out_commit(&o, err, sizeof err)) {
        fprintf(stderr, "dflow plot: %s\n", err);
        return 1;
    }
    return 0;
}

int cmd_plot(int argc, char **argv) {
    PlotArgs a;
    int p = parse(argc, argv, &a);
    if (p == 2) usage(stdout);
    int rc = p == 2 ? 0 : p ? 1 : plot_to(&a);
    for (int i = 0; i < a.nowned; i++)
        free(a.owned[i]);
    return rc;
}
