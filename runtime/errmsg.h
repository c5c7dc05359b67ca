/* Error messages into a caller's buffer: how the data readers and writers
 * (npy, CSV, IDX, gzip and whole files, metrics folders) hand back the one
 * line that says what went wrong.
 *
 * Contract: the message is formatted into err[0..errn) and truncated to fit
 * (always NUL-terminated); nothing is written when err is NULL or errn is
 * 0, so a caller that does not want the reason may pass NULL, 0. */
#ifndef DFLOW_RUNTIME_ERRMSG_H
#define DFLOW_RUNTIME_ERRMSG_H

#include <stddef.h>

/* The message as printf would write it. */
void rt_errmsg(char *err, size_t errn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "NAME: " (a file's path, or the name it is read under) then the message;
 * when the name alone fills err, the message is left out. */
void rt_errmsg_at(char *err, size_t errn, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
