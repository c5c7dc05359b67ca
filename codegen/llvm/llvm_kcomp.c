/* Compiling kernels: once per structure, in parallel, through the cache.
 *
 * Each kernel is its own LLVM module (llvm_emit_kernel), so it can be
 * shared and cached alone. llvm_kcomp_program first looks every kernel up
 * by its structural key and level (llvm_kernel_key) among the code this
 * compiler made before: identical kernels within a graph (the d
 * Hessian-vector products of a trace) and across graphs and programs are
 * compiled once. The rest become jobs that compile threads claim one at a
 * time; each thread has its own LLVM context and target machines (LLVM
 * allows one thread per context). A job emits the kernel, prints its IR
 * and hashes it with the target and level into the content key
 * (llvm_cache.h), names the kernel's functions after that key (so equal
 * code has equal symbols, and the symbols in a cached object are the ones
 * expected), and loads the object from the cache or optimises and compiles
 * it and stores it. Results never depend on the threads or the cache: the
 * object for a key is a function of the key's contents.
 *
 * DFLOW_COMPILE_THREADS overrides the thread count; DFLOW_KCOMP_TRACE prints
 * a line per unique kernel (level, plan size and work, compile times), the
 * figures the cost model of llvm_plan.c is calibrated on. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <llvm-c/BitWriter.h>

#include "../../runtime/grow.h"
#include "llvm_internal.h"

/* Bump when what a key covers changes in a way the IR does not show. */
#define KCOMP_FORMAT 1

typedef struct {
    LLVMContextRef ctx;
    LLVMTargetMachineRef tm[LLVM_OPT_COUNT];
} Worker;

typedef struct {
    LlvmKCode code;
    RtBuf skey; /* the structural key followed by the level */
    LlvmKey shash;
    int at; /* its index in entries */
} Entry;

typedef struct {
    const KernelProgram *p;
    const KernelPlan *k;
    LlvmOpt opt;
    Entry *e;
    LlvmKey key; /* its content key, once emitted */
    bool ok, loaded;
    double opt_s, codegen_s;
    char err[192];
} Job;

struct LlvmKComp {
    char *cpu; /* NULL: the host */
    bool jit;
    LlvmCache *cache;
    int threads;
    Worker *w;      /* per thread; w[0] is the calling thread's */
    LlvmKey target; /* cpu, features, code model, LLVM version, format */
    Entry **entries;
    int n, cap;
    /* the running batch */
    Job *jobs;
    int njobs;
    atomic_int next;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int default_threads(void) {
    const char *s = getenv("DFLOW_COMPILE_THREADS");
    int n = s ? atoi(s) : 0;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > 64 ? 64 : n;
}

/* A thread's context; its target machines are made on first use (the
 * first compilation on a machine builds its subtarget: milliseconds). */
static bool worker_init(LlvmKComp *c, Worker *w, char *err, size_t errn) {
    (void)c;
    w->ctx = LLVMContextCreate();
    if (!w->ctx) snprintf(err, errn, "cannot create an LLVM context");
    return w->ctx != NULL;
}

static LLVMTargetMachineRef worker_tm(LlvmKComp *c, Worker *w, LlvmOpt opt, char *err,
                                      size_t errn) {
    if (!w->tm[opt]) w->tm[opt] = llvm_target_machine(c->cpu, c->jit, opt, err, errn);
    return w->tm[opt];
}

static void worker_free(Worker *w) {
    for (int o = 0; o < LLVM_OPT_COUNT; o++)
        if (w->tm[o]) LLVMDisposeTargetMachine(w->tm[o]);
    if (w->ctx) LLVMContextDispose(w->ctx);
    memset(w, 0, sizeof *w);
}

/* What every key shares: the machine the code is for and the compiler. */
static LlvmKey target_key(LlvmKComp *c) {
    LlvmKey h = llvm_key_seed();
    char *triple = LLVMGetDefaultTargetTriple();
    char *cpu = c->cpu ? LLVMCreateMessage(c->cpu) : LLVMGetHostCPUName();
    char *features = c->cpu ? LLVMCreateMessage("") : LLVMGetHostCPUFeatures();
    h = llvm_key_add_str(h, triple);
    h = llvm_key_add_str(h, cpu);
    h = llvm_key_add_str(h, features);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    unsigned v[4] = {0, 0, 0, KCOMP_FORMAT};
    LLVMGetVersion(&v[0], &v[1], &v[2]);
    h = llvm_key_add(h, v, sizeof v);
    uint8_t jit = c->jit;
    return llvm_key_add(h, &jit, 1);
}

LlvmKComp *llvm_kcomp_new(const char *cpu, bool jit, LlvmCache *cache, int threads, char *err,
                          size_t errn) {
    LlvmKComp *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errn, "out of memory");
        return NULL;
    }
    c->cpu = cpu ? strdup(cpu) : NULL;
    c->jit = jit;
    c->cache = cache;
    c->threads = threads > 0 ? threads : default_threads();
    c->w = calloc((size_t)c->threads, sizeof *c->w);
    if (!c->w || (cpu && !c->cpu)) {
        snprintf(err, errn, "out of memory");
        llvm_kcomp_free(c);
        return NULL;
    }
    if (!worker_init(c, &c->w[0], err, errn)) {
        llvm_kcomp_free(c);
        return NULL;
    }
    c->target = target_key(c);
    return c;
}

void llvm_kcomp_free(LlvmKComp *c) {
    if (!c) return;
    for (int i = 0; c->w && i < c->threads; i++)
        worker_free(&c->w[i]);
    for (int i = 0; i < c->n; i++) {
        free(c->entries[i]->code.obj);
        free(c->entries[i]->skey.data);
        free(c->entries[i]);
    }
    free(c->entries);
    free(c->w);
    free(c->cpu);
    free(c);
}

LLVMContextRef llvm_kcomp_context(LlvmKComp *c) {
    return c->w[0].ctx;
}

/* ---- one module: key, cache, compile ----------------------------------------------------- */

/* The module's bitcode (deterministic, and cheaper to write than text). */
static LlvmKey content_key(const LlvmKComp *c, LLVMModuleRef m, LlvmOpt opt) {
    LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(m);
    LlvmKey h = llvm_key_add(c->target, LLVMGetBufferStart(bc), LLVMGetBufferSize(bc));
    LLVMDisposeMemoryBuffer(bc);
    uint8_t o = (uint8_t)opt;
    return llvm_key_add(h, &o, 1);
}

/* Optimises and compiles m with w's machine for opt: a malloc'ed object. */
static void *compile_module(LlvmKComp *c, Worker *w, LLVMModuleRef m, LlvmOpt opt, size_t *n,
                            double *opt_s, double *codegen_s, char *err, size_t errn) {
    if (!worker_tm(c, w, opt, err, errn) || !llvm_run_passes(w->tm[opt], m, opt, opt_s, err, errn))
        return NULL;
    double t0 = now();
    char *msg = NULL;
    LLVMMemoryBufferRef mb = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(w->tm[opt], m, LLVMObjectFile, &msg, &mb)) {
        snprintf(err, errn, "machine code generation failed: %s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    *n = LLVMGetBufferSize(mb);
    void *obj = malloc(*n ? *n : 1);
    if (obj)
        memcpy(obj, LLVMGetBufferStart(mb), *n);
    else
        snprintf(err, errn, "out of memory");
    LLVMDisposeMemoryBuffer(mb);
    *codegen_s += now() - t0;
    return obj;
}

/* The object for m (prepared; disposed here) under key: from the cache, or
 * compiled and stored. */
static void *object_for(LlvmKComp *c, Worker *w, LLVMModuleRef m, LlvmOpt opt, LlvmKey key,
                        size_t *n, bool *loaded, double *opt_s, double *codegen_s, char *err,
                        size_t errn) {
    void *obj = NULL;
    *loaded = llvm_cache_get(c->cache, key, &obj, n);
    if (!*loaded) {
        obj = compile_module(c, w, m, opt, n, opt_s, codegen_s, err, errn);
        if (obj) llvm_cache_put(c->cache, key, obj, *n);
    }
    LLVMDisposeModule(m);
    return obj;
}

static void rename_fn(LLVMModuleRef m, const char *from, const char *to) {
    LLVMValueRef f = LLVMGetNamedFunction(m, from);
    if (f) LLVMSetValueName2(f, to, strlen(to));
}

static void run_job(LlvmKComp *c, Worker *w, Job *jb) {
    LlvmCG cg;
    llvm_cg_init(&cg, w->ctx, "dfk");
    cg.fast = jb->opt == LLVM_OPT_FAST; /* the same bits either way (llvm_rng_block) */
    bool ok = llvm_emit_kernel(&cg, jb->p, jb->k, "dfk");
    LLVMDisposeBuilder(cg.b);
    if (!ok) {
        snprintf(jb->err, sizeof jb->err, "%s", cg.error[0] ? cg.error : "cannot lower a kernel");
        LLVMDisposeModule(cg.mod);
        return;
    }
    if (!worker_tm(c, w, jb->opt, jb->err, sizeof jb->err) ||
        !llvm_prepare_module(w->tm[jb->opt], cg.mod, jb->err, sizeof jb->err)) {
        LLVMDisposeModule(cg.mod);
        return;
    }
    LlvmKey key = content_key(c, cg.mod, jb->opt);
    jb->key = key;
    LlvmKCode *code = &jb->e->code;
    snprintf(code->sym[0], sizeof code->sym[0], "dfk_%016llx%016llx", (unsigned long long)key.hi,
             (unsigned long long)key.lo);
    bool trig = llvm_kernel_has_trig(jb->k);
    if (trig) snprintf(code->sym[1], sizeof code->sym[1], "%.33s_x", code->sym[0]);
    rename_fn(cg.mod, "dfk", code->sym[0]);
    if (trig) rename_fn(cg.mod, "dfk_x", code->sym[1]);
    code->obj = object_for(c, w, cg.mod, jb->opt, key, &code->nobj, &jb->loaded, &jb->opt_s,
                           &jb->codegen_s, jb->err, sizeof jb->err);
    jb->ok = code->obj != NULL;
    if (getenv("DFLOW_KCOMP_TRACE"))
        fprintf(stderr,
                "kcomp: k%d kind %d nins %d work %.3g %s%s opt %.2f ms cg %.2f ms obj %zu\n",
                jb->k->id, jb->k->kind, jb->k->nins, jb->k->work, llvm_opt_name(jb->opt),
                jb->loaded ? " cached" : "", 1e3 * jb->opt_s, 1e3 * jb->codegen_s, code->nobj);
}

typedef struct {
    LlvmKComp *c;
    int w;
    char err[192];
    bool ok;
} ThreadArg;

static void *thread_main(void *arg) {
    ThreadArg *t = arg;
    LlvmKComp *c = t->c;
    Worker *w = &c->w[t->w];
    if (!w->ctx && !worker_init(c, w, t->err, sizeof t->err)) {
        worker_free(w);
        return NULL; /* the other threads take its jobs */
    }
    t->ok = true;
    for (int i; (i = atomic_fetch_add(&c->next, 1)) < c->njobs;)
        run_job(c, w, &c->jobs[i]);
    return NULL;
}

/* Runs the batch on up to c->threads threads (this one included). */
static int run_jobs(LlvmKComp *c) {
    int nt = (c->njobs + 3) / 4; /* a thread's first compilation costs milliseconds of set-up */
    if (nt > c->threads) nt = c->threads;
    pthread_t tid[64];
    ThreadArg args[64];
    int started = 0;
    atomic_store(&c->next, 0);
    for (int t = 1; t < nt; t++) {
        args[t] = (ThreadArg){.c = c, .w = t};
        if (pthread_create(&tid[t], NULL, thread_main, &args[t]) != 0) break;
        started = t;
    }
    args[0] = (ThreadArg){.c = c, .w = 0};
    thread_main(&args[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    return started + 1;
}

/* ---- the registry of unique kernels ----------------------------------------------------- */

static Entry *find(LlvmKComp *c, const RtBuf *skey, LlvmKey h) {
    for (int i = 0; i < c->n; i++) {
        Entry *e = c->entries[i];
        if (e->shash.lo == h.lo && e->shash.hi == h.hi && e->skey.n == skey->n &&
            memcmp(e->skey.data, skey->data, skey->n) == 0)
            return e;
    }
    return NULL;
}

static Entry *add(LlvmKComp *c, RtBuf *skey, LlvmKey h) {
    if (!rt_grow(&c->entries, &c->cap, (size_t)c->n + 1, 64)) return NULL;
    Entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->skey = *skey;
    e->shash = h;
    memset(skey, 0, sizeof *skey);
    e->at = c->n;
    c->entries[c->n++] = e;
    return e;
}

/* Forgets entries whose compilation failed (they hold no code). */
static void drop_failed(LlvmKComp *c) {
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        Entry *e = c->entries[i];
        if (e->code.sym[0][0]) {
            e->at = k;
            c->entries[k++] = e;
        } else {
            free(e->skey.data);
            free(e);
        }
    }
    c->n = k;
}

/* A job that found the entry another job of the batch had just written
 * (the same IR under two structural keys, compiled concurrently) did not
 * use the cache: it counts as compiled (then as shared, drop_aliases). */
static void own_entries(LlvmKComp *c) {
    for (int j = 0; j < c->njobs; j++) {
        Job *a = &c->jobs[j];
        for (int i = 0; a->loaded && i < c->njobs; i++) {
            const Job *b = &c->jobs[i];
            if (i != j && b->ok && !b->loaded && b->key.lo == a->key.lo && b->key.hi == a->key.hi)
                a->loaded = false;
        }
    }
}

/* Two structural keys can give the same IR (a field the emitter reads
 * differently in different kernels only): the later one keeps no object
 * of its own and is linked to the earlier one's symbols. */
static void drop_aliases(LlvmKComp *c, LlvmKStats *st) {
    for (int j = 0; j < c->njobs; j++) {
        Entry *e = c->jobs[j].e;
        for (int i = 0; i < e->at; i++) {
            if (strcmp(c->entries[i]->code.sym[0], e->code.sym[0]) != 0) continue;
            if (c->jobs[j].loaded)
                st->nloaded--;
            else
                st->ncompiled--;
            st->nreused++;
            free(e->code.obj);
            e->code.obj = NULL;
            e->code.nobj = 0;
            break;
        }
    }
}

bool llvm_kcomp_program(LlvmKComp *c, const KernelProgram *p, const uint8_t *opts, LlvmKCode **code,
                        LlvmKStats *st, char *err, size_t errn) {
    memset(st, 0, sizeof *st);
    st->nkernels = p->nkernels;
    c->jobs = calloc((size_t)(p->nkernels ? p->nkernels : 1), sizeof *c->jobs);
    c->njobs = 0;
    bool ok = c->jobs != NULL;
    for (int i = 0; ok && i < p->nkernels; i++) {
        RtBuf skey = {0};
        ok = llvm_kernel_key(p, &p->kernels[i], &skey);
        rt_buf_u8(&skey, opts[i]);
        ok = ok && !skey.oom;
        LlvmKey h = ok ? llvm_key_add(llvm_key_seed(), skey.data, skey.n) : (LlvmKey){0, 0};
        Entry *e = ok ? find(c, &skey, h) : NULL;
        if (e) {
            st->nreused++;
        } else if (ok && (e = add(c, &skey, h))) {
            c->jobs[c->njobs++] =
                (Job){.p = p, .k = &p->kernels[i], .opt = (LlvmOpt)opts[i], .e = e};
        } else {
            ok = false;
        }
        free(skey.data);
        if (ok) code[i] = &e->code;
    }
    if (!ok) snprintf(err, errn, "out of memory");
    if (ok && c->njobs) st->nthreads = run_jobs(c);
    own_entries(c);
    for (int j = 0; j < c->njobs; j++) {
        Job *jb = &c->jobs[j];
        st->opt_s += jb->opt_s;
        st->codegen_s += jb->codegen_s;
        if (jb->ok) {
            st->nloaded += jb->loaded;
            st->ncompiled += !jb->loaded;
        } else {
            if (ok) snprintf(err, errn, "%s", jb->err[0] ? jb->err : "a compile thread failed");
            ok = false;
            jb->e->code.sym[0][0] = '\0';
            free(jb->e->code.obj);
            jb->e->code.obj = NULL;
        }
    }
    if (ok) drop_aliases(c, st);
    if (!ok) drop_failed(c);
    if (c->njobs && c->cache && st->ncompiled) llvm_cache_trim(c->cache);
    free(c->jobs);
    c->jobs = NULL;
    c->njobs = 0;
    return ok;
}

bool llvm_kcomp_module(LlvmKComp *c, LLVMModuleRef m, void **obj, size_t *n, LlvmKStats *st,
                       char *err, size_t errn) {
    Worker *w = &c->w[0];
    if (!worker_tm(c, w, LLVM_OPT_FAST, err, errn) ||
        !llvm_prepare_module(w->tm[LLVM_OPT_FAST], m, err, errn)) {
        LLVMDisposeModule(m);
        return false;
    }
    LlvmKey key = content_key(c, m, LLVM_OPT_FAST);
    bool loaded = false;
    *obj =
        object_for(c, w, m, LLVM_OPT_FAST, key, n, &loaded, &st->opt_s, &st->codegen_s, err, errn);
    return *obj != NULL;
}
