/* run_progress.h: what a user watching stoker-run sees. On a terminal one live line
 * (epoch, step/total, images/s, loss, lr, input-wait %, ETA, last eval top-1) rewritten
 * in place; otherwise (a log file, a pipe) the same figures as plain lines. Other
 * messages go through run_progress_say so they do not land inside the live line. */
#ifndef RUN_PROGRESS_H
#define RUN_PROGRESS_H

#include <stdint.h>

typedef struct RunProgress {
    int tty;                   /* stdout is a terminal */
    int live;                  /* a live line is on screen (to clear before other text) */
    int epochs;                /* total epochs of the run */
    uint32_t epoch;
    uint64_t step, steps;      /* step within the epoch, steps per epoch */
    double images_per_s, loss, lr, input_wait;
    double top1;               /* last evaluation's top-1, < 0 before the first */
    int batch;
} RunProgress;

void run_progress_init(RunProgress *p, int epochs, int batch);

/* A logged training step: redraws the live line, or prints a plain one. */
void run_progress_step(RunProgress *p, uint32_t epoch, uint64_t step, uint64_t steps,
                       double images_per_s, double loss, double lr, double input_wait);

/* A finished evaluation (the line shows its top-1 from now on). */
void run_progress_eval(RunProgress *p, double top1);

/* Prints a message line (printf format) without breaking the live line. */
void run_progress_say(RunProgress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Ends the live line (before exit). */
void run_progress_end(RunProgress *p);

#endif
