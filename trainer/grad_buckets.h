/* grad_buckets.h: how a data-parallel backward groups gradients for its all-reduces
 * (cuda_ddp.h), planned on the host from the Model alone, so it is tested on the CPU.
 *
 * Backward runs layers from the last; a layer's parameter gradients are complete once
 * its backward is queued. Buckets are taken in that order: layers are added from the
 * top until the bucket holds >= bucket_floats (torch DDP's 25 MB by default), and the
 * bucket is launched when the backward has done its lowest layer, so the all-reduce of
 * the top of the network overlaps the backward of the bottom. The gradient arena holds
 * trainable parameters in layer order, so a bucket is one contiguous float range
 * [lo, hi) of it and the buckets tile [0, trainable_floats) from the top down. Frozen
 * layers (no trainable parameters) belong to no bucket. */
#ifndef GRAD_BUCKETS_H
#define GRAD_BUCKETS_H

#include <stdint.h>

#include "model.h"

typedef struct GradBucket {
    uint64_t lo, hi;   /* floats [lo, hi) of the gradient arena */
    int close_layer;   /* the lowest layer in it: launch after that layer's backward */
} GradBucket;

typedef struct GradBuckets {
    GradBucket *b;     /* [n], from the top of the network down (launch order) */
    int n;
    int *closes;       /* [nlayers]: the bucket layer li closes, or -1 */
} GradBuckets;

/* Plans m's buckets of at least bucket_floats floats (the last may be smaller). Fails,
 * naming the parameter, if the trainable parameters are not laid out contiguously in
 * layer order (then one range per bucket would not hold). */
int grad_buckets_plan(GradBuckets *gb, const Model *m, uint64_t bucket_floats, StkErr *err);
void grad_buckets_free(GradBuckets *gb);

#endif
