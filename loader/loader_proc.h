/* loader_proc.h: one stoker-loader process: its shard of every epoch, made into batches
 * and pushed zero-copy to the trainer, with shutdown, signals and reports handled.
 *
 * Sockets: data (PUSH, connects; send high-water mark `hwm` batches, so at most hwm
 * queued plus one being written plus one being filled: hwm + 2 batch buffers, made once),
 * control (SUB, optional: a shutdown message stops it), reports (PUSH, optional: bad
 * files, heartbeats, errors; never blocks, drops and counts when full). Without a
 * reports endpoint bad files are printed to stderr. SIGINT/SIGTERM end it cleanly: the
 * handler writes a self-pipe that the send loop polls. */
#ifndef LOADER_PROC_H
#define LOADER_PROC_H

#include <stdint.h>

#include "loader_batch.h"
#include "loader_shard.h"
#include "proto_curve.h"

typedef struct LoaderProcConfig {
    LoaderBatchConfig batch;  /* what batches look like */
    uint32_t id, loaders;     /* this loader's id among the `loaders` feeding its rank */
    uint32_t rank, world;     /* the trainer rank it feeds, of world (loader_shard.h);
                                 0 and 1 (or 0 and 0) without --gpus */
    uint32_t start_epoch;     /* first epoch produced */
    uint32_t epochs;          /* epochs produced */
    int hwm;                  /* data socket's send high-water mark, in batches */
    const char *data;         /* endpoint to connect the data socket to */
    const char *control;      /* control endpoint or NULL */
    const char *reports;      /* reports endpoint or NULL */
    const char *index_path;   /* the dataset index */
    const char *root;         /* dataset root override or NULL */
    const ProtoCurve *curve;  /* CURVE client keys for every socket (tcp to another host),
                                 or NULL: plain */
    int quiet;                /* no per-epoch line on stderr */
    int stay;                 /* after the last epoch, stay connected until a shutdown
                                 message or signal: a PUSH socket that closes while its
                                 peer's queue is full loses its last message (ZeroMQ
                                 4.3), so a receiver that may still be reading (the
                                 trainer) stops the loaders itself */
} LoaderProcConfig;

/* Installs SIGINT/SIGTERM handlers that make loader_proc_run stop at the next poll. */
int loader_proc_signals(StkErr *err);

/* Runs the loader until its epochs are done (0), shutdown or a signal (0, after telling
 * nobody: the supervisor knows), or a fatal error (-1 with err; also sent as an error
 * report when a reports socket exists). */
int loader_proc_run(const LoaderProcConfig *cfg, StkErr *err);

#endif
