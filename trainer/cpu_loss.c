/* cpu_loss.c: label-smoothed softmax cross-entropy and top-k counts (see cpu_loss.h). */
#include "cpu_loss.h"

#include <math.h>

static int check(int n, int k, const int32_t *labels, const char *fn, StkErr *err) {
    if (n <= 0 || k <= 0)
        return stk_errf(err, "%s: logits %dx%d must have positive sizes", fn, n, k);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return stk_errf(err, "%s: label %d of row %d is outside [0, %d)", fn, labels[i], i,
                            k);
    return 0;
}

/* Writes the row's maximum to *mx and returns log(sum_j exp(row[j] - mx)), so that
 * log p[j] = (row[j] - mx) - result without cancelling two huge numbers. */
static double log_sum_exp(int k, const float *row, float *mx) {
    float m = row[0];
    for (int j = 1; j < k; j++) m = row[j] > m ? row[j] : m;
    double s = 0.0;
    for (int j = 0; j < k; j++) s += exp((double)row[j] - m);
    *mx = m;
    return log(s);
}

int cpu_ce_loss(int n, int k, const float *logits, const int32_t *labels, double eps,
                double *loss, float *dlogits, StkErr *err) {
    if (check(n, k, labels, "cpu_ce_loss", err)) return -1;
    if (!(eps >= 0.0 && eps <= 1.0))
        return stk_errf(err, "cpu_ce_loss: label smoothing %g is outside [0, 1]", eps);
    double total = 0.0, off = eps / k;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * k;
        float mx;
        double lse = log_sum_exp(k, row, &mx), sum_logp = 0.0;
        total -= (1.0 - eps) * (((double)row[labels[i]] - mx) - lse);
        if (eps > 0.0) { /* skipped at 0 so that a -inf logit does not make 0 * inf */
            for (int j = 0; j < k; j++) sum_logp += ((double)row[j] - mx) - lse;
            total -= off * sum_logp;
        }
        if (!dlogits) continue;
        float *d = dlogits + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            double q = off + (j == labels[i] ? 1.0 - eps : 0.0);
            d[j] = (float)((exp(((double)row[j] - mx) - lse) - q) / n);
        }
    }
    *loss = total / n;
    return 0;
}

/* Whether logit a of class ja ranks before logit b of class jb: NaN first (as torch.topk
 * sorts it), then larger values, then the lower class index. */
static int outranks(float a, int ja, float b, int jb) {
    if (isnan(a) != isnan(b)) return isnan(a);
    if (isnan(a) || a == b) return ja < jb;
    return a > b;
}

int cpu_topk_correct(int n, int k, const float *logits, const int32_t *labels, int *top1,
                     int *top5, StkErr *err) {
    if (check(n, k, labels, "cpu_topk_correct", err)) return -1;
    int c1 = 0, c5 = 0;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (size_t)i * k;
        int rank = 0; /* classes that outrank the label */
        for (int j = 0; j < k && rank < 5; j++)
            rank += outranks(row[j], j, row[labels[i]], labels[i]);
        c1 += rank < 1;
        c5 += rank < 5;
    }
    *top1 = c1;
    *top5 = c5;
    return 0;
}
