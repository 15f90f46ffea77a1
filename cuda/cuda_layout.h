/* cuda_layout.h: float32 layout copies between NHWC and NCHW (cuda_conv's NCHW mode):
 * per image, a transpose of an hw x c matrix, in 32x32 tiles through shared memory so
 * that both the reads and the writes are coalesced. The same calls turn convolution
 * weights KRSC into KCRS and back (n = K, hw = R*S). On stream s, as every other pass of
 * the layer; 0 or -1 + err. */
#ifndef CUDA_LAYOUT_H
#define CUDA_LAYOUT_H

#include <cuda_runtime_api.h>

#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i][ch][p] = x[i][p][ch] for i < n, ch < c, p < hw. */
int cuda_nhwc_to_nchw(int n, int c, int hw, const float *x, float *y, cudaStream_t s, StkErr *err);

/* y[i][p][ch] = x[i][ch][p] (accumulate: y[i][p][ch] += it). */
int cuda_nchw_to_nhwc(int n, int c, int hw, const float *x, float *y, int accumulate, cudaStream_t s,
                      StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
