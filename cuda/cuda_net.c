/* cuda_net.c: the CUDA backend's memory plan, forward, backward and optimizer step over a
 * Model (see cuda_net.h). Its structure follows trainer/cpu_net.c layer for layer, so
 * the two can be compared op for op. */
#include "cuda_net.h"

#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "cuda_elem.h"
#include "cuda_linear.h"
#include "cuda_loss.h"
#include "cuda_optim.h"
#include "cuda_pool.h"

#define CUDA_NET_DEFAULT_WORKSPACE (256ull << 20)

/* Floats layer li saves for backward: batch-norm mean + invstd; max-pool argmax (int32
 * in float-sized slots), as cpu_net.c. */
static uint64_t saved_floats(const Model *m, int li, int batch) {
    const ModelLayer *l = &m->layer[li];
    if (l->kind == LAYER_BN) return 2ull * l->out.c;
    if (l->kind == LAYER_MAXPOOL) return (uint64_t)batch * shape4_numel(l->out);
    return 0;
}

static int max_channels(const Model *m) {
    int c = m->num_classes;
    for (int node = 0; node <= m->nlayers; node++)
        if (model_node_shape(m, node).c > c) c = model_node_shape(m, node).c;
    return c;
}

static uint64_t biggest_node(const Model *m, int batch) {
    uint64_t b = 0;
    for (int node = 0; node <= m->nlayers; node++) {
        uint64_t n = (uint64_t)batch * shape4_numel(model_node_shape(m, node));
        b = n > b ? n : b;
    }
    return b;
}

CudaNetPlan cuda_net_plan(const Model *m, int batch, const OptimConfig *opt,
                          const CudaNetOptions *o) {
    CudaNetPlan p = {0};
    uint64_t acts = 0, saved = 0;
    for (int node = 0; node <= m->nlayers; node++)
        acts += (uint64_t)batch * shape4_numel(model_node_shape(m, node));
    for (int li = 0; li < m->nlayers; li++) saved += saved_floats(m, li, batch);
    p.params = 4 * m->total_floats;
    p.grads = 4 * m->trainable_floats;
    p.optim = 4 * m->trainable_floats * (uint64_t)optim_state_per_element(opt);
    p.acts = 4 * acts;
    p.dacts = 4 * acts;
    p.saved = 4 * saved;
    p.scratch = 4 * (biggest_node(m, batch) + cuda_colsum_scratch(max_channels(m)) + 2ull * batch);
    p.workspace = o && o->workspace_limit ? o->workspace_limit : CUDA_NET_DEFAULT_WORKSPACE;
    p.total = p.params + p.grads + p.optim + p.acts + p.dacts + p.saved + p.scratch + p.workspace;
    return p;
}

float *cuda_net_input(CudaNet *net) { return net->acts; }

static float *act(CudaNet *net, int node) { return net->acts + net->act_off[node]; }
static float *dact(CudaNet *net, int node) { return net->dacts + net->act_off[node]; }

static Shape4 batched(const CudaNet *net, int node) {
    Shape4 s = model_node_shape(net->m, node);
    s.n = net->batch;
    return s;
}

/* Rows of a node's NHWC matrix: n * h * w. */
static size_t rows(Shape4 s) { return (size_t)s.n * s.h * s.w; }

static int dev_alloc(void **p, uint64_t bytes, const char *what, const CudaNet *net, StkErr *err) {
    cudaError_t st = cudaMalloc(p, bytes ? bytes : 4);
    if (st != cudaSuccess)
        return stk_errf(err, "cuda_net: cudaMalloc of %.1f MB for %s: %s (the plan needs %.1f MB "
                        "in all)", bytes / 1e6, what, cudaGetErrorString(st), net->plan.total / 1e6);
    return 0;
}

static int allocate(CudaNet *net, StkErr *err) {
    const Model *m = net->m;
    int nodes = m->nlayers + 1;
    net->act_off = calloc((size_t)nodes, sizeof *net->act_off);
    net->saved_off = calloc((size_t)m->nlayers, sizeof *net->saved_off);
    net->dact_set = calloc((size_t)nodes, 1);
    net->conv = calloc((size_t)m->nlayers, sizeof *net->conv);
    net->bn = calloc((size_t)m->nlayers, sizeof *net->bn);
    net->num_batches_tracked = calloc((size_t)(m->nbn ? m->nbn : 1), sizeof(int64_t));
    if (!net->act_off || !net->saved_off || !net->dact_set || !net->conv || !net->bn ||
        !net->num_batches_tracked)
        return stk_errf(err, "cuda_net: out of host memory");
    uint64_t off = 0, saved = 0;
    for (int node = 0; node < nodes; node++)
        net->act_off[node] = off, off += shape4_numel(batched(net, node));
    for (int li = 0; li < m->nlayers; li++)
        net->saved_off[li] = saved, saved += saved_floats(m, li, net->batch);
    const CudaNetPlan *p = &net->plan;
    uint64_t big = biggest_node(m, net->batch);
    if (dev_alloc((void **)&net->params, p->params, "parameters", net, err) ||
        dev_alloc((void **)&net->grads, p->grads, "gradients", net, err) ||
        dev_alloc((void **)&net->optim_state, p->optim, "optimizer state", net, err) ||
        dev_alloc((void **)&net->acts, p->acts, "activations", net, err) ||
        dev_alloc((void **)&net->dacts, p->dacts, "activation gradients", net, err) ||
        dev_alloc((void **)&net->saved, p->saved, "saved state", net, err) ||
        dev_alloc((void **)&net->scratch, p->scratch, "scratch", net, err) ||
        dev_alloc(&net->workspace, p->workspace, "cuDNN workspace", net, err))
        return -1;
    net->workspace_bytes = p->workspace;
    net->part = net->scratch + big;
    net->row_loss = net->part + cuda_colsum_scratch(max_channels(m));
    net->labels = (int32_t *)(net->row_loss + net->batch);
    CUDA_TRY(err, cudaMemset(net->params, 0, p->params));
    CUDA_TRY(err, cudaMemset(net->grads, 0, p->grads));
    CUDA_TRY(err, cudaMemset(net->optim_state, 0, p->optim));
    CUDA_TRY(err, cudaMallocHost((void **)&net->host_loss, sizeof(float) * (size_t)net->batch));
    uint64_t stage = m->total_floats > big ? m->total_floats : big;
    CUDA_TRY(err, cudaMallocHost((void **)&net->host_stage, 4 * (stage ? stage : 1)));
    return 0;
}

static int make_handles(CudaNet *net, StkErr *err) {
    CUDA_TRY(err, cudaStreamCreateWithFlags(&net->stream, cudaStreamNonBlocking));
    CUDNN_TRY(err, cudnnCreate(&net->dnn));
    CUDNN_TRY(err, cudnnSetStream(net->dnn, net->stream));
    CUBLAS_TRY(err, cublasCreate(&net->blas));
    CUBLAS_TRY(err, cublasSetStream(net->blas, net->stream));
    CUBLAS_TRY(err, cublasSetMathMode(net->blas, net->o.strict_fp32 ? CUBLAS_PEDANTIC_MATH
                                                                    : CUBLAS_TF32_TENSOR_OP_MATH));
    return 0;
}

/* Checks that the CUDA backend has every layer of m (and in the layout it needs). */
static int check_layers(const Model *m, StkErr *err) {
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        Shape4 xs = model_node_shape(m, l->in);
        switch (l->kind) {
        case LAYER_CONV: case LAYER_BN: case LAYER_ACT: case LAYER_MAXPOOL: case LAYER_AVGPOOL:
        case LAYER_ADD:
            break;
        case LAYER_LINEAR:
            /* NHWC and NCHW flatten alike only without spatial extent */
            if (xs.h * xs.w != 1)
                return stk_errf(err, "cuda_net: linear layer %s reads a %dx%dx%d tensor; the CUDA "
                                "backend needs it pooled to 1x1 first", l->name, xs.c, xs.h, xs.w);
            break;
        case LAYER_DROPOUT:
            if (l->p != 0)
                return stk_errf(err, "cuda_net: dropout (layer #%d) is not in the CUDA backend yet", li);
            break;
        default:
            return stk_errf(err, "cuda_net: layer %s #%d: kind %d is not in the CUDA backend yet",
                            l->name, li, (int)l->kind);
        }
    }
    return 0;
}

/* Convolution algorithms (measured on the arenas' own buffers), then the workspace shrunk
 * to the largest choice; batch-norm views into the parameter arena. */
static int make_layers(CudaNet *net, StkErr *err) {
    const Model *m = net->m;
    size_t need = 0;
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        const ModelParam *p = &m->param[l->param0];
        if (l->kind == LAYER_CONV) {
            CudaConvScratch sc = {act(net, l->in), net->params + p[0].offset, act(net, li + 1),
                                  dact(net, l->in), net->grads + p[0].offset, net->workspace,
                                  net->workspace_bytes};
            if (cuda_conv_init(&net->conv[li], net->dnn, &l->conv, batched(net, l->in),
                               net->o.strict_fp32, l->in != 0, &sc, err))
                return stk_err_wrap(err, "layer %s", l->name);
            const CudaConv *cv = &net->conv[li];
            size_t w = cv->ws_fwd > cv->ws_bwd_data ? cv->ws_fwd : cv->ws_bwd_data;
            w = w > cv->ws_bwd_filter ? w : cv->ws_bwd_filter;
            need = w > need ? w : need;
        }
        if (l->kind == LAYER_BN)
            net->bn[li] = (CudaBn){.c = l->out.c, .eps = 1e-5f, .momentum = 0.1f,
                                   .weight = net->params + p[0].offset,
                                   .bias = net->params + p[1].offset,
                                   .running_mean = net->params + p[2].offset,
                                   .running_var = net->params + p[3].offset};
    }
    CUDA_TRY(err, cudaFree(net->workspace));
    net->workspace = NULL;
    net->workspace_bytes = need;
    net->plan.total -= net->plan.workspace - need;
    net->plan.workspace = need;
    CUDA_TRY(err, cudaMalloc(&net->workspace, need ? need : 4));
    return 0;
}

int cuda_net_init(CudaNet *net, const Model *m, int batch, const OptimConfig *opt,
                  const CudaNetOptions *o, StkErr *err) {
    memset(net, 0, sizeof *net);
    if (batch < 1) return stk_errf(err, "cuda_net: batch %d", batch);
    net->m = m;
    net->batch = batch;
    net->opt = *opt;
    if (o) net->o = *o;
    net->plan = cuda_net_plan(m, batch, opt, &net->o);
    if (check_layers(m, err) || allocate(net, err) || make_handles(net, err) ||
        make_layers(net, err)) {
        cuda_net_free(net);
        return -1;
    }
    return 0;
}

void cuda_net_free(CudaNet *net) {
    if (net->stream) cudaStreamSynchronize(net->stream);
    for (int li = 0; net->conv && li < net->m->nlayers; li++) cuda_conv_free(&net->conv[li]);
    if (net->dnn) cudnnDestroy(net->dnn);
    if (net->blas) cublasDestroy(net->blas);
    if (net->stream) cudaStreamDestroy(net->stream);
    cudaFree(net->params), cudaFree(net->grads), cudaFree(net->optim_state);
    cudaFree(net->acts), cudaFree(net->dacts), cudaFree(net->saved), cudaFree(net->scratch);
    cudaFree(net->workspace);
    cudaFreeHost(net->host_loss), cudaFreeHost(net->host_stage);
    free(net->conv), free(net->bn), free(net->num_batches_tracked);
    free(net->act_off), free(net->saved_off), free(net->dact_set);
    memset(net, 0, sizeof *net);
}

/* Index among the model's batch norms of layer li (for num_batches_tracked). */
static int bn_index(const Model *m, int li) {
    int k = 0;
    for (int i = 0; i < li; i++) k += m->layer[i].kind == LAYER_BN;
    return k;
}

static int forward_layer(CudaNet *net, int li, int train, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    const ModelParam *p = &net->m->param[l->param0];
    const float *x = act(net, l->in);
    float *y = act(net, li + 1), *sv = net->saved + net->saved_off[li];
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    cudaStream_t s = net->stream;
    switch (l->kind) {
    case LAYER_CONV:
        if (cuda_conv_forward(&net->conv[li], net->dnn, x, net->params + p[0].offset, y,
                              net->workspace, err))
            return -1;
        return l->conv.bias ? cuda_bias_add(rows(ys), ys.c, net->params + p[1].offset, y, s, err) : 0;
    case LAYER_BN:
        if (!train) return cuda_bn_forward_eval(&net->bn[li], rows(xs), x, y, s, err);
        net->num_batches_tracked[bn_index(net->m, li)]++;
        return cuda_bn_forward_train(&net->bn[li], rows(xs), x, y, sv, sv + l->out.c, net->part, s, err);
    case LAYER_ACT: return cuda_act_forward(l->act, shape4_numel(xs), x, y, s, err);
    case LAYER_MAXPOOL: return cuda_maxpool_forward(&l->pool, xs, ys, x, y, (int32_t *)sv, s, err);
    case LAYER_AVGPOOL: return cuda_avgpool_forward(xs, x, y, s, err);
    case LAYER_LINEAR:
        return cuda_linear_forward(net->blas, s, xs.n, l->linear.in, l->linear.out, x,
                                   net->params + p[0].offset, net->params + p[1].offset, y, err);
    case LAYER_ADD: return cuda_add(shape4_numel(ys), x, act(net, l->in2), y, s, err);
    case LAYER_DROPOUT: /* p == 0 (check_layers): the identity */
        CUDA_TRY(err, cudaMemcpyAsync(y, x, 4 * shape4_numel(xs), cudaMemcpyDeviceToDevice, s));
        return 0;
    }
    return stk_errf(err, "layer %d: unknown kind", li);
}

int cuda_net_forward(CudaNet *net, int train, uint64_t dropout_key, const float **logits,
                     StkErr *err) {
    (void)dropout_key; /* dropout with p > 0 is refused at init for now */
    for (int li = 0; li < net->m->nlayers; li++)
        if (forward_layer(net, li, train, err))
            return stk_err_wrap(err, "forward %s #%d", net->m->layer[li].name, li);
    *logits = act(net, net->m->nlayers);
    return 0;
}

/* As cpu_net.c: a node's first gradient is written in place, later ones go to scratch
 * and are added. */
static float *grad_target(CudaNet *net, int node) {
    return net->dact_set[node] ? net->scratch : dact(net, node);
}

static int grad_commit(CudaNet *net, int node, StkErr *err) {
    if (net->dact_set[node]) {
        float *d = dact(net, node);
        if (cuda_add(shape4_numel(batched(net, node)), d, net->scratch, d, net->stream, err)) return -1;
    }
    net->dact_set[node] = 1;
    return 0;
}

static int backward_layer(CudaNet *net, int li, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    const ModelParam *p = &net->m->param[l->param0];
    const float *x = act(net, l->in), *dy = dact(net, li + 1);
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    float *sv = net->saved + net->saved_off[li];
    float *dx = l->in == 0 ? NULL : grad_target(net, l->in);
    cudaStream_t s = net->stream;
    int rc = 0;
    switch (l->kind) {
    case LAYER_CONV:
        rc = cuda_conv_backward_filter(&net->conv[li], net->dnn, x, dy, net->grads + p[0].offset,
                                       net->workspace, err);
        if (!rc && l->conv.bias)
            rc = cuda_colsum(rows(ys), ys.c, dy, net->grads + p[1].offset, net->part, s, err);
        if (!rc && dx)
            rc = cuda_conv_backward_data(&net->conv[li], net->dnn, dy, net->params + p[0].offset,
                                         dx, net->workspace, err);
        break;
    case LAYER_BN:
        rc = cuda_bn_backward_train(&net->bn[li], rows(xs), x, dy, sv, sv + l->out.c,
                                    dx ? dx : net->scratch, net->grads + p[0].offset,
                                    net->grads + p[1].offset, net->part, s, err);
        break;
    case LAYER_ACT: if (dx) rc = cuda_act_backward(l->act, shape4_numel(xs), x, dy, dx, s, err); break;
    case LAYER_MAXPOOL:
        if (dx) rc = cuda_maxpool_backward(&l->pool, xs, ys, dy, (const int32_t *)sv, dx, s, err);
        break;
    case LAYER_AVGPOOL: if (dx) rc = cuda_avgpool_backward(xs, dy, dx, s, err); break;
    case LAYER_LINEAR:
        rc = cuda_linear_backward(net->blas, s, xs.n, l->linear.in, l->linear.out, x,
                                  net->params + p[0].offset, dy, dx, net->grads + p[0].offset,
                                  net->grads + p[1].offset, net->part, err);
        break;
    case LAYER_ADD: {
        size_t bytes = 4 * shape4_numel(ys);
        if (dx) {
            CUDA_TRY(err, cudaMemcpyAsync(dx, dy, bytes, cudaMemcpyDeviceToDevice, s));
            if (grad_commit(net, l->in, err)) return -1;
        }
        float *d2 = grad_target(net, l->in2);
        CUDA_TRY(err, cudaMemcpyAsync(d2, dy, bytes, cudaMemcpyDeviceToDevice, s));
        return grad_commit(net, l->in2, err);
    }
    case LAYER_DROPOUT:
        if (dx) CUDA_TRY(err, cudaMemcpyAsync(dx, dy, 4 * shape4_numel(xs), cudaMemcpyDeviceToDevice, s));
        break;
    }
    if (!rc && dx) rc = grad_commit(net, l->in, err);
    return rc;
}

int cuda_net_backward(CudaNet *net, const int32_t *labels, double eps, uint64_t dropout_key,
                      StkErr *err) {
    (void)dropout_key;
    const Model *m = net->m;
    cudaStream_t s = net->stream;
    memset(net->dact_set, 0, (size_t)m->nlayers + 1);
    CUDA_TRY(err, cudaMemcpyAsync(net->labels, labels, sizeof *labels * (size_t)net->batch,
                                  cudaMemcpyHostToDevice, s));
    if (cuda_ce_loss(net->batch, m->num_classes, act(net, m->nlayers), net->labels, (float)eps,
                     net->row_loss, dact(net, m->nlayers), s, err))
        return -1;
    CUDA_TRY(err, cudaMemcpyAsync(net->host_loss, net->row_loss, sizeof(float) * (size_t)net->batch,
                                  cudaMemcpyDeviceToHost, s));
    net->dact_set[m->nlayers] = 1;
    for (int li = m->nlayers - 1; li >= 0; li--)
        if (backward_layer(net, li, err))
            return stk_err_wrap(err, "backward %s #%d", m->layer[li].name, li);
    return 0;
}

int cuda_net_loss(CudaNet *net, double *loss, StkErr *err) {
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    double sum = 0;
    for (int i = 0; i < net->batch; i++) sum += net->host_loss[i];
    *loss = sum / net->batch;
    return 0;
}

int cuda_net_step(CudaNet *net, double lr, double wd, double norm_wd, StkErr *err) {
    const Model *m = net->m;
    int per = optim_state_per_element(&net->opt);
    net->steps++;
    for (int i = 0; i < m->nparams; i++) {
        const ModelParam *p = &m->param[i];
        if (!p->trainable) continue;
        float *w = net->params + p->offset, *g = net->grads + p->offset;
        float *st = net->optim_state + p->offset * (uint64_t)per;
        double decay = p->norm_or_bias ? norm_wd : wd;
        int rc = net->opt.kind == OPTIM_ADAMW
                     ? cuda_adamw_step(&net->opt, w, g, st, p->numel, lr, decay, net->steps,
                                       net->stream, err)
                     : cuda_sgd_step(&net->opt, w, g, per ? st : NULL, p->numel, lr, decay,
                                     net->steps == 1, net->stream, err);
        if (rc) return stk_err_wrap(err, "step %s", p->name);
    }
    return 0;
}

/* OIHW <-> KRSC (OHWI) for one convolution weight; to_krsc picks the direction. */
static void conv_weight_layout(const ConvDesc *d, const float *src, float *dst, int to_krsc) {
    int o_n = d->out_c, i_n = d->in_c / d->groups, kh = d->kh, kw = d->kw;
    for (int o = 0; o < o_n; o++)
        for (int i = 0; i < i_n; i++)
            for (int h = 0; h < kh; h++)
                for (int w = 0; w < kw; w++) {
                    size_t oihw = (((size_t)o * i_n + i) * kh + h) * kw + w;
                    size_t ohwi = (((size_t)o * kh + h) * kw + w) * i_n + i;
                    if (to_krsc) dst[ohwi] = src[oihw];
                    else dst[oihw] = src[ohwi];
                }
}

/* Converts n floats of a parameter arena image (host) between layouts in place of
 * dst: every convolution weight is transposed, the rest copied. */
static void arena_layout(const Model *m, const float *src, float *dst, uint64_t n, int to_krsc) {
    memcpy(dst, src, 4 * n);
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        if (l->kind != LAYER_CONV) continue;
        const ModelParam *w = &m->param[l->param0];
        if (w->offset + w->numel <= n)
            conv_weight_layout(&l->conv, src + w->offset, dst + w->offset, to_krsc);
    }
}

int cuda_net_set_params(CudaNet *net, const float *host, StkErr *err) {
    uint64_t n = net->m->total_floats;
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    arena_layout(net->m, host, net->host_stage, n, 1);
    CUDA_TRY(err, cudaMemcpyAsync(net->params, net->host_stage, 4 * n, cudaMemcpyHostToDevice, net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    return 0;
}

static int get_arena(CudaNet *net, const float *dev, uint64_t n, float *host, StkErr *err) {
    CUDA_TRY(err, cudaMemcpyAsync(net->host_stage, dev, 4 * n, cudaMemcpyDeviceToHost, net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    arena_layout(net->m, net->host_stage, host, n, 0);
    return 0;
}

int cuda_net_get_params(CudaNet *net, float *host, StkErr *err) {
    return get_arena(net, net->params, net->m->total_floats, host, err);
}

int cuda_net_get_grads(CudaNet *net, float *host, StkErr *err) {
    return get_arena(net, net->grads, net->m->trainable_floats, host, err);
}

int cuda_net_set_input_nchw(CudaNet *net, const float *host, StkErr *err) {
    Shape4 s = batched(net, 0);
    size_t hw = (size_t)s.h * s.w;
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (size_t i = 0; i < hw; i++)
                net->host_stage[((size_t)n * hw + i) * s.c + c] = host[((size_t)n * s.c + c) * hw + i];
    CUDA_TRY(err, cudaMemcpyAsync(act(net, 0), net->host_stage, 4 * shape4_numel(s),
                                  cudaMemcpyHostToDevice, net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    return 0;
}

int cuda_net_get_logits(CudaNet *net, float *host, StkErr *err) {
    size_t n = (size_t)net->batch * net->m->num_classes;
    CUDA_TRY(err, cudaMemcpyAsync(host, act(net, net->m->nlayers), 4 * n, cudaMemcpyDeviceToHost,
                                  net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    return 0;
}
