/* cuda_net.c: the CUDA backend's memory plan, forward, backward and optimizer step over a
 * Model (see cuda_net.h). Its structure follows trainer/cpu_net.c layer for layer, so
 * the two can be compared op for op. */
#include "cuda_net.h"
#include "cuda_net_priv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "cuda_dwconv.h"
#include "cuda_elem.h"
#include "cuda_linear.h"
#include "cuda_loss.h"
#include "cuda_optim.h"
#include "cuda_pool.h"
#include "cuda_se.h"
#include "model_freeze.h"
#include "stk_rng.h"
#include "vram_plan.h"

static CudaDtype dtype_of(CudaPrecision p) {
    return p == CUDA_PREC_BF16 ? CUDA_BF16 : p == CUDA_PREC_FP16 ? CUDA_F16 : CUDA_F32;
}

/* The formula is vram_plan's (one for --plan and for the allocation), given the kernels'
 * own work splits. */
CudaNetPlan cuda_net_plan(const Model *m, int batch, const OptimConfig *opt,
                          const CudaNetOptions *o) {
    static const VramKernels k = {cuda_colsum_scratch, cuda_dwconv_filter_scratch};
    CudaPrecision prec = o ? o->precision : CUDA_PREC_FP32;
    uint64_t ws = o ? o->workspace_limit : 0;
    VramArenas a = o && o->inference ? vram_arenas_inference(m, batch, (VramPrecision)prec, ws, &k)
                                     : vram_arenas_ex(m, batch, opt, (VramPrecision)prec, ws, &k,
                                                      o && o->recompute);
    return (CudaNetPlan){.params = a.params, .grads = a.grads, .optim = a.optim, .lowp = a.lowp,
                         .acts = a.acts, .acts_kept = a.acts_kept, .saved = a.saved,
                         .scratch = a.scratch, .workspace = a.workspace, .total = a.total,
                         .dw_scratch = a.dw_scratch};
}

void *cuda_net_input(CudaNet *net) { return act(net, 0); }
void *cuda_net_node(CudaNet *net, int node) { return act(net, node); }

/* After a product's weight gradient: widen the 16-bit slot into the float32 arena. */
static int weight_grad_done(CudaNet *net, int li, StkErr *err) {
    if (!lowp(net)) return 0;
    const ModelParam *w = &net->m->param[net->m->layer[li].param0];
    return cuda_cast(net->dt, CUDA_F32, w->numel, net->lowp_grad, net->grads + w->offset,
                     net->stream, err);
}

/* The bf16 copies of every product's weight (after cuda_net_set_params; a step refreshes
 * the trainable ones itself, cuda_optim.h). */
int cuda_net_refresh_weights(CudaNet *net, StkErr *err) {
    if (!lowp(net)) return 0;
    for (int li = 0; li < net->m->nlayers; li++) {
        if (!has_product(&net->m->layer[li])) continue;
        const ModelParam *w = &net->m->param[net->m->layer[li].param0];
        if (cuda_cast(CUDA_F32, net->dt, w->numel, net->params + w->offset, weight(net, li),
                      net->stream, err))
            return -1;
    }
    return 0;
}

static int dev_alloc(void **p, uint64_t bytes, const char *what, const CudaNet *net, StkErr *err) {
    cudaError_t st = cudaMalloc(p, bytes ? bytes : 4);
    if (st != cudaSuccess)
        return stk_errf(err, "cuda_net: cudaMalloc of %.1f MB for %s: %s (the plan needs %.1f MB "
                        "in all)", bytes / 1e6, what, cudaGetErrorString(st), net->plan.total / 1e6);
    return 0;
}

/* Layer li is an activation run inside the layer before it (vram_nodes.h). */
static int skipped(const CudaNet *net, int li) { return vram_nodes_skipped(&net->nodes, li); }

_Static_assert((int)VRAM_BF16 == (int)CUDA_PREC_BF16 && (int)VRAM_FP16 == (int)CUDA_PREC_FP16 &&
               (int)VRAM_TF32 == (int)CUDA_PREC_TF32, "cuda_net_plan casts one to the other");
_Static_assert(VRAM_NO_FUSE == CUDA_BN_NO_ACT, "a fused batch norm passes its entry on as cuda_bn's act");

/* Host tables (offsets per node, per saving layer, per weight copy). */
static int host_tables(CudaNet *net, StkErr *err) {
    const Model *m = net->m;
    int nodes = m->nlayers + 1;
    net->saved_off = calloc((size_t)m->nlayers, sizeof *net->saved_off);
    net->lowp_off = calloc((size_t)m->nlayers, sizeof *net->lowp_off);
    net->dact_set = calloc((size_t)nodes, 1);
    net->dwconv = calloc((size_t)m->nlayers, 1);
    net->gemm = calloc((size_t)m->nlayers, 1);
    net->conv = calloc((size_t)m->nlayers, sizeof *net->conv);
    net->bn = calloc((size_t)m->nlayers, sizeof *net->bn);
    net->num_batches_tracked = calloc((size_t)(m->nbn ? m->nbn : 1), sizeof(int64_t));
    if (!net->saved_off || !net->lowp_off || !net->dact_set || !net->dwconv || !net->gemm ||
        !net->conv || !net->bn || !net->num_batches_tracked)
        return stk_errf(err, "cuda_net: out of host memory");
    uint64_t saved = 0, low = 0;
    /* the same layout vram_arenas sized the pool by */
    if ((net->o.inference   ? vram_nodes_plan_inference
         : net->o.recompute ? vram_nodes_plan_recompute
                            : vram_nodes_plan)(m, net->batch, &net->nodes, err))
        return -1;
    for (int li = 0; li < m->nlayers; li++) {
        net->saved_off[li] = saved;
        if (!net->o.inference) saved += vram_saved_floats(m, li, net->batch);
        if (has_product(&m->layer[li])) net->lowp_off[li] = low, low += m->param[m->layer[li].param0].numel;
    }
    return 0;
}

static int allocate(CudaNet *net, StkErr *err) {
    const Model *m = net->m;
    const CudaNetPlan *p = &net->plan;
    if (host_tables(net, err)) return -1;
    uint64_t big = vram_biggest_node(m, net->batch), copies, largest;
    vram_lowp_sizes(m, &copies, &largest);
    if (dev_alloc((void **)&net->params, p->params, "parameters", net, err) ||
        dev_alloc((void **)&net->grads, p->grads, "gradients", net, err) ||
        dev_alloc((void **)&net->optim_state, p->optim, "optimizer state", net, err) ||
        dev_alloc(&net->lowp, p->lowp, "16-bit weight copies", net, err) ||
        dev_alloc(&net->acts, p->acts, "activations and their gradients", net, err) ||
        dev_alloc((void **)&net->saved, p->saved, "saved state", net, err) ||
        dev_alloc(&net->scratch, p->scratch, "scratch", net, err) ||
        dev_alloc(&net->workspace, p->workspace, "cuDNN workspace", net, err))
        return -1;
    net->workspace_bytes = p->workspace;
    net->lowp_grad = net->o.inference ? NULL : (uint16_t *)net->lowp + copies;
    net->part = (float *)((char *)net->scratch + net->nodes.accum * esize(net));
    net->row_loss = net->part + cuda_colsum_scratch(vram_max_channels(m));
    net->labels = (int32_t *)(net->row_loss + net->batch);
    net->dev_key = (uint64_t *)(((uintptr_t)(net->labels + net->batch) + 7) & ~(uintptr_t)7);
    net->dw_scratch = (float *)(((uintptr_t)(net->dev_key + 1) + 255) & ~(uintptr_t)255);
    CUDA_TRY(err, cudaMemset(net->params, 0, p->params));
    CUDA_TRY(err, cudaMemset(net->grads, 0, p->grads));
    CUDA_TRY(err, cudaMemset(net->optim_state, 0, p->optim));
    CUDA_TRY(err, cudaMallocHost((void **)&net->host_loss, sizeof(float) * (size_t)net->batch));
    uint64_t stage = m->total_floats > big ? m->total_floats : big;
    CUDA_TRY(err, cudaMallocHost((void **)&net->host_stage, 4 * (stage ? stage : 1)));
    return 0;
}

static int make_handles(CudaNet *net, StkErr *err) {
    int least, greatest;
    CUDA_TRY(err, cudaDeviceGetStreamPriorityRange(&least, &greatest));
    CUDA_TRY(err, cudaStreamCreateWithPriority(&net->stream, cudaStreamNonBlocking,
                                               net->o.high_priority ? greatest : least));
    CUDNN_TRY(err, cudnnCreate(&net->dnn));
    CUDNN_TRY(err, cudnnSetStream(net->dnn, net->stream));
    CUBLAS_TRY(err, cublasCreate(&net->blas));
    CUBLAS_TRY(err, cublasSetStream(net->blas, net->stream));
    /* each product names its compute type (cuda_linear.c); nothing implicit */
    CUBLAS_TRY(err, cublasSetMathMode(net->blas, CUBLAS_PEDANTIC_MATH));
    return 0;
}

/* Checks that the CUDA backend has every layer of m (and in the layout it needs). */
static int check_layers(const Model *m, StkErr *err) {
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        Shape4 xs = model_node_shape(m, l->in);
        switch (l->kind) {
        case LAYER_CONV: case LAYER_BN: case LAYER_ACT: case LAYER_MAXPOOL: case LAYER_AVGPOOL:
        case LAYER_ADD: case LAYER_DROPOUT: case LAYER_SCALE: case LAYER_DROP_PATH:
            break;
        case LAYER_LINEAR:
            /* NHWC and NCHW flatten alike only without spatial extent */
            if (xs.h * xs.w != 1)
                return stk_errf(err, "cuda_net: linear layer %s reads a %dx%dx%d tensor; the CUDA "
                                "backend needs it pooled to 1x1 first", l->name, xs.c, xs.h, xs.w);
            break;
        default:
            return stk_errf(err, "cuda_net: layer %s #%d: kind %d is not in the CUDA backend yet",
                            l->name, li, (int)l->kind);
        }
    }
    return 0;
}

/* The optimizer's table: every trainable tensor, with its bf16 copy where it has one (the
 * step refreshes those; frozen weights are not in it and keep theirs). */
static int make_optim(CudaNet *net, StkErr *err) {
    const Model *m = net->m;
    CudaOptimSeg *segs = calloc((size_t)(m->nparams ? m->nparams : 1), sizeof *segs);
    if (!segs) return stk_errf(err, "cuda_net: out of host memory");
    int n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->param[i].trainable)
            segs[n++] = (CudaOptimSeg){m->param[i].offset, m->param[i].numel, -1, m->param[i].norm_or_bias};
    for (int li = 0, k = 0; lowp(net) && li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        if (!has_product(l) || !m->param[l->param0].trainable) continue;
        for (k = 0; k < n && segs[k].offset != m->param[l->param0].offset; k++) {}
        if (k < n) segs[k].lowp = (int64_t)net->lowp_off[li];
    }
    int rc = cuda_optim_table_init(&net->optab, segs, n, err);
    free(segs);
    return rc;
}

int cuda_net_init(CudaNet *net, const Model *m, int batch, const OptimConfig *opt,
                  const CudaNetOptions *o, StkErr *err) {
    memset(net, 0, sizeof *net);
    if (batch < 1) return stk_errf(err, "cuda_net: batch %d", batch);
    net->m = m;
    net->batch = batch;
    net->opt = *opt;
    if (o) net->o = *o;
    net->dt = dtype_of(net->o.precision);
    /* an inference net runs no backward: nothing below the logits is "trainable" */
    net->first_trainable = net->o.inference ? m->nlayers : vram_first_trainable(m);
    net->plan = cuda_net_plan(m, batch, opt, &net->o);
    if (check_layers(m, err) || allocate(net, err) || make_handles(net, err) ||
        cuda_net_make_layers(net, err) || (!net->o.inference && make_optim(net, err)) ||
        (net->dt == CUDA_F16 && !net->o.inference &&
         cuda_scaler_init(&net->scaler, net->o.loss_scale > 0 ? net->o.loss_scale : 65536.0f,
                          net->o.scale_interval > 0 ? net->o.scale_interval : 2000, err))) {
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
    cudaFree(net->params), cudaFree(net->grads), cudaFree(net->optim_state), cudaFree(net->lowp);
    cudaFree(net->acts), cudaFree(net->saved), cudaFree(net->scratch);
    cudaFree(net->workspace);
    cuda_optim_table_free(&net->optab);
    cuda_scaler_free(&net->scaler);
    cudaFreeHost(net->host_loss), cudaFreeHost(net->host_stage);
    for (int i = 0; net->prof_ev && i < 2 * (net->m->nlayers + 1); i++) cudaEventDestroy(net->prof_ev[i]);
    free(net->prof_ev), free(net->prof_ms);
    free(net->conv), free(net->bn), free(net->num_batches_tracked);
    free(net->saved_off), free(net->lowp_off), free(net->dact_set), free(net->dwconv), free(net->gemm);
    vram_nodes_free(&net->nodes);
    memset(net, 0, sizeof *net);
}

/* Index among the model's batch norms of layer li (for num_batches_tracked). */
static int bn_index(const Model *m, int li) {
    int k = 0;
    for (int i = 0; i < li; i++) k += m->layer[i].kind == LAYER_BN;
    return k;
}

static CudaLinear linear_of(const CudaNet *net, const ModelLayer *l) {
    return (CudaLinear){l->linear.in, l->linear.out, net->dt, net->o.precision == CUDA_PREC_TF32};
}

/* Dropout (elementwise) or stochastic depth (whole samples) in training; else a copy. */
static int drop(CudaNet *net, const ModelLayer *l, int li, int train, Shape4 xs,
                const void *x, void *y, StkErr *err) {
    size_t n = shape4_numel(xs);
    if (!train || l->p == 0) {
        CUDA_TRY(err, cudaMemcpyAsync(y, x, n * esize(net), cudaMemcpyDeviceToDevice, net->stream));
        return 0;
    }
    size_t run = l->kind == LAYER_DROP_PATH ? n / (size_t)xs.n : 1;
    return cuda_dropout_mask(net->dt, n, run, l->p, net->dev_key, (uint64_t)li, x, y, net->stream, err);
}

static int forward_layer(CudaNet *net, int li, int train, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    const ModelParam *p = &net->m->param[l->param0];
    const void *x = act(net, l->in);
    void *y = act(net, li + 1);
    float *sv = net->saved + net->saved_off[li];
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    cudaStream_t s = net->stream;
    CudaDtype dt = net->dt;
    switch (l->kind) {
    case LAYER_CONV:
        if (net->dwconv[li] ? cuda_dwconv_forward(&l->conv, dt, xs, ys, x, weight(net, li), y, s, err)
                            : cuda_net_conv_pass(net, li, CUDA_NET_GEMM_FWD, net->gemm[li] & CUDA_NET_GEMM_FWD,
                                             x, y, NULL, NULL, 0, NULL, err))
            return -1;
        return l->conv.bias ? cuda_bias_add(dt, rows(ys), ys.c, net->params + p[1].offset, y, s, err) : 0;
    case LAYER_BN: {
        int fa = net->nodes.fuse[li];
        if (fa != VRAM_NO_FUSE) y = act(net, li + 2); /* the activation's output */
        /* a frozen batch norm keeps its running statistics: eval mode, as cpu_net.c */
        if (!train || model_layer_frozen(net->m, li))
            return cuda_bn_forward_eval(&net->bn[li], fa, dt, rows(xs), x, y, net->part, s, err);
        return cuda_bn_forward_train(&net->bn[li], fa, dt, rows(xs), x, y, sv, sv + l->out.c,
                                     net->part, s, err);
    }
    case LAYER_ACT: return cuda_act_forward(l->act, dt, shape4_numel(xs), x, y, s, err);
    case LAYER_MAXPOOL: /* argmax only for a backward; an inference net has no saved arena */
        return cuda_maxpool_forward(&l->pool, dt, xs, ys, x, y, net->o.inference ? NULL : (int32_t *)sv,
                                    s, err);
    case LAYER_AVGPOOL: return cuda_avgpool_forward(dt, xs, x, y, s, err);
    case LAYER_LINEAR: {
        CudaLinear lin = linear_of(net, l);
        return cuda_linear_forward(&lin, net->blas, s, xs.n, x, weight(net, li),
                                   net->params + p[1].offset, y, err);
    }
    case LAYER_ADD:
        if (net->nodes.fuse[li] == VRAM_NO_FUSE) return cuda_add(dt, shape4_numel(ys), x, act(net, l->in2), y, s, err);
        return cuda_add_relu(dt, shape4_numel(ys), x, act(net, l->in2), act(net, li + 2), s, err);
    case LAYER_SCALE:
        return cuda_scale_forward(dt, xs.n, xs.h * xs.w, xs.c, x, act(net, l->in2), y, s, err);
    case LAYER_DROPOUT: case LAYER_DROP_PATH: return drop(net, l, li, train, xs, x, y, err);
    }
    return stk_errf(err, "layer %d: unknown kind", li);
}

/* Profiling: event i of the forward (phase 0) or backward (phase 1) sequence. */
static int mark(CudaNet *net, int phase, int i, StkErr *err) {
    if (net->prof_ev) CUDA_TRY(err, cudaEventRecord(net->prof_ev[phase * (net->m->nlayers + 1) + i], net->stream));
    return 0;
}

int cuda_net_trains(const CudaNet *net, const char *what, StkErr *err) {
    if (!net->o.inference) return 0;
    return stk_errf(err, "cuda_net: %s on a network made for inference only", what);
}

int cuda_net_forward_begin(CudaNet *net, int train, uint64_t dropout_key, StkErr *err) {
    if (!train) return 0;
    if (cuda_net_trains(net, "a training forward pass", err)) return -1;
    const Model *m = net->m;
    for (int li = 0; li < m->nlayers; li++) /* what the queued batch norms will count */
        if (m->layer[li].kind == LAYER_BN && !skipped(net, li) && !model_layer_frozen(m, li))
            net->num_batches_tracked[bn_index(m, li)]++;
    return cuda_set_u64(net->dev_key, dropout_key, net->stream, err);
}

int cuda_net_forward_queue(CudaNet *net, int train, StkErr *err) {
    if (train && cuda_net_trains(net, "a training forward pass", err)) return -1;
    for (int li = 0; li < net->m->nlayers; li++)
        if (mark(net, 0, li, err) || (!skipped(net, li) && forward_layer(net, li, train, err)))
            return stk_err_wrap(err, "forward %s #%d", net->m->layer[li].name, li);
    return mark(net, 0, net->m->nlayers, err);
}

int cuda_net_forward(CudaNet *net, int train, uint64_t dropout_key, StkErr *err) {
    return cuda_net_forward_begin(net, train, dropout_key, err) || cuda_net_forward_queue(net, train, err)
               ? -1 : 0;
}

int cuda_net_profile_start(CudaNet *net, StkErr *err) {
    int n = 2 * (net->m->nlayers + 1);
    net->prof_ev = calloc((size_t)n, sizeof *net->prof_ev);
    net->prof_ms = calloc((size_t)2 * net->m->nlayers, sizeof *net->prof_ms);
    if (!net->prof_ev || !net->prof_ms) return stk_errf(err, "cuda_net_profile_start: out of memory");
    for (int i = 0; i < n; i++) CUDA_TRY(err, cudaEventCreate(&net->prof_ev[i]));
    return 0;
}

int cuda_net_profile_read(CudaNet *net, StkErr *err) {
    int L = net->m->nlayers;
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    for (int li = 0; li < L; li++) {
        float f, b;
        CUDA_TRY(err, cudaEventElapsedTime(&f, net->prof_ev[li], net->prof_ev[li + 1]));
        /* backward runs layers from the last: event j precedes layer L - 1 - j */
        CUDA_TRY(err, cudaEventElapsedTime(&b, net->prof_ev[L + 1 + (L - 1 - li)],
                                           net->prof_ev[L + 1 + (L - li)]));
        net->prof_ms[li] += f;
        net->prof_ms[L + li] += b;
    }
    return 0;
}

/* As cpu_net.c: a node's first gradient is written in place, later ones go to scratch
 * and are added. */
static void *grad_target(CudaNet *net, int node) {
    return net->dact_set[node] ? net->scratch : dact(net, node);
}

/* Where the gradient for node goes, or NULL when nothing below needs it (node 0, or a
 * node at or under the first trainable layer). */
static void *grad_for(CudaNet *net, int node) {
    return node <= net->first_trainable ? NULL : grad_target(net, node);
}

static int grad_commit(CudaNet *net, int node, StkErr *err) {
    if (net->dact_set[node]) {
        void *d = dact(net, node);
        if (cuda_add(net->dt, shape4_numel(batched(net, node)), d, net->scratch, d, net->stream, err))
            return -1;
    }
    net->dact_set[node] = 1;
    return 0;
}

/* Weight gradient, bias gradient, input gradient: our depthwise kernels or cuDNN's. */
static int backward_conv(CudaNet *net, int li, const void *x, const void *dy, void *dx, int acc,
                         StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    int dw = net->dwconv[li];
    uint64_t dws = net->plan.dw_scratch / 4;
    if (model_layer_frozen(net->m, li)) goto data; /* its weights are constants */
    if ((dw ? cuda_dwconv_backward_filter(&l->conv, net->dt, xs, ys, x, dy, weight_grad(net, li),
                                          net->dw_scratch, dws, net->stream, err)
            : cuda_net_conv_pass(net, li, CUDA_NET_GEMM_FILTER, net->gemm[li] & CUDA_NET_GEMM_FILTER, x,
                             NULL, dy, NULL, 0, weight_grad(net, li), err)) ||
        weight_grad_done(net, li, err))
        return -1;
    if (l->conv.bias && cuda_colsum(net->dt, rows(ys), ys.c, dy,
                                    net->grads + net->m->param[l->param0 + 1].offset, net->part,
                                    net->stream, err))
        return -1;
data:
    if (!dx) return 0;
    return dw ? cuda_dwconv_backward_data(&l->conv, net->dt, xs, ys, dy, weight(net, li), dx,
                                          net->stream, err)
              : cuda_net_conv_pass(net, li, CUDA_NET_GEMM_DATA, net->gemm[li] & CUDA_NET_GEMM_DATA, x, NULL,
                               dy, dx, acc, NULL, err);
}

/* An add hands dy to an input: an aliased input's gradient already is dy's buffer
 * (vram_nodes.h), another gets it added or copied. */
static int add_to_input(CudaNet *net, int node, const void *dy, StkErr *err) {
    if (node <= net->first_trainable) return 0;
    if (net->nodes.alias[node]) {
        net->dact_set[node] = 1;
        return 0;
    }
    void *d = dact(net, node);
    size_t n = shape4_numel(batched(net, node));
    if (net->dact_set[node]) return cuda_add(net->dt, n, d, dy, d, net->stream, err);
    CUDA_TRY(err, cudaMemcpyAsync(d, dy, n * esize(net), cudaMemcpyDeviceToDevice, net->stream));
    net->dact_set[node] = 1;
    return 0;
}

/* Both inputs of an add get dy (a fused ReLU's gradient first, in place: dy's buffer is
 * the add's own output gradient); both of a scale get their own gradient. */
static int backward_two(CudaNet *net, int li, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    Shape4 xs = batched(net, l->in);
    cudaStream_t s = net->stream;
    if (l->kind == LAYER_ADD) {
        int fused = net->nodes.fuse[li] != VRAM_NO_FUSE;
        void *dy = dact(net, li + 1 + fused);
        if (fused && cuda_act_backward(CPU_ACT_RELU, net->dt, shape4_numel(xs), act(net, li + 2), dy,
                                       dy, s, err))
            return -1;
        return add_to_input(net, l->in, dy, err) || add_to_input(net, l->in2, dy, err) ? -1 : 0;
    }
    const void *dy = dact(net, li + 1), *x = bact(net, l->in), *sc = bact(net, l->in2);
    int hw = xs.h * xs.w;
    void *dx = grad_for(net, l->in), *d2 = grad_for(net, l->in2);
    /* one pass makes both, unless both would land in the one scratch buffer */
    if (dx && d2 && !(net->dact_set[l->in] && net->dact_set[l->in2]))
        return cuda_scale_backward(net->dt, xs.n, hw, xs.c, x, sc, dy, dx, d2, s, err) ||
               grad_commit(net, l->in, err) || grad_commit(net, l->in2, err) ? -1 : 0;
    if (dx && (cuda_scale_backward(net->dt, xs.n, hw, xs.c, x, sc, dy, dx, NULL, s, err) ||
               grad_commit(net, l->in, err)))
        return -1;
    d2 = grad_for(net, l->in2);
    if (!d2) return 0;
    if (cuda_scale_backward(net->dt, xs.n, hw, xs.c, x, sc, dy, NULL, d2, s, err)) return -1;
    return grad_commit(net, l->in2, err);
}

static int backward_layer(CudaNet *net, int li, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    const ModelParam *p = &net->m->param[l->param0];
    if (l->kind == LAYER_ADD || l->kind == LAYER_SCALE) return backward_two(net, li, err);
    const void *x = bact(net, l->in), *dy = dact(net, li + 1);
    Shape4 xs = batched(net, l->in), ys = batched(net, li + 1);
    float *sv = net->saved + net->saved_off[li];
    void *dx = grad_for(net, l->in);
    cudaStream_t s = net->stream;
    CudaDtype dt = net->dt;
    int frozen = model_layer_frozen(net->m, li), rc = 0;
    switch (l->kind) {
    case LAYER_CONV: {
        /* cuDNN adds a second gradient in place; grad_commit has nothing left to do */
        int acc = dx && !net->dwconv[li] && net->dact_set[l->in];
        rc = backward_conv(net, li, x, dy, acc ? dact(net, l->in) : dx, acc, err);
        if (acc) dx = NULL;
        break;
    }
    case LAYER_BN: {
        int fa = net->nodes.fuse[li];
        if (fa != VRAM_NO_FUSE) dy = dact(net, li + 2); /* the activation's output gradient */
        if (frozen) { /* eval mode in the forward: statistics are constants */
            if (dx) rc = cuda_bn_backward_eval(&net->bn[li], fa, dt, rows(xs), x, dy, dx, net->part, s, err);
            break;
        }
        rc = cuda_bn_backward_train(&net->bn[li], fa, dt, rows(xs), x, dy, sv, sv + l->out.c,
                                    dx, net->grads + p[0].offset,
                                    net->grads + p[1].offset, net->part, s, err);
        break;
    }
    case LAYER_ACT: if (dx) rc = cuda_act_backward(l->act, dt, shape4_numel(xs), x, dy, dx, s, err); break;
    case LAYER_MAXPOOL:
        if (dx) rc = cuda_maxpool_backward(&l->pool, dt, xs, ys, dy, (const int32_t *)sv, dx, s, err);
        break;
    case LAYER_AVGPOOL: /* adds into a gradient its input already has (SE: the scale's) */
        if (!dx) break;
        if (net->dact_set[l->in])
            return cuda_avgpool_backward(dt, xs, dy, dact(net, l->in), 1, s, err);
        rc = cuda_avgpool_backward(dt, xs, dy, dx, 0, s, err);
        break;
    case LAYER_LINEAR: {
        CudaLinear lin = linear_of(net, l);
        rc = cuda_linear_backward(&lin, net->blas, s, xs.n, x, weight(net, li), dy, dx, 0,
                                  frozen ? NULL : weight_grad(net, li),
                                  frozen ? NULL : net->grads + p[1].offset, net->part, err);
        if (!rc && !frozen) rc = weight_grad_done(net, li, err);
        break;
    }
    case LAYER_DROPOUT: case LAYER_DROP_PATH: if (dx) rc = drop(net, l, li, 1, xs, dy, dx, err); break;
    default: return stk_errf(err, "layer %d: unknown kind", li);
    }
    if (!rc && dx) rc = grad_commit(net, l->in, err);
    return rc;
}

int cuda_net_backward(CudaNet *net, const int32_t *labels, double eps, StkErr *err) {
    CUDA_TRY(err, cudaMemcpyAsync(net->labels, labels, sizeof *labels * (size_t)net->batch,
                                  cudaMemcpyHostToDevice, net->stream));
    return cuda_net_backward_dev(net, net->labels, eps, err);
}

/* A recompute plan's batch norm + activation output that layer li's backward is the
 * first to read, made again from the norm's input and saved statistics (vram_nodes.h). */
static int redo(CudaNet *net, int li, StkErr *err) {
    int k = net->nodes.redo[li];
    if (k < 0) return 0;
    const ModelLayer *bn = &net->m->layer[k - 2];
    float *sv = net->saved + net->saved_off[k - 2];
    if (cuda_bn_recompute(&net->bn[k - 2], net->nodes.fuse[k - 2], net->dt, rows(batched(net, bn->in)),
                          act(net, bn->in), bact(net, k), sv, sv + bn->out.c, net->part, net->stream, err))
        return stk_err_wrap(err, "recompute %s #%d", bn->name, k - 2);
    return 0;
}

int cuda_net_backward_dev(CudaNet *net, const int32_t *d_labels, double eps, StkErr *err) {
    const Model *m = net->m;
    cudaStream_t s = net->stream;
    if (cuda_net_trains(net, "backward", err)) return -1;
    memset(net->dact_set, 0, (size_t)m->nlayers + 1);
    if (cuda_ce_loss(net->dt, net->batch, m->num_classes, act(net, m->nlayers), d_labels,
                     (float)eps, net->scaler.dev ? &net->scaler.dev->scale : NULL, net->row_loss,
                     dact(net, m->nlayers), s, err))
        return -1;
    net->dact_set[m->nlayers] = 1;
    for (int li = m->nlayers - 1; li >= 0; li--) {
        if (mark(net, 1, m->nlayers - 1 - li, err)) return -1;
        /* below the first trainable layer nothing needs a gradient */
        if (li < net->first_trainable || skipped(net, li)) continue;
        if (redo(net, li, err) || backward_layer(net, li, err))
            return stk_err_wrap(err, "backward %s #%d", m->layer[li].name, li);
        if (net->grads_ready && net->grads_ready(net->grads_ready_ctx, li, err)) return -1;
    }
    return mark(net, 1, m->nlayers, err);
}

/* The row losses stay on the device until asked for: the training loop copies them per
 * input slot itself (cuda_train.c), so a backward makes no copy of its own. */
int cuda_net_loss(CudaNet *net, double *loss, StkErr *err) {
    CUDA_TRY(err, cudaMemcpyAsync(net->host_loss, net->row_loss, sizeof(float) * (size_t)net->batch,
                                  cudaMemcpyDeviceToHost, net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    double sum = 0;
    for (int i = 0; i < net->batch; i++) sum += net->host_loss[i];
    *loss = sum / net->batch;
    return 0;
}

int cuda_net_step(CudaNet *net, double lr, double wd, double norm_wd, StkErr *err) {
    if (cuda_net_trains(net, "an optimizer step", err)) return -1;
    net->steps++;
    const CudaScalerState *dyn = net->scaler.dev;
    if (dyn && (cuda_scaler_unscale(&net->scaler, net->m->trainable_floats, net->grads, net->stream, err) ||
                cuda_scaler_prepare(&net->scaler, lr, net->opt.beta1, net->opt.beta2, net->stream, err)))
        return stk_err_wrap(err, "cuda_net_step");
    if (cuda_optim_step(&net->optab, &net->opt, net->params, net->grads, net->optim_state,
                        lowp(net) ? net->lowp : NULL, net->dt, dyn, lr, wd, norm_wd, net->steps,
                        net->steps == 1, net->stream, err))
        return stk_err_wrap(err, "cuda_net_step");
    return 0;
}

int cuda_net_loss_scale(CudaNet *net, float *scale, uint64_t *skipped, StkErr *err) {
    if (!net->scaler.dev) return 1;
    return cuda_scaler_read(&net->scaler, net->stream, scale, skipped, err);
}
