/* cuda_optim.h: torch.optim's SGD and AdamW updates on device tensors, element for
 * element the arithmetic of trainer/optim.c (float32, PyTorch's order), one launch per
 * tensor. Returns 0 or -1 + err. */
#ifndef CUDA_OPTIM_H
#define CUDA_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "optim.h" /* OptimConfig */

/* p -= lr * d, d = g + wd p, with momentum buffer buf (n floats; NULL when momentum is
 * 0); first_step initialises buf from d as PyTorch does. */
int cuda_sgd_step(const OptimConfig *c, float *p, const float *g, float *buf, size_t n,
                  double lr, double wd, int first_step, cudaStream_t s, StkErr *err);

/* AdamW with state = exp_avg[n] then exp_avg_sq[n]; step counts from 1. */
int cuda_adamw_step(const OptimConfig *c, float *p, const float *g, float *state, size_t n,
                    double lr, double wd, uint64_t step, cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
