/* --set value texts (config_text.h). */
#include "runtime/config_text.h"

#include "runtime/closest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool rt_config_parse(char type, const char *name, const char *text, RtConfigValue *v, char *why,
                     size_t whyn) {
    const char *t = text ? text : "";
    char *end;
    const char *what = NULL;
    memset(v, 0, sizeof *v);
    switch (type) {
    case 'i':
        errno = 0;
        v->i = strtoll(t, &end, 10);
        if (*t && !*end && errno == 0) return true;
        what = "an int";
        break;
    case 'f':
        errno = 0;
        v->f = strtod(t, &end);
        if (*t && !*end && errno == 0) return true;
        what = "a float";
        break;
    case 'b':
        if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0) {
            v->b = t[0] == 't';
            return true;
        }
        what = "a bool (true or false)";
        break;
    case 's':
        return true;
    default:
        what = "of an unknown type";
        break;
    }
    if (why && whyn) snprintf(why, whyn, "'%s' is %s; --set gave '%s'", name, what, t);
    return false;
}

void rt_config_unknown_key(const char *key, const char *const *keys, int nkeys, char *why,
                           size_t whyn) {
    if (!why || !whyn) return;
    const char *near = rt_closest(key, keys, nkeys);
    if (near)
        snprintf(why, whyn, "unknown config key '%s' (did you mean '%s'?)", key, near);
    else if (nkeys == 0)
        snprintf(why, whyn, "unknown config key '%s' (the program has no config)", key);
    else
        snprintf(why, whyn, "unknown config key '%s'", key);
}
