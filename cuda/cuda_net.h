/* cuda_net.h: a Model run by the CUDA backend: the GPU twin of trainer/cpu_net.h, with
 * the same memory plan (one device arena per kind of memory, sized once for a batch),
 * forward, backward and optimizer step, and the same numerics within float tolerance.
 *
 * Layout on the device: activations NHWC (cuDNN's fast layout); parameters in the
 * model's table order and offsets, but convolution weights as KRSC (out_c, kh, kw,
 * in_c/groups) instead of PyTorch's OIHW; cuda_net_set_params / get_params / get_grads
 * convert, so what the host sees (checkpoints, tests) is always PyTorch's layout.
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
#include "model.h"
#include "optim.h"

/* Bytes of each device arena for a model and batch: the plan. */
typedef struct CudaNetPlan {
    uint64_t params, grads, optim, acts, dacts, saved, scratch, workspace, total;
} CudaNetPlan;

typedef struct CudaNetOptions {
    int strict_fp32;        /* 1: no TF32 anywhere (checks against the CPU backend) */
    size_t workspace_limit; /* bytes cuDNN may use per convolution (0: 256 MiB) */
} CudaNetOptions;

typedef struct CudaNet {
    const Model *m;           /* not owned */
    int batch;
    OptimConfig opt;
    CudaNetOptions o;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    CudaConv *conv;           /* [nlayers], LAYER_CONV entries */
    CudaBn *bn;               /* [nlayers], LAYER_BN entries (device views into params) */
    float *params, *grads, *optim_state;     /* device arenas */
    float *acts, *dacts, *saved, *scratch;   /* device: nodes, their gradients, per-layer
                                                saved state, one node-sized scratch */
    float *part;              /* device: reduction scratch (cuda_colsum_scratch) */
    void *workspace;          /* device: cuDNN workspace, the largest any pass chose */
    size_t workspace_bytes;
    int32_t *labels;          /* device [batch] */
    float *row_loss;          /* device [batch] */
    float *host_loss;         /* pinned host [batch]: the last backward's row losses */
    float *host_stage;        /* pinned host staging for conversions, biggest tensor */
    int64_t *num_batches_tracked; /* host [nbn] */
    uint64_t *act_off, *saved_off;
    uint8_t *dact_set;
    uint64_t steps;
    CudaNetPlan plan;
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

/* The input node's device buffer: batch x h x w x c float32, NHWC (cuda_input_normalize
 * writes it from a uint8 batch). */
float *cuda_net_input(CudaNet *net);

/* Runs the model on the input; train selects batch statistics (and updates the running
 * ones). *logits: device pointer to batch x num_classes floats. */
int cuda_net_forward(CudaNet *net, int train, uint64_t dropout_key, const float **logits,
                     StkErr *err);

/* Cross-entropy of the last forward against host labels (copied to the device),
 * gradients of every parameter (overwritten). Does not wait: cuda_net_loss does. */
int cuda_net_backward(CudaNet *net, const int32_t *labels, double eps, uint64_t dropout_key,
                      StkErr *err);

/* Waits for the stream and gives the mean loss of the last backward. */
int cuda_net_loss(CudaNet *net, double *loss, StkErr *err);

/* One optimizer step over every trainable tensor (as cpu_net_step). */
int cuda_net_step(CudaNet *net, double lr, double wd, double norm_wd, StkErr *err);

/* Host <-> device in PyTorch's layouts (waits for the stream): every parameter and
 * buffer (model_total floats), trainable gradients (trainable floats), the input from
 * NCHW floats, the logits [batch, k]. */
int cuda_net_set_params(CudaNet *net, const float *host, StkErr *err);
int cuda_net_get_params(CudaNet *net, float *host, StkErr *err);
int cuda_net_get_grads(CudaNet *net, float *host, StkErr *err);
int cuda_net_set_input_nchw(CudaNet *net, const float *host, StkErr *err);
int cuda_net_get_logits(CudaNet *net, float *host, StkErr *err);

#endif
