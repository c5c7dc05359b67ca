/* The architecture's one-way arrows, checked: each folder includes only from
 * itself and the layers beneath it (docs/architecture.md). A quoted #include
 * that climbs into a folder above its own fails this test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *dir;
    const char *allowed; /* space-separated folders it may include from */
} Layer;

static const Layer layers[] = {
    {"runtime", "runtime"},
    {"ir", "ir runtime"},
    {"passes", "passes ir runtime"},
    {"frontend", "frontend ir passes runtime"},
    {"codegen", "codegen ir runtime"},
};

static bool allowed_in(const char *allowed, const char *folder) {
    char buf[300];
    snprintf(buf, sizeof buf, " %s ", allowed);
    char key[300];
    snprintf(key, sizeof key, " %s ", folder);
    return strstr(buf, key) != NULL;
}

/* Returns the top folder an include path resolves to, relative to dir. */
static void include_folder(const char *dir, const char *inc, char *out, size_t n) {
    char local[512];
    snprintf(local, sizeof local, "%s/%s", dir, inc);
    FILE *f = fopen(local, "r");
    if (f) { /* a file of this folder or one of its subfolders */
        fclose(f);
        snprintf(out, n, "%s", dir);
    } else if (strncmp(inc, "../", 3) == 0) {
        const char *rest = inc + 3;
        const char *slash = strchr(rest, '/');
        snprintf(out, n, "%.*s", slash ? (int)(slash - rest) : 0, rest);
    } else if (strchr(inc, '/')) {
        const char *slash = strchr(inc, '/');
        snprintf(out, n, "%.*s", (int)(slash - inc), inc);
    } else {
        snprintf(out, n, "%s", dir); /* same folder */
    }
}

static int check_file(const Layer *l, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int bad = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (strncmp(p, "#include \"", 10) != 0) continue;
        p += 10;
        const char *end = strchr(p, '"');
        if (!end) continue;
        char inc[256], folder[256];
        snprintf(inc, sizeof inc, "%.*s", (int)(end - p), p);
        include_folder(l->dir, inc, folder, sizeof folder);
        /* generated headers (parser.h, lexer.h) live in the build tree */
        if (folder[0] == '\0' || !strcmp(folder, l->dir)) continue;
        if (!allowed_in(l->allowed, folder)) {
            cr_log_error("%s:%d: %s includes \"%s\" from layer '%s'", path, lineno, l->dir, inc,
                         folder);
            bad++;
        }
    }
    fclose(f);
    return bad;
}

Test(layering, includes_point_down) {
    int bad = 0, files = 0;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        DIR *d = opendir(layers[i].dir);
        cr_assert_not_null(d, "run from the repository root: no folder %s", layers[i].dir);
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            bool src = (n > 2 && (!strcmp(e->d_name + n - 2, ".c") || !strcmp(e->d_name + n - 2, ".h")))
                       || (n > 2 && (!strcmp(e->d_name + n - 2, ".y") || !strcmp(e->d_name + n - 2, ".l")));
            if (!src) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", layers[i].dir, e->d_name);
            bad += check_file(&layers[i], path);
            files++;
        }
        closedir(d);
    }
    cr_assert_gt(files, 10, "found only %d source files", files);
    cr_assert_eq(bad, 0, "%d includes break the layering", bad);
}
