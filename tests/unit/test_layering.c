/* The architecture's one-way arrows, checked: each folder includes only from
 * itself and the layers beneath it (docs/architecture.md). Every quoted
 * #include in a layer (subfolders included) is resolved the way the compiler
 * does — relative to the including file, else to the repository root — and
 * the top folder it lands in must be one the layer may use. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *dir;
    const char *allowed; /* space-separated top folders it may include from */
} Layer;

static const Layer layers[] = {
    {"runtime", "runtime"},
    {"ir", "ir runtime"},
    {"passes", "passes ir runtime"},
    {"frontend", "frontend ir passes runtime"}, /* grad() builds autodiff nodes */
    {"codegen", "codegen passes ir runtime"},   /* reads the fusion plan */
    /* main of a built executable: links with libdflow_rt.a alone */
    {"cli/built", "runtime ir"},
};

static bool allowed_in(const char *allowed, const char *folder) {
    char buf[300], key[300];
    snprintf(buf, sizeof buf, " %s ", allowed);
    snprintf(key, sizeof key, " %s ", folder);
    return strstr(buf, key) != NULL;
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Normalises "a/b/../c" to "a/c" in place. */
static void normalise(char *p) {
    char *parts[64];
    int n = 0;
    for (char *tok = strtok(p, "/"); tok && n < 64; tok = strtok(NULL, "/")) {
        if (!strcmp(tok, ".")) continue;
        if (!strcmp(tok, "..") && n > 0 && strcmp(parts[n - 1], ".."))
            n--;
        else
            parts[n++] = tok;
    }
    char out[512] = "";
    for (int i = 0; i < n; i++) {
        if (i) strncat(out, "/", sizeof out - strlen(out) - 1);
        strncat(out, parts[i], sizeof out - strlen(out) - 1);
    }
    strcpy(p, out);
}

/* The top folder of the file that `#include "inc"` in folder `dir` reaches,
 * or "" when it is not in the repository (generated headers). */
static void include_folder(const char *dir, const char *inc, char *out, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, inc);
    if (!is_file(path)) snprintf(path, sizeof path, "%s", inc);
    if (!is_file(path)) {
        out[0] = '\0';
        return;
    }
    normalise(path);
    const char *slash = strchr(path, '/');
    snprintf(out, n, "%.*s", slash ? (int)(slash - path) : 0, path);
}

static int check_file(const Layer *l, const char *dir, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int bad = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "#include \"", 10) != 0) continue;
        p += 10;
        const char *end = strchr(p, '"');
        if (!end) continue;
        char inc[256], folder[256];
        snprintf(inc, sizeof inc, "%.*s", (int)(end - p), p);
        include_folder(dir, inc, folder, sizeof folder);
        /* a nested layer (cli/built) may include its own files */
        bool own = !strchr(inc, '/') && !strncmp(dir, l->dir, strlen(l->dir));
        if (folder[0] == '\0' || !strcmp(folder, l->dir) || own) continue;
        if (!allowed_in(l->allowed, folder)) {
            cr_log_error("%s:%d: %s includes \"%s\" from layer '%s'", path, lineno, l->dir, inc,
                         folder);
            bad++;
        }
    }
    fclose(f);
    return bad;
}

static bool is_source(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcmp(dot, ".c") || !strcmp(dot, ".h") || !strcmp(dot, ".y") ||
                   !strcmp(dot, ".l") || !strcmp(dot, ".def"));
}

/* Checks every source file under dir (recursively); counts files in *files. */
static int check_dir(const Layer *l, const char *dir, int *files) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            bad += check_dir(l, path, files);
        } else if (is_source(e->d_name)) {
            bad += check_file(l, dir, path);
            (*files)++;
        }
    }
    closedir(d);
    return bad;
}

Test(layering, includes_point_down) {
    int bad = 0, files = 0;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        struct stat st;
        cr_assert(stat(layers[i].dir, &st) == 0, "run from the repository root: no folder %s",
                  layers[i].dir);
        bad += check_dir(&layers[i], layers[i].dir, &files);
    }
    cr_assert_gt(files, 10, "found only %d source files", files);
    cr_assert_eq(bad, 0, "%d includes break the layering", bad);
}

/* The checker itself must see a violation when there is one. */
Test(layering, detects_an_upward_include) {
    char folder[64];
    include_folder("ir", "../frontend/ast.h", folder, sizeof folder);
    cr_assert_str_eq(folder, "frontend");
    cr_assert(!allowed_in("ir runtime", folder));
    include_folder("codegen/llvm", "../kernel.h", folder, sizeof folder);
    cr_assert_str_eq(folder, "codegen");
    include_folder("cli", "runtime/progress.h", folder, sizeof folder);
    cr_assert_str_eq(folder, "runtime");
}
