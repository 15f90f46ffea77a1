/* eval_report.h: stoker-eval's sockets and how it tells what it measured.
 *
 *   checkpoints  SUB, connects, ZMQ_CONFLATE: the newest checkpoint notice only
 *   control      SUB, connects: shutdown
 *   reports      PUSH, connects: the figures as metrics messages (role evaluator), never
 *                blocking; without it they are printed on stdout
 *
 * One evaluation is several metrics messages of one (epoch, step), in this order (one
 * PUSH socket keeps order): {loss, top1, top5, images, best, classes}; then per-class
 * accuracy "class_acc.C" and the confusion matrix's non-zero cells "cm.TRUE.PRED"
 * (counts), 64 to a message; last {eval_done: 1}. Foreign or malformed messages on the
 * SUB sockets are dropped, counted and logged. */
#ifndef EVAL_REPORT_H
#define EVAL_REPORT_H

#include <stdint.h>

#include "eval_config.h"
#include "eval_stats.h"
#include "proto_curve.h"
#include "proto_zmq.h"

typedef struct EvalReport {
    void *control, *reports;  /* NULL when not configured */
    ProtoOut out;
    uint64_t dropped;         /* foreign or malformed messages dropped */
    uint64_t reports_dropped; /* reports lost to a full queue */
    int stop;                 /* a shutdown came */
    uint64_t last_heartbeat_ms;
    ProtoCurve curve;         /* --curve-key: CURVE client keys of the three sockets */
} EvalReport;

/* Opens the control and reports sockets, and the conflated notice SUB into *notices
 * (NULL without --checkpoints). */
int eval_report_open(EvalReport *r, void *ctx, const EvalConfig *c, void **notices, StkErr *err);

/* 1 once a shutdown message has come (reads control without blocking). */
int eval_report_stop(EvalReport *r);

/* Waits up to ms for a checkpoint notice: 0 with *ck and its path copied into path
 * (NUL-terminated), 1 when none came (or a foreign message was dropped). */
int eval_report_next_notice(EvalReport *r, void *notices, int ms, ProtoCheckpoint *ck,
                            char *path, size_t cap);

/* Reports (or prints) one evaluation of the checkpoint at path. */
void eval_report_stats(EvalReport *r, const EvalStats *s, const char *path, uint32_t epoch,
                       uint64_t step, int best);

void eval_report_error(EvalReport *r, const char *text);

/* A heartbeat on the reports socket (role evaluator) if a second has passed since the
 * last: stoker-run restarts an evaluator that stays silent (hung, or stopped); called
 * while waiting for notices and between val batches. */
void eval_report_heartbeat(EvalReport *r);
void eval_report_close(EvalReport *r);

#endif
