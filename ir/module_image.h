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
 * The image starts with a header: magic, version, the length of the rest and
 * its CRC-32, checked before anything else is read, so a modified or cut
 * image is "corrupt program image". Behind the checksum nothing is trusted
 * either: every count, slot and graph index is checked on the way in, and
 * the slots a graph call reads and writes must have the types of the
 * graph's signature. A built executable also carries, outside the image,
 * the CRC-32 of each graph's record (signature and blob) as it was compiled;
 * ir_image_read_linked checks each record against it, so the kernels only
 * ever meet the plan they were compiled from; and the image's own CRC-32,
 * which the executable checks against the header's before reading (so an
 * image edited with its checksum recomputed is refused too). */
#ifndef DFLOW_IR_MODULE_IMAGE_H
#define DFLOW_IR_MODULE_IMAGE_H

#include "../runtime/bytes.h"
#include "module.h"

#define IR_IMAGE_HEADER 24 /* magic 8, version 4, length 8, CRC-32 4 */
/* Bumped whenever the layout changes (3: a --check-numerics record per kernel). */
#define IR_IMAGE_VERSION 3

/* Writes m; write_graph(ctx, g, id, b) appends graph id's backend blob. */
bool ir_image_write(const Module *m, const SourceSet *src,
                    bool (*write_graph)(void *ctx, const Graph *g, int id, RtBuf *b), void *ctx,
                    RtBuf *b);
/* The same, and graph_sums[id] (one per graph of ir_module_graphs) the CRC-32
 * of graph id's record, for the executable to carry beside its kernels. */
bool ir_image_write_sums(const Module *m, const SourceSet *src,
                         bool (*write_graph)(void *ctx, const Graph *g, int id, RtBuf *b),
                         void *ctx, RtBuf *b, uint32_t *graph_sums);
/* CRC-32 of n bytes (zlib's polynomial). */
uint32_t ir_image_crc(const uint8_t *p, size_t n);
/* The CRC-32 an image's header records (0 for fewer than IR_IMAGE_HEADER bytes). */
uint32_t ir_image_header_crc(const uint8_t *p, size_t n);

/* Reads an image: a Module in arena a with sources in src (paths only) and
 * diagnostics list d; read_graph(ctx, g, id, r) reads graph id's blob
 * (g is the signature graph). NULL with the reason in err on a bad image.
 * Free DATA/CONFIG slot values with ir_image_module_free. */
Module *ir_image_read(const uint8_t *p, size_t n, Arena *a, SourceSet *src, DiagList *d,
                      bool (*read_graph)(void *ctx, Graph *g, int id, RtReader *r), void *ctx,
                      char *err, size_t errn);
/* ir_image_read that also checks every graph record against graph_sums[0..nsums)
 * (what ir_image_write_sums gave when the kernels were compiled). */
Module *ir_image_read_linked(const uint8_t *p, size_t n, Arena *a, SourceSet *src, DiagList *d,
                             bool (*read_graph)(void *ctx, Graph *g, int id, RtReader *r),
                             void *ctx, const uint32_t *graph_sums, int nsums, char *err,
                             size_t errn);

/* Source locations in the image (backend blobs use them for run-time errors). */
void ir_image_put_loc(RtBuf *b, SrcLoc l);
SrcLoc ir_image_get_loc(RtReader *r, const SourceSet *src);

#endif
