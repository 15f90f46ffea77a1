/* train_group.h: the ranks of a data-parallel run (--gpus N) talking to each other over
 * one ZeroMQ socket: rank 0 binds a ROUTER at --dist-endpoint, every other rank connects
 * a DEALER whose routing id is its rank. Two exchanges:
 *
 *   broadcast  rank 0's bytes to every rank (the starting weights, so all ranks begin
 *              bit-identical as torch's DDP does at construction; on CUDA the NCCL
 *              unique id). Ranks > 0 announce themselves here, so it is also the join.
 *   mean       every rank's float vector replaced by the mean over the ranks: the CPU
 *              backend's gradient all-reduce (a star through rank 0; fine for the CPU
 *              backend's model sizes and for tests; the CUDA backend uses NCCL,
 *              cuda_ddp.h). Rank 0 sums in rank order, so the result is the same bits
 *              on every rank and from run to run.
 *
 * Every message carries the exchange's round number and size: ranks out of step (one
 * skipped a step) fail with both numbers named instead of averaging the wrong things.
 * While waiting, the stop function is polled every TRAIN_GROUP_POLL_MS: a signal or a
 * shutdown (stoker-run stopping the group because a rank died) ends the wait with
 * TRAIN_GROUP_STOPPED, and a peer silent for timeout_ms is an error naming the ranks
 * missing. Messages are raw host structs: every rank is the same stoker build. */
#ifndef TRAIN_GROUP_H
#define TRAIN_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

#define TRAIN_GROUP_STOPPED 1       /* a wait was ended by the stop function */
#define TRAIN_GROUP_POLL_MS 200     /* how often a wait looks at the stop function */
#define TRAIN_GROUP_TIMEOUT_MS 1200000 /* default: twice the trainer's data timeout, since
                                          a peer may itself be waiting that long for data */

typedef int TrainGroupStopFn(void *ctx); /* 1: stop waiting */

typedef struct TrainGroup {
    int rank, world;         /* this process's rank, of world (>= 2) */
    void *sock;              /* rank 0: ROUTER (bound); others: DEALER (connected) */
    void **held;             /* rank 0: [world] this round's payload message per rank (zmq_msg_t *) */
    float *sum;              /* rank 0: the mean's scratch, 2 x cap floats (sum, one rank's) */
    size_t cap;
    uint64_t round;          /* exchanges done; each message carries it */
    int timeout_ms;          /* a peer silent this long is an error (TRAIN_GROUP_TIMEOUT_MS) */
    TrainGroupStopFn *stop;  /* polled while waiting; NULL: never */
    void *stop_ctx;
} TrainGroup;

/* Opens rank's end on ctx (the caller owns ctx): rank 0 binds endpoint, the others
 * connect. world must be >= 2. Returns 0 or -1 + err. */
int train_group_open(TrainGroup *g, void *ctx, const char *endpoint, int rank, int world,
                     StkErr *err);

/* Rank 0's `bytes` bytes of data into every rank's data (same size everywhere, checked).
 * Rank 0 returns once every rank has joined and been sent them. 0, TRAIN_GROUP_STOPPED,
 * or -1 + err. */
int train_group_broadcast(TrainGroup *g, void *data, size_t bytes, StkErr *err);

/* x[0..n) replaced on every rank by the mean over the ranks of their x (n equal
 * everywhere, checked). 0, TRAIN_GROUP_STOPPED (x unchanged on this rank), or -1 + err. */
int train_group_mean(TrainGroup *g, float *x, size_t n, StkErr *err);

/* Closes the socket and frees the scratch. Rank 0 lingers up to 2 s so its last answers
 * reach the ranks still reading them; a peer gone is not waited for. */
void train_group_close(TrainGroup *g);

#endif
