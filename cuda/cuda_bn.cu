/* cuda_bn.cu: batch-norm kernels for NHWC float32 (see cuda_bn.h). Reductions follow
 * cuda_colsum's shape: blocks of 32 channels x 8 row lanes, split over the rows, partial
 * float sums per thread, combined per channel in double by a second kernel, so the order
 * is fixed and results repeat run after run. */
#include "cuda_bn.h"
#include "cuda_check.h"
#include "cuda_dtype.h"
#include "cuda_elem.h"

#define BN_X 32
#define BN_Y 8
#define BN_BLOCK 256
#define BN_MAX_BLOCKS 8192

/* part[by * c + ch] = sum (x - x[0, ch]), part[(split + by) * c + ch] = sum of squares. */
template <typename T>
__global__ void bn_stats_kernel(size_t m, int c, const T *__restrict__ x, float *part) {
    __shared__ float a1[BN_Y][BN_X], a2[BN_Y][BN_X];
    int ch = blockIdx.x * BN_X + threadIdx.x;
    float s1 = 0.0f, s2 = 0.0f;
    if (ch < c) {
        float k = ld(x + ch);
        for (size_t r = blockIdx.y * BN_Y + threadIdx.y; r < m; r += (size_t)gridDim.y * BN_Y) {
            float d = ld(x + r * c + ch) - k;
            s1 += d;
            s2 += d * d;
        }
    }
    a1[threadIdx.y][threadIdx.x] = s1;
    a2[threadIdx.y][threadIdx.x] = s2;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        for (int t = 1; t < BN_Y; t++) s1 += a1[t][threadIdx.x], s2 += a2[t][threadIdx.x];
        part[(size_t)blockIdx.y * c + ch] = s1;
        part[(size_t)(gridDim.y + blockIdx.y) * c + ch] = s2;
    }
}

template <typename T>
__global__ void bn_stats_final_kernel(size_t m, int c, int split, const T *x, const float *part,
                                      CudaBn bn, float *save_mean, float *save_invstd) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s1 = 0, s2 = 0;
    for (int p = 0; p < split; p++) s1 += part[(size_t)p * c + ch], s2 += part[(size_t)(split + p) * c + ch];
    double dm = (double)m, d = s1 / dm;
    double mean = ld(x + ch) + d, var = s2 / dm - d * d;
    if (var < 0) var = 0;
    save_mean[ch] = (float)mean;
    save_invstd[ch] = (float)(1.0 / sqrt(var + (double)bn.eps));
    double mom = bn.momentum;
    bn.running_mean[ch] = (float)(mom * mean + (1.0 - mom) * bn.running_mean[ch]);
    bn.running_var[ch] = (float)(mom * var * dm / (dm - 1.0) + (1.0 - mom) * bn.running_var[ch]);
}

template <typename T>
__global__ void bn_apply_kernel(size_t n, int c, const T *x, const float *__restrict__ mean,
                                const float *__restrict__ invstd, const float *__restrict__ w,
                                const float *__restrict__ b, T *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        st(y + i, (ld(x + i) - mean[ch]) * (invstd[ch] * w[ch]) + b[ch]);
    }
}

template <typename T> __global__ void bn_eval_kernel(size_t n, int c, const T *x, CudaBn bn, T *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        float a = (float)(1.0 / sqrt((double)bn.running_var[ch] + bn.eps)) * bn.weight[ch];
        st(y + i, (ld(x + i) - bn.running_mean[ch]) * a + bn.bias[ch]);
    }
}

/* part[by * c + ch] = sum dy, part[(split + by) * c + ch] = sum (x - mean) dy. */
template <typename T>
__global__ void bn_grad_kernel(size_t m, int c, const T *__restrict__ x, const T *__restrict__ dy,
                               const float *__restrict__ mean, float *part) {
    __shared__ float a1[BN_Y][BN_X], a2[BN_Y][BN_X];
    int ch = blockIdx.x * BN_X + threadIdx.x;
    float s1 = 0.0f, s2 = 0.0f;
    if (ch < c) {
        float mu = mean[ch];
        for (size_t r = blockIdx.y * BN_Y + threadIdx.y; r < m; r += (size_t)gridDim.y * BN_Y) {
            float g = ld(dy + r * c + ch);
            s1 += g;
            s2 += (ld(x + r * c + ch) - mu) * g;
        }
    }
    a1[threadIdx.y][threadIdx.x] = s1;
    a2[threadIdx.y][threadIdx.x] = s2;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        for (int t = 1; t < BN_Y; t++) s1 += a1[t][threadIdx.x], s2 += a2[t][threadIdx.x];
        part[(size_t)blockIdx.y * c + ch] = s1;
        part[(size_t)(gridDim.y + blockIdx.y) * c + ch] = s2;
    }
}

/* Per channel: dweight, dbias, and the dx coefficients (gm, k, scale) written over part's
 * first 3c floats (after the sums were read). */
__global__ void bn_grad_final_kernel(size_t m, int c, int split, float *part, const float *invstd,
                                     const float *w, float *dweight, float *dbias, float *coef) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double sdy = 0, dot = 0;
    for (int p = 0; p < split; p++) sdy += part[(size_t)p * c + ch], dot += part[(size_t)(split + p) * c + ch];
    double is = invstd[ch], dm = (double)m;
    if (dweight) dweight[ch] = (float)(dot * is);
    if (dbias) dbias[ch] = (float)sdy;
    coef[ch] = (float)(sdy / dm);
    coef[c + ch] = (float)(dot * is * is / dm);
    coef[2 * c + ch] = (float)(is * w[ch]);
}

template <typename T>
__global__ void bn_dx_kernel(size_t n, int c, const T *x, const T *dy, const float *mean,
                             const float *coef, T *dx) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        st(dx + i, (ld(dy + i) - coef[ch] - (ld(x + i) - mean[ch]) * coef[c + ch]) * coef[2 * c + ch]);
    }
}

static unsigned elem_grid(size_t n) {
    size_t b = (n + BN_BLOCK - 1) / BN_BLOCK;
    return (unsigned)(b < BN_MAX_BLOCKS ? b : BN_MAX_BLOCKS);
}

static int check(const CudaBn *bn, size_t m, int train, const char *fn, StkErr *err) {
    if (!bn->weight || !bn->bias || !bn->running_mean || !bn->running_var)
        return stk_errf(err, "%s: every tensor must be given (affine batch norm only)", fn);
    if (bn->c < 1 || m < (size_t)(train ? 2 : 1))
        return stk_errf(err, "%s: %zu values per channel over %d channels%s", fn, m, bn->c,
                        train ? " (training needs more than 1)" : "");
    return 0;
}

extern "C" int cuda_bn_forward_train(const CudaBn *bn, CudaDtype dt, size_t m, const void *x,
                                     void *y, float *save_mean, float *save_invstd, float *part,
                                     cudaStream_t s, StkErr *err) {
    if (check(bn, m, 1, "cuda_bn_forward_train", err)) return -1;
    int c = bn->c, split = cuda_colsum_split(m);
    dim3 block(BN_X, BN_Y), grid((unsigned)((c + BN_X - 1) / BN_X), (unsigned)split);
    size_t n = m * (size_t)c;
    CUDA_DISPATCH(dt, T, {
        bn_stats_kernel<T><<<grid, block, 0, s>>>(m, c, (const T *)x, part);
        bn_stats_final_kernel<T><<<(unsigned)((c + 127) / 128), 128, 0, s>>>(
            m, c, split, (const T *)x, part, *bn, save_mean, save_invstd);
        bn_apply_kernel<T><<<elem_grid(n), BN_BLOCK, 0, s>>>(n, c, (const T *)x, save_mean,
                                                             save_invstd, bn->weight, bn->bias, (T *)y);
    });
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_bn_forward_eval(const CudaBn *bn, CudaDtype dt, size_t m, const void *x,
                                    void *y, cudaStream_t s, StkErr *err) {
    if (check(bn, m, 0, "cuda_bn_forward_eval", err)) return -1;
    size_t n = m * (size_t)bn->c;
    CUDA_DISPATCH(dt, T, bn_eval_kernel<T><<<elem_grid(n), BN_BLOCK, 0, s>>>(n, bn->c, (const T *)x,
                                                                              *bn, (T *)y));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_bn_backward_train(const CudaBn *bn, CudaDtype dt, size_t m, const void *x,
                                      const void *dy, const float *save_mean,
                                      const float *save_invstd, void *dx, float *dweight,
                                      float *dbias, float *part, cudaStream_t s, StkErr *err) {
    if (check(bn, m, 1, "cuda_bn_backward_train", err)) return -1;
    int c = bn->c, split = cuda_colsum_split(m);
    dim3 block(BN_X, BN_Y), grid((unsigned)((c + BN_X - 1) / BN_X), (unsigned)split);
    /* the coefficients go after the partial sums (2 * split * c floats) */
    float *coef = part + (size_t)2 * split * c;
    size_t n = m * (size_t)c;
    CUDA_DISPATCH(dt, T, {
        bn_grad_kernel<T><<<grid, block, 0, s>>>(m, c, (const T *)x, (const T *)dy, save_mean, part);
        bn_grad_final_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(
            m, c, split, part, save_invstd, bn->weight, dweight, dbias, coef);
        bn_dx_kernel<T><<<elem_grid(n), BN_BLOCK, 0, s>>>(n, c, (const T *)x, (const T *)dy,
                                                          save_mean, coef, (T *)dx);
    });
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
