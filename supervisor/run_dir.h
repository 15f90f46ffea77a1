/* run_dir.h: the run directory, written by stoker-run alone (DESIGN: one writer):
 *
 *   config.json              every setting of the run
 *   metrics.jsonl            one JSON object a line: {"kind":"train",...} per logged step,
 *                            {"kind":"epoch",...} per epoch (sample accounting included),
 *                            {"kind":"eval",...} per evaluation (per-class accuracy too),
 *                            {"kind":"unevaluated",...} when the final checkpoint is not
 *   metrics.csv              the same train and eval records as CSV rows
 *   confusion.csv            the latest evaluation's confusion matrix (row: true class)
 *   bad_files.log            one line per bad file a loader reported
 *   checkpoints/             written by the trainer (last) and the evaluator (best)
 *   plots/                   PNGs drawn at the end (run_plots.h)
 *
 * Appending, so a resumed run continues its files. Lines are flushed as written: a run
 * killed at any moment leaves whole lines behind. */
#ifndef RUN_DIR_H
#define RUN_DIR_H

#include <stdint.h>
#include <stdio.h>

#include "stk_err.h"

typedef struct RunDir {
    char path[4096];
    FILE *jsonl, *csv, *bad;
    double t0;              /* monotonic seconds at run_dir_open: every metrics.jsonl record
                               ends with "wall_s", the seconds since then (time to accuracy) */
} RunDir;

/* One evaluation, assembled from the evaluator's reports. */
typedef struct RunEval {
    uint32_t epoch;
    uint64_t step;
    double loss, top1, top5, best;
    uint64_t skipped;       /* checkpoints announced since the previous evaluation and not
                               evaluated (the supervisor counts them) */
    int classes;            /* 0 until known */
    double *class_acc;      /* [classes] */
    uint64_t *confusion;    /* [classes * classes] */
} RunEval;

/* Makes path, path/checkpoints and path/plots (parents too) and opens the files. */
int run_dir_open(RunDir *d, const char *path, StkErr *err);
void run_dir_close(RunDir *d);

/* Writes config.json (a JSON object the caller built; jansson's json_t, taken here). */
int run_dir_config(RunDir *d, void *json, StkErr *err);

/* A logged training step. */
void run_dir_train(RunDir *d, uint32_t epoch, uint64_t step, double loss, double lr,
                   double images_per_s, double input_wait);

/* An epoch's summary: names/values as the trainer reported them. */
void run_dir_epoch(RunDir *d, uint32_t epoch, uint64_t step, const char *const *names,
                   const double *values, int n);

/* An evaluation (also rewrites confusion.csv). */
void run_dir_eval(RunDir *d, const RunEval *e);

/* The final checkpoint at path (epoch, step) was not evaluated, and why. */
void run_dir_unevaluated(RunDir *d, uint32_t epoch, uint64_t step, const char *path,
                         const char *why);

void run_dir_bad_file(RunDir *d, uint32_t loader, uint64_t sample, const char *path,
                      const char *reason);

#endif
