/* Shape and dtype rules shared by the builders (graph.c) and the verifier.
 *
 * ir_infer is the single source of truth for "is this node well formed": the
 * builders call it on the node they are about to create and the verifier
 * calls it again on every node after a pass, so a rule never exists twice.
 * Internal to ir/: not part of the ir.h contract. */
#ifndef DFLOW_IR_SHAPE_H
#define DFLOW_IR_SHAPE_H

#include <stddef.h>

#include "ir.h"

/* Checks a node of kind op over src[0..nsrc) with attributes attr.
 * *dt and *shape are in/out: where the builder decides the result (the shape
 * of SR_ATTR and SR_SLICE ops; the dtype of CAST, CONST, IOTA, INPUT and the
 * RNG ops) they are read and validated; otherwise they are computed. On a
 * violation returns false and writes a message starting with the op's name
 * into err (err may be NULL). */
bool ir_infer(OpKind op, Node *const *src, int nsrc, const Attr *attr, DType *dt, Shape *shape,
              char *err, size_t errn);

/* "f32[2,3]" (or "i64[]" for a scalar) into buf; returns buf. */
char *ir_type_str(DType dt, const Shape *s, char *buf, size_t n);

/* dtype classes used by the rules */
bool ir_dtype_arith(DType t);   /* f32, f64, i32, i64, bool: what the interpreter computes */
bool ir_dtype_numeric(DType t); /* f32, f64, i32, i64 */

/* An order op's tensor as outer x n x inner for runtime/order.h: around its
 * axis (cumsum, argsort); components: 1 x rows x columns (rank 1: one row). */
void ir_order_dims(const Node *n, int64_t d[3]);

#endif
