/* cuda_dwconv.h: depthwise convolution (groups == in_c == out_c: MobileNetV3's and
 * EfficientNet's 3x3 and 5x5 layers) on NHWC device data, float32 or bfloat16 (`dt`,
 * float accumulation, results rounded to nearest even once on store), with
 * torch.nn.Conv2d's semantics (ConvDesc, trainer/cpu_conv.h; zero padding, dilation 1).
 * Our own kernels, because cuDNN's legacy API runs these layers in NHWC bfloat16 several
 * times slower than memory bandwidth allows.
 *
 * Shapes are NCHW-named (Shape4 {n, c, h, w}) but the data is NHWC; the weights are KRSC
 * with in_c/groups = 1, i.e. w[c][kh][kw], in dt. No bias: the caller adds it. Every
 * result is written, not accumulated, and is the same bits on every run (no atomics).
 * Each entry validates its arguments before launching anything and returns 0, or -1 +
 * err naming the function and the bad argument (a launch failure: the CUDA call). */
#ifndef CUDA_DWCONV_H
#define CUDA_DWCONV_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "cpu_conv.h" /* ConvDesc, cpu_conv_out_shape: the geometry both backends share */
#include "cuda_dtype.h"
#include "stk_err.h"

/* 1 when these kernels run d: groups == in_c == out_c, kernel 1..7 on each axis (odd or
 * even), stride 1 or 2 on each axis, any padding >= 0; bias is ignored (the caller adds
 * it). 0 otherwise (d NULL included). */
int cuda_dwconv_supported(const ConvDesc *d);

/* y[n, oh, ow, c] = sum over kh, kw of x[n, oh*sh - ph + kh, ow*sw - pw + kw, c] * w[c][kh][kw]
 * (zero outside x). out must be cpu_conv_out_shape(d, in). */
int cuda_dwconv_forward(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out, const void *x,
                        const void *w, void *y, cudaStream_t s, StkErr *err);

/* dx[n, ih, iw, c] = the sum of dy * w over the outputs whose window covers (ih, iw),
 * gathered per input element. */
int cuda_dwconv_backward_data(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out,
                              const void *dy, const void *w, void *dx, cudaStream_t s,
                              StkErr *err);

/* Floats of scratch cuda_dwconv_backward_filter needs for (d, in, out): a partial sum per
 * (block of output rows, kh, kw, c), at most 1024 * kh * kw * c; it depends on the shapes
 * only (not dt, the device or the buffers' alignment). 0 when d or the shapes are not
 * valid for these kernels. */
size_t cuda_dwconv_filter_scratch(const ConvDesc *d, Shape4 in, Shape4 out);

/* dw[c][kh][kw] = sum over n, oh, ow of dy[n, oh, ow, c] * x[n, oh*sh - ph + kh, ow*sw - pw + kw, c],
 * written in dt. scratch: device floats, at least cuda_dwconv_filter_scratch(d, in, out)
 * of them (scratch_floats says how many the caller has); contents are overwritten. Two
 * levels, each in a fixed order: float partial sums per block of rows into scratch, then
 * one kernel sums the partials. */
int cuda_dwconv_backward_filter(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out,
                                const void *x, const void *dy, void *dw, float *scratch,
                                size_t scratch_floats, cudaStream_t s, StkErr *err);

/* Caps the blocks of each forward and backward-data launch (0: the default, 1024); the
 * kernels' loops stride over whatever the grid does not cover, so results do not change.
 * For tests, to run those loops on small shapes. Not thread-safe: set it before any
 * launch. */
void cuda_dwconv_set_grid_blocks(unsigned blocks);

#ifdef __cplusplus
}
#endif

#endif
