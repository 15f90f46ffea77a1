/* cuda_launch.cuh: the launch arithmetic the grid-stride kernels share: how many blocks of
 * `block` threads cover n items (at least 1, at most max_blocks: the loop strides over the
 * rest), and the 64-bit grid-stride loop itself. */
#ifndef CUDA_LAUNCH_CUH
#define CUDA_LAUNCH_CUH

#include <stddef.h>

static inline unsigned cuda_grid_for(size_t n, unsigned block, unsigned max_blocks) {
    size_t b = (n + block - 1) / block;
    return (unsigned)(b < max_blocks ? (b ? b : 1) : max_blocks);
}

#define GRID_STRIDE(i, n)                                                               \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);            \
         i += (size_t)gridDim.x * blockDim.x)

#endif
