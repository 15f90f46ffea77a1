/* vram_nodes.h: where the CUDA backend keeps each node's activation and each node's
 * gradient: one pool, shared by lifetime, laid out once per model and batch on the host
 * (so --plan prints what cuda_net allocates, and a test can check the layout without a
 * GPU).
 *
 * Time runs over one training step: layer li's forward is time li, the loss time L
 * (nlayers), layer li's backward time 2L - li. A buffer lives from the time its first
 * writer runs to the time its last reader runs:
 *   - a node's activation is born with its producer and dies after its last forward
 *     reader, or after the last backward that reads it (convolution and linear weight
 *     gradients, batch norm, activations and the SE scale read their inputs; add,
 *     pooling and dropout do not); the input and the logits live through the step;
 *   - a node's gradient is born at the backward of its last reader and dies after the
 *     backward of its producer.
 * Buffers are placed first-fit at the lowest free offset in time order; a buffer dying at
 * time t is freed after the buffers born at t are placed, so no op's output overlaps its
 * input. So a layer's input that backward does not need (a residual branch's batch-norm
 * output, say) is reused during the forward, and gradients reuse activations whose
 * backward is done: PyTorch's autograd keeps what it saves in the same way.
 *
 * Fusion decided here, because it changes what is stored: a batch norm whose output's
 * only reader is an activation, and a residual add whose output's only reader is a ReLU,
 * run that activation inside their own kernels (fuse[li]): layer li writes node li + 2,
 * node li + 1 is never stored and layer li + 1 is skipped. For the add, the ReLU's
 * backward works from its output (y > 0), so the add's sum need not be kept.
 *
 * Gradient aliases: an add's backward hands its output gradient to its inputs; where that
 * is safe the inputs' gradients are the same buffer (alias[node] = 1) and nothing is
 * copied. Input a (in) aliases when the add is its only reader; input b (in2) when its
 * other readers all run their backward after a's producer has read the buffer (they add
 * into it).
 *
 * Recompute (vram_nodes_plan_recompute): the output of a trained batch norm with its
 * activation fused in (node li + 2) is not kept for backward. Its forward buffer dies
 * after its last forward reader; before the backward of its last reader (the first to
 * run backward, redo[]) cuda_net recomputes it from the batch norm's input, which that
 * norm's own backward keeps anyway, and the saved statistics, into a second buffer
 * (react[]) that lives until its first reader's backward. The same arithmetic as the
 * forward, so the same values. Of a conv-BN-act-conv chain this keeps one tensor, not
 * two, for one extra elementwise pass per batch norm in backward. */
#ifndef VRAM_NODES_H
#define VRAM_NODES_H

#include <stdint.h>

#include "model.h"
#include "stk_err.h"

#define VRAM_NODE_ALIGN 64 /* elements: every buffer starts 128 bytes aligned in bf16 */
#define VRAM_NO_FUSE (-1)

typedef struct VramNodes {
    int nlayers;
    int first_trainable; /* the lowest layer with trainable parameters (nlayers if none) */
    int *fuse;           /* [nlayers]: the CpuActKind run inside layer li, or VRAM_NO_FUSE */
    int64_t *act;        /* [nlayers + 1]: elements into the pool, -1: never stored */
    int64_t *dact;       /* [nlayers + 1]: elements into the pool, -1: no gradient */
    uint8_t *alias;      /* [nlayers + 1]: 1 if the node's gradient is its reading add's
                            output gradient (the add copies nothing to it) */
    uint64_t pool;       /* elements of the pool */
    uint64_t kept;       /* elements of activations alive at the loss (saved for backward) */
    int64_t *react;      /* [nlayers + 1]: a recomputed node's backward buffer (elements
                            into the pool), else -1 */
    int *redo;           /* [nlayers]: the node to recompute before layer li's backward,
                            else -1 (its producer, the fused batch norm, is redo - 2) */
    uint64_t accum;      /* elements of the largest node whose gradient has a second writer
                            other than a cuDNN convolution or the global average pool (those
                            add in place): it lands in a scratch buffer this big first */
} VramNodes;

/* Lays out m at batch for a training step. Returns 0, or -1 + err (out of host memory). */
int vram_nodes_plan(const Model *m, int batch, VramNodes *p, StkErr *err);

/* The same for forward passes only (an evaluator's network, CudaNetOptions.inference): no
 * backward runs, so first_trainable is nlayers, no node has a gradient, and every
 * activation but the input and the logits dies after its last forward reader: the pool
 * holds about the two or three largest nodes alive at once, not the step's saved set. */
int vram_nodes_plan_inference(const Model *m, int batch, VramNodes *p, StkErr *err);
/* A training step with the batch-norm + activation outputs recomputed (see above). */
int vram_nodes_plan_recompute(const Model *m, int batch, VramNodes *p, StkErr *err);
void vram_nodes_free(VramNodes *p);

/* 1 if layer li runs inside layer li - 1 (an activation fused into it). */
int vram_nodes_skipped(const VramNodes *p, int li);

/* The host rule for which convolutions run on the CUDA backend's depthwise kernels (the
 * rest are cuDNN's, whose backward-data adds a second gradient in place); cuda_net_init
 * checks it agrees with cuda_dwconv_supported. */
int vram_conv_depthwise(const ConvDesc *d);

/* The lowest layer with trainable parameters (nlayers when everything is frozen). */
int vram_first_trainable(const Model *m);

#endif
