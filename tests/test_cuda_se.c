/* test_cuda_se.c: squeeze-and-excitation's pool and scale passes (cuda_se.h) against
 * double-precision host sums of the same inputs: float32 and bfloat16, channel counts that
 * take the 16-byte path (48), the 4-float path only (12: bf16 falls back to one element
 * per thread) and neither (5), h*w not a multiple of anything (37 rows), the pool's
 * backward written and added, the scale's backward fused (dx and ds in one pass), each
 * alone, and dx over dy in place. Skips where there is no GPU, as on CI. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_device.h"
#include "test_cuda_buf.h"
#include "test_cuda_skip.h"
#include "cuda_dtype.h"
#include "cuda_se.h"


static float rnd(size_t i, unsigned salt) {
    return (float)((((i + 1) * 2654435761u + salt * 40503u) >> 8) % 2001) / 1000.0f - 1.0f;
}

static Buf buf(CudaDtype dt, size_t n, unsigned salt) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = salt ? rnd(i, salt) : 0.0f;
    Buf b = buf_upload(dt, v, n, 0);
    free(v);
    return b;
}

/* float32: float sums of 37 terms (a few ulps of the largest); fp16 and bf16: the result's own rounding (11 and 8 bits). */
static void near(const char *what, const Buf *got, const double *want, double scale) {
    double tol = got->dt == CUDA_F32 ? 1e-5 : got->dt == CUDA_F16 ? 1e-3 : 8e-3;
    for (size_t i = 0; i < got->n; i++)
        cr_assert(fabs(got->host[i] - want[i]) <= tol * (fabs(want[i]) + scale), "%s (dtype %d) [%zu]: %.7g, want %.7g",
                  what, (int)got->dt, i, got->host[i], want[i]);
}

static void check(CudaDtype dt, int c) {
    need_gpu();
    const int n = 3, hw = 37;
    Shape4 in = {n, c, 37, 1};
    size_t big = (size_t)n * hw * c, small = (size_t)n * c;
    StkErr err;
    Buf x = buf(dt, big, 1), dy = buf(dt, big, 2), sc = buf(dt, small, 3), dp = buf(dt, small, 4);
    Buf y = buf(dt, big, 0), pool = buf(dt, small, 0), ds = buf(dt, small, 0), dx = buf(dt, big, 5);
    double *w_big = malloc(big * sizeof(double)), *w_small = malloc(small * sizeof(double));
    float *dx0 = malloc(big * sizeof(float));
    memcpy(dx0, dx.host, big * sizeof(float));

    cr_assert_eq(cuda_avgpool_forward(dt, in, x.dev, pool.dev, 0, &err), 0, "%s", err.msg);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            double s = 0;
            for (int r = 0; r < hw; r++) s += x.host[((size_t)i * hw + r) * c + ch];
            w_small[i * c + ch] = s / hw;
        }
    buf_fetch(&pool), near("avgpool forward", &pool, w_small, 0.05);

    /* added into what dx holds (as after the scale's backward), then written */
    cr_assert_eq(cuda_avgpool_backward(dt, in, dp.dev, dx.dev, 1, 0, &err), 0, "%s", err.msg);
    for (size_t e = 0; e < big; e++) w_big[e] = dx0[e] + dp.host[(e / ((size_t)hw * c)) * c + e % c] / hw;
    buf_fetch(&dx), near("avgpool backward, added", &dx, w_big, 0.05);
    cr_assert_eq(cuda_avgpool_backward(dt, in, dp.dev, dx.dev, 0, 0, &err), 0, "%s", err.msg);
    for (size_t e = 0; e < big; e++) w_big[e] = dp.host[(e / ((size_t)hw * c)) * c + e % c] / hw;
    buf_fetch(&dx), near("avgpool backward, written", &dx, w_big, 0.01);

    cr_assert_eq(cuda_scale_forward(dt, n, hw, c, x.dev, sc.dev, y.dev, 0, &err), 0, "%s", err.msg);
    for (size_t e = 0; e < big; e++) w_big[e] = (double)x.host[e] * sc.host[(e / ((size_t)hw * c)) * c + e % c];
    buf_fetch(&y), near("scale forward", &y, w_big, 0.0);

    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            double s = 0;
            for (int r = 0; r < hw; r++) {
                size_t e = ((size_t)i * hw + r) * c + ch;
                s += (double)dy.host[e] * x.host[e];
            }
            w_small[i * c + ch] = s;
        }
    for (int pass = 0; pass < 3; pass++) { /* fused, ds alone, dx alone */
        cr_assert_eq(cudaMemset(ds.dev, 0, small * cuda_dtype_size(dt)), cudaSuccess);
        cr_assert_eq(cudaMemset(dx.dev, 0, big * cuda_dtype_size(dt)), cudaSuccess);
        cr_assert_eq(cuda_scale_backward(dt, n, hw, c, x.dev, sc.dev, dy.dev, pass != 1 ? dx.dev : NULL,
                                         pass != 2 ? ds.dev : NULL, 0, &err), 0, "%s", err.msg);
        buf_fetch(&ds), buf_fetch(&dx);
        for (size_t e = 0; e < big; e++)
            w_big[e] = pass != 1 ? (double)dy.host[e] * sc.host[(e / ((size_t)hw * c)) * c + e % c] : 0.0;
        near("scale backward dx", &dx, w_big, 0.0);
        if (pass != 2) near("scale backward ds", &ds, w_small, 1.0);
    }
    /* dx over dy: the header allows it (cuda_net's plan keeps them apart today) */
    cr_assert_eq(cuda_scale_backward(dt, n, hw, c, x.dev, sc.dev, dy.dev, dy.dev, ds.dev, 0, &err), 0, "%s", err.msg);
    for (size_t e = 0; e < big; e++) w_big[e] = (double)dy.host[e] * sc.host[(e / ((size_t)hw * c)) * c + e % c];
    buf_fetch(&dy), buf_fetch(&ds);
    near("scale backward in place, dx", &dy, w_big, 0.0);
    near("scale backward in place, ds", &ds, w_small, 1.0);

    cr_assert_neq(cuda_scale_forward(dt, 0, hw, c, x.dev, sc.dev, y.dev, 0, &err), 0);
    cr_assert(strstr(err.msg, "cuda_scale_forward") != NULL, "%s", err.msg);
    buf_drop(&x), buf_drop(&dy), buf_drop(&sc), buf_drop(&dp), buf_drop(&y), buf_drop(&pool), buf_drop(&ds), buf_drop(&dx);
    free(w_big), free(w_small), free(dx0);
}

Test(cuda_se, float32_vector_path) { check(CUDA_F32, 48); }
Test(cuda_se, float32_four_float_path) { check(CUDA_F32, 12); }
Test(cuda_se, float32_scalar_path) { check(CUDA_F32, 5); }
Test(cuda_se, bf16_vector_path) { check(CUDA_BF16, 48); }
Test(cuda_se, bf16_scalar_path) { check(CUDA_BF16, 12); }
Test(cuda_se, fp16_vector_path) { check(CUDA_F16, 48); }
/* more channel vectors than a block's 256 threads: several blocks per sample, one row
 * at a time, the last block partly filled (float32 1152 = 288 vectors, bf16 2056 = 257) */
Test(cuda_se, float32_wide) { check(CUDA_F32, 1152); }
Test(cuda_se, bf16_wide) { check(CUDA_BF16, 2056); }
Test(cuda_se, fp16_scalar_path) { check(CUDA_F16, 12); }
