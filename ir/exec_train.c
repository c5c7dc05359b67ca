/* The training loop of a `train` block (HS_TRAIN with a TrainSpec).
 *
 * Each step: fill the batch slots with `batch` rows of the data set, set the
 * step slot t (from 0), run the step graph (it updates params and optimizer
 * state and writes the loss), check the loss is finite, then run every
 * `every N` body after steps whose count (t + 1) is a multiple of N.
 *
 * Minibatches. An epoch is floor(rows / batch) steps; the rows left over at
 * the end of an epoch's order are skipped (the next epoch starts afresh), so
 * every batch has the static shape the step graph was compiled for. With
 * shuffle on, epoch e visits the rows in the order of a Fisher-Yates shuffle
 * driven by Philox (runtime/rng.h): start from the identity; for
 * i = rows-1 down to 1, with w = rt_rng_word(seed, stream, e*rows + rows-1-i),
 * swap perm[i] with perm[(w * (i+1)) >> 32]. The stream is
 * rt_fnv1a32("shuffle:" + train name), so the order is a pure function of
 * (run seed, train name, epoch): the same seed gives the same batches on any
 * backend, and one epoch's order can be regenerated without the others.
 * With shuffle off, rows are taken in file order.
 *
 * Metrics. "step N" is the number of steps done (1-based). After a step at
 * which `every` blocks fire, their `log` values and the step's loss make one
 * row. The loss alone is also recorded every K steps (K from 1, 2, 5, 10,
 * 20, 50, ... so that a run has at most ~200 such rows) and at the last
 * step, so metrics.csv always holds a loss curve. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/rng.h"
#include "exec_internal.h"
#include "oom.h"

#define LOSS_ROWS 200

void exec_shuffle(int64_t *perm, int64_t rows, uint64_t seed, uint32_t stream, int64_t epoch) {
    for (int64_t i = 0; i < rows; i++)
        perm[i] = i;
    uint64_t base = (uint64_t)epoch * (uint64_t)rows;
    for (int64_t i = rows - 1; i >= 1; i--) {
        uint32_t w = rt_rng_word(seed, stream, base + (uint64_t)(rows - 1 - i));
        int64_t j = (int64_t)(((uint64_t)w * (uint64_t)(i + 1)) >> 32);
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

static int64_t loss_cadence(int64_t steps) {
    static const int64_t mant[3] = {1, 2, 5};
    for (int64_t scale = 1;; scale *= 10)
        for (int i = 0; i < 3; i++) {
            int64_t k = mant[i] * scale;
            if (steps / k <= LOSS_ROWS || k > INT64_MAX / 100) return k;
        }
}

static uint32_t shuffle_stream(const char *name) {
    char buf[256];
    snprintf(buf, sizeof buf, "shuffle:%s", name ? name : "");
    return rt_fnv1a32(buf);
}

/* Checks the spec against the slots it names, so that a lowering mistake is
 * an internal diagnostic and not a wild memcpy. */
static bool check_spec(Exec *x, const HostStmt *st, int64_t *row_bytes) {
    const TrainSpec *ts = st->u.train;
    const char *name = ts->name ? ts->name : "?";
    if (ts->batch <= 0 || ts->rows <= 0) {
        diag_error(x->d, st->loc, "train %s: batch (%lld) and data rows (%lld) must be positive",
                   name, (long long)ts->batch, (long long)ts->rows);
        return false;
    }
    if (ts->steps < 0) {
        diag_error(x->d, st->loc, "internal: train %s: negative step count %lld", name,
                   (long long)ts->steps);
        return false;
    }
    if (ts->batch > ts->rows) {
        diag_error(x->d, st->loc, "train %s: batch %lld is larger than the data set (%lld rows)",
                   name, (long long)ts->batch, (long long)ts->rows);
        return false;
    }
    for (int f = 0; f < ts->nfields; f++) {
        int ds = ts->data_slots[f], bs = ts->batch_slots[f];
        const char *fname = ts->field_names && ts->field_names[f] ? ts->field_names[f] : "?";
        if (ds < 0 || ds >= x->m->nslots || bs < 0 || bs >= x->m->nslots) {
            diag_error(x->d, st->loc, "internal: train %s: field %s has no slot", name, fname);
            return false;
        }
        const RtTensor *t = x->vals[ds];
        if (!t) {
            diag_error(x->d, st->loc, "internal: train %s: data field %s has no value", name,
                       fname);
            return false;
        }
        const Slot *b = &x->m->slots[bs];
        bool ok = t->shape.rank >= 1 && t->shape.dims[0] == ts->rows && b->dtype == t->dtype &&
                  b->shape.rank == t->shape.rank && b->shape.dims[0] == ts->batch;
        for (int a = 1; ok && a < t->shape.rank; a++)
            ok = b->shape.dims[a] == t->shape.dims[a];
        if (!ok) {
            char ds_s[64], bs_s[64];
            diag_error(x->d, st->loc,
                       "internal: train %s: field %s: data %s%s does not match batch slot %s%s "
                       "(rows %lld, batch %lld)",
                       name, fname, rt_dtype_name(t->dtype),
                       rt_shape_str(&t->shape, ds_s, sizeof ds_s), rt_dtype_name(b->dtype),
                       rt_shape_str(&b->shape, bs_s, sizeof bs_s), (long long)ts->rows,
                       (long long)ts->batch);
            return false;
        }
        row_bytes[f] = (int64_t)rt_tensor_bytes(t) / ts->rows;
    }
    return true;
}

/* Copies the rows of batch k of the current epoch into the batch slots. */
static bool fill_batch(Exec *x, const TrainSpec *ts, const int64_t *perm, int64_t k,
                       const int64_t *row_bytes, SrcLoc loc) {
    for (int f = 0; f < ts->nfields; f++) {
        int bs = ts->batch_slots[f];
        const Slot *b = &x->m->slots[bs];
        RtTensor *dst = x->vals[bs];
        if (!dst || !x->owned[bs] || dst->dtype != b->dtype ||
            !rt_shape_eq(&dst->shape, &b->shape)) {
            dst = rt_tensor_new(b->dtype, b->shape);
            if (!dst) {
                ir_oom_value(x->d, loc, b->dtype, &b->shape, b->name ? b->name : "a batch", 0,
                             rt_tensor_live_bytes());
                return false;
            }
            exec_set_slot(x, bs, dst);
        }
        const char *src = x->vals[ts->data_slots[f]]->data;
        char *out = dst->data;
        size_t rb = (size_t)row_bytes[f];
        int64_t first = k * ts->batch;
        if (!perm) {
            memcpy(out, src + (size_t)first * rb, rb * (size_t)ts->batch);
            continue;
        }
        for (int64_t r = 0; r < ts->batch; r++)
            memcpy(out + (size_t)r * rb, src + (size_t)perm[first + r] * rb, rb);
    }
    return true;
}

/* Runs the `every` bodies due after `done` steps; collects their logs. */
static bool run_evals(Exec *x, const TrainSpec *ts, int64_t done, bool *fired) {
    *fired = false;
    x->npend = 0;
    for (int e = 0; e < ts->nevals; e++) {
        const TrainEvery *ev = &ts->evals[e];
        if (ev->every <= 0 || done % ev->every != 0) continue;
        *fired = true;
        x->in_every = true;
        int64_t saved = x->loop_step;
        x->loop_step = done;
        bool ok = exec_block(x, &ev->body);
        x->loop_step = saved;
        x->in_every = false;
        if (!ok) return false;
        if (x->stopped) return true;
    }
    return true;
}

bool exec_train(Exec *x, const HostStmt *st) {
    const TrainSpec *ts = st->u.train;
    if (!ts) {
        diag_error(x->d, st->loc, "internal: train statement without a spec");
        return false;
    }
    const char *name = ts->name ? ts->name : "train";
    int64_t *row_bytes = calloc((size_t)(ts->nfields > 0 ? ts->nfields : 1), sizeof *row_bytes);
    if (!row_bytes) {
        diag_error(x->d, st->loc, "out of memory");
        return false;
    }
    if (!check_spec(x, st, row_bytes)) {
        free(row_bytes);
        return false;
    }
    int64_t per_epoch = ts->rows / ts->batch;
    int64_t *perm = NULL;
    if (ts->shuffle) {
        perm = malloc(sizeof *perm * (size_t)ts->rows);
        if (!perm) {
            Shape ps = rt_shape_make(1, &ts->rows);
            ir_oom_value(x->d, st->loc, DT_I64, &ps, "the shuffle order", 0,
                         rt_tensor_live_bytes());
            free(row_bytes);
            return false;
        }
    }
    uint32_t stream = shuffle_stream(ts->name);
    int64_t cadence = loss_cadence(ts->steps);
    if (x->o->verbose && x->o->log)
        exec_logf(x, "train %s: %lld steps, batch %lld of %lld rows (%lld steps per epoch%s), %s\n",
                  name, (long long)ts->steps, (long long)ts->batch, (long long)ts->rows,
                  (long long)per_epoch,
                  ts->rows % ts->batch ? ", the last partial batch skipped" : "",
                  ts->shuffle ? "shuffled" : "in order");

    rt_progress_begin(x->progress, name, ts->steps);
    double t_start = rt_now_s();
    int64_t done = 0;
    bool ok = true;
    for (int64_t t = 0; t < ts->steps; t++) {
        if (exec_interrupted(x)) {
            x->stopped = true;
            x->stop_step = done;
            break;
        }
        int64_t epoch = t / per_epoch, k = t % per_epoch;
        if (perm && k == 0) exec_shuffle(perm, ts->rows, x->o->seed, stream, epoch);
        x->train_step = t + 1;
        if (!fill_batch(x, ts, perm, k, row_bytes, st->loc) ||
            !exec_set_int(x, ts->t_slot, t, st->loc) || !exec_run_call(x, &ts->step, st->loc)) {
            ok = false;
            break;
        }
        double loss;
        if (!exec_read_scalar(x, ts->loss_slot, st->loc, "loss", &loss)) {
            ok = false;
            break;
        }
        done = t + 1;
        x->train_steps++;
        x->last_loss = loss;
        x->have_loss = true;
        if (!isfinite(loss)) {
            rt_progress_clear(x->progress);
            diag_error(x->d, st->loc,
                       "train %s: loss is %s at step %lld (try a smaller learning rate)", name,
                       isnan(loss) ? "nan"
                       : loss > 0  ? "inf"
                                   : "-inf",
                       (long long)done);
            /* keep the diverging step in the record */
            const char *ln = "loss";
            exec_emit_row(x, st->loc, done, 1, &ln, &loss, false, true);
            ok = false;
            break;
        }
        rt_progress_update(x->progress, done, loss, done == ts->steps);
        bool fired;
        if (!run_evals(x, ts, done, &fired)) {
            ok = false;
            break;
        }
        if (fired || done % cadence == 0 || done == ts->steps) {
            /* the row: the logged values, then the loss */
            const char **names = malloc(sizeof *names * (size_t)(x->npend + 1));
            double *vals = malloc(sizeof *vals * (size_t)(x->npend + 1));
            if (!names || !vals) {
                free(names);
                free(vals);
                diag_error(x->d, st->loc, "out of memory");
                ok = false;
                break;
            }
            int n = 0;
            for (int i = 0; i < x->npend; i++) {
                names[n] = x->pend_names[i];
                vals[n++] = x->pend_vals[i];
            }
            names[n] = "loss";
            vals[n++] = loss;
            bool print = x->npend > 0 || (x->o->verbose && fired);
            ok = exec_emit_row(x, st->loc, done, n, names, vals, print, !x->o->verbose);
            free(names);
            free(vals);
            x->npend = 0;
            if (!ok) break;
        }
        if (x->stopped) break;
    }
    x->train_step = -1;
    x->train_s += rt_now_s() - t_start;
    if (ok && !x->stopped)
        rt_progress_end(x->progress);
    else
        rt_progress_clear(x->progress);
    free(perm);
    free(row_bytes);
    return ok;
}
