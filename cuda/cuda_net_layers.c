/* cuda_net_layers.c: the CUDA net's per-layer set-up (see cuda_net_priv.h): cuDNN's
 * algorithm and layout choice per convolution (cuda_conv.h), cuBLAS or cuDNN per pass of a
 * 1x1 convolution, the workspace fitted to the choices, batch-norm views. */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_dwconv.h"
#include "cuda_linear.h"
#include "cuda_net_priv.h"
#include "model_freeze.h"
#include "vram_plan.h"

/* A 1x1, stride-1, unpadded, ungrouped convolution over NHWC is a matrix product. */
static int pointwise(const ConvDesc *d) {
    return d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 &&
           d->pad_w == 0 && d->groups == 1;
}

static CudaLinear conv_as_linear(const CudaNet *net, const ConvDesc *d) {
    return (CudaLinear){d->in_c, d->out_c, net->dt, net->o.precision == CUDA_PREC_TF32};
}

int cuda_net_conv_pass(CudaNet *net, int li, int pass, int gemm, const void *x, void *y,
                       const void *dy, void *dx, int acc, void *dw, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    CudaLinear lin = conv_as_linear(net, &l->conv);
    int n = (int)rows(batched(net, l->in));
    const void *w = weight(net, li);
    if (pass == CUDA_NET_GEMM_FWD)
        return gemm ? cuda_linear_forward(&lin, net->blas, net->stream, n, x, w, NULL, y, err)
                    : cuda_conv_forward(&net->conv[li], net->dnn, x, w, y, net->workspace, err);
    if (pass == CUDA_NET_GEMM_DATA)
        return gemm ? cuda_linear_backward(&lin, net->blas, net->stream, n, x, w, dy, dx, acc, NULL,
                                           NULL, NULL, err)
                    : cuda_conv_backward_data(&net->conv[li], net->dnn, dy, w, dx, acc, net->workspace, err);
    return gemm ? cuda_linear_backward(&lin, net->blas, net->stream, n, x, w, dy, NULL, 0, dw, NULL,
                                       NULL, err)
                : cuda_conv_backward_filter(&net->conv[li], net->dnn, x, dy, dw, net->workspace, err);
}

/* Milliseconds of one pass, the mean of 3 runs after a warm-up one. */
static int time_pass(CudaNet *net, int li, int pass, int gemm, float *ms, StkErr *err) {
    const ModelLayer *l = &net->m->layer[li];
    void *x = act(net, l->in), *y = act(net, li + 1), *dy = dact(net, li + 1), *dx = dact(net, l->in);
    cudaEvent_t e[2];
    CUDA_TRY(err, cudaEventCreate(&e[0]));
    CUDA_TRY(err, cudaEventCreate(&e[1]));
    int rc = 0;
    for (int r = 0; r < 4 && !rc; r++) {
        if (r == 1 && cudaEventRecord(e[0], net->stream) != cudaSuccess)
            rc = stk_errf(err, "cuda_net: cudaEventRecord while timing %s", l->name);
        rc = rc ? rc : cuda_net_conv_pass(net, li, pass, gemm, x, y, dy ? dy : y, dx ? dx : x, 0,
                                 weight_grad(net, li), err);
    }
    cudaError_t st = cudaSuccess;
    if (!rc && ((st = cudaEventRecord(e[1], net->stream)) != cudaSuccess ||
                (st = cudaEventSynchronize(e[1])) != cudaSuccess ||
                (st = cudaEventElapsedTime(ms, e[0], e[1])) != cudaSuccess))
        rc = stk_errf(err, "cuda_net: timing layer %s: %s", l->name, cudaGetErrorString(st));
    cudaEventDestroy(e[0]), cudaEventDestroy(e[1]);
    *ms /= 3;
    return rc;
}

/* For a 1x1 convolution: each pass it needs on whichever of cuBLAS and cuDNN ran it
 * faster here (cuDNN's legacy kernels lag cuBLAS on the small-channel products of the
 * MobileNets, and the other way round elsewhere). */
static int choose_gemm(CudaNet *net, int li, int need_dx, int need_dw, StkErr *err) {
    static const int passes[3] = {CUDA_NET_GEMM_FWD, CUDA_NET_GEMM_DATA, CUDA_NET_GEMM_FILTER};
    for (int i = 0; i < 3; i++) {
        if ((passes[i] == CUDA_NET_GEMM_DATA && !need_dx) || (passes[i] == CUDA_NET_GEMM_FILTER && !need_dw))
            continue;
        float g, d;
        if (time_pass(net, li, passes[i], 1, &g, err) || time_pass(net, li, passes[i], 0, &d, err))
            return stk_err_wrap(err, "layer %s", net->m->layer[li].name);
        if (g < d) net->gemm[li] |= (uint8_t)passes[i];
    }
    return 0;
}

int cuda_net_make_layers(CudaNet *net, StkErr *err) {
    const Model *m = net->m;
    size_t need = 0;
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        const ModelParam *p = &m->param[l->param0];
        if (l->kind == LAYER_CONV && cuda_dwconv_supported(&l->conv) != vram_conv_depthwise(&l->conv))
            return stk_errf(err, "cuda_net: layer %s: the memory plan's depthwise rule disagrees "
                            "with the kernels'", l->name);
        if (l->kind == LAYER_CONV && cuda_dwconv_supported(&l->conv)) {
            net->dwconv[li] = 1;
        } else if (l->kind == LAYER_CONV) {
            int frozen = model_layer_frozen(m, li) || net->o.inference; /* no weight gradient */
            CudaConvScratch sc = {act(net, l->in), weight(net, li), act(net, li + 1),
                                  dact(net, l->in), frozen ? NULL : weight_grad(net, li),
                                  net->workspace, net->workspace_bytes};
            if (cuda_conv_init(&net->conv[li], net->dnn, &l->conv, net->dt, batched(net, l->in),
                               net->o.precision == CUDA_PREC_FP32, l->in > net->first_trainable,
                               !frozen, net->o.conv_layout, &sc, err))
                return stk_err_wrap(err, "layer %s", l->name);
            const CudaConv *cv = &net->conv[li];
            size_t w = cv->ws_fwd > cv->ws_bwd_data ? cv->ws_fwd : cv->ws_bwd_data;
            w = w > cv->ws_bwd_filter ? w : cv->ws_bwd_filter;
            need = w > need ? w : need;
        }
        if (l->kind == LAYER_BN)
            net->bn[li] = (CudaBn){.c = l->out.c, .eps = (float)l->eps, .momentum = (float)l->momentum,
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
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        if (l->kind == LAYER_CONV && pointwise(&l->conv) &&
            choose_gemm(net, li, l->in > net->first_trainable,
                        !model_layer_frozen(m, li) && !net->o.inference, err))
            return -1;
    }
    return 0;
}

