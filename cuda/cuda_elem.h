/* cuda_elem.h: the CUDA backend's elementwise and per-channel operations on device
 * buffers of float32 or bfloat16 (`dt`; arithmetic in float): activations (the functions
 * and gradients of trainer/cpu_act.h), residual add, per-channel bias, the per-channel
 * sum that gives bias gradients, and dtype casts. Per-channel operations take NHWC data
 * as an [m, c] matrix (m = n*h*w rows of c channels); per-channel parameters and their
 * gradients are always float32. Every launcher checks its arguments, launches on
 * `stream` and checks the launch; it returns 0 or -1 + err. */
#ifndef CUDA_ELEM_H
#define CUDA_ELEM_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cpu_act.h" /* CpuActKind: the activation codes both backends share */
#include "cuda_dtype.h"
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = f(x[i]); y may alias x. */
int cuda_act_forward(CpuActKind kind, CudaDtype dt, size_t n, const void *x, void *y,
                     cudaStream_t s, StkErr *err);

/* dx[i] = dy[i] * f'(x[i]) (x: the forward's input); dx may alias dy. */
int cuda_act_backward(CpuActKind kind, CudaDtype dt, size_t n, const void *x, const void *dy,
                      void *dx, cudaStream_t s, StkErr *err);

/* y = a + b (y may alias either). */
int cuda_add(CudaDtype dt, size_t n, const void *a, const void *b, void *y, cudaStream_t s,
             StkErr *err);

/* y = max(a + b, 0): a residual add with the ReLU after it (y may alias either). The
 * ReLU's backward needs only y: cuda_act_backward(CPU_ACT_RELU, ..., y, dy, dx). */
int cuda_add_relu(CudaDtype dt, size_t n, const void *a, const void *b, void *y, cudaStream_t s,
                  StkErr *err);

/* y[r, c] += b[c] over an [m, c] matrix; b is float32. */
int cuda_bias_add(CudaDtype dt, size_t m, int c, const float *b, void *y, cudaStream_t s,
                  StkErr *err);

/* out[c] (float32) = sum over rows r of x[r, c] for an [m, c] matrix: summed in float
 * per thread over a bounded stretch of rows, then in double, in a fixed order, so
 * results repeat. `part` is scratch of cuda_colsum_scratch(c) floats. */
int cuda_colsum(CudaDtype dt, size_t m, int c, const void *x, float *out, float *part,
                cudaStream_t s, StkErr *err);

/* Floats of scratch cuda_colsum (and the batch-norm reductions) need for c channels. */
size_t cuda_colsum_scratch(int c);

/* How many blocks split m rows in those reductions (1..512). */
int cuda_colsum_split(size_t m);

/* Dropout's mask (cpu_act.h's, bit for bit: element r keeps iff
 * stk_rng_unit(stk_rng_at(key, r)) < 1 - p, kept ones scaled by (float)(1 / (1 - p))),
 * applied to n elements in runs of `run` (1: dropout; a sample's size: stochastic depth,
 * the order of elements inside a run does not matter, so NHWC gives the CPU's masks).
 * key = stk_rng_key(*dkey, coord), *dkey read on the device when the kernel runs: a
 * captured CUDA graph replays with whatever key the step wrote there (cuda_set_u64).
 * y may alias x. */
int cuda_dropout_mask(CudaDtype dt, size_t n, size_t run, double p, const uint64_t *dkey,
                      uint64_t coord, const void *x, void *y, cudaStream_t s, StkErr *err);

/* Queues *p = v (p in device memory) on s. */
int cuda_set_u64(uint64_t *p, uint64_t v, cudaStream_t s, StkErr *err);

/* dst = src converted (float32 <-> bfloat16, or a copy when the types are equal). */
int cuda_cast(CudaDtype from, CudaDtype to, size_t n, const void *src, void *dst,
              cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
