/* eval_stats.c: evaluation figures (see eval_stats.h). Loss and top-k reuse the CPU
 * backend's own functions, so stoker-eval and stoker-train's inline evaluation agree. */
#include "eval_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_loss.h"

int eval_stats_init(EvalStats *s, int k, int batch, StkErr *err) {
    *s = (EvalStats){.k = k, .batch = batch};
    s->confusion = calloc((size_t)k * k, sizeof *s->confusion);
    s->scratch = malloc((size_t)batch * k * sizeof *s->scratch);
    if (!s->confusion || !s->scratch) {
        eval_stats_free(s);
        return stk_errf(err, "eval_stats: out of memory for %d classes", k);
    }
    return 0;
}

void eval_stats_free(EvalStats *s) {
    free(s->confusion);
    free(s->scratch);
    s->confusion = NULL, s->scratch = NULL;
}

void eval_stats_reset(EvalStats *s) {
    memset(s->confusion, 0, (size_t)s->k * s->k * sizeof *s->confusion);
    s->loss_sum = 0, s->seen = s->top1 = s->top5 = 0;
}

/* The arg max of a row, NaN first and ties to the lower index (as cpu_topk_correct). */
static int arg_max(const float *row, int k) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (!isnan(row[best]) && (isnan(row[j]) || row[j] > row[best])) best = j;
    return best;
}

int eval_stats_add(EvalStats *s, int n, const float *logits, const int32_t *labels, StkErr *err) {
    if (n < 1 || n > s->batch) return stk_errf(err, "eval_stats_add: %d rows, at most %d", n, s->batch);
    double l;
    int t1, t5;
    if (cpu_ce_loss(n, s->k, logits, labels, 0, &l, s->scratch, err) ||
        cpu_topk_correct(n, s->k, logits, labels, &t1, &t5, err))
        return -1;
    s->loss_sum += l * n, s->seen += (uint64_t)n;
    s->top1 += (uint64_t)t1, s->top5 += (uint64_t)t5;
    for (int i = 0; i < n; i++)
        s->confusion[(size_t)labels[i] * s->k + arg_max(logits + (size_t)i * s->k, s->k)]++;
    return 0;
}

double eval_stats_loss(const EvalStats *s) { return s->seen ? s->loss_sum / s->seen : 0; }
double eval_stats_top1(const EvalStats *s) { return s->seen ? 100.0 * s->top1 / s->seen : 0; }
double eval_stats_top5(const EvalStats *s) { return s->seen ? 100.0 * s->top5 / s->seen : 0; }

double eval_stats_class_acc(const EvalStats *s, int c) {
    uint64_t row = 0;
    for (int j = 0; j < s->k; j++) row += s->confusion[(size_t)c * s->k + j];
    return row ? 100.0 * s->confusion[(size_t)c * s->k + c] / row : -1;
}
