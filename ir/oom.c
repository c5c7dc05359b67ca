/* Out-of-memory diagnostics (oom.h). */
#include "oom.h"

Diag *ir_oom_value(DiagList *d, SrcLoc loc, DType dt, const Shape *s, const char *op,
                   int64_t arena_bytes, int64_t held) {
    char sh[128], by[32], ar[32], hb[32];
    int64_t n = rt_shape_numel(s);
    int64_t bytes = n < 0 || n > INT64_MAX / 8 ? -1 : n * (int64_t)rt_dtype_size(dt);
    rt_shape_str(s, sh, sizeof sh);
    if (bytes < 0)
        snprintf(by, sizeof by, "too many bytes");
    else
        rt_bytes_str(bytes, by, sizeof by);
    rt_bytes_str(held, hb, sizeof hb);
    if (arena_bytes > 0)
        return diag_error(d, loc,
                          "out of memory: cannot allocate %s%s (%s) for %s, in a %s arena of "
                          "intermediates; %s already in use",
                          rt_dtype_name(dt), sh, by, op ? op : "?",
                          rt_bytes_str(arena_bytes, ar, sizeof ar), hb);
    return diag_error(d, loc, "out of memory: cannot allocate %s%s (%s) for %s; %s already in use",
                      rt_dtype_name(dt), sh, by, op ? op : "?", hb);
}

Diag *ir_oom_arena(DiagList *d, SrcLoc loc, const char *graph, int64_t arena_bytes, int64_t held) {
    char ar[32], hb[32];
    return diag_error(d, loc,
                      "out of memory: cannot allocate a %s arena of intermediates for graph %s; %s "
                      "already in use",
                      rt_bytes_str(arena_bytes, ar, sizeof ar), graph ? graph : "?",
                      rt_bytes_str(held, hb, sizeof hb));
}
