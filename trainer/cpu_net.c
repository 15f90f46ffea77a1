/* cpu_net.c: the CPU backend's memory plan and its forward, backward and optimizer
 * step over a Model (see cpu_net.h). */
#include "cpu_net.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_loss.h"
#include "model_freeze.h"
#include "stk_rng.h"

/* Floats layer li saves for backward: batch-norm mean + invstd; max-pool argmax (int32,
 * counted in the same units). */
static uint64_t saved_floats(const Model *m, int li, int batch) {
    const ModelLayer *l = &m->layer[li];
    if (l->kind == LAYER_BN) return 2ull * l->out.c;
    if (l->kind == LAYER_MAXPOOL) return (uint64_t)batch * shape4_numel(l->out);
    return 0;
}

/* The lowest layer with a trainable parameter (nlayers if none). Layers are in
 * topological order, so no gradient is needed below it: backward stops there, and only
 * nodes above it (from first_grad_node) get activation gradients. */
static int first_trainable(const Model *m) {
    for (int li = 0; li < m->nlayers; li++)
        if (m->layer[li].nparams && !model_layer_frozen(m, li)) return li;
    return m->nlayers;
}

static int first_grad_node(const Model *m) {
    int f = first_trainable(m) + 1;
    return f < m->nlayers ? f : m->nlayers;
}

CpuNetPlan cpu_net_plan(const Model *m, int batch, const OptimConfig *opt) {
    CpuNetPlan p = {0};
    uint64_t acts = 0, dacts = 0, saved = 0;
    for (int node = 0; node <= m->nlayers; node++) {
        uint64_t n = (uint64_t)batch * shape4_numel(model_node_shape(m, node));
        acts += n;
        dacts += node >= first_grad_node(m) ? n : 0;
    }
    for (int li = 0; li < m->nlayers; li++) saved += saved_floats(m, li, batch);
    p.params = 4 * m->total_floats;
    p.grads = 4 * m->trainable_floats;
    p.optim = 4 * m->trainable_floats * (uint64_t)optim_state_per_element(opt);
    p.acts = 4 * acts;
    p.dacts = 4 * dacts;
    p.saved = 4 * saved;
    p.total = p.params + p.grads + p.optim + p.acts + p.dacts + p.saved;
    return p;
}

float *cpu_net_input(CpuNet *net) { return net->acts; }

static float *act(CpuNet *net, int node) { return net->acts + net->act_off[node]; }
/* Activation gradients exist from first_grad_node on: the arena starts there. */
static float *dact(CpuNet *net, int node) {
    return net->dacts + (net->act_off[node] - net->dact_base);
}

static Shape4 batched(const CpuNet *net, int node) {
    Shape4 s = model_node_shape(net->m, node);
    s.n = net->batch;
    return s;
}

/* Allocates every arena from the plan; offsets per node and per saving layer. */
static int allocate(CpuNet *net, StkErr *err) {
    const Model *m = net->m;
    int nodes = m->nlayers + 1;
    net->act_off = calloc((size_t)nodes, sizeof *net->act_off);
    net->saved_off = calloc((size_t)m->nlayers, sizeof *net->saved_off);
    net->consumers = calloc((size_t)nodes, sizeof *net->consumers);
    net->dact_set = calloc((size_t)nodes, 1);
    net->conv = calloc((size_t)m->nlayers, sizeof *net->conv);
    net->bn = calloc((size_t)m->nlayers, sizeof *net->bn);
    net->num_batches_tracked = calloc((size_t)(m->nbn ? m->nbn : 1), sizeof(int64_t));
    uint64_t off = 0, saved = 0, biggest = 0;
    for (int node = 0; node < nodes; node++) {
        uint64_t n = shape4_numel(batched(net, node));
        net->act_off[node] = off;
        off += n;
        biggest = n > biggest ? n : biggest;
    }
    for (int li = 0; li < m->nlayers; li++) {
        net->saved_off[li] = saved;
        saved += saved_floats(m, li, net->batch);
        net->consumers[m->layer[li].in]++;
        if (m->layer[li].in2 >= 0) net->consumers[m->layer[li].in2]++;
    }
    size_t st = (size_t)m->trainable_floats * optim_state_per_element(&net->opt);
    net->params = calloc(m->total_floats ? m->total_floats : 1, 4);
    net->grads = calloc(m->trainable_floats ? m->trainable_floats : 1, 4);
    net->optim_state = calloc(st ? st : 1, 4);
    net->acts = calloc(off, 4);
    net->dact_base = net->act_off[first_grad_node(m)];
    net->dacts = calloc(off - net->dact_base, 4);
    net->saved = calloc(saved ? saved : 1, 4);
    net->argmax = (int32_t *)net->saved; /* max pools keep int32 indices in their share */
    net->scratch = calloc(biggest, 4);
    if (!net->act_off || !net->saved_off || !net->consumers || !net->dact_set || !net->conv ||
        !net->bn || !net->num_batches_tracked || !net->params || !net->grads ||
        !net->optim_state || !net->acts || !net->dacts || !net->saved || !net->scratch)
        return stk_errf(err, "cpu_net: out of memory for a %.1f MB plan", net->plan.total / 1e6);
    return 0;
}

/* Per-layer handles: oneDNN convolutions, batch-norm views into the arenas. */
static int make_layers(CpuNet *net, StkErr *err) {
    const Model *m = net->m;
    int bn_index = 0;
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        const ModelParam *p = &m->param[l->param0];
        if (l->kind == LAYER_CONV &&
            cpu_conv_init(&net->conv[li], &net->dn, &l->conv, batched(net, l->in), l->in != 0, err))
            return stk_err_wrap(err, "layer %s", l->name);
        if (l->kind == LAYER_BN)
            net->bn[li] = (CpuBn){.c = l->out.c, .eps = l->eps, .momentum = l->momentum,
                                  .weight = net->params + p[0].offset,
                                  .bias = net->params + p[1].offset,
                                  .running_mean = net->params + p[2].offset,
                                  .running_var = net->params + p[3].offset,
                                  .num_batches_tracked = &net->num_batches_tracked[bn_index++]};
    }
    return 0;
}

int cpu_net_init(CpuNet *net, const Model *m, int batch, const OptimConfig *opt, StkErr *err) {
    memset(net, 0, sizeof *net);
    if (batch < 1) return stk_errf(err, "cpu_net: batch %d", batch);
    net->m = m;
    net->batch = batch;
    net->opt = *opt;
    net->plan = cpu_net_plan(m, batch, opt);
    net->first_trainable = first_trainable(m);
    if (allocate(net, err) || cpu_dnnl_init(&net->dn, err) || make_layers(net, err)) {
        cpu_net_free(net);
        return -1;
    }
    return 0;
}

void cpu_net_free(CpuNet *net) {
    for (int li = 0; net->conv && li < net->m->nlayers; li++) cpu_conv_free(&net->conv[li]);
    cpu_dnnl_free(&net->dn);
    free(net->conv), free(net->bn), free(net->num_batches_tracked);
    free(net->params), free(net->grads), free(net->optim_state);
    free(net->acts), free(net->dacts), free(net->saved), free(net->scratch);
    free(net->act_off), free(net->saved_off), free(net->consumers), free(net->dact_set);
    memset(net, 0, sizeof *net);
}

/* One layer forward: node li + 1 from its input(s). */
static int forward_layer(CpuNet *net, int li, int train, uint64_t key, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    const ModelParam *p = &net->m->param[l->param0];
    const float *x = act(net, l->in);
    float *y = act(net, li + 1);
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    float *sv = net->saved + net->saved_off[li];
    switch (l->kind) {
    case LAYER_CONV:
        return cpu_conv_forward(&net->conv[li], x, net->params + p[0].offset,
                                l->conv.bias ? net->params + p[1].offset : NULL, y, err);
    case LAYER_BN: /* a frozen batch norm keeps its running statistics: eval mode */
        return train && !model_layer_frozen(net->m, li) ? cpu_bn_forward_train(&net->bn[li], xs, x, y, sv, sv + l->out.c, err)
                     : cpu_bn_forward_eval(&net->bn[li], xs, x, y, err);
    case LAYER_ACT: return cpu_act_forward(l->act, shape4_numel(xs), x, y, err);
    case LAYER_MAXPOOL:
        return cpu_maxpool_forward(&l->pool, xs, x, ys, y, net->argmax + net->saved_off[li], err);
    case LAYER_AVGPOOL: return cpu_avgpool_adaptive_forward(xs, x, ys, y, err);
    case LAYER_LINEAR:
        return cpu_linear_forward(&l->linear, xs, x, net->params + p[0].offset,
                                  net->params + p[1].offset, y, err);
    case LAYER_ADD: cpu_add_forward(shape4_numel(ys), x, act(net, l->in2), y); return 0;
    case LAYER_DROPOUT:
        return cpu_dropout_forward(shape4_numel(xs), l->p, train, stk_rng_key(key, (uint64_t)li),
                                   x, y, err);
    case LAYER_SCALE: return cpu_scale_forward(xs, x, act(net, l->in2), y, err);
    case LAYER_DROP_PATH:
        return cpu_drop_path_forward(xs, l->p, train, stk_rng_key(key, (uint64_t)li), x, y, err);
    }
    return stk_errf(err, "layer %d: unknown kind", li);
}

int cpu_net_forward(CpuNet *net, int train, uint64_t dropout_key, const float **logits,
                    StkErr *err) {
    for (int li = 0; li < net->m->nlayers; li++)
        if (forward_layer(net, li, train, dropout_key, err))
            return stk_err_wrap(err, "forward %s #%d", net->m->layer[li].name, li);
    *logits = act(net, net->m->nlayers);
    return 0;
}

/* Where layer li's input gradient for node should go: straight into its dact the first
 * time, else into scratch to be added (a node read by two layers, as a residual). */
static float *grad_target(CpuNet *net, int node) {
    return net->dact_set[node] ? net->scratch : dact(net, node);
}

static void grad_commit(CpuNet *net, int node) {
    if (net->dact_set[node]) {
        float *d = dact(net, node);
        size_t n = shape4_numel(batched(net, node));
        for (size_t i = 0; i < n; i++) d[i] += net->scratch[i];
    }
    net->dact_set[node] = 1;
}

/* Where the gradient for node goes, or NULL when nothing below needs it (node 0, or a
 * node at or under the first trainable layer). */
static float *grad_for(CpuNet *net, int node) {
    return node <= net->first_trainable ? NULL : grad_target(net, node);
}

/* Backward of a frozen layer: the input gradient only, its parameters are constants
 * (batch norm ran in eval mode). */
static int backward_frozen(CpuNet *net, const ModelLayer *l, int li, float *dx, StkErr *err) {
    const ModelParam *p = &net->m->param[l->param0];
    const float *x = act(net, l->in), *dy = dact(net, li + 1);
    if (!dx) return 0;
    if (l->kind == LAYER_CONV)
        return cpu_conv_backward_data(&net->conv[li], dy, net->params + p[0].offset, dx, err);
    if (l->kind == LAYER_BN)
        return cpu_bn_backward_eval(&net->bn[li], batched(net, l->in), x, dy, dx, NULL, NULL, err);
    return cpu_linear_backward(&l->linear, batched(net, l->in), x, net->params + p[0].offset, dy,
                               dx, NULL, NULL, err);
}

/* y = x * s: dx = dy * s, then ds = sum over h, w of dy * x; one at a time, since both
 * may need the scratch buffer (x is also read by the SE branch's pooling, s only here). */
static int backward_scale(CpuNet *net, const ModelLayer *l, Shape4 xs, const float *dy,
                          StkErr *err) {
    const float *x = act(net, l->in), *s = act(net, l->in2);
    float *dx = grad_for(net, l->in);
    if (dx) {
        if (cpu_scale_backward(xs, x, s, dy, dx, NULL, err)) return -1;
        grad_commit(net, l->in);
    }
    float *ds = grad_for(net, l->in2);
    if (ds) {
        if (cpu_scale_backward(xs, x, s, dy, NULL, ds, err)) return -1;
        grad_commit(net, l->in2);
    }
    return 0;
}

/* One layer backward: from dact[li + 1] to its input(s) and its parameters' gradients. */
static int backward_layer(CpuNet *net, int li, uint64_t key, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    const ModelParam *p = &net->m->param[l->param0];
    const float *x = act(net, l->in), *dy = dact(net, li + 1);
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    float *sv = net->saved + net->saved_off[li];
    float *dx = grad_for(net, l->in);
    int rc = 0;
    if (model_layer_frozen(net->m, li)) {
        rc = backward_frozen(net, l, li, dx, err);
        if (!rc && dx) grad_commit(net, l->in);
        return rc;
    }
    switch (l->kind) {
    case LAYER_CONV:
        rc = cpu_conv_backward_weights(&net->conv[li], x, dy, net->grads + p[0].offset,
                                       l->conv.bias ? net->grads + p[1].offset : NULL, err);
        if (!rc && dx) rc = cpu_conv_backward_data(&net->conv[li], dy, net->params + p[0].offset, dx, err);
        break;
    case LAYER_BN:
        rc = cpu_bn_backward_train(&net->bn[li], xs, x, dy, sv, sv + l->out.c, dx ? dx : net->scratch,
                                   net->grads + p[0].offset, net->grads + p[1].offset, err);
        break;
    case LAYER_ACT: if (dx) rc = cpu_act_backward(l->act, shape4_numel(xs), x, dy, dx, err); break;
    case LAYER_MAXPOOL:
        if (dx) rc = cpu_maxpool_backward(&l->pool, xs, ys, dy, net->argmax + net->saved_off[li], dx, err);
        break;
    case LAYER_AVGPOOL: if (dx) rc = cpu_avgpool_adaptive_backward(xs, ys, dy, dx, err); break;
    case LAYER_LINEAR:
        rc = cpu_linear_backward(&l->linear, xs, x, net->params + p[0].offset, dy, dx,
                                 net->grads + p[0].offset, net->grads + p[1].offset, err);
        break;
    case LAYER_ADD: {
        size_t n = shape4_numel(ys);
        if (dx) memcpy(dx, dy, n * 4), grad_commit(net, l->in);
        float *d2 = grad_for(net, l->in2);
        if (d2) memcpy(d2, dy, n * 4), grad_commit(net, l->in2);
        return 0;
    }
    case LAYER_DROPOUT:
        if (dx) rc = cpu_dropout_backward(shape4_numel(xs), l->p, 1, stk_rng_key(key, (uint64_t)li),
                                          dy, dx, err);
        break;
    case LAYER_SCALE: return backward_scale(net, l, xs, dy, err);
    case LAYER_DROP_PATH:
        if (dx) rc = cpu_drop_path_backward(xs, l->p, 1, stk_rng_key(key, (uint64_t)li), dy, dx, err);
        break;
    }
    if (!rc && dx) grad_commit(net, l->in);
    return rc;
}

int cpu_net_backward(CpuNet *net, const int32_t *labels, double eps, uint64_t dropout_key,
                     double *loss, StkErr *err) {
    const Model *m = net->m;
    memset(net->dact_set, 0, (size_t)m->nlayers + 1);
    if (cpu_ce_loss(net->batch, m->num_classes, act(net, m->nlayers), labels, eps, loss,
                    dact(net, m->nlayers), err))
        return -1;
    net->dact_set[m->nlayers] = 1;
    for (int li = m->nlayers - 1; li >= net->first_trainable; li--)
        if (backward_layer(net, li, dropout_key, err))
            return stk_err_wrap(err, "backward %s #%d", m->layer[li].name, li);
    return 0;
}

void cpu_net_step(CpuNet *net, double lr, double wd, double norm_wd) {
    const Model *m = net->m;
    int per = optim_state_per_element(&net->opt);
    net->steps++;
    for (int i = 0; i < m->nparams; i++) {
        const ModelParam *p = &m->param[i];
        if (!p->trainable) continue;
        float *w = net->params + p->offset, *g = net->grads + p->offset;
        float *st = net->optim_state + p->offset * (uint64_t)per;
        double decay = p->norm_or_bias ? norm_wd : wd;
        if (net->opt.kind == OPTIM_ADAMW)
            optim_adamw_step(&net->opt, w, g, st, p->numel, lr, decay, net->steps);
        else
            optim_sgd_step(&net->opt, w, g, st, p->numel, lr, decay, net->steps == 1);
    }
}
