/* Chunked arena allocator (see arena.h). Chunks double in size up to 1 MiB
 * and larger requests get a chunk of their own, so the arena never fails on
 * a budget, only on a real out-of-memory. */
#include "arena.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ArenaChunk {
    ArenaChunk *prev;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_ALIGN = 16, ARENA_MIN_CHUNK = 64 * 1024 };

Arena *arena_new(void) {
    return calloc(1, sizeof(Arena));
}

void arena_free(Arena *a) {
    if (!a) return;
    for (ArenaChunk *c = a->head, *prev; c; c = prev) {
        prev = c->prev;
        free(c);
    }
    free(a);
}

static ArenaChunk *chunk_new(size_t need) {
    size_t size = ARENA_MIN_CHUNK;
    while (size < need)
        size *= 2;
    ArenaChunk *c = malloc(sizeof(ArenaChunk) + size);
    if (!c) return NULL;
    c->prev = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void *arena_alloc(Arena *a, size_t n) {
    if (n == 0) n = 1;
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n) return NULL; /* overflow */
    ArenaChunk *c = a->head;
    if (!c || c->size - c->used < need) {
        ArenaChunk *fresh = chunk_new(need);
        if (!fresh) return NULL;
        fresh->prev = c;
        a->head = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, n);
    return p;
}

void *arena_realloc(Arena *a, void *p, size_t old_n, size_t new_n) {
    void *q = arena_alloc(a, new_n);
    if (q && p) memcpy(q, p, old_n < new_n ? old_n : new_n);
    return q;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *d = arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *arena_strdup(Arena *a, const char *s) {
    return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_vprintf(Arena *a, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = arena_alloc(a, (size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return s;
}

ArenaMark arena_mark(Arena *a) {
    ArenaMark m = {a->head, a->head ? a->head->used : 0};
    return m;
}

void arena_reset(Arena *a, ArenaMark m) {
    while (a->head && a->head != m.chunk) {
        ArenaChunk *prev = a->head->prev;
        a->total -= a->head->used;
        free(a->head);
        a->head = prev;
    }
    if (a->head) {
        a->total -= a->head->used - m.used;
        a->head->used = m.used;
    }
}

void *arena_grow_alloc(void *arena, void *old, size_t old_bytes, size_t new_bytes) {
    return arena_realloc(arena, old, old_bytes, new_bytes);
}

void ptrvec_push(Arena *a, PtrVec *v, void *p) {
    /* the caller's arena is out of memory: the push is lost */
    if (!arena_grow(a, &v->items, &v->cap, (size_t)v->n + 1, 8)) return;
    v->items[v->n++] = p;
}
