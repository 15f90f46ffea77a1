/* cuda_accum.h: gradient accumulation on the device with train_accum.h's arithmetic, so
 * both backends fold micro-batches alike: for K micro-batches, w = 1/K (float), the first
 * sets sum = w g, each later one sum += w g, and the K-th writes the finished sum into g
 * itself (the optimizer then reads the gradient arena as always). One kernel over the
 * whole gradient arena per micro-batch. Returns 0 or -1 + err. */
#ifndef CUDA_ACCUM_H
#define CUDA_ACCUM_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

int cuda_accum_fold(size_t n, float *grads, float *sum, float w, int first, int last,
                    cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
