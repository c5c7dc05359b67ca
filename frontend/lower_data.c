/* Data declarations: `data NAME = loader(...)` or `data NAME = expression`.
 *
 * Loaders (idx, npy, csv) read their files at compile time, because the
 * data's shapes decide the program's shapes; the tensors become DATA slots
 * owned by the Module. In check-only mode idx reads only headers and the
 * slots are left without values. `split = [a, b]` cuts rows in file order
 * into `.train` and `.test` (and `[a, b, c]` into train, val, test), each a
 * separate copy. Any other expression (e.g. a record of random tensors,
 * `[x = randn([256, 4], seed = 1), ...]`) is lowered into a graph of
 * Module.init whose outputs fill SLOT_VAR slots before the program runs.
 * Data paths are relative to the working directory, with the program's own
 * directory as a fallback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/dataio.h"
#include "lower_internal.h"

/* ---- files --------------------------------------------------------------------------- */

static bool exists(const char *p) {
    return access(p, R_OK) == 0;
}

/* The first readable of path and path.gz, in the cwd then next to the program. */
static const char *find_file(Lower *L, const char *path, bool try_gz) {
    const char *cands[4];
    int n = 0;
    cands[n++] = path;
    if (try_gz) cands[n++] = lw_printf(L, "%s.gz", path);
    if (L->src_dir && path[0] != '/') {
        cands[n++] = lw_printf(L, "%s/%s", L->src_dir, path);
        if (try_gz) cands[n++] = lw_printf(L, "%s/%s.gz", L->src_dir, path);
    }
    for (int i = 0; i < n; i++)
        if (exists(cands[i])) return cands[i];
    return NULL;
}

static bool in_data(Lower *L, BuiltinCall *c) {
    if (L->data_name) return true;
    lw_error(L, c->loc,
             "%s() reads a file and is only allowed in a data declaration (data d = %s(...))",
             c->name, c->name);
    return false;
}

/* A DATA slot holding t (which the module then owns), or an unloaded slot. */
static Value *data_slot(Lower *L, const char *name, DType dt, Shape s, RtTensor *t) {
    int id = lw_new_slot(L, name, SLOT_DATA, dt, s);
    if (id < 0) {
        rt_tensor_free(t);
        return lw_err(L);
    }
    L->m->slots[id].value = t;
    return val_slot(L->a, id);
}

/* Rows [lo, hi) of t as a new tensor (NULL t -> NULL). */
static RtTensor *rows_of(const RtTensor *t, int64_t lo, int64_t hi) {
    if (!t) return NULL;
    Shape s = t->shape;
    s.dims[0] = hi - lo;
    RtTensor *r = rt_tensor_new(t->dtype, s);
    if (!r) return NULL;
    size_t row = rt_dtype_size(t->dtype);
    for (int i = 1; i < t->shape.rank; i++)
        row *= (size_t)t->shape.dims[i];
    if (hi > lo) memcpy(r->data, (const char *)t->data + row * (size_t)lo, row * (size_t)(hi - lo));
    return r;
}

/* Cuts t down to its first `rows` rows in place (the memory shrinks). */
static RtTensor *keep_first_rows(RtTensor *t, int64_t rows) {
    if (!t) return NULL;
    t->shape.dims[0] = rows;
    size_t bytes = rt_tensor_bytes(t);
    void *p = realloc(t->data, bytes ? bytes : 1);
    if (p) t->data = p; /* a failed shrink keeps the larger block: still valid */
    return t;
}

/* Parses split = [a, b(, c)]; returns the number of parts (0 = no split). */
static int read_split(Lower *L, Value *v, SrcLoc loc, int64_t rows, int64_t *parts) {
    if (!v) return 0;
    if (val_is_error(v)) return -1;
    if (v->kind != V_LIST || v->u.tree.n < 2 || v->u.tree.n > 3) {
        lw_error(L, loc, "split must be a list of 2 or 3 row counts, like [8000, 2000]");
        return -1;
    }
    int64_t total = 0;
    for (int i = 0; i < v->u.tree.n; i++) {
        if (!lw_const_int(L, v->u.tree.items[i], &parts[i], loc, "a split size")) return -1;
        if (parts[i] < 0) {
            lw_error(L, loc, "split sizes must not be negative, got %lld", (long long)parts[i]);
            return -1;
        }
        if (!ck_add(total, parts[i], &total)) {
            lw_error(L, loc, "split sizes add up to more than 2^63 - 1 rows; the data has %lld",
                     (long long)rows);
            return -1;
        }
    }
    if (total > rows) {
        lw_error(L, loc, "split needs %lld rows, but the data has only %lld", (long long)total,
                 (long long)rows);
        return -1;
    }
    return v->u.tree.n;
}

/* Builds the record for fields (names[i], tensors[i] with type dts/shapes),
 * split or whole. Consumes the tensors. */
static Value *make_record(Lower *L, int nf, const char **names, RtTensor **ts, const DType *dts,
                          const Shape *shs, int nparts, const int64_t *parts) {
    const char *base = L->data_name;
    if (nparts <= 0) {
        Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)nf);
        if (!items) return lw_err(L);
        for (int i = 0; i < nf; i++)
            items[i] = data_slot(L, lw_printf(L, "%s.%s", base, names[i]), dts[i], shs[i], ts[i]);
        return val_tree(L->a, nf, names, items);
    }
    static const char *two[] = {"train", "test"}, *three[] = {"train", "val", "test"};
    const char **pn = nparts == 2 ? two : three;
    Value **sub = arena_alloc(L->a, sizeof(Value *) * (size_t)nparts);
    if (!sub) return lw_err(L);
    /* Later parts are copied out first; the first part then keeps the loaded
       tensor itself, cut down to its rows, so a split costs only the later
       parts' bytes on top of the data (not a second copy of everything). */
    enum { MAX_FIELDS = 4 }; /* idx and csv records have at most x and y */
    if (nf > MAX_FIELDS) return lw_error(L, srcloc_none(), "internal error: %d data fields", nf);
    RtTensor *got[3][MAX_FIELDS] = {{0}};
    int64_t lo = parts[0];
    for (int p = 1; p < nparts; p++) {
        for (int i = 0; i < nf; i++) {
            got[p][i] = rows_of(ts[i], lo, lo + parts[p]);
            if (ts[i] && !got[p][i]) {
                for (int q = 1; q <= p; q++)
                    for (int k = 0; k < nf; k++)
                        rt_tensor_free(got[q][k]);
                for (int k = 0; k < nf; k++)
                    rt_tensor_free(ts[k]);
                return lw_error(L, srcloc_none(), "out of memory splitting data '%s'", base);
            }
        }
        lo += parts[p];
    }
    for (int i = 0; i < nf; i++)
        got[0][i] = keep_first_rows(ts[i], parts[0]);
    for (int p = 0; p < nparts; p++) {
        Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)nf);
        if (!items) return lw_err(L);
        for (int i = 0; i < nf; i++) {
            Shape s = shs[i];
            s.dims[0] = parts[p];
            items[i] =
                data_slot(L, lw_printf(L, "%s.%s.%s", base, pn[p], names[i]), dts[i], s, got[p][i]);
        }
        sub[p] = val_tree(L->a, nf, names, items);
    }
    return val_tree(L->a, nparts, pn, sub);
}

/* ---- loaders ------------------------------------------------------------------------- */

/* kw order (builtins.c): idx: scale, split */
Value *lw_load_idx(Lower *L, BuiltinCall *c) {
    if (!in_data(L, c)) return lw_err(L);
    Value *pv = c->pos[0];
    if (pv->kind != V_STR) return lw_error(L, c->pos_loc[0], "idx: the path must be a string");
    double scale = 1.0;
    if (c->kw[0] && !lw_const_num(L, c->kw[0], &scale, c->kw_loc[0], "idx: scale"))
        return lw_err(L);
    const char *img = find_file(L, lw_printf(L, "%s-images-idx3-ubyte", pv->u.s), true);
    const char *lab = find_file(L, lw_printf(L, "%s-labels-idx1-ubyte", pv->u.s), true);
    if (!img || !lab)
        return lw_error(L, c->pos_loc[0], "idx: cannot find '%s-%s-idx%d-ubyte' (nor '.gz')",
                        pv->u.s, img ? "labels" : "images", img ? 1 : 3);
    char err[512];
    Shape si, sl;
    RtTensor *ti = NULL, *tl = NULL;
    if (L->check_only) {
        if (!rt_idx_shape_as(img, RT_IDX_IMAGES, &si, err, sizeof err) ||
            !rt_idx_shape_as(lab, RT_IDX_LABELS, &sl, err, sizeof err))
            return lw_error(L, c->pos_loc[0], "idx: %s", err);
    } else {
        ti = rt_idx_read_as(img, RT_IDX_IMAGES, scale, err, sizeof err);
        if (!ti) return lw_error(L, c->pos_loc[0], "idx: %s", err);
        tl = rt_idx_read_as(lab, RT_IDX_LABELS, 1.0, err, sizeof err);
        if (!tl) {
            rt_tensor_free(ti);
            return lw_error(L, c->pos_loc[0], "idx: %s", err);
        }
        si = ti->shape;
        sl = tl->shape;
    }
    if (si.dims[0] != sl.dims[0]) {
        rt_tensor_free(ti);
        rt_tensor_free(tl);
        return lw_error(L, c->pos_loc[0], "idx: '%s' has %lld images but '%s' has %lld labels", img,
                        (long long)si.dims[0], lab, (long long)sl.dims[0]);
    }
    int64_t parts[3];
    int np = read_split(L, c->kw[1], c->kw_loc[1], si.dims[0], parts);
    if (np < 0) {
        rt_tensor_free(ti);
        rt_tensor_free(tl);
        return lw_err(L);
    }
    static const char *names[] = {"x", "y"};
    RtTensor *ts[2] = {ti, tl};
    DType dts[2] = {DT_F32, DT_I32};
    Shape shs[2] = {si, sl};
    return make_record(L, 2, names, ts, dts, shs, np, parts);
}

/* kw order: split */
Value *lw_load_npy(Lower *L, BuiltinCall *c) {
    if (!in_data(L, c)) return lw_err(L);
    Value *pv = c->pos[0];
    if (pv->kind != V_STR) return lw_error(L, c->pos_loc[0], "npy: the path must be a string");
    const char *path = find_file(L, pv->u.s, false);
    if (!path) return lw_error(L, c->pos_loc[0], "npy: cannot find '%s'", pv->u.s);
    char err[512];
    RtTensor *t = rt_npy_read(path, err, sizeof err);
    if (!t) return lw_error(L, c->pos_loc[0], "npy: %s", err);
    DType dt = t->dtype;
    Shape sh = t->shape;
    if (!lw_check_numel(L, &sh, c->pos_loc[0], "npy")) {
        rt_tensor_free(t);
        return lw_err(L);
    }
    if (L->check_only) {
        rt_tensor_free(t);
        t = NULL;
    }
    if (c->kw[0]) {
        if (sh.rank < 1) {
            rt_tensor_free(t);
            return lw_error(L, c->kw_loc[0], "npy: split needs an array with rows");
        }
        int64_t parts[3];
        int np = read_split(L, c->kw[0], c->kw_loc[0], sh.dims[0], parts);
        if (np < 0) {
            rt_tensor_free(t);
            return lw_err(L);
        }
        static const char *names[] = {"x"};
        return make_record(L, 1, names, &t, &dt, &sh, np, parts);
    }
    return data_slot(L, L->data_name, dt, sh, t);
}

/* Copies column range/selection of a [N, C] tensor. */
static RtTensor *columns(const RtTensor *t, const int *cols, int ncols, DType dt, bool flat) {
    if (!t) return NULL;
    int64_t n = t->shape.dims[0], c = t->shape.dims[1];
    Shape s = flat ? rt_shape_make(1, &n) : rt_shape_make(2, (int64_t[]){n, ncols});
    RtTensor *r = rt_tensor_new(dt, s);
    if (!r) return NULL;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < ncols; j++) {
            double v = rt_tensor_get_f64(t, i * c + cols[j]);
            if (dt == DT_I32 || dt == DT_I64)
                rt_tensor_set_i64(r, i * ncols + j, (int64_t)v);
            else
                rt_tensor_set_f64(r, i * ncols + j, v);
        }
    return r;
}

/* header = true | false | "auto" (the default; rule in runtime/dataio.h). */
static bool csv_header_mode(Lower *L, Value *v, SrcLoc loc, RtCsvHeader *mode) {
    if (v->kind == V_STR && strcmp(v->u.s, "auto") == 0) {
        *mode = RT_CSV_HEADER_AUTO;
        return true;
    }
    if (v->kind == V_STR) {
        lw_error(L, loc, "csv: header must be true, false or \"auto\", got \"%s\"", v->u.s);
        return false;
    }
    bool want;
    if (!lw_const_bool(L, v, &want, loc, "csv: header")) return false;
    *mode = want ? RT_CSV_HEADER_YES : RT_CSV_HEADER_NO;
    return true;
}

/* kw order: header, y, labels, dtype, split */
Value *lw_load_csv(Lower *L, BuiltinCall *c) {
    if (!in_data(L, c)) return lw_err(L);
    Value *pv = c->pos[0];
    if (pv->kind != V_STR) return lw_error(L, c->pos_loc[0], "csv: the path must be a string");
    DType dt = DT_F32;
    if (c->kw[3]) {
        if (c->kw[3]->kind != V_STR || !rt_dtype_from_name(c->kw[3]->u.s, &dt) ||
            (dt != DT_F32 && dt != DT_F64))
            return lw_error(L, c->kw_loc[3], "csv: dtype must be \"f32\" or \"f64\"");
    }
    if (c->kw[1] && c->kw[2])
        return lw_error(L, c->kw_loc[2],
                        "csv: give 'y' (a float target) or 'labels' (integer classes), not both");
    const char *path = find_file(L, pv->u.s, false);
    if (!path) return lw_error(L, c->pos_loc[0], "csv: cannot find '%s'", pv->u.s);
    RtCsvOptions opt = {.dtype = dt, .header = RT_CSV_HEADER_AUTO};
    if (c->kw[0] && !csv_header_mode(L, c->kw[0], c->kw_loc[0], &opt.header)) return lw_err(L);
    Value *ycol = c->kw[1] ? c->kw[1] : c->kw[2];
    SrcLoc yl = c->kw[1] ? c->kw_loc[1] : c->kw_loc[2];
    int64_t yc = 0;
    if (ycol && !lw_const_int(L, ycol, &yc, yl, "csv: the target column")) return lw_err(L);
    if (c->kw[2]) {
        /* labels are checked cell by cell as the file is read (file:line:col) */
        opt.has_int_col = true;
        opt.int_col = yc;
        if (dt == DT_F32) opt.dtype = DT_F64; /* every i32 label exact until it is split off */
    }
    char err[512];
    RtTensor *t = rt_csv_read_opts(path, &opt, NULL, err, sizeof err);
    if (!t) return lw_error(L, c->pos_loc[0], "csv: %s", err);
    int64_t rows = t->shape.dims[0], cols = t->shape.rank > 1 ? t->shape.dims[1] : 1;
    int64_t parts[3];
    int np = read_split(L, c->kw[4], c->kw_loc[4], rows, parts);
    if (np < 0) {
        rt_tensor_free(t);
        return lw_err(L);
    }
    if (!ycol) {
        Shape sh = t->shape;
        if (L->check_only) {
            rt_tensor_free(t);
            t = NULL;
        }
        if (np > 0) {
            static const char *names[] = {"x"};
            return make_record(L, 1, names, &t, &dt, &sh, np, parts);
        }
        return data_slot(L, L->data_name, dt, sh, t);
    }
    if (yc < 0) yc += cols;
    if (yc < 0 || yc >= cols || cols < 2) {
        rt_tensor_free(t);
        return lw_error(L, yl, "csv: column %lld is out of range for %lld columns", (long long)yc,
                        (long long)cols);
    }
    int *xc = malloc(sizeof(int) * (size_t)cols);
    if (!xc) {
        rt_tensor_free(t);
        return lw_err(L);
    }
    int nx = 0;
    for (int j = 0; j < cols; j++)
        if (j != yc) xc[nx++] = j;
    int yy = (int)yc;
    DType ydt = c->kw[2] ? DT_I32 : dt;
    RtTensor *tx = L->check_only ? NULL : columns(t, xc, nx, dt, false);
    RtTensor *ty = L->check_only ? NULL : columns(t, &yy, 1, ydt, true);
    free(xc);
    rt_tensor_free(t);
    if (!L->check_only && (!tx || !ty)) {
        rt_tensor_free(tx);
        rt_tensor_free(ty);
        return lw_error(L, c->pos_loc[0], "csv: out of memory");
    }
    static const char *names[] = {"x", "y"};
    RtTensor *ts[2] = {tx, ty};
    DType dts[2] = {dt, ydt};
    Shape shs[2] = {rt_shape_make(2, (int64_t[]){rows, nx}), rt_shape_make(1, &rows)};
    return make_record(L, 2, names, ts, dts, shs, np, parts);
}

/* ---- the declaration ----------------------------------------------------------------- */

/* Data slots filled by init graphs must never become a loop's home. */
static void disown(Lower *L, Value *v) {
    if (!v) return;
    if (v->kind == V_SLOT && v->u.slot < L->cap_owned) L->owned[v->u.slot] = 0;
    if (v->kind == V_TREE || v->kind == V_LIST)
        for (int i = 0; i < v->u.tree.n; i++)
            disown(L, v->u.tree.items[i]);
}

Value *lw_data_decl(Lower *L, FeMod *mod, const Decl *d) {
    Lower saved = *L;
    Activation act;
    lw_act_top(L, &act);
    L->host = false;
    L->hb = NULL;
    L->host_scope = NULL;
    L->train = NULL;
    L->ovr = NULL;
    L->track = false;
    L->pinit = NULL;
    L->data_name = d->name;
    lw_gc_push(L, lw_printf(L, "data_%s", d->name));
    Scope *s = lw_scope_new(L, NULL, mod);
    Value *v = s ? lw_expr(L, s, d->u.data.value) : lw_err(L);
    if (!val_is_error(v)) {
        if (v->kind == V_LOSS || v->kind == V_FUNC || v->kind == V_OPTIM || v->kind == V_MODULE) {
            v = lw_error(L, d->u.data.value->loc,
                         "data must be a tensor or a record of tensors, got %s",
                         lw_value_desc(L, v));
        } else {
            v = lw_materialize(L, v, NULL, d->name, d->loc);
            lw_gc_emit(L, &L->m->init, d->loc);
            disown(L, v);
        }
    }
    lw_gc_pop(L);
    lw_act_pop(L);
    /* restore the context, keeping what grows monotonically */
    L->host = saved.host;
    L->hb = saved.hb;
    L->host_scope = saved.host_scope;
    L->train = saved.train;
    L->ovr = saved.ovr;
    L->track = saved.track;
    L->pinit = saved.pinit;
    L->data_name = saved.data_name;
    return v;
}

Value *lw_first_rows(Lower *L, Value *ds, int64_t n, SrcLoc loc) {
    if (val_is_error(ds)) return lw_err(L);
    if (ds->kind != V_TREE)
        return lw_error(L, loc, "first: expected a data record, got %s", lw_value_desc(L, ds));
    Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)(ds->u.tree.n ? ds->u.tree.n : 1));
    if (!items) return lw_err(L);
    for (int i = 0; i < ds->u.tree.n; i++) {
        Value *f = ds->u.tree.items[i];
        Node *x = lw_node(L, f, DT_COUNT, loc);
        if (!x) {
            if (!val_is_error(f))
                return lw_error(L, loc, "first: field '%s' is %s, not a tensor",
                                ds->u.tree.names[i], lw_value_desc(L, f));
            return lw_err(L);
        }
        if (x->shape.rank < 1 || n > x->shape.dims[0] || n < 0)
            return lw_error(L, loc, "first: cannot take %lld rows of field '%s' (%lld rows)",
                            (long long)n, ds->u.tree.names[i],
                            (long long)(x->shape.rank ? x->shape.dims[0] : 0));
        int64_t st[IR_MAX_RANK] = {0}, sp[IR_MAX_RANK], step[IR_MAX_RANK];
        for (int k = 0; k < x->shape.rank; k++) {
            sp[k] = x->shape.dims[k];
            step[k] = 1;
        }
        sp[0] = n;
        items[i] = lw_tensor(L, ir_slice(L->gc->g, x, st, sp, step, loc));
    }
    return val_tree(L->a, ds->u.tree.n, (const char **)ds->u.tree.names, items);
}
