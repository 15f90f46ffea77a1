/* cuda_loss.cu: one block per row: the row's max, then sum exp(x - max) and sum x in
 * double (block reductions), then the gradient (see cuda_loss.h). */
#include <math.h>

#include "cuda_check.h"
#include "cuda_dtype.h"
#include "cuda_loss.h"

#define LOSS_BLOCK 256

/* Sum (op 0) or max (op 1) of v over the block; every thread gets the result. */
__device__ static double block_reduce(double v, int op) {
    __shared__ double sh[LOSS_BLOCK];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int half = LOSS_BLOCK / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            double o = sh[threadIdx.x + half];
            sh[threadIdx.x] = op ? fmax(sh[threadIdx.x], o) : sh[threadIdx.x] + o;
        }
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

template <typename T>
__global__ void ce_kernel(int n, int k, const T *__restrict__ logits, const int32_t *labels,
                          float eps, const float *scale, float *row_loss, T *dlogits) {
    int row = blockIdx.x;
    const T *x = logits + (size_t)row * k;
    double mx = -INFINITY;
    for (int j = threadIdx.x; j < k; j += LOSS_BLOCK) mx = fmax(mx, (double)ld(x + j));
    mx = block_reduce(mx, 1);
    double se = 0, sx = 0;
    for (int j = threadIdx.x; j < k; j += LOSS_BLOCK) se += exp(ld(x + j) - mx), sx += ld(x + j);
    se = block_reduce(se, 0);
    sx = block_reduce(sx, 0);
    int label = labels[row];
    int ok = label >= 0 && label < k;
    double lse = mx + log(se);
    if (threadIdx.x == 0)
        row_loss[row] = ok ? (float)(lse - (1.0 - eps) * ld(x + label) - eps / k * sx) : NAN;
    if (!dlogits) return;
    double sc = scale ? (double)*scale : 1.0;
    for (int j = threadIdx.x; j < k; j += LOSS_BLOCK) {
        double q = eps / k + (j == label ? 1.0 - eps : 0.0);
        st(dlogits + (size_t)row * k + j, (float)((exp(ld(x + j) - lse) - q) * sc / n));
    }
}

extern "C" int cuda_ce_loss(CudaDtype dt, int n, int k, const void *logits, const int32_t *labels,
                            float eps, const float *scale, float *row_loss, void *dlogits, cudaStream_t s,
                            StkErr *err) {
    if (n < 1 || k < 1) return stk_errf(err, "cuda_ce_loss: %d rows of %d classes", n, k);
    if (!(eps >= 0 && eps <= 1)) return stk_errf(err, "cuda_ce_loss: label smoothing %g outside [0, 1]", eps);
    CUDA_DISPATCH(dt, T, ce_kernel<T><<<(unsigned)n, LOSS_BLOCK, 0, s>>>(
                             n, k, (const T *)logits, labels, eps, scale, row_loss, (T *)dlogits));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
