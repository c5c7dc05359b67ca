/* Command-line option helpers shared by `dflow` and the executables it
 * builds: "--name value" / "--name=value" matching and a strict unsigned
 * parse (no sign, no spaces, no trailing characters, no overflow). */
#ifndef DFLOW_RUNTIME_CLIOPT_H
#define DFLOW_RUNTIME_CLIOPT_H

#include <stdbool.h>
#include <stdint.h>

/* Matches "--name" (*val = NULL) or "--name=value" (*val = "value"). */
bool rt_opt_is(const char *arg, const char *name, const char **val);
bool rt_parse_u64(const char *s, uint64_t *out);

#endif
