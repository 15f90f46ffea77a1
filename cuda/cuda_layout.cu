/* cuda_layout.cu: NHWC <-> NCHW copies (see cuda_layout.h). */
#include "cuda_check.h"
#include "cuda_layout.h"

#define TILE 32
#define ROWS 8 /* threads per tile column: each moves TILE / ROWS elements */

/* One image's rows x cols matrix (src, row-major) into its transpose (dst); grid x over
 * cols, y over rows, z over images. The tile has a padding column against bank conflicts. */
__global__ void transpose_kernel(int rows, int cols, const float *src, float *dst, int accumulate) {
    __shared__ float tile[TILE][TILE + 1];
    size_t img = (size_t)blockIdx.z * rows * cols;
    int c = blockIdx.x * TILE + threadIdx.x;
    for (int j = threadIdx.y; j < TILE; j += ROWS) {
        int r = blockIdx.y * TILE + j;
        if (r < rows && c < cols) tile[j][threadIdx.x] = src[img + (size_t)r * cols + c];
    }
    __syncthreads();
    int r = blockIdx.y * TILE + threadIdx.x; /* now the destination's column */
    for (int j = threadIdx.y; j < TILE; j += ROWS) {
        int cc = blockIdx.x * TILE + j; /* the destination's row */
        if (cc < cols && r < rows) {
            size_t o = img + (size_t)cc * rows + r;
            float v = tile[threadIdx.x][j];
            dst[o] = accumulate ? dst[o] + v : v;
        }
    }
}

static int transpose(int n, int rows, int cols, const float *src, float *dst, int accumulate,
                     cudaStream_t s, const char *fn, StkErr *err) {
    if (n < 1 || rows < 1 || cols < 1 || n > 65535)
        return stk_errf(err, "%s: %d images of %dx%d: each must be positive, images at most 65535",
                        fn, n, rows, cols);
    dim3 grid((unsigned)((cols + TILE - 1) / TILE), (unsigned)((rows + TILE - 1) / TILE), (unsigned)n);
    transpose_kernel<<<grid, dim3(TILE, ROWS), 0, s>>>(rows, cols, src, dst, accumulate);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_nhwc_to_nchw(int n, int c, int hw, const float *x, float *y, cudaStream_t s,
                                 StkErr *err) {
    return transpose(n, hw, c, x, y, 0, s, "cuda_nhwc_to_nchw", err);
}

extern "C" int cuda_nchw_to_nhwc(int n, int c, int hw, const float *x, float *y, int accumulate,
                                 cudaStream_t s, StkErr *err) {
    return transpose(n, c, hw, x, y, accumulate, s, "cuda_nchw_to_nhwc", err);
}
