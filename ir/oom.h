/* Out-of-memory diagnostics: one message shape on every backend.
 *
 * A failed tensor allocation names the value (dtype and shape), its bytes,
 * the op and the node's source location that asked for it, and what the
 * run already holds:
 *   prog.dfl:2:7: error: out of memory: cannot allocate f32[40000,40000]
 *   (5.96 GiB) for rng_normal; 12 B already in use
 * A compiled graph's arena of intermediates that cannot be allocated is
 * reported at its largest value, with the arena's size:
 *   ... for rng_normal, in a 11.92 GiB arena of intermediates; ...
 * The interpreter, the JIT and built executables all report through here. */
#ifndef DFLOW_IR_OOM_H
#define DFLOW_IR_OOM_H

#include "../runtime/tensor.h"
#include "diag.h"

/* A value of type dt/s that op (at loc) needed. arena_bytes > 0: the value
 * was to live in an arena of that size, which failed. held: bytes the run
 * already holds (rt_tensor_live_bytes(), plus any arena). */
Diag *ir_oom_value(DiagList *d, SrcLoc loc, DType dt, const Shape *s, const char *op,
                   int64_t arena_bytes, int64_t held);
/* An arena of intermediates whose values are not known (a built program's
 * image names none): its size and what the run holds. */
Diag *ir_oom_arena(DiagList *d, SrcLoc loc, const char *graph, int64_t arena_bytes, int64_t held);

#endif
