/* cuda_loss.h: softmax cross-entropy with label smoothing on device logits [n, k], with
 * trainer/cpu_loss.h's semantics (PyTorch's CrossEntropyLoss(label_smoothing=eps), mean
 * over rows). Returns 0 or -1 + err. */
#ifndef CUDA_LOSS_H
#define CUDA_LOSS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda_dtype.h"
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* row_loss[i] (float32) = the loss of row i (the caller averages the n values: it copies
 * them to the host anyway for logging); dlogits (may be NULL; same dtype as the logits) =
 * (softmax - q) / n. The loss is computed in double from the logits as stored (under
 * autocast PyTorch also takes bfloat16 logits up to float32 for the loss). labels are
 * device int32 in [0, k): a label outside gives a NaN row loss rather than a fault.
 * scale (device, may be NULL: 1): the loss scaler's factor, applied to dlogits only. */
int cuda_ce_loss(CudaDtype dt, int n, int k, const void *logits, const int32_t *labels,
                 float eps, const float *scale, float *row_loss, void *dlogits, cudaStream_t s,
                 StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
