/* libFuzzer target: the IDX reader (rt_idx_read, rt_idx_shape) on any bytes,
 * plain or gzip.
 *
 * Contract checked: a result or an error with a reason, never a crash; when
 * the whole file reads, the header-only reader (which decides compile-time
 * shapes) succeeds too and gives the same shape; labels are i32[N] within
 * 0..255 and images f32[N, M] within [0, 255 * scale]. */
#include "fuzz_util.h"
#include "runtime/dataio.h"

static FzFile in;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_file_open(&in, "idx-in");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_file_set(&in, data, size);
    char err[512] = "", serr[512] = "";
    Shape s;
    bool shape_ok = rt_idx_shape(in.path, &s, serr, sizeof serr);
    fz_check(shape_ok || serr[0], "%s", "rt_idx_shape failed without a reason");
    RtTensor *t = rt_idx_read(in.path, 0.5, err, sizeof err);
    if (!t) {
        fz_check(err[0] != 0, "%s", "rt_idx_read failed without a reason");
        return 0;
    }
    fz_check(shape_ok, "the file reads but its header does not: %s", serr);
    fz_check(rt_shape_eq(&s, &t->shape), "%s", "header shape and data shape differ");
    int64_t n = rt_shape_numel(&t->shape);
    fz_check(n >= 0, "%s", "an invalid shape");
    if (t->shape.rank == 1) {
        fz_check(t->dtype == DT_I32, "%s", "labels that are not i32");
        for (int64_t i = 0; i < n; i++) {
            int32_t v = ((const int32_t *)t->data)[i];
            fz_check(v >= 0 && v <= 255, "label %d", v);
        }
    } else {
        fz_check(t->shape.rank == 2 && t->dtype == DT_F32, "rank %d", t->shape.rank);
        for (int64_t i = 0; i < n; i++) {
            float v = ((const float *)t->data)[i];
            fz_check(v >= 0.0f && v <= 127.5f, "pixel %g", (double)v);
        }
    }
    rt_tensor_free(t);
    return 0;
}
