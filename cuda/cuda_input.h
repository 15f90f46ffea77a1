/* cuda_input.h: a batch as it arrives (uint8 NHWC, straight from the loader) becomes
 * the model's normalised input in one kernel: (x / 255 - mean[c]) / std[c], as
 * torchvision's ToTensor + Normalize, written as float32 or bfloat16, NCHW or NHWC
 * (channels_last, cuDNN's fast layout). */
#ifndef CUDA_INPUT_H
#define CUDA_INPUT_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda_dtype.h" /* CudaDtype */
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum CudaLayout {
    CUDA_NCHW = 0,
    CUDA_NHWC = 1,
} CudaLayout;

/* Normalises n x h x w x c uint8 pixels at d_in (device) into d_out (device, dtype and
 * layout as given) on stream. c is 1..4; std[i] must be non-zero. Checks the arguments,
 * launches, and checks the launch (cudaGetLastError). Returns 0 or -1 + err. */
int cuda_input_normalize(const uint8_t *d_in, void *d_out, int n, int h, int w, int c,
                         const float *mean, const float *std, CudaDtype dtype,
                         CudaLayout layout, cudaStream_t stream, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
