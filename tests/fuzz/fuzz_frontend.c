/* libFuzzer target: the frontend (parse, sema, lowering and the IR verifier)
 * on any program text, without running the program.
 *
 * The input is the program, an in-memory file; the working directory is a
 * private folder holding the small data files of fz_tiny_data, which the
 * seed programs of tests/fuzz/corpus/frontend read (data paths are tried
 * from the working directory first), so that data declarations lower too.
 * Contract checked: fe_compile returns a Module or NULL with at least one
 * error, never a crash; every diagnostic renders (caret lines included). */
#include <stdio.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "fuzz_util.h"

static FzFile prog;
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_absolute_args(argc, argv); /* before the chdir: libFuzzer reads them after */
    const char *dir = fz_tempdir("frontend");
    fz_tiny_data(dir);
    fz_check(chdir(dir) == 0, "chdir %s", dir);
    fz_file_open(&prog, "prog.dfl");
    devnull = fopen("/dev/null", "w");
    fz_check(devnull != NULL, "%s", "cannot open /dev/null");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_file_set(&prog, data, size);
    Arena *a = arena_new();
    SourceSet *src = a ? source_set_new(a) : NULL;
    DiagList *d = src ? diag_list_new(a, src) : NULL;
    fz_check(d != NULL, "%s", "out of memory");
    CompileOptions o = {0};
    Module *m = fe_compile(a, src, d, prog.path, &o);
    fz_check(m || diag_has_errors(d), "%s", "fe_compile failed without an error");
    diag_print_all(d, devnull);
    if (m) ir_module_free(m);
    arena_free(a);
    return 0;
}
