/* cuda_elem.cu: elementwise and per-channel kernels (see cuda_elem.h). Grid-stride loops
 * with 64-bit indices: a batch's activations may pass 2^31 elements. */
#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_actfn.cuh"
#include "cuda_elem.h"
#include "stk_rng.h"

#define ELEM_BLOCK 256
#define ELEM_MAX_BLOCKS 8192
/* colsum: a block is 32 channels x 8 row lanes; up to COLSUM_SPLIT_MAX blocks share the
 * rows, each taking about COLSUM_ROWS_PER_BLOCK (enough blocks to fill the GPU, short
 * enough float runs per thread). */
#define COLSUM_X 32
#define COLSUM_Y 8
#define COLSUM_SPLIT_MAX 512
#define COLSUM_ROWS_PER_BLOCK 2048

static unsigned grid_for(size_t n) { return cuda_grid_for(n, ELEM_BLOCK, ELEM_MAX_BLOCKS); }


/* Elementwise kernels move 16 bytes per thread (8 bfloat16 or 4 floats) over the
 * buffers' aligned bulk (the net aligns every node to 16 elements), with 32-bit indices
 * when the count fits, and finish a tail of fewer than V elements one by one. */
template <typename T, int V> struct alignas(16) Vec { T v[V]; };

template <typename T> struct VecWidth { static const int value = 16 / sizeof(T); };

/* out[i] = op(a[i], b[i]) for i < n (b may be NULL for unary ops). */
template <typename T, typename I, typename Op>
__global__ void map2_kernel(I n, const T *a, const T *b, T *out, Op op) {
    const int V = VecWidth<T>::value;
    I nv = n / V, stride = (I)gridDim.x * blockDim.x;
    const Vec<T, V> *av = (const Vec<T, V> *)a, *bv = (const Vec<T, V> *)b;
    Vec<T, V> *ov = (Vec<T, V> *)out;
    for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < nv; i += stride) {
        Vec<T, V> x = av[i], y, o;
        if (b) y = bv[i];
        for (int k = 0; k < V; k++) st(&o.v[k], op(ld(&x.v[k]), b ? ld(&y.v[k]) : 0.0f));
        ov[i] = o;
    }
    for (I i = nv * V + blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += stride)
        st(out + i, op(ld(a + i), b ? ld(b + i) : 0.0f));
}

struct ActFwd {
    int kind;
    __device__ float operator()(float x, float) const { return act_f(kind, x); }
};
struct ActBwd { /* a = x, b = dy */
    int kind;
    __device__ float operator()(float x, float dy) const { return dy * act_df(kind, x); }
};
struct AddOp {
    __device__ float operator()(float x, float y) const { return x + y; }
};
struct AddReluOp { /* the same bits as the add then a ReLU: rounding keeps the sign */
    __device__ float operator()(float x, float y) const { return fmaxf(x + y, 0.0f); }
};

static int all_aligned(const void *a, const void *b, const void *c) {
    return !(((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15);
}

/* Launches map2_kernel for dt (vectorised when the pointers are 16-byte aligned). */
template <typename Op>
static int map2(CudaDtype dt, size_t n, const void *a, const void *b, void *out, Op op, cudaStream_t s,
                StkErr *err) {
    if (!n) return 0;
    if (!all_aligned(a, b, out)) return stk_errf(err, "cuda_elem: buffers not 16-byte aligned");
    unsigned g = grid_for((n + 7) / 8);
    if (n < (1u << 31))
        CUDA_DISPATCH(dt, T, map2_kernel<T, unsigned, Op><<<g, ELEM_BLOCK, 0, s>>>(
                                 (unsigned)n, (const T *)a, (const T *)b, (T *)out, op));
    else
        CUDA_DISPATCH(dt, T, map2_kernel<T, size_t, Op><<<g, ELEM_BLOCK, 0, s>>>(
                                 n, (const T *)a, (const T *)b, (T *)out, op));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T>
__global__ void bias_add_kernel(size_t n, int c, const float *__restrict__ b, T *y) {
    GRID_STRIDE(i, n) st(y + i, ld(y + i) + b[i % c]);
}

template <typename A, typename B> __global__ void cast_kernel(size_t n, const A *src, B *dst) {
    GRID_STRIDE(i, n) st(dst + i, ld(src + i));
}

template <typename T>
__global__ void mask_kernel(size_t n, size_t run, double keep_p, float scale, const uint64_t *dkey,
                            uint64_t coord, const T *x, T *y) {
    uint64_t key = stk_rng_key(*dkey, coord);
    GRID_STRIDE(i, n) {
        int keep = stk_rng_unit(stk_rng_at(key, i / run)) < keep_p; /* cpu_act.c's test */
        st(y + i, keep ? ld(x + i) * scale : 0.0f);
    }
}

/* Partial column sums: block (bx, by) sums channels [32 bx, 32 bx + 32) over the rows
 * r = by * 8 + ty (mod 8 * gridDim.y), writes part[by * c + ch]. */
template <typename T>
__global__ void colsum_part_kernel(size_t m, int c, const T *__restrict__ x, float *part) {
    __shared__ float acc[COLSUM_Y][COLSUM_X];
    int ch = blockIdx.x * COLSUM_X + threadIdx.x;
    float s = 0.0f;
    if (ch < c)
        for (size_t r = blockIdx.y * COLSUM_Y + threadIdx.y; r < m; r += (size_t)gridDim.y * COLSUM_Y)
            s += ld(x + r * c + ch);
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        for (int t = 1; t < COLSUM_Y; t++) s += acc[t][threadIdx.x];
        part[(size_t)blockIdx.y * c + ch] = s;
    }
}

__global__ void colsum_final_kernel(int c, int split, const float *part, float *out) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s = 0;
    for (int p = 0; p < split; p++) s += part[(size_t)p * c + ch];
    out[ch] = (float)s;
}

extern "C" size_t cuda_colsum_scratch(int c) {
    return ((size_t)COLSUM_SPLIT_MAX * 2 + 6) * (size_t)c; /* + batch norm's 6c coefficients */
}

extern "C" int cuda_colsum_split(size_t m) {
    size_t s = m / COLSUM_ROWS_PER_BLOCK;
    return (int)(s < 1 ? 1 : s > COLSUM_SPLIT_MAX ? COLSUM_SPLIT_MAX : s);
}

static int check_kind(CpuActKind kind, CudaDtype dt, const char *fn, StkErr *err) {
    if ((int)kind < 0 || kind >= CPU_ACT_COUNT) return stk_errf(err, "%s: activation %d unknown", fn, (int)kind);
    if (dt != CUDA_F32 && dt != CUDA_BF16 && dt != CUDA_F16) return stk_errf(err, "%s: dtype %d unknown", fn, (int)dt);
    return 0;
}

extern "C" int cuda_act_forward(CpuActKind kind, CudaDtype dt, size_t n, const void *x, void *y,
                                cudaStream_t s, StkErr *err) {
    if (check_kind(kind, dt, "cuda_act_forward", err)) return -1;
    return map2(dt, n, x, NULL, y, ActFwd{(int)kind}, s, err);
}

extern "C" int cuda_act_backward(CpuActKind kind, CudaDtype dt, size_t n, const void *x,
                                 const void *dy, void *dx, cudaStream_t s, StkErr *err) {
    if (check_kind(kind, dt, "cuda_act_backward", err)) return -1;
    return map2(dt, n, x, dy, dx, ActBwd{(int)kind}, s, err);
}

extern "C" int cuda_add(CudaDtype dt, size_t n, const void *a, const void *b, void *y,
                        cudaStream_t s, StkErr *err) {
    return map2(dt, n, a, b, y, AddOp{}, s, err);
}

extern "C" int cuda_add_relu(CudaDtype dt, size_t n, const void *a, const void *b, void *y,
                             cudaStream_t s, StkErr *err) {
    return map2(dt, n, a, b, y, AddReluOp{}, s, err);
}

extern "C" int cuda_bias_add(CudaDtype dt, size_t m, int c, const float *b, void *y,
                             cudaStream_t s, StkErr *err) {
    if (c < 1) return stk_errf(err, "cuda_bias_add: %d channels", c);
    size_t n = m * (size_t)c;
    if (!n) return 0;
    CUDA_DISPATCH(dt, T, bias_add_kernel<T><<<grid_for(n), ELEM_BLOCK, 0, s>>>(n, c, b, (T *)y));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_cast(CudaDtype from, CudaDtype to, size_t n, const void *src, void *dst,
                         cudaStream_t s, StkErr *err) {
    if (!n) return 0;
    if (from == to) {
        CUDA_TRY(err, cudaMemcpyAsync(dst, src, n * cuda_dtype_size(from), cudaMemcpyDeviceToDevice, s));
        return 0;
    }
    if (from != CUDA_F32 && to != CUDA_F32)
        return stk_errf(err, "cuda_cast: %d to %d (one side must be float32)", (int)from, (int)to);
    if (from == CUDA_F32)
        CUDA_DISPATCH(to, T, cast_kernel<<<grid_for(n), ELEM_BLOCK, 0, s>>>(n, (const float *)src, (T *)dst));
    else
        CUDA_DISPATCH(from, T, cast_kernel<<<grid_for(n), ELEM_BLOCK, 0, s>>>(n, (const T *)src, (float *)dst));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_colsum(CudaDtype dt, size_t m, int c, const void *x, float *out, float *part,
                           cudaStream_t s, StkErr *err) {
    if (c < 1 || m < 1) return stk_errf(err, "cuda_colsum: %zu x %d", m, c);
    int split = cuda_colsum_split(m);
    dim3 block(COLSUM_X, COLSUM_Y), grid((unsigned)((c + COLSUM_X - 1) / COLSUM_X), (unsigned)split);
    CUDA_DISPATCH(dt, T, colsum_part_kernel<T><<<grid, block, 0, s>>>(m, c, (const T *)x, part));
    CUDA_TRY(err, cudaGetLastError());
    colsum_final_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(c, split, part, out);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

__global__ void set_u64_kernel(uint64_t *p, uint64_t v) { *p = v; }

extern "C" int cuda_set_u64(uint64_t *p, uint64_t v, cudaStream_t s, StkErr *err) {
    set_u64_kernel<<<1, 1, 0, s>>>(p, v);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_dropout_mask(CudaDtype dt, size_t n, size_t run, double p, const uint64_t *dkey,
                                 uint64_t coord, const void *x, void *y, cudaStream_t s, StkErr *err) {
    if (!(p >= 0 && p <= 1)) return stk_errf(err, "cuda_dropout_mask: p = %g outside [0, 1]", p);
    if (run < 1 || n % run) return stk_errf(err, "cuda_dropout_mask: %zu elements in runs of %zu", n, run);
    if (!n) return 0;
    float scale = p < 1.0 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    CUDA_DISPATCH(dt, T, mask_kernel<T><<<grid_for(n), ELEM_BLOCK, 0, s>>>(
                             n, run, 1.0 - p, scale, dkey, coord, (const T *)x, (T *)y));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
