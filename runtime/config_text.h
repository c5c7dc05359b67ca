/* The text of a --set value, type-checked against its config.
 *
 * One parse for `dflow run --set` (frontend/compile.c) and the --set of an
 * executable `dflow build` made (cli/built/main.c), so that both accept the
 * same texts and refuse the others with the same message. Types: 'i' an int
 * (decimal, in the int64 range), 'f' a float (what strtod reads in full, in
 * range: "1e400" is refused), 'b' a bool ("true" or "false"), 's' any text.
 * An unknown key gets one message too, with the same "did you mean". */
#ifndef DFLOW_RUNTIME_CONFIG_TEXT_H
#define DFLOW_RUNTIME_CONFIG_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t i;
    double f;
    bool b;
} RtConfigValue;

/* False with "'NAME' is an int; --set gave 'TEXT'" (or a float, a bool) in why. */
bool rt_config_parse(char type, const char *name, const char *text, RtConfigValue *v, char *why,
                     size_t whyn);

/* "unknown config key 'KEY' (did you mean 'lr'?)", "... (the program has no
 * config)" or the bare sentence, into why; keys are the program's configs. */
void rt_config_unknown_key(const char *key, const char *const *keys, int nkeys, char *why,
                           size_t whyn);

#endif
