/* The one-line progress display (see progress.h).
 *
 * Each draw writes "\r", the line, and ESC[K (erase to end of line) so a
 * shorter line never leaves the tail of a longer one behind. The rate is
 * measured over the whole phase (steps done / seconds since begin), which is
 * steadier than an instantaneous rate and good enough for an ETA. Drawing is
 * throttled to one every 0.1 s by a monotonic clock read on each update. */
#include "runtime/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REDRAW_S 0.1

struct RtProgress {
    FILE *out;
    bool enabled;
    bool shown; /* a progress line is on the screen now */
    char label[64];
    int64_t total, step;
    int64_t drawn_step; /* the step shown by the last draw */
    double loss;
    double t0, last_draw;
};

double rt_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

RtProgress *rt_progress_new(FILE *out, bool enabled) {
    RtProgress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = out;
    p->enabled = enabled && out != NULL;
    p->loss = NAN;
    return p;
}

void rt_progress_free(RtProgress *p) {
    if (!p) return;
    rt_progress_clear(p);
    free(p);
}

void rt_progress_begin(RtProgress *p, const char *label, int64_t total) {
    if (!p) return;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->step = 0;
    p->loss = NAN;
    p->t0 = rt_now_s();
    p->last_draw = 0;
}

/* "2s", "3m05s", "1h02m" */
static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60)
        snprintf(buf, n, "%lds", t);
    else if (t < 3600)
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
}

/* Appends to buf at *k, never past n; a full buffer just truncates the line.
 * A function rather than a macro so gcc's truncation analysis stays quiet. */
static void put(char *buf, size_t n, size_t *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t n, size_t *k, const char *fmt, ...) {
    if (*k + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *k, n - *k, fmt, ap);
    va_end(ap);
    if (w > 0) *k += (size_t)w < n - *k ? (size_t)w : n - *k - 1;
}

char *rt_progress_format(char *buf, size_t n, const char *label, int64_t step, int64_t total,
                         double loss, double rate) {
    size_t k = 0;
    buf[0] = '\0';
    if (label && label[0]) put(buf, n, &k, "%s  ", label);
    if (total > 0)
        put(buf, n, &k, "step %lld/%lld", (long long)step, (long long)total);
    else
        put(buf, n, &k, "step %lld", (long long)step);
    if (!isnan(loss)) put(buf, n, &k, "  loss %.4g", loss);
    if (rate > 0 && isfinite(rate)) {
        if (rate >= 100)
            put(buf, n, &k, "  %.0f steps/s", rate);
        else
            put(buf, n, &k, "  %.3g steps/s", rate);
        if (total > 0 && step < total) {
            char eta[32];
            fmt_eta(eta, sizeof eta, (double)(total - step) / rate);
            put(buf, n, &k, "  ETA %s", eta);
        }
    }
    return buf;
}

static void draw(RtProgress *p, double now) {
    double el = now - p->t0;
    double rate = el > 0 && p->step > 0 ? (double)p->step / el : NAN;
    char line[256];
    rt_progress_format(line, sizeof line, p->label, p->step, p->total, p->loss, rate);
    fprintf(p->out, "\r%s\x1b[K", line);
    fflush(p->out);
    p->shown = true;
    p->drawn_step = p->step;
    p->last_draw = now;
}

void rt_progress_update(RtProgress *p, int64_t step, double loss, bool force) {
    if (!p) return;
    p->step = step;
    p->loss = loss;
    if (!p->enabled) return;
    double now = rt_now_s();
    if (force || now - p->last_draw >= REDRAW_S) draw(p, now);
}

void rt_progress_clear(RtProgress *p) {
    if (!p || !p->enabled || !p->shown) return;
    fputs("\r\x1b[K", p->out);
    fflush(p->out);
    p->shown = false;
    p->last_draw = 0; /* redraw at the next update */
}

void rt_progress_end(RtProgress *p) {
    if (!p || !p->enabled) return;
    if (!p->shown || p->drawn_step != p->step) draw(p, rt_now_s());
    fputc('\n', p->out);
    fflush(p->out);
    p->shown = false;
}
