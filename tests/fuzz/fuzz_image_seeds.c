/* fuzz_image_seeds OUT_DIR PROGRAM.dfl...: writes the program image that
 * `dflow build` would embed for each program to OUT_DIR/<name>.img, the seed
 * corpus of fuzz_image. Programs are compiled in a private folder holding
 * fz_tiny_data's files, so that the seed programs' data slots stay small.
 * Each graph's blob is the one `dflow build` writes (llvm_plan_write_image).
 * Programs that do not compile or plan are skipped with a message; exit 1
 * if none was written. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/llvm/llvm_plan.h"
#include "frontend/frontend.h"
#include "fuzz_util.h"
#include "ir/module_image.h"

static bool write_graph(void *ctx, const Graph *g, int id, RtBuf *b) {
    (void)g;
    llvm_plan_write_image(&((const LlvmPlan *)ctx)[id], b);
    return true;
}

static bool image_of(const char *prog, const char *out) {
    Arena *a = arena_new();
    SourceSet *src = a ? source_set_new(a) : NULL;
    DiagList *d = src ? diag_list_new(a, src) : NULL;
    if (!d) return false;
    CompileOptions co = {0};
    Module *m = fe_compile(a, src, d, prog, &co);
    const Graph **graphs = NULL;
    int ng = m ? ir_module_graphs(m, a, &graphs, NULL) : -1;
    LlvmPlan *plans = ng >= 0 ? arena_alloc(a, sizeof *plans * (size_t)(ng ? ng : 1)) : NULL;
    bool ok = plans != NULL;
    for (int i = 0; ok && i < ng; i++) {
        char why[192];
        ok = llvm_plan_graph(graphs[i], NULL, a, &plans[i], why, sizeof why);
        if (!ok) fprintf(stderr, "fuzz_image_seeds: %s: %s\n", prog, why);
    }
    RtBuf img = {0};
    ok = ok && ir_image_write(m, src, write_graph, plans, &img);
    FILE *f = ok ? fopen(out, "wb") : NULL;
    ok = f && fwrite(img.data, 1, img.n, f) == img.n;
    if (f && fclose(f) != 0) ok = false;
    if (!m) diag_print_all(d, stderr);
    free(img.data);
    if (m) ir_module_free(m);
    arena_free(a);
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fuzz_image_seeds OUT_DIR PROGRAM.dfl...\n");
        return 2;
    }
    char out_dir[PATH_MAX];
    if (!realpath(argv[1], out_dir)) {
        perror(argv[1]);
        return 1;
    }
    char **progs = calloc((size_t)argc, sizeof *progs);
    for (int i = 2; progs && i < argc; i++)
        progs[i] = realpath(argv[i], NULL);
    const char *dir = fz_tempdir("image-seeds");
    fz_tiny_data(dir);
    if (!progs || chdir(dir) != 0) return 1;
    int written = 0;
    for (int i = 2; i < argc; i++) {
        const char *base = strrchr(argv[i], '/');
        base = base ? base + 1 : argv[i];
        char out[PATH_MAX + 300];
        snprintf(out, sizeof out, "%s/%.250s.img", out_dir, base);
        if (progs[i] && image_of(progs[i], out))
            written++;
        else
            fprintf(stderr, "fuzz_image_seeds: no image for %s\n", argv[i]);
        free(progs[i]);
    }
    free(progs);
    printf("fuzz_image_seeds: %d images in %s\n", written, argv[1]);
    return written ? 0 : 1;
}
