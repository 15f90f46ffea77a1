/* cpu_bn.h: batch normalisation on NCHW float32 with PyTorch 1.13's semantics
 * (nn.BatchNorm2d; nn.BatchNorm1d on [N, C] input as shape {N, C, 1, 1}): the training
 * forward normalises with the batch statistics (biased variance) and updates the running
 * statistics (running_var from the unbiased variance), the eval forward uses the running
 * statistics, and each has its backward.
 *
 * Per-channel sums are taken in double, in a fixed order, so results are identical run
 * to run. Nothing is allocated; buffers are caller-owned (cpu_tensor.h). Backward
 * functions overwrite dx, dweight and dbias (no accumulation). */
#ifndef CPU_BN_H
#define CPU_BN_H

#include <stdint.h>

#include "cpu_tensor.h"

/* One batch-norm layer: its settings and where its tensors live (the arenas). */
typedef struct CpuBn {
    int c;                        /* channels: the length of every array below */
    double eps;                   /* added to the variance (PyTorch: 1e-5) */
    double momentum;              /* running-stat update weight m (PyTorch: 0.1):
                                   * running = (1 - m) * running + m * batch statistic */
    const float *weight;          /* [c] gamma; NULL means affine=False (gamma = 1) */
    const float *bias;            /* [c] beta; NULL means affine=False (beta = 0) */
    float *running_mean;          /* [c] updated by the training forward */
    float *running_var;           /* [c] updated with the unbiased batch variance */
    int64_t *num_batches_tracked; /* incremented by the training forward; may be NULL */
} CpuBn;

/* Training forward: y = (x - mean) / sqrt(var + eps) * gamma + beta with per-channel
 * batch mean and biased variance over n, h, w; updates running_mean, running_var and
 * num_batches_tracked; writes save_mean[c] and save_invstd[c] = 1 / sqrt(var + eps)
 * for the backward. y must not alias x (the backward needs x). Fails if xs.c != bn->c,
 * a dimension is not positive, or there is a single value per channel (n*h*w == 1). */
int cpu_bn_forward_train(const CpuBn *bn, Shape4 xs, const float *x, float *y,
                         float *save_mean, float *save_invstd, StkErr *err);

/* Eval forward with running_mean and running_var; touches no state; y may alias x.
 * Fails if xs.c != bn->c or a dimension is not positive. */
int cpu_bn_forward_eval(const CpuBn *bn, Shape4 xs, const float *x, float *y, StkErr *err);

/* Backward of the training forward (batch statistics depend on x) from the forward's
 * x, save_mean and save_invstd: writes dx (may alias dy), dweight[c] = sum dy * xhat and
 * dbias[c] = sum dy; dweight and dbias may be NULL (affine=False). Fails as the forward. */
int cpu_bn_backward_train(const CpuBn *bn, Shape4 xs, const float *x, const float *dy,
                          const float *save_mean, const float *save_invstd, float *dx,
                          float *dweight, float *dbias, StkErr *err);

/* Backward of the eval forward (running statistics are constants): dx = dy * gamma /
 * sqrt(running_var + eps) (may alias dy), dweight and dbias as above (may be NULL).
 * Fails as cpu_bn_forward_eval. */
int cpu_bn_backward_eval(const CpuBn *bn, Shape4 xs, const float *x, const float *dy,
                         float *dx, float *dweight, float *dbias, StkErr *err);

#endif
