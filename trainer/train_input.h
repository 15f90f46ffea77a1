/* train_input.h: the trainer's side of the data socket.
 *
 * A receiving thread pulls batches (PULL, bound), validates them against what this run
 * expects (shape, epoch range), drops duplicates (a restarted loader redoes its shard:
 * each (epoch, index) is taken once) and keeps the received messages, zero-copy, in a
 * bounded window. The training thread asks for the next batch of an epoch and gets it
 * copied into one of TWO slots (the double buffer: pinned host memory on the CUDA
 * backend, through the slot allocator given at open); while it computes on one, the
 * receiver may fill the other. An epoch ends when every batch index has been taken.
 *
 * Order: by default, whatever arrives first (loaders run at their own pace);
 * deterministic mode hands out batch indices 0, 1, 2... in order, waiting for the next
 * one, so a run is reproducible bit for bit on the CPU backend. */
#ifndef TRAIN_INPUT_H
#define TRAIN_INPUT_H

#include <pthread.h>
#include <stdint.h>

#include "proto_curve.h"
#include "proto_zmq.h"

#define TRAIN_INPUT_SLOTS 2 /* never more than two input batches held for compute */

/* Allocates/frees one slot's bytes (pinned host memory for CUDA); NULL fns: malloc. */
typedef struct TrainSlotAlloc {
    void *(*alloc)(void *ctx, size_t bytes); /* returns NULL on failure */
    void (*free)(void *ctx, void *p);
    void *ctx;
} TrainSlotAlloc;

typedef struct TrainInputConfig {
    const char *endpoint;       /* where to bind the PULL socket */
    uint64_t batches_per_epoch; /* this rank's: loader_shard_steps(n, batch, drop_last, world) */
    uint32_t rank, world;       /* --gpus: take only epoch batches k*world + rank, k <
                                   batches_per_epoch (loader_shard.h); world 0 or 1: all */
    uint32_t batch;             /* samples per full batch */
    uint32_t height, width;     /* every batch must have these */
    uint32_t channels;
    uint32_t start_epoch;       /* epochs before this are stale */
    uint32_t epochs;            /* epochs after start_epoch + epochs - 1 are rejected */
    int deterministic;          /* hand out indices in order */
    uint32_t window;            /* received batches held at most (>= 2 * loaders) */
    TrainSlotAlloc alloc;
    const ProtoCurve *curve;    /* CURVE server keys for the socket (tcp from other hosts;
                                   the context's ZAP handler admits the clients), or NULL */
} TrainInputConfig;

/* A batch handed to the training thread, valid until the next train_input_next. */
typedef struct TrainBatch {
    uint32_t epoch;
    uint64_t index;         /* the epoch's batch index (k*world + rank), as the loader sent it */
    uint32_t n;             /* samples (the last batch may be short) */
    uint8_t *pixels;        /* n x height x width x channels, in a slot */
    int32_t *labels;        /* n, in the slot */
    uint64_t *ids;          /* n, in the slot */
} TrainBatch;

/* Counters, for metrics and tests. */
typedef struct TrainInputStats {
    uint64_t received, duplicates, rejected, stale;
    char last_reject[STK_ERR_LEN]; /* why the last message was rejected */
} TrainInputStats;

typedef struct TrainInput TrainInput; /* opaque: thread, socket, window, slots */

/* Binds, allocates the two slots and the window, starts the receiving thread. ctx is
 * the ZeroMQ context to use (the caller owns it). */
int train_input_open(TrainInput **in, void *ctx, const TrainInputConfig *cfg, StkErr *err);

/* Waits for the next batch of `epoch` and copies it into a slot; *done = 1 (and no batch)
 * once every index of the epoch has been handed out. Returns 0; TRAIN_INPUT_TIMEOUT
 * after timeout_ms (-1: forever) without a batch, err naming what is missing (the caller
 * may look at its stop flag and call again); -1 on a dead socket. */
#define TRAIN_INPUT_TIMEOUT 1
int train_input_next(TrainInput *in, uint32_t epoch, int timeout_ms, TrainBatch *out,
                     int *done, StkErr *err);

/* A copy of the counters. */
void train_input_stats(TrainInput *in, TrainInputStats *out);

/* Stops the thread, closes the socket, frees everything. */
void train_input_close(TrainInput *in);

#endif
