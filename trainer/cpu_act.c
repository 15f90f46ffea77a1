/* cpu_act.c: elementwise layers of the CPU backend (see cpu_act.h): activations with
 * PyTorch 1.13's formulas and gradients at the kinks, residual add, squeeze-and-excitation
 * scale, dropout and stochastic depth with counter-based masks. */
#include "cpu_act.h"

#include <math.h>
#include <string.h>

#include "stk_rng.h" /* stk_rng_at, stk_rng_unit: masks as a function of (key, index) */

static int check_shape(Shape4 s, const char *fn, StkErr *err) {
    if (s.n <= 0 || s.c <= 0 || s.h <= 0 || s.w <= 0)
        return stk_errf(err, "%s: shape %dx%dx%dx%d has a dimension that is not positive", fn,
                        s.n, s.c, s.h, s.w);
    return 0;
}

static int check_p(double p, const char *fn, StkErr *err) {
    if (!(p >= 0.0 && p <= 1.0)) return stk_errf(err, "%s: p = %g is outside [0, 1]", fn, p);
    return 0;
}

const char *cpu_act_name(CpuActKind kind) {
    static const char *names[CPU_ACT_COUNT] = {"relu",        "relu6", "hardswish",
                                               "hardsigmoid", "silu",  "sigmoid"};
    return (unsigned)kind < CPU_ACT_COUNT ? names[kind] : "?";
}

/* Each f(x) as PyTorch's CPU kernels write it (same operation order). NaN propagates. */
static inline float relu6(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

int cpu_act_forward(CpuActKind kind, size_t n, const float *x, float *y, StkErr *err) {
    switch (kind) {
    case CPU_ACT_RELU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        return 0;
    case CPU_ACT_RELU6:
        for (size_t i = 0; i < n; i++) y[i] = relu6(x[i]);
        return 0;
    case CPU_ACT_HARDSWISH:
        for (size_t i = 0; i < n; i++) y[i] = x[i] * relu6(x[i] + 3.0f) / 6.0f;
        return 0;
    case CPU_ACT_HARDSIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = relu6(x[i] + 3.0f) / 6.0f;
        return 0;
    case CPU_ACT_SILU:
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
        return 0;
    case CPU_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = sigmoid(x[i]);
        return 0;
    default:
        return stk_errf(err, "cpu_act_forward: unknown activation %d", (int)kind);
    }
}

/* PyTorch 1.13's backward formulas (threshold_backward, hardtanh_backward,
 * hardswish_backward, hardsigmoid_backward, silu_backward, sigmoid_backward). */
static inline float grad_of(CpuActKind kind, float x, float dy) {
    switch (kind) {
    case CPU_ACT_RELU: return x > 0.0f ? dy : 0.0f;
    case CPU_ACT_RELU6: return (x <= 0.0f || x >= 6.0f) ? 0.0f : dy;
    case CPU_ACT_HARDSWISH:
        if (x < -3.0f) return 0.0f;
        return x <= 3.0f ? dy * (x / 3.0f + 0.5f) : dy;
    case CPU_ACT_HARDSIGMOID: return (x > -3.0f && x < 3.0f) ? dy * (1.0f / 6.0f) : 0.0f;
    case CPU_ACT_SILU: {
        float s = sigmoid(x);
        return dy * s * (1.0f + x * (1.0f - s));
    }
    case CPU_ACT_SIGMOID: {
        float s = sigmoid(x);
        return dy * (1.0f - s) * s;
    }
    default: return 0.0f;
    }
}

int cpu_act_backward(CpuActKind kind, size_t n, const float *x, const float *dy, float *dx,
                     StkErr *err) {
    if ((unsigned)kind >= CPU_ACT_COUNT)
        return stk_errf(err, "cpu_act_backward: unknown activation %d", (int)kind);
    for (size_t i = 0; i < n; i++) dx[i] = grad_of(kind, x[i], dy[i]);
    return 0;
}

void cpu_add_forward(size_t n, const float *a, const float *b, float *y) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void cpu_add_backward(size_t n, const float *dy, float *da, float *db) {
    if (da && da != dy) memcpy(da, dy, n * sizeof *da);
    if (db && db != dy) memcpy(db, dy, n * sizeof *db);
}

int cpu_scale_forward(Shape4 xs, const float *x, const float *s, float *y, StkErr *err) {
    if (check_shape(xs, "cpu_scale_forward", err)) return -1;
    size_t planes = (size_t)xs.n * xs.c, hw = (size_t)xs.h * xs.w;
    for (size_t p = 0; p < planes; p++)
        for (size_t i = 0; i < hw; i++) y[p * hw + i] = x[p * hw + i] * s[p];
    return 0;
}

int cpu_scale_backward(Shape4 xs, const float *x, const float *s, const float *dy, float *dx,
                       float *ds, StkErr *err) {
    if (check_shape(xs, "cpu_scale_backward", err)) return -1;
    size_t planes = (size_t)xs.n * xs.c, hw = (size_t)xs.h * xs.w;
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * hw, *dyp = dy + p * hw;
        if (ds) {
            double acc = 0.0;
            for (size_t i = 0; i < hw; i++) acc += (double)dyp[i] * xp[i];
            ds[p] = (float)acc;
        }
        if (dx)
            for (size_t i = 0; i < hw; i++) dx[p * hw + i] = dyp[i] * s[p];
    }
    return 0;
}

/* Multiplies n elements of x by the dropout mask of (key, first counter) into y: each
 * element (or each run of `run` elements, for stochastic depth) draws one counter. */
static void apply_mask(size_t n, size_t run, double p, uint64_t key, const float *x, float *y) {
    float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    for (size_t r = 0; r < n / run; r++) {
        int keep = stk_rng_unit(stk_rng_at(key, r)) < 1.0 - p;
        for (size_t i = r * run; i < (r + 1) * run; i++) y[i] = keep ? x[i] * scale : 0.0f;
    }
}

static void copy(size_t n, const float *x, float *y) {
    if (x != y) memmove(y, x, n * sizeof *y);
}

int cpu_dropout_forward(size_t n, double p, int train, uint64_t key, const float *x, float *y,
                        StkErr *err) {
    if (check_p(p, "cpu_dropout_forward", err)) return -1;
    if (!train || p == 0.0) copy(n, x, y);
    else apply_mask(n, 1, p, key, x, y);
    return 0;
}

int cpu_dropout_backward(size_t n, double p, int train, uint64_t key, const float *dy,
                         float *dx, StkErr *err) {
    if (check_p(p, "cpu_dropout_backward", err)) return -1;
    if (!train || p == 0.0) copy(n, dy, dx);
    else apply_mask(n, 1, p, key, dy, dx);
    return 0;
}

int cpu_drop_path_forward(Shape4 xs, double p, int train, uint64_t key, const float *x,
                          float *y, StkErr *err) {
    if (check_shape(xs, "cpu_drop_path_forward", err) ||
        check_p(p, "cpu_drop_path_forward", err))
        return -1;
    size_t n = shape4_numel(xs), run = n / (size_t)xs.n;
    if (!train || p == 0.0) copy(n, x, y);
    else apply_mask(n, run, p, key, x, y);
    return 0;
}

int cpu_drop_path_backward(Shape4 xs, double p, int train, uint64_t key, const float *dy,
                           float *dx, StkErr *err) {
    if (check_shape(xs, "cpu_drop_path_backward", err) ||
        check_p(p, "cpu_drop_path_backward", err))
        return -1;
    size_t n = shape4_numel(xs), run = n / (size_t)xs.n;
    if (!train || p == 0.0) copy(n, dy, dx);
    else apply_mask(n, run, p, key, dy, dx);
    return 0;
}
