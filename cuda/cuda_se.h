/* cuda_se.h: squeeze-and-excitation's tensor passes on NHWC device data (float32,
 * bfloat16 or float16, `dt`): the global average pool that squeezes x [n, hw, c] to
 * [n, c], the per-(sample, channel) scale that excites it, and their backward passes.
 * The same semantics as trainer/cpu_net.c's avgpool and scale layers (PyTorch's
 * AdaptiveAvgPool2d(1) and x * s), float sums, rounded once on store.
 *
 * Memory-bound passes over the largest tensors of a MobileNet or EfficientNet block, so
 * each moves 16 bytes per thread where c allows and reads each input once: the scale's
 * backward makes dx and ds in one pass over dy and x, and the pool's backward adds into
 * a gradient that already holds the scale's share instead of writing a second buffer.
 * Sums are per block in a fixed order (no atomics): the same bits on every run.
 * Each returns 0, or -1 + err naming the function and the bad shape. */
#ifndef CUDA_SE_H
#define CUDA_SE_H

#include <cuda_runtime_api.h>

#include "cuda_dtype.h"
#include "cpu_tensor.h" /* Shape4 */
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[n, c] = mean over h, w of x[n, h, w, c]. */
int cuda_avgpool_forward(CudaDtype dt, Shape4 in, const void *x, void *y, cudaStream_t s, StkErr *err);

/* dx[n, h, w, c] = dy[n, c] / (h * w); acc: added to what dx holds (x's gradient from its
 * other reader) instead of written. */
int cuda_avgpool_backward(CudaDtype dt, Shape4 in, const void *dy, void *dx, int acc, cudaStream_t s,
                          StkErr *err);

/* y[n, hw, c] = x[n, hw, c] * sc[n, c]; y may alias x. */
int cuda_scale_forward(CudaDtype dt, int n, int hw, int c, const void *x, const void *sc,
                       void *y, cudaStream_t s, StkErr *err);

/* dx = dy * sc (NULL skips) and ds[n, c] = sum over hw of dy * x (NULL skips), in one
 * pass when both are asked for. dx may alias dy. */
int cuda_scale_backward(CudaDtype dt, int n, int hw, int c, const void *x, const void *sc,
                        const void *dy, void *dx, void *ds, cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
