/* eval_pace.h: how often the evaluator may evaluate beside a trainer on the same GPU.
 *
 * Two processes on one GPU time-slice it: every second the evaluator computes is taken
 * from the trainer. A small model on a fast card writes a checkpoint every fraction of
 * a second, and evaluating each one costs the trainer 5-10% of its images/s. The pace
 * bounds that share: after an evaluation whose forward passes and checkpoint upload took
 * T seconds (wall time, which counts the slices the GPU gave the trainer meanwhile too,
 * so it errs on the trainer's side; waits for val batches from the loaders are not
 * counted: they take no GPU) the next starts no sooner than T (1/duty - 1) later, so at
 * most about `duty` of the wall time goes to evaluating. Notices that arrive meanwhile are held and conflated to the newest; the
 * run's final checkpoint is never held. duty 1: every notice at once (the CPU
 * evaluator, on a core of its own). */
#ifndef EVAL_PACE_H
#define EVAL_PACE_H

typedef struct EvalPace {
    double duty;    /* (0, 1] */
    double next_s;  /* the earliest start of the next evaluation (seconds, any clock) */
} EvalPace;

/* duty in (0, 1]; anything else is treated as 1. */
void eval_pace_init(EvalPace *p, double duty);

/* An evaluation that kept the GPU busy_s seconds (>= 0) ended at end_s. */
void eval_pace_done(EvalPace *p, double busy_s, double end_s);

/* 1 when a notice may be evaluated at now_s: the pace allows it, or it is final. */
int eval_pace_ready(const EvalPace *p, double now_s, int final);

/* Milliseconds until the pace allows the next, at most cap_ms, at least 0. */
int eval_pace_wait_ms(const EvalPace *p, double now_s, int cap_ms);

#endif
