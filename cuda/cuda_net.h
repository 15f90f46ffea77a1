/* cuda_net.h: a Model run by the CUDA backend: the GPU twin of trainer/cpu_net.h, with
 * the same memory plan (one device arena per kind of memory, sized once for a batch),
 * forward, backward and optimizer step, and the same numerics within float tolerance.
 *
 * Layout on the device: activations NHWC (cuDNN's fast layout) in the precision's dtype;
 * parameters float32 in the model's table order and offsets (the master copy the
 * optimizer updates), but convolution weights as KRSC (out_c, kh, kw, in_c/groups)
 * instead of PyTorch's OIHW; cuda_net_set_params / get_params / get_grads convert, so
 * what the host sees (checkpoints, tests) is always PyTorch's layout and float32. In
 * bfloat16, convolution and linear weights also have a bfloat16 copy (refreshed after
 * every step) that the products read, and their gradients arrive in bfloat16 and are
 * widened into the float32 gradient arena: PyTorch's autocast, in arenas.
 * All work is queued on net->stream; nothing is allocated after cuda_net_init; the host
 * waits only where a function says so. */
#ifndef CUDA_NET_H
#define CUDA_NET_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "cuda_bn.h"
#include "cuda_conv.h"
#include "cuda_optim.h"
#include "cuda_scaler.h"
#include "model.h"
#include "optim.h"
#include "vram_nodes.h"

/* Bytes of each device arena for a model and batch: the plan. */
typedef struct CudaNetPlan {
    uint64_t params, grads, optim, lowp, acts, saved, scratch, workspace, total;
    uint64_t acts_kept;       /* bytes of acts alive at the loss */
    uint64_t dw_scratch;      /* bytes: depthwise backward-filter partials (in scratch) */
} CudaNetPlan;

/* What the products compute in. */
typedef enum CudaPrecision {
    CUDA_PREC_FP32 = 0, /* float32 throughout, no TF32 (what the CPU checks need) */
    CUDA_PREC_TF32 = 1, /* float32 storage, TF32 tensor cores in convolutions and linear
                         * layers (PyTorch's default for convolutions) */
    CUDA_PREC_BF16 = 2, /* bfloat16 activations and weights copies, float32 master
                         * weights, statistics and accumulation (PyTorch's bf16 autocast) */
    CUDA_PREC_FP16 = 3, /* as bf16 in IEEE half, with dynamic loss scaling (cuda_scaler.h):
                         * PyTorch's fp16 autocast + GradScaler */
} CudaPrecision;

typedef struct CudaNetOptions {
    CudaPrecision precision;
    size_t workspace_limit; /* bytes cuDNN may use per convolution (0: 256 MiB) */
    float loss_scale;       /* fp16: the first loss scale (0: 65536, GradScaler's) */
    int scale_interval;     /* fp16: good steps before the scale doubles (0: 2000) */
    int high_priority;      /* 1: the compute stream at the device's highest priority (a
                             * trainer sharing its GPU with an evaluator goes first) */
    int inference;          /* 1: forward passes in eval mode only (an evaluator's network):
                             * the arenas are vram_arenas_inference's (no gradients,
                             * optimizer state or saved state; activations die after their
                             * last forward reader), cuDNN chooses forward algorithms only,
                             * and backward, step and the gradient and optimizer copies fail */
    CudaConvLayout conv_layout; /* float32 convolutions: AUTO (measured per layer), or forced
                                 * NHWC / NCHW (cuda_conv.h; tests) */
    int recompute;          /* 1: batch norm + activation outputs are recomputed in backward,
                             * not kept (vram_nodes_plan_recompute: resnet18's kept
                             * activations -17%, the MobileNets' and EfficientNets' -40%) */
    int eager;              /* 1: cuda_train_step never captures its pass into a CUDA graph
                             * (--cuda-graphs off); 0: it does after warm-up (cuda_train.h) */
} CudaNetOptions;

#define CUDA_NET_GEMM_FWD 1
#define CUDA_NET_GEMM_DATA 2
#define CUDA_NET_GEMM_FILTER 4

typedef struct CudaNet {
    const Model *m;           /* not owned */
    int batch;
    OptimConfig opt;
    CudaNetOptions o;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    CudaDtype dt;             /* activations' element type */
    CudaConv *conv;           /* [nlayers], LAYER_CONV entries */
    CudaBn *bn;               /* [nlayers], LAYER_BN entries (device views into params) */
    float *params, *grads, *optim_state;     /* device arenas, float32 */
    void *lowp;               /* bfloat16: weight copies, then one weight-gradient slot */
    uint64_t *lowp_off;       /* [nlayers] elements into lowp, per conv/linear layer */
    void *lowp_grad;          /* bfloat16: the slot a layer's weight gradient lands in */
    void *acts;               /* device: the node pool (nodes), outputs and gradients by
                                 lifetime, dtype dt */
    VramNodes nodes;          /* where each node's output and gradient are, what is fused */
    float *saved;             /* device: per-layer saved state (float32 / int32) */
    void *scratch;            /* device: one node-sized buffer of dtype dt */
    float *part;              /* device: reduction scratch (cuda_colsum_scratch) */
    void *workspace;          /* device: cuDNN workspace, the largest any pass chose */
    float *dw_scratch;        /* device: depthwise backward-filter partials (cuda_dwconv) */
    uint8_t *dwconv;          /* [nlayers]: 1 for convolutions run by our depthwise kernels
                                 (cuDNN's legacy API is far from bandwidth on them) */
    uint8_t *gemm;            /* [nlayers]: for a 1x1 convolution, the passes cuBLAS runs
                                 because it was faster there (CUDA_NET_GEMM_* bits) */
    size_t workspace_bytes;
    int32_t *labels;          /* device [batch] */
    uint64_t *dev_key;        /* device: the dropout key of the training pass queued last
                                 (cuda_net_forward_begin writes it, the masks read it when
                                 they run: a captured graph replays with each step's key) */
    float *row_loss;          /* device [batch] */
    float *host_loss;         /* pinned host [batch]: row losses, copied by cuda_net_loss */
    float *host_stage;        /* pinned host staging for conversions, biggest tensor */
    int64_t *num_batches_tracked; /* host [nbn] */
    uint64_t *saved_off;
    uint8_t *dact_set;
    int first_trainable;      /* the lowest layer with trainable parameters: backward stops
                                 there, and frozen layers below it get no gradient at all */
    uint64_t steps;
    CudaOptimTable optab;     /* every trainable tensor, for the one-launch optimizer step */
    CudaScaler scaler;        /* fp16: the dynamic loss scale (dev NULL otherwise) */
    CudaNetPlan plan;
    cudaEvent_t *prof_ev;     /* profiling on: [2 * (nlayers + 1)] events, forward then
                                 backward, one before each layer and one after the last */
    double *prof_ms;          /* [2 * nlayers]: accumulated ms per layer, forward then backward */
    /* Data parallel (cuda_ddp.h): when set, called right after each layer's backward is
       queued (its parameter gradients are then complete on net->stream), from the last
       layer down; a non-zero return fails the backward. NULL: nothing is called. */
    int (*grads_ready)(void *ctx, int layer, StkErr *err);
    void *grads_ready_ctx;
} CudaNet;

/* Sizes the arenas for m at batch without touching the GPU (workspace: the limit). */
CudaNetPlan cuda_net_plan(const Model *m, int batch, const OptimConfig *opt,
                          const CudaNetOptions *o);

/* Plans and allocates every arena on the current device, makes the stream, cuDNN and
 * cuBLAS handles, and chooses each convolution's algorithms (cudnnFind: this runs
 * them, taking a few seconds on a large model). Parameters start zeroed. Fails with the
 * failing call named (including out of memory, with the plan's total), or on a layer
 * kind the CUDA backend does not have yet. */
int cuda_net_init(CudaNet *net, const Model *m, int batch, const OptimConfig *opt,
                  const CudaNetOptions *o, StkErr *err);
void cuda_net_free(CudaNet *net);

/* 0 when net trains; on an inference net (CudaNetOptions.inference) -1 + err saying that
 * `what` (a backward, a step, a gradient copy) needs a training network. */
int cuda_net_trains(const CudaNet *net, const char *what, StkErr *err);

/* The input node's device buffer: batch x h x w x c of net->dt, NHWC
 * (cuda_input_normalize writes it from a uint8 batch). */
void *cuda_net_input(CudaNet *net);

/* A node's output on the device (NULL for a node never stored: the output of a layer
 * whose activation is fused into it). Valid for what the node plan keeps alive: the input
 * and the logits always; others only during the step (vram_nodes.h). */
void *cuda_net_node(CudaNet *net, int node);

/* Runs the model on the input (an inference net: train must be 0); train selects batch statistics (and updates the running
 * ones) and dropout (masks as the CPU backend's for the same key; the backward after it
 * uses the same masks). The logits stay on the device (cuda_net_get_logits). */
int cuda_net_forward(CudaNet *net, int train, uint64_t dropout_key, StkErr *err);

/* cuda_net_forward in its two halves, for a caller that captures the second into a CUDA
 * graph (cuda_train.c) and replays it: _begin does what must happen anew for every
 * training pass (queues the dropout key into net->dev_key, counts num_batches_tracked on
 * the host; nothing when train is 0), _queue queues the layers' kernels, which read only
 * device memory and the net's fixed pointers. */
int cuda_net_forward_begin(CudaNet *net, int train, uint64_t dropout_key, StkErr *err);
int cuda_net_forward_queue(CudaNet *net, int train, StkErr *err);

/* Cross-entropy of the last forward against host labels (copied to the device),
 * gradients of every parameter (overwritten). Does not wait: cuda_net_loss does. A
 * backward consumes its forward (gradients reuse the activations' memory): run the
 * forward again before another backward. */
int cuda_net_backward(CudaNet *net, const int32_t *labels, double eps, StkErr *err);

/* The same with the labels already on the device (queued after their copy). */
int cuda_net_backward_dev(CudaNet *net, const int32_t *d_labels, double eps, StkErr *err);

/* Waits for the stream and gives the mean loss of the last backward. */
int cuda_net_loss(CudaNet *net, double *loss, StkErr *err);

/* One optimizer step over every trainable tensor (as cpu_net_step). In fp16 the loss
 * scaler first unscales the gradients and the device skips the step when one is not
 * finite (cuda_scaler.h); net->steps counts the steps asked for either way. */
int cuda_net_step(CudaNet *net, double lr, double wd, double norm_wd, StkErr *err);

/* fp16: the loss scale now and the steps skipped so far (waits for the stream); returns 1
 * (nothing set) in the other precisions. */
int cuda_net_loss_scale(CudaNet *net, float *scale, uint64_t *skipped, StkErr *err);

/* Profiling (for benchmarks; costs an event per layer): from now on every layer's
 * forward and backward time is accumulated into net->prof_ms (cuda_net_profile_read adds
 * the last step's times after waiting). Returns 0 or -1 + err. */
int cuda_net_profile_start(CudaNet *net, StkErr *err);
int cuda_net_profile_read(CudaNet *net, StkErr *err);

/* Refreshes the bfloat16 copies of the convolution and linear weights from the float32
 * master weights (the step and cuda_net_set_params do; no-op in float32). */
int cuda_net_refresh_weights(CudaNet *net, StkErr *err);

/* Host <-> device in PyTorch's layouts (cuda_net_io.c) (waits for the stream): every parameter and
 * buffer (model_total floats), trainable gradients (trainable floats), the input from
 * NCHW floats, the logits [batch, k] as float32. */
int cuda_net_set_params(CudaNet *net, const float *host, StkErr *err);
int cuda_net_get_params(CudaNet *net, float *host, StkErr *err);
int cuda_net_get_grads(CudaNet *net, float *host, StkErr *err);
int cuda_net_set_input_nchw(CudaNet *net, const float *host, StkErr *err);
int cuda_net_get_logits(CudaNet *net, float *host, StkErr *err);

/* The optimizer state (trainable floats x optim_state_per_element) in the CPU backend's
 * layout, so a checkpoint's training state moves between backends. Waits. */
int cuda_net_set_optim(CudaNet *net, const float *host, StkErr *err);
int cuda_net_get_optim(CudaNet *net, float *host, StkErr *err);

/* What cuda_net_get_params and cuda_net_get_optim give, in two halves so that the layout
 * work (every convolution weight and its optimizer blocks transposed: tens of ms for a
 * ResNet-9 with AdamW) can leave the training thread: cuda_net_get_raw copies the
 * parameter arena and the optimizer state (optim NULL: not wanted) as the device holds
 * them, waiting for the stream; cuda_net_raw_to_host turns such copies into the host
 * layout. The latter reads only net's model and optimizer settings: any thread. */
int cuda_net_get_raw(CudaNet *net, float *params, float *optim, StkErr *err);
void cuda_net_raw_to_host(const CudaNet *net, const float *raw_params, const float *raw_optim,
                          float *params, float *optim);

#endif
