/* Numeric CSV into a 2-D tensor: rows x columns of f32, f64, i32 or i64.
 *
 * One pass over the (possibly gzipped) file: lines split on '\n' (a '\r'
 * before it is dropped), cells on ',', spaces around a cell and one pair of
 * double quotes are ignored. A NUL byte anywhere is an error (a binary file,
 * not text). Every row must have the first row's column count and only
 * numbers ("nan" and "inf" count, as strtod reads them). Integer dtypes, and
 * the integer column of RtCsvOptions (labels), want integral values in range.
 * Blank lines are allowed only at the end.
 *
 * The header rule (RtCsvHeader): AUTO takes the first row as a header when
 * none of its cells is a number, as data when all are, and refuses a row that
 * mixes the two (a header with numeric names, or data with a typo: the user
 * says which with header = true/false). YES refuses a first row of only
 * numbers (it would silently drop a data row); NO reads the first row as data.
 * Errors name the place: "f.csv:7: expected 4 columns, found 3",
 * "f.csv:3:2: not a number: 'abc'". Values collect in a growable array of
 * 8-byte cells, then convert to the requested dtype. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dataio.h"
#include "runtime/errmsg.h"
#include "runtime/grow.h"

#define CSV_MAX_FIELD 64 /* characters quoted back in an error */

typedef union {
    double f;
    int64_t i;
} Cell;

/* Next cell of the line [*p, end): trims spaces and one pair of quotes.
 * Moves *p past the comma; sets *more when a comma followed. */
static void next_cell(const char **p, const char *end, const char **cs, const char **ce,
                      bool *more) {
    const char *s = *p;
    bool quoted = false;
    const char *q = s;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (q < end && *q == '"') quoted = true;
    const char *e = s;
    bool inq = false;
    while (e < end && (inq || *e != ',')) {
        if (*e == '"') inq = !inq;
        e++;
    }
    *more = e < end;
    *p = e < end ? e + 1 : e;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (quoted && e - s >= 2 && *s == '"' && e[-1] == '"') {
        s++;
        e--;
    }
    *cs = s;
    *ce = e;
}

/* Parses [s, e) fully as a number; integers must be exact and in range. */
static bool parse_cell(const char *s, const char *e, DType dt, Cell *out) {
    char tmp[128];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof tmp) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *stop;
    if (dt == DT_I32 || dt == DT_I64) {
        errno = 0;
        long long v = strtoll(tmp, &stop, 10);
        if (*stop == 0 && errno == 0) {
            if (dt == DT_I32 && (v < INT32_MIN || v > INT32_MAX)) return false;
            out->i = v;
            return true;
        }
        /* "3.0" or "1e3" are integers too, when exactly integral */
        double d = strtod(tmp, &stop);
        if (*stop != 0 || !isfinite(d) || d != floor(d)) return false;
        double lo = dt == DT_I32 ? -2147483648.0 : -9223372036854775808.0;
        double hi = dt == DT_I32 ? 2147483647.0 : 9223372036854775807.0;
        if (d < lo || d >= hi + (dt == DT_I32 ? 1.0 : 0.0)) return false;
        out->i = (int64_t)d;
        return true;
    }
    out->f = strtod(tmp, &stop);
    return *stop == 0;
}

static bool is_number(const char *s, const char *e) {
    Cell c;
    return parse_cell(s, e, DT_F64, &c);
}

/* The first NUL byte of a text buffer as "NAME:LINE:COL: ..."; false if none. */
static bool find_nul(const char *name, const char *p, size_t n, char *err, size_t errn) {
    const char *z = memchr(p, 0, n);
    if (!z) return false;
    long line = 1, col = 1;
    for (const char *q = p; q < z; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    rt_errmsg(err, errn, "%s:%ld:%ld: a NUL byte: this is not a text file", name, line, col);
    return true;
}

typedef struct {
    const char *name;
    const RtCsvOptions *o;
    Cell *cells;
    size_t ncells, cap;
    int64_t rows;
    long cols;
    int64_t int_col; /* resolved: -1 none */
    bool header;
    char *err;
    size_t errn;
} Csv;

/* Counts a line's cells and its numeric ones (column of the first text cell in *text_col). */
static long count_cells(const char *ls, const char *le, long *numeric, long *text_col) {
    long ncol = 0;
    bool more = true;
    const char *q = ls, *cs, *ce;
    *numeric = 0;
    *text_col = 0;
    while (more) {
        next_cell(&q, le, &cs, &ce, &more);
        ncol++;
        if (is_number(cs, ce))
            (*numeric)++;
        else if (!*text_col)
            *text_col = ncol;
    }
    return ncol;
}

/* Decides whether the first row (line 1 of the data) is the header; false after an error. */
static bool first_row(Csv *c, long line, long ncol, long numeric, long text_col, bool *skip) {
    c->cols = ncol;
    *skip = false;
    if (c->o->has_int_col) {
        c->int_col = c->o->int_col < 0 ? c->o->int_col + ncol : c->o->int_col;
        if (c->int_col < 0 || c->int_col >= ncol) {
            rt_errmsg(c->err, c->errn, "%s: column %lld is out of range for %ld columns", c->name,
                      (long long)c->o->int_col, ncol);
            return false;
        }
    }
    switch (c->o->header) {
    case RT_CSV_HEADER_NO:
        return true;
    case RT_CSV_HEADER_YES:
        if (numeric == ncol) {
            rt_errmsg(c->err, c->errn,
                      "%s:%ld: header = true, but the first row is all numbers (a data row, not a "
                      "header)",
                      c->name, line);
            return false;
        }
        break;
    case RT_CSV_HEADER_AUTO:
        if (numeric == ncol) return true;
        if (numeric > 0) {
            rt_errmsg(
                c->err, c->errn,
                "%s:%ld:%ld: the first row mixes numbers and text, so it is neither clearly a "
                "header nor data: say header = true or header = false",
                c->name, line, text_col);
            return false;
        }
        break;
    }
    c->header = *skip = true;
    return true;
}

static bool grow(Csv *c, size_t more) {
    if (more <= SIZE_MAX - c->ncells && rt_grow(&c->cells, &c->cap, c->ncells + more, 1024))
        return true;
    rt_errmsg(c->err, c->errn, "%s: out of memory", c->name);
    return false;
}

/* Parses one data row's cells into c->cells. */
static bool data_row(Csv *c, const char *ls, const char *le, long line) {
    bool more = true;
    const char *q = ls, *cs, *ce;
    for (long col = 1; more; col++) {
        next_cell(&q, le, &cs, &ce, &more);
        bool is_int_col = c->int_col == col - 1;
        DType dt = is_int_col ? DT_I32 : c->o->dtype;
        Cell *cell = &c->cells[c->ncells];
        if (!parse_cell(cs, ce, dt, cell)) {
            int w = (int)(ce - cs) > CSV_MAX_FIELD ? CSV_MAX_FIELD : (int)(ce - cs);
            if (is_int_col && is_number(cs, ce))
                rt_errmsg(
                    c->err, c->errn,
                    "%s:%ld:%ld: a label must be an integer from -2147483648 to 2147483647, got "
                    "'%.*s'",
                    c->name, line, col, w, cs);
            else if (dt == DT_I32 || dt == DT_I64)
                rt_errmsg(c->err, c->errn, "%s:%ld:%ld: not an integer in range for %s: '%.*s'",
                          c->name, line, col, rt_dtype_name(dt), w, cs);
            else
                rt_errmsg(c->err, c->errn, "%s:%ld:%ld: not a number: '%.*s'", c->name, line, col,
                          w, cs);
            return false;
        }
        /* the labels of a float table travel as doubles: exact for every i32 */
        if (is_int_col && (c->o->dtype == DT_F32 || c->o->dtype == DT_F64))
            cell->f = (double)cell->i;
        c->ncells++;
    }
    c->rows++;
    return true;
}

/* Walks the lines; false after an error. */
static bool parse_lines(Csv *c, const char *p, const char *end) {
    long line = 0, blank_line = 0;
    c->cols = -1;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        line++;
        const char *ls = p;
        p = eol ? eol + 1 : end;
        if (le > ls && le[-1] == '\r') le--;
        const char *b = ls;
        while (b < le && (*b == ' ' || *b == '\t'))
            b++;
        if (b == le) {
            if (!blank_line) blank_line = line;
            continue;
        }
        if (blank_line) {
            rt_errmsg(c->err, c->errn, "%s:%ld: blank line inside the data", c->name, blank_line);
            return false;
        }
        long numeric, text_col;
        long ncol = count_cells(ls, le, &numeric, &text_col); /* a ragged row is reported as such */
        if (c->cols < 0) {
            bool skip;
            if (!first_row(c, line, ncol, numeric, text_col, &skip)) return false;
            if (skip) continue;
        } else if (ncol != c->cols) {
            rt_errmsg(c->err, c->errn, "%s:%ld: expected %ld columns, found %ld", c->name, line,
                      c->cols, ncol);
            return false;
        }
        if (!grow(c, (size_t)ncol) || !data_row(c, ls, le, line)) return false;
    }
    return true;
}

static RtTensor *to_tensor(Csv *c) {
    DType dt = c->o->dtype;
    int64_t dims[2] = {c->rows, c->cols};
    RtTensor *t = rt_tensor_new(dt, rt_shape_make(2, dims));
    if (!t) {
        rt_errmsg(c->err, c->errn, "%s: cannot allocate %lld x %ld", c->name, (long long)c->rows,
                  c->cols);
        return NULL;
    }
    for (size_t i = 0; i < c->ncells; i++) {
        switch (dt) {
        case DT_F32:
            ((float *)t->data)[i] = (float)c->cells[i].f;
            break;
        case DT_F64:
            ((double *)t->data)[i] = c->cells[i].f;
            break;
        case DT_I32:
            ((int32_t *)t->data)[i] = (int32_t)c->cells[i].i;
            break;
        case DT_I64:
            ((int64_t *)t->data)[i] = c->cells[i].i;
            break;
        case DT_F16:
        case DT_BF16:
        case DT_BOOL:
            break; /* refused by rt_csv_parse before any cell is read */
        }
    }
    return t;
}

RtTensor *rt_csv_parse(const char *name, const unsigned char *buf, size_t n, const RtCsvOptions *o,
                       bool *had_header, char *err, size_t errn) {
    if (had_header) *had_header = false;
    DType dt = o->dtype;
    if (dt != DT_F32 && dt != DT_F64 && dt != DT_I32 && dt != DT_I64) {
        rt_errmsg(err, errn, "%s: cannot read CSV as %s", name, rt_dtype_name(dt));
        return NULL;
    }
    const char *p = (const char *)buf, *end = p + n;
    if (find_nul(name, p, n, err, errn)) return NULL;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3; /* UTF-8 BOM */
    Csv c = {.name = name, .o = o, .int_col = -1, .err = err, .errn = errn};
    RtTensor *t = NULL;
    if (parse_lines(&c, p, end)) {
        if (c.cols < 0)
            rt_errmsg(err, errn, "%s: empty file", name);
        else if (c.rows == 0)
            rt_errmsg(err, errn, "%s: no data rows after the header", name);
        else
            t = to_tensor(&c);
    }
    if (t && had_header) *had_header = c.header;
    free(c.cells);
    return t;
}

RtTensor *rt_csv_read_opts(const char *path, const RtCsvOptions *o, bool *had_header, char *err,
                           size_t errn) {
    if (had_header) *had_header = false;
    unsigned char *buf;
    size_t n;
    if (!rt_read_file(path, &buf, &n, err, errn)) return NULL;
    RtTensor *t = rt_csv_parse(path, buf, n, o, had_header, err, errn);
    free(buf);
    return t;
}

RtTensor *rt_csv_read(const char *path, DType dt, bool *had_header, char *err, size_t errn) {
    RtCsvOptions o = {.dtype = dt, .header = RT_CSV_HEADER_AUTO};
    return rt_csv_read_opts(path, &o, had_header, err, errn);
}
