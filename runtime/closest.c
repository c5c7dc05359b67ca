/* "Did you mean": the closest of a few names (closest.h). */
#include "runtime/closest.h"

#include <string.h>

/* Optimal string alignment distance: insertions, deletions, substitutions
 * and adjacent transpositions ("mnsit" is one edit from "mnist"). */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    }
    return d[la][lb];
}

const char *rt_closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 99;
    int limit = (int)strlen(name) / 3;
    if (limit < 1) limit = 1;
    if (limit > 3) limit = 3;
    for (int i = 0; i < n; i++) {
        if (!cands[i] || strcmp(cands[i], name) == 0) continue;
        int d = edit_distance(name, cands[i]);
        if (d < bd) {
            bd = d;
            best = cands[i];
        }
    }
    return bd <= limit ? best : NULL;
}
