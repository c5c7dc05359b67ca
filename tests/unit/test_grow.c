/* Tests for runtime/grow.c and its arena front door (ir/arena.h): the
 * doubling policy, zeroed new elements, and sizes that would overflow being
 * refused with the array left as it was — on the heap and in an arena. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "ir/arena.h"
#include "runtime/grow.h"

Test(grow, heap_pushes_keep_their_elements_and_double) {
    int *items = NULL, n = 0, cap = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert(rt_grow(&items, &cap, (size_t)n + 1, 16), "push %d", i);
        items[n++] = 3 * i;
    }
    cr_expect_eq(cap, 1024, "16 doubled to the first power that holds 1000");
    for (int i = 0; i < n; i++)
        cr_assert_eq(items[i], 3 * i, "element %d", i);
    cr_expect_eq(items[1000], 0, "elements past the count are zeroed");
    cr_expect_eq(items[1023], 0);
    free(items);
}

Test(grow, a_capacity_that_holds_the_need_is_left_alone) {
    size_t cap = 0;
    char *buf = NULL;
    cr_assert(rt_grow(&buf, &cap, 100, 64));
    cr_expect_eq(cap, 128, "64, doubled once");
    char *before = buf;
    cr_assert(rt_grow(&buf, &cap, 128, 64));
    cr_expect_eq(buf, before);
    cr_expect_eq(cap, 128);
    cr_assert(rt_grow(&buf, &cap, 129, 64));
    cr_expect_eq(cap, 256);
    free(buf);
}

Test(grow, the_policy_starts_from_first_and_clamps_at_max) {
    size_t out = 0;
    cr_assert(rt_grow_cap(0, 1, 16, INT_MAX, &out));
    cr_expect_eq(out, 16);
    cr_assert(rt_grow_cap(0, 40, 16, INT_MAX, &out));
    cr_expect_eq(out, 64);
    cr_assert(rt_grow_cap(24, 25, 16, INT_MAX, &out));
    cr_expect_eq(out, 48, "a non-empty array doubles from its own capacity");
    cr_assert(rt_grow_cap(0, 3, 0, INT_MAX, &out));
    cr_expect_eq(out, 4, "first 0 counts as 1");
    /* doubling 2^30 would pass INT_MAX: the capacity stops at the largest int */
    cr_assert(rt_grow_cap((size_t)1 << 30, ((size_t)1 << 30) + 1, 16, INT_MAX, &out));
    cr_expect_eq(out, (size_t)INT_MAX);
    /* and near 2^63 the doubling itself would overflow int64 */
    cr_assert(rt_grow_cap((size_t)1 << 62, ((size_t)1 << 62) + 1, 16, SIZE_MAX, &out));
    cr_expect_eq(out, (size_t)INT64_MAX);
}

Test(grow, a_count_past_the_capacity_type_is_refused) {
    size_t out = 7;
    cr_expect_not(rt_grow_cap(0, (size_t)INT_MAX + 1, 16, INT_MAX, &out));
    cr_expect_eq(out, 7, "*out untouched");
    cr_expect_not(rt_grow_cap(16, (size_t)INT64_MAX + 1, 16, SIZE_MAX, &out));
    cr_expect_eq(out, 7);
    /* through rt_grow with an int capacity: nothing allocated, nothing changed */
    int *items = NULL, cap = 0;
    cr_expect_not(rt_grow(&items, &cap, (size_t)INT_MAX + 1, 16));
    cr_expect_null(items);
    cr_expect_eq(cap, 0);
}

/* elem is chosen so that 4 elements' bytes wrap size_t to 0: unchecked, the
 * "allocation" would succeed with a 1-byte block standing for 2^65 bytes. */
#define WRAPPING_ELEM (((size_t)1 << 62))

Test(grow, a_byte_size_that_overflows_is_refused_on_the_heap) {
    int *items = NULL;
    cr_assert(rt_grow(&items, &(int){0}, 4, 4));
    items[0] = 42;
    int *before = items;
    size_t cap = 4;
    cr_expect_not(rt_grow_size_(NULL, NULL, &items, &cap, 5, WRAPPING_ELEM, 4),
                  "8 elements of 2^62 bytes do not fit");
    cr_expect_eq(items, before, "the storage was not touched");
    cr_expect_eq(cap, 4);
    cr_expect_eq(items[0], 42);
    cr_expect_not(rt_resize_with(NULL, NULL, &items, 0, 4, WRAPPING_ELEM));
    cr_expect_eq(items, before);
    free(items);
}

Test(grow, arena_pushes_keep_their_elements) {
    Arena *a = arena_new();
    const char **names = NULL;
    int n = 0, cap = 0;
    static const char *const words[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 300; i++) {
        cr_assert(arena_grow(a, &names, &cap, (size_t)n + 1, 8), "push %d", i);
        names[n++] = words[i % 5];
    }
    cr_expect_eq(cap, 512);
    for (int i = 0; i < n; i++)
        cr_assert_eq(names[i], words[i % 5], "element %d", i);
    cr_expect_null(names[300], "new elements are zeroed");
    /* an exact resize, as for arrays that grow one element at a time */
    int *slots = NULL;
    for (int i = 0; i < 5; i++) {
        cr_assert(arena_resize(a, &slots, (size_t)i, (size_t)i + 1));
        slots[i] = i + 10;
    }
    for (int i = 0; i < 5; i++)
        cr_expect_eq(slots[i], i + 10);
    arena_free(a);
}

Test(grow, a_byte_size_that_overflows_is_refused_in_an_arena) {
    Arena *a = arena_new();
    int *items = NULL, cap = 0;
    cr_assert(arena_grow(a, &items, &cap, 4, 4));
    items[3] = 7;
    int *before = items;
    size_t total = a->total;
    size_t scap = 4;
    cr_expect_not(rt_grow_size_(arena_grow_alloc, a, &items, &scap, 5, WRAPPING_ELEM, 4));
    cr_expect_eq(a->total, total, "nothing was taken from the arena");
    cr_expect_eq(items, before);
    cr_expect_eq(scap, 4);
    cr_expect_eq(items[3], 7);
    cr_expect_not(arena_grow(a, &items, &cap, (size_t)INT_MAX + 1, 4));
    cr_expect_eq(a->total, total);
    cr_expect_eq(cap, 4);
    arena_free(a);
}
