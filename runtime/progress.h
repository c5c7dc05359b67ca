/* The one-line progress display of a running program.
 *
 * Shows "step 1200/3000  loss 0.2134  812 steps/s  ETA 2s" on one line of a
 * terminal (rewritten in place with "\r" and an erase-line sequence), at most
 * about ten times a second so that printing never shows up in a profile. It
 * is off unless enabled: the caller decides (the CLI enables it only when
 * stderr is a terminal), so pipes and log files never see control codes.
 * Lines printed elsewhere while it is shown should call rt_progress_clear
 * first so they do not land in the middle of the progress line. Caller owns
 * the object: rt_progress_free. */
#ifndef DFLOW_RUNTIME_PROGRESS_H
#define DFLOW_RUNTIME_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct RtProgress RtProgress;

/* out: where to draw (stderr); enabled false gives a silent object. */
RtProgress *rt_progress_new(FILE *out, bool enabled);
void rt_progress_free(RtProgress *p);

/* Starts a new phase (a train block, a long loop): resets the rate clock.
 * label may be NULL; total is the number of steps of the phase. */
void rt_progress_begin(RtProgress *p, const char *label, int64_t total);
/* Reports that `step` of `total` steps are done; loss may be NaN (not
 * shown). Redraws only when ~0.1 s passed since the last draw (or force). */
void rt_progress_update(RtProgress *p, int64_t step, double loss, bool force);
/* Erases the line if it is shown (before printing something else). */
void rt_progress_clear(RtProgress *p);
/* Ends the phase: draws the final state and moves to a fresh line. */
void rt_progress_end(RtProgress *p);

/* Formats the line into buf without drawing (tests, logs). rate in steps/s,
 * NaN or <= 0 when unknown. Returns buf. */
char *rt_progress_format(char *buf, size_t n, const char *label, int64_t step, int64_t total,
                         double loss, double rate);

/* Monotonic seconds, for rates and wall times. */
double rt_now_s(void);

#endif
