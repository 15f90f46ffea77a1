/* test_cuda_bn.c: the batch-norm kernels (cuda_bn.h) against the CPU backend's batch norm
 * (trainer/cpu_bn.h, itself checked against PyTorch) and activations (cpu_act.h) on the
 * same inputs. An NHWC [m, c] tensor is the CPU's NCHW {m, c, 1, 1}, so both read the
 * same bytes. Covered: training forward (output, saved statistics, running statistics),
 * recompute (the forward's bits again), eval forward, training backward (dx, dweight,
 * dbias; dx in place over dy and dx omitted give the same bits), eval backward; float32,
 * bfloat16 and float16; channel counts that take the scalar path (3), one block of 10
 * vectors by 25 rows (40), one chunk of 168 vectors (672), two equal chunks (1152) and
 * two chunks with the last one partly filled (1284); few rows (3, 333) and enough for
 * the partials' cap of 512 row blocks (9000 x 1152).
 * Tolerances, relative to the largest value of each tensor: float32 1e-4 (float sums in
 * another order than the CPU's double ones), bfloat16 1e-2 for the 16-bit outputs (8 bits
 * of mantissa) and 1e-4 for the float statistics and parameter gradients, the inputs
 * being the same bf16-rounded values on both sides. Skips where there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_act.h"
#include "cpu_bn.h"
#include "cuda_bn.h"
#include "cuda_dtype.h"
#include "cuda_elem.h"
#include "test_cuda_buf.h"
#include "test_cuda_skip.h"

static float rnd(size_t i, unsigned salt) {
    return (float)((((i + 1) * 2654435761u + salt * 40503u) >> 7) % 4001) / 1000.0f - 2.0f;
}

/* n values of dt on the device, `shift` elements past an allocation's start (1: not 16-byte
 * aligned, so the kernels must take their scalar path); salt 0: zeros. Per-channel offsets
 * and scales (channel = i % c) so that the statistics differ by channel. */
static Buf buf(CudaDtype dt, size_t n, int c, unsigned salt, int shift) {
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        int ch = (int)(i % (size_t)c);
        v[i] = salt ? rnd(i, salt) * (0.5f + (float)(ch % 7)) + (float)(ch % 5) - 2.0f : 0.0f;
    }
    Buf b = buf_upload(dt, v, n, shift);
    free(v);
    return b;
}

/* Every element within tol of the largest |want| (and of its own size). */
static void near(const char *what, const float *got, const float *want, size_t n, double tol) {
    double top = 0;
    for (size_t i = 0; i < n; i++) top = fmax(top, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol * (fabs(want[i]) + top) + 1e-30,
                  "%s [%zu]: %.7g, want %.7g (largest %.4g)", what, i, got[i], want[i], top);
}

static float *dev_floats(const float *h, int c) {
    float *d;
    cr_assert_eq(cudaMalloc((void **)&d, (size_t)c * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, h, (size_t)c * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

static float *host_floats(const float *d, int c) {
    float *h = malloc((size_t)c * sizeof(float));
    cr_assert_eq(cudaMemcpy(h, d, (size_t)c * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
}

/* y = act(z) on the host, in place; act < 0: none. */
static void host_act(int act, size_t n, float *z, float *y) {
    StkErr err;
    if (act < 0) memcpy(y, z, n * sizeof(float));
    else cr_assert_eq(cpu_act_forward((CpuActKind)act, n, z, y, &err), 0, "%s", err.msg);
}

static void bytes_equal(const char *what, const Buf *a, const Buf *b) {
    size_t sz = a->n * cuda_dtype_size(a->dt);
    void *ha = malloc(sz), *hb = malloc(sz);
    cr_assert_eq(cudaMemcpy(ha, a->dev, sz, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(cudaMemcpy(hb, b->dev, sz, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_expect_eq(memcmp(ha, hb, sz), 0, "%s: other bits", what);
    free(ha), free(hb);
}

static void check_at(CudaDtype dt, int c, size_t m, int act, int shift) {
    need_gpu();
    StkErr err;
    size_t n = m * (size_t)c;
    double tol = dt == CUDA_F32 ? 1e-4 : 1e-2, tol_f = 1e-4; /* fp16's 11 bits: within bf16's */
    float *w = malloc(c * sizeof(float)), *b = malloc(c * sizeof(float));
    float *rm = malloc(c * sizeof(float)), *rv = malloc(c * sizeof(float));
    for (int ch = 0; ch < c; ch++)
        w[ch] = 0.5f + 0.01f * (float)(ch % 97), b[ch] = 0.1f * (float)(ch % 11) - 0.5f,
        rm[ch] = 0.2f * (float)(ch % 3), rv[ch] = 1.0f + 0.1f * (float)(ch % 4);
    CudaBn g = {c, 1e-5f, 0.1f, dev_floats(w, c), dev_floats(b, c), dev_floats(rm, c), dev_floats(rv, c)};
    CpuBn h = {c, 1e-5, 0.1, w, b, rm, rv, NULL};
    float *part, *smean, *sinv;
    cr_assert_eq(cudaMalloc((void **)&part, cuda_colsum_scratch(c) * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc((void **)&smean, c * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc((void **)&sinv, c * sizeof(float)), cudaSuccess);
    Buf x = buf(dt, n, c, 1, shift), dy = buf(dt, n, c, 2, shift), y = buf(dt, n, c, 0, shift);
    Buf y2 = buf(dt, n, c, 0, shift), dx = buf(dt, n, c, 0, shift);
    Shape4 s = {(int)m, c, 1, 1};
    float *z = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float)), *gz = malloc(n * sizeof(float));
    float *hm = malloc(c * sizeof(float)), *hi = malloc(c * sizeof(float));
    float *hdw = malloc(c * sizeof(float)), *hdb = malloc(c * sizeof(float));

    /* training forward */
    cr_assert_eq(cuda_bn_forward_train(&g, act, dt, m, x.dev, y.dev, smean, sinv, part, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_bn_forward_train(&h, s, x.host, z, hm, hi, &err), 0, "%s", err.msg);
    host_act(act, n, z, want);
    buf_fetch(&y), near("forward y", y.host, want, n, tol);
    float *t;
    near("save_mean", t = host_floats(smean, c), hm, c, tol_f), free(t);
    near("save_invstd", t = host_floats(sinv, c), hi, c, tol_f), free(t);
    near("running_mean", t = host_floats(g.running_mean, c), rm, c, tol_f), free(t);
    near("running_var", t = host_floats(g.running_var, c), rv, c, tol_f), free(t);

    /* recompute: the forward's bits from the saved statistics */
    cr_assert_eq(cuda_bn_recompute(&g, act, dt, m, x.dev, y2.dev, smean, sinv, part, 0, &err), 0, "%s", err.msg);
    bytes_equal("recompute against forward", &y, &y2);

    /* training backward: the gradient at bn's output is act'(z) * dy */
    float *gdw, *gdb;
    cr_assert_eq(cudaMalloc((void **)&gdw, c * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc((void **)&gdb, c * sizeof(float)), cudaSuccess);
    cr_assert_eq(cuda_bn_backward_train(&g, act, dt, m, x.dev, dy.dev, smean, sinv, dx.dev, gdw, gdb, part, 0,
                                        &err), 0, "%s", err.msg);
    if (act < 0) memcpy(gz, dy.host, n * sizeof(float));
    else cr_assert_eq(cpu_act_backward((CpuActKind)act, n, z, dy.host, gz, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_bn_backward_train(&h, s, x.host, gz, hm, hi, want, hdw, hdb, &err), 0, "%s", err.msg);
    buf_fetch(&dx), near("backward dx", dx.host, want, n, tol);
    near("dweight", t = host_floats(gdw, c), hdw, c, tol_f), free(t);
    near("dbias", t = host_floats(gdb, c), hdb, c, tol_f), free(t);
    /* dx omitted: the same parameter gradients; dx over dy: the same dx */
    float *dw1 = host_floats(gdw, c), *db1 = host_floats(gdb, c);
    cr_assert_eq(cuda_bn_backward_train(&g, act, dt, m, x.dev, dy.dev, smean, sinv, NULL, gdw, gdb, part, 0,
                                        &err), 0, "%s", err.msg);
    float *dw2 = host_floats(gdw, c), *db2 = host_floats(gdb, c);
    cr_expect_eq(memcmp(dw1, dw2, c * sizeof(float)), 0, "dweight without dx: other bits");
    cr_expect_eq(memcmp(db1, db2, c * sizeof(float)), 0, "dbias without dx: other bits");
    cr_assert_eq(cuda_bn_backward_train(&g, act, dt, m, x.dev, dy.dev, smean, sinv, dy.dev, gdw, gdb, part, 0,
                                        &err), 0, "%s", err.msg);
    bytes_equal("dx over dy against dx apart", &dy, &dx);

    /* eval forward and its backward, with the running statistics the forward left */
    cr_assert_eq(cuda_bn_forward_eval(&g, act, dt, m, x.dev, y.dev, part, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_bn_forward_eval(&h, s, x.host, z, &err), 0, "%s", err.msg);
    host_act(act, n, z, want);
    buf_fetch(&y), near("eval forward y", y.host, want, n, tol);
    Buf dy2 = buf(dt, n, c, 3, shift);
    cr_assert_eq(cuda_bn_backward_eval(&g, act, dt, m, x.dev, dy2.dev, dx.dev, part, 0, &err), 0, "%s", err.msg);
    if (act < 0) memcpy(gz, dy2.host, n * sizeof(float));
    else cr_assert_eq(cpu_act_backward((CpuActKind)act, n, z, dy2.host, gz, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_bn_backward_eval(&h, s, x.host, gz, want, NULL, NULL, &err), 0, "%s", err.msg);
    buf_fetch(&dx), near("eval backward dx", dx.host, want, n, tol);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);

    buf_drop(&x), buf_drop(&dy), buf_drop(&y), buf_drop(&y2), buf_drop(&dx), buf_drop(&dy2);
    cudaFree(part), cudaFree(smean), cudaFree(sinv), cudaFree(gdw), cudaFree(gdb);
    cudaFree((void *)g.weight), cudaFree((void *)g.bias), cudaFree(g.running_mean), cudaFree(g.running_var);
    free(w), free(b), free(rm), free(rv), free(z), free(want), free(gz), free(hm), free(hi), free(hdw), free(hdb);
    free(dw1), free(db1), free(dw2), free(db2);
}

static void check(CudaDtype dt, int c, size_t m, int act) { check_at(dt, c, m, act, 0); }

Test(cuda_bn, float32_scalar_path_three_rows) { check(CUDA_F32, 3, 3, CUDA_BN_NO_ACT); }
Test(cuda_bn, float32_40_channels_relu) { check(CUDA_F32, 40, 333, CPU_ACT_RELU); }
Test(cuda_bn, float32_672_channels_one_chunk_silu) { check(CUDA_F32, 672, 333, CPU_ACT_SILU); }
Test(cuda_bn, float32_1152_channels_two_chunks) { check(CUDA_F32, 1152, 333, CUDA_BN_NO_ACT); }
Test(cuda_bn, float32_1284_channels_last_chunk_partly_filled) { check(CUDA_F32, 1284, 333, CPU_ACT_SILU); }
Test(cuda_bn, float32_many_row_blocks, .timeout = 60) { check(CUDA_F32, 1152, 9000, CPU_ACT_HARDSWISH); }
/* bf16 and fp16: 4 channels per thread where c % 4 == 0 (1152: two chunks of 144; 1284:
 * two chunks of 161 and 160), 1 otherwise */
Test(cuda_bn, bf16_scalar_path) { check(CUDA_BF16, 3, 333, CPU_ACT_SILU); }
Test(cuda_bn, bf16_40_channels_silu) { check(CUDA_BF16, 40, 333, CPU_ACT_SILU); }
Test(cuda_bn, bf16_672_channels_one_chunk) { check(CUDA_BF16, 672, 333, CUDA_BN_NO_ACT); }
Test(cuda_bn, bf16_1152_channels_two_chunks_silu) { check(CUDA_BF16, 1152, 333, CPU_ACT_SILU); }
Test(cuda_bn, bf16_1284_channels_last_chunk_partly_filled) { check(CUDA_BF16, 1284, 333, CUDA_BN_NO_ACT); }
Test(cuda_bn, bf16_many_row_blocks, .timeout = 60) { check(CUDA_BF16, 1152, 9000, CPU_ACT_SILU); }
Test(cuda_bn, fp16_672_channels_relu) { check(CUDA_F16, 672, 333, CPU_ACT_RELU); }
/* channel counts the vectors divide, on buffers one element off 16-byte alignment */
Test(cuda_bn, float32_misaligned_buffers) { check_at(CUDA_F32, 40, 333, CPU_ACT_RELU, 1); }
Test(cuda_bn, bf16_misaligned_buffers) { check_at(CUDA_BF16, 672, 333, CPU_ACT_SILU, 1); }

/* What the entries refuse, by name, before any launch: needs no GPU. */
Test(cuda_bn, refuses_bad_arguments_by_name) {
    StkErr err;
    float f = 0;
    CudaBn g = {8, 1e-5f, 0.1f, &f, &f, &f, &f};
    cr_expect_eq(cuda_bn_forward_train(&g, CUDA_BN_NO_ACT, CUDA_F32, 1, &f, &f, &f, &f, &f, 0, &err), -1);
    cr_expect(strstr(err.msg, "cuda_bn_forward_train") && strstr(err.msg, "more than 1"), "%s", err.msg);
    cr_expect_eq(cuda_bn_backward_train(&g, 99, CUDA_F32, 4, &f, &f, &f, &f, &f, &f, &f, &f, 0, &err), -1);
    cr_expect(strstr(err.msg, "cuda_bn_backward_train: activation 99 unknown"), "%s", err.msg);
    g.weight = NULL;
    cr_expect_eq(cuda_bn_forward_eval(&g, CUDA_BN_NO_ACT, CUDA_F32, 4, &f, &f, &f, 0, &err), -1);
    cr_expect(strstr(err.msg, "cuda_bn_forward_eval: every tensor"), "%s", err.msg);
}
