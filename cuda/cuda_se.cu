/* cuda_se.cu: squeeze-and-excitation's pool and scale passes (see cuda_se.h).
 *
 * Two kernel shapes. Sums over h*w per (sample, channel): a block takes one sample and a
 * chunk of up to 256 channel vectors, its threads walk every R-th row (R = 256 / chunk),
 * SE_UNROLL rows loaded before any is used, then the block's threads add their partial
 * sums in shared memory in a fixed order. Broadcasts (x * s[n, c], dy[n, c] / hw): a
 * grid-stride walk over one sample's vectors per block row, 32-bit index math. The
 * kernels they replace did 64-bit division per element and moved 2 bytes per load:
 * 1-2 TB/s where the H200 gives ~4. */
#include "cuda_check.h"
#include "cuda_dtype.h"
#include "cuda_se.h"

#define SE_THREADS 256
#define SE_UNROLL 4

template <typename T, int V> struct alignas(sizeof(T) * V) SeVec { T v[V]; };

/* Threads of a sum block: `width` channel vectors side by side, `rows` rows at once. */
struct SeGeom {
    int width, rows;
};

__host__ __device__ static inline SeGeom se_geom(int cv) {
    SeGeom g;
    g.width = cv < SE_THREADS ? cv : SE_THREADS;
    g.rows = SE_THREADS / g.width;
    return g;
}

/* out[n, ch] = (sum over rows r of a[n, r, ch] * (b ? b[n, r, ch] : 1)) / div; with DX,
 * also dx[n, r, ch] = a[n, r, ch] * sc[n, ch] (the scale's input gradient, a = dy, b =
 * x). dx may alias a: each element is read before it is written, by the same thread. */
template <typename T, int V, bool DX>
__global__ void __launch_bounds__(SE_THREADS) se_sum_kernel(int hw, int c, const T *a, const T *b,
                                                            const T *sc, T *dx, T *out, float div) {
    __shared__ float sh[SE_THREADS * V];
    int cv = c / V, n = blockIdx.y;
    SeGeom g = se_geom(cv);
    int lane = threadIdx.x % g.width, r0 = threadIdx.x / g.width, col = blockIdx.x * g.width + lane;
    float acc[V], s[V];
    for (int k = 0; k < V; k++) acc[k] = 0.0f, s[k] = 0.0f;
    if (r0 < g.rows && col < cv) {
        if (DX)
            for (int k = 0; k < V; k++) s[k] = ld(sc + (size_t)n * c + col * V + k);
        size_t base = (size_t)n * hw * cv + col;
        const SeVec<T, V> *av = (const SeVec<T, V> *)a + base, *bv = b ? (const SeVec<T, V> *)b + base : NULL;
        SeVec<T, V> *dv = DX ? (SeVec<T, V> *)dx + base : NULL;
        for (int r = r0; r < hw; r += SE_UNROLL * g.rows) {
            SeVec<T, V> va[SE_UNROLL], vb[SE_UNROLL];
#pragma unroll
            for (int j = 0; j < SE_UNROLL; j++) {
                int rr = r + j * g.rows;
                if (rr < hw) {
                    va[j] = av[(size_t)rr * cv];
                    if (bv) vb[j] = bv[(size_t)rr * cv];
                }
            }
#pragma unroll
            for (int j = 0; j < SE_UNROLL; j++) {
                int rr = r + j * g.rows;
                if (rr >= hw) continue;
                SeVec<T, V> o;
                for (int k = 0; k < V; k++) {
                    float x = ld(&va[j].v[k]);
                    acc[k] += bv ? x * ld(&vb[j].v[k]) : x;
                    if (DX) st(&o.v[k], x * s[k]);
                }
                if (DX) dv[(size_t)rr * cv] = o;
            }
        }
    }
    for (int k = 0; k < V; k++) sh[threadIdx.x * V + k] = acc[k];
    __syncthreads();
    if (r0 != 0 || col >= cv) return;
    for (int r = 1; r < g.rows; r++)
        for (int k = 0; k < V; k++) acc[k] += sh[(r * g.width + lane) * V + k];
    for (int k = 0; k < V; k++) st(out + (size_t)n * c + col * V + k, acc[k] / div);
}

/* Per sample (block row n) over its hw*c/V vectors: SCALE y = x * sc[n, ch]; else y =
 * sc[n, ch] * mul, added to y when acc. y may alias x. */
template <typename T, int V, bool SCALE>
__global__ void se_bcast_kernel(int hwcv, int c, const T *x, const T *sc, T *y, float mul, int acc) {
    int n = blockIdx.y, cv = c / V;
    const T *sn = sc + (size_t)n * c;
    const SeVec<T, V> *xv = SCALE ? (const SeVec<T, V> *)x + (size_t)n * hwcv : NULL;
    SeVec<T, V> *yv = (SeVec<T, V> *)y + (size_t)n * hwcv;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < hwcv; e += gridDim.x * blockDim.x) {
        int ch = (e % cv) * V;
        SeVec<T, V> o, in;
        if (SCALE) in = xv[e];
        else if (acc) in = yv[e];
        for (int k = 0; k < V; k++) {
            float v = SCALE ? ld(&in.v[k]) * ld(sn + ch + k) : ld(sn + ch + k) * mul;
            if (!SCALE && acc) v += ld(&in.v[k]);
            st(&o.v[k], v);
        }
        yv[e] = o;
    }
}

/* 16 bytes per thread when c is a multiple of that many elements, else one. */
#define SE_DISPATCH(dt, c, launch)                                                         \
    do {                                                                                   \
        if ((dt) == CUDA_BF16) {                                                           \
            typedef __nv_bfloat16 T;                                                       \
            if ((c) % 8 == 0) { const int V = 8; launch; } else { const int V = 1; launch; } \
        } else if ((dt) == CUDA_F16) {                                                     \
            typedef __half T;                                                              \
            if ((c) % 8 == 0) { const int V = 8; launch; } else { const int V = 1; launch; } \
        } else {                                                                           \
            typedef float T;                                                               \
            if ((c) % 4 == 0) { const int V = 4; launch; } else { const int V = 1; launch; } \
        }                                                                                  \
    } while (0)

static int check_shape(int n, int hw, int c, const char *fn, StkErr *err) {
    if (n < 1 || n > 65535 || hw < 1 || c < 1 || (long long)hw * c >= (1ll << 31))
        return stk_errf(err, "%s: shape %d x %d x %d (samples 1..65535, h*w*c under 2^31)", fn, n, hw, c);
    return 0;
}

static int vec_of(CudaDtype dt, int c) {
    int v = dt == CUDA_F32 ? 4 : 8;
    return c % v == 0 ? v : 1;
}

static dim3 sum_grid(int n, int c, CudaDtype dt) {
    int cv = c / vec_of(dt, c);
    SeGeom g = se_geom(cv);
    return dim3((unsigned)((cv + g.width - 1) / g.width), (unsigned)n);
}

/* About four vectors per thread, at most 1024 blocks per sample. */
static dim3 bcast_grid(int n, int hwcv) {
    int b = (hwcv + SE_THREADS * 4 - 1) / (SE_THREADS * 4);
    return dim3((unsigned)(b < 1 ? 1 : b > 1024 ? 1024 : b), (unsigned)n);
}

extern "C" int cuda_avgpool_forward(CudaDtype dt, Shape4 in, const void *x, void *y, cudaStream_t s,
                                    StkErr *err) {
    int hw = in.h * in.w;
    if (check_shape(in.n, hw, in.c, "cuda_avgpool_forward", err)) return -1;
    SE_DISPATCH(dt, in.c, (se_sum_kernel<T, V, false><<<sum_grid(in.n, in.c, dt), SE_THREADS, 0, s>>>(
                              hw, in.c, (const T *)x, (const T *)NULL, (const T *)NULL, (T *)NULL,
                              (T *)y, (float)hw)));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_avgpool_backward(CudaDtype dt, Shape4 in, const void *dy, void *dx, int acc,
                                     cudaStream_t s, StkErr *err) {
    int hw = in.h * in.w;
    if (check_shape(in.n, hw, in.c, "cuda_avgpool_backward", err)) return -1;
    int hwcv = hw * (in.c / vec_of(dt, in.c));
    SE_DISPATCH(dt, in.c, (se_bcast_kernel<T, V, false><<<bcast_grid(in.n, hwcv), SE_THREADS, 0, s>>>(
                              hwcv, in.c, (const T *)NULL, (const T *)dy, (T *)dx, 1.0f / (float)hw, acc)));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_scale_forward(CudaDtype dt, int n, int hw, int c, const void *x, const void *sc,
                                  void *y, cudaStream_t s, StkErr *err) {
    if (check_shape(n, hw, c, "cuda_scale_forward", err)) return -1;
    int hwcv = hw * (c / vec_of(dt, c));
    SE_DISPATCH(dt, c, (se_bcast_kernel<T, V, true><<<bcast_grid(n, hwcv), SE_THREADS, 0, s>>>(
                           hwcv, c, (const T *)x, (const T *)sc, (T *)y, 1.0f, 0)));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_scale_backward(CudaDtype dt, int n, int hw, int c, const void *x, const void *sc,
                                   const void *dy, void *dx, void *ds, cudaStream_t s, StkErr *err) {
    if (check_shape(n, hw, c, "cuda_scale_backward", err)) return -1;
    if (!ds) return dx ? cuda_scale_forward(dt, n, hw, c, dy, sc, dx, s, err) : 0;
    dim3 grid = sum_grid(n, c, dt);
    if (dx)
        SE_DISPATCH(dt, c, (se_sum_kernel<T, V, true><<<grid, SE_THREADS, 0, s>>>(
                               hw, c, (const T *)dy, (const T *)x, (const T *)sc, (T *)dx, (T *)ds, 1.0f)));
    else
        SE_DISPATCH(dt, c, (se_sum_kernel<T, V, false><<<grid, SE_THREADS, 0, s>>>(
                               hw, c, (const T *)dy, (const T *)x, (const T *)NULL, (T *)NULL, (T *)ds, 1.0f)));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
