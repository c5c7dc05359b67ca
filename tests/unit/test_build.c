/* `dflow build` end to end ($DFLOW_BIN): a program built into an executable
 * prints and records the same bits as `dflow run` (loss and metric columns,
 * log lines) for the same seed and --set values; it links neither LLVM nor
 * the compiler; it refuses configs the compiler fixed, unknown keys, bad
 * values and flags with a clear message; a corrupt program image is an error,
 * never a crash. In process: the image reader survives truncated and mutated
 * images (ASan watches). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/llvm/llvm_plan.h"
#include "frontend/frontend.h"
#include "helpers/spawn.h"
#include "ir/module_image.h"
#include "runtime/rng.h"

#define PROG "tests/programs/build_mlp.dfl"
/* Every test here has the same .timeout: Criterion 2.4 leaks a 48-byte record
 * when one binary mixes timeouts (LSan reports it under the ASan build). */

static const char *dflow_bin(void) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    return bin;
}

/* Builds PROG into dir/prog; returns the executable's path (static buffer). */
static const char *build_prog(const char *dir) {
    static char exe[4096];
    snprintf(exe, sizeof exe, "%s/prog", dir);
    SpawnResult r = th_run(300, dflow_bin(), "build", PROG, "-o", exe, NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "settable: lr, momentum"), "%s", r.out);
    cr_assert(strstr(r.out, "fixed: batch_size, hidden, steps"), "%s", r.out);
    th_spawn_free(&r);
    return exe;
}

/* metrics.csv without its last column (time_s). */
static char *metrics_without_time(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    char *s = th_slurp(path, NULL);
    cr_assert(s, "no %s", path);
    char *out = malloc(strlen(s) + 1), *o = out;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        char *comma = strrchr(line, ',');
        if (comma) *comma = 0;
        o += sprintf(o, "%s\n", line);
    }
    free(s);
    return out;
}

/* stdout without the final "done: ..." line (it has timings). */
static void cut_done_line(char *out) {
    char *d = strstr(out, "done: ");
    if (d) *d = 0;
}

/* `--backend cpu` compiles every graph, as `dflow build` does; the default
 * (auto) may interpret the short ones, with the interpreter's bits. */
Test(build, same_bits_as_dflow_run_and_no_compiler_inside, .timeout = 600) {
    char dir[4096];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    const char *exe = build_prog(dir);
    char out_run[4200], out_exe[4200];
    snprintf(out_run, sizeof out_run, "%s/run", dir);
    snprintf(out_exe, sizeof out_exe, "%s/exe", dir);

    /* the same seed and a changed learning rate, through both */
    SpawnResult a = th_run(300, dflow_bin(), "run", PROG, "--backend", "cpu", "--seed", "3",
                           "--set", "lr=0.05", "--out", out_run, NULL);
    TH_EXPECT_EXIT(a, 0);
    SpawnResult b = th_run(300, exe, "--seed", "3", "--set", "lr=0.05", "--out", out_exe, NULL);
    TH_EXPECT_EXIT(b, 0);
    char *ma = metrics_without_time(out_run), *mb = metrics_without_time(out_exe);
    cr_assert(strstr(ma, "step,test_acc,test_loss,final,loss"), "%s", ma);
    cr_assert_str_eq(ma, mb, "metrics differ:\n--- dflow run\n%s\n--- built\n%s", ma, mb);
    cut_done_line(a.out);
    cut_done_line(b.out);
    cr_assert(strstr(a.out, "step 60: test_acc = "), "%s", a.out);
    cr_assert_str_eq(a.out, b.out);
    th_spawn_free(&a);
    th_spawn_free(&b);

    /* lr really is read at run time: the default gives another curve, again
       the same as dflow run's */
    SpawnResult c = th_run(300, exe, "--seed", "3", "--out", out_exe, NULL);
    TH_EXPECT_EXIT(c, 0);
    char *mc = metrics_without_time(out_exe);
    cr_assert(strcmp(mc, ma) != 0, "--set lr=0.05 changed nothing");
    SpawnResult d = th_run(300, dflow_bin(), "run", PROG, "--backend", "cpu", "--seed", "3",
                           "--out", out_run, NULL);
    TH_EXPECT_EXIT(d, 0);
    char *md = metrics_without_time(out_run);
    cr_assert_str_eq(mc, md);
    free(ma);
    free(mb);
    free(mc);
    free(md);
    th_spawn_free(&c);
    th_spawn_free(&d);

    /* neither LLVM nor the compiler is linked in */
    SpawnResult l = th_run(60, "/usr/bin/ldd", exe, NULL);
    TH_EXPECT_EXIT(l, 0);
    cr_assert(!strstr(l.out, "LLVM") && !strstr(l.out, "llvm"), "%s", l.out);
    cr_assert(strstr(l.out, "openblas"), "%s", l.out);
    th_spawn_free(&l);
    SpawnResult n = th_run(60, "/usr/bin/nm", exe, NULL);
    TH_EXPECT_EXIT(n, 0);
    const char *compiler[] = {" fe_compile\n",  " ir_interp_run\n",    " pass_fuse_plan\n",
                              " cg_schedule\n", " llvm_emit_kernel\n", " LLVMContextCreate\n"};
    for (size_t i = 0; i < sizeof compiler / sizeof *compiler; i++)
        cr_assert(!strstr(n.out, compiler[i]), "the executable contains%s", compiler[i]);
    cr_assert(strstr(n.out, " ir_exec_module\n"), "no executor in the executable?");
    th_spawn_free(&n);
    th_rmdir(dir);
}

/* Writes a copy of exe with one 32-bit field of its program image replaced
 * (at offset off from the image's magic). */
static void corrupt_copy_as(const char *exe, const char *to, size_t off, uint32_t value,
                            bool resum);

static void corrupt_copy(const char *exe, const char *to, size_t off, uint32_t value) {
    corrupt_copy_as(exe, to, off, value, false);
}

/* The same, with the header's CRC-32 recomputed (resum). */
static void corrupt_copy_as(const char *exe, const char *to, size_t off, uint32_t value,
                            bool resum) {
    size_t n;
    char *bytes = th_slurp(exe, &n);
    cr_assert(bytes);
    /* the image's magic and version (the reader's own "DFLOWIMG" literal
       is followed by a NUL) */
    char *magic = NULL, head[12] = "DFLOWIMG";
    uint32_t version = IR_IMAGE_VERSION;
    memcpy(head + 8, &version, sizeof version);
    for (size_t i = 0; i + 12 <= n && !magic; i++)
        if (!memcmp(bytes + i, head, 12)) magic = bytes + i;
    cr_assert(magic, "no program image in %s", exe);
    memcpy(magic + off, &value, sizeof value);
    if (resum) {
        uint64_t len;
        memcpy(&len, magic + 12, sizeof len);
        cr_assert(len < n);
        uint32_t c = ir_image_crc((const uint8_t *)magic + IR_IMAGE_HEADER, (size_t)len);
        memcpy(magic + 20, &c, sizeof c);
    }
    FILE *f = fopen(to, "wb");
    cr_assert(f && fwrite(bytes, 1, n, f) == n && fclose(f) == 0);
    chmod(to, 0755);
    free(bytes);
}

Test(build, refusals_and_corrupt_images, .timeout = 600) {
    char dir[4096];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    const char *exe = build_prog(dir);

    SpawnResult r = th_run(60, exe, "--set", "hidden=8", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "'hidden' is fixed in this executable"), "%s", r.err);
    cr_assert(strstr(r.err, "dflow build --set hidden=8"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(60, exe, "--set", "nope=1", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "unknown config key 'nope'"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(60, exe, "--set", "lr=fast", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "'lr' is a float"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(120, "/bin/sh", "-c", "exec \"$0\" > /dev/full", exe, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "cannot write standard output"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(60, exe, "--sed", "1", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "unknown option '--sed'"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(60, exe, "--seed", "-1", NULL);
    TH_EXPECT_EXIT(r, 1);
    th_spawn_free(&r);
    r = th_run(60, exe, "--help", NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "lr") && strstr(r.out, "settable"), "%s", r.out);
    cr_assert(strstr(r.out, "hidden") && strstr(r.out, "fixed at build"), "%s", r.out);
    th_spawn_free(&r);

    /* a corrupt image: another version, an absurd count right after the magic */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    corrupt_copy(exe, bad, 8, 999);
    r = th_run(60, bad, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "another dflow version"), "%s", r.err);
    th_spawn_free(&r);
    corrupt_copy(exe, bad, 12, 0x7fffffff);
    r = th_run(60, bad, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "corrupt program image"), "%s", r.err);
    th_spawn_free(&r);
    /* a changed count, a changed slot index, a changed byte of data: the
       checksum finds each before anything is read */
    const size_t offs[] = {24, 40, 300, 5000};
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        corrupt_copy(exe, bad, offs[i], 0x01000001);
        r = th_run(60, bad, NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, "corrupt program image: a checksum mismatch"), "at %zu: %s",
                  offs[i], r.err);
        th_spawn_free(&r);
    }

    /* the same changes with the image's checksum recomputed: not the image
       the executable was linked with */
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        corrupt_copy_as(exe, bad, offs[i], 0x01000001, true);
        r = th_run(60, bad, NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, "corrupt program image: not the image this executable was built "
                                "with"),
                  "at %zu: %s", offs[i], r.err);
        th_spawn_free(&r);
    }

    /* --set is type-checked by the same code, with the same message, as dflow run's */
    const char *sets[] = {"lr=fast",       "lr=1e400", "lr=",   "lr=0.1x",
                          "momentum=true", "lrr=0.1",  "nope=1"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        SpawnResult a = th_run(60, exe, "--set", sets[i], NULL);
        SpawnResult b = th_run(300, dflow_bin(), "run", PROG, "--set", sets[i], NULL);
        TH_EXPECT_EXIT(a, 1);
        TH_EXPECT_EXIT(b, 1);
        const char *why = strstr(a.err, "--set: ");
        cr_assert(why, "%s", a.err);
        char msg[256];
        snprintf(msg, sizeof msg, "%.*s", (int)strcspn(why + 7, "\n"), why + 7);
        cr_assert(strstr(b.err, msg), "built: %s\nrun: %s", msg, b.err);
        th_spawn_free(&a);
        th_spawn_free(&b);
    }

    /* dflow build's own errors */
    r = th_run(60, dflow_bin(), "build", PROG, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "missing -o"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(60, dflow_bin(), "build", PROG, "-o", bad, "--target-cpu", "pentium9", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "unknown --target-cpu 'pentium9'"), "%s", r.err);
    th_spawn_free(&r);
    r = th_run(60, dflow_bin(), "build", PROG, "-o", bad, "--set", "hidden=x", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "'hidden' is an int"), "%s", r.err);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* -o replaces only an executable dflow built, and only once the new one is
 * whole: never the source, another file or a folder; a failed link leaves
 * the old executable as it was, with no temporary beside it. */
Test(build, output_is_never_clobbered, .timeout = 600) {
    char dir[4096], path[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    const char *exe = build_prog(dir);
    size_t n0;
    char *before = th_slurp(exe, &n0);
    cr_assert(before);

    /* a linker that writes half a file and fails */
    snprintf(path, sizeof path, "%s/badcc", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f &&
              fputs("#!/bin/sh\nwhile [ \"$1\" != -o ]; do shift; done\n"
                    "echo partial > \"$2\"\nexit 1\n",
                    f) >= 0 &&
              fclose(f) == 0);
    cr_assert_eq(chmod(path, 0755), 0);
    cr_assert_eq(setenv("DFLOW_CC", path, 1), 0);
    SpawnResult r = th_run(300, dflow_bin(), "build", PROG, "-o", exe, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "linking"), "%s", r.err);
    th_spawn_free(&r);
    unsetenv("DFLOW_CC");
    size_t n1;
    char *after = th_slurp(exe, &n1);
    cr_assert(after && n1 == n0 && !memcmp(before, after, n0), "the old executable was clobbered");
    free(after);
    free(before);
    r = th_run(60, "/bin/sh", "-c", "ls \"$0\" | grep -c tmp", dir, NULL);
    cr_expect(strstr(r.out, "0"), "a temporary was left: %s", r.out);
    th_spawn_free(&r);

    /* a rebuild over a built executable is fine */
    r = th_run(300, dflow_bin(), "build", PROG, "-o", exe, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);

    /* the source, a data file, an executable dflow did not build, a folder */
    char src[4200], data[4200], other[4200];
    snprintf(src, sizeof src, "%s/copy.dfl", dir);
    snprintf(data, sizeof data, "%s/notes.txt", dir);
    snprintf(other, sizeof other, "%s/true", dir);
    char *prog_text = th_slurp(PROG, NULL);
    cr_assert(prog_text);
    f = fopen(src, "w");
    cr_assert(f && fputs(prog_text, f) >= 0 && fclose(f) == 0);
    free(prog_text);
    f = fopen(data, "w");
    cr_assert(f && fputs("my notes\n", f) >= 0 && fclose(f) == 0);
    r = th_run(60, "/bin/cp", "/bin/true", other, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = th_run(300, dflow_bin(), "build", src, "-o", src, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "is the program's own source"), "%s", r.err);
    th_spawn_free(&r);
    const char *refused[] = {data, other, dflow_bin()};
    for (int i = 0; i < 3; i++) {
        r = th_run(300, dflow_bin(), "build", PROG, "-o", refused[i], NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, "is not an executable made by dflow build"), "%s", r.err);
        th_spawn_free(&r);
    }
    char *notes = th_slurp(data, NULL);
    cr_expect_str_eq(notes, "my notes\n");
    free(notes);
    r = th_run(300, dflow_bin(), "build", PROG, "-o", dir, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "is a directory"), "%s", r.err);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* ---- the image reader, in process ---------------------------------------------------------- */

typedef struct {
    LlvmPlan *plans;
    size_t blob_lo[64], blob_hi[64]; /* where each graph's blob went */
} Plans;

static bool write_graph(void *ctx, const Graph *g, int id, RtBuf *b) {
    (void)g;
    Plans *pl = ctx;
    if (id < 64) pl->blob_lo[id] = b->n;
    rt_kprog_write(&pl->plans[id].kp, b);
    if (id < 64) pl->blob_hi[id] = b->n;
    return true;
}

static void fix_checksum(uint8_t *p, size_t n);

static bool read_graph(void *ctx, Graph *g, int id, RtReader *r) {
    (void)ctx;
    (void)id;
    RtKProg p;
    return rt_kprog_read(r, &p) && p.ninputs == g->ninputs && p.noutputs == g->noutputs;
}

Test(build, image_reader_survives_truncation_and_mutation, .timeout = 600) {
    Arena *a = arena_new();
    SourceSet *src = source_set_new(a);
    DiagList *d = diag_list_new(a, src);
    ConfigOverride ov[] = {{"steps", "2"}};
    CompileOptions co = {.overrides = ov, .noverrides = 1};
    Module *m = fe_compile(a, src, d, PROG, &co);
    cr_assert(m && !diag_has_errors(d));
    const Graph **graphs;
    int ng = ir_module_graphs(m, a, &graphs, NULL);
    cr_assert(ng >= 3, "%d graphs", ng);
    Plans pl = {arena_alloc(a, sizeof(LlvmPlan) * (size_t)ng), {0}, {0}};
    for (int i = 0; i < ng; i++) {
        char why[192];
        cr_assert(llvm_plan_graph(graphs[i], NULL, a, &pl.plans[i], why, sizeof why), "%s", why);
    }
    RtBuf img = {0};
    cr_assert(ir_image_write(m, src, write_graph, &pl, &img));
    /* the image read back has the module's tables */
    char err[256];
    Arena *ra = arena_new();
    Module *back =
        ir_image_read(img.data, img.n, ra, NULL, NULL, read_graph, NULL, err, sizeof err);
    cr_assert(back, "%s", err);
    cr_assert_eq(back->nslots, m->nslots);
    cr_assert_eq(back->nconfigs, m->nconfigs);
    for (int s = 0; s < m->nslots; s++) {
        cr_assert_str_eq(back->slots[s].name, m->slots[s].name);
        cr_assert_eq(back->slots[s].kind, m->slots[s].kind);
        cr_assert(rt_shape_eq(&back->slots[s].shape, &m->slots[s].shape));
        if (m->slots[s].kind == SLOT_DATA)
            cr_assert(!memcmp(back->slots[s].value->data, m->slots[s].value->data,
                              rt_tensor_bytes(m->slots[s].value)));
    }
    cr_assert_eq(back->init.n, m->init.n);
    cr_assert_eq(back->main.n, m->main.n);
    arena_free(ra);
    /* every truncation fails cleanly */
    for (size_t n = 0; n < img.n; n += 1 + n / 64) {
        ra = arena_new();
        cr_assert(!ir_image_read(img.data, n, ra, NULL, NULL, read_graph, NULL, err, sizeof err),
                  "a %zu-byte prefix was accepted", n);
        arena_free(ra);
    }
    /* mutations of the head (sources, slot table) and the tail (graphs, host
       program), not the data payloads that any bytes may fill, never crash */
    uint8_t *copy = malloc(img.n);
    size_t head = img.n < 4096 ? img.n : 4096, tail = img.n < 65536 ? img.n : 65536;
    int rejected = 0;
    for (int t = 0; t < 2000; t++) {
        memcpy(copy, img.data, img.n);
        for (int k = 0; k < 4; k++) {
            uint32_t w = rt_rng_word(7, 1, (uint64_t)(4 * t + k));
            size_t at = t % 2 ? w % head : img.n - 1 - w % tail;
            copy[at] ^= (uint8_t)(1u << (w >> 29));
        }
        ra = arena_new();
        rejected +=
            ir_image_read(copy, img.n, ra, NULL, NULL, read_graph, NULL, err, sizeof err) == NULL;
        arena_free(ra);
    }
    cr_assert(rejected == 2000, "only %d of 2000 mutated images rejected", rejected);
    /* the same mutations anywhere, with the checksum made right again: the
       structural checks alone must never crash (ASan watches) */
    rejected = 0;
    for (int t = 0; t < 2000; t++) {
        memcpy(copy, img.data, img.n);
        for (int k = 0; k < 1 + t % 4; k++) {
            uint32_t w = rt_rng_word(9, 2, (uint64_t)(4 * t + k));
            size_t body = img.n - IR_IMAGE_HEADER, at; /* anywhere, or in the head or the tail */
            if (t % 3 == 0)
                at = IR_IMAGE_HEADER + w % body;
            else if (t % 3 == 1)
                at = IR_IMAGE_HEADER + w % (head - IR_IMAGE_HEADER);
            else
                at = img.n - 1 - w % (tail < body ? tail : body);
            copy[at] ^= (uint8_t)(1u << (w >> 29));
        }
        fix_checksum(copy, img.n);
        ra = arena_new();
        rejected +=
            ir_image_read(copy, img.n, ra, NULL, NULL, read_graph, NULL, err, sizeof err) == NULL;
        arena_free(ra);
    }
    cr_assert(rejected > 50, "only %d of 2000 re-summed images rejected", rejected);
    free(copy);
    free(img.data);
    ir_module_free(m);
    arena_free(a);
}

static void *malloc_cb(void *ctx, size_t n) {
    (void)ctx;
    return malloc(n);
}

/* An array whose count times element size passes SIZE_MAX is a failed read,
 * not a small block the caller then fills past its end. */
Test(build, reader_alloc_size_overflow_fails) {
    uint8_t none[1] = {0};
    RtReader r = {.p = none, .n = 0, .alloc = malloc_cb};
    void *p = rt_reader_alloc(&r, SIZE_MAX / 4 + 2, 8);
    cr_expect_null(p, "a wrapped allocation was handed out");
    free(p);
    cr_expect(r.bad);
    cr_expect_str_eq(r.why ? r.why : "", "a count too large for memory");
}

/* A slot whose element count times its element size passes 2^64 (f64 of
 * 2^61 + 2 elements: 16 bytes, wrapped) is a corrupt image, not a view of
 * 16 bytes that claims 2^61 elements. The image of an f64[2] slot is
 * written, then its dimension patched and its checksum made right again
 * (otherwise only the checksum would be tested). */
static void fix_checksum(uint8_t *p, size_t n);
Test(build, image_slot_bytes_overflow_is_rejected) {
    Arena *a = arena_new();
    SourceSet *src = source_set_new(a);
    DiagList *d = diag_list_new(a, src);
    Module *m = ir_module_new(a, d);
    cr_assert_not_null(m);
    int id =
        ir_module_add_slot(m, "huge_slot", SLOT_DATA, DT_F64, rt_shape_make(1, (int64_t[]){2}));
    cr_assert_geq(id, 0);
    m->slots[id].value = rt_tensor_new(DT_F64, m->slots[id].shape);
    RtBuf img = {0};
    cr_assert(ir_image_write(m, src, write_graph, NULL, &img));
    char err[256] = "";
    Arena *ra = arena_new();
    Module *back =
        ir_image_read(img.data, img.n, ra, NULL, NULL, read_graph, NULL, err, sizeof err);
    cr_assert_not_null(back, "the unpatched image: %s", err);
    arena_free(ra);
    /* name, kind u8, dtype u8, rank u8, then dims[0] as i64 little-endian */
    uint8_t *at = NULL;
    for (size_t i = 0; !at && i + 9 <= img.n; i++)
        if (!memcmp(img.data + i, "huge_slot", 9)) at = img.data + i;
    cr_assert_not_null(at);
    at += 9 + 3;
    int64_t two = 0;
    memcpy(&two, at, 8);
    cr_assert_eq(two, 2, "the image layout changed");
    int64_t huge = (INT64_C(1) << 61) + 2;
    memcpy(at, &huge, 8);
    fix_checksum(img.data, img.n);
    ra = arena_new();
    back = ir_image_read(img.data, img.n, ra, NULL, NULL, read_graph, NULL, err, sizeof err);
    cr_expect_null(back, "an f64[2^61 + 2] slot over 16 bytes was accepted");
    cr_expect(strstr(err, "a value larger than 2^63 bytes"), "%s", err);
    arena_free(ra);
}

/* A graph's blob changed and the image's checksum made right again (an image
 * edited with care) no longer matches the sums the executable carries beside
 * its kernels: rejected, before any kernel meets the changed plan. */
Test(build, image_graphs_must_match_the_linked_kernels, .timeout = 600) {
    Arena *a = arena_new();
    SourceSet *src = source_set_new(a);
    DiagList *d = diag_list_new(a, src);
    Module *m = fe_compile(a, src, d, PROG, NULL);
    cr_assert(m && !diag_has_errors(d));
    const Graph **graphs;
    int ng = ir_module_graphs(m, a, &graphs, NULL);
    cr_assert(ng >= 1 && ng <= 64);
    Plans pl = {arena_alloc(a, sizeof(LlvmPlan) * (size_t)ng), {0}, {0}};
    for (int i = 0; i < ng; i++) {
        char why[192];
        cr_assert(llvm_plan_graph(graphs[i], NULL, a, &pl.plans[i], why, sizeof why), "%s", why);
    }
    RtBuf img = {0};
    uint32_t sums[64];
    cr_assert(ir_image_write_sums(m, src, write_graph, &pl, &img, sums));
    char err[256];
    Arena *ra = arena_new();
    cr_assert(ir_image_read_linked(img.data, img.n, ra, NULL, NULL, read_graph, NULL, sums, ng, err,
                                   sizeof err),
              "%s", err);
    arena_free(ra);
    ra = arena_new();
    cr_assert(!ir_image_read_linked(img.data, img.n, ra, NULL, NULL, read_graph, NULL, sums, ng - 1,
                                    err, sizeof err));
    cr_assert(strstr(err, "does not match the kernels linked with it"), "%s", err);
    arena_free(ra);
    uint8_t *copy = malloc(img.n);
    int plain_accepted = 0;
    for (int t = 0; t < 600; t++) {
        int g = t % ng;
        size_t span = pl.blob_hi[g] - pl.blob_lo[g];
        uint32_t w = rt_rng_word(11, 3, (uint64_t)t);
        memcpy(copy, img.data, img.n);
        copy[pl.blob_lo[g] + w % span] ^= (uint8_t)(1u << (w >> 29));
        fix_checksum(copy, img.n);
        ra = arena_new();
        plain_accepted +=
            ir_image_read(copy, img.n, ra, NULL, NULL, read_graph, NULL, err, sizeof err) != NULL;
        arena_free(ra);
        ra = arena_new();
        cr_assert(!ir_image_read_linked(copy, img.n, ra, NULL, NULL, read_graph, NULL, sums, ng,
                                        err, sizeof err),
                  "a changed blob of graph %d was accepted", g);
        arena_free(ra);
    }
    cr_expect(plain_accepted > 0, "the structural checks alone caught every change?");
    free(copy);
    free(img.data);
    ir_module_free(m);
    arena_free(a);
}

/* The CRC-32 that an image's header says its body has, made right again. */
static void fix_checksum(uint8_t *p, size_t n) {
    uint32_t c = ir_image_crc(p + IR_IMAGE_HEADER, n - IR_IMAGE_HEADER);
    for (int i = 0; i < 4; i++)
        p[20 + i] = (uint8_t)(c >> (8 * i));
}

/* --target-cpu x86-64: no AVX instruction in the executable (so it runs on
 * any x86-64 machine), and the same training up to rounding. */
Test(build, a_portable_executable_for_a_named_cpu, .timeout = 600) {
    char dir[4096], exe[4200], out_a[4200], out_b[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    snprintf(exe, sizeof exe, "%s/portable", dir);
    snprintf(out_a, sizeof out_a, "%s/a", dir);
    snprintf(out_b, sizeof out_b, "%s/b", dir);
    SpawnResult r =
        th_run(300, dflow_bin(), "build", PROG, "--target-cpu", "x86-64", "-o", exe, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = th_run(60, "/usr/bin/objdump", "-d", exe, NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "dflow_g0") || strstr(r.out, "<main>:"), "no code listed?");
    cr_assert(!strstr(r.out, "%ymm") && !strstr(r.out, "%zmm"), "AVX in an x86-64 build");
    th_spawn_free(&r);
    r = th_run(300, exe, "--out", out_a, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = th_run(300, dflow_bin(), "run", PROG, "--backend", "cpu", "--out", out_b, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    /* the loss column (second to last) agrees to rounding on every row */
    char *ma = metrics_without_time(out_a), *mb = metrics_without_time(out_b);
    char *sa, *sb, *la = strtok_r(ma, "\n", &sa), *lb = strtok_r(mb, "\n", &sb);
    int rows = 0, bad = 0;
    for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb)) {
        const char *ca = strrchr(la, ','), *cb = strrchr(lb, ',');
        if (!ca || !cb || !ca[1] || !cb[1] || rows++ == 0)
            continue; /* header, rows without a loss */
        double va = strtod(ca + 1, NULL), vb = strtod(cb + 1, NULL);
        bad += !(fabs(va - vb) <= 1e-4 * fabs(vb) + 1e-6);
    }
    cr_assert(!la && !lb && rows > 60 && bad == 0, "%d rows, %d losses differ beyond rounding",
              rows, bad);
    free(ma);
    free(mb);
    th_rmdir(dir);
}

/* A built executable that cannot allocate a value says which one, where
 * and how big, like `dflow run` (no signal, exit 1; no source line to show): a 1 GiB data segment
 * limit against a 6 GiB output (skipped under ASan, which needs more). */
Test(build, out_of_memory_is_a_located_error, .timeout = 600) {
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("a data segment limit does not work under ASan");
#endif
    char dir[4096], src[4200], exe[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    snprintf(src, sizeof src, "%s/big.dfl", dir);
    snprintf(exe, sizeof exe, "%s/big", dir);
    FILE *f = fopen(src, "w");
    cr_assert(f && fputs("main {\n  x = randn([40000, 40000], seed = 1)\n  print x\n}\n", f) >= 0 &&
              fclose(f) == 0);
    SpawnResult r = th_run(300, dflow_bin(), "build", src, "-o", exe, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    char *argv[] = {exe, NULL};
    SpawnOptions o = {.timeout_s = 120, .rlimit_data = 1ll << 30};
    cr_assert(th_spawn(argv, &o, &r));
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "big.dfl:2:7: error: out of memory: cannot allocate f32[40000,40000] "
                            "(5.96 GiB) for rng_normal; "),
              "%s", r.err);
    /* the executable has no source text: no empty line and lone caret under it */
    cr_assert(!strstr(r.err, "\n  \n"), "%s", r.err);
    cr_assert(!strstr(r.err, "^"), "%s", r.err);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* --check-numerics in an executable: the first kernel whose output holds a
 * NaN or Inf stops the run with its root op, file:line:col and the step,
 * exit 1. The MLP diverges at train step 8, as under `dflow run` (which
 * names the fused sum inside the kernel; the executable names the kernel's
 * root, the negation of that sum); a main loop overflows at step 38. */
Test(build, check_numerics_names_the_kernel_and_step, .timeout = 600) {
    char dir[4096], src[4200], loop[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    const char *exe = build_prog(dir);
    SpawnResult r = th_run(300, exe, "--set", "lr=1e36", "--check-numerics", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, PROG ":18:15: error: --check-numerics: neg produced inf in f32[] "
                                 "(step 8)\n"),
              "%s", r.err);
    th_spawn_free(&r);

    snprintf(src, sizeof src, "%s/loop.dfl", dir);
    snprintf(loop, sizeof loop, "%s/loop", dir);
    FILE *f = fopen(src, "w");
    cr_assert(f &&
              fputs("main {\n  x = full([3], 1.0)\n  for s in 0..60 {\n    x = x * 10.0\n  }\n"
                    "  print x\n}\n",
                    f) >= 0 &&
              fclose(f) == 0);
    r = th_run(300, dflow_bin(), "build", src, "-o", loop, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = th_run(120, loop, "--check-numerics", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "loop.dfl:4:11: error: --check-numerics: mul produced inf at element "
                            "[0] of f32[3] (step 38)\n"),
              "%s", r.err);
    cr_assert(!strstr(r.out, "inf"), "the run stops before printing: %s", r.out);
    th_spawn_free(&r);
    r = th_run(120, loop, NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "[inf, inf, inf]"), "%s", r.out);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* ./prog --threads N: the same output at 1 and 2 threads; a bad count is
 * refused with the reason. */
Test(build, threads_flag, .timeout = 600) {
    char dir[4096], exe[4200];
    cr_assert(th_tempdir(dir, sizeof dir, "build"));
    snprintf(exe, sizeof exe, "%s/linreg", dir);
    SpawnResult r = th_run(300, dflow_bin(), "build", "examples/linreg.dfl", "-o", exe, NULL);
    TH_EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    SpawnResult a = th_run(120, exe, "--threads", "1", NULL);
    SpawnResult b = th_run(120, exe, "--threads=2", NULL);
    TH_EXPECT_EXIT(a, 0);
    TH_EXPECT_EXIT(b, 0);
    cut_done_line(a.out);
    cut_done_line(b.out);
    cr_assert_str_eq(a.out, b.out);
    th_spawn_free(&a);
    th_spawn_free(&b);
    r = th_run(120, exe, "--threads", "0", NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "--threads needs an integer from 1 to 256, got '0'"), "%s", r.err);
    th_spawn_free(&r);
    th_rmdir(dir);
}
