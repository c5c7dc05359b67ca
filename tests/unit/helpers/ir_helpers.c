/* Small helpers shared by the IR, interpreter and backend tests. */
#include "helpers/ir_helpers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

char *th_diags_text(const DiagList *d) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f) {
        diag_print_all(d, f);
        fclose(f);
    }
    return buf;
}

const char *th_write_program(const char *src) {
    static char dir[512], paths[8][600];
    static int k;
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/dflow_prog_XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) return NULL;
    }
    char *path = paths[k % 8];
    snprintf(path, sizeof paths[0], "%s/prog%d.dfl", dir, k);
    k++;
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs(src, f);
    fclose(f);
    return path;
}
