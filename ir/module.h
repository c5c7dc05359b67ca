/* A compiled program: slots (host variables), graphs, and the host program
 * that sequences them.
 *
 * The graph IR has no control flow. A Module wraps graphs in a small
 * structured host program: run a graph (inputs read from slots, outputs
 * written to slots), loop, branch, log, print, save, and train (the training
 * loop of a `train` block, whose step is one graph). Slots hold RtTensors at
 * run time; DATA slots carry their value from compilation (loaded data,
 * constants), CONFIG slots the scalar config values graphs read. `init` runs
 * once before `main`: it initialises parameters and optimizer state.
 * Everything is allocated in the module's arena except the RtTensors of DATA
 * and CONFIG slots, which the module owns (ir_module_free). */
#ifndef DFLOW_IR_MODULE_H
#define DFLOW_IR_MODULE_H

#include "ir.h"

typedef enum {
    SLOT_VAR,    /* a program variable */
    SLOT_PARAM,  /* a trainable parameter; name is its path, e.g. mlp.linear0.W */
    SLOT_STATE,  /* optimizer state, e.g. mlp.linear0.W.v */
    SLOT_DATA,   /* a value fixed at compile time (loaded data, big constants) */
    SLOT_SEED,   /* the run seed (i64 scalar), set by the executor from --seed */
    SLOT_STEP,   /* a loop counter (i64 scalar), set by the executor */
    SLOT_CONFIG, /* a scalar `config` value of the main module, named config.<key>
                    (int: i64, float: f64, bool: bool); like DATA its value is set
                    at compile time and owned by the module, and the executor
                    only reads it, so a built program may replace it (--set) */
} SlotKind;

typedef struct {
    const char *name;
    SlotKind kind;
    DType dtype;
    Shape shape;
    RtTensor *value; /* DATA, CONFIG: set at compile time and owned by the module */
} Slot;

/* A `config` entry of the main module, in declaration order. Graphs read a
 * numeric or bool config through its SLOT_CONFIG slot whenever the frontend
 * used it only as a value; `runtime` says whether replacing that slot's value
 * after compilation gives the program the new value everywhere (it is false
 * for configs that decide shapes, loop bounds, train steps, data, or that were
 * folded at compile time). fe_compile fills the table with runtime false;
 * fe_mark_runtime_configs (frontend.h) decides it. */
typedef struct {
    const char *name;
    char type;             /* 'i', 'f', 'b', 's' */
    int slot;              /* SLOT_CONFIG slot, or -1 when no graph reads it */
    bool runtime;          /* can be changed after compilation */
    const char *value;     /* the compiled value as text, as --set would write it */
    bool baked;            /* the frontend read the value at compile time (folded it, a
                              shape, a bound, a branch...): never runtime */
    SrcLoc baked_at;       /* where it was first read so (when baked) */
    const char *fixed_why; /* when !runtime after fe_mark_runtime_configs: why, for messages */
} ModuleConfig;

typedef struct {
    Graph *graph;
    int *in_slots;  /* in_slots[i] feeds graph->inputs[i] */
    int *out_slots; /* graph->outputs[j] is written to out_slots[j] after the run */
} GraphCall;

typedef enum {
    HS_RUN,   /* run a graph */
    HS_FOR,   /* for var in lo..hi { body } */
    HS_WHILE, /* while (run cond; cond_slot true) { body } */
    HS_IF,    /* if cond_slot { then } else { else } */
    HS_BREAK, /* leave the innermost for/while */
    HS_LOG,   /* a metrics row: names = scalar slots */
    HS_PRINT, /* print slots to stdout */
    HS_SAVE,  /* save a slot to a .npy file */
    HS_TRAIN, /* a training loop */
} HostOp;

typedef struct HostStmt HostStmt;
typedef struct {
    HostStmt **items;
    int n, cap;
} HostBlock;

typedef struct TrainSpec TrainSpec;

struct HostStmt {
    HostOp op;
    SrcLoc loc;
    union {
        GraphCall run;
        struct {
            int var_slot;         /* SLOT_STEP slot receiving the counter */
            int64_t lo, hi;       /* constant bounds, used when the slot is -1 */
            int lo_slot, hi_slot; /* integer scalar slots, or -1 */
            HostBlock body;
        } loop;
        struct {
            GraphCall cond; /* computes cond_slot */
            int cond_slot;
            HostBlock body;
        } whl;
        struct {
            int cond_slot; /* bool scalar */
            HostBlock then_b, else_b;
        } cond;
        struct {
            const char **names;
            int *slots; /* scalar slots */
            int n;
        } log;
        struct {
            int *slots;
            int n;
            const char **texts; /* NULL, or per item a literal string printed instead
                                   of the slot (whose entry is then -1) */
        } print;
        struct {
            const char *path;
            int slot;
        } save;
        TrainSpec *train;
    } u;
};

typedef struct {
    int64_t every;
    HostBlock body; /* may contain HS_LOG rows */
} TrainEvery;

struct TrainSpec {
    const char *name; /* the train block's name */
    int nfields;      /* fields of the data set: x, y, ... */
    const char **field_names;
    int *data_slots;  /* full data set fields (DATA slots, leading axis = rows) */
    int *batch_slots; /* the current minibatch of each field, filled by the executor */
    int64_t rows;     /* rows in the data set */
    int64_t batch;    /* minibatch size; rows per step */
    int64_t steps;    /* total steps (from steps, or epochs * ceil(rows/batch)) */
    bool shuffle;     /* reshuffle each epoch with the run seed */
    int t_slot;       /* SLOT_STEP: the step number t, from 0 */
    GraphCall step;   /* one optimizer step: reads batch/t/seed/params/state,
                         writes params/state and loss_slot */
    int loss_slot;    /* f32/f64 scalar: the objective at this step */
    TrainEvery *evals;
    int nevals;
};

typedef struct Module {
    Arena *arena;
    DiagList *diags;
    Slot *slots;
    int nslots, cap_slots;
    int seed_slot;  /* SLOT_SEED */
    HostBlock init; /* runs once, before main */
    HostBlock main;
    int nparams;
    int *param_slots;      /* SLOT_PARAM slots in creation order */
    ModuleConfig *configs; /* the main module's config entries (see ModuleConfig) */
    int nconfigs;
} Module;

Module *ir_module_new(Arena *a, DiagList *d);
void ir_module_free(Module *m); /* frees DATA and CONFIG tensors; the arena is the caller's */
int ir_module_add_slot(Module *m, const char *name, SlotKind kind, DType dt, Shape s);
HostStmt *ir_host_append(Module *m, HostBlock *b, HostOp op, SrcLoc loc);
/* Prints every graph of the module and the host program, stably. Slot
 * values are not printed (DATA and CONFIG slots show only their type). */
void ir_module_print(const Module *m, FILE *out);
/* A 64-bit digest of everything compilation decided: the printout (slots,
 * graphs, host program with loop bounds and train settings) and the bytes of
 * every DATA slot, but not the values of CONFIG slots. Two compilations of a
 * program that differ only in a config read through its slot have the same
 * fingerprint. False on out-of-memory. */
bool ir_module_fingerprint(const Module *m, uint64_t *out);
/* Calls visit(ctx, c) on every graph call of the host program, init then
 * main, in program order (a while's condition before its body, a train's
 * step before its `every` blocks), repeats included; stops at the first
 * visit that returns false and returns false then. (ir/module_walk.c) */
bool ir_module_each_call(const Module *m, bool (*visit)(void *ctx, const GraphCall *c), void *ctx);
/* The distinct graphs the host program runs, in first-use order (their ids
 * in a program image), and the first call of each (either out-pointer may be
 * NULL). The arrays are allocated in a; -1 when out of memory. */
int ir_module_graphs(const Module *m, Arena *a, const Graph ***graphs, const GraphCall ***calls);
/* Runs ir_verify on every graph. */
bool ir_module_verify(const Module *m, const char *after_pass);

#endif
