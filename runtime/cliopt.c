/* Command-line option helpers (cliopt.h). */
#include "cliopt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool rt_parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end) return false;
    *out = (uint64_t)v;
    return true;
}

bool rt_opt_is(const char *arg, const char *name, const char **val) {
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0) return false;
    if (arg[n] == '\0') {
        *val = NULL;
        return true;
    }
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return true;
    }
    return false;
}
