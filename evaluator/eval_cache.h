/* eval_cache.h: the val split's batches as the val loaders sent them, kept after an
 * evaluation's first pass so that later checkpoints are evaluated without starting
 * loaders. The eval transform (resize of the short side, centre crop) has no randomness,
 * so the bytes a loader would send again are the bytes kept: the figures are the same,
 * and an evaluation costs its forward passes only, not decoding the val split on a core
 * the training loaders need (one stoker-eval pass over Fashion-MNIST's 10,000 val JPEGs
 * took 0.48 s of a 0.42 s epoch). All or nothing: the cache holds the whole split or is
 * off, decided at init from its size against a cap (--val-cache). */
#ifndef EVAL_CACHE_H
#define EVAL_CACHE_H

#include <stdint.h>

#include "stk_err.h"
#include "train_input.h"

typedef struct EvalCache {
    uint64_t batches;      /* the split's batch count (indices 0..batches-1) */
    uint32_t batch;        /* samples per batch (the last one may hold fewer) */
    uint64_t sample_bytes; /* height x width x channels */
    uint8_t *pixels;       /* [batches][batch][sample_bytes]; NULL: the cache is off */
    int32_t *labels;       /* [batches][batch] */
    uint32_t *n;           /* [batches]: samples held, 0 while the batch is missing */
    uint64_t held;         /* batches held */
    TrainSlotAlloc alloc;  /* where the pixels live (pinned for CUDA: copied as a slot is) */
} EvalCache;

/* Bytes a cache of this shape takes (UINT64_MAX when that overflows). */
uint64_t eval_cache_bytes(uint64_t batches, uint32_t batch, uint64_t sample_bytes);

/* Sets the cache up, on (allocated, its pixels with `alloc`: NULL fns for malloc) when
 * its bytes are at most cap, off otherwise (cap 0: always off). -1 + err only when an
 * allocation fails. */
int eval_cache_init(EvalCache *c, uint64_t cap, uint64_t batches, uint32_t batch,
                    uint64_t sample_bytes, TrainSlotAlloc alloc, StkErr *err);
void eval_cache_free(EvalCache *c);

static inline int eval_cache_on(const EvalCache *c) { return c->pixels != 0; }

/* Whether every batch of the split is held. */
static inline int eval_cache_complete(const EvalCache *c) { return c->pixels && c->held == c->batches; }

/* Keeps a copy of b, at its index (a batch already held is replaced). -1 + err for an
 * index outside the split or more samples than a batch holds; nothing is kept then. */
int eval_cache_put(EvalCache *c, const TrainBatch *b, StkErr *err);

/* Batch i as held: b's pixels and labels point into the cache (read them, don't keep
 * them past eval_cache_free); b->ids is NULL. -1 + err when i is not held. */
int eval_cache_get(const EvalCache *c, uint64_t i, TrainBatch *b, StkErr *err);

#endif
