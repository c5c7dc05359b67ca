/* "Did you mean": the candidate nearest a misspelt name, for messages.
 *
 * Shared by the compiler's unknown-name diagnostics and the --set of built
 * executables, so both suggest the same name. Distance: optimal string
 * alignment (insertions, deletions, substitutions, adjacent transpositions);
 * a suggestion is at most a third of the name's length away (1 to 3 edits). */
#ifndef DFLOW_RUNTIME_CLOSEST_H
#define DFLOW_RUNTIME_CLOSEST_H

/* The nearest of cands[0..n) other than name itself, or NULL when none is near. */
const char *rt_closest(const char *name, const char *const *cands, int n);

#endif
