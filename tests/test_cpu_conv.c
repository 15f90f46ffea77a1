/* test_cpu_conv.c: cpu_conv (oneDNN) against torch.nn.Conv2d on a table of layers
 * (tests/data/conv.bin, written by tests/fixtures/make_conv_fixtures.py: run
 * `/usr/bin/python3 tests/fixtures/make_conv_fixtures.py` after changing its table), its
 * gradients against central differences, the buffers each call is given, and its errors. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_conv.h"
#include "stk_rng.h"

#define N_CASES 11 /* configurations in conv.bin: make_conv_fixtures.py's CONFIGS */

/* Tolerance against PyTorch: |got - ref| <= TOL * (1 + |ref|). The references are exact
 * sums rounded once to float32; ours are float32 sums of at most a few hundred products
 * of values in [-1, 1] (392 taps for dx of the stem), whose rounding is a few 1e-6
 * (torch's own float32 results differ from float64 by at most 4e-6 on these cases), so
 * TOL leaves a margin of 25 or more. A wrong tap, group or missing bias is off by 0.1 or
 * more. */
#define TOL 1e-4

typedef struct Case {
    char name[96];
    ConvDesc d;
    Shape4 in, out;
    size_t nx, nw, nb, ny; /* elements of x, w, b (0 without bias), y */
    float *blob;           /* all arrays; the pointers below point into it */
    float *x, *w, *b, *dy, *y, *dx, *dw, *db;
} Case;

static size_t weights_numel(const ConvDesc *d) {
    return (size_t)d->out_c * (d->in_c / d->groups) * d->kh * d->kw;
}

/* Sizes c from its desc and input shape, and points the arrays into one blob. */
static void case_layout(Case *c) {
    c->out = cpu_conv_out_shape(&c->d, c->in);
    cr_assert(c->out.n > 0, "%s: fixture layer rejected by cpu_conv_out_shape", c->name);
    c->nx = shape4_numel(c->in), c->ny = shape4_numel(c->out);
    c->nw = weights_numel(&c->d), c->nb = c->d.bias ? (size_t)c->d.out_c : 0;
    size_t total = 2 * (c->nx + c->nw + c->nb + c->ny);
    c->blob = malloc(total * sizeof(float));
    cr_assert(c->blob);
    float *p = c->blob;
    c->x = p, p += c->nx, c->w = p, p += c->nw, c->b = c->nb ? p : NULL, p += c->nb;
    c->dy = p, p += c->ny, c->y = p, p += c->ny, c->dx = p, p += c->nx, c->dw = p, p += c->nw;
    c->db = c->nb ? p : NULL;
}

/* Reads case index of conv.bin into c (the caller frees c->blob). */
static void read_case(int index, Case *c, uint32_t *count) {
    FILE *f = fopen(STOKER_TEST_DATA "/conv.bin", "rb");
    cr_assert(f, "cannot open %s/conv.bin", STOKER_TEST_DATA);
    char magic[4];
    uint32_t version, n;
    cr_assert(fread(magic, 4, 1, f) == 1 && !memcmp(magic, "STKC", 4), "conv.bin: bad magic");
    cr_assert(fread(&version, 4, 1, f) == 1 && version == 1, "conv.bin: version");
    cr_assert(fread(&n, 4, 1, f) == 1 && (int)n > index);
    *count = n;
    for (int i = 0; i <= index; i++) {
        uint32_t len;
        int32_t v[13];
        memset(c, 0, sizeof *c);
        cr_assert(fread(&len, 4, 1, f) == 1 && len < sizeof c->name);
        cr_assert(fread(c->name, 1, len, f) == len && fread(v, 4, 13, f) == 13);
        c->in = (Shape4){v[0], v[1], v[2], v[3]};
        c->d = (ConvDesc){v[1], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]};
        case_layout(c);
        size_t total = 2 * (c->nx + c->nw + c->nb + c->ny);
        cr_assert(fread(c->blob, sizeof(float), total, f) == total, "%s: short", c->name);
        if (i < index) free(c->blob);
    }
    fclose(f);
}

static float *nan_buf(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* The largest |got - ref| and |got - ref| / (1 + |ref|) (infinite if got has a NaN, i.e.
 * an element the pass did not write), and the largest |ref|. */
typedef struct Diff {
    double abs, scaled, ref_max;
} Diff;

static Diff diff(const float *got, const float *ref, size_t n) {
    Diff d = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)got[i] - ref[i]);
        if (isnan(a)) a = INFINITY;
        d.abs = fmax(d.abs, a);
        d.scaled = fmax(d.scaled, a / (1 + fabs(ref[i])));
        d.ref_max = fmax(d.ref_max, fabs(ref[i]));
    }
    return d;
}

static void expect_close(const char *name, const char *what, Diff d, size_t n) {
    cr_expect(d.scaled <= TOL, "%s: %s: max |diff|/(1+|ref|) %.3g > %g", name, what, d.scaled, TOL);
    /* a reference of zeros would let a pass that writes zeros through */
    cr_expect(n == 0 || d.ref_max > 0.1, "%s: %s: reference is trivial", name, what);
}

static void setup_dnnl(CpuDnnl *dn) {
    StkErr err;
    cr_assert_eq(cpu_dnnl_init(dn, &err), 0, "%s", err.msg);
}

ParameterizedTestParameters(cpu_conv, matches_pytorch) {
    static int idx[N_CASES];
    for (int i = 0; i < N_CASES; i++) idx[i] = i;
    return cr_make_param_array(int, idx, N_CASES);
}

ParameterizedTest(int *i, cpu_conv, matches_pytorch) {
    Case c;
    uint32_t count;
    read_case(*i, &c, &count);
    cr_assert_eq(count, N_CASES, "conv.bin has %u cases, the test expects %d", count, N_CASES);
    CpuDnnl dn;
    CpuConv cv;
    StkErr err;
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &c.d, c.in, 1, &err), 0, "%s: %s", c.name, err.msg);
    float *y = nan_buf(c.ny), *dx = nan_buf(c.nx), *dw = nan_buf(c.nw), *db = nan_buf(c.nb);
    cr_assert_eq(cpu_conv_forward(&cv, c.x, c.w, c.b, y, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_backward_data(&cv, c.dy, c.w, dx, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_backward_weights(&cv, c.x, c.dy, dw, c.nb ? db : NULL, &err), 0, "%s",
                 err.msg);
    Diff dyv = diff(y, c.y, c.ny), ddx = diff(dx, c.dx, c.nx), ddw = diff(dw, c.dw, c.nw);
    Diff ddb = diff(db, c.db, c.nb);
    cr_log_info("%-38s max |diff| y %.2e  dx %.2e  dw %.2e  db %.2e", c.name, dyv.abs, ddx.abs,
                ddw.abs, ddb.abs);
    expect_close(c.name, "y", dyv, c.ny);
    expect_close(c.name, "dx", ddx, c.nx);
    expect_close(c.name, "dw", ddw, c.nw);
    expect_close(c.name, "db", ddb, c.nb);
    free(y), free(dx), free(dw), free(db), free(c.blob);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

/* Fills p with uniform values in [-1, 1) from stream key. */
static float *rand_buf(size_t n, uint64_t key) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(2 * stk_rng_unit(stk_rng_at(key, i)) - 1);
    return p;
}

/* The tiny layer of the finite-difference test: grouped, strided, padded, biased. */
static const ConvDesc fd_desc = {.in_c = 4, .out_c = 6, .kh = 3, .kw = 3, .stride_h = 2,
                                 .stride_w = 2, .pad_h = 1, .pad_w = 1, .groups = 2, .bias = 1};
static const Shape4 fd_in = {2, 4, 5, 6};

/* L = sum(y * dy) in double for the current x, w, b. */
static double fd_loss(CpuConv *cv, const float *x, const float *w, const float *b, float *y,
                      const float *dy) {
    StkErr err;
    cr_assert_eq(cpu_conv_forward(cv, x, w, b, y, &err), 0, "%s", err.msg);
    double l = 0;
    for (size_t i = 0; i < shape4_numel(cv->out); i++) l += (double)y[i] * dy[i];
    return l;
}

/* The largest |(L(p + h) - L(p - h)) / (h+ + h-) - g| over every element of p. L is linear
 * in each argument, so the quotient is exact but for L's float32 rounding; the steps h+
 * and h- are what float32 made of p +- 0.5. */
static double fd_check(CpuConv *cv, float *x, float *w, float *b, float *y, const float *dy,
                       float *p, const float *g, size_t n) {
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        float save = p[k];
        p[k] = save + 0.5f;
        double hp = (double)p[k] - save, lp = fd_loss(cv, x, w, b, y, dy);
        p[k] = save - 0.5f;
        double hm = save - (double)p[k], lm = fd_loss(cv, x, w, b, y, dy);
        p[k] = save;
        worst = fmax(worst, fabs((lp - lm) / (hp + hm) - g[k]));
    }
    return worst;
}

/* Tolerance: L sums 108 products y*dy whose y carry float32 rounding of ~1e-6 each, so
 * the quotient is off by ~1e-5 (worst case ~2e-3 if every rounding aligned); gradient
 * entries are O(1) and a wrong one is off by 0.1 or more. */
Test(cpu_conv, gradients_match_central_differences) {
    CpuDnnl dn;
    CpuConv cv;
    StkErr err;
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &fd_desc, fd_in, 1, &err), 0, "%s", err.msg);
    size_t nx = shape4_numel(fd_in), ny = shape4_numel(cv.out), nw = weights_numel(&fd_desc);
    float *x = rand_buf(nx, 1), *w = rand_buf(nw, 2), *b = rand_buf(6, 3), *dy = rand_buf(ny, 4);
    float *y = nan_buf(ny), *dx = nan_buf(nx), *dw = nan_buf(nw), *db = nan_buf(6);
    cr_assert_eq(cpu_conv_backward_data(&cv, dy, w, dx, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_backward_weights(&cv, x, dy, dw, db, &err), 0, "%s", err.msg);
    double ex = fd_check(&cv, x, w, b, y, dy, x, dx, nx);
    double ew = fd_check(&cv, x, w, b, y, dy, w, dw, nw);
    double eb = fd_check(&cv, x, w, b, y, dy, b, db, 6);
    cr_log_info("central differences: max |diff| dx %.2e  dw %.2e  db %.2e", ex, ew, eb);
    cr_expect(ex <= 1e-3, "dx off by %.3g", ex);
    cr_expect(ew <= 1e-3, "dw off by %.3g", ew);
    cr_expect(eb <= 1e-3, "db off by %.3g", eb);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

/* Each pass reads the buffers it is given on that call: doubling x doubles y exactly
 * (no bias; scaling by 2 commutes with float rounding), and going back to x gives y back. */
Test(cpu_conv, each_call_reads_the_buffers_it_is_given) {
    ConvDesc d = {.in_c = 3, .out_c = 8, .kh = 7, .kw = 7, .stride_h = 2, .stride_w = 2,
                  .pad_h = 3, .pad_w = 3, .groups = 1, .bias = 0};
    Shape4 in = {2, 3, 12, 12};
    CpuDnnl dn;
    CpuConv cv;
    StkErr err;
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &d, in, 0, &err), 0, "%s", err.msg);
    size_t nx = shape4_numel(in), ny = shape4_numel(cv.out);
    float *x = rand_buf(nx, 5), *x2 = malloc(nx * sizeof *x2), *w = rand_buf(weights_numel(&d), 6);
    float *y1 = nan_buf(ny), *y2 = nan_buf(ny), *y3 = nan_buf(ny);
    for (size_t i = 0; i < nx; i++) x2[i] = 2 * x[i];
    cr_assert_eq(cpu_conv_forward(&cv, x, w, NULL, y1, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_forward(&cv, x2, w, NULL, y2, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_forward(&cv, x, w, NULL, y3, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < ny; i++) {
        cr_assert(y2[i] == 2 * y1[i], "y[%zu]: %.9g for 2x, %.9g for x", i, y2[i], y1[i]);
        cr_assert(y3[i] == y1[i], "y[%zu]: %.9g then %.9g", i, y3[i], y1[i]);
    }
    free(x), free(x2), free(w), free(y1), free(y2), free(y3);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

/* Backward passes overwrite dx, dw and db: running them twice gives the same values. */
Test(cpu_conv, backward_overwrites_gradients) {
    Case c;
    uint32_t count;
    read_case(0, &c, &count);
    cr_assert(c.nb > 0, "case 0 has a bias");
    CpuDnnl dn;
    CpuConv cv;
    StkErr err;
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &c.d, c.in, 1, &err), 0, "%s", err.msg);
    float *dx = nan_buf(c.nx), *dw = nan_buf(c.nw), *db = nan_buf(c.nb);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(cpu_conv_backward_data(&cv, c.dy, c.w, dx, &err), 0, "%s", err.msg);
        cr_assert_eq(cpu_conv_backward_weights(&cv, c.x, c.dy, dw, db, &err), 0, "%s", err.msg);
        cr_expect(diff(dx, c.dx, c.nx).scaled <= TOL, "round %d: dx", round);
        cr_expect(diff(dw, c.dw, c.nw).scaled <= TOL, "round %d: dw", round);
        cr_expect(diff(db, c.db, c.nb).scaled <= TOL, "round %d: db", round);
    }
    free(dx), free(dw), free(db), free(c.blob);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

typedef struct BadCase {
    ConvDesc d;
    Shape4 in;
    char msg[64]; /* what init must say (inline: parameters are copied to the test process) */
} BadCase;

#define DESC(ic, oc, k, s, p, g, b)                                                      \
    {.in_c = ic, .out_c = oc, .kh = k, .kw = k, .stride_h = s, .stride_w = s, .pad_h = p, \
     .pad_w = p, .groups = g, .bias = b}

ParameterizedTestParameters(cpu_conv, rejects_bad_layer) {
    static BadCase cases[] = {
        {DESC(6, 8, 3, 1, 1, 4, 0), {2, 6, 8, 8}, "conv: in_c 6 not divisible by groups 4"},
        {DESC(8, 6, 3, 1, 1, 4, 0), {2, 8, 8, 8}, "conv: out_c 6 not divisible by groups 4"},
        {DESC(4, 4, 3, 1, 1, 0, 0), {2, 4, 8, 8}, "conv: groups 0 < 1"},
        {DESC(0, 4, 3, 1, 1, 1, 0), {2, 0, 8, 8}, "conv: channels 0->4 must be >= 1"},
        {DESC(4, 4, 0, 1, 1, 1, 0), {2, 4, 8, 8}, "conv: kernel 0x0 < 1x1"},
        {DESC(4, 4, 3, 0, 1, 1, 0), {2, 4, 8, 8}, "conv: stride 0x0 < 1x1"},
        {DESC(4, 4, 3, 1, -1, 1, 0), {2, 4, 8, 8}, "conv: padding -1x-1 < 0"},
        {DESC(4, 4, 3, 1, 1, 1, 2), {2, 4, 8, 8}, "conv: bias 2 not 0 or 1"},
        {DESC(4, 4, 3, 1, 1, 1, 0), {0, 4, 8, 8}, "conv: input 0x4x8x8 is empty"},
        {DESC(4, 4, 3, 1, 1, 1, 0), {2, 3, 8, 8}, "conv: input has 3 channels, layer in_c 4"},
        {DESC(4, 4, 7, 1, 1, 1, 0), {2, 4, 4, 4}, "conv: kernel 7x7 larger than padded input 6x6"},
    };
    return cr_make_param_array(BadCase, cases, sizeof cases / sizeof *cases);
}

ParameterizedTest(BadCase *c, cpu_conv, rejects_bad_layer) {
    CpuDnnl dn;
    CpuConv cv;
    StkErr err = {{0}};
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &c->d, c->in, 1, &err), -1, "accepted: %s", c->msg);
    cr_expect_str_eq(err.msg, c->msg);
    Shape4 out = cpu_conv_out_shape(&c->d, c->in);
    cr_expect(out.n == 0 && out.c == 0 && out.h == 0 && out.w == 0, "out shape of a bad layer");
    cr_expect(cv.fwd == NULL && cv.x.user == NULL, "a failed init holds nothing");
    cpu_conv_free(&cv);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

/* A first layer needs no dx: forward and backward-weights run, backward-data refuses. */
Test(cpu_conv, backward_data_refused_unless_requested) {
    ConvDesc d = DESC(3, 4, 3, 1, 1, 1, 1);
    Shape4 in = {1, 3, 5, 5};
    CpuDnnl dn;
    CpuConv cv;
    StkErr err;
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &d, in, 0, &err), 0, "%s", err.msg);
    cr_expect(cv.bwd_data == NULL);
    float x[75] = {0}, w[108] = {0}, b[4] = {1, 2, 3, 4}, y[100], dw[108], db[4];
    cr_expect_eq(cpu_conv_forward(&cv, x, w, b, y, &err), 0, "%s", err.msg);
    cr_expect(y[0] == 1 && y[99] == 4, "y = bias on zero input");
    cr_expect_eq(cpu_conv_backward_weights(&cv, x, y, dw, db, &err), 0, "%s", err.msg);
    cr_expect(db[0] == 25 && db[3] == 100, "db = sum of dy per channel");
    float dx[75];
    cr_assert_eq(cpu_conv_backward_data(&cv, y, w, dx, &err), -1);
    cr_expect_str_eq(err.msg, "conv backward_data: not requested at init (need_data_grad 0)");
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

/* With bias, forward needs b and backward-weights needs db. */
Test(cpu_conv, bias_layer_needs_bias_buffers) {
    ConvDesc d = DESC(2, 2, 1, 1, 0, 1, 1);
    Shape4 in = {1, 2, 2, 2};
    CpuDnnl dn;
    CpuConv cv;
    StkErr err;
    setup_dnnl(&dn);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &d, in, 1, &err), 0, "%s", err.msg);
    float x[8] = {0}, w[4] = {0}, y[8], dw[4];
    cr_assert_eq(cpu_conv_forward(&cv, x, w, NULL, y, &err), -1);
    cr_expect(strstr(err.msg, "conv forward: NULL buffer") == err.msg, "%s", err.msg);
    cr_assert_eq(cpu_conv_backward_weights(&cv, x, y, dw, NULL, &err), -1);
    cr_expect(strstr(err.msg, "conv backward_weights: NULL buffer") == err.msg, "%s", err.msg);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
}

/* DNNL_TRY's message names the failing call and oneDNN's status. */
Test(cpu_dnnl, failed_call_names_call_and_status) {
    CpuDnnl dn;
    StkErr err;
    dnnl_memory_t m = (dnnl_memory_t)&err; /* must come back NULL */
    dnnl_dims_t dims = {2, -3, 4, 4};
    setup_dnnl(&dn);
    cr_assert_eq(cpu_dnnl_plain_memory(&dn, &m, 4, dims, dnnl_nchw, &err), -1);
    cr_expect_str_eq(err.msg,
                     "dnnl_memory_desc_init_by_tag(&md, ndims, dims, dnnl_f32, tag): "
                     "invalid_arguments");
    cr_expect(m == NULL);
    cpu_dnnl_free(&dn);
    cpu_dnnl_free(&dn);
}
