/* Dead-code elimination: keep what the outputs need.
 *
 * One backward walk over the nodes (creation order is topological, so a
 * reverse scan sees every user before its sources) marks what the outputs
 * reach; pass_rebuild then copies only the marked nodes. Inputs are always
 * kept, at their indices, because callers feed them by position. */
#include <stdlib.h>

#include "pass.h"

bool pass_dce(Graph *g, DiagList *d) {
    bool *live = calloc(g->nnodes ? g->nnodes : 1, sizeof *live);
    if (!live) {
        diag_error(d, srcloc_none(), "out of memory in pass dce");
        return false;
    }
    for (int j = 0; j < g->noutputs; j++)
        live[g->outputs[j]->id] = true;
    for (uint32_t i = g->nnodes; i-- > 0;) {
        if (!live[i]) continue;
        Node *n = g->nodes[i];
        for (int s = 0; s < n->nsrc; s++)
            live[n->src[s]->id] = true;
    }
    bool ok = pass_rebuild(g, live, NULL, NULL, "dce");
    free(live);
    return ok;
}
