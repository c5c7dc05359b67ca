/* libFuzzer target: the CSV reader (rt_csv_read) on any bytes, as f32,
 * f64 and i32.
 *
 * Contract checked: a result or an error with a reason, never a crash; a
 * tensor read is 2-D, of the dtype asked for, with a valid shape. */
#include "fuzz_util.h"
#include "runtime/dataio.h"

static FzFile in;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_file_open(&in, "csv-in");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const DType dts[] = {DT_F32, DT_F64, DT_I32};
    fz_file_set(&in, data, size);
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        char err[512] = "";
        bool header = false;
        RtTensor *t = rt_csv_read(in.path, dts[k], &header, err, sizeof err);
        if (!t) {
            fz_check(err[0] != 0, "%s", "rt_csv_read failed without a reason");
            continue;
        }
        fz_check(t->dtype == dts[k], "asked for %s, got %s", rt_dtype_name(dts[k]),
                 rt_dtype_name(t->dtype));
        fz_check(t->shape.rank == 2 && rt_shape_numel(&t->shape) >= 0, "rank %d", t->shape.rank);
        rt_tensor_free(t);
    }
    return 0;
}
