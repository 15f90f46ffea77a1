/* cuda_bn.cu: batch-norm kernels for NHWC data (see cuda_bn.h).
 *
 * Memory-bound, so shaped for bandwidth: a thread moves V channels at once (4 when c
 * allows, else 1) and loads BN_UNROLL rows before it computes, index math is 32-bit where the vector
 * count fits, and each pass reads x once. Reductions: a block takes a chunk of up to 256
 * channel vectors and every R-th row (R = 256 / chunk) of its share of the rows; partial
 * float sums per thread, reduced over the block in shared memory, one partial per block
 * and channel, then combined per channel in double by a small kernel: a fixed order, so
 * results repeat run after run. The per-channel kernels also turn the statistics into
 * the coefficients the elementwise passes need (coef[], 5c floats after the partials). */
#include <stdint.h>

#include "cuda_actfn.cuh"
#include "cuda_bn.h"
#include "cuda_check.h"
#include "cuda_dtype.h"
#include "cuda_elem.h"

#define BN_THREADS 256
#define BN_UNROLL 4 /* rows a thread loads before it computes: loads in flight hide latency */
#define BN_UNROLL_BWD 2 /* the backward passes hold two tensors and six coefficient sets */
#define BN_MIN_BLOCKS 4 /* per SM: registers capped at 64 so half the threads can be resident */

template <typename T, int V> struct alignas(sizeof(T) * V) Vec { T v[V]; }; /* V * sizeof(T) bytes, aligned so */

/* Thread geometry of a block over cv channel vectors: the vectors split into equal chunks
 * of at most BN_THREADS, and a block of width x rows threads, all of them used (1152
 * channels were chunks of 256 and 32 vectors in blocks of 256 threads, half the blocks
 * 7/8 idle; the same speed on an H200 either way, so idle threads are not what bounds
 * these passes, but no block launches threads it cannot use). */
struct RedGeom {
    int width;  /* vectors per block chunk (<= BN_THREADS) */
    int rows;   /* rows a block covers per step */
    int threads; /* width * rows <= BN_THREADS: the block's size */
};

__host__ __device__ static inline RedGeom red_geom(int cv) {
    RedGeom g;
    int chunks = (cv + BN_THREADS - 1) / BN_THREADS;
    g.width = (cv + chunks - 1) / chunks;
    g.rows = BN_THREADS / g.width;
    g.threads = g.width * g.rows;
    return g;
}

/* Calls f(i0, step, u) for this thread's rows of the grid-stride walk: elements
 * i0 + j * step for j < u, with u = BN_UNROLL except at the tail, so f can load all u
 * before it uses any. */
template <int U, typename F>
__device__ static inline void walk_rows(size_t m, int cv, int col, size_t r, size_t stride, F f) {
    size_t step = stride * (size_t)cv;
    for (; r + (U - 1) * stride < m; r += U * stride) f(r * cv + col, step, U);
    for (; r < m; r += stride) f(r * cv + col, step, 1);
}

/* Sums over the rows of this block's share: a[v] += f(element, vector) for the vector
 * column col, then the block-wide reduction; thread (col, 0) ends with the totals. The
 * functor gets u element indices (i0 + j * step) and accumulates into s1, s2. */
template <int V, int U, typename F>
__device__ static inline void block_rows(size_t m, int cv, F f, float *s1, float *s2) {
    __shared__ float sh1[BN_THREADS * V], sh2[BN_THREADS * V];
    RedGeom g = red_geom(cv);
    int tid = threadIdx.x, lane = tid % g.width, r0 = tid / g.width;
    int col = blockIdx.x * g.width + lane;
    for (int k = 0; k < V; k++) s1[k] = s2[k] = 0.0f;
    if (r0 < g.rows && col < cv)
        walk_rows<U>(m, cv, col, (size_t)blockIdx.y * g.rows + r0, (size_t)gridDim.y * g.rows,
                     [&](size_t i0, size_t step, int u) { f(i0, step, u, s1, s2); });
    for (int k = 0; k < V; k++) sh1[tid * V + k] = s1[k], sh2[tid * V + k] = s2[k];
    __syncthreads();
    if (r0 == 0 && col < cv)
        for (int r = 1; r < g.rows; r++)
            for (int k = 0; k < V; k++)
                s1[k] += sh1[(r * g.width + lane) * V + k], s2[k] += sh2[(r * g.width + lane) * V + k];
}

/* Writes a block's totals: part[by * c + ch] and part[(split + by) * c + ch]. */
template <int V>
__device__ static inline void put_partials(int cv, int c, float *part, const float *s1, const float *s2) {
    RedGeom g = red_geom(cv);
    int lane = threadIdx.x % g.width, col = blockIdx.x * g.width + lane;
    if (threadIdx.x / g.width != 0 || col >= cv) return;
    for (int k = 0; k < V; k++) {
        part[(size_t)blockIdx.y * c + col * V + k] = s1[k];
        part[(size_t)(gridDim.y + blockIdx.y) * c + col * V + k] = s2[k];
    }
}

/* Forward statistics: sums of (x - x[0, ch]) and its square. */
template <typename T, int V>
__global__ void __launch_bounds__(BN_THREADS, BN_MIN_BLOCKS) bn_stats_kernel(size_t m, int c, const T *__restrict__ x, float *part) {
    int cv = c / V;
    const Vec<T, V> *xv = (const Vec<T, V> *)x;
    RedGeom g = red_geom(cv);
    int col = blockIdx.x * g.width + threadIdx.x % g.width;
    Vec<T, V> k0 = xv[col < cv ? col : 0];
    float s1[V], s2[V];
    block_rows<V, BN_UNROLL>(m, cv, [&](size_t i0, size_t step, int u, float *a, float *b) {
        Vec<T, V> v[BN_UNROLL];
#pragma unroll
        for (int j = 0; j < BN_UNROLL; j++)
            if (j < u) v[j] = xv[i0 + j * step];
#pragma unroll
        for (int j = 0; j < BN_UNROLL; j++)
            if (j < u)
                for (int k = 0; k < V; k++) {
                    float d = ld(&v[j].v[k]) - ld(&k0.v[k]);
                    a[k] += d;
                    b[k] += d * d;
                }
    }, s1, s2);
    put_partials<V>(cv, c, part, s1, s2);
}

/* The per-channel kernels' combine of the reductions' partials (2 x split rows of c):
 * a block takes 8 channels, 32 lanes each sum every 32nd partial in double, then lane 0
 * adds the 32 in a fixed order (the same result run after run). A thread per channel
 * walking all split partials was latency-bound: 26 us per batch norm at split 196. */
#define FIN_CH 8
#define FIN_LANES 32

__device__ static inline int final_sums(const float *part, int split, int c, int *chp, double *s1,
                                        double *s2) {
    __shared__ double sh[2][FIN_LANES][FIN_CH];
    int cl = threadIdx.x % FIN_CH, lane = threadIdx.x / FIN_CH, ch = blockIdx.x * FIN_CH + cl;
    double a = 0, b = 0;
    if (ch < c)
#pragma unroll 4
        for (int p = lane; p < split; p += FIN_LANES)
            a += part[(size_t)p * c + ch], b += part[(size_t)(split + p) * c + ch];
    sh[0][lane][cl] = a, sh[1][lane][cl] = b;
    __syncthreads();
    if (lane != 0 || ch >= c) return 0;
    a = b = 0;
    for (int l = 0; l < FIN_LANES; l++) a += sh[0][l][cl], b += sh[1][l][cl];
    *chp = ch, *s1 = a, *s2 = b;
    return 1;
}

static unsigned final_blocks(int c) { return (unsigned)((c + FIN_CH - 1) / FIN_CH); }

/* Per channel: mean, invstd, running statistics, and y = f(x * coef[c] + coef[2c]). */
template <typename T>
__global__ void bn_stats_final_kernel(size_t m, int c, int split, const T *x, const float *part,
                                      CudaBn bn, float *save_mean, float *save_invstd, float *coef) {
    int ch;
    double s1, s2;
    if (!final_sums(part, split, c, &ch, &s1, &s2)) return;
    double dm = (double)m, d = s1 / dm;
    double mean = ld(x + ch) + d, var = s2 / dm - d * d;
    if (var < 0) var = 0;
    double invstd = 1.0 / sqrt(var + (double)bn.eps);
    save_mean[ch] = (float)mean;
    save_invstd[ch] = (float)invstd;
    invstd = (float)invstd; /* the backward recomputes the scale from the saved float */
    double mom = bn.momentum;
    bn.running_mean[ch] = (float)(mom * mean + (1.0 - mom) * bn.running_mean[ch]);
    bn.running_var[ch] = (float)(mom * var * dm / (dm - 1.0) + (1.0 - mom) * bn.running_var[ch]);
    /* as cpu_bn.c: (x - mean) * (invstd * w) + b, with mean and the product rounded to float;
     * the scale from the float invstd, exactly as bn_back_coef_kernel makes it again */
    coef[ch] = (float)mean;
    coef[c + ch] = (float)(invstd * bn.weight[ch]);
    coef[2 * c + ch] = bn.bias[ch];
}

__global__ void bn_eval_coef_kernel(int c, CudaBn bn, float *coef) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    coef[ch] = bn.running_mean[ch];
    coef[c + ch] = (float)(1.0 / sqrt((double)bn.running_var[ch] + bn.eps) * bn.weight[ch]);
    coef[2 * c + ch] = bn.bias[ch];
}

/* Elementwise passes use the reductions' geometry: a thread keeps one column of V
 * channels (its coefficients in registers) and walks every R-th row of its block's share. */
template <typename T, int V>
__global__ void __launch_bounds__(BN_THREADS, BN_MIN_BLOCKS) bn_apply_kernel(size_t m, int c, int act, const T *x, const float *__restrict__ coef,
                                T *y) {
    int cv = c / V;
    RedGeom g = red_geom(cv);
    int lane = threadIdx.x % g.width, r0 = threadIdx.x / g.width, col = blockIdx.x * g.width + lane;
    if (r0 >= g.rows || col >= cv) return;
    float mean[V], scale[V], beta[V];
    for (int k = 0; k < V; k++)
        mean[k] = coef[col * V + k], scale[k] = coef[c + col * V + k], beta[k] = coef[2 * c + col * V + k];
    const Vec<T, V> *xv = (const Vec<T, V> *)x; /* y may alias x (the eval forward) */
    Vec<T, V> *yv = (Vec<T, V> *)y;
    walk_rows<BN_UNROLL>(m, cv, col, (size_t)blockIdx.y * g.rows + r0, (size_t)gridDim.y * g.rows,
                         [&](size_t i0, size_t step, int u) {
        Vec<T, V> v[BN_UNROLL];
#pragma unroll
        for (int j = 0; j < BN_UNROLL; j++)
            if (j < u) v[j] = xv[i0 + j * step];
#pragma unroll
        for (int j = 0; j < BN_UNROLL; j++) {
            if (j >= u) continue;
            Vec<T, V> o;
            for (int k = 0; k < V; k++) {
                float z = (ld(&v[j].v[k]) - mean[k]) * scale[k] + beta[k];
                st(&o.v[k], act >= 0 ? act_f(act, z) : z);
            }
            yv[i0 + j * step] = o;
        }
    });
}

/* The gradient at bn's output: dy, times f'(z) when an activation is fused (z recomputed
 * from x with the forward's coefficients). */
template <typename T>
__device__ static inline float grad_at(int act, T x, T dy, float mean, float scale, float beta) {
    float g = ld(&dy);
    if (act < 0) return g;
    return g * act_df(act, (ld(&x) - mean) * scale + beta);
}

/* Backward sums: sum g and sum (x - mean) g. coef holds the forward's mean/scale/beta. */
template <typename T, int V>
__global__ void __launch_bounds__(BN_THREADS, BN_MIN_BLOCKS) bn_grad_kernel(size_t m, int c, int act, const T *__restrict__ x,
                               const T *__restrict__ dy, const float *__restrict__ coef, float *part) {
    int cv = c / V;
    const Vec<T, V> *xv = (const Vec<T, V> *)x, *dv = (const Vec<T, V> *)dy;
    RedGeom geo = red_geom(cv);
    int col = blockIdx.x * geo.width + threadIdx.x % geo.width, ch = (col < cv ? col : 0) * V;
    float s1[V], s2[V];
    float cf[3][V];
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < V; k++) cf[j][k] = coef[j * c + ch + k];
    block_rows<V, BN_UNROLL_BWD>(m, cv, [&](size_t i0, size_t step, int u, float *a, float *b) {
        Vec<T, V> xx[BN_UNROLL_BWD], gg[BN_UNROLL_BWD];
#pragma unroll
        for (int j = 0; j < BN_UNROLL_BWD; j++)
            if (j < u) xx[j] = xv[i0 + j * step], gg[j] = dv[i0 + j * step];
#pragma unroll
        for (int j = 0; j < BN_UNROLL_BWD; j++)
            if (j < u)
                for (int k = 0; k < V; k++) {
                    float g = grad_at(act, xx[j].v[k], gg[j].v[k], cf[0][k], cf[1][k], cf[2][k]);
                    a[k] += g;
                    b[k] += (ld(&xx[j].v[k]) - cf[0][k]) * g;
                }
    }, s1, s2);
    put_partials<V>(cv, c, part, s1, s2);
}

/* Per channel: dweight, dbias and dx = g * A + (x - mean) * B + C into coef[3c..5c) and
 * back over the first 3c (mean, scale, beta stay for the recomputation of z). */
__global__ void bn_grad_final_kernel(size_t m, int c, int split, const float *part, const float *invstd,
                                     const float *w, float *dweight, float *dbias, float *coef) {
    int ch;
    double sdy, dot;
    if (!final_sums(part, split, c, &ch, &sdy, &dot)) return;
    double is = invstd[ch], dm = (double)m;
    if (dweight) dweight[ch] = (float)(dot * is);
    if (dbias) dbias[ch] = (float)sdy;
    /* dx = (g - sdy/m - (x - mean) * dot * is^2 / m) * is * w, as cpu_bn.c rounds it */
    coef[3 * c + ch] = (float)(sdy / dm);
    coef[4 * c + ch] = (float)(dot * is * is / dm);
    coef[5 * c + ch] = (float)(is * w[ch]);
}

template <typename T, int V>
__global__ void __launch_bounds__(BN_THREADS, BN_MIN_BLOCKS) bn_dx_kernel(size_t m, int c, int act, const T *x, const T *dy,
                             const float *__restrict__ coef, T *dx) {
    int cv = c / V;
    RedGeom g = red_geom(cv);
    int lane = threadIdx.x % g.width, r0 = threadIdx.x / g.width, col = blockIdx.x * g.width + lane;
    if (r0 >= g.rows || col >= cv) return;
    float cf[6][V];
    for (int j = 0; j < 6; j++)
        for (int k = 0; k < V; k++) cf[j][k] = coef[j * c + col * V + k];
    /* dx may alias dy (header): each element is read before it is written, by the same
     * thread, so no __restrict__ on these */
    const Vec<T, V> *xv = (const Vec<T, V> *)x, *dv = (const Vec<T, V> *)dy;
    Vec<T, V> *ov = (Vec<T, V> *)dx;
    walk_rows<BN_UNROLL_BWD>(m, cv, col, (size_t)blockIdx.y * g.rows + r0, (size_t)gridDim.y * g.rows,
                             [&](size_t i0, size_t step, int u) {
        Vec<T, V> xx[BN_UNROLL_BWD], gg[BN_UNROLL_BWD];
#pragma unroll
        for (int j = 0; j < BN_UNROLL_BWD; j++)
            if (j < u) xx[j] = xv[i0 + j * step], gg[j] = dv[i0 + j * step];
#pragma unroll
        for (int j = 0; j < BN_UNROLL_BWD; j++) {
            if (j >= u) continue;
            Vec<T, V> o;
            for (int k = 0; k < V; k++) {
                float gr = grad_at(act, xx[j].v[k], gg[j].v[k], cf[0][k], cf[1][k], cf[2][k]);
                st(&o.v[k], (gr - cf[3][k] - (ld(&xx[j].v[k]) - cf[0][k]) * cf[4][k]) * cf[5][k]);
            }
            ov[i0 + j * step] = o;
        }
    });
}

/* Forward coefficients again, for the backward (the scratch was reused in between). */
__global__ void bn_back_coef_kernel(int c, CudaBn bn, const float *save_mean, const float *save_invstd,
                                    float *coef) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    coef[ch] = save_mean[ch];
    coef[c + ch] = (float)((double)save_invstd[ch] * bn.weight[ch]);
    coef[2 * c + ch] = bn.bias[ch];
}

/* Channels per thread: 4 when c and the buffers' alignment allow (16 bytes of float, 8 of
 * bfloat16), else 1. 8 bfloat16 (16 bytes) was slower on an H200 both ways: at 121-146
 * registers per thread (12-25% occupancy), and again on 2026-12-03 with the registers
 * capped at 128 (2 blocks per SM): batch norm 18.9 ms per efficientnet_b0 step against
 * 15.0 at 4 channels. */
static int vec_width(CudaDtype dt, int c, uintptr_t addr) {
    return c % 4 == 0 && addr % (dt == CUDA_F32 ? 16 : 8) == 0 ? 4 : 1;
}

/* Blocks along the rows: about 16 steps per thread (enough blocks to fill the GPU), at
 * most 512 (the scratch's bound). */
static int row_split(size_t m, int cv) {
    size_t rows = (size_t)red_geom(cv).rows, s = (m + rows * 16 - 1) / (rows * 16);
    return (int)(s < 1 ? 1 : s > 512 ? 512 : s);
}

static int check(const CudaBn *bn, int act, size_t m, int train, const char *fn, StkErr *err) {
    if (!bn->weight || !bn->bias || !bn->running_mean || !bn->running_var)
        return stk_errf(err, "%s: every tensor must be given (affine batch norm only)", fn);
    if (bn->c < 1 || m < (size_t)(train ? 2 : 1))
        return stk_errf(err, "%s: %zu values per channel over %d channels%s", fn, m, bn->c,
                        train ? " (training needs more than 1)" : "");
    if (act != CUDA_BN_NO_ACT && (act < 0 || act >= CPU_ACT_COUNT))
        return stk_errf(err, "%s: activation %d unknown", fn, act);
    return 0;
}

/* Grid of an elementwise pass: column chunks x row blocks, BN_UNROLL steps per thread
 * (one unrolled round: many blocks, each short). */
static dim3 pass_grid(size_t m, int cv) {
    RedGeom g = red_geom(cv);
    size_t rows = (size_t)g.rows, y = (m + rows * BN_UNROLL - 1) / (rows * BN_UNROLL);
    return dim3((unsigned)((cv + g.width - 1) / g.width), (unsigned)(y < 65535 ? (y ? y : 1) : 65535));
}

template <typename T, int V>
static void forward_train(const CudaBn *bn, int act, size_t m, const void *x, void *y,
                          float *save_mean, float *save_invstd, float *part, cudaStream_t s) {
    int c = bn->c, cv = c / V, split = row_split(m, cv);
    RedGeom g = red_geom(cv);
    float *coef = part + (size_t)2 * split * c;
    dim3 grid((unsigned)((cv + g.width - 1) / g.width), (unsigned)split);
    bn_stats_kernel<T, V><<<grid, red_geom(cv).threads, 0, s>>>(m, c, (const T *)x, part);
    bn_stats_final_kernel<T><<<final_blocks(c), FIN_CH * FIN_LANES, 0, s>>>(
        m, c, split, (const T *)x, part, *bn, save_mean, save_invstd, coef);
    bn_apply_kernel<T, V><<<pass_grid(m, cv), red_geom(cv).threads, 0, s>>>(m, c, act, (const T *)x, coef, (T *)y);
}

template <typename T, int V>
static void backward_train(const CudaBn *bn, int act, size_t m, const void *x, const void *dy,
                           const float *save_mean, const float *save_invstd, void *dx,
                           float *dweight, float *dbias, float *part, cudaStream_t s) {
    int c = bn->c, cv = c / V, split = row_split(m, cv);
    RedGeom g = red_geom(cv);
    float *coef = part + (size_t)2 * split * c;
    dim3 grid((unsigned)((cv + g.width - 1) / g.width), (unsigned)split);
    bn_back_coef_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(c, *bn, save_mean, save_invstd, coef);
    bn_grad_kernel<T, V><<<grid, red_geom(cv).threads, 0, s>>>(m, c, act, (const T *)x, (const T *)dy, coef, part);
    bn_grad_final_kernel<<<final_blocks(c), FIN_CH * FIN_LANES, 0, s>>>(m, c, split, part, save_invstd,
                                                                     bn->weight, dweight, dbias, coef);
    if (dx) /* NULL: nothing below needs it */
        bn_dx_kernel<T, V><<<pass_grid(m, cv), red_geom(cv).threads, 0, s>>>(m, c, act, (const T *)x, (const T *)dy,
                                                                    coef, (T *)dx);
}

/* Calls fn<T, V> for dt and the vector width c and the buffers (addr: their addresses
 * or'ed) allow. */
#define BN_DISPATCH(dt, c, addr, fn, ...)                                                  \
    do {                                                                                   \
        int v_ = vec_width((dt), (c), (addr));                                             \
        if ((dt) == CUDA_BF16) {                                                           \
            if (v_ == 4) fn<__nv_bfloat16, 4>(__VA_ARGS__);                                \
            else fn<__nv_bfloat16, 1>(__VA_ARGS__);                                        \
        } else if ((dt) == CUDA_F16) {                                                     \
            if (v_ == 4) fn<__half, 4>(__VA_ARGS__);                                       \
            else fn<__half, 1>(__VA_ARGS__);                                               \
        } else {                                                                           \
            if (v_ == 4) fn<float, 4>(__VA_ARGS__);                                        \
            else fn<float, 1>(__VA_ARGS__);                                                \
        }                                                                                  \
    } while (0)

#define ADDR(a, b) ((uintptr_t)(a) | (uintptr_t)(b))

extern "C" int cuda_bn_forward_train(const CudaBn *bn, int act, CudaDtype dt, size_t m,
                                     const void *x, void *y, float *save_mean,
                                     float *save_invstd, float *part, cudaStream_t s,
                                     StkErr *err) {
    if (check(bn, act, m, 1, "cuda_bn_forward_train", err)) return -1;
    BN_DISPATCH(dt, bn->c, ADDR(x, y), forward_train, bn, act, m, x, y, save_mean, save_invstd, part, s);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T, int V>
static void recompute(const CudaBn *bn, int act, size_t m, const void *x, void *y,
                      const float *save_mean, const float *save_invstd, float *coef, cudaStream_t s) {
    int c = bn->c;
    bn_back_coef_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(c, *bn, save_mean, save_invstd, coef);
    bn_apply_kernel<T, V><<<pass_grid(m, c / V), red_geom(c / V).threads, 0, s>>>(m, c, act, (const T *)x, coef, (T *)y);
}

extern "C" int cuda_bn_recompute(const CudaBn *bn, int act, CudaDtype dt, size_t m, const void *x,
                                 void *y, const float *save_mean, const float *save_invstd,
                                 float *part, cudaStream_t s, StkErr *err) {
    if (check(bn, act, m, 1, "cuda_bn_recompute", err)) return -1;
    BN_DISPATCH(dt, bn->c, ADDR(x, y), recompute, bn, act, m, x, y, save_mean, save_invstd, part, s);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T, int V>
static void forward_eval(const CudaBn *bn, int act, size_t m, const void *x, void *y, float *coef,
                         cudaStream_t s) {
    int c = bn->c;
    bn_eval_coef_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(c, *bn, coef);
    bn_apply_kernel<T, V><<<pass_grid(m, c / V), red_geom(c / V).threads, 0, s>>>(m, c, act, (const T *)x, coef, (T *)y);
}

extern "C" int cuda_bn_forward_eval(const CudaBn *bn, int act, CudaDtype dt, size_t m,
                                    const void *x, void *y, float *part, cudaStream_t s,
                                    StkErr *err) {
    if (check(bn, act, m, 0, "cuda_bn_forward_eval", err)) return -1;
    BN_DISPATCH(dt, bn->c, ADDR(x, y), forward_eval, bn, act, m, x, y, part, s);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_bn_backward_train(const CudaBn *bn, int act, CudaDtype dt, size_t m,
                                      const void *x, const void *dy, const float *save_mean,
                                      const float *save_invstd, void *dx, float *dweight,
                                      float *dbias, float *part, cudaStream_t s, StkErr *err) {
    if (check(bn, act, m, 1, "cuda_bn_backward_train", err)) return -1;
    BN_DISPATCH(dt, bn->c, ADDR(x, dy) | (uintptr_t)dx, backward_train, bn, act, m, x, dy, save_mean, save_invstd, dx, dweight,
                dbias, part, s);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

/* Eval backward's coefficients in bn_dx_kernel's terms: z from the running statistics,
 * dx = (g - 0 - (x - mean) * 0) * scale. */
__global__ void bn_eval_back_coef_kernel(int c, CudaBn bn, float *coef) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    float scale = (float)(1.0 / sqrt((double)bn.running_var[ch] + bn.eps) * bn.weight[ch]);
    coef[ch] = bn.running_mean[ch];
    coef[c + ch] = scale;
    coef[2 * c + ch] = bn.bias[ch];
    coef[3 * c + ch] = 0.0f;
    coef[4 * c + ch] = 0.0f;
    coef[5 * c + ch] = scale;
}

template <typename T, int V>
static void backward_eval(const CudaBn *bn, int act, size_t m, const void *x, const void *dy,
                          void *dx, float *coef, cudaStream_t s) {
    int c = bn->c;
    bn_eval_back_coef_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(c, *bn, coef);
    bn_dx_kernel<T, V><<<pass_grid(m, c / V), red_geom(c / V).threads, 0, s>>>(m, c, act, (const T *)x, (const T *)dy,
                                                                    coef, (T *)dx);
}

extern "C" int cuda_bn_backward_eval(const CudaBn *bn, int act, CudaDtype dt, size_t m,
                                     const void *x, const void *dy, void *dx, float *part,
                                     cudaStream_t s, StkErr *err) {
    if (check(bn, act, m, 0, "cuda_bn_backward_eval", err)) return -1;
    BN_DISPATCH(dt, bn->c, ADDR(x, dy) | (uintptr_t)dx, backward_eval, bn, act, m, x, dy, dx, part, s);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
