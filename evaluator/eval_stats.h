/* eval_stats.h: what one evaluation of a checkpoint measures over the val split: mean
 * loss, top-1 and top-5, per-class accuracy and the confusion matrix. */
#ifndef EVAL_STATS_H
#define EVAL_STATS_H

#include <stdint.h>

#include "stk_err.h"

typedef struct EvalStats {
    int k;              /* classes */
    double loss_sum;    /* sum over samples of their cross-entropy */
    uint64_t seen;      /* samples counted */
    uint64_t top1, top5;
    uint64_t *confusion; /* [k * k]: row = true label, column = predicted (arg max) */
    float *scratch;      /* [batch * k] for the loss */
    int batch;
} EvalStats;

/* For k classes and batches of at most `batch` samples. */
int eval_stats_init(EvalStats *s, int k, int batch, StkErr *err);
void eval_stats_free(EvalStats *s);

/* Back to nothing counted. */
void eval_stats_reset(EvalStats *s);

/* Counts the first n rows of logits ([n x k], n <= batch) against labels. */
int eval_stats_add(EvalStats *s, int n, const float *logits, const int32_t *labels, StkErr *err);

/* Mean loss, and top-1 / top-5 in percent (0 when nothing was counted). */
double eval_stats_loss(const EvalStats *s);
double eval_stats_top1(const EvalStats *s);
double eval_stats_top5(const EvalStats *s);

/* Accuracy of class c in percent (its diagonal over its row), -1 if it had no sample. */
double eval_stats_class_acc(const EvalStats *s, int c);

#endif
