/* The module executor: runs `init`, then `main`, statement by statement.
 *
 * Slot values live in Exec.vals for the duration of a run (exec_internal.h
 * explains ownership). HS_RUN gathers a graph's inputs from slots, runs it
 * through the GraphRunner and replaces the output slots; a runner with
 * run_reuse is offered the old output values and the inputs whose slots the
 * call overwrites, so a training step can run without allocating. Loops, branches and
 * `break` walk the structured host program; `log` rows go to metrics.csv
 * (runtime/metrics.c) and to the log stream; the training loop is in
 * exec_train.c. Interruption (Ctrl-C sets *interrupted) is checked between
 * statements and between steps: the run unwinds, keeps the files written so
 * far and reports "interrupted at step N". Every failure is a diagnostic at
 * the host statement's location; nothing here exits.
 *
 * Rows logged in `main` take as `step` the innermost host loop counter (none
 * outside loops). Paths given to `save` are relative to the output folder
 * when there is one (--out), else to the current directory. */
#include "exec_internal.h"
#include "oom.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/checked.h"
#include "../runtime/dataio.h"
#include "../runtime/grow.h"

/* ---- slots ---- */

static const char *slot_name(const Exec *x, int s) {
    const char *n = x->m->slots[s].name;
    return n ? n : "?";
}

void exec_set_slot(Exec *x, int s, RtTensor *t) {
    if (x->vals[s] && x->vals[s] != t && x->owned[s]) rt_tensor_free(x->vals[s]);
    x->vals[s] = t;
    x->owned[s] = true;
}

static bool valid_slot(Exec *x, int s, SrcLoc loc) {
    if (s >= 0 && s < x->m->nslots) return true;
    diag_error(x->d, loc, "internal: slot index %d out of range (module has %d slots)", s,
               x->m->nslots);
    return false;
}

bool exec_set_int(Exec *x, int s, int64_t v, SrcLoc loc) {
    if (!valid_slot(x, s, loc)) return false;
    const Slot *sl = &x->m->slots[s];
    RtTensor *t = x->vals[s];
    DType dt = sl->dtype == DT_I32 ? DT_I32 : DT_I64;
    if (!t || !x->owned[s] || t->dtype != dt || rt_shape_numel(&t->shape) != 1) {
        t = rt_tensor_new(dt, rt_shape_scalar());
        if (!t) {
            diag_error(x->d, loc, "out of memory");
            return false;
        }
        exec_set_slot(x, s, t);
    }
    rt_tensor_set_i64(t, 0, v);
    return true;
}

static const RtTensor *read_slot(Exec *x, int s, SrcLoc loc) {
    if (!valid_slot(x, s, loc)) return NULL;
    if (!x->vals[s]) {
        diag_error(x->d, loc, "internal: slot %s read before it was written", slot_name(x, s));
        return NULL;
    }
    return x->vals[s];
}

static void type_str(DType dt, const Shape *s, char *buf, size_t n) {
    char sh[128];
    snprintf(buf, n, "%s%s", rt_dtype_name(dt), rt_shape_str(s, sh, sizeof sh));
}

bool exec_read_scalar(Exec *x, int s, SrcLoc loc, const char *what, double *v) {
    const RtTensor *t = read_slot(x, s, loc);
    if (!t) return false;
    if (rt_shape_numel(&t->shape) != 1) {
        char ty[160];
        type_str(t->dtype, &t->shape, ty, sizeof ty);
        diag_error(x->d, loc, "%s: '%s' must be a scalar, got %s", what, slot_name(x, s), ty);
        return false;
    }
    *v = rt_tensor_get_f64(t, 0);
    return true;
}

bool exec_interrupted(Exec *x) {
    return x->o->interrupted && *x->o->interrupted;
}

/* ---- output ---- */

void exec_logf(Exec *x, const char *fmt, ...) {
    FILE *f = x->o->log;
    if (!f) return;
    rt_progress_clear(x->progress);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fflush(f);
}

static void fmt_value(char *buf, size_t n, double v) {
    if (isnan(v))
        snprintf(buf, n, "nan");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else
        snprintf(buf, n, "%.6g", v);
}

bool exec_emit_row(Exec *x, SrcLoc loc, int64_t step, int n, const char *const *names,
                   const double *vals, bool print, bool hide_loss) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "step") == 0 || strcmp(names[i], "time_s") == 0) {
            diag_error(x->d, loc,
                       "log: '%s' is a reserved metrics column; log it under another name",
                       names[i]);
            return false;
        }
    if (print && x->o->log && n > 0) {
        char line[4096];
        size_t k = 0;
        line[0] = '\0';
        if (step >= 0) k += (size_t)snprintf(line, sizeof line, "step %lld: ", (long long)step);
        bool first = true;
        for (int i = 0; i < n && k < sizeof line; i++) {
            /* the loss of a training row is on the progress line already */
            if (hide_loss && strcmp(names[i], "loss") == 0) continue;
            char v[64];
            fmt_value(v, sizeof v, vals[i]);
            k += (size_t)snprintf(line + k, sizeof line - k, "%s%s = %s", first ? "" : ", ",
                                  names[i], v);
            first = false;
        }
        if (!first) exec_logf(x, "%s\n", line);
    }
    /* a metrics file that cannot be written ends the run (exit 1), keeping
       the rows written so far: never a "completed" run with rows missing */
    char err[512];
    if (!rt_metrics_row(x->metrics, step, n, names, vals, rt_now_s() - x->t0, err, sizeof err)) {
        diag_error(x->d, loc, "metrics: %s", err);
        return false;
    }
    return true;
}

/* numpy-like text for `print`: nested brackets, long axes summarised. */
static void print_elem(FILE *f, const RtTensor *t, int64_t i) {
    if (t->dtype == DT_BOOL)
        fputs(rt_tensor_get_i64(t, i) ? "true" : "false", f);
    else if (rt_dtype_is_int(t->dtype))
        fprintf(f, "%lld", (long long)rt_tensor_get_i64(t, i));
    else {
        char v[64];
        fmt_value(v, sizeof v, rt_tensor_get_f64(t, i));
        fputs(v, f);
    }
}

#define PRINT_EDGE 3

static void print_axis(FILE *f, const RtTensor *t, int axis, int64_t base, bool summarise) {
    const Shape *s = &t->shape;
    int64_t stride = 1;
    for (int a = axis + 1; a < s->rank; a++)
        stride *= s->dims[a];
    int64_t n = s->dims[axis];
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (summarise && n > 2 * PRINT_EDGE && i == PRINT_EDGE) {
            fputs(axis == s->rank - 1 ? ", ..." : ",\n ...", f);
            i = n - PRINT_EDGE - 1;
            continue;
        }
        if (i > 0) fputs(axis == s->rank - 1 ? ", " : ",\n ", f);
        if (axis == s->rank - 1)
            print_elem(f, t, base + i);
        else
            print_axis(f, t, axis + 1, base + i * stride, summarise);
    }
    fputc(']', f);
}

static void print_tensor(FILE *f, const RtTensor *t) {
    if (t->shape.rank == 0) {
        print_elem(f, t, 0);
        return;
    }
    int64_t n = rt_shape_numel(&t->shape);
    if (n == 0) {
        char ty[160];
        type_str(t->dtype, &t->shape, ty, sizeof ty);
        fprintf(f, "[] (%s)", ty);
        return;
    }
    print_axis(f, t, 0, 0, n > 1000);
}

/* `print a, "text", b`: items separated by a space, like Python's print. */
static bool exec_print(Exec *x, const HostStmt *st) {
    FILE *f = x->o->log;
    const char **texts = st->u.print.texts;
    for (int i = 0; i < st->u.print.n; i++)
        if (!(texts && texts[i]) && !read_slot(x, st->u.print.slots[i], st->loc)) return false;
    if (!f) return true;
    rt_progress_clear(x->progress);
    for (int i = 0; i < st->u.print.n; i++) {
        if (i) fputc(' ', f);
        if (texts && texts[i])
            fputs(texts[i], f);
        else
            print_tensor(f, x->vals[st->u.print.slots[i]]);
    }
    fputc('\n', f);
    fflush(f);
    return true;
}

static bool exec_save(Exec *x, const HostStmt *st) {
    const RtTensor *t = read_slot(x, st->u.save.slot, st->loc);
    if (!t) return false;
    const char *rel = st->u.save.path ? st->u.save.path : "";
    const char *dir = x->o->out_dir;
    size_t n = strlen(rel) + (dir ? strlen(dir) : 0) + 2;
    char *path = malloc(n);
    if (!path) {
        diag_error(x->d, st->loc, "out of memory");
        return false;
    }
    if (dir && rel[0] != '/')
        snprintf(path, n, "%s/%s", dir, rel);
    else
        snprintf(path, n, "%s", rel);
    char err[512];
    bool ok = true;
    char *slash = strrchr(path, '/');
    if (slash && slash != path) {
        *slash = '\0';
        ok = rt_mkdir_p(path, err, sizeof err);
        *slash = '/';
    }
    if (ok) ok = rt_npy_write(path, t, err, sizeof err);
    if (!ok)
        diag_error(x->d, st->loc, "save: %s", err);
    else if (x->o->verbose)
        exec_logf(x, "saved %s\n", path);
    free(path);
    return ok;
}

/* ---- running graphs ---- */

/* For a runner with run_reuse: which inputs the call may overwrite (their
 * slots are written by an output and read by no other input) and which old
 * output values it may write into (owned, unique among the outputs, no
 * input, right type). */
static void offer_storage(Exec *x, const GraphCall *c, RtTensor *const *in, bool *donated,
                          RtTensor **out) {
    const Graph *g = c->graph;
    for (int i = 0; i < g->ninputs; i++) {
        int s = c->in_slots[i], uses = 0;
        bool written = false;
        for (int k = 0; k < g->ninputs; k++)
            uses += c->in_slots[k] == s;
        for (int j = 0; j < g->noutputs; j++)
            written = written || c->out_slots[j] == s;
        donated[i] = x->owned[s] && uses == 1 && written;
    }
    for (int j = 0; j < g->noutputs; j++) {
        int s = c->out_slots[j], uses = 0;
        RtTensor *t = x->vals[s];
        for (int k = 0; k < g->noutputs; k++)
            uses += c->out_slots[k] == s;
        bool input = false;
        for (int i = 0; i < g->ninputs && t; i++)
            input = input || in[i] == t;
        const Node *o = g->outputs[j];
        out[j] = t && x->owned[s] && uses == 1 && !input && t->dtype == o->dtype &&
                         rt_shape_eq(&t->shape, &o->shape)
                     ? t
                     : NULL;
    }
}

bool exec_run_call(Exec *x, const GraphCall *c, SrcLoc loc) {
    const Graph *g = c->graph;
    if (!g) return true;
    if (x->o->numerics) x->o->numerics->step = x->train_step >= 0 ? x->train_step : x->loop_step;
    RtTensor *inbuf[16], *outbuf[16], *offbuf[16];
    bool donbuf[16], claimbuf[16];
    RtTensor **in = g->ninputs <= 16 ? inbuf : malloc(sizeof *in * (size_t)g->ninputs);
    RtTensor **out = g->noutputs <= 16 ? outbuf : malloc(sizeof *out * (size_t)g->noutputs);
    RtTensor **offered = g->noutputs <= 16 ? offbuf : malloc(sizeof *out * (size_t)g->noutputs);
    bool *donated = g->ninputs <= 16 ? donbuf : malloc(sizeof(bool) * (size_t)g->ninputs);
    bool *claimed = g->ninputs <= 16 ? claimbuf : malloc(sizeof(bool) * (size_t)g->ninputs);
    bool ok = in && out && offered && donated && claimed;
    if (!ok) diag_error(x->d, loc, "out of memory");
    for (int i = 0; ok && i < g->ninputs; i++) {
        int s = c->in_slots[i];
        const RtTensor *t = read_slot(x, s, loc);
        if (!t) {
            ok = false;
            break;
        }
        const Node *inp = g->inputs[i];
        if (t->dtype != inp->dtype || !rt_shape_eq(&t->shape, &inp->shape)) {
            char have[160], want[160];
            type_str(t->dtype, &t->shape, have, sizeof have);
            type_str(inp->dtype, &inp->shape, want, sizeof want);
            diag_error(x->d, loc, "internal: slot %s holds %s but graph %s input %d expects %s",
                       slot_name(x, s), have, g->name ? g->name : "?", i, want);
            ok = false;
            break;
        }
        in[i] = x->vals[s];
        donated[i] = claimed[i] = false;
    }
    for (int j = 0; ok && j < g->noutputs; j++) {
        out[j] = offered[j] = NULL;
        if (!valid_slot(x, c->out_slots[j], loc)) ok = false;
    }
    bool reuse = x->o->runner.run_reuse != NULL;
    if (ok && reuse) {
        offer_storage(x, c, in, donated, offered);
        for (int j = 0; j < g->noutputs; j++)
            out[j] = offered[j];
    }
    if (ok)
        ok = reuse ? x->o->runner.run_reuse(x->o->runner.ctx, g, in, donated, out, x->d)
                   : x->o->runner.run(x->o->runner.ctx, g, in, out, x->d);
    if (ok) {
        /* Ownership stays single: an output may be its own offered tensor or
         * one donated input (once); clone defensively anything else that
         * aliases an input, an earlier output or another output's offer. */
        for (int j = 0; j < g->noutputs; j++) {
            bool alias = false;
            for (int i = 0; i < g->ninputs && !alias; i++) {
                if (out[j] != in[i]) continue;
                if (donated[i] && !claimed[i])
                    claimed[i] = true;
                else
                    alias = true;
            }
            for (int k = 0; k < j && !alias; k++)
                alias = out[j] == out[k];
            for (int k = 0; k < g->noutputs && !alias; k++)
                alias = k != j && offered[k] && out[j] == offered[k];
            if (alias) out[j] = rt_tensor_clone(out[j]);
            if (!out[j]) {
                const Node *o = g->outputs[j];
                ir_oom_value(x->d, o->loc, o->dtype, &o->shape, "a copy of an output", 0,
                             rt_tensor_live_bytes());
                for (int k = 0; k < g->noutputs; k++)
                    if (k != j && out[k] && out[k] != offered[k]) {
                        bool donor = false;
                        for (int i = 0; i < g->ninputs; i++)
                            donor = donor || out[k] == in[i];
                        if (!donor) rt_tensor_free(out[k]);
                    }
                ok = false;
                break;
            }
        }
    }
    if (ok) {
        /* a donated input returned as an output moves to that output's slot */
        for (int i = 0; i < g->ninputs; i++)
            if (claimed[i] && x->vals[c->in_slots[i]] == in[i]) x->vals[c->in_slots[i]] = NULL;
        for (int j = 0; j < g->noutputs; j++)
            exec_set_slot(x, c->out_slots[j], out[j]);
    }
    if (in != inbuf) free(in);
    if (out != outbuf) free(out);
    if (offered != offbuf) free(offered);
    if (donated != donbuf) free(donated);
    if (claimed != claimbuf) free(claimed);
    return ok;
}

/* ---- host statements ---- */

static bool block_has_train(const HostBlock *b) {
    for (int i = 0; i < b->n; i++) {
        const HostStmt *s = b->items[i];
        switch (s->op) {
        case HS_TRAIN:
            return true;
        case HS_FOR:
            if (block_has_train(&s->u.loop.body)) return true;
            break;
        case HS_WHILE:
            if (block_has_train(&s->u.whl.body)) return true;
            break;
        case HS_IF:
            if (block_has_train(&s->u.cond.then_b) || block_has_train(&s->u.cond.else_b))
                return true;
            break;
        case HS_RUN:
        case HS_BREAK:
        case HS_LOG:
        case HS_PRINT:
        case HS_SAVE:
            break; /* no block inside */
        }
    }
    return false;
}

static bool stop_here(Exec *x, int64_t step) {
    if (!exec_interrupted(x)) return false;
    if (!x->stopped) {
        x->stopped = true;
        x->stop_step = step;
    }
    return true;
}

/* A bound read at run time from slot (none when slot < 0): an integer that
 * fits in int64, else a located error (converting it would be undefined). */
static bool loop_bound(Exec *x, const HostStmt *st, int slot, int64_t *out) {
    double v;
    if (slot < 0) return true;
    if (!exec_read_scalar(x, slot, st->loc, "for", &v)) return false;
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) {
        diag_error(x->d, st->loc, "for: the bound %g is not an integer in the range of i64", v);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool exec_for(Exec *x, const HostStmt *st) {
    int64_t lo = st->u.loop.lo, hi = st->u.loop.hi, count;
    if (!loop_bound(x, st, st->u.loop.lo_slot, &lo) || !loop_bound(x, st, st->u.loop.hi_slot, &hi))
        return false;
    if (!ck_sub(hi, lo, &count)) {
        diag_error(x->d, st->loc, "for: the range %lld..%lld has more than 2^63 - 1 iterations",
                   (long long)lo, (long long)hi);
        return false;
    }
    /* The outermost loop of a program without training shows progress and
     * counts as the run's steps. */
    bool top = x->loop_depth == 0 && !x->in_every && !block_has_train(&st->u.loop.body);
    double t_start = rt_now_s();
    if (top && count > 0) rt_progress_begin(x->progress, NULL, count);
    int64_t saved_step = x->loop_step;
    x->loop_depth++;
    bool ok = true;
    for (int64_t i = lo; i < hi; i++) {
        if (stop_here(x, i)) break;
        if (st->u.loop.var_slot >= 0 && !exec_set_int(x, st->u.loop.var_slot, i, st->loc)) {
            ok = false;
            break;
        }
        x->loop_step = i;
        ok = exec_block(x, &st->u.loop.body);
        if (!ok || x->stopped) break;
        if (top) {
            x->loop_iters++;
            rt_progress_update(x->progress, i - lo + 1, NAN, false);
        }
        if (x->brk) {
            x->brk = false;
            break;
        }
    }
    x->loop_depth--;
    x->loop_step = saved_step;
    if (top) {
        x->loop_s += rt_now_s() - t_start;
        if (hi > lo) rt_progress_end(x->progress);
    }
    return ok;
}

static bool exec_while(Exec *x, const HostStmt *st) {
    int64_t saved_step = x->loop_step;
    x->loop_depth++;
    bool ok = true;
    for (int64_t i = 0;; i++) {
        if (stop_here(x, i)) break;
        if (!exec_run_call(x, &st->u.whl.cond, st->loc)) {
            ok = false;
            break;
        }
        double c;
        if (!exec_read_scalar(x, st->u.whl.cond_slot, st->loc, "while", &c)) {
            ok = false;
            break;
        }
        if (c == 0) break;
        x->loop_step = i;
        ok = exec_block(x, &st->u.whl.body);
        if (!ok || x->stopped) break;
        if (x->brk) {
            x->brk = false;
            break;
        }
    }
    x->loop_depth--;
    x->loop_step = saved_step;
    return ok;
}

/* One `log` statement: in an `every` block it adds to the pending row of the
 * step; elsewhere it is a row of its own. */
static bool exec_log(Exec *x, const HostStmt *st) {
    int n = st->u.log.n;
    double *vals = malloc(sizeof *vals * (size_t)(n > 0 ? n : 1));
    if (!vals) {
        diag_error(x->d, st->loc, "out of memory");
        return false;
    }
    for (int i = 0; i < n; i++)
        if (!exec_read_scalar(x, st->u.log.slots[i], st->loc, "log", &vals[i])) {
            free(vals);
            return false;
        }
    bool ok = true;
    if (x->in_every) {
        for (int i = 0; i < n && ok; i++) {
            int j = 0;
            while (j < x->npend && strcmp(x->pend_names[j], st->u.log.names[i]) != 0)
                j++;
            if (j == x->npend) {
                if (x->npend == x->cap_pend) { /* two parallel arrays, one capacity */
                    size_t cap, c = (size_t)x->cap_pend;
                    if (!rt_grow_cap(c, c + 1, 8, INT_MAX, &cap) ||
                        !rt_resize(&x->pend_names, c, cap) || !rt_resize(&x->pend_vals, c, cap)) {
                        diag_error(x->d, st->loc, "out of memory");
                        ok = false;
                        break;
                    }
                    x->cap_pend = (int)cap;
                }
                x->pend_names[x->npend++] = st->u.log.names[i];
            }
            x->pend_vals[j] = vals[i];
        }
    } else {
        ok = exec_emit_row(x, st->loc, x->loop_depth > 0 ? x->loop_step : -1, n, st->u.log.names,
                           vals, true, false);
    }
    free(vals);
    return ok;
}

static bool exec_stmt(Exec *x, const HostStmt *st) {
    switch (st->op) {
    case HS_RUN:
        return exec_run_call(x, &st->u.run, st->loc);
    case HS_FOR:
        return exec_for(x, st);
    case HS_WHILE:
        return exec_while(x, st);
    case HS_IF: {
        double c;
        if (!exec_read_scalar(x, st->u.cond.cond_slot, st->loc, "if", &c)) return false;
        return exec_block(x, c != 0 ? &st->u.cond.then_b : &st->u.cond.else_b);
    }
    case HS_BREAK:
        if (x->loop_depth == 0) {
            diag_error(x->d, st->loc, "'break' outside a loop");
            return false;
        }
        x->brk = true;
        return true;
    case HS_LOG:
        return exec_log(x, st);
    case HS_PRINT:
        return exec_print(x, st);
    case HS_SAVE:
        return exec_save(x, st);
    case HS_TRAIN:
        return exec_train(x, st);
    }
    diag_error(x->d, st->loc, "internal: unknown host statement %d", (int)st->op);
    return false;
}

bool exec_block(Exec *x, const HostBlock *b) {
    for (int i = 0; i < b->n; i++) {
        if (stop_here(x, x->loop_step)) return true;
        if (!exec_stmt(x, b->items[i])) return false;
        if (x->brk || x->stopped) return true;
    }
    return true;
}

/* ---- the whole run ---- */

static void summary_line(Exec *x, double wall) {
    char tail[600] = "";
    if (x->o->out_dir) snprintf(tail, sizeof tail, "; metrics in %s/", x->o->out_dir);
    int64_t steps = x->train_steps ? x->train_steps : x->loop_iters;
    double secs = x->train_steps ? x->train_s : x->loop_s;
    char loss[96] = "";
    if (x->have_loss) {
        char v[64];
        fmt_value(v, sizeof v, x->last_loss);
        snprintf(loss, sizeof loss, ", final loss %s", v);
    }
    if (steps > 0 && secs > 0) {
        double rate = (double)steps / secs;
        char r[64];
        if (rate >= 100)
            snprintf(r, sizeof r, "%.0f", rate);
        else
            snprintf(r, sizeof r, "%.3g", rate);
        exec_logf(x, "done: %lld steps in %.2f s (%s steps/s)%s%s\n", (long long)steps, wall, r,
                  loss, tail);
    } else
        exec_logf(x, "done in %.2f s%s%s\n", wall, loss, tail);
}

static void mark_repeated(const HostBlock *b, bool in_loop, double runs);

static void mark_call(const GraphCall *c, bool in_loop, double runs) {
    Graph *g = c->graph;
    if (!g) return;
    if (isnan(runs)) { /* the reset walk */
        g->runs = 0;
        return;
    }
    if (in_loop) g->repeated = true;
    g->once = !g->repeated; /* called outside loops only: a fixed, small number of runs */
    g->runs += runs;
}

/* A for loop's trip count when its bounds are constant. */
static double trips(const HostStmt *st) {
    if (st->u.loop.lo_slot >= 0 || st->u.loop.hi_slot >= 0) return IR_UNKNOWN_TRIPS;
    /* in double: a range of more than 2^63 is refused later, not here */
    return st->u.loop.hi > st->u.loop.lo ? (double)st->u.loop.hi - (double)st->u.loop.lo : 0;
}

static void mark_stmt(const HostStmt *st, bool in_loop, double runs) {
    switch (st->op) {
    case HS_RUN:
        mark_call(&st->u.run, in_loop, runs);
        break;
    case HS_FOR:
        mark_repeated(&st->u.loop.body, true, runs * trips(st));
        break;
    case HS_WHILE:
        mark_call(&st->u.whl.cond, true, runs * IR_UNKNOWN_TRIPS);
        mark_repeated(&st->u.whl.body, true, runs * IR_UNKNOWN_TRIPS);
        break;
    case HS_IF:
        mark_repeated(&st->u.cond.then_b, in_loop, runs);
        mark_repeated(&st->u.cond.else_b, in_loop, runs);
        break;
    case HS_TRAIN: {
        double steps = (double)st->u.train->steps;
        mark_call(&st->u.train->step, true, runs * steps);
        for (int i = 0; i < st->u.train->nevals; i++) {
            int64_t every = st->u.train->evals[i].every;
            mark_repeated(&st->u.train->evals[i].body, true,
                          runs * (every > 0 ? steps / (double)every : steps));
        }
        break;
    }
    case HS_BREAK:
    case HS_LOG:
    case HS_PRINT:
    case HS_SAVE:
        break; /* no graph call */
    }
}

/* Graph.repeated / Graph.once / Graph.runs from where the host program runs each graph. */
static void mark_repeated(const HostBlock *b, bool in_loop, double runs) {
    for (int i = 0; i < b->n; i++)
        mark_stmt(b->items[i], in_loop, runs);
}

void ir_mark_repeated(Module *m) {
    /* a module may be marked again (run twice): the counts start over */
    mark_repeated(&m->init, false, NAN);
    mark_repeated(&m->main, false, NAN);
    mark_repeated(&m->init, false, 1);
    mark_repeated(&m->main, false, 1);
}

bool ir_exec_module(Module *m, const ExecOptions *o) {
    ir_mark_repeated(m);
    Exec x;
    memset(&x, 0, sizeof x);
    x.m = m;
    x.o = o;
    x.d = m->diags;
    x.t0 = rt_now_s();
    x.loop_step = -1;
    x.train_step = -1;
    if (!o->runner.run) {
        diag_error(x.d, srcloc_none(), "internal: no graph runner");
        return false;
    }
    int ns = m->nslots > 0 ? m->nslots : 1;
    x.vals = calloc((size_t)ns, sizeof *x.vals);
    x.owned = calloc((size_t)ns, sizeof *x.owned);
    char err[512];
    x.metrics = rt_metrics_new(o->out_dir, err, sizeof err);
    x.progress = rt_progress_new(stderr, o->progress);
    bool ok = x.vals && x.owned && x.metrics && x.progress;
    if (!ok) {
        if (!x.metrics)
            diag_error(x.d, srcloc_none(), "--out: %s", err);
        else
            diag_error(x.d, srcloc_none(), "out of memory");
    }
    for (int s = 0; ok && s < m->nslots; s++) {
        if (m->slots[s].kind == SLOT_DATA || m->slots[s].kind == SLOT_CONFIG) {
            x.vals[s] = m->slots[s].value; /* borrowed from the module: never written nor donated */
        } else if (m->slots[s].kind == SLOT_SEED) {
            RtTensor *t =
                rt_tensor_new(m->slots[s].dtype == DT_I32 ? DT_I32 : DT_I64, rt_shape_scalar());
            if (!t) {
                diag_error(x.d, srcloc_none(), "out of memory");
                ok = false;
                break;
            }
            rt_tensor_set_i64(t, 0, (int64_t)o->seed);
            exec_set_slot(&x, s, t);
        }
    }
    if (ok) ok = exec_block(&x, &m->init);
    if (ok && !x.stopped) ok = exec_block(&x, &m->main);
    rt_progress_clear(x.progress);

    double wall = rt_now_s() - x.t0;
    if (x.stopped) {
        if (x.stop_step >= 0)
            diag_warning(x.d, srcloc_none(),
                         "interrupted at step %lld; the files written so far are kept",
                         (long long)x.stop_step);
        else
            diag_warning(x.d, srcloc_none(), "interrupted; the files written so far are kept");
    }
    if (x.metrics) {
        RtRunSummary s = {
            .program = o->program,
            .seed = o->seed,
            .rng = "philox4x32-10/v2",
            .backend = o->runner.name,
            .status = x.stopped ? "interrupted"
                      : ok      ? "completed"
                                : "failed",
            .steps = x.train_steps ? x.train_steps : x.loop_iters,
            .wall_s = wall,
            .train_s = x.train_steps ? x.train_s : x.loop_s,
        };
        if (!rt_metrics_write_summary(x.metrics, &s, err, sizeof err)) {
            diag_error(x.d, srcloc_none(), "summary: %s", err);
            ok = false;
        }
    }
    if (ok && !x.stopped) summary_line(&x, wall);

    for (int s = 0; x.vals && s < m->nslots; s++)
        if (x.owned[s] && x.vals[s]) rt_tensor_free(x.vals[s]);
    free(x.vals);
    free(x.owned);
    free(x.pend_names);
    free(x.pend_vals);
    rt_metrics_free(x.metrics);
    rt_progress_free(x.progress);
    return ok && !x.stopped;
}

bool ir_check_graph_inputs(const Graph *g, RtTensor *const *in, DiagList *d) {
    bool ok = true;
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        const RtTensor *t = in ? in[i] : NULL;
        if (t && t->dtype == n->dtype && rt_shape_eq(&t->shape, &n->shape)) continue;
        char want[80], got[80];
        rt_shape_str(&n->shape, want, sizeof want);
        if (t) rt_shape_str(&t->shape, got, sizeof got);
        diag_error(d, n->loc, "input #%d%s%s%s: expected %s%s, got %s%s", i, n->name ? " (" : "",
                   n->name ? n->name : "", n->name ? ")" : "", rt_dtype_name(n->dtype), want,
                   t ? rt_dtype_name(t->dtype) : "nothing", t ? got : "");
        ok = false;
    }
    return ok;
}
