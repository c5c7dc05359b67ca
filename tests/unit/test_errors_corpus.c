/* The corpus of bad programs: every .dfl file in tests/errors must be rejected by
 * `dflow check` with exit status 1 (never a crash, never a hang: 5 s limit),
 * and each of its `# expect: LINE:COL: error: SUBSTRING` lines must match a
 * printed diagnostic `FILE:LINE:COL: error: ...` whose message contains
 * SUBSTRING (a file without expectations needs one located error). One parameterised test per file,
 * plus a floor on the corpus size so that it cannot silently shrink. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"

#define CORPUS_DIR "tests/errors"
#define MIN_FILES 30
#define MAX_FILES 1024

typedef ThPath Case;

static int list_corpus(Case *out, int max) {
    return th_list_programs(CORPUS_DIR, NULL, out, max);
}

Test(errors_corpus, has_enough_files) {
    static Case cases[MAX_FILES];
    int n = list_corpus(cases, MAX_FILES);
    cr_assert_geq(n, MIN_FILES, "%s holds %d .dfl files; the corpus needs at least %d", CORPUS_DIR,
                  n, MIN_FILES);
}

ParameterizedTestParameters(errors_corpus, file) {
    Case *tmp = malloc(sizeof(Case) * MAX_FILES);
    int n = tmp ? list_corpus(tmp, MAX_FILES) : 0;
    if (n == 0) {
        free(tmp);
        return cr_make_param_array(Case, NULL, 0);
    }
    Case *cases = cr_malloc(sizeof(Case) * (size_t)n);
    memcpy(cases, tmp, sizeof(Case) * (size_t)n);
    free(tmp);
    return cr_make_param_array(Case, cases, (size_t)n);
}

/* Does stderr have "PATH:LINE:COL: error: ...SUB..." on one line? */
static bool has_diag(const char *err, const char *path, int line, int col, const char *sub) {
    char prefix[400];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: error: ", path, line, col);
    size_t pl = strlen(prefix);
    for (const char *p = err; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= pl && strncmp(p, prefix, pl) == 0) {
            char msg[2048];
            snprintf(msg, sizeof msg, "%.*s", (int)(len - pl), p + pl);
            if (strstr(msg, sub)) return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

ParameterizedTest(Case *c, errors_corpus, file) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    char *argv[] = {(char *)bin, "check", c->path, NULL};
    SpawnOptions o = {.timeout_s = 5};
    SpawnResult r;
    cr_assert(th_spawn(argv, &o, &r));
    cr_assert_not(r.timed_out, "%s: dflow check took longer than 5 s", c->path);
    cr_assert_not(r.signaled, "%s: dflow check died of signal %d\n%s", c->path, r.sig, r.err);
    cr_assert(r.exited && r.code == 1, "%s: exit %d, want 1\nstderr:\n%s", c->path, r.code, r.err);

    char *src = th_slurp(c->path, NULL);
    cr_assert_not_null(src);
    int nexpect = 0;
    for (char *line = src; line && *line;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        const char *e = strstr(line, "# expect: ");
        if (e) {
            int ln, col, used = 0;
            e += strlen("# expect: ");
            cr_assert(sscanf(e, "%d:%d: error: %n", &ln, &col, &used) == 2 && used > 0,
                      "%s: malformed expectation '%s' (want '# expect: LINE:COL: error: TEXT')",
                      c->path, e);
            char sub[512];
            snprintf(sub, sizeof sub, "%s", e + used);
            for (size_t k = strlen(sub); k > 0 && (sub[k - 1] == ' ' || sub[k - 1] == '\r'); k--)
                sub[k - 1] = '\0';
            cr_assert(has_diag(r.err, c->path, ln, col, sub),
                      "%s: no diagnostic %d:%d: error: ...%s...\nstderr:\n%s", c->path, ln, col,
                      sub, r.err);
            nexpect++;
        }
        line = end ? end + 1 : NULL;
    }
    if (nexpect == 0) {
        /* no expectations written: at least a located error for this file */
        char prefix[300];
        snprintf(prefix, sizeof prefix, "%s:", c->path);
        bool found = false;
        for (const char *p = strstr(r.err, prefix); p && !found; p = strstr(p + 1, prefix)) {
            int ln, col, used = 0;
            found =
                sscanf(p + strlen(prefix), "%d:%d: error: %n", &ln, &col, &used) == 2 && used > 0;
        }
        cr_assert(found, "%s: no located error (and no '# expect:' line)\nstderr:\n%s", c->path,
                  r.err);
    }
    free(src);
    th_spawn_free(&r);
}
