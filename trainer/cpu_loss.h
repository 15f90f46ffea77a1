/* cpu_loss.h: the classifier's loss and accuracy counts on logits [N, K] (row-major, as
 * the linear head writes them) with int32 class labels: softmax cross-entropy with label
 * smoothing and mean reduction (PyTorch 1.13's nn.CrossEntropyLoss(label_smoothing=eps)),
 * and top-1 / top-5 correct counts.
 *
 * Nothing is allocated; buffers are caller-owned. Each row is reduced in double through a
 * log-sum-exp shifted by the row's maximum, so large logits neither overflow nor lose
 * the loss. */
#ifndef CPU_LOSS_H
#define CPU_LOSS_H

#include <stdint.h>

#include "cpu_tensor.h"

/* Mean over the n rows of (1 - eps) * -log p[label] + eps / k * sum_j -log p[j] where
 * p = softmax(row), into *loss. If dlogits is not NULL it receives the gradient of that
 * mean: (p - q) / n with q = (1 - eps) * onehot(label) + eps / k (it must not alias
 * logits). Fails if n or k is not positive, eps is outside [0, 1] or a label is outside
 * [0, k) (PyTorch's ignore_index is not supported). */
int cpu_ce_loss(int n, int k, const float *logits, const int32_t *labels, double eps,
                double *loss, float *dlogits, StkErr *err);

/* Counts rows whose label ranks first (*top1) and within the first five (*top5) by
 * logit, NaN ranking first (as torch.topk) and ties by lower class index (a label is in
 * the top t iff fewer than t classes outrank it); with k <= 5 every row counts for top-5. Fails as cpu_ce_loss on n,
 * k and labels. */
int cpu_topk_correct(int n, int k, const float *logits, const int32_t *labels, int *top1,
                     int *top5, StkErr *err);

#endif
