/* Diagnostics: source files, locations, and errors collected, not thrown.
 *
 * Every layer reports problems by appending a Diag to a DiagList and
 * returning failure (NULL/false); nothing in library code exits or aborts on
 * user input. Rendering is separate from collection: diag_print writes
 *   file:line:col: error: message
 *     <the source line>
 *         ^~~~
 *   file:line:col: note: ...            (optional, e.g. where an opener was)
 * Sources are registered in a SourceSet so that locations stay small. */
#ifndef DFLOW_IR_DIAG_H
#define DFLOW_IR_DIAG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"

typedef struct {
    uint32_t file; /* index into SourceSet; 0 = no file (synthesised) */
    uint32_t line; /* 1-based; 0 = unknown */
    uint32_t col;  /* 1-based, in bytes */
    uint32_t len;  /* length of the span for the caret line, >= 1 when known */
} SrcLoc;

typedef struct {
    const char *path; /* as given on the command line or "std/nn.dfl" */
    const char *text; /* NUL-terminated contents (arena-owned) */
    size_t size;
} SourceFile;

typedef struct {
    Arena *arena;
    SourceFile *files; /* files[0] is a dummy for "no file" */
    int nfiles, cap;
} SourceSet;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagSeverity;

typedef struct Diag {
    DiagSeverity severity;
    SrcLoc loc;
    const char *msg;
    struct Diag *note; /* optional chained note, e.g. "to match '{' here" */
} Diag;

typedef struct {
    Arena *arena;
    SourceSet *sources;
    Diag **items;
    int n, cap;
    int nerrors;
    int max_errors; /* stop collecting after this many (default 20) */
} DiagList;

SourceSet *source_set_new(Arena *a);
/* Adds a file with given contents (copied). Returns its id (>= 1). */
uint32_t source_add(SourceSet *s, const char *path, const char *text, size_t size);
/* Reads a file from disk; returns 0 and appends an error to d when it cannot. */
uint32_t source_load(SourceSet *s, const char *path, DiagList *d);
const SourceFile *source_get(const SourceSet *s, uint32_t id);

DiagList *diag_list_new(Arena *a, SourceSet *s);
Diag *diag_error(DiagList *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
Diag *diag_warning(DiagList *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Attaches a note to an existing diagnostic (d may be NULL: then a no-op). */
void diag_add_note(DiagList *dl, Diag *d, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool diag_has_errors(const DiagList *d);
/* Renders all diagnostics, in the order they were added. */
void diag_print_all(const DiagList *d, FILE *out);
void diag_print(const DiagList *d, const Diag *diag, FILE *out);
/* "file:line:col" for messages (arena-allocated). */
const char *diag_loc_str(const DiagList *d, SrcLoc loc);

static inline SrcLoc srcloc_none(void) {
    SrcLoc l = {0, 0, 0, 0};
    return l;
}

#endif
