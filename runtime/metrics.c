/* metrics.csv and summary.json (see metrics.h).
 *
 * Rows are stored sparsely (column ids + values) in memory. A value column
 * gets an id when first seen; the file order is: step, value columns by id
 * except "loss", loss, time_s. Appending writes one line in one write and
 * flushes (a row torn by a failed write is cut off again); a new column
 * rewrites the whole file through a temporary name and rename()
 * (runtime/outfile.h), so a reader never sees a half-written header. Numbers use %.9g, which
 * round-trips f32 and keeps the file short. */
#include "runtime/metrics.h"

#include "runtime/dataio.h"
#include "runtime/errmsg.h"
#include "runtime/grow.h"
#include "runtime/outfile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    int64_t step; /* < 0: none */
    double time_s;
    int n;
    int *cols;
    double *vals;
} Row;

struct RtMetrics {
    char *dir, *csv_path;
    FILE *csv;
    char **names; /* value columns by id */
    int nnames, cap_names;
    int loss_id; /* id of "loss", or -1 */
    Row *rows;
    int nrows, cap_rows;
    int written_cols; /* value columns in the file header now */
    bool broken;      /* a write failed: stop trying */
};

bool rt_mkdir_p(const char *path, char *err, size_t errn) {
    if (!path || !path[0]) {
        rt_errmsg(err, errn, "empty folder name");
        return false;
    }
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf) {
        rt_errmsg_at(err, errn, path, "out of memory");
        return false;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            rt_errmsg(err, errn, "cannot create folder '%s': %s", buf, strerror(errno));
            free(buf);
            return false;
        }
        buf[i] = c;
    }
    struct stat st;
    bool ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok) rt_errmsg(err, errn, "'%s' exists and is not a folder", path);
    free(buf);
    return ok;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

RtMetrics *rt_metrics_new(const char *dir, char *err, size_t errn) {
    RtMetrics *m = calloc(1, sizeof *m);
    if (!m) {
        rt_errmsg(err, errn, "out of memory");
        return NULL;
    }
    m->loss_id = -1;
    if (dir) {
        if (!rt_mkdir_p(dir, err, errn)) {
            free(m);
            return NULL;
        }
        m->dir = dup_str(dir);
        size_t n = strlen(dir) + 32;
        m->csv_path = malloc(n);
        if (!m->dir || !m->csv_path) {
            rt_metrics_free(m);
            rt_errmsg(err, errn, "out of memory");
            return NULL;
        }
        snprintf(m->csv_path, n, "%s/metrics.csv", dir);
    }
    return m;
}

void rt_metrics_free(RtMetrics *m) {
    if (!m) return;
    if (m->csv) fclose(m->csv);
    for (int i = 0; i < m->nnames; i++)
        free(m->names[i]);
    free(m->names);
    for (int i = 0; i < m->nrows; i++) {
        free(m->rows[i].cols);
        free(m->rows[i].vals);
    }
    free(m->rows);
    free(m->dir);
    free(m->csv_path);
    free(m);
}

static int find_name(const RtMetrics *m, const char *name) {
    for (int i = 0; i < m->nnames; i++)
        if (strcmp(m->names[i], name) == 0) return i;
    return -1;
}

static int add_name(RtMetrics *m, const char *name) {
    if (!rt_grow(&m->names, &m->cap_names, (size_t)m->nnames + 1, 8)) return -1;
    char *s = dup_str(name);
    if (!s) return -1;
    m->names[m->nnames] = s;
    if (strcmp(name, "loss") == 0) m->loss_id = m->nnames;
    return m->nnames++;
}

/* Value column ids in file order: every id but loss, then loss. */
static int order_ids(const RtMetrics *m, int *ids) {
    int k = 0;
    for (int i = 0; i < m->nnames; i++)
        if (i != m->loss_id) ids[k++] = i;
    if (m->loss_id >= 0) ids[k++] = m->loss_id;
    return k;
}

static void put_name(FILE *f, const char *s) {
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void put_num(FILE *f, double v) {
    if (isnan(v))
        fputs("nan", f);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.9g", v);
}

static void write_header(const RtMetrics *m, FILE *f, const int *ids, int k) {
    fputs("step", f);
    for (int i = 0; i < k; i++) {
        fputc(',', f);
        put_name(f, m->names[ids[i]]);
    }
    fputs(",time_s\n", f);
}

static void write_row(FILE *f, const Row *r, const int *ids, int k) {
    if (r->step >= 0) fprintf(f, "%lld", (long long)r->step);
    for (int i = 0; i < k; i++) {
        fputc(',', f);
        for (int j = 0; j < r->n; j++)
            if (r->cols[j] == ids[i]) {
                put_num(f, r->vals[j]);
                break;
            }
    }
    fprintf(f, ",%.3f\n", r->time_s);
}

/* Writes the whole file under a temporary name, then renames it into place. */
static bool rewrite(RtMetrics *m, char *err, size_t errn) {
    if (m->csv) {
        fclose(m->csv);
        m->csv = NULL;
    }
    int *ids = malloc(sizeof *ids * (size_t)(m->nnames + 1));
    if (!ids) {
        rt_errmsg(err, errn, "out of memory");
        return false;
    }
    RtOutFile o;
    if (!rt_out_open(&o, m->csv_path, 0666, err, errn)) {
        free(ids);
        return false;
    }
    int k = order_ids(m, ids);
    write_header(m, o.f, ids, k);
    for (int i = 0; i < m->nrows; i++)
        write_row(o.f, &m->rows[i], ids, k);
    free(ids);
    if (!rt_out_commit(&o, err, errn)) return false;
    m->written_cols = m->nnames;
    m->csv = fopen(m->csv_path, "a");
    if (!m->csv) {
        rt_out_error(err, errn, m->csv_path, errno);
        return false;
    }
    return true;
}

/* Appends one row in a single write and flushes it; when the write fails
 * part-way (a full disk), the torn row is cut off again, so the file keeps
 * only whole rows. */
static bool append_row(RtMetrics *m, const Row *r, char *err, size_t errn) {
    int *ids = malloc(sizeof *ids * (size_t)(m->nnames + 1));
    char *line = NULL;
    size_t len = 0;
    FILE *mem = ids ? open_memstream(&line, &len) : NULL;
    if (!mem) {
        free(ids);
        rt_errmsg(err, errn, "out of memory");
        return false;
    }
    int k = order_ids(m, ids);
    write_row(mem, r, ids, k);
    free(ids);
    bool ok = fclose(mem) == 0;
    if (!ok) {
        free(line);
        rt_errmsg(err, errn, "out of memory");
        return false;
    }
    /* write(2), not stdio: no buffer may hold a torn row to flush later */
    int fd = fileno(m->csv);
    struct stat st;
    off_t before = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
    size_t done = 0;
    int e = 0;
    while (done < len && !e) {
        ssize_t w = write(fd, line + done, len - done);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && errno != EINTR)
            e = errno;
        else if (w == 0)
            e = EIO;
    }
    free(line);
    if (!e) return true;
    /* best effort: a device has nothing to cut */
    if (before >= 0 && ftruncate(fd, before) != 0) before = -1;
    rt_out_error(err, errn, m->csv_path, e);
    return false;
}

/* The in-memory half of rt_metrics_row: stores the row, giving new names ids. */
static bool store_row(RtMetrics *m, int64_t step, int n, const char *const *names,
                      const double *values, double time_s, char *err, size_t errn) {
    if (!rt_grow(&m->rows, &m->cap_rows, (size_t)m->nrows + 1, 64)) {
        rt_errmsg(err, errn, "out of memory");
        return false;
    }
    Row r = {step, time_s, 0, NULL, NULL};
    if (n > 0) {
        r.cols = malloc(sizeof *r.cols * (size_t)n);
        r.vals = malloc(sizeof *r.vals * (size_t)n);
        if (!r.cols || !r.vals) {
            free(r.cols);
            free(r.vals);
            rt_errmsg(err, errn, "out of memory");
            return false;
        }
    }
    for (int i = 0; i < n; i++) {
        int id = find_name(m, names[i]);
        if (id < 0) id = add_name(m, names[i]);
        if (id < 0) {
            free(r.cols);
            free(r.vals);
            rt_errmsg(err, errn, "out of memory");
            return false;
        }
        int j = 0; /* a name given twice in one row: the later value wins */
        while (j < r.n && r.cols[j] != id)
            j++;
        r.cols[j] = id;
        r.vals[j] = values[i];
        if (j == r.n) r.n++;
    }
    m->rows[m->nrows++] = r;
    return true;
}

bool rt_metrics_row(RtMetrics *m, int64_t step, int n, const char *const *names,
                    const double *values, double time_s, char *err, size_t errn) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], "step") == 0 || strcmp(names[i], "time_s") == 0) {
            rt_errmsg(err, errn, "'%s' is a reserved metrics column; log it under another name",
                      names[i]);
            return false;
        }
    if (!store_row(m, step, n, names, values, time_s, err, errn)) return false;
    if (!m->csv_path || m->broken) return true;
    bool ok = !m->csv || m->written_cols != m->nnames
                  ? rewrite(m, err, errn)
                  : append_row(m, &m->rows[m->nrows - 1], err, errn);
    if (!ok) m->broken = true;
    return ok;
}

/* ---- resuming: reading metrics.csv back ---- */

/* Splits one CSV line (no newline) into cells in place; a quoted cell may
 * hold commas and doubled quotes (names only). Returns the count, or -1 on
 * an unterminated quote or more than max cells. */
static int split_cells(char *line, char **cells, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return -1;
        if (*p == '"') {
            char *w = ++p;
            cells[n++] = w;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            *w = '\0';
            if (*p != ',' && *p) return -1;
        } else {
            cells[n++] = p;
            p += strcspn(p, ",");
        }
        if (!*p) return n;
        *p++ = '\0';
    }
}

static bool parse_num(const char *c, double *v) {
    char *end;
    errno = 0;
    *v = strtod(c, &end);
    return c[0] && !*end;
}

static bool parse_step(const char *c, int64_t *step) {
    char *end;
    errno = 0;
    long long v = strtoll(c, &end, 10);
    *step = v;
    return c[0] && !*end && errno == 0 && v >= 0;
}

/* Reads the rows of one line of a metrics file with the header's names;
 * false with the reason when a cell is not a number. */
static bool read_row(RtMetrics *m, char **cells, int ncells, char *const *names, double *vals,
                     const char **present, int64_t *step, char *err, size_t errn) {
    double t;
    if (!cells[0][0])
        *step = -1;
    else if (!parse_step(cells[0], step)) {
        rt_errmsg(err, errn, "step '%s' is not a step number", cells[0]);
        return false;
    }
    if (!parse_num(cells[ncells - 1], &t)) {
        rt_errmsg(err, errn, "time_s '%s' is not a number", cells[ncells - 1]);
        return false;
    }
    int k = 0;
    for (int i = 1; i < ncells - 1; i++) {
        if (!cells[i][0]) continue;
        if (!parse_num(cells[i], &vals[k])) {
            rt_errmsg(err, errn, "%s '%s' is not a number", names[i], cells[i]);
            return false;
        }
        present[k++] = names[i];
    }
    return store_row(m, *step, k, present, vals, t, err, errn);
}

/* Parses text (n bytes) into m. *keep: bytes of whole rows to keep (the
 * rest is a torn last row or rows after keep_step). */
static bool read_csv(RtMetrics *m, char *text, size_t n, int64_t keep_step, size_t *keep, char *err,
                     size_t errn) {
    char **cells = NULL, **names = NULL;
    const char **present = NULL;
    double *vals = NULL;
    bool ok = false;
    size_t pos = 0;
    int line = 0, ncols = 0;
    *keep = 0;
    char why[256];
    while (pos < n) {
        char *nl = memchr(text + pos, '\n', n - pos);
        if (!nl) break; /* a torn last row: cut */
        *nl = '\0';
        char *l = text + pos;
        size_t next = (size_t)(nl - text) + 1;
        line++;
        if (line == 1) {
            int cap = 1;
            for (char *c = l; *c; c++)
                cap += *c == ',';
            cells = malloc(sizeof *cells * (size_t)cap);
            names = malloc(sizeof *names * (size_t)cap);
            vals = malloc(sizeof *vals * (size_t)cap);
            present = malloc(sizeof *present * (size_t)cap);
            if (!cells || !names || !vals || !present) {
                rt_errmsg(err, errn, "out of memory");
                goto done;
            }
            ncols = split_cells(l, cells, cap);
            if (ncols < 2 || strcmp(cells[0], "step") || strcmp(cells[ncols - 1], "time_s")) {
                rt_errmsg_at(err, errn, m->csv_path,
                             "line 1 is not a metrics header (step, ..., time_s)");
                goto done;
            }
            for (int i = 0; i < ncols; i++) {
                names[i] = cells[i];
                if (i > 0 && i < ncols - 1 && find_name(m, cells[i]) < 0 &&
                    add_name(m, cells[i]) < 0) {
                    rt_errmsg(err, errn, "out of memory");
                    goto done;
                }
            }
            /* the names must outlive the cells of later lines */
            for (int i = 0; i < ncols; i++)
                names[i] = m->names[i > 0 && i < ncols - 1 ? find_name(m, cells[i]) : 0];
            names[0] = "step";
            names[ncols - 1] = "time_s";
        } else {
            int64_t step;
            int got = split_cells(l, cells, ncols);
            if (got != ncols) {
                rt_errmsg_at(err, errn, m->csv_path, "line %d has %d cells, the header %d", line,
                             got < 0 ? ncols + 1 : got, ncols);
                goto done;
            }
            if (!read_row(m, cells, ncols, names, vals, present, &step, why, sizeof why)) {
                rt_errmsg_at(err, errn, m->csv_path, "line %d: %s", line, why);
                goto done;
            }
            if (keep_step >= 0 && step > keep_step) { /* this row and later: redone */
                Row *r = &m->rows[--m->nrows];
                free(r->cols);
                free(r->vals);
                break;
            }
        }
        pos = next;
        *keep = pos;
    }
    if (line == 0) *keep = 0; /* nothing whole: start afresh */
    ok = true;
done:
    free(cells);
    free(names);
    free(vals);
    free(present);
    return ok;
}

RtMetrics *rt_metrics_load(const char *path, char *err, size_t errn) {
    RtMetrics *m = rt_metrics_new(NULL, err, errn);
    if (!m) return NULL;
    unsigned char *text = NULL;
    size_t n = 0, keep;
    m->csv_path = dup_str(path); /* for messages; never written: broken */
    m->broken = true;
    bool ok = m->csv_path && rt_read_file(path, &text, &n, err, errn);
    if (ok && memchr(text, '\0', n)) {
        rt_errmsg_at(err, errn, path, "a NUL byte: not a metrics file");
        ok = false;
    }
    ok = ok && read_csv(m, (char *)text, n, -1, &keep, err, errn);
    free(text);
    if (!ok) {
        rt_metrics_free(m);
        return NULL;
    }
    return m;
}

bool rt_metrics_get(const RtMetrics *m, int row, const char *name, double *value) {
    if (row < 0 || row >= m->nrows) return false;
    const Row *r = &m->rows[row];
    if (strcmp(name, "step") == 0) {
        *value = (double)r->step;
        return r->step >= 0;
    }
    if (strcmp(name, "time_s") == 0) {
        *value = r->time_s;
        return true;
    }
    int id = find_name(m, name);
    for (int j = 0; id >= 0 && j < r->n; j++)
        if (r->cols[j] == id) {
            *value = r->vals[j];
            return true;
        }
    return false;
}

RtMetrics *rt_metrics_resume(const char *dir, int64_t keep_step, char *err, size_t errn) {
    RtMetrics *m = rt_metrics_new(dir, err, errn);
    if (!m || !dir) return m;
    FILE *f = fopen(m->csv_path, "rb");
    if (!f) {
        if (errno == ENOENT) return m;
        rt_out_error(err, errn, m->csv_path, errno);
        rt_metrics_free(m);
        return NULL;
    }
    char *text = NULL;
    size_t n = 0, cap = 0;
    bool ok = true;
    for (;;) {
        if (n + 65536 > cap && !rt_grow(&text, &cap, n + 65536, 65536)) {
            rt_errmsg(err, errn, "out of memory");
            ok = false;
            break;
        }
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ok && ferror(f)) {
        rt_out_error(err, errn, m->csv_path, errno ? errno : EIO);
        ok = false;
    }
    fclose(f);
    size_t keep = 0;
    if (ok && memchr(text, '\0', n)) {
        rt_errmsg_at(err, errn, m->csv_path, "a NUL byte: not a metrics file");
        ok = false;
    }
    ok = ok && read_csv(m, text, n, keep_step, &keep, err, errn);
    free(text);
    bool empty = m->nnames == 0 && m->nrows == 0;
    if (ok && keep < n && empty) { /* not even a whole header: start afresh */
        if (unlink(m->csv_path) != 0 && errno != ENOENT) {
            rt_out_error(err, errn, m->csv_path, errno);
            ok = false;
        }
    } else if (ok && keep < n) {
        ok = rewrite(m, err, errn);
    } else if (ok && !empty) {
        m->written_cols = m->nnames;
        m->csv = fopen(m->csv_path, "a");
        if (!m->csv) {
            rt_out_error(err, errn, m->csv_path, errno);
            ok = false;
        }
    }
    if (!ok) {
        rt_metrics_free(m);
        return NULL;
    }
    return m;
}

int rt_metrics_nrows(const RtMetrics *m) {
    return m->nrows;
}

int rt_metrics_ncols(const RtMetrics *m) {
    return m->nnames + 2;
}

const char *rt_metrics_col(const RtMetrics *m, int i) {
    if (i == 0) return "step";
    if (i == m->nnames + 1) return "time_s";
    if (i < 0 || i > m->nnames + 1) return NULL;
    /* value columns: same order as the file */
    int k = 0;
    for (int j = 0; j < m->nnames; j++)
        if (j != m->loss_id && ++k == i) return m->names[j];
    return m->loss_id >= 0 ? m->names[m->loss_id] : NULL;
}

bool rt_metrics_last(const RtMetrics *m, const char *name, double *value) {
    int id = find_name(m, name);
    if (id < 0) return false;
    for (int i = m->nrows - 1; i >= 0; i--)
        for (int j = 0; j < m->rows[i].n; j++)
            if (m->rows[i].cols[j] == id) {
                *value = m->rows[i].vals[j];
                return true;
            }
    return false;
}

const char *rt_metrics_csv_path(const RtMetrics *m) {
    return m->csv_path;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinity: they become null. */
static void json_num(FILE *f, double v) {
    if (!isfinite(v))
        fputs("null", f);
    else
        fprintf(f, "%.9g", v);
}

bool rt_metrics_write_summary(const RtMetrics *m, const RtRunSummary *s, char *err, size_t errn) {
    if (!m->dir) return true;
    size_t n = strlen(m->dir) + 32;
    char *path = malloc(n);
    if (!path) {
        rt_errmsg(err, errn, "out of memory");
        return false;
    }
    snprintf(path, n, "%s/summary.json", m->dir);
    RtOutFile o;
    if (!rt_out_open(&o, path, 0666, err, errn)) {
        free(path);
        return false;
    }
    FILE *f = o.f;
    fputs("{\n  \"program\": ", f);
    json_str(f, s->program);
    fprintf(f, ",\n  \"seed\": %llu,\n  \"rng\": ", (unsigned long long)s->seed);
    json_str(f, s->rng);
    fputs(",\n  \"backend\": ", f);
    json_str(f, s->backend);
    fputs(",\n  \"status\": ", f);
    json_str(f, s->status);
    fprintf(f, ",\n  \"steps\": %lld,\n  \"final\": {", (long long)s->steps);
    int *ids = malloc(sizeof *ids * (size_t)(m->nnames + 1));
    int k = ids ? order_ids(m, ids) : 0;
    for (int i = 0; i < k; i++) {
        double v = NAN;
        rt_metrics_last(m, m->names[ids[i]], &v);
        fputs(i ? ",\n    " : "\n    ", f);
        json_str(f, m->names[ids[i]]);
        fputs(": ", f);
        json_num(f, v);
    }
    free(ids);
    fputs(k ? "\n  },\n  \"wall_s\": " : "},\n  \"wall_s\": ", f);
    json_num(f, s->wall_s);
    fputs(",\n  \"steps_per_s\": ", f);
    json_num(f, s->train_s > 0 ? (double)s->steps / s->train_s : 0.0);
    fputs("\n}\n", f);
    bool ok = rt_out_commit(&o, err, errn);
    free(path);
    return ok;
}
