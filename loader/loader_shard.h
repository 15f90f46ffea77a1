/* loader_shard.h: which batches of an epoch go to which trainer rank, and which loader
 * makes them, when --gpus N trainers (ranks 0..N-1) train one model data-parallel.
 *
 * An epoch's batches keep their meaning from loader_order.h: batch b holds positions
 * [b*B, b*B + B) of the epoch's permutation, so its bytes still depend only on (seed,
 * epoch, b) and the per-GPU batch B. Rank r of world W takes batches b = k*W + r,
 * k = 0, 1, ...: optimizer step k of the group trains batches kW .. kW + W-1, i.e. the
 * positions [kWB, (k+1)WB), exactly the samples of batch k of one trainer at batch WB.
 *
 * Every rank must take the same number of steps (each step is a collective all-reduce:
 * a rank with one step fewer would leave the others waiting). As torch's
 * DistributedSampler(drop_last=True) followed by DataLoader(drop_last=True), the tail is
 * DROPPED, never padded: steps = floor(floor(n / B) / W) = floor(n / (W*B)); the last
 * (floor(n/B) mod W) full batches and the partial one are not made in that epoch (under
 * W*B samples, a different set each epoch since the order is reshuffled). Padding would
 * repeat samples from the start of the order, which biases them and breaks the identity
 * with one trainer at batch W*B, which drops the same tail. Every batch that is made is
 * delivered once, to one rank: over the ranks, each of the epoch's first steps*W*B
 * positions exactly once.
 *
 * Loaders are per rank and stride over the rank's batches of the whole run, not of each
 * epoch: with S steps per epoch, loader i of the L feeding rank r makes the rank's k-th
 * batch of epoch e when (e*S + k) mod L == i. Within an epoch that is still every L-th
 * batch (k = first, first+L, ...), but where S is not a multiple of L the epoch's extra
 * batches fall to different loaders in turn; a per-epoch stride would give them to loader
 * 0 every epoch, and it would set the pace: 16 batches over 15 loaders is 2 for loader 0
 * against 1 for each other, a run-long 2x imbalance. A batch's bytes still depend only on
 * (seed, epoch, b), never on L. */
#ifndef LOADER_SHARD_H
#define LOADER_SHARD_H

#include <stdint.h>

typedef struct LoaderShard {
    uint32_t rank, world;   /* the trainer rank fed, of world ranks (world >= 1) */
    uint32_t id, loaders;   /* this loader among the `loaders` feeding that rank */
} LoaderShard;

/* Batches each rank takes per epoch of n samples at per-rank batch B: the whole epoch's
 * loader_order_batches when world is 1 (drop_last as given), else floor(n / (world*B))
 * (the tail dropped: see above). */
uint64_t loader_shard_steps(uint64_t n, uint32_t batch, int drop_last, uint32_t world);

/* The epoch batch index of rank r's k-th batch: k*world + rank. */
uint64_t loader_shard_batch(uint32_t rank, uint32_t world, uint64_t k);

/* The inverse on the trainer's side: 1 and *k when epoch batch b belongs to rank (b mod
 * world == rank and its k < steps), else 0 (another rank's batch, or a dropped tail). */
int loader_shard_local(uint32_t rank, uint32_t world, uint64_t steps, uint64_t b, uint64_t *k);

/* The first of a rank's `steps` batches of `epoch` that loader s->id makes: the k in
 * [0, loaders) with (epoch*steps + k) mod loaders == id. It makes k, k+loaders, ... < steps
 * (none when the first is >= steps). */
uint64_t loader_shard_first(const LoaderShard *s, uint64_t steps, uint32_t epoch);

/* How many of a rank's `steps` batches of `epoch` loader s->id makes. */
uint64_t loader_shard_count(const LoaderShard *s, uint64_t steps, uint32_t epoch);

/* 0, or -1 naming what is wrong: world 0, rank >= world, loaders 0, id >= loaders. The
 * message is written to msg (cap bytes). */
int loader_shard_check(const LoaderShard *s, char *msg, unsigned cap);

#endif
