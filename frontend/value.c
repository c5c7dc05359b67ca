/* Value constructors and small structural helpers (value.h).
 *
 * Values are plain arena records; nothing here touches graphs beyond storing
 * node pointers, so the helpers work in any lowering context. */
#include "value.h"

#include <stdio.h>
#include <string.h>

static Value *mk(Arena *a, ValueKind k) {
    Value *v = arena_alloc(a, sizeof *v);
    if (v) v->kind = k;
    return v;
}

Value *val_error(Arena *a) {
    return mk(a, V_ERROR);
}
Value *val_none(Arena *a) {
    return mk(a, V_NONE);
}

Value *val_int(Arena *a, int64_t i) {
    Value *v = mk(a, V_INT);
    if (v) v->u.i = i;
    return v;
}

Value *val_float(Arena *a, double f) {
    Value *v = mk(a, V_FLOAT);
    if (v) v->u.f = f;
    return v;
}

Value *val_bool(Arena *a, bool b) {
    Value *v = mk(a, V_BOOL);
    if (v) v->u.b = b;
    return v;
}

Value *val_str(Arena *a, const char *s) {
    Value *v = mk(a, V_STR);
    if (v) v->u.s = s ? s : "";
    return v;
}

Value *val_tensor(Arena *a, Node *n, Graph *g) {
    if (!n) return val_error(a);
    Value *v = mk(a, V_TENSOR);
    if (v) {
        v->u.t.node = n;
        v->u.t.graph = g;
    }
    return v;
}

Value *val_slot(Arena *a, int slot) {
    if (slot < 0) return val_error(a);
    Value *v = mk(a, V_SLOT);
    if (v) v->u.slot = slot;
    return v;
}

Value *val_tree(Arena *a, int n, const char **names, Value **items) {
    Value *v = mk(a, V_TREE);
    if (v) {
        v->u.tree.n = n;
        v->u.tree.names = names;
        v->u.tree.items = items;
    }
    return v;
}

Value *val_list(Arena *a, int n, Value **items) {
    Value *v = mk(a, V_LIST);
    if (v) {
        v->u.tree.n = n;
        v->u.tree.names = NULL;
        v->u.tree.items = items;
    }
    return v;
}

double val_num(const Value *v) {
    if (!v) return 0;
    switch (v->kind) {
    case V_INT:
        return (double)v->u.i;
    case V_FLOAT:
        return v->u.f;
    case V_BOOL:
        return v->u.b ? 1.0 : 0.0;
    case V_ERROR:
    case V_NONE:
    case V_STR:
    case V_TENSOR:
    case V_SLOT:
    case V_TREE:
    case V_LIST:
    case V_FUNC:
    case V_OPTIM:
    case V_MODULE:
    case V_LOSS:
        break;
    }
    return 0;
}

const char *val_kind_name(ValueKind k) {
    switch (k) {
    case V_ERROR:
        return "error";
    case V_NONE:
        return "None";
    case V_INT:
        return "int";
    case V_FLOAT:
        return "float";
    case V_BOOL:
        return "bool";
    case V_STR:
        return "str";
    case V_TENSOR:
    case V_SLOT:
        return "tensor";
    case V_TREE:
        return "tree";
    case V_LIST:
        return "list";
    case V_FUNC:
        return "function";
    case V_OPTIM:
        return "optimizer";
    case V_MODULE:
        return "module";
    case V_LOSS:
        return "loss";
    }
    return "?";
}

Value *val_tree_get(const Value *tree, const char *name) {
    if (!tree || tree->kind != V_TREE) return NULL;
    for (int i = 0; i < tree->u.tree.n; i++)
        if (strcmp(tree->u.tree.names[i], name) == 0) return tree->u.tree.items[i];
    return NULL;
}

bool val_same_structure(const Value *a, const Value *b) {
    bool ta = a && (a->kind == V_TREE || a->kind == V_LIST);
    bool tb = b && (b->kind == V_TREE || b->kind == V_LIST);
    if (!ta || !tb) return ta == tb;
    if (a->kind != b->kind || a->u.tree.n != b->u.tree.n) return false;
    for (int i = 0; i < a->u.tree.n; i++) {
        if (a->kind == V_TREE && strcmp(a->u.tree.names[i], b->u.tree.names[i]) != 0) return false;
        if (!val_same_structure(a->u.tree.items[i], b->u.tree.items[i])) return false;
    }
    return true;
}

int val_count_leaves(const Value *v) {
    if (!v) return 0;
    if (v->kind != V_TREE && v->kind != V_LIST) return 1;
    int n = 0;
    for (int i = 0; i < v->u.tree.n; i++)
        n += val_count_leaves(v->u.tree.items[i]);
    return n;
}

char *fe_type_str(DType dt, const Shape *s, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    size_t k = (size_t)snprintf(buf, n, "%s", rt_dtype_name(dt));
    if (!s || s->rank == 0 || k >= n) return buf;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < s->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)s->dims[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
