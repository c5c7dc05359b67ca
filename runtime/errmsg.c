/* Error messages into a caller's buffer (errmsg.h). */
#include "runtime/errmsg.h"

#include <stdarg.h>
#include <stdio.h>

void rt_errmsg(char *err, size_t errn, const char *fmt, ...) {
    if (!err || !errn) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errn, fmt, ap);
    va_end(ap);
}

void rt_errmsg_at(char *err, size_t errn, const char *name, const char *fmt, ...) {
    if (!err || !errn) return;
    int k = snprintf(err, errn, "%s: ", name);
    if (k < 0 || (size_t)k >= errn) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errn - (size_t)k, fmt, ap);
    va_end(ap);
}
