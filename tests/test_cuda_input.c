/* test_cuda_input.c: the input-normalisation kernel against a CPU reference, float32
 * and bfloat16, NCHW and NHWC. Skips (not fails) where there is no GPU, as on CI;
 * scripts/gpu_check.sh runs it on the GPU test machine. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_device.h"
#include "test_cuda_skip.h"
#include "cpu_input.h"
#include "cuda_input.h"

/* bf16 -> float: the top 16 bits of a float */
static float bf16_to_float(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void check(CudaDtype dtype, CudaLayout layout) {
    need_gpu();
    const int n = 3, h = 17, w = 13, c = 3;
    const size_t count = (size_t)n * h * w * c;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    uint8_t *px = malloc(count);
    for (size_t i = 0; i < count; i++) px[i] = (uint8_t)((i * 2654435761u) >> 24);
    size_t esize = dtype == CUDA_F32 ? 4 : 2;
    void *d_in, *d_out, *out = malloc(count * esize);
    cr_assert_eq(cudaMalloc(&d_in, count), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d_out, count * esize), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d_in, px, count, cudaMemcpyHostToDevice), cudaSuccess);
    StkErr err;
    cr_assert_eq(cuda_input_normalize(d_in, d_out, n, h, w, c, mean, std, dtype, layout, 0,
                                      &err), 0, "%s", err.msg);
    cr_assert_eq(cudaMemcpy(out, d_out, count * esize, cudaMemcpyDeviceToHost), cudaSuccess);
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++) {
                    size_t src = (((size_t)i * h + y) * w + x) * c + ch;
                    size_t dst = layout == CUDA_NCHW ? (((size_t)i * c + ch) * h + y) * w + x : src;
                    double ref = (px[src] / 255.0 - mean[ch]) / std[ch];
                    double got = dtype == CUDA_F32 ? ((float *)out)[dst]
                                                   : bf16_to_float(((uint16_t *)out)[dst]);
                    /* float32: a few ulps of the folded affine; bf16: half an ulp of 8 bits */
                    double tol = dtype == CUDA_F32 ? 2e-6 : 0.004 * fabs(ref) + 1e-6;
                    cr_assert(fabs(got - ref) <= tol, "[%d,%d,%d,%d] %f vs %f", i, y, x, ch,
                              got, ref);
                    if (fabs(got - ref) > worst) worst = fabs(got - ref);
                }
    cr_log_info("dtype %d layout %d: largest |diff| %.3g", dtype, layout, worst);
    cudaFree(d_in);
    cudaFree(d_out);
    free(px);
    free(out);
}

Test(cuda_input, float32_nchw_matches_cpu) { check(CUDA_F32, CUDA_NCHW); }
Test(cuda_input, float32_nhwc_matches_cpu) { check(CUDA_F32, CUDA_NHWC); }
Test(cuda_input, bf16_nchw_matches_cpu) { check(CUDA_BF16, CUDA_NCHW); }
Test(cuda_input, bf16_nhwc_matches_cpu) { check(CUDA_BF16, CUDA_NHWC); }

/* The GPU kernel and the CPU backend's twin give the same float32 bits. */
Test(cuda_input, float32_equals_the_cpu_backend_bit_for_bit) {
    need_gpu();
    const int n = 2, h = 9, w = 11, c = 3;
    const size_t count = (size_t)n * h * w * c;
    uint8_t px[2 * 9 * 11 * 3];
    float cpu[2 * 9 * 11 * 3], gpu[2 * 9 * 11 * 3];
    for (size_t i = 0; i < count; i++) px[i] = (uint8_t)(i * 13 + 7);
    StkErr err;
    cr_assert_eq(cpu_input_normalize(px, cpu, (Shape4){n, c, h, w}, CPU_IMAGENET_MEAN,
                                     CPU_IMAGENET_STD, &err), 0, "%s", err.msg);
    void *d_in, *d_out;
    cr_assert_eq(cudaMalloc(&d_in, count), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d_out, count * 4), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d_in, px, count, cudaMemcpyHostToDevice), cudaSuccess);
    cr_assert_eq(cuda_input_normalize(d_in, d_out, n, h, w, c, CPU_IMAGENET_MEAN,
                                      CPU_IMAGENET_STD, CUDA_F32, CUDA_NCHW, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cudaMemcpy(gpu, d_out, count * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert(!memcmp(cpu, gpu, sizeof cpu), "GPU and CPU normalisation differ");
    cudaFree(d_in);
    cudaFree(d_out);
}

Test(cuda_input, rejects_bad_arguments_before_launching) {
    const float mean[3] = {0}, std_ok[3] = {1, 1, 1}, std_zero[3] = {1, 0, 1};
    StkErr err;
    cr_assert_eq(cuda_input_normalize((const uint8_t *)8, (void *)8, 2, 4, 4, 5, mean, std_ok,
                                      CUDA_F32, CUDA_NCHW, 0, &err), -1);
    cr_assert(strstr(err.msg, "bad shape 2x4x4x5"), "%s", err.msg);
    cr_assert_eq(cuda_input_normalize((const uint8_t *)8, (void *)8, 2, 4, 4, 3, mean, std_zero,
                                      CUDA_F32, CUDA_NCHW, 0, &err), -1);
    cr_assert(strstr(err.msg, "std[1] is 0"), "%s", err.msg);
}

Test(cuda_input, device_info_reads_the_gpu) {
    need_gpu();
    CudaDeviceInfo info;
    StkErr err;
    cr_assert_eq(cuda_device_info(0, &info, &err), 0, "%s", err.msg);
    cr_assert(info.major >= 5 && info.total_bytes > (1ull << 30) && info.cudnn_version >= 8000,
              "%s sm_%d%d %zu bytes cuDNN %zu", info.name, info.major, info.minor,
              info.total_bytes, info.cudnn_version);
    cr_log_info("%s sm_%d%d, %.1f GiB, %d SMs, runtime %d, driver %d, cuDNN %zu", info.name,
                info.major, info.minor, info.total_bytes / 1073741824.0, info.sm_count,
                info.runtime_version, info.driver_version, info.cudnn_version);
}
