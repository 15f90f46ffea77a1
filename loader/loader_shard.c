/* loader_shard.c: batch indices per trainer rank and per loader (see loader_shard.h). */
#include "loader_shard.h"

#include <stdio.h>

#include "loader_order.h"

uint64_t loader_shard_steps(uint64_t n, uint32_t batch, int drop_last, uint32_t world) {
    if (!batch || !world) return 0;
    if (world == 1) return loader_order_batches(n, batch, drop_last);
    return loader_order_batches(n, batch, 1) / world; /* whole steps of the group only */
}

uint64_t loader_shard_batch(uint32_t rank, uint32_t world, uint64_t k) {
    return k * world + rank;
}

int loader_shard_local(uint32_t rank, uint32_t world, uint64_t steps, uint64_t b, uint64_t *k) {
    if (!world || b % world != rank || b / world >= steps) return 0;
    *k = b / world;
    return 1;
}

uint64_t loader_shard_first(const LoaderShard *s, uint64_t steps, uint32_t epoch) {
    uint64_t L = s->loaders ? s->loaders : 1;
    uint64_t offset = (epoch % L) * (steps % L) % L; /* (epoch*steps) mod L, no overflow */
    return (s->id % L + L - offset) % L;
}

uint64_t loader_shard_count(const LoaderShard *s, uint64_t steps, uint32_t epoch) {
    uint64_t first = loader_shard_first(s, steps, epoch);
    if (!s->loaders || first >= steps) return 0;
    return (steps - first + s->loaders - 1) / s->loaders;
}

int loader_shard_check(const LoaderShard *s, char *msg, unsigned cap) {
    if (s->world < 1 || s->rank >= s->world) {
        snprintf(msg, cap, "rank %u of world %u (rank must be below world)", s->rank, s->world);
        return -1;
    }
    if (s->loaders < 1 || s->id >= s->loaders) {
        snprintf(msg, cap, "loader id %u of %u", s->id, s->loaders);
        return -1;
    }
    return 0;
}
