/* transfer.c: loading weights for fine-tuning, a replaceable head (see transfer.h). */
#include "transfer.h"

#include <stdio.h>
#include <string.h>

#include "st_file.h"

/* "[512, 1000]" into buf. */
static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* The last layer with parameters: the head's linear layer that a new class count changes. */
static int head_layer(const Model *m) {
    int li = m->nlayers - 1;
    while (li >= 0 && !m->layer[li].nparams) li--;
    return li >= 0 && m->layer[li].kind == LAYER_LINEAR ? li : -1;
}

/* 1 if file tensor t differs from p only in its first dimension (the class count). */
static int only_classes_differ(const StTensor *t, const ModelParam *p) {
    return t->ndim == p->ndim && t->dtype == ST_F32 &&
           (p->ndim < 2 || !memcmp(t->shape + 1, p->shape + 1, sizeof(int64_t) * (p->ndim - 1)));
}

/* Takes parameter p (of layer li) from f into params, or leaves a differing head alone. */
static int take_param(const StFile *f, const Model *m, int li, const ModelParam *p, float *params,
                      TransferReport *rep, StkErr *err) {
    const StTensor *t = st_find(f, p->name);
    char a[96], b[96];
    if (!t) return stk_errf(err, "%s: no tensor %s (the model is %s)", f->path, p->name, m->arch);
    int same = t->dtype == ST_F32 && t->ndim == p->ndim &&
               !memcmp(t->shape, p->shape, sizeof(int64_t) * p->ndim);
    if (same) {
        memcpy(params + p->offset, t->data, t->nbytes);
        rep->loaded++;
        return 0;
    }
    if (li == head_layer(m) && only_classes_differ(t, p)) {
        rep->head_replaced = 1;
        rep->file_classes = (int)t->shape[0];
        snprintf(rep->head, sizeof rep->head, "%s", m->layer[li].name);
        return 0;
    }
    return stk_errf(err, "%s: %s is %s %s, the model wants F32 %s", f->path, p->name,
                    st_dtype_name(t->dtype), shape_str(t->ndim, t->shape, a, sizeof a),
                    shape_str(p->ndim, p->shape, b, sizeof b));
}

/* Takes layer li's num_batches_tracked (a batch norm) if the file has it, else 0. */
static int take_nbt(const StFile *f, const ModelLayer *l, int64_t *nbt, TransferReport *rep,
                    StkErr *err) {
    char name[MODEL_NAME_LEN + 32];
    snprintf(name, sizeof name, "%s.num_batches_tracked", l->name);
    const StTensor *t = st_find(f, name);
    *nbt = 0;
    if (!t) return 0;
    if (t->dtype != ST_I64 || t->ndim != 0)
        return stk_errf(err, "%s: %s is %s with %d dimensions, the model wants an I64 scalar",
                        f->path, name, st_dtype_name(t->dtype), t->ndim);
    memcpy(nbt, t->data, 8);
    rep->loaded++;
    return 0;
}

/* 1 if name is one of the model's tensors. */
static int known(const Model *m, const char *name) {
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(name, m->param[i].name)) return 1;
    const char *suffix = ".num_batches_tracked";
    size_t n = strlen(name), k = strlen(suffix);
    if (n <= k || strcmp(name + n - k, suffix)) return 0;
    for (int li = 0; li < m->nlayers; li++)
        if (m->layer[li].kind == LAYER_BN && strlen(m->layer[li].name) == n - k &&
            !strncmp(name, m->layer[li].name, n - k))
            return 1;
    return 0;
}

int transfer_load(const char *path, const Model *m, float *params, int64_t *nbt,
                  TransferReport *rep, StkErr *err) {
    StFile f;
    memset(rep, 0, sizeof *rep);
    if (st_open(&f, path, err)) return -1;
    int rc = -1;
    const char *arch = st_meta(&f, "arch");
    if (arch && strcmp(arch, m->arch)) {
        stk_errf(err, "%s holds %s weights; the model is %s", path, arch, m->arch);
        goto out;
    }
    for (int li = 0, b = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        for (int k = 0; k < l->nparams; k++)
            if (take_param(&f, m, li, &m->param[l->param0 + k], params, rep, err)) goto out;
        if (l->kind == LAYER_BN && take_nbt(&f, l, &nbt[b++], rep, err)) goto out;
    }
    for (size_t i = 0; i < f.count; i++)
        if (!known(m, f.tensors[i].name)) {
            stk_errf(err, "%s: unexpected tensor %s (the model is %s)", path, f.tensors[i].name, m->arch);
            goto out;
        }
    rc = 0;
out:
    st_close(&f);
    return rc;
}
