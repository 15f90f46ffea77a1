/* train_accum.c: gradient accumulation over micro-batches (see train_accum.h). */
#include "train_accum.h"

#include <stdlib.h>
#include <string.h>

int train_accum_init(TrainAccum *a, int k, uint64_t n, StkErr *err) {
    memset(a, 0, sizeof *a);
    if (k < 1) return stk_errf(err, "train_accum: %d accumulation steps", k);
    a->k = k, a->n = n;
    if (k == 1) return 0; /* the gradient arena itself is the mean */
    if (!(a->sum = calloc(n ? n : 1, sizeof *a->sum)))
        return stk_errf(err, "train_accum: %llu floats for the gradient sum", (unsigned long long)n);
    return 0;
}

void train_accum_free(TrainAccum *a) {
    free(a->sum);
    memset(a, 0, sizeof *a);
}

int train_accum_add(TrainAccum *a, float *grads) {
    if (a->k <= 1) return 1; /* also a zeroed TrainAccum: no accumulation */
    float w = 1.0f / (float)a->k;
    if (a->have == 0)
        for (uint64_t i = 0; i < a->n; i++) a->sum[i] = w * grads[i];
    else
        for (uint64_t i = 0; i < a->n; i++) a->sum[i] += w * grads[i];
    if (++a->have < a->k) return 0;
    memcpy(grads, a->sum, a->n * sizeof *grads);
    a->have = 0;
    return 1;
}

void train_accum_reset(TrainAccum *a) { a->have = 0; }
