/* Numeric CSV into a 2-D tensor: rows x columns of f32, f64, i32 or i64.
 *
 * One pass over the (possibly gzipped) file: lines split on '\n' (a '\r'
 * before it is dropped), cells on ',', spaces around a cell and one pair of
 * double quotes are ignored. The first row is a header, and skipped, when one
 * of its cells is not a number; every other row must have the first row's
 * column count and only numbers ("nan" and "inf" count, as strtod reads
 * them). Integer dtypes want integral values in range. Blank lines are
 * allowed only at the end. Errors name the place: "f.csv:7: expected 4
 * columns, found 3", "f.csv:3:2: not a number: 'abc'". Values collect in a
 * growable array of 8-byte cells, then convert to the requested dtype. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/dataio.h"

#define CSV_MAX_FIELD 64 /* characters quoted back in an error */

typedef union {
    double f;
    int64_t i;
} Cell;

static void fail(char *err, size_t errn, const char *fmt, ...) {
    if (!err || !errn) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

/* Next cell of the line [*p, end): trims spaces and one pair of quotes.
 * Moves *p past the comma; sets *more when a comma followed. */
static void next_cell(const char **p, const char *end, const char **cs, const char **ce,
                      bool *more) {
    const char *s = *p;
    bool quoted = false;
    const char *q = s;
    while (q < end && (*q == ' ' || *q == '\t')) q++;
    if (q < end && *q == '"') quoted = true;
    const char *e = s;
    bool inq = false;
    while (e < end && (inq || *e != ',')) {
        if (*e == '"') inq = !inq;
        e++;
    }
    *more = e < end;
    *p = e < end ? e + 1 : e;
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
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

RtTensor *rt_csv_read(const char *path, DType dt, bool *had_header, char *err, size_t errn) {
    if (had_header) *had_header = false;
    if (dt != DT_F32 && dt != DT_F64 && dt != DT_I32 && dt != DT_I64) {
        fail(err, errn, "%s: cannot read CSV as %s", path, rt_dtype_name(dt));
        return NULL;
    }
    unsigned char *buf;
    size_t n;
    if (!rt_read_file(path, &buf, &n, err, errn)) return NULL;
    const char *p = (const char *)buf, *end = p + n;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3; /* UTF-8 BOM */

    Cell *cells = NULL;
    size_t ncells = 0, cap = 0;
    int64_t rows = 0;
    long cols = -1, line = 0, blank_line = 0;
    bool header = false, ok = true;
    RtTensor *t = NULL;
    while (p < end && ok) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        line++;
        const char *ls = p;
        p = eol ? eol + 1 : end;
        if (le > ls && le[-1] == '\r') le--;
        const char *b = ls;
        while (b < le && (*b == ' ' || *b == '\t')) b++;
        if (b == le) {
            if (!blank_line) blank_line = line;
            continue;
        }
        if (blank_line) {
            fail(err, errn, "%s:%ld: blank line inside the data", path, blank_line);
            ok = false;
            break;
        }
        /* count the cells first: a ragged row is reported as such */
        long ncol = 0;
        bool more = true;
        const char *q = ls, *cs, *ce;
        bool numeric = true;
        while (more) {
            next_cell(&q, le, &cs, &ce, &more);
            if (numeric && !is_number(cs, ce)) numeric = false;
            ncol++;
        }
        if (cols < 0) {
            cols = ncol;
            if (!numeric) {
                header = true;
                continue;
            }
        } else if (ncol != cols) {
            fail(err, errn, "%s:%ld: expected %ld columns, found %ld", path, line, cols, ncol);
            ok = false;
            break;
        }
        if (ncells + (size_t)ncol > cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            while (ncap < ncells + (size_t)ncol) ncap *= 2;
            Cell *nc = realloc(cells, ncap * sizeof *nc);
            if (!nc) {
                fail(err, errn, "%s: out of memory", path);
                ok = false;
                break;
            }
            cells = nc;
            cap = ncap;
        }
        q = ls;
        more = true;
        for (long c = 1; more; c++) {
            next_cell(&q, le, &cs, &ce, &more);
            if (!parse_cell(cs, ce, dt, &cells[ncells])) {
                int w = (int)(ce - cs) > CSV_MAX_FIELD ? CSV_MAX_FIELD : (int)(ce - cs);
                if ((dt == DT_I32 || dt == DT_I64) && is_number(cs, ce))
                    fail(err, errn, "%s:%ld:%ld: not an integer in range for %s: '%.*s'", path,
                         line, c, rt_dtype_name(dt), w, cs);
                else
                    fail(err, errn, "%s:%ld:%ld: not a number: '%.*s'", path, line, c, w, cs);
                ok = false;
                break;
            }
            ncells++;
        }
        rows++;
    }
    if (ok && cols < 0) {
        fail(err, errn, "%s: empty file", path);
        ok = false;
    } else if (ok && rows == 0) {
        fail(err, errn, "%s: no data rows after the header", path);
        ok = false;
    }
    if (ok) {
        int64_t dims[2] = {rows, cols};
        t = rt_tensor_new(dt, rt_shape_make(2, dims));
        if (!t) {
            fail(err, errn, "%s: cannot allocate %lld x %ld", path, (long long)rows, cols);
        } else {
            for (size_t i = 0; i < ncells; i++) {
                switch (dt) {
                case DT_F32: ((float *)t->data)[i] = (float)cells[i].f; break;
                case DT_F64: ((double *)t->data)[i] = cells[i].f; break;
                case DT_I32: ((int32_t *)t->data)[i] = (int32_t)cells[i].i; break;
                default: ((int64_t *)t->data)[i] = cells[i].i; break;
                }
            }
            if (had_header) *had_header = header;
        }
    }
    free(cells);
    free(buf);
    return t;
}
