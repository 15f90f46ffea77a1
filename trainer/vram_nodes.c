/* vram_nodes.c: fusion, gradient aliases and the lifetime pool of the CUDA backend's node
 * buffers (see vram_nodes.h). Host arithmetic over the model graph only. */
#include "vram_nodes.h"

#include <stdlib.h>
#include <string.h>

#include "model_freeze.h"

int vram_first_trainable(const Model *m) {
    for (int li = 0; li < m->nlayers; li++)
        if (m->layer[li].nparams && !model_layer_frozen(m, li)) return li;
    return m->nlayers;
}

int vram_conv_depthwise(const ConvDesc *d) {
    return d->in_c >= 1 && d->groups == d->in_c && d->out_c == d->in_c && d->kh >= 1 && d->kh <= 7 &&
           d->kw >= 1 && d->kw <= 7 && d->stride_h >= 1 && d->stride_h <= 2 && d->stride_w >= 1 &&
           d->stride_w <= 2 && d->pad_h >= 0 && d->pad_w >= 0;
}

int vram_nodes_skipped(const VramNodes *p, int li) { return li > 0 && p->fuse[li - 1] != VRAM_NO_FUSE; }

/* One buffer to place: an activation or a gradient group (its root node). */
typedef struct Buf {
    int birth, death;
    uint64_t size;
    int node, grad;
    uint64_t off;
} Buf;

typedef struct Ctx {
    const Model *m;
    VramNodes *p;
    int L, batch;
    int *readers; /* [nodes] how many layers read the node */
    int *group;   /* [nodes] union-find over gradients */
    int *gbirth, *gdeath;
    int *rbirth, *rdeath; /* [nodes] a recomputed node's backward buffer, else -1 */
} Ctx;

static int bwd(const Ctx *c, int li) { return 2 * c->L - li; }
static int stored(const Ctx *c, int k) { return k == 0 || c->p->fuse[k - 1] == VRAM_NO_FUSE; }
static int skipped(const Ctx *c, int li) { return vram_nodes_skipped(c->p, li); }
static int runs_bwd(const Ctx *c, int li) { return li >= c->p->first_trainable && !skipped(c, li); }
static int reads(const ModelLayer *l, int k) { return l->in == k || l->in2 == k; }

/* The layer that writes node k (the fused one for the output of a fusion). */
static int producer(const Ctx *c, int k) { return skipped(c, k - 1) ? k - 2 : k - 1; }

/* Whether layer r's backward reads its inputs' activations. */
static int reads_input_in_bwd(const Model *m, int r) {
    const ModelLayer *l = &m->layer[r];
    switch (l->kind) {
    case LAYER_CONV: case LAYER_LINEAR: return !model_layer_frozen(m, r); /* weight gradients */
    case LAYER_BN: case LAYER_ACT: case LAYER_SCALE: return 1;
    default: return 0; /* add, pooling (argmax saved), dropout (masks from the key) */
    }
}

static uint64_t node_size(const Ctx *c, int k) {
    uint64_t n = (uint64_t)c->batch * shape4_numel(model_node_shape(c->m, k));
    return (n + VRAM_NODE_ALIGN - 1) / VRAM_NODE_ALIGN * VRAM_NODE_ALIGN;
}

static int find(int *g, int k) {
    while (g[k] != k) k = g[k] = g[g[k]];
    return k;
}

static void fuse(Ctx *c) {
    const Model *m = c->m;
    for (int li = 0; li < m->nlayers; li++) c->p->fuse[li] = VRAM_NO_FUSE;
    for (int li = 0; li + 1 < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li], *a = &m->layer[li + 1];
        if (a->kind != LAYER_ACT || a->in != li + 1 || c->readers[li + 1] != 1) continue;
        if (l->kind == LAYER_BN || (l->kind == LAYER_ADD && a->act == CPU_ACT_RELU)) {
            c->p->fuse[li] = (int)a->act;
            li++; /* the activation is not itself a producer that fuses */
        }
    }
}

/* Marks the nodes to recompute (see the header): each trained, fused batch norm's output
 * that a backward reads, unless its input is itself recomputed or its last reader
 * already recomputes another. */
static void choose_recompute(Ctx *c) {
    const Model *m = c->m;
    for (int li = 0; li + 2 <= m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        int k = li + 2, first = -1, last = -1;
        if (l->kind != LAYER_BN || c->p->fuse[li] == VRAM_NO_FUSE || !runs_bwd(c, li) ||
            model_layer_frozen(m, li) || k == c->L || c->rbirth[l->in] >= 0)
            continue;
        for (int r = k; r < m->nlayers; r++)
            if (reads(&m->layer[r], k) && !skipped(c, r) && runs_bwd(c, r) && reads_input_in_bwd(m, r)) {
                if (first < 0) first = r;
                last = r;
            }
        if (last < 0 || c->p->redo[last] >= 0) continue;
        c->p->redo[last] = k;
        c->rbirth[k] = bwd(c, last), c->rdeath[k] = bwd(c, first);
    }
}

/* Activation lifetimes: producer's forward to the last forward or backward read (the
 * last forward one for a recomputed node). */
static void act_life(const Ctx *c, int k, int *birth, int *death) {
    const Model *m = c->m;
    *birth = *death = k == 0 ? 0 : producer(c, k);
    for (int r = k; r < m->nlayers; r++) {
        if (!reads(&m->layer[r], k) || skipped(c, r)) continue;
        if (r > *death) *death = r;
        if (c->rbirth[k] < 0 && runs_bwd(c, r) && reads_input_in_bwd(m, r) && bwd(c, r) > *death)
            *death = bwd(c, r);
    }
    /* the input and the logits stay valid across the step: a caller may set the input once
     * and step on it again, or read the logits after the backward */
    if (k == 0 || k == c->L) *death = 2 * c->L + 1;
    /* a fused add's ReLU backward works from its output */
    if (k > 0) {
        int p = producer(c, k);
        if (m->layer[p].kind == LAYER_ADD && c->p->fuse[p] != VRAM_NO_FUSE && runs_bwd(c, p) &&
            bwd(c, p) > *death)
            *death = bwd(c, p);
    }
}

/* Which inputs of the add at li share its output gradient (see the header). */
static void alias_add(Ctx *c, int li) {
    const Model *m = c->m;
    const ModelLayer *l = &m->layer[li];
    int a = l->in, b = l->in2, ft = c->p->first_trainable, g = li + 1;
    if (l->kind != LAYER_ADD || !runs_bwd(c, li) || a == b) return;
    if (a > ft && stored(c, a) && c->readers[a] == 1) {
        c->p->alias[a] = 1;
        c->group[find(c->group, a)] = find(c->group, g);
    }
    if (b <= ft || !stored(c, b)) return;
    int gc_a = producer(c, a);
    for (int r = b; r < m->nlayers; r++) {
        if (r == li || !reads(&m->layer[r], b)) continue;
        if (r > li || (c->p->alias[a] && r >= gc_a)) return; /* it would write too early */
    }
    c->p->alias[b] = 1;
    c->group[find(c->group, b)] = find(c->group, g);
}

/* Gradient lifetime of node k: its last reader's backward to its producer's. */
static int grad_life(const Ctx *c, int k, int *birth, int *death) {
    const Model *m = c->m;
    int last = -1;
    for (int r = k; r < m->nlayers; r++)
        if (reads(&m->layer[r], k) && runs_bwd(c, r)) last = r;
    if (k == c->L) *birth = c->L;
    else if (last >= 0) *birth = bwd(c, last);
    else return 0;
    *death = bwd(c, producer(c, k));
    return 1;
}

static int collect_grads(Ctx *c) {
    const Model *m = c->m;
    int nodes = m->nlayers + 1;
    for (int k = 0; k < nodes; k++) c->group[k] = k, c->gbirth[k] = -1, c->gdeath[k] = -1;
    for (int li = 0; li < m->nlayers; li++) /* a fused add's sum and its ReLU: one gradient */
        if (m->layer[li].kind == LAYER_ADD && c->p->fuse[li] != VRAM_NO_FUSE)
            c->group[find(c->group, li + 1)] = find(c->group, li + 2);
    for (int li = m->nlayers - 1; li >= 0; li--) alias_add(c, li);
    for (int k = c->p->first_trainable + 1; k < nodes; k++) {
        int b, d, first = 1, scratch = 0;
        for (int r = m->nlayers - 1; r >= k; r--) { /* the first writer in backward order */
            if (!reads(&m->layer[r], k) || !runs_bwd(c, r)) continue;
            const ModelLayer *l = &m->layer[r];
            /* cuDNN convolutions and the global pool (cuda_se.h) add in place */
            int in_place = (l->kind == LAYER_CONV && !vram_conv_depthwise(&l->conv)) || l->kind == LAYER_AVGPOOL;
            scratch |= !first && !in_place;
            first = 0;
        }
        if (scratch && node_size(c, k) > c->p->accum) c->p->accum = node_size(c, k);
        if (!stored(c, k) || !grad_life(c, k, &b, &d)) continue;
        int g = find(c->group, k);
        if (c->gbirth[g] < 0 || b < c->gbirth[g]) c->gbirth[g] = b;
        if (d > c->gdeath[g]) c->gdeath[g] = d;
    }
    return 0;
}

static int by_birth(const void *x, const void *y) {
    const Buf *a = x, *b = y;
    if (a->birth != b->birth) return a->birth < b->birth ? -1 : 1;
    if (a->grad != b->grad) return a->grad - b->grad;
    return a->node - b->node;
}

/* First-fit placement in time order; live[] is kept sorted by offset. */
static uint64_t place_all(Buf *buf, int n, int *live) {
    uint64_t top = 0;
    int nlive = 0;
    for (int i = 0; i < n; i++) {
        int t = buf[i].birth;
        /* free what died before t (a death at t frees after t's births) */
        int w = 0;
        for (int j = 0; j < nlive; j++)
            if (buf[live[j]].death >= t) live[w++] = live[j];
        nlive = w;
        uint64_t off = 0;
        int at = 0;
        for (; at < nlive; at++) {
            if (buf[live[at]].off >= off + buf[i].size) break;
            uint64_t end = buf[live[at]].off + buf[live[at]].size;
            off = end > off ? end : off;
        }
        buf[i].off = off;
        memmove(live + at + 1, live + at, sizeof *live * (size_t)(nlive - at));
        live[at] = i, nlive++;
        if (off + buf[i].size > top) top = off + buf[i].size;
    }
    return top;
}

static int layout(Ctx *c, StkErr *err) {
    int nodes = c->m->nlayers + 1, n = 0;
    Buf *buf = calloc((size_t)3 * nodes, sizeof *buf);
    int *live = calloc((size_t)3 * nodes, sizeof *live);
    if (!buf || !live) {
        free(buf), free(live);
        return stk_errf(err, "vram_nodes: out of host memory");
    }
    for (int k = 0; k < nodes; k++) {
        c->p->act[k] = c->p->dact[k] = c->p->react[k] = -1;
        if (c->rbirth[k] >= 0) /* grad 2: the recomputed copy */
            buf[n++] = (Buf){.birth = c->rbirth[k], .death = c->rdeath[k], .size = node_size(c, k),
                             .node = k, .grad = 2};
        if (stored(c, k)) {
            buf[n] = (Buf){.size = node_size(c, k), .node = k};
            act_life(c, k, &buf[n].birth, &buf[n].death);
            if (buf[n].birth <= c->L && buf[n].death >= c->L) c->p->kept += buf[n].size;
            n++;
        }
        if (find(c->group, k) == k && c->gbirth[k] >= 0)
            buf[n++] = (Buf){.birth = c->gbirth[k], .death = c->gdeath[k], .size = node_size(c, k),
                             .node = k, .grad = 1};
    }
    qsort(buf, (size_t)n, sizeof *buf, by_birth);
    c->p->pool = place_all(buf, n, live);
    for (int i = 0; i < n; i++) {
        if (buf[i].grad == 2) c->p->react[buf[i].node] = (int64_t)buf[i].off;
        else if (buf[i].grad) c->p->dact[buf[i].node] = (int64_t)buf[i].off;
        else c->p->act[buf[i].node] = (int64_t)buf[i].off;
    }
    for (int k = 0; k < nodes; k++) { /* members take their group's buffer */
        int g = find(c->group, k);
        if (c->gbirth[g] >= 0 && (stored(c, k) || g != k)) c->p->dact[k] = c->p->dact[g];
    }
    free(buf), free(live);
    return 0;
}

static int plan(const Model *m, int batch, int inference, int recompute, VramNodes *p, StkErr *err) {
    memset(p, 0, sizeof *p);
    int nodes = m->nlayers + 1;
    p->nlayers = m->nlayers;
    /* with no layer running its backward, lifetimes end at the forward readers */
    p->first_trainable = inference ? m->nlayers : vram_first_trainable(m);
    p->fuse = calloc((size_t)nodes, sizeof *p->fuse);
    p->act = calloc((size_t)nodes, sizeof *p->act);
    p->dact = calloc((size_t)nodes, sizeof *p->dact);
    p->alias = calloc((size_t)nodes, 1);
    p->react = calloc((size_t)nodes, sizeof *p->react);
    p->redo = calloc((size_t)nodes, sizeof *p->redo);
    Ctx c = {.m = m, .p = p, .L = m->nlayers, .batch = batch};
    c.readers = calloc((size_t)nodes, sizeof *c.readers);
    c.group = calloc((size_t)nodes, sizeof *c.group);
    c.gbirth = calloc((size_t)nodes, sizeof *c.gbirth);
    c.gdeath = calloc((size_t)nodes, sizeof *c.gdeath);
    c.rbirth = calloc((size_t)nodes, sizeof *c.rbirth);
    c.rdeath = calloc((size_t)nodes, sizeof *c.rdeath);
    int rc = -1;
    if (!p->fuse || !p->act || !p->dact || !p->alias || !p->react || !p->redo || !c.readers ||
        !c.group || !c.gbirth || !c.gdeath || !c.rbirth || !c.rdeath) {
        stk_errf(err, "vram_nodes: out of host memory");
        goto out;
    }
    for (int li = 0; li < m->nlayers; li++) {
        c.readers[m->layer[li].in]++;
        if (m->layer[li].in2 >= 0 && m->layer[li].in2 != m->layer[li].in) c.readers[m->layer[li].in2]++;
    }
    for (int k = 0; k < nodes; k++) p->redo[k] = c.rbirth[k] = c.rdeath[k] = -1;
    fuse(&c);
    if (recompute && !inference) choose_recompute(&c);
    rc = collect_grads(&c) || layout(&c, err) ? -1 : 0;
out:
    free(c.readers), free(c.group), free(c.gbirth), free(c.gdeath), free(c.rbirth), free(c.rdeath);
    if (rc) vram_nodes_free(p);
    return rc;
}

int vram_nodes_plan(const Model *m, int batch, VramNodes *p, StkErr *err) {
    return plan(m, batch, 0, 0, p, err);
}

int vram_nodes_plan_inference(const Model *m, int batch, VramNodes *p, StkErr *err) {
    return plan(m, batch, 1, 0, p, err);
}

int vram_nodes_plan_recompute(const Model *m, int batch, VramNodes *p, StkErr *err) {
    return plan(m, batch, 0, 1, p, err);
}

void vram_nodes_free(VramNodes *p) {
    free(p->fuse), free(p->act), free(p->dact), free(p->alias), free(p->react), free(p->redo);
    memset(p, 0, sizeof *p);
}
