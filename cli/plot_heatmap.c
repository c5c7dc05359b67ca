/* Heat maps for `dflow plot --heatmap` (plot.h): a rank-2 tensor (rank 1:
 * one row) as square cells coloured by viridis between its smallest and
 * largest finite value (NaN and inf cells white), with a colour bar; a side
 * longer than MAX_CELLS cells is averaged in blocks, said under the map. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "plot.h"
#include "runtime/dataio.h"
#include "svg.h"

#define H 440
#define MAX_CELLS 200

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

int plot_heatmap(const PlotArgs *a, FILE *f) {
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
    svg_begin(f, PLOT_W, H);
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
    double aw = PLOT_W - PLOT_ML - PLOT_MR, ah = H - PLOT_MT - PLOT_MB, cw = aw / (double)nc,
           ch = ah / (double)nr;
    if (cw > ch)
        cw = ch; /* square cells */
    else
        ch = cw;
    char buf[64];
    if (a->title) svg_text(f, PLOT_ML + aw / 2, 24, a->title, 16, "middle", 0);
    svg_crisp_begin(f);
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < nc; j++) {
            double v = cell[i * nc + j];
            if (isfinite(v))
                colour(hi > lo ? (v - lo) / (hi - lo) : 0.5, buf, sizeof buf);
            else
                snprintf(buf, sizeof buf, "#ffffff");
            svg_rect(f, PLOT_ML + (double)j * cw, PLOT_MT + (double)i * ch, cw, ch, buf, NULL);
        }
    svg_rect(f, PLOT_ML, PLOT_MT, (double)nc * cw, (double)nr * ch, "none", "#444444");
    snprintf(buf, sizeof buf, "%lld x %lld%s", (long long)rows, (long long)cols,
             br > 1 || bc > 1 ? " (block means)" : "");
    svg_text(f, PLOT_ML, PLOT_MT + (double)nr * ch + 20, buf, 12, "start", 0);
    for (int k = 0; k < 32; k++) { /* the colour bar */
        colour((31 - k) / 31.0, buf, sizeof buf);
        svg_rect(f, PLOT_W - PLOT_MR + 30, PLOT_MT + k * ah / 32, 18, ah / 32, buf, NULL);
    }
    svg_group_end(f);
    svg_rect(f, PLOT_W - PLOT_MR + 30, PLOT_MT, 18, ah, "none", "#444444");
    snprintf(buf, sizeof buf, "%g", hi);
    svg_text(f, PLOT_W - PLOT_MR + 54, PLOT_MT + 10, buf, 12, "start", 0);
    snprintf(buf, sizeof buf, "%g", lo);
    svg_text(f, PLOT_W - PLOT_MR + 54, PLOT_MT + ah, buf, 12, "start", 0);
    svg_end(f);
    free(cell);
    rt_tensor_free(t);
    return 0;
}
