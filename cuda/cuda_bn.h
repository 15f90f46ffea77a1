/* cuda_bn.h: batch normalisation on NHWC device data (float32 or bfloat16, `dt`), viewed
 * as an [m, c] matrix (m = n*h*w), with the semantics of trainer/cpu_bn.h (PyTorch's
 * BatchNorm2d): training forward with batch statistics and running-stat update, eval
 * forward, training backward; each optionally fused with the activation that follows
 * (`act`, or CUDA_BN_NO_ACT): the forward writes f(bn(x)) and the backward takes the
 * gradient of f's output, recomputing bn(x) from x and the saved statistics, so the
 * normalised tensor is never stored. Statistics, gamma, beta and their gradients are
 * float32, as under PyTorch's autocast. Tensors are device pointers; `part` is scratch
 * of cuda_colsum_scratch(c) floats (cuda_elem.h). Each returns 0 or -1 + err. */
#ifndef CUDA_BN_H
#define CUDA_BN_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "cuda_dtype.h"
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CUDA_BN_NO_ACT (-1)

typedef struct CudaBn {
    int c;                 /* channels */
    float eps, momentum;   /* PyTorch's eps and momentum */
    const float *weight;   /* [c] device gamma */
    const float *bias;     /* [c] device beta */
    float *running_mean;   /* [c] device, updated by the training forward */
    float *running_var;    /* [c] device, unbiased batch variance blended in */
} CudaBn;

/* Training forward: per-channel mean and biased variance over the m rows (a one-pass sum
 * shifted by each channel's first value, combined in double), y = f(xhat * gamma + beta),
 * save_mean/save_invstd[c] for the backward, running statistics updated. m >= 2. x and y
 * must not alias. act: a CpuActKind or CUDA_BN_NO_ACT. */
int cuda_bn_forward_train(const CudaBn *bn, int act, CudaDtype dt, size_t m, const void *x,
                          void *y, float *save_mean, float *save_invstd, float *part,
                          cudaStream_t s, StkErr *err);

/* The training forward's output again, from x and the statistics it saved (no statistics
 * computed or updated): y = f(xhat * gamma + beta) with the forward's own coefficients,
 * so the same values bit for bit. What a recompute plan (vram_nodes.h) runs in backward
 * instead of keeping y. x and y must not alias. */
int cuda_bn_recompute(const CudaBn *bn, int act, CudaDtype dt, size_t m, const void *x, void *y,
                      const float *save_mean, const float *save_invstd, float *part,
                      cudaStream_t s, StkErr *err);

/* Eval forward with the running statistics (then f); y may alias x. */
int cuda_bn_forward_eval(const CudaBn *bn, int act, CudaDtype dt, size_t m, const void *x,
                         void *y, float *part, cudaStream_t s, StkErr *err);

/* Training backward from dy (the gradient of f's output when act is given): dx (may
 * alias dy; NULL: parameter gradients only), dweight[c] = sum g * xhat, dbias[c] = sum g, g the gradient at bn's output. */
int cuda_bn_backward_train(const CudaBn *bn, int act, CudaDtype dt, size_t m, const void *x,
                           const void *dy, const float *save_mean, const float *save_invstd,
                           void *dx, float *dweight, float *dbias, float *part,
                           cudaStream_t s, StkErr *err);

/* Backward of the eval forward (a frozen batch norm: running statistics and gamma are
 * constants): dx = g * gamma / sqrt(running_var + eps), g as above; no parameter
 * gradients. dx may alias dy. */
int cuda_bn_backward_eval(const CudaBn *bn, int act, CudaDtype dt, size_t m, const void *x,
                          const void *dy, void *dx, float *part, cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
