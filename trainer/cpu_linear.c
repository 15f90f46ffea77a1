/* cpu_linear.c: nn.Linear forward and backward as three sgemm calls (see cpu_linear.h).
 * OpenBLAS gives the same bits run after run at a fixed thread count (what --deterministic
 * needs), but not across thread counts on every CPU (test_cpu_behaviour.c). */
#include "cpu_linear.h"

#include <cblas.h> /* cblas_sgemm */

static int check(const CpuLinear *l, Shape4 xs, const char *fn, StkErr *err) {
    if (l->in <= 0 || l->out <= 0)
        return stk_errf(err, "%s: layer %d -> %d features must be positive", fn, l->in, l->out);
    if (xs.n <= 0 || xs.c <= 0 || xs.h <= 0 || xs.w <= 0)
        return stk_errf(err, "%s: shape %dx%dx%dx%d has a dimension that is not positive", fn,
                        xs.n, xs.c, xs.h, xs.w);
    if ((int64_t)xs.c * xs.h * xs.w != l->in)
        return stk_errf(err, "%s: input %dx%dx%dx%d has %lld features per sample, the layer "
                        "takes %d", fn, xs.n, xs.c, xs.h, xs.w,
                        (long long)xs.c * xs.h * xs.w, l->in);
    return 0;
}

int cpu_linear_forward(const CpuLinear *l, Shape4 xs, const float *x, const float *w,
                       const float *b, float *y, StkErr *err) {
    if (check(l, xs, "cpu_linear_forward", err)) return -1;
    int n = xs.n;
    /* y[n, out] = x[n, in] * W[out, in]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->out, l->in, 1.0f, x, l->in, w,
                l->in, 0.0f, y, l->out);
    if (b)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < l->out; o++) y[(size_t)i * l->out + o] += b[o];
    return 0;
}

int cpu_linear_backward(const CpuLinear *l, Shape4 xs, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db, StkErr *err) {
    if (check(l, xs, "cpu_linear_backward", err)) return -1;
    int n = xs.n;
    if (dx) /* dx[n, in] = dy[n, out] * W[out, in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->in, l->out, 1.0f, dy,
                    l->out, w, l->in, 0.0f, dx, l->in);
    if (dw) /* dw[out, in] = dy[n, out]^T * x[n, in] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, n, 1.0f, dy, l->out,
                    x, l->in, 0.0f, dw, l->in);
    if (db)
        for (int o = 0; o < l->out; o++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++) acc += dy[(size_t)i * l->out + o];
            db[o] = (float)acc;
        }
    return 0;
}
