/* Growable arrays (grow.h). */
#include "grow.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checked.h"

bool rt_grow_cap(size_t cap, size_t need, size_t first, size_t max, size_t *out) {
    if (need <= cap) {
        *out = cap;
        return true;
    }
    if (max > (size_t)INT64_MAX) max = (size_t)INT64_MAX; /* checked.h counts in int64 */
    if (need > max) return false;
    /* cap < need <= max, so every value below fits int64 */
    int64_t c = cap ? (int64_t)cap : first == 0 ? 1 : first > max ? (int64_t)max : (int64_t)first;
    while ((size_t)c < need && (size_t)c < max) {
        int64_t twice;
        if (!ck_mul(c, 2, &twice) || (size_t)twice > max) twice = (int64_t)max;
        c = twice;
    }
    *out = (size_t)c;
    return true;
}

bool rt_resize_with(RtGrowAlloc alloc, void *ctx, void *pp, size_t old_n, size_t new_n,
                    size_t elem) {
    int64_t old_bytes, new_bytes;
    if (old_n > (size_t)INT64_MAX || new_n > (size_t)INT64_MAX) return false;
    if (!ck_bytes((int64_t)old_n, elem, &old_bytes) || !ck_bytes((int64_t)new_n, elem, &new_bytes))
        return false;
    /* *pp is a T *; copied as bytes so that no T ** is read through a void ** */
    void *old, *p;
    memcpy(&old, pp, sizeof old);
    if (alloc)
        p = alloc(ctx, old, (size_t)old_bytes, (size_t)new_bytes);
    else
        p = realloc(old, new_bytes ? (size_t)new_bytes : 1);
    if (!p) return false;
    if (new_bytes > old_bytes) memset((char *)p + old_bytes, 0, (size_t)(new_bytes - old_bytes));
    memcpy(pp, &p, sizeof p);
    return true;
}

/* Grows an array of capacity *cap (at most max elements) to hold need. */
static bool grow(RtGrowAlloc alloc, void *ctx, void *pp, size_t *cap, size_t need, size_t elem,
                 size_t first, size_t max) {
    size_t nc;
    if (!rt_grow_cap(*cap, need, first, max, &nc)) return false;
    if (nc == *cap) return true;
    if (!rt_resize_with(alloc, ctx, pp, *cap, nc, elem)) return false;
    *cap = nc;
    return true;
}

bool rt_grow_int_(RtGrowAlloc alloc, void *ctx, void *pp, int *cap, size_t need, size_t elem,
                  size_t first) {
    size_t c = *cap > 0 ? (size_t)*cap : 0;
    if (!grow(alloc, ctx, pp, &c, need, elem, first, INT_MAX)) return false;
    *cap = (int)c;
    return true;
}

bool rt_grow_size_(RtGrowAlloc alloc, void *ctx, void *pp, size_t *cap, size_t need, size_t elem,
                   size_t first) {
    return grow(alloc, ctx, pp, cap, need, elem, first, SIZE_MAX);
}
