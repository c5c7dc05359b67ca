/* Executes a Module: the host program, graph by graph, and training loops.
 *
 * A GraphRunner evaluates one graph (the reference interpreter by default;
 * compiled backends plug in here). The executor owns the slot values for the
 * duration of a run, fills minibatches (shuffled per epoch from the run seed
 * through Philox, never from a global generator), runs `every` blocks, writes
 * metrics.csv and summary.json into out_dir, and shows a one-line progress
 * display on stderr only when it is a terminal. A non-finite loss stops the
 * run with a diagnostic naming the train block and step. */
#ifndef DFLOW_IR_EXEC_H
#define DFLOW_IR_EXEC_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "module.h"

typedef struct GraphRunner {
    const char *name;
    void *ctx;
    /* Runs g on in[0..ninputs); out[j] receives a fresh tensor the caller owns. */
    bool (*run)(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out, DiagList *d);
    /* Optional (NULL: the executor calls run). Like run, but lets the runner
     * reuse storage the executor is about to drop, so a training step needs
     * no allocation:
     *  - on entry out[j] is NULL or a tensor of output j's dtype and shape
     *    (the old value of its slot, which no input aliases) that the runner
     *    may overwrite and return as out[j];
     *  - donated[i] says the executor drops in[i] after the call (its slot is
     *    written by an output and feeds no other input): the runner may
     *    overwrite its data and return in[i] itself as one output.
     * On success each out[j] is its offered tensor, a donated input, or a
     * fresh tensor the executor takes over; offered tensors not returned stay
     * the executor's. On failure every out[j] is NULL (and donated inputs may
     * have been overwritten). */
    bool (*run_reuse)(void *ctx, const Graph *g, RtTensor *const *in, const bool *donated,
                      RtTensor **out, DiagList *d);
} GraphRunner;

/* --check-numerics (numerics.h): shared by the executor, which keeps step
 * current, and the runners, which scan every value an op computes. */
typedef struct NumericsCheck {
    int64_t step; /* the train step (1-based, as in metrics.csv) or the
                     innermost main loop counter; -1 outside loops */
} NumericsCheck;

GraphRunner ir_interp_runner(void);
/* The interpreter, failing at the first NaN or Inf an op computes (c kept). */
GraphRunner ir_interp_runner_checked(NumericsCheck *c);

/* For runners: true when in[i] has graph input i's dtype and shape for
 * every i; else a diagnostic per mismatch at the input's location. */
bool ir_check_graph_inputs(const Graph *g, RtTensor *const *in, DiagList *d);

typedef struct {
    const char *program; /* the program's path, for summary.json (may be NULL) */
    uint64_t seed;       /* --seed */
    const char *out_dir; /* --out; NULL = write nothing */
    bool progress;       /* show the progress line (caller checks isatty) */
    bool verbose;
    FILE *log;                          /* where `log` and `print` lines go (stdout) */
    volatile sig_atomic_t *interrupted; /* set by a SIGINT handler: stop cleanly */
    GraphRunner runner;
    NumericsCheck *numerics; /* --check-numerics: the runner's check, kept current */
} ExecOptions;

/* Sets Graph.repeated on every graph the host program runs in a loop (a for
 * or while body, a train step, an `every` block), Graph.once on those it
 * runs only outside loops and Graph.runs to how often it expects each to
 * run; ir_exec_module calls it. */
void ir_mark_repeated(Module *m);

/* Runs init then main. Returns false with diagnostics on a run-time error or
 * an interruption (the metrics written so far are kept). */
bool ir_exec_module(Module *m, const ExecOptions *o);

#endif
