/* test_cuda_conv.c: cuda_conv's NCHW mode (float32 passes on NCHW copies in the
 * workspace, the batch in chunks when the copies would not fit) against its NHWC mode
 * (itself checked against the CPU backend by test_cuda_net) on the same buffers: forward,
 * backward data overwriting and accumulating, backward filter, for resnet-like layers
 * (3x3, 7x7 stride 2, 1x1 stride 2, grouped, odd sizes). Strict float32 on both sides;
 * tolerance max |nchw - nhwc| / max |nhwc| < 1e-5 (the same sums, other orders). Outputs
 * start as NaN so that an element left unwritten fails. The handle runs on a
 * non-blocking stream, as cuda_net's does: work that strayed off it would race. Skips
 * where there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "cuda_conv.h"
#include "cuda_device.h"
#include "test_cuda_skip.h"
#include "stk_rng.h"

typedef struct Case {
    const char *name;
    int n, c, h, k, r, stride, pad, groups;
} Case;

static const Case CASES[] = {
    {"3x3 64->64 @16", 8, 64, 16, 64, 3, 1, 1, 1},
    {"7x7/2 3->64 @33", 6, 3, 33, 64, 7, 2, 3, 1},
    {"1x1/2 64->128 @16", 8, 64, 16, 128, 1, 2, 0, 1},
    {"3x3/2 128->256 @9", 4, 128, 9, 256, 3, 2, 1, 1},
    {"3x3 grouped 32->64 /4 @9", 4, 32, 9, 64, 3, 1, 1, 4},
};

typedef struct Bufs {
    float *x, *w, *y, *dy, *dx, *dw, *ws;
    size_t nx, nw, ny, nws;
} Bufs;

static float *dev_random(size_t n, uint64_t key) {
    float *h = malloc(4 * n), *d;
    for (size_t i = 0; i < n; i++) h[i] = (float)stk_rng_unit(stk_rng_at(key, i)) * 2 - 1;
    cr_assert_eq(cudaMalloc((void **)&d, 4 * n), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, h, 4 * n, cudaMemcpyHostToDevice), cudaSuccess);
    free(h);
    return d;
}

static cudaStream_t stream; /* the handle's: host copies wait for it first */

static float *host_of(const float *d, size_t n) {
    float *h = malloc(4 * n);
    cr_assert_eq(cudaStreamSynchronize(stream), cudaSuccess);
    cr_assert_eq(cudaMemcpy(h, d, 4 * n, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
}

static void nan_fill(float *d, size_t n) {
    cr_assert_eq(cudaStreamSynchronize(stream), cudaSuccess);
    cr_assert_eq(cudaMemset(d, 0xff, 4 * n), cudaSuccess);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
}

static double rel(const float *a, const float *b, size_t n) {
    double m = 1e-30, d = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(b[i]));
        d = isnan(a[i]) || isnan(b[i]) ? INFINITY : fmax(d, fabs((double)a[i] - b[i]));
    }
    return d / m;
}

/* y, dx (overwritten), dx (added to a preset), dw of one layout, brought back. */
typedef struct Out {
    float *y, *dx, *dxa, *dw;
} Out;

static Out run_layout(const Case *k, Bufs *b, CudaConvLayout layout, size_t ws_limit, cudnnHandle_t h,
                      int *chunk) {
    ConvDesc d = {k->c, k->k, k->r, k->r, k->stride, k->stride, k->pad, k->pad, k->groups, 0};
    Shape4 in = {k->n, k->c, k->h, k->h};
    CudaConvScratch sc = {b->x, b->w, b->y, b->dx, b->dw, b->ws, ws_limit};
    CudaConv cv;
    StkErr err;
    cr_assert_eq(cuda_conv_init(&cv, h, &d, CUDA_F32, in, 1, 1, 1, layout, &sc, &err), 0, "%s: %s",
                 k->name, err.msg);
    *chunk = cv.nchw ? cv.chunk : 0;
    size_t need = cv.ws_fwd > cv.ws_bwd_data ? cv.ws_fwd : cv.ws_bwd_data;
    need = need > cv.ws_bwd_filter ? need : cv.ws_bwd_filter;
    cr_assert_leq(need, ws_limit, "%s: workspace %zu over the bound %zu", k->name, need, ws_limit);
    Out o;
    nan_fill(b->y, b->ny), nan_fill(b->dx, b->nx), nan_fill(b->dw, b->nw);
    cr_assert_eq(cuda_conv_forward(&cv, h, b->x, b->w, b->y, b->ws, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_conv_backward_data(&cv, h, b->dy, b->w, b->dx, 0, b->ws, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_conv_backward_filter(&cv, h, b->x, b->dy, b->dw, b->ws, &err), 0, "%s", err.msg);
    o.y = host_of(b->y, b->ny), o.dx = host_of(b->dx, b->nx), o.dw = host_of(b->dw, b->nw);
    /* accumulate: dx += conv_transpose(dy, w) onto the x values as a preset */
    cr_assert_eq(cudaStreamSynchronize(stream), cudaSuccess);
    cr_assert_eq(cudaMemcpy(b->dx, b->x, 4 * b->nx, cudaMemcpyDeviceToDevice), cudaSuccess);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
    cr_assert_eq(cuda_conv_backward_data(&cv, h, b->dy, b->w, b->dx, 1, b->ws, &err), 0, "%s", err.msg);
    o.dxa = host_of(b->dx, b->nx);
    cuda_conv_free(&cv);
    return o;
}

static void check_case(const Case *k, size_t nchw_limit, int want_chunks) {
    cudnnHandle_t h;
    cr_assert_eq(cudnnCreate(&h), CUDNN_STATUS_SUCCESS);
    cr_assert_eq(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudnnSetStream(h, stream), CUDNN_STATUS_SUCCESS);
    int oh = (k->h + 2 * k->pad - k->r) / k->stride + 1;
    Bufs b = {.nx = (size_t)k->n * k->c * k->h * k->h, .nw = (size_t)k->k * (k->c / k->groups) * k->r * k->r,
              .ny = (size_t)k->n * k->k * oh * oh, .nws = (size_t)64 << 20};
    b.x = dev_random(b.nx, 1), b.w = dev_random(b.nw, 2), b.dy = dev_random(b.ny, 3);
    cr_assert_eq(cudaMalloc((void **)&b.y, 4 * b.ny), cudaSuccess);
    cr_assert_eq(cudaMalloc((void **)&b.dx, 4 * b.nx), cudaSuccess);
    cr_assert_eq(cudaMalloc((void **)&b.dw, 4 * b.nw), cudaSuccess);
    cr_assert_eq(cudaMalloc((void **)&b.ws, b.nws), cudaSuccess);
    int c0, c1;
    Out ref = run_layout(k, &b, CUDA_CONV_NHWC, b.nws, h, &c0);
    Out got = run_layout(k, &b, CUDA_CONV_NCHW, nchw_limit, h, &c1);
    cr_assert_eq(c0, 0, "%s: NHWC forced but NCHW taken", k->name);
    cr_assert_gt(c1, 0, "%s: NCHW forced but not taken (bound %zu)", k->name, nchw_limit);
    if (want_chunks) cr_assert_lt(c1, k->n, "%s: a bound of %zu should split the batch", k->name, nchw_limit);
    double ey = rel(got.y, ref.y, b.ny), ex = rel(got.dx, ref.dx, b.nx), ea = rel(got.dxa, ref.dxa, b.nx),
           ew = rel(got.dw, ref.dw, b.nw);
    cr_log_info("%s, %d images per pass: y %.2g, dx %.2g, dx+= %.2g, dw %.2g", k->name, c1, ey, ex, ea, ew);
    cr_assert(ey < 1e-5 && ex < 1e-5 && ea < 1e-5 && ew < 1e-5,
              "%s: NCHW differs from NHWC: y %.3g dx %.3g dx+= %.3g dw %.3g", k->name, ey, ex, ea, ew);
    free(ref.y), free(ref.dx), free(ref.dxa), free(ref.dw);
    free(got.y), free(got.dx), free(got.dxa), free(got.dw);
    cudaFree(b.x), cudaFree(b.w), cudaFree(b.dy), cudaFree(b.y), cudaFree(b.dx), cudaFree(b.dw), cudaFree(b.ws);
    cudnnDestroy(h);
    cudaStreamDestroy(stream);
}

Test(cuda_conv, nchw_matches_nhwc_whole_batch, .timeout = 120) {
    need_gpu();
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) check_case(&CASES[i], (size_t)64 << 20, 0);
}

/* A bound whose half holds the copies of two images (and the weights) at most. */
Test(cuda_conv, nchw_in_chunks_matches_nhwc, .timeout = 120) {
    need_gpu();
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        const Case *k = &CASES[i];
        int oh = (k->h + 2 * k->pad - k->r) / k->stride + 1;
        size_t two = 2 * 4 * ((size_t)k->c * k->h * k->h + (size_t)k->k * oh * oh) + 1024 +
                     4 * (size_t)k->k * (k->c / k->groups) * k->r * k->r;
        check_case(k, 2 * two + ((size_t)4 << 20), 0);
        check_case(k, 2 * two, 1);
    }
}
