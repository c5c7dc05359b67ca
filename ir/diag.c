/* Diagnostics: collection in a DiagList and chibicc-style rendering
 * (file:line:col, the source line, a caret span). Nothing here exits. */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

SourceSet *source_set_new(Arena *a) {
    SourceSet *s = arena_alloc(a, sizeof *s);
    if (!s) return NULL;
    s->arena = a;
    s->cap = 8;
    s->files = arena_alloc(a, sizeof(SourceFile) * (size_t)s->cap);
    s->nfiles = 1; /* files[0]: no file */
    s->files[0].path = "<none>";
    s->files[0].text = "";
    return s;
}

uint32_t source_add(SourceSet *s, const char *path, const char *text, size_t size) {
    if (!arena_grow(s->arena, &s->files, &s->cap, (size_t)s->nfiles + 1, 8)) return 0;
    SourceFile *f = &s->files[s->nfiles];
    f->path = arena_strdup(s->arena, path);
    f->text = arena_strndup(s->arena, text, size);
    f->size = size;
    if (!f->path || !f->text) return 0;
    return (uint32_t)s->nfiles++;
}

uint32_t source_load(SourceSet *s, const char *path, DiagList *d) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        diag_error(d, srcloc_none(), "cannot open '%s': %s", path, strerror(errno));
        return 0;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap && !rt_grow(&buf, &cap, n + 1, 1)) {
            free(buf);
            buf = NULL;
            break;
        }
    }
    int err = ferror(fp);
    fclose(fp);
    if (!buf || err) {
        free(buf);
        diag_error(d, srcloc_none(), "cannot read '%s'", path);
        return 0;
    }
    const char *nul = memchr(buf, '\0', n);
    if (nul) {
        /* located: the text before the NUL is registered so the line shows */
        size_t at = (size_t)(nul - buf);
        SrcLoc loc = {source_add(s, path, buf, at), 1, 1, 1};
        for (size_t i = 0; i < at; i++) {
            if (buf[i] == '\n')
                loc.line++, loc.col = 1;
            else
                loc.col++;
        }
        free(buf);
        if (!loc.file) loc = srcloc_none();
        diag_error(d, loc, "'%s' is not a text file: it contains a NUL byte here", path);
        return 0;
    }
    uint32_t id = source_add(s, path, buf, n);
    free(buf);
    return id;
}

const SourceFile *source_get(const SourceSet *s, uint32_t id) {
    if (!s || id == 0 || (int)id >= s->nfiles) return NULL;
    return &s->files[id];
}

DiagList *diag_list_new(Arena *a, SourceSet *s) {
    DiagList *d = arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    d->arena = a;
    d->sources = s;
    d->max_errors = 20;
    return d;
}

static Diag *diag_make(DiagList *d, DiagSeverity sev, SrcLoc loc, const char *fmt, va_list ap) {
    Diag *g = arena_alloc(d->arena, sizeof *g);
    if (!g) return NULL;
    g->severity = sev;
    g->loc = loc;
    g->msg = arena_vprintf(d->arena, fmt, ap);
    return g;
}

static Diag *diag_push(DiagList *d, DiagSeverity sev, SrcLoc loc, const char *fmt, va_list ap) {
    if (sev == DIAG_ERROR) {
        d->nerrors++;
        if (d->nerrors > d->max_errors) return NULL; /* counted, not kept */
    }
    Diag *g = diag_make(d, sev, loc, fmt, ap);
    if (!g) return NULL;
    if (!arena_grow(d->arena, &d->items, &d->cap, (size_t)d->n + 1, 16)) return NULL;
    d->items[d->n++] = g;
    return g;
}

Diag *diag_error(DiagList *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    Diag *g = diag_push(d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
    return g;
}

Diag *diag_warning(DiagList *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    Diag *g = diag_push(d, DIAG_WARNING, loc, fmt, ap);
    va_end(ap);
    return g;
}

void diag_add_note(DiagList *dl, Diag *d, SrcLoc loc, const char *fmt, ...) {
    if (!d) return;
    while (d->note)
        d = d->note;
    va_list ap;
    va_start(ap, fmt);
    d->note = diag_make(dl, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}

bool diag_has_errors(const DiagList *d) {
    return d && d->nerrors > 0;
}

const char *diag_loc_str(const DiagList *d, SrcLoc loc) {
    const SourceFile *f = source_get(d->sources, loc.file);
    const char *path = f ? f->path : "dflow";
    if (loc.line == 0) return arena_printf(d->arena, "%s", path);
    return arena_printf(d->arena, "%s:%u:%u", path, loc.line, loc.col);
}

/* The text of line `line` (1-based) of f, and its length. */
static const char *line_text(const SourceFile *f, uint32_t line, size_t *len) {
    if (!f->text) return NULL;
    const char *p = f->text, *end = f->text + f->size;
    for (uint32_t l = 1; l < line; l++) {
        const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        if (!nl) return NULL; /* no such line: a built program has no source text */
        p = nl + 1;
    }
    const char *e = memchr(p, '\n', (size_t)(end - p));
    *len = (size_t)((e ? e : end) - p);
    return p;
}

static void print_one(const DiagList *d, const Diag *g, FILE *out) {
    static const char *sev[] = {"error", "warning", "note"};
    fprintf(out, "%s: %s: %s\n", diag_loc_str(d, g->loc), sev[g->severity], g->msg);
    const SourceFile *f = source_get(d->sources, g->loc.file);
    size_t len;
    const char *text = f && g->loc.line ? line_text(f, g->loc.line, &len) : NULL;
    if (!text) return;
    fprintf(out, "  %.*s\n  ", (int)len, text);
    for (uint32_t c = 1; c < g->loc.col && c <= len; c++)
        fputc(text[c - 1] == '\t' ? '\t' : ' ', out);
    fputc('^', out);
    for (uint32_t i = 1; i < g->loc.len && g->loc.col + i <= len; i++)
        fputc('~', out);
    fputc('\n', out);
}

static bool same_diag(const Diag *a, const Diag *b) {
    for (; a && b; a = a->note, b = b->note)
        if (a->severity != b->severity || a->loc.file != b->loc.file ||
            a->loc.line != b->loc.line || a->loc.col != b->loc.col || !a->msg || !b->msg ||
            strcmp(a->msg, b->msg) != 0)
            return false;
    return !a && !b;
}

/* An item of d identical (place, text and notes) to an earlier one: the same
 * error reached again, e.g. once per inlined call of a function. */
static bool repeats_earlier(const DiagList *d, const Diag *g) {
    for (int i = 0; i < d->n && d->items[i] != g; i++)
        if (same_diag(d->items[i], g)) return true;
    return false;
}

void diag_print(const DiagList *d, const Diag *g, FILE *out) {
    if (repeats_earlier(d, g)) return; /* printed once */
    for (; g; g = g->note)
        print_one(d, g, out);
}

void diag_print_all(const DiagList *d, FILE *out) {
    for (int i = 0; i < d->n; i++)
        diag_print(d, d->items[i], out);
    if (d->nerrors > d->max_errors)
        fprintf(out, "dflow: %d more errors not shown\n", d->nerrors - d->max_errors);
}
