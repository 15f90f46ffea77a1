/* cpu_pool.c: max pooling with PyTorch's argmax indices and adaptive average pooling,
 * forward and backward (see cpu_pool.h). One (n, c) plane at a time. */
#include "cpu_pool.h"

#include <math.h>
#include <string.h>

#define SHAPE_FMT "%dx%dx%dx%d"
#define SHAPE_ARGS(s) (s).n, (s).c, (s).h, (s).w

static int check_positive(Shape4 s, const char *fn, const char *what, StkErr *err) {
    if (s.n <= 0 || s.c <= 0 || s.h <= 0 || s.w <= 0)
        return stk_errf(err, "%s: %s shape " SHAPE_FMT " has a dimension that is not positive",
                        fn, what, SHAPE_ARGS(s));
    return 0;
}

static int same_shape(Shape4 a, Shape4 b) {
    return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
}

int cpu_maxpool_out_shape(const CpuMaxPool *p, Shape4 in, Shape4 *out, StkErr *err) {
    const char *fn = "cpu_maxpool";
    if (p->kh < 1 || p->kw < 1 || p->sh < 1 || p->sw < 1)
        return stk_errf(err, "%s: kernel %dx%d and stride %dx%d must be positive", fn, p->kh,
                        p->kw, p->sh, p->sw);
    if (p->ph < 0 || p->pw < 0 || p->ph > p->kh / 2 || p->pw > p->kw / 2)
        return stk_errf(err, "%s: padding %dx%d must be between 0 and half of kernel %dx%d", fn,
                        p->ph, p->pw, p->kh, p->kw);
    if (check_positive(in, fn, "input", err)) return -1;
    if ((int64_t)in.h * in.w > INT32_MAX)
        return stk_errf(err, "%s: input plane %dx%d too large for int32 indices", fn, in.h, in.w);
    if (in.h + 2 * p->ph < p->kh || in.w + 2 * p->pw < p->kw)
        return stk_errf(err, "%s: kernel %dx%d larger than padded input " SHAPE_FMT, fn, p->kh,
                        p->kw, SHAPE_ARGS(in));
    *out = (Shape4){in.n, in.c, (in.h + 2 * p->ph - p->kh) / p->sh + 1,
                    (in.w + 2 * p->pw - p->kw) / p->sw + 1};
    return 0;
}

static int check_maxpool(const CpuMaxPool *p, Shape4 in, Shape4 out, const char *fn,
                         StkErr *err) {
    Shape4 want;
    if (cpu_maxpool_out_shape(p, in, &want, err)) return stk_err_wrap(err, "%s", fn);
    if (!same_shape(out, want))
        return stk_errf(err, "%s: output " SHAPE_FMT " should be " SHAPE_FMT " for input " SHAPE_FMT,
                        fn, SHAPE_ARGS(out), SHAPE_ARGS(want), SHAPE_ARGS(in));
    return 0;
}

/* Max of one window of plane x (h x w) whose top-left corner is (r0, c0), possibly
 * outside; writes the first maximum's index (ties keep the first; like PyTorch, the last
 * NaN wins). */
static float window_max(const CpuMaxPool *p, const float *x, int h, int w, int r0, int c0,
                        int32_t *at) {
    float best = -INFINITY;
    int32_t best_at = -1;
    for (int r = r0 < 0 ? 0 : r0; r < r0 + p->kh && r < h; r++)
        for (int c = c0 < 0 ? 0 : c0; c < c0 + p->kw && c < w; c++) {
            float v = x[r * w + c];
            if (v > best || isnan(v) || best_at < 0) {
                best = v;
                best_at = r * w + c;
            }
        }
    *at = best_at;
    return best;
}

int cpu_maxpool_forward(const CpuMaxPool *p, Shape4 in, const float *x, Shape4 out, float *y,
                        int32_t *argmax, StkErr *err) {
    if (check_maxpool(p, in, out, "cpu_maxpool_forward", err)) return -1;
    size_t planes = (size_t)in.n * in.c, ihw = (size_t)in.h * in.w, ohw = (size_t)out.h * out.w;
    for (size_t q = 0; q < planes; q++) {
        for (int oh = 0; oh < out.h; oh++)
            for (int ow = 0; ow < out.w; ow++) {
                size_t o = q * ohw + (size_t)oh * out.w + ow;
                int32_t at;
                y[o] = window_max(p, x + q * ihw, in.h, in.w, oh * p->sh - p->ph,
                                  ow * p->sw - p->pw, &at);
                if (argmax) argmax[o] = at;
            }
    }
    return 0;
}

int cpu_maxpool_backward(const CpuMaxPool *p, Shape4 in, Shape4 out, const float *dy,
                         const int32_t *argmax, float *dx, StkErr *err) {
    if (check_maxpool(p, in, out, "cpu_maxpool_backward", err)) return -1;
    size_t planes = (size_t)in.n * in.c, ihw = (size_t)in.h * in.w, ohw = (size_t)out.h * out.w;
    memset(dx, 0, planes * ihw * sizeof *dx);
    for (size_t q = 0; q < planes; q++)
        for (size_t o = 0; o < ohw; o++) {
            int32_t at = argmax[q * ohw + o];
            if (at >= 0 && (size_t)at < ihw) dx[q * ihw + (size_t)at] += dy[q * ohw + o];
        }
    return 0;
}

static int check_adaptive(Shape4 in, Shape4 out, const char *fn, StkErr *err) {
    if (check_positive(in, fn, "input", err) || check_positive(out, fn, "output", err))
        return -1;
    if (in.n != out.n || in.c != out.c)
        return stk_errf(err, "%s: output " SHAPE_FMT " must keep the input's " SHAPE_FMT
                        " samples and channels", fn, SHAPE_ARGS(out), SHAPE_ARGS(in));
    return 0;
}

/* PyTorch's adaptive window [*lo, *hi) for output index o of `outs` over `ins` inputs. */
static void window(int o, int outs, int ins, int *lo, int *hi) {
    *lo = (int)(((int64_t)o * ins) / outs);
    *hi = (int)(((int64_t)(o + 1) * ins + outs - 1) / outs);
}

int cpu_avgpool_adaptive_forward(Shape4 in, const float *x, Shape4 out, float *y, StkErr *err) {
    if (check_adaptive(in, out, "cpu_avgpool_adaptive_forward", err)) return -1;
    size_t planes = (size_t)in.n * in.c, ihw = (size_t)in.h * in.w, ohw = (size_t)out.h * out.w;
    for (size_t q = 0; q < planes; q++) {
        const float *xp = x + q * ihw;
        for (int oh = 0; oh < out.h; oh++) {
            int r0, r1, c0, c1;
            window(oh, out.h, in.h, &r0, &r1);
            for (int ow = 0; ow < out.w; ow++) {
                window(ow, out.w, in.w, &c0, &c1);
                double sum = 0.0;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++) sum += xp[(size_t)r * in.w + c];
                y[q * ohw + (size_t)oh * out.w + ow] = (float)(sum / ((r1 - r0) * (c1 - c0)));
            }
        }
    }
    return 0;
}

int cpu_avgpool_adaptive_backward(Shape4 in, Shape4 out, const float *dy, float *dx,
                                  StkErr *err) {
    if (check_adaptive(in, out, "cpu_avgpool_adaptive_backward", err)) return -1;
    size_t planes = (size_t)in.n * in.c, ihw = (size_t)in.h * in.w, ohw = (size_t)out.h * out.w;
    memset(dx, 0, planes * ihw * sizeof *dx);
    for (size_t q = 0; q < planes; q++) {
        float *dxp = dx + q * ihw;
        for (int oh = 0; oh < out.h; oh++) {
            int r0, r1, c0, c1;
            window(oh, out.h, in.h, &r0, &r1);
            for (int ow = 0; ow < out.w; ow++) {
                window(ow, out.w, in.w, &c0, &c1);
                float g = dy[q * ohw + (size_t)oh * out.w + ow] / (float)((r1 - r0) * (c1 - c0));
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++) dxp[(size_t)r * in.w + c] += g;
            }
        }
    }
    return 0;
}
