/* libFuzzer target: the frontend (parse, sema, lowering and the IR verifier)
 * on any program text, without running the program.
 *
 * The input is written to prog.dfl in a private folder that is also the
 * working directory, next to the small data files of fz_tiny_data that the seed
 * programs of tests/fuzz/corpus/frontend read, so that data declarations
 * lower too. Contract checked: fe_compile returns a Module or NULL with at least
 * one error, never a crash; every diagnostic renders (caret lines included). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "fuzz_util.h"

static char prog[4200];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = fz_tempdir("frontend");
    fz_tiny_data(dir);
    fz_check(chdir(dir) == 0, "chdir %s", dir);
    snprintf(prog, sizeof prog, "%s/prog.dfl", dir);
    devnull = fopen("/dev/null", "w");
    fz_check(devnull != NULL, "%s", "cannot open /dev/null");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f = fopen(prog, "wb");
    fz_check(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "write %s", prog);
    Arena *a = arena_new();
    SourceSet *src = a ? source_set_new(a) : NULL;
    DiagList *d = src ? diag_list_new(a, src) : NULL;
    fz_check(d != NULL, "%s", "out of memory");
    CompileOptions o = {0};
    Module *m = fe_compile(a, src, d, prog, &o);
    fz_check(m || diag_has_errors(d), "%s", "fe_compile failed without an error");
    diag_print_all(d, devnull);
    if (m) ir_module_free(m);
    arena_free(a);
    return 0;
}
