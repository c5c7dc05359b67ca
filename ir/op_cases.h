/* Case-label lists of the op families of ops.def, for exhaustive switches.
 *
 * Every switch over OpKind names every op and has no `default:`, so -Wswitch
 * (under -Werror) refuses to build a layer that does not say what it does
 * with a new op. Where a whole family shares one path, the switch uses the
 * family's list instead of spelling out its members:
 *
 *     switch (op) {
 *     case OP_CAST: ...
 *     IR_CASES_EW_BINARY: ...
 *     }
 *
 * A family is one section of ops.def; the lists partition the ops (a switch
 * naming two families and an op from both would not compile), and
 * tests/unit/test_op_cases.c checks each list against the rows' arity and
 * flags, so a new row put in the wrong list is caught too. A new row must be
 * added to exactly one list. */
#ifndef DFLOW_IR_OP_CASES_H
#define DFLOW_IR_OP_CASES_H

#include "ir.h"

/* arity 0 */
#define IR_CASES_LEAF                                                                              \
    case OP_INPUT:                                                                                 \
    case OP_CONST:                                                                                 \
    case OP_IOTA

/* OPF_EW, arity 1 */
#define IR_CASES_EW_UNARY                                                                          \
    case OP_NEG:                                                                                   \
    case OP_ABS:                                                                                   \
    case OP_SIGN:                                                                                  \
    case OP_FLOOR:                                                                                 \
    case OP_EXP:                                                                                   \
    case OP_LOG:                                                                                   \
    case OP_SQRT:                                                                                  \
    case OP_SIN:                                                                                   \
    case OP_COS:                                                                                   \
    case OP_ERF:                                                                                   \
    case OP_NOT:                                                                                   \
    case OP_CAST:                                                                                  \
    case OP_STOP_GRAD

/* OPF_EW, arity 2 */
#define IR_CASES_EW_BINARY                                                                         \
    case OP_ADD:                                                                                   \
    case OP_SUB:                                                                                   \
    case OP_MUL:                                                                                   \
    case OP_DIV:                                                                                   \
    case OP_MOD:                                                                                   \
    case OP_POW:                                                                                   \
    case OP_MAX:                                                                                   \
    case OP_MIN:                                                                                   \
    case OP_LT:                                                                                    \
    case OP_LE:                                                                                    \
    case OP_EQ:                                                                                    \
    case OP_NE:                                                                                    \
    case OP_AND:                                                                                   \
    case OP_OR

/* OPF_EW, arity 3 */
#define IR_CASES_EW_TERNARY case OP_WHERE

/* OPF_RED */
#define IR_CASES_REDUCE                                                                            \
    case OP_SUM:                                                                                   \
    case OP_REDUCE_MAX:                                                                            \
    case OP_REDUCE_MIN:                                                                            \
    case OP_ARGMAX

/* OPF_MOVE */
#define IR_CASES_MOVE                                                                              \
    case OP_RESHAPE:                                                                               \
    case OP_PERMUTE:                                                                               \
    case OP_BROADCAST:                                                                             \
    case OP_SLICE:                                                                                 \
    case OP_CONCAT:                                                                                \
    case OP_GATHER:                                                                                \
    case OP_SCATTER_ADD:                                                                           \
    case OP_PAD

/* OPF_CONTR */
#define IR_CASES_CONTR case OP_MATMUL

/* OPF_ORDER */
#define IR_CASES_ORDER                                                                             \
    case OP_CUMSUM:                                                                                \
    case OP_ARGSORT:                                                                               \
    case OP_COMPONENTS

/* OPF_CALL */
#define IR_CASES_CALL                                                                              \
    case OP_SOLVE:                                                                                 \
    case OP_CHOLESKY:                                                                              \
    case OP_INV:                                                                                   \
    case OP_DET:                                                                                   \
    case OP_SLOGDET:                                                                               \
    case OP_QR:                                                                                    \
    case OP_SVD:                                                                                   \
    case OP_EIGH

/* OPF_RAND */
#define IR_CASES_RAND                                                                              \
    case OP_RNG_UNIFORM:                                                                           \
    case OP_RNG_NORMAL:                                                                            \
    case OP_FRESH_SEED

/* Every op that is not elementwise: what an elementwise kernel never sees. */
#define IR_CASES_NOT_EW                                                                            \
    IR_CASES_LEAF:                                                                                 \
    IR_CASES_REDUCE:                                                                               \
    IR_CASES_MOVE:                                                                                 \
    IR_CASES_CONTR:                                                                                \
    IR_CASES_ORDER:                                                                                \
    IR_CASES_CALL:                                                                                 \
    IR_CASES_RAND

/* Every op that is not a library call. */
#define IR_CASES_NOT_CALL                                                                          \
    IR_CASES_LEAF:                                                                                 \
    IR_CASES_EW_UNARY:                                                                             \
    IR_CASES_EW_BINARY:                                                                            \
    IR_CASES_EW_TERNARY:                                                                           \
    IR_CASES_REDUCE:                                                                               \
    IR_CASES_MOVE:                                                                                 \
    IR_CASES_CONTR:                                                                                \
    IR_CASES_ORDER:                                                                                \
    IR_CASES_RAND

#endif
