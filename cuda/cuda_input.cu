/* cuda_input.cu: uint8 NHWC -> normalised float32/bf16 NCHW/NHWC (see cuda_input.h).
 * One thread per pixel: it reads the pixel's c contiguous bytes and writes c values;
 * consecutive threads read consecutive pixels and write consecutive positions of each
 * output plane, so both sides coalesce. 64-bit indices: a batch may pass 2^31 values. */
#include <cuda_bf16.h>

#include "cuda_check.h"
#include "cuda_input.h"

#define INPUT_BLOCK 256
#define INPUT_MAX_BLOCKS 65535

struct Affine {
    float scale[4]; /* 1 / (255 * std) */
    float shift[4]; /* -mean / std */
};

__device__ static inline void store(float *out, size_t i, float v) { out[i] = v; }
__device__ static inline void store(__nv_bfloat16 *out, size_t i, float v) {
    out[i] = __float2bfloat16_rn(v);
}
__device__ static inline void store(__half *out, size_t i, float v) { out[i] = __float2half_rn(v); }

template <typename T>
__global__ void input_normalize_kernel(const uint8_t *__restrict__ in, T *__restrict__ out,
                                       long long pixels, int hw, int c, int nchw, Affine a) {
    for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < pixels;
         p += (long long)gridDim.x * blockDim.x) {
        const uint8_t *px = in + p * c;
        long long img = p / hw, pos = p % hw;
        for (int ch = 0; ch < c; ch++) {
            /* no FMA contraction: the CPU twin (trainer/cpu_input.c) rounds twice too */
            float v = __fadd_rn(__fmul_rn((float)px[ch], a.scale[ch]), a.shift[ch]);
            size_t o = nchw ? (size_t)((img * c + ch) * hw + pos) : (size_t)(p * c + ch);
            store(out, o, v);
        }
    }
}

extern "C" int cuda_input_normalize(const uint8_t *d_in, void *d_out, int n, int h, int w,
                                    int c, const float *mean, const float *std,
                                    CudaDtype dtype, CudaLayout layout, cudaStream_t stream,
                                    StkErr *err) {
    if (!d_in || !d_out || n < 1 || h < 1 || w < 1 || c < 1 || c > 4)
        return stk_errf(err, "cuda_input_normalize: bad shape %dx%dx%dx%d", n, h, w, c);
    if (dtype != CUDA_F32 && dtype != CUDA_BF16 && dtype != CUDA_F16)
        return stk_errf(err, "cuda_input_normalize: dtype %d unknown", (int)dtype);
    Affine a;
    for (int i = 0; i < c; i++) {
        if (std[i] == 0.0f) return stk_errf(err, "cuda_input_normalize: std[%d] is 0", i);
        /* x/255 then (x - mean)/std, folded: x * (1/(255 std)) + (-mean/std) */
        a.scale[i] = 1.0f / (255.0f * std[i]);
        a.shift[i] = -mean[i] / std[i];
    }
    long long pixels = (long long)n * h * w;
    long long blocks = (pixels + INPUT_BLOCK - 1) / INPUT_BLOCK;
    unsigned grid = (unsigned)(blocks < INPUT_MAX_BLOCKS ? blocks : INPUT_MAX_BLOCKS);
    int nchw = layout == CUDA_NCHW;
    CUDA_DISPATCH(dtype, T, input_normalize_kernel<<<grid, INPUT_BLOCK, 0, stream>>>(
                                d_in, (T *)d_out, pixels, h * w, c, nchw, a));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
