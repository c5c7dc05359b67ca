/* `dflow plot` (cli/cmd_plot.c parses, these draw): line plots of
 * metrics.csv columns (plot_lines.c) and heat maps of .npy tensors
 * (plot_heatmap.c). Each writes a whole SVG document to f (svg.h) and
 * returns 0, or prints "dflow plot: ..." naming the file or column and
 * returns 1 (the caller then discards the output). */
#ifndef DFLOW_CLI_PLOT_H
#define DFLOW_CLI_PLOT_H

#include <stdbool.h>
#include <stdio.h>

#define PLOT_MAX_RUNS 64
#define PLOT_MAX_Y 8

/* The figure: fixed width; margins of each panel's plot area. */
#define PLOT_W 720
#define PLOT_ML 78.0  /* left (y tick labels) */
#define PLOT_MR 170.0 /* right (the legend) */
#define PLOT_MT 40.0  /* top (the title) */
#define PLOT_MB 56.0  /* below a plot area (x tick labels, x label) */

typedef struct {
    const char *runs[PLOT_MAX_RUNS];
    int nruns;
    const char *x, *ys[PLOT_MAX_Y];
    int ny;
    bool logx, logy;
    bool band;   /* all runs are repetitions: one mean +- std band */
    bool panels; /* one panel per y column */
    const char *title, *out, *heatmap;
    char *owned[2 * PLOT_MAX_RUNS]; /* run paths found in sweep folders (freed by the caller) */
    int nowned;
    const char *sweeps[PLOT_MAX_RUNS]; /* the sweep folders given, and the runs they gave */
    int nsweeps, sweep_runs;
} PlotArgs;

int plot_lines(const PlotArgs *a, FILE *f);
int plot_heatmap(const PlotArgs *a, FILE *f);

#endif
