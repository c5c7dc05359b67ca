/* Ahead-of-time compilation and linking (llvm_aot.h). */
#include "llvm_aot.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../ir/module_image.h"
#include "../../runtime/outfile.h"
#include "aot_mark.h"
#include "llvm_internal.h"
#include "llvm_plan.h"

extern char **environ;

typedef struct {
    const LlvmBuildOptions *o;
    Arena *a;
    LlvmKComp *kc;   /* kernels: each structure compiled once for the whole program */
    LlvmPlan *plans; /* per graph id */
    char **objs;     /* object files to link: the kernels', then one glue per graph */
    int nobjs, capobjs;
    char *err;
    size_t errn;
} Aot;

static FILE *log_of(const LlvmBuildOptions *o) {
    return o->log ? o->log : stderr;
}

/* Which inputs the call donates: the executor drops a slot's old value when
 * an output of the same call replaces it and no other input reads it (never
 * DATA or CONFIG values, which belong to the module). A run that donates
 * less still works (runtime/kprog.h); this is the plan for the usual case. */
static bool *static_donations(Aot *t, const Module *m, const GraphCall *c) {
    const Graph *g = c->graph;
    bool *d = arena_alloc(t->a, (size_t)(g->ninputs ? g->ninputs : 1));
    for (int i = 0; d && i < g->ninputs; i++) {
        int s = c->in_slots[i], uses = 0;
        bool written = false;
        for (int k = 0; k < g->ninputs; k++)
            uses += c->in_slots[k] == s;
        for (int j = 0; j < g->noutputs; j++)
            written = written || c->out_slots[j] == s;
        SlotKind kind = m->slots[s].kind;
        d[i] = kind != SLOT_DATA && kind != SLOT_CONFIG && uses == 1 && written;
    }
    return d;
}

/* Writes an object into the work folder and lists it for the link. */
static bool add_object(Aot *t, const void *obj, size_t n) {
    if (!arena_grow(t->a, &t->objs, &t->capobjs, (size_t)t->nobjs + 1, 64)) {
        snprintf(t->err, t->errn, "out of memory");
        return false;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/o%d.o", t->o->work_dir, t->nobjs);
    char *copy = arena_strdup(t->a, path);
    if (!copy) {
        snprintf(t->err, t->errn, "out of memory");
        return false;
    }
    t->objs[t->nobjs++] = copy;
    return rt_out_write_file(copy, obj, n, 0666, t->err, t->errn);
}

/* Plans graph id, compiles its kernels not compiled yet (in parallel) and
 * its glue (the task table dflow_g<id>_tab), and writes their objects. */
static bool compile_graph(Aot *t, const Module *m, const GraphCall *c, int id) {
    const Graph *g = c->graph;
    const char *gname = g->name ? g->name : "?";
    char why[192];
    bool *donated = static_donations(t, m, c);
    LlvmPlan *pl = &t->plans[id];
    if (!donated || !llvm_plan_graph(g, donated, t->a, pl, why, sizeof why)) {
        snprintf(t->err, t->errn, "graph %s cannot be compiled: %s", gname, why);
        return false;
    }
    int nk = pl->prog->nkernels;
    LlvmKCode **codes = arena_alloc(t->a, sizeof *codes * (size_t)(nk ? nk : 1));
    const char **syms = arena_alloc(t->a, sizeof *syms * (size_t)(2 * nk + 1));
    LlvmKStats st;
    if (!codes || !syms ||
        !llvm_kcomp_program(t->kc, pl->prog, pl->opts, codes, &st, why, sizeof why)) {
        snprintf(t->err, t->errn, "graph %s cannot be compiled: %s", gname,
                 codes ? why : "out of memory");
        return false;
    }
    for (int i = 0; i < nk; i++) {
        LlvmKCode *k = codes[i];
        bool ok = !k->obj || add_object(t, k->obj, k->nobj);
        free(k->obj);
        k->obj = NULL;
        if (!ok) return false;
        syms[2 * i] = k->sym[0];
        syms[2 * i + 1] = k->sym[1][0] ? k->sym[1] : NULL;
    }
    char name[32];
    snprintf(name, sizeof name, "dflow_g%d", id);
    LlvmCG cg;
    llvm_cg_init(&cg, llvm_kcomp_context(t->kc), name);
    bool ok = llvm_emit_glue(&cg, pl->prog, syms, name);
    LLVMDisposeBuilder(cg.b);
    if (!ok) {
        snprintf(t->err, t->errn, "graph %s cannot be compiled: %s", gname,
                 cg.error[0] ? cg.error : "cannot lower the graph");
        LLVMDisposeModule(cg.mod);
        return false;
    }
    void *obj = NULL;
    size_t n = 0;
    ok = llvm_kcomp_module(t->kc, cg.mod, &obj, &n, &st, t->err, t->errn) && add_object(t, obj, n);
    free(obj);
    if (ok && t->o->verbose)
        fprintf(log_of(t->o), "build: graph %s: %d kernels (%d shared), arena %lld bytes\n", gname,
                pl->kp.nkernels, st.nreused, (long long)pl->kp.arena_bytes);
    return ok;
}

/* The image's blob of a graph (llvm_plan_write_image). */
static bool write_graph(void *ctx, const Graph *g, int id, RtBuf *b) {
    (void)g;
    Aot *t = ctx;
    llvm_plan_write_image(&t->plans[id], b);
    return true;
}

/* The assembly that places the image in read-only data (aligned, so its
 * tensors are used in place), lists the graphs' task tables and marks the
 * executable as one dflow built (aot_mark.h). */
static bool write_asm(const char *path, const char *image, int ngraphs, const uint32_t *sums,
                      uint32_t image_crc, char *err, size_t errn) {
    RtOutFile o;
    if (!rt_out_open(&o, path, 0666, err, errn)) return false;
    FILE *f = o.f;
    fprintf(f, "\t.section .rodata\n\t.balign %d\n\t.globl dflow_image\ndflow_image:\n\t.incbin \"",
            RT_IMAGE_ALIGN);
    for (const char *c = image; *c; c++)
        fprintf(f, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    fprintf(f, "\"\n\t.globl dflow_image_end\ndflow_image_end:\n");
    fprintf(f, "\t.balign 8\n\t.globl dflow_ntabs\ndflow_ntabs:\n\t.quad %d\n", ngraphs);
    fprintf(f, "\t.section .data.rel.ro,\"aw\"\n\t.balign 8\n\t.globl dflow_tabs\ndflow_tabs:\n");
    for (int i = 0; i < ngraphs; i++)
        fprintf(f, "\t.quad dflow_g%d_tab\n", i);
    if (ngraphs == 0) fprintf(f, "\t.quad 0\n");
    /* each graph record's CRC-32 as compiled: outside the image, beside the kernels */
    fprintf(f, "\t.section .rodata\n\t.balign 4\n\t.globl dflow_graph_sums\ndflow_graph_sums:\n");
    for (int i = 0; i < ngraphs; i++)
        fprintf(f, "\t.long %u\n", (unsigned)sums[i]);
    if (ngraphs == 0) fprintf(f, "\t.long 0\n");
    fprintf(f, "\t.globl dflow_image_crc\ndflow_image_crc:\n\t.long %u\n", (unsigned)image_crc);
    fprintf(f, "\t.section %s,\"a\",@progbits\n\t.asciz \"dflow build\"\n", AOT_MARK_SECTION);
    fprintf(f, "\t.section .note.GNU-stack,\"\",@progbits\n");
    return rt_out_commit(&o, err, errn);
}

/* Splits flags at spaces (no quoting: configure-time paths without spaces). */
static int split_words(char *s, char **out, int max) {
    int n = 0;
    for (char *tok = strtok(s, " "); tok && n < max; tok = strtok(NULL, " "))
        out[n++] = tok;
    return n;
}

static bool link_exe(Aot *t, const char *asm_path, const char *output) {
    char **objs = t->objs;
    int nobj = t->nobjs;
    const LlvmBuildOptions *o = t->o;
    int cap = nobj + 64;
    char **argv = arena_alloc(t->a, sizeof(char *) * (size_t)cap);
    char *flags = arena_strdup(t->a, o->link_flags ? o->link_flags : "");
    if (!argv || !flags) {
        snprintf(t->err, t->errn, "out of memory");
        return false;
    }
    int n = 0;
    argv[n++] = (char *)o->cc;
    argv[n++] = "-o";
    argv[n++] = (char *)output;
    for (int i = 0; i < nobj; i++)
        argv[n++] = objs[i];
    argv[n++] = (char *)asm_path;
    argv[n++] = (char *)o->rt_lib;
    n += split_words(flags, argv + n, cap - n - 1);
    argv[n] = NULL;
    if (o->verbose) {
        fprintf(log_of(o), "build: link:");
        for (int i = 0; i < n; i++)
            fprintf(log_of(o), " %s", argv[i]);
        fprintf(log_of(o), "\n");
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, o->cc, NULL, NULL, argv, environ);
    if (rc != 0) {
        snprintf(t->err, t->errn, "cannot run the linker '%s': %s", o->cc, strerror(rc));
        return false;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(t->err, t->errn, "waiting for the linker: %s", strerror(errno));
            return false;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(t->err, t->errn, "linking %s failed (%s exited with status %d)", o->output, o->cc,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
    }
    return true;
}

/* Links into a temporary name beside the output, then renames it over the
 * output: a failed or interrupted link never leaves half an executable. */
static bool link_and_install(Aot *t, const char *asm_path) {
    size_t n = strlen(t->o->output) + 32;
    char *tmp = arena_alloc(t->a, n);
    if (!tmp) {
        snprintf(t->err, t->errn, "out of memory");
        return false;
    }
    snprintf(tmp, n, "%s.tmp-%ld", t->o->output, (long)getpid());
    bool ok = link_exe(t, asm_path, tmp) && rt_out_install(tmp, t->o->output, t->err, t->errn);
    if (!ok) unlink(tmp);
    return ok;
}

static bool build(Aot *t, Module *m, const SourceSet *src) {
    const Graph **graphs;
    const GraphCall **calls;
    int ng = ir_module_graphs(m, t->a, &graphs, &calls);
    t->plans = ng >= 0 ? arena_alloc(t->a, sizeof *t->plans * (size_t)(ng ? ng : 1)) : NULL;
    if (!t->plans) {
        snprintf(t->err, t->errn, "out of memory");
        return false;
    }
    for (int i = 0; i < ng; i++)
        if (!compile_graph(t, m, calls[i], i)) return false;
    RtBuf img = {0};
    uint32_t *sums = arena_alloc(t->a, sizeof *sums * (size_t)(ng ? ng : 1));
    bool ok = sums && ir_image_write_sums(m, src, write_graph, t, &img, sums);
    if (!ok) snprintf(t->err, t->errn, "out of memory writing the program image");
    char image[4096], asm_path[4096];
    snprintf(image, sizeof image, "%s/image.bin", t->o->work_dir);
    snprintf(asm_path, sizeof asm_path, "%s/image.s", t->o->work_dir);
    ok =
        ok && rt_out_write_file(image, img.data, img.n, 0666, t->err, t->errn) &&
        write_asm(asm_path, image, ng, sums, ir_image_header_crc(img.data, img.n), t->err, t->errn);
    if (ok && t->o->verbose)
        fprintf(log_of(t->o), "build: program image %zu bytes, %d graphs\n", img.n, ng);
    free(img.data);
    return ok && link_and_install(t, asm_path);
}

bool llvm_build_executable(Module *m, const SourceSet *src, const LlvmBuildOptions *o, char *err,
                           size_t errn) {
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
        snprintf(err, errn, "LLVM has no native target for this machine");
        return false;
    }
    Aot t = {.o = o, .err = err, .errn = errn};
    t.a = arena_new();
    t.kc = t.a ? llvm_kcomp_new(o->cpu, false, NULL, 0, err, errn) : NULL;
    if (!t.a) snprintf(err, errn, "out of memory");
    bool ok = t.kc && build(&t, m, src);
    llvm_kcomp_free(t.kc);
    arena_free(t.a);
    return ok;
}
