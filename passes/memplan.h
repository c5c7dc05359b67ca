/* Memory planning: where every materialised value of a graph lives while the
 * graph runs, decided once from the fusion plan's kernel order.
 *
 * Values are the graph's inputs and the roots of its fusion groups
 * (passes/fuse.h); group t is step t. A value is live from the step that
 * computes it to the last step that reads it. Intermediates are carved out
 * of ONE arena at byte offsets: a value's bytes are reused by later values
 * once it is dead (best fit over a free list, like ggml-alloc), so the arena
 * is the peak of simultaneously live intermediates, not their sum. Graph
 * inputs and outputs are external: the caller owns them (executor slots).
 *
 * In-place: a FG_MAP group's root may take the storage of a value it reads
 * when this group is that value's last use, both have the same dtype and
 * element count, and every read of it in the group is at the root's own
 * flat index (through elementwise ops of the root's shape, reshape and
 * stop_grad only), so element i is read before element i is written and by
 * the same iteration; or inside a row phase over the root's shape (a
 * softmax's max and sum), which reads the row before any of it is written,
 * in the task that writes it. An intermediate takes an intermediate's offset; a
 * graph output may take the storage of a graph input the caller donated
 * (its slot is overwritten by this call anyway). Never an input the caller
 * keeps, nor a value that is itself a graph output. A graph output that
 * updates nothing in place may still reuse a donated input of its dtype and
 * shape that is dead before the output is computed (so a step whose last
 * kernel does not read the parameter it replaces allocates nothing). */
#ifndef DFLOW_PASSES_MEMPLAN_H
#define DFLOW_PASSES_MEMPLAN_H

#include <stdio.h>

#include "fuse.h"

typedef enum {
    MB_INPUT,   /* a graph input: the caller's storage, read only unless donated */
    MB_ARENA,   /* an intermediate at `offset` in the arena */
    MB_OUTPUT,  /* a graph output: storage the caller provides (or a fresh tensor) */
    MB_DONATED, /* a graph output computed in the storage of donated input `input` */
} MemPlace;

typedef struct {
    const Node *node;
    MemPlace place;
    int64_t bytes;  /* numel * element size */
    int64_t offset; /* MB_ARENA: byte offset in the arena (aligned) */
    int def;        /* the step computing it; -1 for graph inputs */
    int last_use;   /* the last step reading it (def when none); nsteps for graph outputs */
    int inplace_of; /* the value (index into bufs) it updates in place, or -1 */
    int input;      /* MB_INPUT: its graph input index; MB_DONATED: the donor's (updated
                       in place when inplace_of >= 0, else dead before `def`) */
} MemBuf;

typedef struct {
    bool inplace;        /* allow in-place updates at all */
    const bool *donated; /* per graph input: may an output take its storage? NULL = none */
    int64_t align;       /* arena offsets and sizes are multiples of this (0 = 64 bytes) */
    /* groups whose root must not share an input's storage (e.g. a backend
       that may recompute the group after writing it); NULL = none */
    bool (*veto)(void *ctx, const FusionGroup *g);
    void *veto_ctx;
} MemPlanOptions;

typedef struct {
    const FusionPlan *fusion;
    MemBuf *bufs; /* graph inputs in input order, then group roots in step order */
    int nbufs;
    int *buf_of;    /* per node id: its value's index in bufs, or -1 */
    int *group_buf; /* per step (group): the value it computes */
    int nsteps;
    int64_t arena_bytes;               /* the one allocation: peak of live intermediates */
    int64_t naive_bytes;               /* the intermediates' sizes summed (no reuse) */
    int64_t input_bytes, output_bytes; /* external values (outputs stored in donors too) */
    int ninplace;                      /* values updating another's storage in place */
    int ndonated;                      /* graph outputs in donated inputs (in place or not) */
} MemPlan;

/* The default options: in-place on, nothing donated, 64-byte alignment. */
MemPlanOptions pass_memplan_defaults(void);

/* Plans fp's values. Everything is allocated in a; NULL on out-of-memory
 * (with a diagnostic on the graph's list). o NULL = the defaults. */
MemPlan *pass_memplan(const FusionPlan *fp, const MemPlanOptions *o, Arena *a);

/* One line per value: "%12 f32[128,256] arena @4096 +131072 live 3..7 (in place of %9)",
 * then the totals. */
void pass_memplan_print(const MemPlan *mp, FILE *out);

/* "12.5 MiB", "640 B": byte counts for reports. */
const char *pass_memplan_bytes_str(int64_t bytes, char *buf, size_t n);

#endif
