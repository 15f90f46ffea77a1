/* run_progress.c: the live progress line (see run_progress.h). */
#include "run_progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void run_progress_init(RunProgress *p, int epochs, int batch) {
    *p = (RunProgress){.tty = isatty(STDOUT_FILENO), .epochs = epochs, .batch = batch, .top1 = -1};
}

/* Seconds left at the current speed. */
static double eta_s(const RunProgress *p) {
    if (p->images_per_s <= 0 || !p->steps) return -1;
    double left = (double)(p->epochs - 1 - (int)p->epoch) * (double)p->steps +
                  (double)(p->steps - p->step);
    return left * p->batch / p->images_per_s;
}

static void format(const RunProgress *p, char *buf, size_t cap) {
    double eta = eta_s(p);
    char top1[32] = "-";
    if (p->top1 >= 0) snprintf(top1, sizeof top1, "%.2f%%", p->top1);
    int m = eta < 0 ? 0 : (int)(eta / 60), s = eta < 0 ? 0 : (int)eta % 60;
    snprintf(buf, cap, "epoch %u/%d  step %llu/%llu  %.0f img/s  loss %.4f  lr %.3g  "
             "input wait %.0f%%  ETA %d:%02d  val top-1 %s", p->epoch + 1, p->epochs,
             (unsigned long long)p->step, (unsigned long long)p->steps, p->images_per_s,
             p->loss, p->lr, 100 * p->input_wait, m, s, top1);
}

static void draw(RunProgress *p) {
    char line[256];
    format(p, line, sizeof line);
    if (p->tty) printf("\r\033[K%s", line), p->live = 1;
    else printf("%s\n", line);
    fflush(stdout);
}

void run_progress_step(RunProgress *p, uint32_t epoch, uint64_t step, uint64_t steps,
                       double images_per_s, double loss, double lr, double input_wait) {
    p->epoch = epoch, p->step = step, p->steps = steps, p->images_per_s = images_per_s;
    p->loss = loss, p->lr = lr, p->input_wait = input_wait;
    draw(p);
}

void run_progress_eval(RunProgress *p, double top1) {
    p->top1 = top1;
    if (p->live) draw(p);
}

void run_progress_say(RunProgress *p, const char *fmt, ...) {
    if (p->live) printf("\r\033[K");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (p->live) draw(p);
    fflush(stdout);
}

void run_progress_end(RunProgress *p) {
    if (p->live) printf("\n");
    p->live = 0;
    fflush(stdout);
}
