/* cuda_elem.cu: elementwise and per-channel kernels (see cuda_elem.h). Grid-stride loops
 * with 64-bit indices: a batch's activations may pass 2^31 elements. */
#include "cuda_check.h"
#include "cuda_elem.h"

#define ELEM_BLOCK 256
#define ELEM_MAX_BLOCKS 8192
/* colsum: a block is 32 channels x 8 row lanes; up to COLSUM_SPLIT_MAX blocks share the
 * rows, each taking about COLSUM_ROWS_PER_BLOCK (enough blocks to fill the GPU, short
 * enough float runs per thread). */
#define COLSUM_X 32
#define COLSUM_Y 8
#define COLSUM_SPLIT_MAX 512
#define COLSUM_ROWS_PER_BLOCK 2048

static unsigned grid_for(size_t n) {
    size_t b = (n + ELEM_BLOCK - 1) / ELEM_BLOCK;
    return (unsigned)(b < ELEM_MAX_BLOCKS ? (b ? b : 1) : ELEM_MAX_BLOCKS);
}

#define GRID_STRIDE(i, n)                                                               \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);            \
         i += (size_t)gridDim.x * blockDim.x)

__device__ static inline float act_f(int kind, float x) {
    switch (kind) {
    case CPU_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case CPU_ACT_RELU6: return fminf(fmaxf(x, 0.0f), 6.0f);
    case CPU_ACT_HARDSWISH: return x * fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case CPU_ACT_HARDSIGMOID: return fminf(fmaxf(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case CPU_ACT_SILU: return x / (1.0f + expf(-x));
    case CPU_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    }
    return 0.0f;
}

/* f'(x), as cpu_act.h states each one (ReLU's is 0 at 0; Hardswish's x/3 + 1/2 on
 * [-3, 3]). */
__device__ static inline float act_df(int kind, float x) {
    switch (kind) {
    case CPU_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case CPU_ACT_RELU6: return x > 0.0f && x < 6.0f ? 1.0f : 0.0f;
    case CPU_ACT_HARDSWISH: return x < -3.0f ? 0.0f : x > 3.0f ? 1.0f : x / 3.0f + 0.5f;
    case CPU_ACT_HARDSIGMOID: return x > -3.0f && x < 3.0f ? 1.0f / 6.0f : 0.0f;
    case CPU_ACT_SILU: {
        float sg = 1.0f / (1.0f + expf(-x));
        return sg * (1.0f + x * (1.0f - sg));
    }
    case CPU_ACT_SIGMOID: {
        float sg = 1.0f / (1.0f + expf(-x));
        return sg * (1.0f - sg);
    }
    }
    return 0.0f;
}

__global__ void act_fwd_kernel(int kind, size_t n, const float *x, float *y) {
    GRID_STRIDE(i, n) y[i] = act_f(kind, x[i]);
}

__global__ void act_bwd_kernel(int kind, size_t n, const float *x, const float *dy, float *dx) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * act_df(kind, x[i]);
}

__global__ void add_kernel(size_t n, const float *a, const float *b, float *y) {
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

__global__ void bias_add_kernel(size_t n, int c, const float *__restrict__ b, float *y) {
    GRID_STRIDE(i, n) y[i] += b[i % c];
}

__global__ void scale_kernel(size_t n, int hwc, int c, const float *x, const float *sc, float *y) {
    GRID_STRIDE(i, n) y[i] = x[i] * sc[(i / hwc) * c + i % c];
}

/* Partial column sums: block (bx, by) sums channels [32 bx, 32 bx + 32) over the rows
 * r = by * 8 + ty (mod 8 * gridDim.y), writes part[by * c + ch]. */
__global__ void colsum_part_kernel(size_t m, int c, const float *__restrict__ x, float *part) {
    __shared__ float acc[COLSUM_Y][COLSUM_X];
    int ch = blockIdx.x * COLSUM_X + threadIdx.x;
    float s = 0.0f;
    if (ch < c)
        for (size_t r = blockIdx.y * COLSUM_Y + threadIdx.y; r < m; r += (size_t)gridDim.y * COLSUM_Y)
            s += x[r * c + ch];
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

extern "C" size_t cuda_colsum_scratch(int c) { return ((size_t)COLSUM_SPLIT_MAX * 2 + 3) * (size_t)c; /* + batch norm's 3c coefficients */ }

extern "C" int cuda_colsum_split(size_t m) {
    size_t s = m / COLSUM_ROWS_PER_BLOCK;
    return (int)(s < 1 ? 1 : s > COLSUM_SPLIT_MAX ? COLSUM_SPLIT_MAX : s);
}

static int check_kind(CpuActKind kind, const char *fn, StkErr *err) {
    if ((int)kind < 0 || kind >= CPU_ACT_COUNT) return stk_errf(err, "%s: activation %d unknown", fn, (int)kind);
    return 0;
}

extern "C" int cuda_act_forward(CpuActKind kind, size_t n, const float *x, float *y,
                                cudaStream_t s, StkErr *err) {
    if (check_kind(kind, "cuda_act_forward", err)) return -1;
    if (!n) return 0;
    act_fwd_kernel<<<grid_for(n), ELEM_BLOCK, 0, s>>>((int)kind, n, x, y);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_act_backward(CpuActKind kind, size_t n, const float *x, const float *dy,
                                 float *dx, cudaStream_t s, StkErr *err) {
    if (check_kind(kind, "cuda_act_backward", err)) return -1;
    if (!n) return 0;
    act_bwd_kernel<<<grid_for(n), ELEM_BLOCK, 0, s>>>((int)kind, n, x, dy, dx);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_add(size_t n, const float *a, const float *b, float *y, cudaStream_t s,
                        StkErr *err) {
    if (!n) return 0;
    add_kernel<<<grid_for(n), ELEM_BLOCK, 0, s>>>(n, a, b, y);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_bias_add(size_t m, int c, const float *b, float *y, cudaStream_t s,
                             StkErr *err) {
    if (c < 1) return stk_errf(err, "cuda_bias_add: %d channels", c);
    size_t n = m * (size_t)c;
    if (!n) return 0;
    bias_add_kernel<<<grid_for(n), ELEM_BLOCK, 0, s>>>(n, c, b, y);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_scale_forward(int n, int hw, int c, const float *x, const float *sc,
                                  float *y, cudaStream_t s, StkErr *err) {
    if (n < 1 || hw < 1 || c < 1) return stk_errf(err, "cuda_scale_forward: shape %dx%dx%d", n, hw, c);
    size_t total = (size_t)n * hw * c;
    scale_kernel<<<grid_for(total), ELEM_BLOCK, 0, s>>>(total, hw * c, c, x, sc, y);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_colsum(size_t m, int c, const float *x, float *out, float *part,
                           cudaStream_t s, StkErr *err) {
    if (c < 1 || m < 1) return stk_errf(err, "cuda_colsum: %zu x %d", m, c);
    int split = cuda_colsum_split(m);
    dim3 block(COLSUM_X, COLSUM_Y), grid((unsigned)((c + COLSUM_X - 1) / COLSUM_X), (unsigned)split);
    colsum_part_kernel<<<grid, block, 0, s>>>(m, c, x, part);
    CUDA_TRY(err, cudaGetLastError());
    colsum_final_kernel<<<(unsigned)((c + 127) / 128), 128, 0, s>>>(c, split, part, out);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
