/* Arena: the one allocator of a compilation.
 *
 * The AST, IR nodes, attributes, interned strings and diagnostics all live in
 * an Arena and die together with arena_free. It grows in linked chunks and
 * never fails on a fixed budget; on out-of-memory an allocation returns NULL
 * and callers report it. mark/reset gives passes a scratch region. */
#ifndef DFLOW_IR_ARENA_H
#define DFLOW_IR_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include "../runtime/grow.h"

typedef struct ArenaChunk ArenaChunk;
typedef struct {
    ArenaChunk *head;
    size_t total; /* bytes handed out, for reports */
} Arena;

typedef struct {
    ArenaChunk *chunk;
    size_t used;
} ArenaMark;

Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* 16-byte aligned, zeroed; NULL on OOM */
void *arena_realloc(Arena *a, void *p, size_t old_n, size_t new_n); /* copies; old stays */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(Arena *a, const char *fmt, va_list ap);
ArenaMark arena_mark(Arena *a);
void arena_reset(Arena *a, ArenaMark m); /* frees everything allocated after m */

/* Growable arrays in an arena: rt_grow's policy and checks (runtime/grow.h)
 * over arena_realloc. The old storage is abandoned, not freed, on growth. */
void *arena_grow_alloc(void *arena, void *old, size_t old_bytes, size_t new_bytes);
#define arena_grow(a, pp, cap, need, first)                                                        \
    rt_grow_with(arena_grow_alloc, (a), pp, cap, need, first)
#define arena_resize(a, pp, old_n, new_n)                                                          \
    rt_resize_with(arena_grow_alloc, (a), (pp), (old_n), (new_n), sizeof **(pp))

/* A growable array of pointers in an arena (old storage is abandoned on growth). */
typedef struct {
    void **items;
    int n, cap;
} PtrVec;
void ptrvec_push(Arena *a, PtrVec *v, void *p);

#endif
