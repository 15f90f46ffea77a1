/* test_cuda_dwconv.c: the depthwise kernels (cuda_dwconv) against the CPU backend's
 * convolution (cpu_conv on oneDNN, itself checked against PyTorch) on the same inputs:
 * forward, backward data and backward filter, for the models' 3x3 and 5x5 layers at
 * strides 1 and 2, odd spatial sizes, the vector (c a multiple of 8) and scalar (c = 3)
 * paths, the generic kernel widths, unequal strides, more than one block of channels,
 * grids smaller than the work and more than one backward-filter part. The CPU side is NCHW/OIHW; the GPU side NHWC/KRSC
 * ([c][kh][kw]: the same bytes as OIHW for depthwise), converted here.
 * Tolerances: float32, max |gpu - cpu| / max |cpu| < 1e-5 (forward, backward data: sums of
 * <= 49 products, both in float) and 1e-4 for backward filter (sums of n*oh*ow products,
 * in other orders); bfloat16, relative L2 error < 1e-2 against the CPU's float result on
 * the same bf16-rounded inputs (the output's own rounding is ~2^-9). Outputs start as NaN
 * so that an element left unwritten fails. Skips where there is no GPU. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cpu_conv.h"
#include "cuda_device.h"
#include "test_cuda_skip.h"
#include "cuda_dwconv.h"
#include "stk_rng.h"

/* One layer and input: channels, kernel, strides, padding, input size, batch; grid: a cap
 * on the launches' blocks (cuda_dwconv_set_grid_blocks; 0 the default). */
typedef struct DwCase {
    int c, kh, kw, sh, sw, ph, pw, h, w, n;
    int bf16;
    unsigned grid;
} DwCase;

static const DwCase CASES[] = {
    {8, 3, 3, 1, 1, 1, 1, 15, 13, 2, 0, 0},    /* MobileNet's 3x3 stride 1 */
    {24, 3, 3, 2, 2, 1, 1, 15, 13, 3, 0, 0},   /* 3x3 stride 2: the gather */
    {8, 5, 5, 1, 1, 2, 2, 15, 13, 2, 0, 0},    /* 5x5 stride 1 */
    {24, 5, 5, 2, 2, 2, 2, 15, 13, 4, 0, 0},   /* 5x5 stride 2 */
    {3, 3, 3, 1, 1, 1, 1, 15, 13, 2, 0, 0},    /* scalar path */
    {3, 5, 5, 2, 2, 2, 2, 11, 9, 3, 0, 0},     /* scalar, stride 2 */
    {136, 3, 3, 2, 2, 1, 1, 9, 9, 2, 0, 0},    /* two channel blocks (bf16: 9 and 8 lanes) */
    {16, 3, 3, 1, 1, 1, 1, 70, 70, 4, 0, 0},   /* rows of 3 segments, 342 filter parts */
    {8, 7, 7, 2, 2, 3, 3, 15, 13, 2, 0, 0},    /* generic width 7 */
    {12, 4, 4, 2, 2, 1, 1, 14, 11, 2, 0, 0},   /* even kernel; bf16: c % 8 != 0, scalar */
    {8, 3, 1, 2, 1, 1, 0, 15, 13, 2, 0, 0},    /* 3x1, unequal strides */
    {8, 3, 3, 1, 1, 3, 3, 9, 9, 2, 0, 0},      /* padding past k-1: negative when flipped */
    /* 144 channels: two equal channel blocks (9 bf16 lanes, 18 float); a cap of 3 blocks
     * leaves one row of them, so each walks its tiles and pixels in many rounds */
    {144, 3, 3, 1, 1, 1, 1, 15, 13, 3, 0, 3},
    {144, 5, 5, 2, 2, 2, 2, 15, 13, 3, 0, 3},
    /* stride 2 with unequal sides: kh < kw masks rows in the unrolled gather; kh > kw
     * must leave it (its row loop has kw's extent) */
    {8, 3, 5, 2, 2, 1, 2, 15, 13, 2, 0, 0},
    {8, 5, 3, 2, 2, 2, 1, 15, 13, 2, 0, 0},
    {8, 7, 5, 2, 2, 3, 2, 15, 13, 2, 0, 0},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static ConvDesc case_desc(const DwCase *k) {
    ConvDesc d = {k->c, k->c, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw, k->c, 0};
    return d;
}

static void fill(float *x, size_t n, uint64_t key, int bf16) {
    for (size_t i = 0; i < n; i++) {
        float v = (float)(2 * stk_rng_unit(stk_rng_at(key, i)) - 1);
        x[i] = bf16 ? cuda_bf16_to_f32(cuda_f32_to_bf16(v)) : v;
    }
}

/* NCHW <-> NHWC of shape s. */
static void to_nhwc(const float *src, Shape4 s, float *dst) {
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    dst[(((size_t)n * s.h + h) * s.w + w) * s.c + c] = src[(((size_t)n * s.c + c) * s.h + h) * s.w + w];
}

static void to_nchw(const float *src, Shape4 s, float *dst) {
    for (int n = 0; n < s.n; n++)
        for (int c = 0; c < s.c; c++)
            for (int h = 0; h < s.h; h++)
                for (int w = 0; w < s.w; w++)
                    dst[(((size_t)n * s.c + c) * s.h + h) * s.w + w] = src[(((size_t)n * s.h + h) * s.w + w) * s.c + c];
}

/* A device copy of n host floats in the dtype (bf16: rounded to nearest even). */
static void *upload(const float *h, size_t n, int bf16) {
    void *d;
    size_t es = bf16 ? 2 : 4;
    cr_assert_eq(cudaMalloc(&d, n * es), cudaSuccess);
    void *tmp = malloc(n * es);
    for (size_t i = 0; i < n; i++)
        if (bf16) ((uint16_t *)tmp)[i] = cuda_f32_to_bf16(h[i]);
        else ((float *)tmp)[i] = h[i];
    cr_assert_eq(cudaMemcpy(d, tmp, n * es, cudaMemcpyHostToDevice), cudaSuccess);
    free(tmp);
    return d;
}

/* A device buffer of n elements of NaN (0xff bytes are NaN in both dtypes). */
static void *nan_dev(size_t n, size_t es) {
    void *d;
    cr_assert_eq(cudaMalloc(&d, n * es), cudaSuccess);
    cr_assert_eq(cudaMemset(d, 0xff, n * es), cudaSuccess);
    return d;
}

static void download(const void *d, size_t n, int bf16, float *h) {
    size_t es = bf16 ? 2 : 4;
    void *tmp = malloc(n * es);
    cr_assert_eq(cudaMemcpy(tmp, d, n * es, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++) h[i] = bf16 ? cuda_bf16_to_f32(((uint16_t *)tmp)[i]) : ((float *)tmp)[i];
    free(tmp);
}

/* The judged error of got against ref: max |diff| / max |ref| (float32) or
 * ||diff||_2 / ||ref||_2 (bf16); +inf if any got is not finite. */
static double error_of(const float *got, const float *ref, size_t n, int bf16) {
    double dmax = 0, rmax = 1e-30, d2 = 0, r2 = 1e-60;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = fabs((double)got[i] - ref[i]);
        dmax = fmax(dmax, d), rmax = fmax(rmax, fabs((double)ref[i]));
        d2 += d * d, r2 += (double)ref[i] * ref[i];
    }
    return bf16 ? sqrt(d2 / r2) : dmax / rmax;
}

/* Everything one case needs, host (NCHW reference) and device (NHWC). */
typedef struct Run {
    ConvDesc d;
    Shape4 in, out;
    size_t nx, ny, nw, scratch_floats;
    float *x, *w, *dy;          /* host NCHW inputs (bf16-rounded for bf16 cases) */
    void *gx, *gw, *gdy;        /* device NHWC copies */
    float *gscratch;
} Run;

static void run_init(Run *r, const DwCase *k) {
    r->d = case_desc(k);
    r->in = (Shape4){k->n, k->c, k->h, k->w};
    r->out = cpu_conv_out_shape(&r->d, r->in);
    cr_assert_neq(r->out.n, 0, "case geometry");
    cr_assert(cuda_dwconv_supported(&r->d));
    r->nx = shape4_numel(r->in), r->ny = shape4_numel(r->out), r->nw = (size_t)k->c * k->kh * k->kw;
    r->x = malloc(4 * r->nx), r->dy = malloc(4 * r->ny), r->w = malloc(4 * r->nw);
    fill(r->x, r->nx, 11, k->bf16), fill(r->dy, r->ny, 12, k->bf16), fill(r->w, r->nw, 13, k->bf16);
    float *t = malloc(4 * (r->nx > r->ny ? r->nx : r->ny));
    to_nhwc(r->x, r->in, t), r->gx = upload(t, r->nx, k->bf16);
    to_nhwc(r->dy, r->out, t), r->gdy = upload(t, r->ny, k->bf16);
    r->gw = upload(r->w, r->nw, k->bf16); /* OIHW with I = 1 is [c][kh][kw] */
    free(t);
    r->scratch_floats = cuda_dwconv_filter_scratch(&r->d, r->in, r->out);
    cr_assert_gt(r->scratch_floats, 0);
    r->gscratch = nan_dev(r->scratch_floats, 4);
}

static void run_free(Run *r) {
    free(r->x), free(r->w), free(r->dy);
    cudaFree(r->gx), cudaFree(r->gw), cudaFree(r->gdy), cudaFree(r->gscratch);
}

/* A GPU result (device NHWC, or [c][kh][kw] when s is NULL) as host NCHW floats. */
static float *result(const void *g, size_t n, const Shape4 *s, int bf16) {
    float *h = malloc(4 * n), *o = malloc(4 * n);
    download(g, n, bf16, h);
    if (!s) return free(o), h;
    to_nchw(h, *s, o);
    free(h);
    return o;
}

ParameterizedTestParameters(cuda_dwconv, matches_cpu_conv) {
    static DwCase all[2 * N_CASES];
    for (int i = 0; i < N_CASES; i++) {
        all[2 * i] = CASES[i], all[2 * i + 1] = CASES[i];
        all[2 * i + 1].bf16 = 1;
    }
    return cr_make_param_array(DwCase, all, 2 * N_CASES);
}

/* All three passes of one case, in one dtype, against the CPU's float32 result. */
ParameterizedTest(DwCase *k, cuda_dwconv, matches_cpu_conv, .timeout = 120) {
    need_gpu();
    StkErr err;
    Run r;
    run_init(&r, k);
    CpuDnnl dn;
    CpuConv cv;
    cr_assert_eq(cpu_dnnl_init(&dn, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_init(&cv, &dn, &r.d, r.in, 1, &err), 0, "%s", err.msg);
    float *y = malloc(4 * r.ny), *dx = malloc(4 * r.nx), *dw = malloc(4 * r.nw);
    cr_assert_eq(cpu_conv_forward(&cv, r.x, r.w, NULL, y, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_backward_data(&cv, r.dy, r.w, dx, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_conv_backward_weights(&cv, r.x, r.dy, dw, NULL, &err), 0, "%s", err.msg);

    CudaDtype dt = k->bf16 ? CUDA_BF16 : CUDA_F32;
    size_t es = cuda_dtype_size(dt);
    void *gy = nan_dev(r.ny, es), *gdx = nan_dev(r.nx, es), *gdw = nan_dev(r.nw, es);
    cuda_dwconv_set_grid_blocks(k->grid); /* every case sets it: 0 is the default */
    cr_assert_eq(cuda_dwconv_forward(&r.d, dt, r.in, r.out, r.gx, r.gw, gy, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_dwconv_backward_data(&r.d, dt, r.in, r.out, r.gdy, r.gw, gdx, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_dwconv_backward_filter(&r.d, dt, r.in, r.out, r.gx, r.gdy, gdw, r.gscratch,
                                             r.scratch_floats, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess, "%s", cudaGetErrorString(cudaGetLastError()));
    float *hy = result(gy, r.ny, &r.out, k->bf16), *hdx = result(gdx, r.nx, &r.in, k->bf16);
    float *hdw = result(gdw, r.nw, NULL, k->bf16);
    double ey = error_of(hy, y, r.ny, k->bf16), edx = error_of(hdx, dx, r.nx, k->bf16);
    double edw = error_of(hdw, dw, r.nw, k->bf16);
    double tol = k->bf16 ? 1e-2 : 1e-5, tol_dw = k->bf16 ? 1e-2 : 1e-4;
    cr_log_info("c %d %dx%d stride %dx%d pad %dx%d in %dx%d n %d %s grid %u: y %.3g dx %.3g dw %.3g",
                k->c, k->kh, k->kw, k->sh, k->sw, k->ph, k->pw, k->h, k->w, k->n,
                k->bf16 ? "bf16" : "f32", k->grid, ey, edx, edw);
    cr_expect(ey < tol, "forward differs by %.3g", ey);
    cr_expect(edx < tol, "backward data differs by %.3g", edx);
    cr_expect(edw < tol_dw, "backward filter differs by %.3g", edw);
    free(y), free(dx), free(dw), free(hy), free(hdx), free(hdw);
    cudaFree(gy), cudaFree(gdx), cudaFree(gdw);
    cpu_conv_free(&cv);
    cpu_dnnl_free(&dn);
    run_free(&r);
}

/* Backward filter twice on the same inputs (scratch not cleared between): the same bits,
 * in both dtypes, on the case with several parts and channel vectors. */
static void filter_repeats(int bf16) {
    need_gpu();
    StkErr err;
    DwCase k = CASES[7];
    k.bf16 = bf16;
    Run r;
    run_init(&r, &k);
    CudaDtype dt = bf16 ? CUDA_BF16 : CUDA_F32;
    size_t es = cuda_dtype_size(dt);
    void *a = nan_dev(r.nw, es), *b = nan_dev(r.nw, es);
    cr_assert_eq(cuda_dwconv_backward_filter(&r.d, dt, r.in, r.out, r.gx, r.gdy, a, r.gscratch,
                                             r.scratch_floats, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_dwconv_backward_filter(&r.d, dt, r.in, r.out, r.gx, r.gdy, b, r.gscratch,
                                             r.scratch_floats, 0, &err), 0, "%s", err.msg);
    void *ha = malloc(r.nw * es), *hb = malloc(r.nw * es);
    cr_assert_eq(cudaMemcpy(ha, a, r.nw * es, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(cudaMemcpy(hb, b, r.nw * es, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_expect_eq(memcmp(ha, hb, r.nw * es), 0, "backward filter gave other bits the second time");
    free(ha), free(hb);
    cudaFree(a), cudaFree(b);
    run_free(&r);
}

Test(cuda_dwconv, backward_filter_repeats_bit_for_bit_f32, .timeout = 60) { filter_repeats(0); }
Test(cuda_dwconv, backward_filter_repeats_bit_for_bit_bf16, .timeout = 60) { filter_repeats(1); }

/* What the kernels take: depthwise only, kernel <= 7, stride <= 2. Needs no GPU. */
Test(cuda_dwconv, supports_only_depthwise_layers_it_can_run) {
    ConvDesc ok = {32, 32, 3, 3, 2, 2, 1, 1, 32, 1};
    cr_expect_eq(cuda_dwconv_supported(&ok), 1);
    ConvDesc d = ok;
    d.groups = 1;
    cr_expect_eq(cuda_dwconv_supported(&d), 0, "a dense conv");
    d = ok, d.out_c = 64;
    cr_expect_eq(cuda_dwconv_supported(&d), 0, "a channel multiplier of 2");
    d = ok, d.kh = d.kw = 9;
    cr_expect_eq(cuda_dwconv_supported(&d), 0, "kernel 9");
    d = ok, d.stride_w = 3;
    cr_expect_eq(cuda_dwconv_supported(&d), 0, "stride 3");
    d = ok, d.kh = 2, d.kw = 7, d.stride_h = 1, d.pad_h = 0, d.pad_w = 4;
    cr_expect_eq(cuda_dwconv_supported(&d), 1, "even and mixed kernel sizes, any padding");
    cr_expect_eq(cuda_dwconv_supported(NULL), 0);
}

/* Bad arguments are refused before anything runs, the function and argument named; the
 * pointers are never dereferenced (validation fails first). Needs no GPU. */
Test(cuda_dwconv, refuses_bad_arguments_by_name) {
    StkErr err;
    ConvDesc d = {16, 16, 3, 3, 1, 1, 1, 1, 16, 0};
    Shape4 in = {2, 16, 8, 8}, out = {2, 16, 8, 8}, bad = {2, 16, 7, 8};
    void *p = (void *)(uintptr_t)256;
    ConvDesc dense = d;
    dense.groups = 1;
    cr_expect_eq(cuda_dwconv_forward(&dense, CUDA_F32, in, out, p, p, p, 0, &err), -1);
    cr_expect(strstr(err.msg, "cuda_dwconv_forward") && strstr(err.msg, "groups 1"), "%s", err.msg);
    cr_expect_eq(cuda_dwconv_backward_data(&d, CUDA_BF16, in, bad, p, p, p, 0, &err), -1);
    cr_expect(strstr(err.msg, "cuda_dwconv_backward_data: output"), "%s", err.msg);
    cr_expect_eq(cuda_dwconv_forward(&d, CUDA_F32, in, out, p, NULL, p, 0, &err), -1);
    cr_expect(strstr(err.msg, "NULL buffer"), "%s", err.msg);
    Shape4 wrong_c = {2, 8, 8, 8};
    cr_expect_eq(cuda_dwconv_forward(&d, CUDA_F32, wrong_c, out, p, p, p, 0, &err), -1);
    cr_expect(strstr(err.msg, "does not fit"), "%s", err.msg);
    cr_expect_eq(cuda_dwconv_forward(&d, (CudaDtype)7, in, out, p, p, p, 0, &err), -1);
    cr_expect(strstr(err.msg, "dtype 7"), "%s", err.msg);
    size_t need = cuda_dwconv_filter_scratch(&d, in, out);
    cr_expect_gt(need, 0);
    cr_expect_eq(cuda_dwconv_backward_filter(&d, CUDA_F32, in, out, p, p, p, (float *)p, need - 1, 0, &err), -1);
    cr_expect(strstr(err.msg, "cuda_dwconv_backward_filter: scratch"), "%s", err.msg);
    cr_expect_eq(cuda_dwconv_filter_scratch(&dense, in, out), 0);
}

/* The scratch size depends on the shapes only and stays within its stated bound. */
Test(cuda_dwconv, filter_scratch_is_bounded_by_parts_times_weights) {
    ConvDesc d = {16, 16, 3, 3, 1, 1, 1, 1, 16, 0};
    Shape4 small = {2, 16, 8, 8}, big = {256, 16, 112, 112};
    size_t a = cuda_dwconv_filter_scratch(&d, small, small), b = cuda_dwconv_filter_scratch(&d, big, big);
    cr_expect_eq(a % (9 * 16), 0);
    cr_expect_eq(b % (9 * 16), 0);
    cr_expect(a >= 9 * 16 && b > a && b <= 1024 * 9 * 16, "scratch %zu, %zu", a, b);
}
