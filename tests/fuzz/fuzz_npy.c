/* libFuzzer target: the .npy reader (rt_npy_read) on any bytes.
 *
 * Contract checked: a result or an error with a reason, never a crash; a
 * tensor read has a valid shape and its bytes; writing it back with
 * rt_npy_write and reading that again gives the same dtype, shape and bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "runtime/dataio.h"

static FzFile in;
/* The write-back goes to a real file: rt_npy_write replaces a whole file
 * through a temporary name and rename, which a memfd's /proc path cannot take. */
static char out_dir[512], out_path[600];

static void remove_out_dir(void) {
    unlink(out_path);
    rmdir(out_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_file_open(&in, "npy-in");
    const char *tmp = getenv("TMPDIR");
    snprintf(out_dir, sizeof out_dir, "%s/dflow-fuzz-npy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fz_check(mkdtemp(out_dir) != NULL, "mkdtemp %s", out_dir);
    snprintf(out_path, sizeof out_path, "%s/back.npy", out_dir);
    atexit(remove_out_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_file_set(&in, data, size);
    char err[512] = "";
    RtTensor *t = rt_npy_read(in.path, err, sizeof err);
    if (!t) {
        fz_check(err[0] != 0, "%s", "rt_npy_read failed without a reason");
        return 0;
    }
    fz_check(rt_shape_numel(&t->shape) >= 0, "%s", "a tensor with an invalid shape");
    fz_check(t->data || rt_tensor_bytes(t) == 0, "%s", "a tensor without data");
    fz_check(rt_npy_write(out_path, t, err, sizeof err), "write back: %s", err);
    RtTensor *back = rt_npy_read(out_path, err, sizeof err);
    fz_check(back != NULL, "read back: %s", err);
    fz_check(back->dtype == t->dtype && rt_shape_eq(&back->shape, &t->shape), "%s",
             "a round trip changed the dtype or shape");
    fz_check(memcmp(back->data, t->data, rt_tensor_bytes(t)) == 0, "%s",
             "a round trip changed the values");
    rt_tensor_free(back);
    rt_tensor_free(t);
    return 0;
}
