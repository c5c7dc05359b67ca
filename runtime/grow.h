/* Growable arrays: the one way dflow makes room in an array.
 *
 * An array is a pointer to its elements plus a count and a capacity that the
 * caller keeps. rt_grow(&items, &cap, need, first) makes room for `need`
 * elements: the capacity doubles — starting from `first` when it is 0 —
 * until it holds `need`, clamped to the largest count the capacity's type
 * holds (INT_MAX for an int capacity). A capacity that already holds `need`
 * is left alone, so callers may ask before every push.
 *
 * Contract:
 * - every size is overflow-checked (runtime/checked.h): a count past the
 *   capacity's type or a byte size past 2^63 is refused, never wrapped;
 * - on any failure (too large, or out of memory) the call returns false and
 *   leaves the pointer, the storage and the capacity as they were, so the
 *   caller reports a located error the way it always has; nothing aborts;
 * - elements from the old capacity to the new one are zeroed;
 * - growth may move the elements: a pointer into the array taken before a
 *   call is stale after it (with an arena the old copy stays readable but
 *   no longer is the array). Keep indices across a growth, not pointers.
 *
 * rt_grow and rt_resize use the heap (realloc); ir/arena.h has arena_grow and
 * arena_resize, the same policy over an Arena. Arrays whose elements sit in
 * several parallel arrays share one capacity: compute it once with
 * rt_grow_cap, resize each array with rt_resize, then store the capacity. */
#ifndef DFLOW_RUNTIME_GROW_H
#define DFLOW_RUNTIME_GROW_H

#include <stdbool.h>
#include <stddef.h>

/* Where storage comes from: new storage of new_bytes holding the first
 * min(old_bytes, new_bytes) bytes of old, or NULL (old untouched). */
typedef void *(*RtGrowAlloc)(void *ctx, void *old, size_t old_bytes, size_t new_bytes);

/* The capacity that holds `need` (the policy above) for an array of
 * capacity `cap`, at most `max` elements. False, *out untouched, when need
 * is more than max. */
bool rt_grow_cap(size_t cap, size_t need, size_t first, size_t max, size_t *out);

/* Resizes the array *pp (pp: the address of a T *, passed as void *) from
 * old_n to new_n elements of elem bytes through alloc (NULL: the heap). */
bool rt_resize_with(RtGrowAlloc alloc, void *ctx, void *pp, size_t old_n, size_t new_n,
                    size_t elem);

/* rt_grow's bodies, by the capacity's type. */
bool rt_grow_int_(RtGrowAlloc alloc, void *ctx, void *pp, int *cap, size_t need, size_t elem,
                  size_t first);
bool rt_grow_size_(RtGrowAlloc alloc, void *ctx, void *pp, size_t *cap, size_t need, size_t elem,
                   size_t first);

/* pp: &items (a T **); cap: an int * or a size_t *. The element size comes
 * from the pointer's type, so it cannot disagree with the array. */
#define rt_grow_with(alloc, ctx, pp, cap, need, first)                                             \
    _Generic((cap), int *: rt_grow_int_, size_t *: rt_grow_size_)((alloc), (ctx), (pp), (cap),     \
                                                                   (need), sizeof **(pp), (first))
#define rt_grow(pp, cap, need, first) rt_grow_with(NULL, NULL, pp, cap, need, first)
#define rt_resize(pp, old_n, new_n)                                                                \
    rt_resize_with(NULL, NULL, (pp), (old_n), (new_n), sizeof **(pp))

#endif
