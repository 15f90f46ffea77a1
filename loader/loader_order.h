/* loader_order.h: the order of an epoch and who produces which batch.
 *
 * The order of epoch e is a permutation of [0, n) keyed by (seed, e), computed one
 * position at a time by a keyed Feistel network with cycle walking: O(1) memory and
 * O(1) work per position, so any loader can produce any batch alone, and 16 loaders
 * over 1.3 million samples hold no permutation table at all. Batch b of an epoch holds
 * positions [b*B, b*B + B); which loader makes which batch is loader_shard.h's. */
#ifndef LOADER_ORDER_H
#define LOADER_ORDER_H

#include <stdint.h>

#define LOADER_ORDER_ROUNDS 6 /* Feistel rounds: 4 make a good pseudo-random permutation */

typedef struct LoaderOrder {
    uint64_t n;                          /* positions, >= 1 */
    int shuffle;                         /* 0: the identity order (evaluation) */
    uint32_t half_bits;                  /* bits of each Feistel half */
    uint64_t keys[LOADER_ORDER_ROUNDS];  /* round keys from (seed, epoch) */
} LoaderOrder;

/* The order of n samples in epoch `epoch` under seed; shuffle = 0 gives 0, 1, 2... */
void loader_order_init(LoaderOrder *o, uint64_t n, uint64_t seed, uint32_t epoch, int shuffle);

/* The sample at position i (i < n). */
uint64_t loader_order_at(const LoaderOrder *o, uint64_t i);

/* Batches in an epoch of n samples: n / batch, plus one partial batch unless drop_last. */
uint64_t loader_order_batches(uint64_t n, uint32_t batch, int drop_last);

/* Samples in batch b (batch, or fewer for the last batch when it is partial). */
uint32_t loader_order_batch_size(uint64_t n, uint32_t batch, uint64_t b);

#endif
