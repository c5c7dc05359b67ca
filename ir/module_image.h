/* The program image of a built executable: a Module written to bytes and read
 * back without the compiler.
 *
 * `dflow build` writes the module (slots with their compile-time values, the
 * host program, the source paths its locations name) and, per graph the host
 * program runs, the graph's signature (inputs and outputs: dtype, shape,
 * name, location) followed by what the backend needs to run it (a blob the
 * caller writes, e.g. runtime/kprog.h's program). The executable reads it
 * back into a Module whose graphs are signatures only: enough for the
 * executor (ir/exec.h) and a GraphRunner that runs precompiled kernels.
 * DATA and CONFIG values are views into the image (aligned, used in place).
 * A malformed image is an error with a reason, never a crash: every count,
 * slot and graph index is checked on the way in. */
#ifndef DFLOW_IR_MODULE_IMAGE_H
#define DFLOW_IR_MODULE_IMAGE_H

#include "../runtime/bytes.h"
#include "module.h"

/* The distinct graphs the host program runs, in first-use order (their ids
 * in the image), and the first call of each (calls may be NULL). The
 * arrays are allocated in a; -1 when out of memory. */
int ir_image_graphs(const Module *m, Arena *a, const Graph ***graphs, const GraphCall ***calls);

/* Writes m; write_graph(ctx, g, id, b) appends graph id's backend blob. */
bool ir_image_write(const Module *m, const SourceSet *src,
                    bool (*write_graph)(void *ctx, const Graph *g, int id, RtBuf *b), void *ctx,
                    RtBuf *b);

/* Reads an image: a Module in arena a with sources in src (paths only) and
 * diagnostics list d; read_graph(ctx, g, id, r) reads graph id's blob
 * (g is the signature graph). NULL with the reason in err on a bad image.
 * Free DATA/CONFIG slot values with ir_image_module_free. */
Module *ir_image_read(const uint8_t *p, size_t n, Arena *a, SourceSet *src, DiagList *d,
                      bool (*read_graph)(void *ctx, Graph *g, int id, RtReader *r), void *ctx,
                      char *err, size_t errn);

/* Source locations in the image (backend blobs use them for run-time errors). */
void ir_image_put_loc(RtBuf *b, SrcLoc l);
SrcLoc ir_image_get_loc(RtReader *r, const SourceSet *src);

#endif
