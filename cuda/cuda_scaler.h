/* cuda_scaler.h: dynamic loss scaling for fp16 training, PyTorch's GradScaler on the
 * device. The loss gradient is multiplied by the scale (cuda_ce_loss's scale) so small
 * gradients survive IEEE half; before the optimizer, cuda_scaler_unscale divides every
 * float32 gradient by it and notes whether any is inf or NaN; cuda_scaler_prepare then
 * decides the step on the device: a non-finite gradient skips it (the weights, the
 * optimizer state and its step count stay) and halves the scale, else the step counts
 * and, after `interval` good steps in a row, the scale doubles. Nothing waits on the host:
 * the optimizer reads the decision and its step's scalars from CudaScalerState.
 * Returns 0 or -1 + err. */
#ifndef CUDA_SCALER_H
#define CUDA_SCALER_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device state (one allocation). */
typedef struct CudaScalerState {
    float scale;            /* what the loss gradient is multiplied by */
    int found;              /* this step: 1 when a gradient was inf or NaN */
    int good;               /* finite steps since the scale last changed */
    int skip;               /* the optimizer's instruction for this step */
    uint64_t taken;         /* steps the optimizer took (AdamW's step count) */
    uint64_t skipped;       /* steps skipped in all */
    float step_size, bc2_sqrt; /* AdamW: lr / (1 - b1^t), sqrt(1 - b2^t) for t = taken */
    int first;              /* SGD: this is the first step taken (momentum starts here) */
} CudaScalerState;

typedef struct CudaScaler {
    CudaScalerState *dev;
    int interval;           /* good steps before the scale doubles */
} CudaScaler;

/* Allocates and sets the state: scale `init`, growth every `interval` good steps. */
int cuda_scaler_init(CudaScaler *s, float init, int interval, StkErr *err);
void cuda_scaler_free(CudaScaler *s);

/* g[0..n) /= scale, and state.found = 1 if any result is not finite. */
int cuda_scaler_unscale(const CudaScaler *s, size_t n, float *g, cudaStream_t st, StkErr *err);

/* After unscale, before the optimizer: the step's decision and scalars (AdamW's betas and
 * lr as the host has them; computed in double as trainer/optim.c does), then the scale's
 * update; resets found for the next step. */
int cuda_scaler_prepare(const CudaScaler *s, double lr, double beta1, double beta2, cudaStream_t st,
                        StkErr *err);

/* The current scale and the steps skipped so far (waits for the stream). */
int cuda_scaler_read(const CudaScaler *s, cudaStream_t st, float *scale, uint64_t *skipped, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
