/* ckpt.c: model checkpoints in torchvision's names (see ckpt.h). */
#include "ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* num_batches_tracked names live here while a save or load runs. */
typedef struct NbtNames {
    char (*name)[MODEL_NAME_LEN + 32];
} NbtNames;

static int nbt_names(const Model *m, NbtNames *n) {
    n->name = calloc((size_t)(m->nbn ? m->nbn : 1), sizeof *n->name);
    if (!n->name) return -1;
    for (int li = 0, b = 0; li < m->nlayers; li++)
        if (m->layer[li].kind == LAYER_BN)
            snprintf(n->name[b++], sizeof n->name[0], "%s.num_batches_tracked", m->layer[li].name);
    return 0;
}

int ckpt_save(const char *path, const Model *m, const float *params, const int64_t *nbt,
              const StMeta *meta, size_t meta_count, StkErr *err) {
    size_t n = (size_t)m->nparams + (size_t)m->nbn;
    StTensor *t = calloc(n, sizeof *t);
    NbtNames names;
    if (!t || nbt_names(m, &names)) {
        free(t);
        return stk_errf(err, "ckpt_save %s: out of memory", path);
    }
    for (int i = 0; i < m->nparams; i++) {
        const ModelParam *p = &m->param[i];
        t[i] = (StTensor){.name = p->name, .dtype = ST_F32, .ndim = p->ndim,
                          .data = params + p->offset};
        memcpy(t[i].shape, p->shape, sizeof p->shape);
    }
    for (int b = 0; b < m->nbn; b++)
        t[m->nparams + b] = (StTensor){.name = names.name[b], .dtype = ST_I64, .ndim = 0,
                                       .data = &nbt[b]};
    int rc = st_write(path, t, n, meta, meta_count, err);
    free(names.name);
    free(t);
    return rc;
}

/* Copies tensor `name` of f into dst after checking dtype and shape against want. */
static int take(const StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                void *dst, StkErr *err) {
    const StTensor *t = st_find(f, name);
    if (!t) return stk_errf(err, "%s: no tensor %s", f->path, name);
    if (t->dtype != dtype || t->ndim != ndim || (ndim && memcmp(t->shape, shape, sizeof(int64_t) * ndim)))
        return stk_errf(err, "%s: %s is %s with %d dimensions, the model wants %s", f->path, name,
                        st_dtype_name(t->dtype), t->ndim, st_dtype_name(dtype));
    memcpy(dst, t->data, t->nbytes);
    return 0;
}

int ckpt_load(const char *path, const Model *m, float *params, int64_t *nbt, StkErr *err) {
    return ckpt_load_at(path, m, params, nbt, NULL, NULL, err);
}

int ckpt_load_at(const char *path, const Model *m, float *params, int64_t *nbt, uint32_t *epoch,
                 uint64_t *steps, StkErr *err) {
    StFile f;
    NbtNames names = {NULL};
    if (st_open(&f, path, err)) return -1;
    const char *ep = st_meta(&f, "epoch"), *st = st_meta(&f, "steps");
    if (epoch) *epoch = ep && atoi(ep) > 0 ? (uint32_t)atoi(ep) : 0;
    if (steps) *steps = st ? strtoull(st, NULL, 10) : 0;
    int rc = -1;
    if (nbt_names(m, &names)) { stk_errf(err, "out of memory"); goto out; }
    for (int i = 0; i < m->nparams; i++) {
        const ModelParam *p = &m->param[i];
        if (take(&f, p->name, ST_F32, p->ndim, p->shape, params + p->offset, err)) goto out;
    }
    for (int b = 0; b < m->nbn; b++)
        if (take(&f, names.name[b], ST_I64, 0, NULL, &nbt[b], err)) goto out;
    if (f.count != (size_t)(m->nparams + m->nbn)) {
        for (size_t i = 0; i < f.count; i++) {
            int known = 0;
            for (int j = 0; j < m->nparams && !known; j++) known = !strcmp(f.tensors[i].name, m->param[j].name);
            for (int b = 0; b < m->nbn && !known; b++) known = !strcmp(f.tensors[i].name, names.name[b]);
            if (!known) { stk_errf(err, "%s: unexpected tensor %s", path, f.tensors[i].name); goto out; }
        }
    }
    rc = 0;
out:
    free(names.name);
    st_close(&f);
    return rc;
}
