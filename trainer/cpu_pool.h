/* cpu_pool.h: pooling on NCHW float32 with PyTorch 1.13's semantics: max pooling
 * (nn.MaxPool2d without dilation or ceil_mode) and adaptive average pooling
 * (nn.AdaptiveAvgPool2d; output 1x1 is the global average pool of classifier heads).
 *
 * Nothing is allocated; buffers are caller-owned (cpu_tensor.h). Inputs and outputs must
 * not alias. Backward functions overwrite dx (no accumulation). */
#ifndef CPU_POOL_H
#define CPU_POOL_H

#include <stdint.h>

#include "cpu_tensor.h"

/* A max-pooling layer's geometry. */
typedef struct CpuMaxPool {
    int kh, kw; /* window rows, columns (>= 1) */
    int sh, sw; /* strides (>= 1; PyTorch's default is the kernel size) */
    int ph, pw; /* implicit -inf padding on each side (0 <= p <= k / 2, as PyTorch) */
} CpuMaxPool;

/* Writes to *out the output shape for input shape in: n and c unchanged,
 * oh = (h + 2 ph - kh) / sh + 1 (floor), likewise ow. Fails on a geometry PyTorch
 * rejects (kernel or stride < 1, padding negative or over half the kernel), an input
 * dimension that is not positive, or a window larger than the padded input. */
int cpu_maxpool_out_shape(const CpuMaxPool *p, Shape4 in, Shape4 *out, StkErr *err);

/* y[n,c,oh,ow] = max over the window (padding counts as -inf; NaN wins, as PyTorch).
 * If argmax is not NULL it receives, per output element, the index ih * w + iw within
 * the input plane of the first maximum in row-major window order (PyTorch's indices);
 * the backward needs it. Fails if out is not cpu_maxpool_out_shape(in). */
int cpu_maxpool_forward(const CpuMaxPool *p, Shape4 in, const float *x, Shape4 out, float *y,
                        int32_t *argmax, StkErr *err);

/* dx = 0, then dx[argmax] += dy for each output element (overlapping windows add up, in
 * order). Fails as cpu_maxpool_forward. */
int cpu_maxpool_backward(const CpuMaxPool *p, Shape4 in, Shape4 out, const float *dy,
                         const int32_t *argmax, float *dx, StkErr *err);

/* Adaptive average pooling of in to out (out.n == in.n, out.c == in.c, any positive
 * out.h, out.w): output row o averages input rows floor(o * h / oh) up to
 * ceil((o + 1) * h / oh) (exclusive), likewise columns; sums in double. Fails on
 * mismatched n or c or a dimension that is not positive. */
int cpu_avgpool_adaptive_forward(Shape4 in, const float *x, Shape4 out, float *y, StkErr *err);

/* dx = 0, then each output's dy / (window size) is added over its window. Fails as the
 * forward. */
int cpu_avgpool_adaptive_backward(Shape4 in, Shape4 out, const float *dy, float *dx,
                                  StkErr *err);

#endif
