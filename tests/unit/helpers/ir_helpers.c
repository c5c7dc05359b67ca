/* Small helpers shared by the IR, interpreter and backend tests. */
#include "helpers/ir_helpers.h"

#include <stdarg.h>

Shape th_shape(int rank, ...) {
    Shape s = {.rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) s.dims[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

const char *th_last_diag(const DiagList *d) {
    return d->n ? d->items[d->n - 1]->msg : "(none)";
}
