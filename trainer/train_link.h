/* train_link.h: stoker-train's links to a supervisor (stoker-run) and an evaluator, used
 * in supervised mode (DESIGN: processes and sockets):
 *
 *   control      SUB, connects: a shutdown message asks for a final checkpoint and exit
 *   reports      PUSH, connects: metrics, errors, heartbeats; never blocks (drop + count)
 *   checkpoints  PUB, binds: a checkpoint-ready notice after every checkpoint written
 *
 * Any endpoint may be NULL (that link is then absent). SIGINT and SIGTERM set the same
 * stop flag as a shutdown message: the trainer polls train_link_stop() between steps.
 * Malformed or foreign messages on the control socket are dropped and counted. */
#ifndef TRAIN_LINK_H
#define TRAIN_LINK_H

#include <stdint.h>

#include "proto_curve.h"
#include "proto_zmq.h"

typedef struct TrainLink {
    void *control, *reports, *checkpoints; /* sockets, NULL when not configured */
    ProtoOut out;                          /* header scratch for sends */
    uint64_t reports_dropped;              /* reports lost to a full queue */
    uint64_t control_dropped;              /* malformed or unexpected control messages */
    uint64_t last_heartbeat_ms;
    uint32_t id;                           /* this trainer's rank (--gpus): the id of its
                                              heartbeats, metrics and errors; 0 alone */
    int stop;                              /* shutdown message or signal seen */
} TrainLink;

/* Installs SIGINT/SIGTERM handlers that make train_link_stop() true. */
int train_link_signals(StkErr *err);

/* Opens the configured sockets on ctx (the caller owns ctx). With curve (not NULL) the
 * checkpoint PUB is a CURVE server and control/reports are CURVE clients of it. */
int train_link_open(TrainLink *l, void *ctx, const char *control, const char *reports,
                    const char *checkpoints, const ProtoCurve *curve, StkErr *err);

/* 1 once a shutdown message or a stop signal has come (reads the control socket
 * without blocking, sends a heartbeat at most once a second). */
int train_link_stop(TrainLink *l);

/* Sends a metrics report (role trainer) of count name/value pairs. */
void train_link_metrics(TrainLink *l, uint32_t epoch, uint64_t step, const char *const *names,
                        const double *values, uint32_t count);

/* Sends an error report (text is cut to the protocol's limit). */
void train_link_error(TrainLink *l, const char *text);

/* Announces a checkpoint written (atomically) at path; final: the run's last. */
void train_link_checkpoint(TrainLink *l, const char *path, uint32_t epoch, uint64_t step, int final);

/* Closes the sockets (the checkpoint PUB lingers briefly so the last notice goes out). */
void train_link_close(TrainLink *l);

#endif
