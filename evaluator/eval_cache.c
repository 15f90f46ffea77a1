/* eval_cache.c: the val split kept in host memory (see eval_cache.h). */
#include "eval_cache.h"

#include <stdlib.h>
#include <string.h>

uint64_t eval_cache_bytes(uint64_t batches, uint32_t batch, uint64_t sample_bytes) {
    uint64_t per = sample_bytes + sizeof(int32_t);
    if (batch && per > UINT64_MAX / batch) return UINT64_MAX;
    per *= batch;
    per += sizeof(uint32_t);
    if (batches && per > UINT64_MAX / batches) return UINT64_MAX;
    return per * batches;
}

int eval_cache_init(EvalCache *c, uint64_t cap, uint64_t batches, uint32_t batch,
                    uint64_t sample_bytes, TrainSlotAlloc alloc, StkErr *err) {
    *c = (EvalCache){.batches = batches, .batch = batch, .sample_bytes = sample_bytes, .alloc = alloc};
    uint64_t bytes = eval_cache_bytes(batches, batch, sample_bytes);
    if (!cap || !batches || !batch || !sample_bytes || bytes > cap || bytes > SIZE_MAX) return 0;
    size_t px = (size_t)(batches * batch * sample_bytes);
    c->pixels = alloc.alloc ? alloc.alloc(alloc.ctx, px) : malloc(px);
    c->labels = malloc((size_t)(batches * batch) * sizeof *c->labels);
    c->n = calloc((size_t)batches, sizeof *c->n);
    if (!c->pixels || !c->labels || !c->n) {
        eval_cache_free(c);
        return stk_errf(err, "val cache: out of memory for %llu bytes", (unsigned long long)bytes);
    }
    return 0;
}

void eval_cache_free(EvalCache *c) {
    if (c->pixels && c->alloc.free) c->alloc.free(c->alloc.ctx, c->pixels);
    else free(c->pixels);
    free(c->labels), free(c->n);
    c->pixels = NULL, c->labels = NULL, c->n = NULL, c->held = 0;
}

int eval_cache_put(EvalCache *c, const TrainBatch *b, StkErr *err) {
    if (!c->pixels) return 0;
    if (b->index >= c->batches)
        return stk_errf(err, "val cache: batch %llu of a %llu-batch split", (unsigned long long)b->index,
                       (unsigned long long)c->batches);
    if (!b->n || b->n > c->batch)
        return stk_errf(err, "val cache: batch %llu holds %u samples, not 1..%u",
                       (unsigned long long)b->index, b->n, c->batch);
    uint64_t i = b->index;
    memcpy(c->pixels + i * c->batch * c->sample_bytes, b->pixels, (size_t)(b->n * c->sample_bytes));
    memcpy(c->labels + i * c->batch, b->labels, b->n * sizeof *c->labels);
    c->held += !c->n[i];
    c->n[i] = b->n;
    return 0;
}

int eval_cache_get(const EvalCache *c, uint64_t i, TrainBatch *b, StkErr *err) {
    if (!c->pixels || i >= c->batches || !c->n[i])
        return stk_errf(err, "val cache: batch %llu is not held", (unsigned long long)i);
    *b = (TrainBatch){.index = i, .n = c->n[i], .pixels = c->pixels + i * c->batch * c->sample_bytes,
                      .labels = c->labels + i * c->batch};
    return 0;
}
