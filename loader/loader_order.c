/* loader_order.c: a keyed permutation of [0, n) by a Feistel network over the smallest
 * even-bit domain that holds n, walking the cycle until the value falls inside
 * (the domain is < 4n, so under 4 steps on average). */
#include "loader_order.h"

#include "stk_rng.h"

void loader_order_init(LoaderOrder *o, uint64_t n, uint64_t seed, uint32_t epoch, int shuffle) {
    o->n = n ? n : 1;
    o->shuffle = shuffle && n > 1;
    uint32_t bits = 1;
    while (bits < 64 && (1ull << bits) < o->n) bits++;
    o->half_bits = (bits + 1) / 2;
    uint64_t key = stk_rng_key(stk_rng_key(seed, 0x0de7ull), epoch);
    for (int r = 0; r < LOADER_ORDER_ROUNDS; r++) o->keys[r] = stk_rng_at(key, (uint64_t)r);
}

/* One pass of the network: a bijection on [0, 2^(2*half_bits)). */
static uint64_t feistel(const LoaderOrder *o, uint64_t x) {
    const uint64_t mask = (1ull << o->half_bits) - 1;
    uint64_t left = x >> o->half_bits, right = x & mask;
    for (int r = 0; r < LOADER_ORDER_ROUNDS; r++) {
        uint64_t next = left ^ (stk_rng_mix(right ^ o->keys[r]) & mask);
        left = right;
        right = next;
    }
    return (left << o->half_bits) | right;
}

uint64_t loader_order_at(const LoaderOrder *o, uint64_t i) {
    if (!o->shuffle) return i;
    uint64_t x = i;
    do x = feistel(o, x);
    while (x >= o->n);
    return x;
}

uint64_t loader_order_batches(uint64_t n, uint32_t batch, int drop_last) {
    return drop_last ? n / batch : (n + batch - 1) / batch;
}

uint32_t loader_order_batch_size(uint64_t n, uint32_t batch, uint64_t b) {
    uint64_t start = b * batch;
    if (start >= n) return 0;
    return n - start < batch ? (uint32_t)(n - start) : batch;
}
