/* cuda_pool.h: max pooling on NHWC device data (float32 or bfloat16, `dt`), with
 * trainer/cpu_pool.h's semantics (PyTorch's MaxPool2d): -inf padding, NaN wins, argmax
 * the first maximum in window order. Returns 0 or -1 + err. The global average pool is
 * squeeze-and-excitation's squeeze (and the classifier's pool): cuda_se.h. */
#ifndef CUDA_POOL_H
#define CUDA_POOL_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "cpu_pool.h" /* CpuMaxPool and its output shape: the geometry both backends share */
#include "cuda_dtype.h"
#include "stk_err.h"

/* y [n, oh, ow, c] from x [n, h, w, c]; argmax[n, oh, ow, c] = ih * w + iw (argmax NULL: not
 * written, for a forward no backward follows). */
int cuda_maxpool_forward(const CpuMaxPool *p, CudaDtype dt, Shape4 in, Shape4 out, const void *x, void *y,
                         int32_t *argmax, cudaStream_t s, StkErr *err);

/* dx [n, h, w, c] = the sum of dy over the outputs whose argmax is that input (gathered
 * per input element: no atomics, the same bits every run). */
int cuda_maxpool_backward(const CpuMaxPool *p, CudaDtype dt, Shape4 in, Shape4 out, const void *dy,
                          const int32_t *argmax, void *dx, cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
