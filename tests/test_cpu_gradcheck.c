/* test_cpu_gradcheck.c: every CPU layer's backward against central differences of its
 * own forward (objective sum(y * r) in double for a fixed random r, or the loss itself).
 * Tolerances: with steps h = 1e-2 on float32 forwards, the objective's terms that move
 * carry about 6e-8 relative rounding each, which divided by 2h is up to ~3e-5 for
 * outputs near 8; truncation (h^2 / 6 times the third derivative) stays under ~1e-5.
 * Measured worst cases are 2e-5, so analytic and numeric gradients must agree within
 * 1e-4 + 1e-3 * |gradient| (a wrong term in a backward is off by 1e-2 or more). Inputs
 * are nudged away from kinks (ReLU-like ops) and ties (max pooling) by more than h. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "cpu_act.h"
#include "cpu_bn.h"
#include "cpu_linear.h"
#include "cpu_loss.h"
#include "cpu_pool.h"
#include "test_cpu_fixture.h"

#define H 1e-2
#define ATOL 1e-4
#define RTOL 1e-3
#define SAMPLES 40

/* A layer under test: inputs, output, upstream gradient and the forward to rerun. */
typedef struct Probe {
    Shape4 xs, ys;
    float *x, *y, *r;      /* input, output, upstream gradient (numel of xs, ys, ys) */
    float *w, *b, *s;      /* parameters when the op has them */
    float *scratch[4];     /* per-op extra buffers */
    CpuBn bn;
    CpuMaxPool pool;
    CpuLinear lin;
    CpuActKind act;
    uint64_t key;
    double p;
    int32_t labels[8];
} Probe;

/* Every buffer a test makes, freed after it (LeakSanitizer runs in the ASan build). */
static void *allocs[64];
static int nallocs;

static void *take(size_t bytes) {
    cr_assert(nallocs < 64, "too many buffers");
    return allocs[nallocs++] = malloc(bytes);
}

static void free_all(void) {
    while (nallocs) free(allocs[--nallocs]);
}

TestSuite(cpu_gradcheck, .fini = free_all);

/* Returns n floats uniform in [lo, hi) from key, freed after the test. */
static float *buf(size_t n, uint64_t key, float lo, float hi) {
    float *p = take(n * sizeof *p);
    fx_fill(p, n, key, lo, hi);
    return p;
}

/* Runs the forward f on the probe and returns sum(y * r). */
#define OBJECTIVE(name, call)                                                         \
    static double name(void *ctx) {                                                   \
        Probe *pr = ctx;                                                              \
        StkErr err;                                                                   \
        cr_assert_eq(call, 0, "%s", err.msg);                                         \
        return fx_dot(pr->y, pr->r, shape4_numel(pr->ys));                            \
    }

OBJECTIVE(bn_train_obj, cpu_bn_forward_train(&pr->bn, pr->xs, pr->x, pr->y, pr->scratch[0],
                                             pr->scratch[1], &err))
OBJECTIVE(bn_eval_obj, cpu_bn_forward_eval(&pr->bn, pr->xs, pr->x, pr->y, &err))

static void probe_bn(Probe *pr, Shape4 xs) {
    pr->xs = pr->ys = xs;
    size_t n = shape4_numel(xs), c = (size_t)xs.c;
    pr->x = buf(n, 1, -2, 3), pr->y = buf(n, 0, 0, 0), pr->r = buf(n, 2, -1, 1);
    pr->w = buf(c, 3, 0.5f, 1.5f), pr->b = buf(c, 4, -0.5f, 0.5f);
    for (int k = 0; k < 4; k++) pr->scratch[k] = buf(c, 5 + k, 0.5f, 1.5f);
    pr->bn = (CpuBn){xs.c, 1e-5, 0.1, pr->w, pr->b, pr->scratch[2], pr->scratch[3], NULL};
}

static void bn_case(Shape4 xs, int train) {
    Probe pr;
    probe_bn(&pr, xs);
    size_t n = shape4_numel(xs), c = (size_t)xs.c;
    float *dx = take(n * 4), *dw = take(c * 4), *db = take(c * 4);
    StkErr err;
    FxObjective f = train ? bn_train_obj : bn_eval_obj;
    f(&pr);
    if (train)
        cr_assert_eq(cpu_bn_backward_train(&pr.bn, xs, pr.x, pr.r, pr.scratch[0], pr.scratch[1],
                                           dx, dw, db, &err), 0, "%s", err.msg);
    else
        cr_assert_eq(cpu_bn_backward_eval(&pr.bn, xs, pr.x, pr.r, dx, dw, db, &err), 0);
    fx_gradcheck(train ? "bn train dx" : "bn eval dx", f, &pr, pr.x, n, dx, H, ATOL, RTOL, SAMPLES);
    fx_gradcheck("bn dweight", f, &pr, pr.w, c, dw, H, ATOL, RTOL, SAMPLES);
    fx_gradcheck("bn dbias", f, &pr, pr.b, c, db, H, ATOL, RTOL, SAMPLES);
}

Test(cpu_gradcheck, bn_train) { bn_case((Shape4){3, 4, 3, 2}, 1); }
Test(cpu_gradcheck, bn1d_train) { bn_case((Shape4){6, 5, 1, 1}, 1); }
Test(cpu_gradcheck, bn_eval) { bn_case((Shape4){2, 3, 2, 3}, 0); }

OBJECTIVE(act_obj, cpu_act_forward(pr->act, shape4_numel(pr->xs), pr->x, pr->y, &err))

/* Moves x at least 3h away from the kinks at 0, +-3 and 6. */
static float nudge(float x) {
    static const float kinks[] = {0.0f, -3.0f, 3.0f, 6.0f};
    for (int k = 0; k < 4; k++)
        if (fabsf(x - kinks[k]) < 3 * H) return kinks[k] + (x < kinks[k] ? -4 * H : 4 * H);
    return x;
}

Test(cpu_gradcheck, activations) {
    for (int kind = 0; kind < CPU_ACT_COUNT; kind++) {
        Probe pr = {.xs = {2, 3, 4, 5}, .ys = {2, 3, 4, 5}, .act = (CpuActKind)kind};
        size_t n = shape4_numel(pr.xs);
        pr.x = buf(n, 10, -8, 8), pr.y = buf(n, 0, 0, 0), pr.r = buf(n, 11, -1, 1);
        for (size_t i = 0; i < n; i++) pr.x[i] = nudge(pr.x[i]);
        float *dx = take(n * 4);
        StkErr err;
        cr_assert_eq(cpu_act_backward(pr.act, n, pr.x, pr.r, dx, &err), 0, "%s", err.msg);
        fx_gradcheck(cpu_act_name(pr.act), act_obj, &pr, pr.x, n, dx, H, ATOL, RTOL, n);
    }
}

static double add_obj(void *ctx) {
    Probe *pr = ctx;
    cpu_add_forward(shape4_numel(pr->xs), pr->x, pr->w, pr->y);
    return fx_dot(pr->y, pr->r, shape4_numel(pr->ys));
}

Test(cpu_gradcheck, residual_add) {
    Probe pr = {.xs = {2, 3, 2, 2}, .ys = {2, 3, 2, 2}};
    size_t n = shape4_numel(pr.xs);
    pr.x = buf(n, 20, -1, 1), pr.w = buf(n, 21, -1, 1), pr.y = buf(n, 0, 0, 0);
    pr.r = buf(n, 22, -1, 1);
    float *da = take(n * 4), *db = take(n * 4);
    cpu_add_backward(n, pr.r, da, db);
    fx_gradcheck("add da", add_obj, &pr, pr.x, n, da, H, ATOL, RTOL, SAMPLES);
    fx_gradcheck("add db", add_obj, &pr, pr.w, n, db, H, ATOL, RTOL, SAMPLES);
}

OBJECTIVE(scale_obj, cpu_scale_forward(pr->xs, pr->x, pr->s, pr->y, &err))

Test(cpu_gradcheck, se_scale) {
    Probe pr = {.xs = {2, 3, 3, 2}, .ys = {2, 3, 3, 2}};
    size_t n = shape4_numel(pr.xs), nc = 6;
    pr.x = buf(n, 30, -2, 2), pr.s = buf(nc, 31, 0, 1), pr.y = buf(n, 0, 0, 0);
    pr.r = buf(n, 32, -1, 1);
    float *dx = take(n * 4), *ds = take(nc * 4);
    StkErr err;
    cr_assert_eq(cpu_scale_backward(pr.xs, pr.x, pr.s, pr.r, dx, ds, &err), 0, "%s", err.msg);
    fx_gradcheck("scale dx", scale_obj, &pr, pr.x, n, dx, H, ATOL, RTOL, SAMPLES);
    fx_gradcheck("scale ds", scale_obj, &pr, pr.s, nc, ds, H, ATOL, RTOL, SAMPLES);
}

OBJECTIVE(maxpool_obj, cpu_maxpool_forward(&pr->pool, pr->xs, pr->x, pr->ys, pr->y, NULL, &err))

Test(cpu_gradcheck, maxpool_overlapping_windows) {
    Probe pr = {.xs = {1, 4, 7, 7}, .pool = {3, 3, 2, 2, 1, 1}};
    StkErr err;
    cr_assert_eq(cpu_maxpool_out_shape(&pr.pool, pr.xs, &pr.ys, &err), 0, "%s", err.msg);
    size_t n = shape4_numel(pr.xs), m = shape4_numel(pr.ys);
    /* distinct values 0.05 apart (37 is prime to 196): no ties within 2h */
    pr.x = take(n * 4);
    for (size_t i = 0; i < n; i++) pr.x[i] = 0.05f * (float)((i * 37) % n) - 5.0f;
    pr.y = buf(m, 0, 0, 0), pr.r = buf(m, 40, -1, 1);
    int32_t *idx = take(m * 4);
    float *dx = take(n * 4);
    cr_assert_eq(cpu_maxpool_forward(&pr.pool, pr.xs, pr.x, pr.ys, pr.y, idx, &err), 0);
    cr_assert_eq(cpu_maxpool_backward(&pr.pool, pr.xs, pr.ys, pr.r, idx, dx, &err), 0);
    fx_gradcheck("maxpool dx", maxpool_obj, &pr, pr.x, n, dx, H, ATOL, RTOL, n);
}

OBJECTIVE(avgpool_obj, cpu_avgpool_adaptive_forward(pr->xs, pr->x, pr->ys, pr->y, &err))

static void avgpool_case(Shape4 in, Shape4 os) {
    Probe pr = {.xs = in, .ys = os};
    size_t n = shape4_numel(in), m = shape4_numel(os);
    pr.x = buf(n, 50, -2, 2), pr.y = buf(m, 0, 0, 0), pr.r = buf(m, 51, -1, 1);
    float *dx = take(n * 4);
    StkErr err;
    cr_assert_eq(cpu_avgpool_adaptive_backward(in, os, pr.r, dx, &err), 0, "%s", err.msg);
    fx_gradcheck("adaptive avgpool dx", avgpool_obj, &pr, pr.x, n, dx, H, ATOL, RTOL, n);
}

Test(cpu_gradcheck, global_avgpool) { avgpool_case((Shape4){2, 3, 4, 3}, (Shape4){2, 3, 1, 1}); }
Test(cpu_gradcheck, adaptive_avgpool) { avgpool_case((Shape4){1, 2, 7, 5}, (Shape4){1, 2, 3, 4}); }

OBJECTIVE(linear_obj, cpu_linear_forward(&pr->lin, pr->xs, pr->x, pr->w, pr->b, pr->y, &err))

Test(cpu_gradcheck, linear) {
    Probe pr = {.xs = {3, 2, 2, 2}, .ys = {3, 5, 1, 1}, .lin = {8, 5}};
    size_t nx = 24, nw = 40, ny = 15;
    pr.x = buf(nx, 60, -1, 1), pr.w = buf(nw, 61, -1, 1), pr.b = buf(5, 62, -1, 1);
    pr.y = buf(ny, 0, 0, 0), pr.r = buf(ny, 63, -1, 1);
    float *dx = take(nx * 4), *dw = take(nw * 4), *db = take(5 * 4);
    StkErr err;
    cr_assert_eq(cpu_linear_backward(&pr.lin, pr.xs, pr.x, pr.w, pr.r, dx, dw, db, &err), 0, "%s",
                 err.msg);
    fx_gradcheck("linear dx", linear_obj, &pr, pr.x, nx, dx, H, ATOL, RTOL, SAMPLES);
    fx_gradcheck("linear dw", linear_obj, &pr, pr.w, nw, dw, H, ATOL, RTOL, SAMPLES);
    fx_gradcheck("linear db", linear_obj, &pr, pr.b, 5, db, H, ATOL, RTOL, SAMPLES);
}

static double ce_obj(void *ctx) {
    Probe *pr = ctx;
    double loss;
    StkErr err;
    cr_assert_eq(cpu_ce_loss(pr->xs.n, pr->xs.c, pr->x, pr->labels, pr->p, &loss, NULL, &err), 0,
                 "%s", err.msg);
    return loss;
}

Test(cpu_gradcheck, cross_entropy_with_smoothing) {
    for (int k = 0; k < 2; k++) {
        Probe pr = {.xs = {5, 7, 1, 1}, .p = k ? 0.1 : 0.0, .labels = {0, 6, 3, 3, 1}};
        size_t n = 35;
        pr.x = buf(n, 70, -3, 3);
        float *d = take(n * 4);
        double loss;
        StkErr err;
        cr_assert_eq(cpu_ce_loss(5, 7, pr.x, pr.labels, pr.p, &loss, d, &err), 0, "%s", err.msg);
        fx_gradcheck(k ? "ce dlogits, smoothing 0.1" : "ce dlogits", ce_obj, &pr, pr.x, n, d, H,
                     ATOL, RTOL, n);
    }
}

OBJECTIVE(dropout_obj, cpu_dropout_forward(shape4_numel(pr->xs), pr->p, 1, pr->key, pr->x,
                                           pr->y, &err))
OBJECTIVE(drop_path_obj, cpu_drop_path_forward(pr->xs, pr->p, 1, pr->key, pr->x, pr->y, &err))

Test(cpu_gradcheck, dropout_and_drop_path) {
    for (int path = 0; path < 2; path++) {
        Probe pr = {.xs = {8, 3, 2, 2}, .ys = {8, 3, 2, 2}, .p = 0.4, .key = 99};
        size_t n = shape4_numel(pr.xs);
        pr.x = buf(n, 80, -2, 2), pr.y = buf(n, 0, 0, 0), pr.r = buf(n, 81, -1, 1);
        float *dx = take(n * 4);
        StkErr err;
        int rc = path ? cpu_drop_path_backward(pr.xs, pr.p, 1, pr.key, pr.r, dx, &err)
                      : cpu_dropout_backward(n, pr.p, 1, pr.key, pr.r, dx, &err);
        cr_assert_eq(rc, 0, "%s", err.msg);
        fx_gradcheck(path ? "drop_path dx" : "dropout dx", path ? drop_path_obj : dropout_obj, &pr,
                     pr.x, n, dx, H, ATOL, RTOL, n);
    }
}
