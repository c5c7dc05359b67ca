/* Small helpers shared by the IR, interpreter and backend tests. */
#include "helpers/ir_helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/autodiff.h"

Shape th_shape(int rank, ...) {
    Shape s = {.rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++)
        s.dims[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

DiagList *th_diag_list(Arena *a, const char *name, const char *text) {
    SourceSet *s = source_set_new(a);
    source_add(s, name, text, strlen(text));
    return diag_list_new(a, s);
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

char *th_graph_text(const Graph *g) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f) {
        ir_print(g, f);
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

void th_mlp_sgd_step(Graph *g, Node *x, Node *y, Node *const w[4], SrcLoc loc) {
    Node *h = ir_relu(g, ir_binary(g, OP_ADD, ir_matmul(g, x, w[0], loc), w[1], loc), loc);
    Node *o = ir_binary(g, OP_ADD, ir_matmul(g, h, w[2], loc), w[3], loc);
    Node *loss = ir_cross_entropy(g, o, y, loc), *gr[4];
    cr_assert(pass_grad(g, loss, NULL, w, 4, gr), "pass_grad: %s", th_last_diag(g->diags));
    ir_graph_add_output(g, loss);
    Node *lr = ir_scalar(g, DT_F32, 0.1, loc);
    for (int i = 0; i < 4; i++)
        ir_graph_add_output(g,
                            ir_binary(g, OP_SUB, w[i], ir_binary(g, OP_MUL, lr, gr[i], loc), loc));
}

uint64_t th_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double th_uniform(uint64_t *state, double lo, double hi) {
    return lo + (hi - lo) * (double)(th_splitmix64(state) >> 11) / 9007199254740992.0;
}

static int cmp_path(const void *a, const void *b) {
    return strcmp(((const ThPath *)a)->path, ((const ThPath *)b)->path);
}

int th_list_programs(const char *dir, const char *skip, ThPath *out, int max) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len < 5 || len > 200 || strcmp(e->d_name + len - 4, ".dfl") != 0) continue;
        if (skip && strncmp(e->d_name, skip, strlen(skip)) == 0) continue;
        snprintf(out[n++].path, sizeof out[0].path, "%s/%.200s", dir, e->d_name);
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_path);
    return n;
}
