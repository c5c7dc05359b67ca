/* Line plots for `dflow plot` (plot.h).
 *
 * Runs form groups: runs whose folder is named `seed=K` are grouped by the
 * folder above (the layout `dflow sweep` writes), `--band` puts every run
 * in one group, and any other run is a group of its own. A group of one run
 * is its line; a group of several is the mean over its runs at each x value
 * that any of them logged, with a band of +- one standard deviation (n - 1
 * in the denominator) where at least two runs have a value. Each (group, y
 * column) pair is one line, in one panel, or with --panels in the panel of
 * its column (then a group keeps one colour across panels). Ticks are 1-2-5
 * steps; on a log axis decades (with 2 and 5 between when it spans fewer
 * than three), and values <= 0 are left out. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "runtime/dataio.h"
#include "runtime/metrics.h"
#include "svg.h"

#define PANEL_H 400.0 /* a panel: its plot area and the x axis below it */

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

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

static int log_ticks(const Axis *ax, double *t, int max) {
    static const double fine[] = {1, 2, 5}, coarse[] = {1};
    double span = ax->hi - ax->lo;
    const double *m = span < 3 ? fine : coarse;
    int nm = span < 3 ? 3 : 1, n = 0, every = span > 12 ? (int)ceil(span / 12) : 1;
    for (double d = floor(ax->lo); d <= ceil(ax->hi) && n < max; d += every)
        for (int k = 0; k < nm && n < max; k++) {
            double v = d + log10(m[k]);
            if (v >= ax->lo - 1e-9 && v <= ax->hi + 1e-9) t[n++] = m[k] * pow(10, d);
        }
    return n;
}

static int ticks(const Axis *ax, double *t, int max) {
    if (ax->log) return log_ticks(ax, t, max);
    double span = ax->hi - ax->lo;
    double step = pow(10, floor(log10(span / 5)));
    if (span / step > 10) step *= 2;
    if (span / step > 10) step *= 2.5;
    int n = 0;
    for (double v = ceil(ax->lo / step) * step; v <= ax->hi + step * 1e-9 && n < max; v += step)
        t[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

/* The frame, grid, ticks and labels of the plot area [top, bottom]. */
static void draw_axes(FILE *f, const Axis *x, const Axis *y, double top, double bottom,
                      const char *xl, const char *yl) {
    double t[32], right = PLOT_W - PLOT_MR;
    char buf[64];
    svg_rect(f, PLOT_ML, top, right - PLOT_ML, bottom - top, "none", "#444444");
    int n = ticks(x, t, 32);
    for (int i = 0; i < n; i++) {
        double px = to_px(x, t[i]);
        svg_line(f, px, bottom, px, bottom + 5, "#444444", 1);
        svg_line(f, px, top, px, bottom, "#e6e6e6", 1);
        snprintf(buf, sizeof buf, "%g", t[i]);
        svg_text(f, px, bottom + 19, buf, 12, "middle", 0);
    }
    n = ticks(y, t, 32);
    for (int i = 0; i < n; i++) {
        double py = to_px(y, t[i]);
        svg_line(f, PLOT_ML - 5, py, PLOT_ML, py, "#444444", 1);
        svg_line(f, PLOT_ML, py, right, py, "#e6e6e6", 1);
        snprintf(buf, sizeof buf, "%g", t[i]);
        svg_text(f, PLOT_ML - 8, py + 4, buf, 12, "end", 0);
    }
    svg_text(f, PLOT_ML + (right - PLOT_ML) / 2, bottom + 42, xl, 14, "middle", 0);
    svg_text(f, 20, top + (bottom - top) / 2, yl, 14, "middle", -90);
}

/* ---- data ---- */

typedef struct {
    double *x, *y, *lo, *hi; /* lo, hi: the band, NULL for a single run */
    int n, col, group;       /* col: index into PlotArgs.ys */
    char *label;
} Line;

static bool usable(double v, bool log) {
    return isfinite(v) && (!log || v > 0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The line of one group and column: one run's points, or the mean and
 * band of several. */
static bool group_line(const PlotArgs *a, RtMetrics *const *ms, const int *runs, int nr, int col,
                       Line *l) {
    size_t cap = 1;
    for (int r = 0; r < nr; r++)
        cap += (size_t)rt_metrics_nrows(ms[runs[r]]);
    double *xs = malloc(sizeof(double) * cap);
    l->x = malloc(sizeof(double) * cap);
    l->y = malloc(sizeof(double) * cap);
    l->lo = nr > 1 ? malloc(sizeof(double) * cap) : NULL;
    l->hi = nr > 1 ? malloc(sizeof(double) * cap) : NULL;
    l->n = 0;
    if (!xs || !l->x || !l->y || (nr > 1 && (!l->lo || !l->hi))) {
        free(xs);
        return false;
    }
    size_t nx = 0;
    for (int r = 0; r < nr; r++)
        for (int i = 0; i < rt_metrics_nrows(ms[runs[r]]); i++) {
            double xv, yv;
            if (rt_metrics_get(ms[runs[r]], i, a->x, &xv) &&
                rt_metrics_get(ms[runs[r]], i, a->ys[col], &yv) && usable(xv, a->logx) &&
                usable(yv, a->logy))
                xs[nx++] = xv;
        }
    qsort(xs, nx, sizeof *xs, cmp_double);
    for (size_t i = 0; i < nx; i++) {
        if (i > 0 && xs[i] == xs[i - 1]) continue;
        double s = 0, s2 = 0;
        int k = 0;
        for (int r = 0; r < nr; r++) /* the first row of each run at this x */
            for (int j = 0; j < rt_metrics_nrows(ms[runs[r]]); j++) {
                double xv, yv;
                if (rt_metrics_get(ms[runs[r]], j, a->x, &xv) && xv == xs[i] &&
                    rt_metrics_get(ms[runs[r]], j, a->ys[col], &yv) && usable(yv, a->logy)) {
                    s += yv;
                    s2 += yv * yv;
                    k++;
                    break;
                }
            }
        double mean = s / k, sd = k > 1 ? sqrt(fmax(0, (s2 - s * mean) / (k - 1))) : 0;
        l->x[l->n] = xs[i];
        l->y[l->n] = mean;
        if (l->lo) {
            l->lo[l->n] = a->logy && mean - sd <= 0 ? mean * 1e-3 : mean - sd;
            l->hi[l->n] = mean + sd;
        }
        l->n++;
    }
    free(xs);
    return true;
}

/* Group ids of the runs (ids[r]) and each group's label; returns the count. */
static int make_groups(const PlotArgs *a, int *ids, char **labels) {
    int ng = 0;
    for (int r = 0; r < a->nruns; r++) {
        const char *p = a->runs[r], *slash = strrchr(p, '/');
        const char *base = slash ? slash + 1 : p;
        char parent[4096] = "";
        bool seeded = !a->band && !strncmp(base, "seed=", 5) && slash;
        if (seeded) snprintf(parent, sizeof parent, "%.*s", (int)(slash - p), p);
        /* a sweep's combination is named by its folder */
        const char *pslash = seeded ? strrchr(parent, '/') : NULL;
        const char *key = a->band ? "all runs" : seeded ? (pslash ? pslash + 1 : parent) : p;
        ids[r] = -1;
        for (int g = 0; g < ng; g++)
            if (!strcmp(labels[g], key)) ids[r] = g;
        if (ids[r] < 0) {
            labels[ng] = strdup(key);
            ids[r] = ng++;
        }
    }
    return ng;
}

/* ---- drawing ---- */

static void range(Axis *ax, const Line *ls, int nl, int col, bool x) {
    ax->lo = INFINITY;
    ax->hi = -INFINITY;
    for (int i = 0; i < nl; i++) {
        if (col >= 0 && ls[i].col != col) continue;
        for (int k = 0; k < ls[i].n; k++) {
            double v[3] = {x ? ls[i].x[k] : ls[i].y[k], 0, 0};
            int nv = 1;
            if (!x && ls[i].lo) {
                v[1] = ls[i].lo[k];
                v[2] = ls[i].hi[k];
                nv = 3;
            }
            for (int j = 0; j < nv; j++) {
                double t = ax->log ? log10(v[j]) : v[j];
                if (t < ax->lo) ax->lo = t;
                if (t > ax->hi) ax->hi = t;
            }
        }
    }
    widen(ax);
    if (!ax->log && !x) { /* a little air above and below the curves */
        double pad = 0.04 * (ax->hi - ax->lo);
        ax->lo -= pad;
        ax->hi += pad;
    }
}

static void draw_line(FILE *f, const Line *l, const Axis *x, const Axis *y, const char *c) {
    size_t n = (size_t)(l->n ? l->n : 1);
    double *px = malloc(sizeof(double) * 2 * n), *py = malloc(sizeof(double) * 2 * n);
    if (!px || !py) {
        free(px);
        free(py);
        return;
    }
    if (l->lo && l->n > 1) { /* the band: upper edge forward, lower edge back */
        for (int k = 0; k < l->n; k++) {
            px[k] = px[2 * l->n - 1 - k] = to_px(x, l->x[k]);
            py[k] = to_px(y, l->hi[k]);
            py[2 * l->n - 1 - k] = to_px(y, l->lo[k]);
        }
        svg_polygon(f, px, py, 2 * l->n, c, 0.2);
    }
    for (int k = 0; k < l->n; k++) {
        px[k] = to_px(x, l->x[k]);
        py[k] = to_px(y, l->y[k]);
    }
    if (l->n > 1) svg_polyline(f, px, py, l->n, c, 1.8);
    if (l->n == 1) svg_circle(f, px[0], py[0], 3, c);
    free(px);
    free(py);
}

static void legend(FILE *f, int i, const char *label, const char *c, bool band) {
    double ly = PLOT_MT + 10 + 20 * i, lx = PLOT_W - PLOT_MR;
    if (band) svg_rect(f, lx + 14, ly - 6, 24, 12, c, NULL);
    svg_line(f, lx + 14, ly, lx + 38, ly, band ? "#ffffff" : c, band ? 1.5 : 2.5);
    size_t n = strlen(label);
    char shortened[40];
    if (n > 18) { /* the end of a long path says most */
        snprintf(shortened, sizeof shortened, "...%s", label + n - 15);
        label = shortened;
    }
    svg_text(f, lx + 44, ly + 4, label, 12, "start", 0);
}

static void draw(FILE *f, const PlotArgs *a, const Line *ls, int nl) {
    int np = a->panels ? a->ny : 1;
    int height = (int)(PLOT_MT + np * PANEL_H);
    svg_begin(f, PLOT_W, height);
    if (a->title)
        svg_text(f, PLOT_ML + (PLOT_W - PLOT_MR - PLOT_ML) / 2, 24, a->title, 16, "middle", 0);
    Axis x = {.log = a->logx, .p0 = PLOT_ML, .p1 = PLOT_W - PLOT_MR};
    range(&x, ls, nl, -1, true);
    for (int p = 0; p < np; p++) {
        double top = PLOT_MT + p * PANEL_H, bottom = top + PANEL_H - PLOT_MB;
        Axis y = {.log = a->logy, .p0 = bottom, .p1 = top};
        range(&y, ls, nl, a->panels ? p : -1, false);
        char ylabel[256] = "";
        for (int i = 0; i < a->ny; i++)
            if (!a->panels || i == p)
                snprintf(ylabel + strlen(ylabel), sizeof ylabel - strlen(ylabel), "%s%s",
                         ylabel[0] ? ", " : "", a->ys[i]);
        draw_axes(f, &x, &y, top, bottom, a->x, ylabel);
        for (int i = 0; i < nl; i++)
            if (!a->panels || ls[i].col == p)
                draw_line(f, &ls[i], &x, &y, palette[(a->panels ? ls[i].group : i) % 10]);
    }
    int shown = 0;
    for (int i = 0; i < nl; i++)
        if (!a->panels || ls[i].col == 0)
            legend(f, shown++, ls[i].label, palette[(a->panels ? ls[i].group : i) % 10],
                   ls[i].lo != NULL);
    svg_end(f);
}

/* ---- a sweep's finals against one of its grid keys ---- */

/* Splits a summary.csv line in place (no quoting: dflow sweep writes none). */
static int split(char *line, char **cells, int max) {
    int n = 0;
    for (char *p = line; n < max;) {
        cells[n++] = p;
        p = strchr(p, ',');
        if (!p) break;
        *p++ = '\0';
    }
    return n;
}

/* The sweep in dir drawn as the mean +- std over seeds of each -y final
 * against -x, one of its grid keys: a line per combination of the other
 * keys. 0 ok, 1 error (printed), -1 when -x is not a grid key of dir. */
static int plot_summary(const PlotArgs *a, const char *dir, FILE *f) {
    char path[4200], err[512], *cells[64], *head[64];
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    unsigned char *text = NULL;
    size_t n = 0;
    if (!rt_read_file(path, &text, &n, err, sizeof err)) return -1;
    char *save = NULL, *line = strtok_r((char *)text, "\n", &save);
    int nh = line ? split(line, head, 64) : 0, nkeys = 0, xk = -1, yk[PLOT_MAX_Y];
    while (nkeys < nh && strcmp(head[nkeys], "seed"))
        nkeys++;
    for (int k = 0; k < nkeys; k++)
        if (!strcmp(head[k], a->x)) xk = k;
    if (xk < 0 || nkeys + 1 >= nh) {
        free(text);
        return -1;
    }
    for (int c = 0; c < a->ny; c++) {
        yk[c] = -1;
        for (int k = nkeys + 2; k < nh; k++)
            if (!strcmp(head[k], a->ys[c])) yk[c] = k;
        if (yk[c] < 0) {
            fprintf(stderr, "dflow plot: %s has no final '%s'\n", path, a->ys[c]);
            free(text);
            return 1;
        }
    }
    /* rows: the completed runs */
    char *(*rows)[64] = malloc(sizeof *rows * 4096);
    int nr = 0;
    if (!rows) {
        free(text);
        fprintf(stderr, "dflow plot: out of memory\n");
        return 1;
    }
    int bad = 0;
    for (line = strtok_r(NULL, "\n", &save); line && !bad; line = strtok_r(NULL, "\n", &save)) {
        if (split(line, cells, 64) != nh || nr == 4096) { /* a damaged or too long summary */
            bad = 1;
            break;
        }
        if (strcmp(cells[nkeys + 1], "completed")) continue; /* failed runs: not averaged */
        memcpy(rows[nr++], cells, sizeof(char *) * (size_t)nh);
    }
    Line ls[PLOT_MAX_RUNS];
    int nl = 0, rc = 0;
    if (bad) {
        fprintf(stderr, "dflow plot: %s: a row of another width, or more than 4096 rows\n", path);
        rc = 1;
    }
    char *glab[PLOT_MAX_RUNS];
    memset(ls, 0, sizeof ls);
    /* the groups: the values of the keys other than x */
    for (int r = 0; r < nr && rc == 0; r++) {
        char key[1024] = "";
        for (int k = 0; k < nkeys; k++)
            if (k != xk)
                snprintf(key + strlen(key), sizeof key - strlen(key), "%s%s=%s", key[0] ? "," : "",
                         head[k], rows[r][k]);
        int g = -1;
        for (int i = 0; i < nl / a->ny; i++)
            if (!strcmp(glab[i], key)) g = i;
        if (g >= 0) continue;
        if (nl + a->ny > PLOT_MAX_RUNS) { /* never a plot that leaves lines out */
            fprintf(stderr, "dflow plot: %s: more than %d lines (combinations x columns)\n", path,
                    PLOT_MAX_RUNS);
            rc = 1;
            break;
        }
        g = nl / a->ny;
        glab[g] = strdup(key);
        for (int c = 0; c < a->ny; c++) {
            Line *l = &ls[nl++];
            l->col = c;
            l->group = g;
            char lab[1100];
            if (key[0])
                snprintf(lab, sizeof lab, "%s%s%s", key, a->ny > 1 && !a->panels ? ": " : "",
                         a->ny > 1 && !a->panels ? a->ys[c] : "");
            else
                snprintf(lab, sizeof lab, "%s +- 1 std",
                         a->ny > 1 && !a->panels ? a->ys[c] : "mean");
            l->label = strdup(lab);
            l->x = malloc(sizeof(double) * (size_t)nr);
            l->y = malloc(sizeof(double) * (size_t)nr);
            l->lo = malloc(sizeof(double) * (size_t)nr);
            l->hi = malloc(sizeof(double) * (size_t)nr);
            if (!l->label || !l->x || !l->y || !l->lo || !l->hi) rc = 1;
            /* the distinct x values of this group, ascending, each the mean over its seeds */
            double xs[4096];
            int nx = 0;
            for (int q = 0; q < nr; q++) {
                bool same = true;
                for (int k = 0; k < nkeys; k++)
                    same = same && (k == xk || !strcmp(rows[q][k], rows[r][k]));
                if (same) xs[nx++] = strtod(rows[q][xk], NULL);
            }
            qsort(xs, (size_t)nx, sizeof *xs, cmp_double);
            for (int i = 0; rc == 0 && i < nx; i++) {
                if (i > 0 && xs[i] == xs[i - 1]) continue;
                double s = 0, d2 = 0;
                int k2 = 0;
                for (int pass = 0; pass < 2; pass++)
                    for (int q = 0; q < nr; q++) {
                        bool same = strtod(rows[q][xk], NULL) == xs[i];
                        for (int k = 0; k < nkeys; k++)
                            same = same && (k == xk || !strcmp(rows[q][k], rows[r][k]));
                        double v = same && rows[q][yk[c]][0] ? strtod(rows[q][yk[c]], NULL) : NAN;
                        if (!same || !usable(v, a->logy)) continue;
                        if (pass == 0) {
                            s += v;
                            k2++;
                        } else {
                            d2 += (v - s / k2) * (v - s / k2);
                        }
                    }
                if (k2 == 0 || !usable(xs[i], a->logx)) continue;
                double mean = s / k2, sd = k2 > 1 ? sqrt(d2 / (k2 - 1)) : 0;
                l->x[l->n] = xs[i];
                l->y[l->n] = mean;
                l->lo[l->n] = a->logy && mean - sd <= 0 ? mean * 1e-3 : mean - sd;
                l->hi[l->n] = mean + sd;
                l->n++;
            }
        }
    }
    bool any = false;
    for (int i = 0; i < nl; i++)
        any = any || ls[i].n > 0;
    if (rc == 0 && !any) {
        fprintf(stderr, "dflow plot: %s has no completed run with '%s'\n", path, a->ys[0]);
        rc = 1;
    }
    if (rc == 0) draw(f, a, ls, nl);
    for (int i = 0; i < nl; i++) {
        free(ls[i].x);
        free(ls[i].y);
        free(ls[i].lo);
        free(ls[i].hi);
        free(ls[i].label);
    }
    for (int g = 0; g < nl / (a->ny ? a->ny : 1); g++)
        free(glab[g]);
    free(rows);
    free(text);
    return rc;
}

int plot_lines(const PlotArgs *a, FILE *f) {
    for (int i = 0; i < a->nsweeps; i++) { /* -x a grid key: the sweep's finals */
        int rc =
            a->nsweeps == 1 && a->nruns == a->sweep_runs ? plot_summary(a, a->sweeps[i], f) : -1;
        if (rc >= 0) return rc;
    }
    RtMetrics *ms[PLOT_MAX_RUNS] = {0};
    Line ls[PLOT_MAX_RUNS * PLOT_MAX_Y];
    char *glabels[PLOT_MAX_RUNS] = {0};
    int ids[PLOT_MAX_RUNS], nl = 0, rc = 0, ng = 0;
    memset(ls, 0, sizeof ls);
    for (int r = 0; r < a->nruns && rc == 0; r++) {
        char buf[4096], err[512];
        size_t k = strlen(a->runs[r]);
        const char *path = a->runs[r];
        if (k < 4 || strcmp(path + k - 4, ".csv")) {
            snprintf(buf, sizeof buf, "%s/metrics.csv", path);
            path = buf;
        }
        ms[r] = rt_metrics_load(path, err, sizeof err);
        if (!ms[r]) {
            fprintf(stderr, "dflow plot: %s\n", err);
            rc = 1;
        }
    }
    if (rc == 0) ng = make_groups(a, ids, glabels);
    for (int g = 0; g < ng && rc == 0; g++) {
        int runs[PLOT_MAX_RUNS], nr = 0;
        for (int r = 0; r < a->nruns; r++)
            if (ids[r] == g) runs[nr++] = r;
        for (int c = 0; c < a->ny && rc == 0; c++) {
            Line *l = &ls[nl++];
            l->col = c;
            l->group = g;
            char buf[4200];
            snprintf(buf, sizeof buf, "%s%s%s", glabels[g], a->ny > 1 && !a->panels ? ": " : "",
                     a->ny > 1 && !a->panels ? a->ys[c] : "");
            if (nr > 1) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " (%d)", nr);
            l->label = strdup(buf);
            if (!l->label || !group_line(a, ms, runs, nr, c, l)) {
                fprintf(stderr, "dflow plot: out of memory\n");
                rc = 1;
            }
        }
    }
    for (int c = 0; c < a->ny && rc == 0; c++) {
        bool found = false;
        for (int i = 0; i < nl; i++)
            found = found || (ls[i].col == c && ls[i].n > 0);
        if (!found) {
            fprintf(stderr, "dflow plot: no run has rows with both '%s' and '%s'%s\n", a->x,
                    a->ys[c], a->logx || a->logy ? " (with positive values on the log axes)" : "");
            rc = 1;
        }
    }
    if (rc == 0) draw(f, a, ls, nl);
    for (int i = 0; i < nl; i++) {
        free(ls[i].x);
        free(ls[i].y);
        free(ls[i].lo);
        free(ls[i].hi);
        free(ls[i].label);
    }
    for (int g = 0; g < ng; g++)
        free(glabels[g]);
    for (int r = 0; r < a->nruns; r++)
        rt_metrics_free(ms[r]);
    return rc;
}
