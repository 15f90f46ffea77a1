/* cuda_loss.h: softmax cross-entropy with label smoothing on device logits [n, k], with
 * trainer/cpu_loss.h's semantics (PyTorch's CrossEntropyLoss(label_smoothing=eps), mean
 * over rows). Returns 0 or -1 + err. */
#ifndef CUDA_LOSS_H
#define CUDA_LOSS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* row_loss[i] = the loss of row i (the caller averages the n values: it copies them to
 * the host anyway for logging); dlogits (may be NULL) = (softmax - q) / n. labels are
 * device int32 in [0, k): a label outside gives a NaN row loss rather than a fault. */
int cuda_ce_loss(int n, int k, const float *logits, const int32_t *labels, float eps,
                 float *row_loss, float *dlogits, cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
