/* cuda_scaler.cu: the loss scaler's kernels (see cuda_scaler.h). */
#include <math.h>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_scaler.h"

#define SCALER_BLOCK 256
#define SCALER_MAX_BLOCKS 4096

__global__ void unscale_kernel(size_t n, float *g, CudaScalerState *st) {
    float inv = 1.0f / st->scale; /* a power of two: exact */
    int bad = 0;
    GRID_STRIDE(i, n) {
        float v = g[i] * inv;
        g[i] = v;
        bad |= !isfinite(v);
    }
    if (__syncthreads_or(bad) && threadIdx.x == 0) st->found = 1;
}

__global__ void prepare_kernel(CudaScalerState *st, int interval, double lr, double b1, double b2) {
    if (st->found) {
        st->skip = 1, st->skipped++, st->good = 0;
        st->scale *= 0.5f;
    } else {
        st->skip = 0, st->taken++;
        double t = (double)st->taken;
        st->step_size = (float)(lr / (1 - pow(b1, t)));
        st->bc2_sqrt = (float)sqrt(1 - pow(b2, t));
        st->first = st->taken == 1;
        if (++st->good >= interval) st->good = 0, st->scale *= 2.0f;
    }
    st->found = 0;
}

extern "C" int cuda_scaler_init(CudaScaler *s, float init, int interval, StkErr *err) {
    s->dev = NULL, s->interval = interval;
    if (!(init > 0) || !isfinite(init) || interval < 1)
        return stk_errf(err, "cuda_scaler_init: scale %g, interval %d", init, interval);
    CudaScalerState h = {};
    h.scale = init;
    CUDA_TRY(err, cudaMalloc((void **)&s->dev, sizeof h));
    CUDA_TRY(err, cudaMemcpy(s->dev, &h, sizeof h, cudaMemcpyHostToDevice));
    return 0;
}

extern "C" void cuda_scaler_free(CudaScaler *s) {
    if (s->dev) cudaFree(s->dev);
    s->dev = NULL;
}

extern "C" int cuda_scaler_unscale(const CudaScaler *s, size_t n, float *g, cudaStream_t st, StkErr *err) {
    if (!n) return 0;
    unscale_kernel<<<cuda_grid_for(n, SCALER_BLOCK, SCALER_MAX_BLOCKS), SCALER_BLOCK, 0, st>>>(n, g, s->dev);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_scaler_prepare(const CudaScaler *s, double lr, double beta1, double beta2,
                                   cudaStream_t st, StkErr *err) {
    prepare_kernel<<<1, 1, 0, st>>>(s->dev, s->interval, lr, beta1, beta2);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_scaler_read(const CudaScaler *s, cudaStream_t st, float *scale, uint64_t *skipped,
                                StkErr *err) {
    CudaScalerState h;
    CUDA_TRY(err, cudaMemcpyAsync(&h, s->dev, sizeof h, cudaMemcpyDeviceToHost, st));
    CUDA_TRY(err, cudaStreamSynchronize(st));
    *scale = h.scale, *skipped = h.skipped;
    return 0;
}
