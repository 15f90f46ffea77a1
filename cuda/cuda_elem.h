/* cuda_elem.h: the CUDA backend's elementwise and per-channel operations on float32
 * device buffers: activations (the same functions and gradients as trainer/cpu_act.h),
 * residual add, gradient accumulation, per-channel bias and the per-channel sum that
 * gives bias gradients. Per-channel operations take NHWC data as an [m, c] matrix (m =
 * n*h*w rows of c channels). Every launcher checks its arguments, launches on `stream`
 * and checks the launch; it returns 0 or -1 + err. */
#ifndef CUDA_ELEM_H
#define CUDA_ELEM_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cpu_act.h" /* CpuActKind: the activation codes both backends share */
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = f(x[i]); y may alias x. */
int cuda_act_forward(CpuActKind kind, size_t n, const float *x, float *y, cudaStream_t s,
                     StkErr *err);

/* dx[i] = dy[i] * f'(x[i]) (x: the forward's input); dx may alias dy. */
int cuda_act_backward(CpuActKind kind, size_t n, const float *x, const float *dy, float *dx,
                      cudaStream_t s, StkErr *err);

/* y = a + b (y may alias either). */
int cuda_add(size_t n, const float *a, const float *b, float *y, cudaStream_t s, StkErr *err);

/* y[r, c] += b[c] over an [m, c] matrix. */
int cuda_bias_add(size_t m, int c, const float *b, float *y, cudaStream_t s, StkErr *err);

/* out[c] = sum over rows r of x[r, c] for an [m, c] matrix (summed in float per thread
 * over a bounded stretch of rows, then in double: order fixed, so results repeat). `part`
 * is scratch of cuda_colsum_scratch(c) floats. */
int cuda_colsum(size_t m, int c, const float *x, float *out, float *part, cudaStream_t s,
                StkErr *err);

/* Floats of scratch cuda_colsum (and the batch-norm reductions) need for c channels. */
size_t cuda_colsum_scratch(int c);

/* How many blocks split m rows in those reductions (1..512). */
int cuda_colsum_split(size_t m);

/* y[n, c, 1, 1] = x[n, c, h, w] * s[n, c] for NHWC x (squeeze-and-excitation's scale). */
int cuda_scale_forward(int n, int hw, int c, const float *x, const float *sc, float *y,
                       cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
