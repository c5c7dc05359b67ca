/* Overflow-checked size arithmetic: the one way dflow adds and multiplies
 * sizes (dimensions, element and byte counts, row offsets, step counts).
 *
 * Contract: each helper returns true and stores the exact result in *out
 * when it fits in int64_t; otherwise it returns false and leaves *out
 * unchanged, so a caller can report "too large" at the place that asked
 * instead of carrying a wrapped value into an allocation or an offset.
 * Header-only (static inline over __builtin_*_overflow) so every layer,
 * the runtime of a built executable included, can use it. */
#ifndef DFLOW_RUNTIME_CHECKED_H
#define DFLOW_RUNTIME_CHECKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool ck_add(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}

static inline bool ck_sub(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}

static inline bool ck_mul(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return false;
    *out = r;
    return true;
}

/* The element count of dims[0..rank). False for a negative rank or
 * dimension, and when the product of the non-zero dimensions overflows:
 * a shape with a zero dimension is empty, but its other dimensions still
 * have to multiply out, so that every partial product a kernel or a
 * reshape forms (a row size, a flattened batch) fits as well. */
static inline bool ck_numel(int rank, const int64_t *dims, int64_t *out) {
    if (rank < 0) return false;
    int64_t n = 1;
    bool empty = false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return false;
        if (dims[i] == 0) empty = true;
        if (dims[i] > 0 && !ck_mul(n, dims[i], &n)) return false;
    }
    *out = empty ? 0 : n;
    return true;
}

/* count * elem_size bytes, as int64 (elem_size is a dtype's size). */
static inline bool ck_bytes(int64_t count, size_t elem_size, int64_t *out) {
    if (count < 0 || elem_size > (size_t)INT64_MAX) return false;
    return ck_mul(count, (int64_t)elem_size, out);
}

#endif
