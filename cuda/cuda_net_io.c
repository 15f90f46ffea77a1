/* cuda_net_io.c: the CUDA net's tensors to and from the host in the CPU backend's layouts
 * (PyTorch's OIHW weights, NCHW input, float32), so checkpoints, --resume and tests see
 * one format whatever the backend (see cuda_net.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "cuda_net.h"

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

/* Converts the first n floats of a parameter arena image (host) between layouts into
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
    if (cuda_net_refresh_weights(net, err)) return -1;
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
    if (cuda_net_trains(net, "cuda_net_get_grads", err)) return -1;
    return get_arena(net, net->grads, net->m->trainable_floats, host, err);
}

int cuda_net_set_input_nchw(CudaNet *net, const float *host, StkErr *err) {
    Shape4 s = net->m->input;
    s.n = net->batch;
    size_t hw = (size_t)s.h * s.w;
    uint16_t *half = (uint16_t *)net->host_stage;
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (size_t i = 0; i < hw; i++) {
                size_t to = ((size_t)n * hw + i) * s.c + c;
                float v = host[((size_t)n * s.c + c) * hw + i];
                if (net->dt != CUDA_F32) half[to] = cuda_f32_to_half(net->dt, v);
                else net->host_stage[to] = v;
            }
    CUDA_TRY(err, cudaMemcpyAsync(cuda_net_input(net), net->host_stage, shape4_numel(s) * cuda_dtype_size(net->dt),
                                  cudaMemcpyHostToDevice, net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    return 0;
}

int cuda_net_get_logits(CudaNet *net, float *host, StkErr *err) {
    size_t n = (size_t)net->batch * net->m->num_classes;
    CUDA_TRY(err, cudaMemcpyAsync(net->host_stage, cuda_net_node(net, net->m->nlayers), n * cuda_dtype_size(net->dt),
                                  cudaMemcpyDeviceToHost, net->stream));
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    const uint16_t *half = (const uint16_t *)net->host_stage;
    for (size_t i = 0; i < n; i++)
        host[i] = net->dt != CUDA_F32 ? cuda_half_to_f32(net->dt, half[i]) : net->host_stage[i];
    return 0;
}

/* The optimizer state in the host's layout: per trainable tensor, `per` blocks of its
 * size (momentum; or AdamW's exp_avg then exp_avg_sq), convolution weights' blocks
 * transposed like the weights themselves. */
static void optim_layout(const CudaNet *net, const float *src, float *dst, int to_krsc) {
    const Model *m = net->m;
    int per = optim_state_per_element(&net->opt);
    memcpy(dst, src, 4 * m->trainable_floats * (uint64_t)per);
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        const ModelParam *w = &m->param[l->param0];
        if (l->kind != LAYER_CONV || !w->trainable) continue;
        for (int b = 0; b < per; b++) {
            uint64_t o = w->offset * (uint64_t)per + (uint64_t)b * w->numel;
            conv_weight_layout(&l->conv, src + o, dst + o, to_krsc);
        }
    }
}

int cuda_net_set_optim(CudaNet *net, const float *host, StkErr *err) {
    if (cuda_net_trains(net, "cuda_net_set_optim", err)) return -1;
    uint64_t n = net->m->trainable_floats * (uint64_t)optim_state_per_element(&net->opt);
    if (!n) return 0;
    float *stage = malloc(4 * n);
    if (!stage) return stk_errf(err, "cuda_net_set_optim: out of host memory");
    optim_layout(net, host, stage, 1);
    cudaError_t st = cudaMemcpy(net->optim_state, stage, 4 * n, cudaMemcpyHostToDevice);
    free(stage);
    if (st != cudaSuccess) return stk_errf(err, "cuda_net_set_optim: cudaMemcpy: %s", cudaGetErrorString(st));
    return 0;
}

int cuda_net_get_raw(CudaNet *net, float *params, float *optim, StkErr *err) {
    CUDA_TRY(err, cudaMemcpyAsync(params, net->params, 4 * net->m->total_floats, cudaMemcpyDeviceToHost,
                                  net->stream));
    uint64_t n = net->m->trainable_floats * (uint64_t)optim_state_per_element(&net->opt);
    if (optim && n) {
        if (cuda_net_trains(net, "cuda_net_get_raw", err)) return -1;
        CUDA_TRY(err, cudaMemcpyAsync(optim, net->optim_state, 4 * n, cudaMemcpyDeviceToHost, net->stream));
    }
    CUDA_TRY(err, cudaStreamSynchronize(net->stream));
    return 0;
}

void cuda_net_raw_to_host(const CudaNet *net, const float *raw_params, const float *raw_optim,
                          float *params, float *optim) {
    arena_layout(net->m, raw_params, params, net->m->total_floats, 0);
    if (raw_optim && optim && net->m->trainable_floats * (uint64_t)optim_state_per_element(&net->opt) != 0)
        optim_layout(net, raw_optim, optim, 0);
}

int cuda_net_get_optim(CudaNet *net, float *host, StkErr *err) {
    if (cuda_net_trains(net, "cuda_net_get_optim", err)) return -1;
    uint64_t n = net->m->trainable_floats * (uint64_t)optim_state_per_element(&net->opt);
    if (!n) return 0;
    CUDA_TRY(err, cudaStreamSynchronize(net->stream)); /* before the stage: no leak on error */
    float *stage = malloc(4 * n);
    if (!stage) return stk_errf(err, "cuda_net_get_optim: out of host memory");
    cudaError_t st = cudaMemcpy(stage, net->optim_state, 4 * n, cudaMemcpyDeviceToHost);
    if (st == cudaSuccess) optim_layout(net, stage, host, 0);
    free(stage);
    if (st != cudaSuccess) return stk_errf(err, "cuda_net_get_optim: cudaMemcpy: %s", cudaGetErrorString(st));
    return 0;
}
