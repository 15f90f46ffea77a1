/* train_plan.h: stoker-train's choice of micro-batch and accumulation steps from its
 * flags (--micro-batch, --gpu, --vram-budget, --eval-share, --precision) and the memory
 * planner (vram_plan.h), and the --plan mode that prints the plan and exits. */
#ifndef TRAIN_PLAN_H
#define TRAIN_PLAN_H

#include <stdio.h>

#include "model.h"
#include "train_config.h"
#include "vram_plan.h"

/* The run's split of --batch-size into micro-batches. */
typedef struct TrainSplit {
    int micro;      /* samples per forward/backward: the loaders' and the backend's batch */
    int accum;      /* micro-batches per optimizer step */
    int planned;    /* 1: the planner chose micro (and printed its table) */
    const char *precision; /* the precision the plan is for ("fp32", "tf32", "bf16"), NULL
                            * without a plan: the run must use it when --precision is not
                            * given, or the plan is for another run than this one */
    uint64_t workspace;    /* the cuDNN workspace bound the plan assumed (0: the default) */
    int recompute;         /* 1: CUDA: batch norm + activation outputs recomputed in backward
                            * (--recompute on, or auto when the plan needed it) */
} TrainSplit;

/* Decides the split: --micro-batch when given; else, on --device cuda (or with --plan)
 * with a card known (--gpu / --vram-budget), the planner's, with its table printed to
 * out (unless NULL); else the whole batch in one pass. k: the CUDA kernels' sizes (NULL: host rules).
 * Fails (the planner's numbers in err) when even micro-batch 1 does not fit, or on a
 * precision the card lacks. */
int train_plan_split(const TrainConfig *c, const Model *m, const VramKernels *k, FILE *out,
                     TrainSplit *s, StkErr *err);

/* The split train_plan_split makes for these flags, for a process that has no model
 * (stoker-run, which gives its loaders the micro-batch): builds --model only when a card
 * is planned for, with the class count of the dataset's index; prints nothing. */
int train_plan_split_flags(const TrainConfig *c, const VramKernels *k, TrainSplit *s, StkErr *err);

/* What to tell a user whose device allocation failed anyway (another process took memory
 * after the plan, or the run had no plan; the failed allocation's message names what the
 * arenas need): the device's free memory now, and three ways out: free the card, let the
 * planner fit what is free (--vram-budget of the free memory plus the context reserve the
 * planner will take for c's --gpu, or its default: this process's own context is already
 * counted out of `free_bytes`), or half the micro-batch. One line into out (cap bytes). */
void train_plan_oom_hint(const TrainConfig *c, const TrainSplit *s, uint64_t free_bytes, char *out,
                         size_t cap);

/* --plan: builds --model for --train-crop-size with the dataset's class count (1000,
 * ImageNet's, without --data-path or before it is indexed), prints the plan to stdout and
 * returns the exit status: 0, or 1 after printing why on stderr. */
int train_plan_main(const TrainConfig *c, const VramKernels *k);

#endif
