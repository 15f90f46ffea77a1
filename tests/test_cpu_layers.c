/* test_cpu_layers.c: the CPU backend's layers against PyTorch 1.13 (tests/data/layers.bin,
 * made by tests/fixtures/make_layer_fixtures.py): outputs, gradients and running stats
 * within stated float32 tolerances, the largest difference logged per case. Finite
 * differences are in test_cpu_gradcheck.c, shape errors in test_cpu_shapes.c. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_act.h"
#include "cpu_bn.h"
#include "cpu_linear.h"
#include "cpu_loss.h"
#include "cpu_pool.h"
#include "test_cpu_fixture.h"

static FxCase *cases;
static int ncases;

static void load(void) { ncases = fx_load(&cases); }
static void unload(void) { fx_free(cases, ncases); }

TestSuite(cpu_layers, .init = load, .fini = unload);

/* Runs fn on every case of op; asserts there was at least one. */
static void each(const char *op, void (*fn)(const FxCase *c)) {
    int seen = 0;
    for (int i = 0; i < ncases; i++)
        if (!strcmp(cases[i].op, op)) fn(&cases[i]), seen++;
    cr_assert(seen > 0, "layers.bin has no %s case", op);
}

static float *out(size_t n) { return calloc(n, sizeof(float)); }

/* BN: statistics are double sums (PyTorch: double too); elementwise float. */
static void bn_train_case(const FxCase *c) {
    Shape4 s;
    const float *x = fx_f32(c, "x", &s);
    size_t n = shape4_numel(s), ch = (size_t)s.c;
    int affine = c->cfg[2] != 0.0;
    float *rm = out(ch), *rv = out(ch), *y = out(n), *sm = out(ch), *si = out(ch), *dx = out(n),
          *dw = out(ch), *db = out(ch);
    memcpy(rm, fx_f32(c, "running_mean", NULL), ch * 4);
    memcpy(rv, fx_f32(c, "running_var", NULL), ch * 4);
    int64_t tracked = 0;
    CpuBn bn = {s.c, c->cfg[1], c->cfg[0], affine ? fx_f32(c, "weight", NULL) : NULL,
                affine ? fx_f32(c, "bias", NULL) : NULL, rm, rv, &tracked};
    StkErr err;
    cr_assert_eq(cpu_bn_forward_train(&bn, s, x, y, sm, si, &err), 0, "%s", err.msg);
    cr_assert_eq(tracked, 1);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), n, 2e-6, 2e-6);
    fx_compare(c->name, "save_mean", sm, fx_f32(c, "save_mean", NULL), ch, 1e-7, 1e-6);
    fx_compare(c->name, "save_invstd", si, fx_f32(c, "save_invstd", NULL), ch, 0, 1e-6);
    fx_compare(c->name, "running_mean", rm, fx_f32(c, "running_mean_out", NULL), ch, 1e-7, 1e-6);
    fx_compare(c->name, "running_var", rv, fx_f32(c, "running_var_out", NULL), ch, 0, 1e-6);
    cr_assert_eq(cpu_bn_backward_train(&bn, s, x, fx_f32(c, "dy", NULL), sm, si, dx,
                                       affine ? dw : NULL, affine ? db : NULL, &err), 0);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), n, 1e-5, 1e-5);
    if (affine) {
        fx_compare(c->name, "dweight", dw, fx_f32(c, "dweight", NULL), ch, 1e-5, 1e-5);
        fx_compare(c->name, "dbias", db, fx_f32(c, "dbias", NULL), ch, 1e-5, 1e-5);
    }
    free(rm), free(rv), free(y), free(sm), free(si), free(dx), free(dw), free(db);
}

Test(cpu_layers, bn_train_matches_pytorch) { each("bn_train", bn_train_case); }

static void bn_eval_case(const FxCase *c) {
    Shape4 s;
    const float *x = fx_f32(c, "x", &s);
    size_t n = shape4_numel(s), ch = (size_t)s.c;
    float *y = out(n), *dx = out(n), *dw = out(ch), *db = out(ch);
    CpuBn bn = {s.c, c->cfg[0], 0.1, fx_f32(c, "weight", NULL), fx_f32(c, "bias", NULL),
                fx_f32(c, "running_mean", NULL), fx_f32(c, "running_var", NULL), NULL};
    StkErr err;
    cr_assert_eq(cpu_bn_forward_eval(&bn, s, x, y, &err), 0, "%s", err.msg);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), n, 2e-6, 2e-6);
    cr_assert_eq(cpu_bn_backward_eval(&bn, s, x, fx_f32(c, "dy", NULL), dx, dw, db, &err), 0);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), n, 1e-6, 1e-6);
    fx_compare(c->name, "dweight", dw, fx_f32(c, "dweight", NULL), ch, 1e-5, 1e-5);
    fx_compare(c->name, "dbias", db, fx_f32(c, "dbias", NULL), ch, 1e-5, 1e-5);
    free(y), free(dx), free(dw), free(db);
}

Test(cpu_layers, bn_eval_matches_pytorch) { each("bn_eval", bn_eval_case); }

/* Activations: the piecewise ones use PyTorch's operation order, so they must be exact
 * (kinks at 0, 6, +-3 included); SiLU and sigmoid differ only through exp (Sleef vs libm). */
static void act_case(const FxCase *c) {
    Shape4 s;
    const float *x = fx_f32(c, "x", &s);
    size_t n = shape4_numel(s);
    CpuActKind kind = (CpuActKind)c->cfg[0];
    double tol = kind == CPU_ACT_SILU || kind == CPU_ACT_SIGMOID ? 1e-6 : 0.0;
    float *y = out(n), *dx = out(n);
    StkErr err;
    cr_assert_eq(cpu_act_forward(kind, n, x, y, &err), 0, "%s", err.msg);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), n, tol, tol);
    cr_assert_eq(cpu_act_backward(kind, n, x, fx_f32(c, "dy", NULL), dx, &err), 0);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), n, tol, tol);
    free(y), free(dx);
}

Test(cpu_layers, activations_match_pytorch_at_kinks_too) { each("act", act_case); }

static void scale_case(const FxCase *c) {
    Shape4 s;
    const float *x = fx_f32(c, "x", &s), *sc = fx_f32(c, "s", NULL);
    size_t n = shape4_numel(s), nc = (size_t)s.n * s.c;
    float *y = out(n), *dx = out(n), *ds = out(nc);
    StkErr err;
    cr_assert_eq(cpu_scale_forward(s, x, sc, y, &err), 0, "%s", err.msg);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), n, 0, 0);
    cr_assert_eq(cpu_scale_backward(s, x, sc, fx_f32(c, "dy", NULL), dx, ds, &err), 0);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), n, 0, 0);
    fx_compare(c->name, "ds", ds, fx_f32(c, "ds", NULL), nc, 1e-6, 1e-6);
    free(y), free(dx), free(ds);
}

Test(cpu_layers, se_scale_matches_pytorch) { each("scale", scale_case); }

/* Max pooling selects and routes values: exact, indices included (ties go to the first). */
static void maxpool_case(const FxCase *c) {
    Shape4 in, want;
    const float *x = fx_f32(c, "x", &in);
    fx_f32(c, "y", &want);
    CpuMaxPool p = {(int)c->cfg[0], (int)c->cfg[1], (int)c->cfg[2],
                    (int)c->cfg[3], (int)c->cfg[4], (int)c->cfg[5]};
    Shape4 os;
    StkErr err;
    cr_assert_eq(cpu_maxpool_out_shape(&p, in, &os, &err), 0, "%s", err.msg);
    cr_assert(os.n == want.n && os.c == want.c && os.h == want.h && os.w == want.w,
              "%s: output %dx%d, PyTorch %dx%d", c->name, os.h, os.w, want.h, want.w);
    size_t n = shape4_numel(in), m = shape4_numel(os);
    float *y = out(m), *dx = out(n);
    int32_t *idx = calloc(m, 4), *want_idx = fx_i32(c, "indices");
    cr_assert_eq(cpu_maxpool_forward(&p, in, x, os, y, idx, &err), 0, "%s", err.msg);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), m, 0, 0);
    for (size_t i = 0; i < m; i++)
        cr_assert_eq(idx[i], want_idx[i], "%s: index %zu is %d, PyTorch %d", c->name, i, idx[i],
                     want_idx[i]);
    cr_assert_eq(cpu_maxpool_backward(&p, in, os, fx_f32(c, "dy", NULL), idx, dx, &err), 0);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), n, 0, 0);
    free(y), free(dx), free(idx);
}

Test(cpu_layers, maxpool_matches_pytorch_with_indices) { each("maxpool", maxpool_case); }

static void avgpool_case(const FxCase *c) {
    Shape4 in, os;
    const float *x = fx_f32(c, "x", &in);
    fx_f32(c, "y", &os);
    size_t n = shape4_numel(in), m = shape4_numel(os);
    float *y = out(m), *dx = out(n);
    StkErr err;
    cr_assert_eq(cpu_avgpool_adaptive_forward(in, x, os, y, &err), 0, "%s", err.msg);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), m, 1e-7, 1e-6);
    cr_assert_eq(cpu_avgpool_adaptive_backward(in, os, fx_f32(c, "dy", NULL), dx, &err), 0);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), n, 1e-7, 1e-6);
    free(y), free(dx);
}

Test(cpu_layers, adaptive_avgpool_matches_pytorch) { each("avgpool", avgpool_case); }

/* Linear: sums of up to 33 products in float by two different sgemm kernels. */
static void linear_case(const FxCase *c) {
    Shape4 xs;
    const float *x = fx_f32(c, "x", &xs), *w = fx_f32(c, "w", NULL);
    CpuLinear l = {(int)c->cfg[0], (int)c->cfg[1]};
    int bias = c->cfg[2] != 0.0;
    size_t nx = shape4_numel(xs), ny = (size_t)xs.n * l.out, nw = (size_t)l.out * l.in;
    float *y = out(ny), *dx = out(nx), *dw = out(nw), *db = out((size_t)l.out);
    StkErr err;
    cr_assert_eq(cpu_linear_forward(&l, xs, x, w, bias ? fx_f32(c, "b", NULL) : NULL, y, &err), 0,
                 "%s", err.msg);
    fx_compare(c->name, "y", y, fx_f32(c, "y", NULL), ny, 2e-6, 2e-6);
    cr_assert_eq(cpu_linear_backward(&l, xs, x, w, fx_f32(c, "dy", NULL), dx, dw,
                                     bias ? db : NULL, &err), 0, "%s", err.msg);
    fx_compare(c->name, "dx", dx, fx_f32(c, "dx", NULL), nx, 2e-6, 2e-6);
    fx_compare(c->name, "dw", dw, fx_f32(c, "dw", NULL), nw, 2e-6, 2e-6);
    if (bias) fx_compare(c->name, "db", db, fx_f32(c, "db", NULL), (size_t)l.out, 1e-6, 1e-6);
    free(y), free(dx), free(dw), free(db);
}

Test(cpu_layers, linear_matches_pytorch) { each("linear", linear_case); }

static void ce_case(const FxCase *c) {
    Shape4 ls;
    const float *logits = fx_f32(c, "logits", &ls);
    const int32_t *labels = fx_i32(c, "labels");
    size_t n = shape4_numel(ls);
    float *d = out(n);
    double loss;
    StkErr err;
    cr_assert_eq(cpu_ce_loss(ls.n, ls.c, logits, labels, c->cfg[0], &loss, d, &err), 0, "%s",
                 err.msg);
    float got = (float)loss;
    fx_compare(c->name, "loss", &got, fx_f32(c, "loss", NULL), 1, 1e-6, 1e-6);
    fx_compare(c->name, "dlogits", d, fx_f32(c, "dlogits", NULL), n, 1e-8, 1e-5);
    int top1, top5;
    cr_assert_eq(cpu_topk_correct(ls.n, ls.c, logits, labels, &top1, &top5, &err), 0);
    cr_assert_eq(top1, fx_i32(c, "top1")[0], "%s: top1 %d", c->name, top1);
    cr_assert_eq(top5, fx_i32(c, "top5")[0], "%s: top5 %d", c->name, top5);
    free(d);
}

Test(cpu_layers, cross_entropy_and_topk_match_pytorch) { each("ce", ce_case); }

/* Dropout and stochastic depth draw their own masks, so only the scale of what both keep
 * can be compared, bit for bit, and the kept fraction only statistically (5 sigma). */
static void mask_case(const FxCase *c) {
    Shape4 s;
    const float *x = fx_f32(c, "x", &s), *want = fx_f32(c, "y", NULL);
    size_t n = shape4_numel(s), both = 0, kept = 0;
    size_t units = strcmp(c->op, "dropout") ? (size_t)s.n : n;
    double p = c->cfg[0];
    float *y = out(n);
    StkErr err;
    int rc = units == n ? cpu_dropout_forward(n, p, 1, 42, x, y, &err)
                        : cpu_drop_path_forward(s, p, 1, 42, x, y, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        kept += y[i] != 0.0f;
        if (y[i] != 0.0f && want[i] != 0.0f) {
            both++;
            cr_assert_eq(y[i], want[i], "%s: kept value %zu is %.9g, PyTorch %.9g", c->name, i,
                         y[i], want[i]);
        }
    }
    double frac = (double)kept / n, sd = sqrt(p * (1 - p) / units);
    cr_log_info("%s: %zu values kept by both, kept fraction %.3f (expected %.3f)", c->name, both,
                frac, 1 - p);
    cr_assert(both > 0 && fabs(frac - (1 - p)) < 5 * sd, "%s: kept %.3f", c->name, frac);
    free(y);
}

Test(cpu_layers, dropout_scale_matches_pytorch) { each("dropout", mask_case); }
Test(cpu_layers, drop_path_scale_matches_pytorch) { each("drop_path", mask_case); }
