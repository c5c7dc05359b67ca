/* State shared by the executor's files: exec.c (the host program) and
 * exec_train.c (the training loop). Internal to ir/; not a contract.
 *
 * Slot values: vals[s] is the current RtTensor of slot s; owned[s] says the
 * executor frees it when it is replaced or at the end (DATA and CONFIG slots
 * start out borrowing Slot.value, which the module owns). A metrics row under
 * construction (`pend_*`) collects the `log` values of the `every` blocks
 * that fire after one training step, so they land in one CSV row together
 * with that step's loss. */
#ifndef DFLOW_IR_EXEC_INTERNAL_H
#define DFLOW_IR_EXEC_INTERNAL_H

#include "../runtime/metrics.h"
#include "../runtime/progress.h"
#include "exec.h"

typedef struct Exec {
    Module *m;
    const ExecOptions *o;
    DiagList *d;
    RtTensor **vals;
    bool *owned;
    RtMetrics *metrics;
    RtProgress *progress;
    double t0; /* run start (rt_now_s) */

    bool brk;          /* an HS_BREAK is unwinding to its loop */
    bool stopped;      /* interrupted: unwinding, not an error */
    int64_t stop_step; /* the train step (or loop iteration) where it stopped */

    /* the innermost host loop counter, the `step` of rows logged in main */
    int loop_depth;
    int64_t loop_step;
    int64_t train_step; /* the train step running (1-based), or -1 */

    /* collecting one row for the `every` blocks of a training step */
    bool in_every;
    int npend, cap_pend;
    const char **pend_names;
    double *pend_vals;

    /* totals for the summary */
    int64_t train_steps; /* optimizer steps in train blocks */
    double train_s;
    int64_t loop_iters; /* iterations of outermost main loops (programs without train) */
    double loop_s;
    double last_loss;
    bool have_loss;
} Exec;

/* exec.c */
bool exec_block(Exec *x, const HostBlock *b);
bool exec_run_call(Exec *x, const GraphCall *c, SrcLoc loc);
bool exec_interrupted(Exec *x);
/* Gives slot s the tensor t (the executor owns it now; the old value is freed). */
void exec_set_slot(Exec *x, int s, RtTensor *t);
/* Writes an integer into a scalar slot (reusing its tensor when it can). */
bool exec_set_int(Exec *x, int s, int64_t v, SrcLoc loc);
/* The single element of slot s as a double; false with a diagnostic when the
 * slot is unset or not a scalar. what: "log", "loss", ... for the message. */
bool exec_read_scalar(Exec *x, int s, SrcLoc loc, const char *what, double *v);
/* Emits one metrics row and, when print, prints it to the log stream
 * ("step 500: a = 1, b = 2"; hide_loss leaves a `loss` value out of the
 * printed line). step < 0: none. */
bool exec_emit_row(Exec *x, SrcLoc loc, int64_t step, int n, const char *const *names,
                   const double *vals, bool print, bool hide_loss);
/* Prints a line to the log stream, clearing the progress line first. */
void exec_logf(Exec *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* exec_train.c */
bool exec_train(Exec *x, const HostStmt *st);
/* The row permutation of one epoch: perm[0..rows) (documented in exec_train.c). */
void exec_shuffle(int64_t *perm, int64_t rows, uint64_t seed, uint32_t stream, int64_t epoch);

#endif
