/* Slot definitions: what wrote the content a host slot holds at each point of
 * the host program, so that `grad` can see through host statements.
 *
 * A host statement (print, log, save, for, while, if, train) ends the graph
 * being built: the values of the host scope become slots and later graphs
 * read them back as inputs, which autodiff sees as constants. To keep the
 * derivative exact, the lowering records for every slot its current
 * definition (SlotDef): written by a node of a graph (DEF_WRITE), never
 * written by a graph (DEF_EXTERN: data, loop counters, the seed), or one of
 * several that reach a point of the host program (DEF_JOIN: the head of a
 * loop, the exit of a loop or a train, the merge after a branch on a run-time
 * value). Each graph remembers the definition each of its inputs read.
 *
 * lw_see_through rebuilds an objective in the graph being built: an input
 * whose definition depends on a target of `grad` is replaced by a copy of the
 * nodes that computed it (recursively, across any number of graphs), as long
 * as every value that computation read still holds the same definition; a
 * value that cannot be rebuilt is a located error, never a silent zero. A
 * definition carried across a join cannot be rebuilt (it depends on the path
 * the program took); whether it depends on a target at all is decided once
 * the whole host program is lowered (lw_defs_check_pending) and is an error
 * when it does. The content of a join is compared alternative by alternative
 * with a target that joins at the same place (a loop-carried value against
 * the loop-carried parameters), so that `w_prev = w; w = w - lr * g` keeps
 * w_prev a constant of the next iteration's gradient. Not a public header. */
#ifndef DFLOW_FRONTEND_LOWER_DEFS_H
#define DFLOW_FRONTEND_LOWER_DEFS_H

#include <stdbool.h>

#include "../ir/ir.h"

typedef struct Lower Lower;
typedef struct SlotDef SlotDef;
typedef struct Region Region;

/* What a graph under construction (or finished) read and wrote: the arrays
 * are the GraphCtx's, kept in step as it grows. */
typedef struct GraphRec {
    Graph *g;
    const int *in_slots;
    SlotDef *const *in_defs; /* the definition each input read */
    int nin;
} GraphRec;

/* A host loop, branch or train being lowered (on the C stack of its lowerer). */
struct Region {
    Region *parent;
    bool loop;
    SlotDef **entry; /* each slot's definition when the region began */
    int nentry;
    SlotDef **heads; /* loops: the head joins of the loop-carried slots */
    int nheads, cap_heads;
    SlotDef **breaks; /* loops: definitions current at a `break` */
    int nbreaks, cap_breaks;
    SlotDef **then_defs; /* branches: the definitions at the end of the then block */
    int nthen;
};

/* The current definition of slot (DEF_EXTERN until a graph writes it). */
SlotDef *lw_def_cur(Lower *L, int slot);
/* The outputs of the current graph become the definitions of their slots
 * (called when the graph is emitted: its writes happen when it runs). */
void lw_defs_commit(Lower *L);
/* Slots written by a graph of Module.init (run before the host program):
 * their content is there at the start of every region being lowered. */
void lw_defs_init_written(Lower *L, const int *slots, int n);
/* Records the definition an input of the current graph reads. */
void lw_defs_read(Lower *L, int input_index, int slot);

/* Regions. begin snapshots every definition; a loop then gives each slot in
 * `slots` (its homes) a head join; a branch calls lw_region_else between
 * its blocks; end makes a join for every slot written inside. */
void lw_region_begin(Lower *L, Region *r, bool loop);
void lw_region_heads(Lower *L, const int *slots, int n);
/* A loop whose body has no host statements (train): the slots written so far
 * join at the head with their entry definition, complete at once. */
void lw_region_heads_written(Lower *L);
void lw_region_break(Lower *L);
void lw_region_else(Lower *L);
void lw_region_end(Lower *L);

/* The objective y rebuilt in the current graph so that autodiff reaches the
 * targets wrt through earlier graphs; y itself when nothing needs rebuilding;
 * NULL after a diagnostic. */
Node *lw_see_through(Lower *L, Node *y, Node *const *wrt, int nwrt, SrcLoc loc);
/* Reports the gradients whose objective depends on a target through a join
 * (checked once every join is complete). */
void lw_defs_check_pending(Lower *L);

#endif
