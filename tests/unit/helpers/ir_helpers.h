/* Small helpers shared by the IR, interpreter and backend tests. */
#ifndef DFLOW_TESTS_IR_HELPERS_H
#define DFLOW_TESTS_IR_HELPERS_H

#include "ir/diag.h"
#include "runtime/tensor.h"

/* th_shape(2, 3, 4) is the shape [3,4]; the dims are ints. */
Shape th_shape(int rank, ...);
/* The text of the last diagnostic in d, or "(none)". */
const char *th_last_diag(const DiagList *d);
/* Every diagnostic of d as diag_print_all writes it (caller frees). */
char *th_diags_text(const DiagList *d);
/* Writes src into a new file of a per-process temporary folder; the path
 * stays valid until eight more programs have been written. */
const char *th_write_program(const char *src);

#endif
