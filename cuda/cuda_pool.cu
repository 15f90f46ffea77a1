/* cuda_pool.cu: NHWC pooling kernels (see cuda_pool.h). One thread per output (forward)
 * or input (max-pool backward) element, channels fastest, so neighbours touch
 * neighbouring addresses. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_dtype.h"
#include "cuda_pool.h"

#define POOL_BLOCK 256
#define POOL_MAX_BLOCKS 8192

static unsigned grid_for(size_t n) { return cuda_grid_for(n, POOL_BLOCK, POOL_MAX_BLOCKS); }


template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; };

/* One thread per output position and vector of V channels: 32-bit index arithmetic (the
 * launcher checks the counts fit), the window's inputs read V channels at a time. */
template <typename T, int V>
__global__ void maxpool_fwd_kernel(CpuMaxPool p, Shape4 in, Shape4 out, const T *x, T *y,
                                   int32_t *argmax) {
    unsigned cv = (unsigned)out.c / V, total = (unsigned)out.n * out.h * out.w * cv;
    const Vec<T, V> *xv = (const Vec<T, V> *)x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        unsigned c = i % cv, r = i / cv, ow = r % out.w, oh = r / out.w % out.h, n = r / out.w / out.h;
        float best[V];
        int bi[V];
        for (int k = 0; k < V; k++) best[k] = -INFINITY, bi[k] = -1;
        for (int kh = 0; kh < p.kh; kh++) {
            int ih = (int)oh * p.sh - p.ph + kh;
            if (ih < 0 || ih >= in.h) continue;
            for (int kw = 0; kw < p.kw; kw++) {
                int iw = (int)ow * p.sw - p.pw + kw;
                if (iw < 0 || iw >= in.w) continue;
                Vec<T, V> v = xv[((n * in.h + ih) * in.w + iw) * cv + c];
                for (int k = 0; k < V; k++) {
                    float f = ld(&v.v[k]);
                    /* as cpu_pool.c and PyTorch: f > best or f is NaN (the last NaN wins) */
                    if (bi[k] < 0 || f > best[k] || isnan(f)) best[k] = f, bi[k] = ih * in.w + iw;
                }
            }
        }
        Vec<T, V> o;
        for (int k = 0; k < V; k++) {
            st(&o.v[k], best[k]);
            if (argmax) argmax[i * V + k] = bi[k]; /* NULL: eval only, no backward */
        }
        ((Vec<T, V> *)y)[i] = o;
    }
}

template <typename T, int V>
__global__ void maxpool_bwd_kernel(CpuMaxPool p, Shape4 in, Shape4 out, const T *dy,
                                   const int32_t *argmax, T *dx) {
    unsigned cv = (unsigned)in.c / V, total = (unsigned)in.n * in.h * in.w * cv;
    const Vec<T, V> *dv = (const Vec<T, V> *)dy;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        unsigned c = i % cv, r = i / cv;
        int iw = (int)(r % in.w), ih = (int)(r / in.w % in.h), n = (int)(r / in.w / in.h);
        int self = ih * in.w + iw;
        /* outputs whose window holds (ih, iw): oh * sh - ph <= ih <= oh * sh - ph + kh - 1 */
        int oh0 = ih + p.ph - p.kh + 1 < 0 ? 0 : (ih + p.ph - p.kh + p.sh) / p.sh, oh1 = (ih + p.ph) / p.sh;
        int ow0 = iw + p.pw - p.kw + 1 < 0 ? 0 : (iw + p.pw - p.kw + p.sw) / p.sw, ow1 = (iw + p.pw) / p.sw;
        float g[V];
        for (int k = 0; k < V; k++) g[k] = 0.0f;
        for (int oh = oh0; oh <= oh1 && oh < out.h; oh++)
            for (int ow = ow0; ow <= ow1 && ow < out.w; ow++) {
                unsigned o = (((unsigned)n * out.h + oh) * out.w + ow) * cv + c;
                Vec<T, V> d = dv[o];
                for (int k = 0; k < V; k++)
                    if (argmax[o * V + k] == self) g[k] += ld(&d.v[k]);
            }
        Vec<T, V> out_v;
        for (int k = 0; k < V; k++) st(&out_v.v[k], g[k]);
        ((Vec<T, V> *)dx)[i] = out_v;
    }
}

static int check_max(const CpuMaxPool *p, Shape4 in, Shape4 out, const char *fn, StkErr *err) {
    Shape4 want;
    if (cpu_maxpool_out_shape(p, in, &want, err)) return stk_err_wrap(err, "%s", fn);
    if (want.n != out.n || want.c != out.c || want.h != out.h || want.w != out.w)
        return stk_errf(err, "%s: output %dx%dx%dx%d, the geometry gives %dx%dx%dx%d", fn, out.n,
                        out.c, out.h, out.w, want.n, want.c, want.h, want.w);
    return 0;
}

/* Channels per thread: 4 when c allows, else 1. */
#define POOL_DISPATCH(dt, c, kernel, grid, ...)                                             \
    do {                                                                                    \
        if ((c) % 4 == 0) CUDA_DISPATCH(dt, T, kernel<T, 4><<<grid, POOL_BLOCK, 0, s>>>(__VA_ARGS__)); \
        else CUDA_DISPATCH(dt, T, kernel<T, 1><<<grid, POOL_BLOCK, 0, s>>>(__VA_ARGS__));  \
    } while (0)

static int fits32(Shape4 a, Shape4 b, const char *fn, StkErr *err) {
    if (shape4_numel(a) >= (1u << 31) || shape4_numel(b) >= (1u << 31))
        return stk_errf(err, "%s: over 2^31 elements in one tensor", fn);
    return 0;
}

extern "C" int cuda_maxpool_forward(const CpuMaxPool *p, CudaDtype dt, Shape4 in, Shape4 out,
                                    const void *x, void *y, int32_t *argmax, cudaStream_t s,
                                    StkErr *err) {
    if (check_max(p, in, out, "cuda_maxpool_forward", err) || fits32(in, out, "cuda_maxpool_forward", err))
        return -1;
    unsigned grid = grid_for(shape4_numel(out) / (out.c % 4 ? 1 : 4));
    POOL_DISPATCH(dt, out.c, maxpool_fwd_kernel, grid, *p, in, out, (const T *)x, (T *)y, argmax);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_maxpool_backward(const CpuMaxPool *p, CudaDtype dt, Shape4 in, Shape4 out,
                                     const void *dy, const int32_t *argmax, void *dx,
                                     cudaStream_t s, StkErr *err) {
    if (check_max(p, in, out, "cuda_maxpool_backward", err) || fits32(in, out, "cuda_maxpool_backward", err))
        return -1;
    unsigned grid = grid_for(shape4_numel(in) / (in.c % 4 ? 1 : 4));
    POOL_DISPATCH(dt, in.c, maxpool_bwd_kernel, grid, *p, in, out, (const T *)dy, argmax, (T *)dx);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
