/* train_accum.h: gradient accumulation: K micro-batch backwards summed so that one
 * optimizer step sees the mean gradient over the whole effective batch.
 *
 * Each backward leaves the mean over its micro-batch of M samples in the gradient arena;
 * the mean over K * M samples is the sum of those means times 1/K. The sum is kept in its
 * own float32 arena (trainable floats) so the backward passes stay untouched (they
 * overwrite the gradient arena); after the K-th, the sum is copied back into the
 * gradient arena for the step. Batch norm sees M samples, not K * M, in each pass: the
 * result equals the big batch's exactly only for models without batch norm. */
#ifndef TRAIN_ACCUM_H
#define TRAIN_ACCUM_H

#include <stdint.h>

#include "stk_err.h"

typedef struct TrainAccum {
    int k;          /* micro-batches per optimizer step, >= 1 */
    int have;       /* micro-batches folded in since the last step */
    uint64_t n;     /* floats of the gradient arena */
    float *sum;     /* [n]: 1/k times the sum of the gradients so far; NULL when k == 1 */
} TrainAccum;

/* k micro-batches per step over a gradient arena of n floats; 0 or -1 + err (memory). */
int train_accum_init(TrainAccum *a, int k, uint64_t n, StkErr *err);
void train_accum_free(TrainAccum *a);

/* Folds one micro-batch's gradients in. Returns 1 when this was the k-th: grads then hold
 * the mean over all k micro-batches (take the step); 0 otherwise (grads are scratch). */
int train_accum_add(TrainAccum *a, float *grads);

/* Forgets a partial accumulation (an epoch's tail that does not make a whole step). */
void train_accum_reset(TrainAccum *a);

#endif
