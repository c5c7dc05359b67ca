/* The record of a run: metrics.csv and summary.json in the output folder.
 *
 * metrics.csv has one row per call of rt_metrics_row: `step`, then every
 * value name in the order first seen, then `loss` (always the last value
 * column when present), then `time_s` (seconds since the run began). A cell
 * is empty when the row did not record that name, or the row has no step.
 * The column set is the union of the names seen so far: when a row brings a
 * new name the file is rewritten whole through a temporary and rename
 * (metrics are small), otherwise the row is appended in one write and flushed
 * at once, so an interrupted run keeps every row; a row a failed write tore
 * is cut off again, and the failure is returned (the caller ends the run).
 * summary.json records the program, seed, RNG version, step count, the last
 * value of every column ("final"), wall time and training speed.
 * Rows are also kept in memory (for summaries and tests), also when no
 * folder is given (then nothing is written). Caller owns: rt_metrics_free. */
#ifndef DFLOW_RUNTIME_METRICS_H
#define DFLOW_RUNTIME_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct RtMetrics RtMetrics;

/* dir: the output folder, created like `mkdir -p`; NULL keeps rows in memory
 * only. Returns NULL with a reason in err when the folder cannot be made. */
RtMetrics *rt_metrics_new(const char *dir, char *err, size_t errn);
/* The same for a run that resumes into dir: the rows of an existing
 * dir/metrics.csv are read back (and kept in memory, so the summary's final
 * values and later rows see them), up to and including the last row whose
 * step is <= keep_step (keep_step < 0: every row); a torn last row (no
 * newline: the run died inside a write) and the rows after keep_step (the
 * resumed run computes them again) are cut from the file, which is then
 * rewritten through a temporary and rename. A header that is not a metrics
 * header, a whole row with the wrong number of cells or a cell that is not
 * a number is an error naming the file and line; nothing is changed then. */
RtMetrics *rt_metrics_resume(const char *dir, int64_t keep_step, char *err, size_t errn);
/* A metrics.csv read for looking at (dflow plot): in memory only, never
 * written; a torn last row is left out. Errors as rt_metrics_resume's. */
RtMetrics *rt_metrics_load(const char *path, char *err, size_t errn);
/* The value of column name ("step", a value name or "time_s") in row; false
 * when the row has none (an empty cell). */
bool rt_metrics_get(const RtMetrics *m, int row, const char *name, double *value);
void rt_metrics_free(RtMetrics *m);

/* Appends a row: step (< 0: no step), n (name, value) pairs, time_s.
 * A NaN value is written as "nan", infinities as "inf"/"-inf". Names must
 * not be "step" or "time_s" (reserved; false with a reason). Returns false
 * with a reason when the file cannot be written (the row is still kept). */
bool rt_metrics_row(RtMetrics *m, int64_t step, int n, const char *const *names,
                    const double *values, double time_s, char *err, size_t errn);

/* What was recorded: columns in file order ("step", values..., "loss", "time_s"). */
int rt_metrics_nrows(const RtMetrics *m);
int rt_metrics_ncols(const RtMetrics *m);
const char *rt_metrics_col(const RtMetrics *m, int i);
/* The last value recorded for name; false when never recorded. */
bool rt_metrics_last(const RtMetrics *m, const char *name, double *value);
/* Path of metrics.csv, or NULL when writing nothing. */
const char *rt_metrics_csv_path(const RtMetrics *m);

typedef struct {
    const char *program; /* the program file as given */
    uint64_t seed;
    const char *rng;     /* "philox4x32-10/v2" */
    const char *backend; /* "interp", ... */
    const char *status;  /* "completed", "interrupted", "failed" */
    int64_t steps;       /* optimizer steps taken (all train blocks) */
    double wall_s;       /* the whole run */
    double train_s;      /* inside training loops: steps_per_s = steps / train_s */
} RtRunSummary;

/* Writes DIR/summary.json; a no-op (true) when the metrics have no folder. */
bool rt_metrics_write_summary(const RtMetrics *m, const RtRunSummary *s, char *err, size_t errn);

/* `mkdir -p path`; false with a reason in err. */
bool rt_mkdir_p(const char *path, char *err, size_t errn);

#endif
