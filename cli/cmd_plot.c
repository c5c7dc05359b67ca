/* `dflow plot`: line plots of metrics.csv columns and heat maps of .npy
 * matrices, as self-contained SVG (cli/svg.h).
 *
 *   dflow plot RUN... [-x COL] [-y COL]... [--logx] [--logy] [--title T] -o OUT.svg
 *   dflow plot --heatmap FILE.npy [--title T] -o OUT.svg
 *
 * A RUN is a run's --out folder or a metrics.csv. Every (run, y column)
 * pair is one line, drawn through the rows holding both columns, labelled
 * in the legend by the run (and the column when there are several).
 * Ticks are 1-2-5 steps (decades on a log axis, which leaves out values
 * <= 0). A heat map draws a rank-2 tensor (rank 1: one row) as cells with a
 * colour bar; a side longer than 200 cells is averaged in blocks. Errors
 * (an unreadable file, a column no run has, nothing to draw) name the file
 * or the column, exit 1; the output is written whole or not at all. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime/dataio.h"
#include "runtime/metrics.h"
#include "runtime/outfile.h"
#include "svg.h"

#define W 720
#define H 440
#define ML 78.0 /* plot area margins: left, right (the legend), top, bottom */
#define MR 170.0
#define MT 40.0
#define MB 56.0
#define MAX_Y 8
#define MAX_RUNS 64
#define MAX_CELLS 200

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

typedef struct {
    const char *runs[MAX_RUNS];
    int nruns;
    const char *x, *ys[MAX_Y];
    int ny;
    bool logx, logy;
    const char *title, *out, *heatmap;
} PlotArgs;

static void usage(FILE *f) {
    fputs("usage: dflow plot RUN... [-x COL] [-y COL]... [--logx] [--logy] [--title T] -o OUT.svg\n"
          "       dflow plot --heatmap FILE.npy [--title T] -o OUT.svg\n"
          "\n"
          "Line plots of metrics.csv columns (RUN: a run's --out folder or a metrics.csv;\n"
          "several runs are overlaid with a legend), or a heat map of a 2-D .npy tensor.\n"
          "  -x COL        the x column (default step)\n"
          "  -y COL        a y column (repeatable; default loss)\n"
          "  --logx, --logy  logarithmic axes (values <= 0 are left out)\n"
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
        const char **slot = !strcmp(s, "-x")          ? &a->x
                            : !strcmp(s, "-y")        ? (a->ny < MAX_Y ? &a->ys[a->ny] : NULL)
                            : !strcmp(s, "--title")   ? &a->title
                            : !strcmp(s, "-o")        ? &a->out
                            : !strcmp(s, "--heatmap") ? &a->heatmap
                                                      : (const char **)&a->runs[0];
        if (slot == (const char **)&a->runs[0]) { /* not an option */
            if (s[0] == '-') {
                fprintf(stderr, "dflow plot: unknown option '%s' (try --help)\n", s);
                return 1;
            }
            if (a->nruns == MAX_RUNS) {
                fprintf(stderr, "dflow plot: at most %d runs in one plot\n", MAX_RUNS);
                return 1;
            }
            a->runs[a->nruns++] = s;
            continue;
        }
        if (!slot) {
            fprintf(stderr, "dflow plot: at most %d -y columns\n", MAX_Y);
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

/* ---- axes ---- */

typedef struct {
    double lo, hi; /* the data range on the axis (log10 of it on a log axis) */
    bool log;
    double p0, p1; /* pixels of lo and hi */
} Axis;

static double to_px(const Axis *ax, double v) {
    double t = ax->log ? log10(v) : v;
    return ax->p0 + (t - ax->lo) / (ax->hi - ax->lo) * (ax->p1 - ax->p0);
}

static void widen(Axis *ax) {
    if (ax->hi - ax->lo < 1e-300 * (fabs(ax->lo) + 1)) { /* one value: a unit around it */
        double c = ax->lo, d = ax->log ? 0.5 : (fabs(c) > 0 ? fabs(c) * 0.1 : 1.0);
        ax->lo = c - d;
        ax->hi = c + d;
    }
}

/* 1-2-5 ticks covering [lo, hi]; on a log axis decades, with 2 and 5 in
 * between when it spans fewer than three. */
static int ticks(const Axis *ax, double *t, int max) {
    double span = ax->hi - ax->lo;
    if (ax->log) {
        static const double fine[] = {1, 2, 5}, coarse[] = {1};
        const double *m = span < 3 ? fine : coarse;
        int nm = span < 3 ? 3 : 1, n = 0, every = span > 12 ? (int)ceil(span / 12) : 1;
        for (double d = floor(ax->lo); d <= ceil(ax->hi) && n < max; d += every)
            for (int k = 0; k < nm && n < max; k++) {
                double v = d + log10(m[k]);
                if (v >= ax->lo - 1e-9 && v <= ax->hi + 1e-9) t[n++] = m[k] * pow(10, d);
            }
        return n;
    }
    double step = pow(10, floor(log10(span / 5)));
    if (span / step > 10) step *= 2;
    if (span / step > 10) step *= 2.5;
    int n = 0;
    for (double v = ceil(ax->lo / step) * step; v <= ax->hi + step * 1e-9 && n < max; v += step)
        t[n++] = ax->log ? pow(10, v) : (fabs(v) < step * 1e-9 ? 0 : v);
    return n;
}

static void draw_axes(FILE *f, const Axis *x, const Axis *y, const char *xl, const char *yl) {
    double t[32];
    char buf[64];
    svg_rect(f, ML, MT, W - ML - MR, H - MT - MB, "none", "#444444");
    int n = ticks(x, t, 32);
    for (int i = 0; i < n; i++) {
        double px = to_px(x, t[i]);
        svg_line(f, px, H - MB, px, H - MB + 5, "#444444", 1);
        svg_line(f, px, MT, px, H - MB, "#e6e6e6", 1);
        snprintf(buf, sizeof buf, "%g", t[i]);
        svg_text(f, px, H - MB + 19, buf, 12, "middle", 0);
    }
    n = ticks(y, t, 32);
    for (int i = 0; i < n; i++) {
        double py = to_px(y, t[i]);
        svg_line(f, ML - 5, py, ML, py, "#444444", 1);
        svg_line(f, ML, py, W - MR, py, "#e6e6e6", 1);
        snprintf(buf, sizeof buf, "%g", t[i]);
        svg_text(f, ML - 8, py + 4, buf, 12, "end", 0);
    }
    svg_text(f, ML + (W - ML - MR) / 2, H - 14, xl, 14, "middle", 0);
    svg_text(f, 20, MT + (H - MT - MB) / 2, yl, 14, "middle", -90);
}

/* ---- line plots ---- */

typedef struct {
    double *x, *y;
    int n;
    const char *label;
} Series;

static const char *metrics_path(const char *run, char *buf, size_t n) {
    size_t k = strlen(run);
    if (k >= 4 && !strcmp(run + k - 4, ".csv")) return run;
    snprintf(buf, n, "%s/metrics.csv", run);
    return buf;
}

static bool usable(double v, bool log) {
    return isfinite(v) && (!log || v > 0);
}

/* The series of one run and column; false with a message on no data. */
static bool series_of(const RtMetrics *m, const PlotArgs *a, const char *ycol, Series *s) {
    int n = rt_metrics_nrows(m);
    s->x = malloc(sizeof(double) * (size_t)(n ? n : 1));
    s->y = malloc(sizeof(double) * (size_t)(n ? n : 1));
    s->n = 0;
    if (!s->x || !s->y) return false;
    for (int r = 0; r < n; r++) {
        double xv, yv;
        if (rt_metrics_get(m, r, a->x, &xv) && rt_metrics_get(m, r, ycol, &yv) &&
            usable(xv, a->logx) && usable(yv, a->logy)) {
            s->x[s->n] = xv;
            s->y[s->n++] = yv;
        }
    }
    return true;
}

static void range(Axis *ax, const Series *ss, int ns, bool x) {
    ax->lo = INFINITY;
    ax->hi = -INFINITY;
    for (int i = 0; i < ns; i++)
        for (int k = 0; k < ss[i].n; k++) {
            double v = x ? ss[i].x[k] : ss[i].y[k];
            if (ax->log) v = log10(v);
            if (v < ax->lo) ax->lo = v;
            if (v > ax->hi) ax->hi = v;
        }
    widen(ax);
    if (!ax->log && !x) { /* a little air above and below the curves */
        double pad = 0.04 * (ax->hi - ax->lo);
        ax->lo -= pad;
        ax->hi += pad;
    }
}

static void draw_lines(FILE *f, const PlotArgs *a, const Series *ss, int ns) {
    Axis x = {.log = a->logx, .p0 = ML, .p1 = W - MR}, y = {.log = a->logy, .p0 = H - MB, .p1 = MT};
    range(&x, ss, ns, true);
    range(&y, ss, ns, false);
    char ylabel[256] = "";
    for (int i = 0; i < a->ny; i++)
        snprintf(ylabel + strlen(ylabel), sizeof ylabel - strlen(ylabel), "%s%s", i ? ", " : "",
                 a->ys[i]);
    draw_axes(f, &x, &y, a->x, ylabel);
    if (a->title) svg_text(f, ML + (W - ML - MR) / 2, 24, a->title, 16, "middle", 0);
    for (int i = 0; i < ns; i++) {
        const char *c = palette[i % 10];
        double *px = malloc(sizeof(double) * (size_t)(ss[i].n ? ss[i].n : 1));
        double *py = malloc(sizeof(double) * (size_t)(ss[i].n ? ss[i].n : 1));
        for (int k = 0; px && py && k < ss[i].n; k++) {
            px[k] = to_px(&x, ss[i].x[k]);
            py[k] = to_px(&y, ss[i].y[k]);
        }
        if (px && py && ss[i].n > 1) svg_polyline(f, px, py, ss[i].n, c, 1.8);
        if (px && py && ss[i].n == 1) svg_circle(f, px[0], py[0], 3, c);
        free(px);
        free(py);
        double ly = MT + 10 + 20 * i;
        svg_line(f, W - MR + 14, ly, W - MR + 38, ly, c, 2.5);
        const char *lab = ss[i].label;
        size_t ll = strlen(lab);
        char shortened[40];
        if (ll > 22) { /* the end of a long path says most */
            snprintf(shortened, sizeof shortened, "...%s", lab + ll - 19);
            lab = shortened;
        }
        svg_text(f, W - MR + 44, ly + 4, lab, 12, "start", 0);
    }
}

static int plot_runs(const PlotArgs *a, FILE *f) {
    Series ss[MAX_RUNS * MAX_Y];
    int ns = 0, rc = 0;
    bool found[MAX_Y] = {false};
    for (int r = 0; r < a->nruns && rc == 0; r++) {
        char buf[4096], err[512];
        const char *path = metrics_path(a->runs[r], buf, sizeof buf);
        RtMetrics *m = rt_metrics_load(path, err, sizeof err);
        if (!m) {
            fprintf(stderr, "dflow plot: %s\n", err);
            rc = 1;
            break;
        }
        for (int k = 0; k < a->ny && rc == 0; k++) {
            Series *s = &ss[ns];
            if (!series_of(m, a, a->ys[k], s)) {
                fprintf(stderr, "dflow plot: out of memory\n");
                rc = 1;
                break;
            }
            found[k] = found[k] || s->n > 0;
            snprintf(buf, sizeof buf, "%s%s%s", a->runs[r], a->ny > 1 ? ": " : "",
                     a->ny > 1 ? a->ys[k] : "");
            s->label = strdup(buf);
            ns++;
        }
        rt_metrics_free(m);
    }
    for (int k = 0; k < a->ny && rc == 0; k++)
        if (!found[k]) {
            fprintf(stderr, "dflow plot: no run has rows with both '%s' and '%s'%s\n", a->x,
                    a->ys[k], a->logx || a->logy ? " (with positive values on the log axes)" : "");
            rc = 1;
        }
    if (rc == 0) draw_lines(f, a, ss, ns);
    for (int i = 0; i < ns; i++) {
        free(ss[i].x);
        free(ss[i].y);
        free((char *)ss[i].label);
    }
    return rc;
}

/* ---- heat maps ---- */

/* viridis at five stops, linearly between them */
static void colour(double t, char *buf, size_t n) {
    static const double st[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double p = t * 4;
    int i = p >= 4 ? 3 : (int)p;
    double u = p - i;
    int rgb[3];
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(st[i][c] + u * (st[i + 1][c] - st[i][c]));
    snprintf(buf, n, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

static double at(const RtTensor *t, int64_t i) {
    switch (t->dtype) {
    case DT_F32:
        return ((const float *)t->data)[i];
    case DT_F64:
        return ((const double *)t->data)[i];
    case DT_I32:
        return ((const int32_t *)t->data)[i];
    case DT_I64:
        return (double)((const int64_t *)t->data)[i];
    case DT_BOOL:
        return ((const uint8_t *)t->data)[i];
    case DT_F16:
    case DT_BF16:
        return NAN;
    }
    return NAN;
}

static int plot_heatmap(const PlotArgs *a, FILE *f) {
    char err[512];
    RtTensor *t = rt_npy_read(a->heatmap, err, sizeof err);
    if (!t) {
        fprintf(stderr, "dflow plot: %s\n", err);
        return 1;
    }
    int64_t rows = t->shape.rank == 2 ? t->shape.dims[0] : 1;
    int64_t cols = t->shape.rank == 2   ? t->shape.dims[1]
                   : t->shape.rank == 1 ? t->shape.dims[0]
                                        : 0;
    if ((t->shape.rank != 1 && t->shape.rank != 2) || rows == 0 || cols == 0 ||
        t->dtype == DT_F16 || t->dtype == DT_BF16) {
        fprintf(stderr,
                "dflow plot: %s: a heat map needs a non-empty rank-1 or rank-2 tensor of f32, f64, "
                "i32, i64 or bool\n",
                a->heatmap);
        rt_tensor_free(t);
        return 1;
    }
    int64_t br = (rows + MAX_CELLS - 1) / MAX_CELLS, bc = (cols + MAX_CELLS - 1) / MAX_CELLS;
    int64_t nr = (rows + br - 1) / br, nc = (cols + bc - 1) / bc;
    double *cell = calloc((size_t)(nr * nc), sizeof *cell);
    if (!cell) {
        rt_tensor_free(t);
        fprintf(stderr, "dflow plot: out of memory\n");
        return 1;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < nc; j++) {
            double s = 0;
            int64_t k = 0;
            for (int64_t r = i * br; r < rows && r < (i + 1) * br; r++)
                for (int64_t c = j * bc; c < cols && c < (j + 1) * bc; c++, k++)
                    s += at(t, r * cols + c);
            cell[i * nc + j] = s / (double)k;
            if (isfinite(cell[i * nc + j])) {
                lo = fmin(lo, cell[i * nc + j]);
                hi = fmax(hi, cell[i * nc + j]);
            }
        }
    if (!(hi >= lo)) lo = hi = 0;
    double aw = W - ML - MR, ah = H - MT - MB, cw = aw / (double)nc, ch = ah / (double)nr;
    if (cw > ch)
        cw = ch; /* square cells */
    else
        ch = cw;
    char buf[64];
    if (a->title) svg_text(f, ML + aw / 2, 24, a->title, 16, "middle", 0);
    svg_crisp_begin(f);
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < nc; j++) {
            double v = cell[i * nc + j];
            if (isfinite(v))
                colour(hi > lo ? (v - lo) / (hi - lo) : 0.5, buf, sizeof buf);
            else
                snprintf(buf, sizeof buf, "#ffffff");
            svg_rect(f, ML + (double)j * cw, MT + (double)i * ch, cw, ch, buf, NULL);
        }
    svg_rect(f, ML, MT, (double)nc * cw, (double)nr * ch, "none", "#444444");
    snprintf(buf, sizeof buf, "%lld x %lld%s", (long long)rows, (long long)cols,
             br > 1 || bc > 1 ? " (block means)" : "");
    svg_text(f, ML, MT + (double)nr * ch + 20, buf, 12, "start", 0);
    for (int k = 0; k < 32; k++) { /* the colour bar */
        colour((31 - k) / 31.0, buf, sizeof buf);
        svg_rect(f, W - MR + 30, MT + k * ah / 32, 18, ah / 32, buf, NULL);
    }
    svg_group_end(f);
    svg_rect(f, W - MR + 30, MT, 18, ah, "none", "#444444");
    snprintf(buf, sizeof buf, "%g", hi);
    svg_text(f, W - MR + 54, MT + 10, buf, 12, "start", 0);
    snprintf(buf, sizeof buf, "%g", lo);
    svg_text(f, W - MR + 54, MT + ah, buf, 12, "start", 0);
    free(cell);
    rt_tensor_free(t);
    return 0;
}

int cmd_plot(int argc, char **argv) {
    PlotArgs a;
    int p = parse(argc, argv, &a);
    if (p == 2) {
        usage(stdout);
        return 0;
    }
    if (p) return 1;
    char err[512];
    RtOutFile o;
    if (!rt_out_open(&o, a.out, 0666, err, sizeof err)) {
        fprintf(stderr, "dflow plot: %s\n", err);
        return 1;
    }
    svg_begin(o.f, W, H);
    int rc = a.heatmap ? plot_heatmap(&a, o.f) : plot_runs(&a, o.f);
    svg_end(o.f);
    if (rc) {
        rt_out_abort(&o);
        return 1;
    }
    if (!rt_out_commit(&o, err, sizeof err)) {
        fprintf(stderr, "dflow plot: %s\n", err);
        return 1;
    }
    return 0;
}
