/* A seeded mutation fuzzer for the front end: `dflow check` must never
 * crash or hang, whatever the program text.
 *
 * Seeds are the .dfl files of examples/, std/ and tests/errors/ (a folder
 * is picked uniformly, then a file). Each mutant applies 1-4
 * random edits to one seed: delete, insert, duplicate or swap tokens, edit
 * single bytes, splice in lines of another seed, or swap a number for an
 * awkward one. Mutant i is a pure function of (base seed, i) through
 * splitmix64, so any failure is reproducible from the two numbers printed.
 * Every mutant is checked with a 5 s limit: the exit status must be 0 or 1
 * (never a signal or a timeout) and status 1 must come with at least one
 * located diagnostic (":LINE:COL: error:"). Two worker processes share the
 * mutants. A failing program is kept in $TMPDIR as
 * dflow_fuzz_<seed>_<i>.dfl. Environment: DFLOW_FUZZ_SEED (default fixed),
 * DFLOW_FUZZ_N (default 1000 mutants). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/spawn.h"
#include "runtime/grow.h"

#define DEFAULT_SEED 0x5eedf00dULL
#define DEFAULT_N 1000
#define WORKERS 2
#define MAX_FAILS_PER_WORKER 10

/* ---- seeded randomness ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t rnd(uint64_t *s, size_t n) {
    return n ? (size_t)(splitmix64(s) % n) : 0;
}

/* ---- seeds ---- */

typedef struct {
    char *text;
    size_t len;
} Text;

static Text seeds[512];
static int nseeds;
/* seeds[group_start[k] .. group_start[k+1]) came from the k-th folder */
static int group_start[4], ngroups;

static void load_dir(const char *dir) {
    group_start[ngroups] = nseeds;
    DIR *d = opendir(dir);
    if (!d) return;
    char names[512][256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        size_t len = strlen(e->d_name);
        if (len > 4 && len < 200 && strcmp(e->d_name + len - 4, ".dfl") == 0)
            snprintf(names[n++], sizeof names[0], "%s/%.200s", dir, e->d_name);
    }
    closedir(d);
    /* readdir order varies between file systems; sort for reproducibility */
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n && nseeds < 512; i++) {
        size_t len;
        char *t = th_slurp(names[i], &len);
        if (t) seeds[nseeds++] = (Text){t, len};
    }
    if (nseeds > group_start[ngroups]) ngroups++;
    group_start[ngroups] = nseeds;
}

/* A seed: first a folder, uniformly, so the few valid examples are mutated
 * as often as the many error files; then a file in it. */
static const Text *pick_seed(uint64_t *s) {
    int g = (int)rnd(s, (size_t)ngroups);
    int n = group_start[g + 1] - group_start[g];
    return &seeds[group_start[g] + (int)rnd(s, (size_t)n)];
}

/* ---- tokens: words, numbers, strings, operators, whitespace runs ---- */

typedef struct {
    size_t off, len;
} Tok;

static bool word_ch(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int tokenize(const char *s, size_t n, Tok *toks, int max) {
    static const char *ops2[] = {"==", "!=", "<=", ">=", "..", "**", "->",
                                 "+=", "-=", "*=", "/=", "&&", "||"};
    int k = 0;
    size_t i = 0;
    while (i < n && k < max) {
        size_t j = i + 1;
        char c = s[i];
        if (word_ch(c)) {
            while (j < n && (word_ch(s[j]) ||
                             (s[j] == '.' && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9')))
                j++;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n'))
                j++;
        } else if (c == '"') {
            while (j < n && s[j] != '"' && s[j] != '\n')
                j++;
            if (j < n && s[j] == '"') j++;
        } else if (c == '#') {
            while (j < n && s[j] != '\n')
                j++;
        } else {
            for (size_t o = 0; o < sizeof ops2 / sizeof ops2[0]; o++)
                if (i + 1 < n && s[i] == ops2[o][0] && s[i + 1] == ops2[o][1]) j = i + 2;
        }
        toks[k++] = (Tok){i, j - i};
        i = j;
    }
    return k;
}

/* ---- a growable byte buffer ---- */

typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const char *s, size_t n) {
    cr_assert(rt_grow(&b->p, &b->cap, b->n + n + 1, 1024),
              "out of memory growing a mutant to %zu bytes", b->n + n + 1);
    if (n == 0 || n > b->cap) { /* n > cap cannot happen; it tells gcc the bound */
        if (b->p) b->p[b->n] = '\0';
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(Buf *b, const char *s) {
    put(b, s, strlen(s));
}

static const char *extra_tokens[] = {
    "(",      ")",      "[",     "]",         "{",     "}",      ",",       ";",     "=",
    ":",      ".",      "..",    "->",        "+",     "-",      "*",       "/",     "%",
    "@",      "**",     "\n",    " ",         "fn",    "return", "if",      "else",  "then",
    "for",    "in",     "while", "repeat",    "break", "log",    "print",   "save",  "train",
    "main",   "config", "data",  "optimizer", "state", "step",   "every",   "param", "let",
    "import", "None",   "true",  "false",     "f32",   "i32",    "bool",    "...",   "x",
    "params", "loss",   "batch", "grad",      "sum",   "mean",   "reshape", "\"",    "\"s\"",
    "#",      "0",      "1",     "-1",        "1e30",  "0.5",
};

static const char *odd_numbers[] = {"0",
                                    "1",
                                    "-1",
                                    "2",
                                    "3",
                                    "7",
                                    "100",
                                    "0.0",
                                    "1e-30",
                                    "-0.5",
                                    "65536",
                                    "2147483648",
                                    "99999999999999999999999",
                                    "1e400"};

/* One edit of text `b` (replaced in place). */
static void mutate_once(Buf *b, uint64_t *s) {
    static Tok toks[65536];
    int nt = tokenize(b->p, b->n, toks, 65536);
    Buf o = {0};
    int op = (int)rnd(s, 8);
    if (nt == 0) op = 1;
    size_t a = nt ? rnd(s, (size_t)nt) : 0, c = nt ? rnd(s, (size_t)nt) : 0;
    if (a > c) {
        size_t t = a;
        a = c;
        c = t;
    }
    const char *src = b->p;
    switch (op) {
    case 0: /* delete a token */
        put(&o, src, toks[a].off);
        puts_(&o, src + toks[a].off + toks[a].len);
        break;
    case 1: { /* insert a token from another seed or the list */
        Buf ins = {0};
        if (rnd(s, 2) && nseeds) {
            const Text *t = &seeds[rnd(s, (size_t)nseeds)];
            Tok tt[4096];
            int k = tokenize(t->text, t->len, tt, 4096);
            if (k) {
                Tok x = tt[rnd(s, (size_t)k)];
                put(&ins, t->text + x.off, x.len);
            }
        }
        if (!ins.p) puts_(&ins, extra_tokens[rnd(s, sizeof extra_tokens / sizeof extra_tokens[0])]);
        size_t at = nt ? toks[a].off : 0;
        put(&o, src, at);
        puts_(&o, ins.p);
        puts_(&o, src + at);
        free(ins.p);
        break;
    }
    case 2: /* duplicate a token */
        put(&o, src, toks[a].off + toks[a].len);
        puts_(&o, src + toks[a].off);
        break;
    case 3: /* swap two tokens */
        if (a == c) {
            puts_(&o, src);
            break;
        }
        put(&o, src, toks[a].off);
        put(&o, src + toks[c].off, toks[c].len);
        put(&o, src + toks[a].off + toks[a].len, toks[c].off - toks[a].off - toks[a].len);
        put(&o, src + toks[a].off, toks[a].len);
        puts_(&o, src + toks[c].off + toks[c].len);
        break;
    case 4: { /* byte edits: delete, insert or replace one byte */
        size_t at = rnd(s, b->n + 1);
        static const char pool[] = "(){}[],;:=.+-*/%@<>!&|#\"'\\0123456789 aeEx_\n\t\x80\xff\xc3";
        char ch = pool[rnd(s, sizeof pool - 1)];
        int kind = (int)rnd(s, 3);
        put(&o, src, at);
        if (kind != 0) put(&o, &ch, 1);
        if (at < b->n) puts_(&o, src + at + (kind == 1 ? 0 : 1));
        break;
    }
    case 5: { /* splice: some lines of another seed replace some lines here */
        if (!nseeds) {
            puts_(&o, src);
            break;
        }
        const Text *t = &seeds[rnd(s, (size_t)nseeds)];
        size_t from = rnd(s, t->len + 1), len = rnd(s, 400);
        while (from > 0 && t->text[from - 1] != '\n')
            from--;
        if (from + len > t->len) len = t->len - from;
        size_t at = rnd(s, b->n + 1), cut = rnd(s, 200);
        while (at > 0 && src[at - 1] != '\n')
            at--;
        if (at + cut > b->n) cut = b->n - at;
        put(&o, src, at);
        put(&o, t->text + from, len);
        puts_(&o, src + at + cut);
        break;
    }
    case 6: { /* a number becomes an awkward one */
        int tries = 0;
        while (tries++ < 20 && !(src[toks[a].off] >= '0' && src[toks[a].off] <= '9'))
            a = rnd(s, (size_t)nt);
        put(&o, src, toks[a].off);
        puts_(&o, odd_numbers[rnd(s, sizeof odd_numbers / sizeof odd_numbers[0])]);
        puts_(&o, src + toks[a].off + toks[a].len);
        break;
    }
    default: /* delete a range of tokens */
        put(&o, src, toks[a].off);
        if (c - a > 12) c = a + 12;
        puts_(&o, src + toks[c].off + toks[c].len);
        break;
    }
    free(b->p);
    *b = o;
    if (!b->p) puts_(b, "");
}

static char *make_mutant(uint64_t base, int i) {
    uint64_t s = base ^ ((uint64_t)i * 0xD1B54A32D192ED03ULL);
    splitmix64(&s);
    const Text *t = pick_seed(&s);
    Buf b = {0};
    put(&b, t->text, t->len);
    int edits = 1 + (int)rnd(&s, 4);
    for (int e = 0; e < edits; e++)
        mutate_once(&b, &s);
    return b.p;
}

/* ---- checking ---- */

static bool located_error(const char *err) {
    for (const char *p = strstr(err, ": error:"); p; p = strstr(p + 1, ": error:")) {
        /* walk back over ":COL" and ":LINE" */
        const char *q = p;
        int parts = 0;
        while (parts < 2) {
            const char *d = q;
            while (d > err && d[-1] >= '0' && d[-1] <= '9')
                d--;
            if (d == q || d == err || d[-1] != ':') break;
            q = d - 1;
            parts++;
        }
        if (parts == 2) return true;
    }
    return false;
}

/* Returns a one-line failure description, or NULL when the mutant passed. */
static char *check_mutant(const char *bin, const char *dir, uint64_t base, int i, char *fail,
                          size_t n, int *accepted) {
    char *text = make_mutant(base, i);
    char path[512];
    snprintf(path, sizeof path, "%s/m%d.dfl", dir, i);
    FILE *f = fopen(path, "w");
    if (!f) {
        free(text);
        snprintf(fail, n, "cannot write %s", path);
        return fail;
    }
    fputs(text, f);
    fclose(f);
    char *argv[] = {(char *)bin, "check", path, NULL};
    SpawnOptions o = {.timeout_s = 5};
    SpawnResult r;
    char *res = NULL;
    if (!th_spawn(argv, &o, &r)) {
        snprintf(fail, n, "mutant %d: could not start dflow", i);
        res = fail;
    } else {
        const char *why = NULL;
        char buf[64];
        if (r.exited && r.code == 0) (*accepted)++;
        if (r.timed_out)
            why = "timed out (5 s)";
        else if (r.signaled) {
            snprintf(buf, sizeof buf, "killed by signal %d", r.sig);
            why = buf;
        } else if (r.code != 0 && r.code != 1) {
            snprintf(buf, sizeof buf, "exit status %d", r.code);
            why = buf;
        } else if (r.code == 1 && !located_error(r.err)) {
            why = "exit 1 without a located ':LINE:COL: error:' diagnostic";
        }
        if (why) {
            const char *tmp = getenv("TMPDIR");
            char keep[512];
            snprintf(keep, sizeof keep, "%s/dflow_fuzz_%llx_%d.dfl", tmp && *tmp ? tmp : "/tmp",
                     (unsigned long long)base, i);
            FILE *k = fopen(keep, "w");
            if (k) {
                fputs(text, k);
                fclose(k);
            }
            char first[200];
            snprintf(first, sizeof first, "%s", r.err);
            for (char *c = first; *c; c++)
                if (*c == '\n') *c = ' ';
            snprintf(fail, n, "seed 0x%llx mutant %d: %s; program kept as %s; stderr: %s",
                     (unsigned long long)base, i, why, keep, first);
            res = fail;
        }
        th_spawn_free(&r);
    }
    remove(path);
    free(text);
    return res;
}

Test(fuzz, check_never_crashes_or_hangs, .timeout = 900) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    load_dir("examples");
    load_dir("std");
    load_dir("tests/errors");
    cr_assert_gt(nseeds, 0, "no seed programs in examples/ or tests/errors/");
    const char *es = getenv("DFLOW_FUZZ_SEED"), *en = getenv("DFLOW_FUZZ_N");
    uint64_t base = es ? strtoull(es, NULL, 0) : DEFAULT_SEED;
    int total = en ? atoi(en) : DEFAULT_N;
    if (total < 1) total = DEFAULT_N;
    cr_log_info("fuzz: %d mutants of %d seeds, DFLOW_FUZZ_SEED=0x%llx", total, nseeds,
                (unsigned long long)base);

    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "fuzz"));
    int pipes[WORKERS][2];
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        cr_assert_eq(pipe(pipes[w]), 0);
        pids[w] = fork();
        cr_assert(pids[w] >= 0);
        if (pids[w] == 0) {
            close(pipes[w][0]);
            FILE *out = fdopen(pipes[w][1], "w");
            int fails = 0, accepted = 0;
            for (int i = w; i < total && fails < MAX_FAILS_PER_WORKER; i += WORKERS) {
                char msg[1024];
                if (check_mutant(bin, dir, base, i, msg, sizeof msg, &accepted)) {
                    fprintf(out, "%s\n", msg);
                    fflush(out);
                    fails++;
                }
            }
            fprintf(out, "#accepted %d\n", accepted);
            fclose(out);
            _exit(0);
        }
        close(pipes[w][1]);
    }
    Buf report = {0};
    int nfail = 0, accepted = 0;
    for (int w = 0; w < WORKERS; w++) {
        FILE *in = fdopen(pipes[w][0], "r");
        char line[2048];
        while (in && fgets(line, sizeof line, in)) {
            int k;
            if (sscanf(line, "#accepted %d", &k) == 1) {
                accepted += k;
                continue;
            }
            puts_(&report, line);
            nfail++;
        }
        if (in) fclose(in);
        int st;
        waitpid(pids[w], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fuzz worker %d died", w);
    }
    th_rmdir(dir);
    cr_log_info("fuzz: %d of %d mutants were accepted as valid programs", accepted, total);
    cr_assert_eq(nfail, 0, "%d failing mutants (reproduce with DFLOW_FUZZ_SEED=0x%llx):\n%s", nfail,
                 (unsigned long long)base, report.p ? report.p : "");
    free(report.p);
}
