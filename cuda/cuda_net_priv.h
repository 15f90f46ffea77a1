/* cuda_net_priv.h: what cuda_net.c and cuda_net_layers.c share inside the CUDA backend:
 * views of a CudaNet's arenas, and the layer set-up. Not for callers of cuda_net.h. */
#ifndef CUDA_NET_PRIV_H
#define CUDA_NET_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "cuda_net.h"

/* Layers whose weight (their first parameter) feeds a cuDNN or cuBLAS product. */
static inline int has_product(const ModelLayer *l) { return l->kind == LAYER_CONV || l->kind == LAYER_LINEAR; }

static inline size_t esize(const CudaNet *net) { return cuda_dtype_size(net->dt); }
static inline void *in_pool(CudaNet *net, int64_t off) {
    return off < 0 ? NULL : (char *)net->acts + (uint64_t)off * esize(net);
}
static inline void *act(CudaNet *net, int node) { return in_pool(net, net->nodes.act[node]); }
static inline void *dact(CudaNet *net, int node) { return in_pool(net, net->nodes.dact[node]); }
/* A node as a backward reads it: a recomputed one's second buffer (vram_nodes.h). */
static inline void *bact(CudaNet *net, int node) {
    int64_t r = net->nodes.react[node];
    return r >= 0 ? in_pool(net, r) : act(net, node);
}

static inline int lowp(const CudaNet *net) { return net->dt != CUDA_F32; }

static inline Shape4 batched(const CudaNet *net, int node) {
    Shape4 s = model_node_shape(net->m, node);
    s.n = net->batch;
    return s;
}

/* Rows of a node's NHWC matrix: n * h * w. */
static inline size_t rows(Shape4 s) { return (size_t)s.n * s.h * s.w; }

/* The weight a product reads (the 16-bit copy in bf16/fp16) and where its gradient lands. */
static inline void *weight(CudaNet *net, int li) {
    const ModelLayer *l = &net->m->layer[li];
    if (lowp(net)) return (uint16_t *)net->lowp + net->lowp_off[li];
    return net->params + net->m->param[l->param0].offset;
}
static inline void *weight_grad(CudaNet *net, int li) {
    if (net->o.inference) return NULL;
    if (lowp(net)) return net->lowp_grad;
    return net->grads + net->m->param[net->m->layer[li].param0].offset;
}

/* One pass of a dense convolution on cuDNN, or of a 1x1 one on cuBLAS (gemm); pass is a
 * CUDA_NET_GEMM_* bit. 0 or -1 + err. */
int cuda_net_conv_pass(CudaNet *net, int li, int pass, int gemm, const void *x, void *y,
                       const void *dy, void *dx, int acc, void *dw, StkErr *err);

/* Convolution algorithms (measured on the arenas' own buffers), then the workspace shrunk
 * to the largest choice and, for 1x1 convolutions, cuBLAS or cuDNN per pass by timing;
 * batch-norm views into the parameter arena. 0 or -1 + err. */
int cuda_net_make_layers(CudaNet *net, StkErr *err);

#endif
