/* eval_plan.h: the evaluator's memory share on a GPU it shares with a trainer. stoker-run
 * gives it --vram-budget (the trainer's plan's --eval-share of the card, the evaluator's
 * own CUDA context included: it is a process of its own) and the card's --gpu preset;
 * the evaluator runs an inference-only network (vram_arenas_inference) and evaluates in
 * the largest batch up to --batch-size whose peak fits that share, in the precision the
 * trainer's plan uses for the card. Without a share it evaluates at --batch-size. */
#ifndef EVAL_PLAN_H
#define EVAL_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "eval_config.h"
#include "model.h"
#include "vram_plan.h"

typedef struct EvalPlan {
    int batch;             /* the evaluation batch (the val loaders' too) */
    int planned;           /* 1: fitted to --vram-budget */
    const char *precision; /* what the plan is for (NULL: the backend's choice, no plan) */
    uint64_t workspace;    /* the cuDNN workspace bound the plan assumed (0: the default) */
    VramRequest req;       /* what was fitted (planned only) */
    VramPlan plan;
} EvalPlan;

/* Decides batch and precision for c (device cuda with --vram-budget: fitted; otherwise
 * --batch-size and --precision as given). card_default: the precision the device runs
 * without --precision (tb_default_precision's), used when neither --precision nor a
 * --gpu preset says. k: the CUDA kernels' sizes (NULL: host rules). Fails with the numbers
 * when not even batch 1 fits, or on a precision the preset's card lacks. */
int eval_plan_decide(const EvalConfig *c, const Model *m, const char *card_default,
                     const VramKernels *k, EvalPlan *p, StkErr *err);

/* One line: "eval plan: batch B of A asked, P, peak X MiB of a Y MiB share (params ...)". */
void eval_plan_print(FILE *f, const EvalPlan *p, int asked);

#endif
