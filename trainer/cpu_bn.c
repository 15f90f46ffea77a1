/* cpu_bn.c: batch normalisation forward and backward (see cpu_bn.h). Each channel's
 * statistics are two-pass sums in double over its N planes of H*W values, in order;
 * elementwise work is float, subtracting the mean first. */
#include "cpu_bn.h"

#include <math.h>

/* Index of the first value of sample n's plane of channel c. */
static inline size_t plane(Shape4 s, int n, int c) {
    return ((size_t)n * s.c + c) * (size_t)s.h * s.w;
}

static int check(const CpuBn *bn, Shape4 xs, const char *fn, StkErr *err) {
    if (xs.n <= 0 || xs.c <= 0 || xs.h <= 0 || xs.w <= 0)
        return stk_errf(err, "%s: shape %dx%dx%dx%d has a dimension that is not positive", fn,
                        xs.n, xs.c, xs.h, xs.w);
    if (xs.c != bn->c)
        return stk_errf(err, "%s: input %dx%dx%dx%d has %d channels, the layer has %d", fn, xs.n,
                        xs.c, xs.h, xs.w, xs.c, bn->c);
    return 0;
}

static int check_train(const CpuBn *bn, Shape4 xs, const char *fn, StkErr *err) {
    if (check(bn, xs, fn, err)) return -1;
    if ((size_t)xs.n * xs.h * xs.w < 2)
        return stk_errf(err,
                        "%s: expected more than 1 value per channel when training, got input "
                        "%dx%dx%dx%d",
                        fn, xs.n, xs.c, xs.h, xs.w);
    return 0;
}

/* Sum over channel c of (x - shift)^k for k = 1 or 2, in double, in memory order. */
static double chan_moment(Shape4 s, int c, const float *x, double shift, int k) {
    size_t hw = (size_t)s.h * s.w;
    double acc = 0.0;
    for (int n = 0; n < s.n; n++) {
        const float *p = x + plane(s, n, c);
        for (size_t i = 0; i < hw; i++) {
            double d = p[i] - shift;
            acc += k == 1 ? d : d * d;
        }
    }
    return acc;
}

/* y = (x - mean) * a + b over channel c. */
static void chan_affine(Shape4 s, int c, const float *x, float mean, float a, float b, float *y) {
    size_t hw = (size_t)s.h * s.w;
    for (int n = 0; n < s.n; n++) {
        size_t o = plane(s, n, c);
        for (size_t i = 0; i < hw; i++) y[o + i] = (x[o + i] - mean) * a + b;
    }
}

int cpu_bn_forward_train(const CpuBn *bn, Shape4 xs, const float *x, float *y,
                         float *save_mean, float *save_invstd, StkErr *err) {
    if (check_train(bn, xs, "cpu_bn_forward_train", err)) return -1;
    double m = (double)xs.n * xs.h * xs.w, mom = bn->momentum;
    for (int c = 0; c < xs.c; c++) {
        double mean = chan_moment(xs, c, x, 0.0, 1) / m;
        double ss = chan_moment(xs, c, x, mean, 2);
        double invstd = 1.0 / sqrt(ss / m + bn->eps);
        double w = bn->weight ? bn->weight[c] : 1.0;
        float b = bn->bias ? bn->bias[c] : 0.0f;
        chan_affine(xs, c, x, (float)mean, (float)(invstd * w), b, y);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        bn->running_mean[c] = (float)(mom * mean + (1.0 - mom) * bn->running_mean[c]);
        bn->running_var[c] = (float)(mom * ss / (m - 1.0) + (1.0 - mom) * bn->running_var[c]);
    }
    if (bn->num_batches_tracked) (*bn->num_batches_tracked)++;
    return 0;
}

int cpu_bn_forward_eval(const CpuBn *bn, Shape4 xs, const float *x, float *y, StkErr *err) {
    if (check(bn, xs, "cpu_bn_forward_eval", err)) return -1;
    for (int c = 0; c < xs.c; c++) {
        double invstd = 1.0 / sqrt((double)bn->running_var[c] + bn->eps);
        double w = bn->weight ? bn->weight[c] : 1.0;
        float b = bn->bias ? bn->bias[c] : 0.0f;
        chan_affine(xs, c, x, bn->running_mean[c], (float)(invstd * w), b, y);
    }
    return 0;
}

/* Over channel c: *sum_dy = sum dy and *dot = sum (x - mean) * dy, in double. */
static void chan_grad_sums(Shape4 s, int c, const float *x, const float *dy, float mean,
                           double *sum_dy, double *dot) {
    size_t hw = (size_t)s.h * s.w;
    double a = 0.0, d = 0.0;
    for (int n = 0; n < s.n; n++) {
        size_t o = plane(s, n, c);
        for (size_t i = 0; i < hw; i++) {
            a += dy[o + i];
            d += (double)(x[o + i] - mean) * dy[o + i];
        }
    }
    *sum_dy = a;
    *dot = d;
}

int cpu_bn_backward_train(const CpuBn *bn, Shape4 xs, const float *x, const float *dy,
                          const float *save_mean, const float *save_invstd, float *dx,
                          float *dweight, float *dbias, StkErr *err) {
    if (check_train(bn, xs, "cpu_bn_backward_train", err)) return -1;
    double m = (double)xs.n * xs.h * xs.w;
    size_t hw = (size_t)xs.h * xs.w;
    for (int c = 0; c < xs.c; c++) {
        float mean = save_mean[c];
        double invstd = save_invstd[c], sum_dy, dot;
        chan_grad_sums(xs, c, x, dy, mean, &sum_dy, &dot);
        /* dx = (dy - mean(dy) - xhat * mean(dy * xhat)) * invstd * gamma */
        float gm = (float)(sum_dy / m), k = (float)(dot * invstd * invstd / m);
        float scale = (float)(invstd * (bn->weight ? bn->weight[c] : 1.0));
        for (int n = 0; n < xs.n; n++) {
            size_t o = plane(xs, n, c);
            for (size_t i = 0; i < hw; i++)
                dx[o + i] = (dy[o + i] - gm - (x[o + i] - mean) * k) * scale;
        }
        if (dweight) dweight[c] = (float)(dot * invstd);
        if (dbias) dbias[c] = (float)sum_dy;
    }
    return 0;
}

int cpu_bn_backward_eval(const CpuBn *bn, Shape4 xs, const float *x, const float *dy,
                         float *dx, float *dweight, float *dbias, StkErr *err) {
    if (check(bn, xs, "cpu_bn_backward_eval", err)) return -1;
    size_t hw = (size_t)xs.h * xs.w;
    for (int c = 0; c < xs.c; c++) {
        double invstd = 1.0 / sqrt((double)bn->running_var[c] + bn->eps), sum_dy, dot;
        chan_grad_sums(xs, c, x, dy, bn->running_mean[c], &sum_dy, &dot);
        float scale = (float)(invstd * (bn->weight ? bn->weight[c] : 1.0));
        for (int n = 0; n < xs.n; n++) {
            size_t o = plane(xs, n, c);
            for (size_t i = 0; i < hw; i++) dx[o + i] = dy[o + i] * scale;
        }
        if (dweight) dweight[c] = (float)(dot * invstd);
        if (dbias) dbias[c] = (float)sum_dy;
    }
    return 0;
}
