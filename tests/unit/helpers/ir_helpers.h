/* Small helpers shared by the IR, interpreter and backend tests. */
#ifndef DFLOW_TESTS_IR_HELPERS_H
#define DFLOW_TESTS_IR_HELPERS_H

#include "ir/diag.h"
#include "ir/ir.h"
#include "runtime/tensor.h"

/* th_shape(2, 3, 4) is the shape [3,4]; the dims are ints. */
Shape th_shape(int rank, ...);
/* A diagnostics list in a whose sources hold one file, `name` with text
 * (file id 1, so SrcLoc {1, line, col, len} points into it). */
DiagList *th_diag_list(Arena *a, const char *name, const char *text);
/* The text of the last diagnostic in d, or "(none)". */
const char *th_last_diag(const DiagList *d);
/* Every diagnostic of d as diag_print_all writes it (caller frees). */
char *th_diags_text(const DiagList *d);
/* g as ir_print writes it (caller frees). */
char *th_graph_text(const Graph *g);
/* Writes src into a new file of a per-process temporary folder; the path
 * stays valid until eight more programs have been written. */
const char *th_write_program(const char *src);

/* Appends to g a 2-layer MLP training step over inputs x [B,I], labels y [B]
 * and parameters w = W1 [I,H], b1 [H], W2 [H,C], b2 [C]: ReLU, softmax
 * cross-entropy, gradients, SGD at lr 0.1; outputs the loss, then the four
 * updated parameters. Fails the calling test when autodiff fails. */
void th_mlp_sgd_step(Graph *g, Node *x, Node *y, Node *const w[4], SrcLoc loc);

/* splitmix64: the next of a deterministic stream of 64-bit words (*state
 * is the stream), and a double in [lo, hi) from the top 53 bits of one. */
uint64_t th_splitmix64(uint64_t *state);
double th_uniform(uint64_t *state, double lo, double hi);

/* A .dfl file of a test corpus (a fixed array: Criterion parameters must
 * not hold pointers). */
typedef struct {
    char path[256];
} ThPath;
/* The .dfl files of dir, sorted, skipping names that start with skip (or
 * none when skip is NULL); at most max. */
int th_list_programs(const char *dir, const char *skip, ThPath *out, int max);

#endif
