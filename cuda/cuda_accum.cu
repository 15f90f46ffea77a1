/* cuda_accum.cu: the accumulation fold (see cuda_accum.h). */
#include "cuda_accum.h"
#include "cuda_check.h"
#include "cuda_launch.cuh"

#define ACC_BLOCK 256
#define ACC_MAX_BLOCKS 4096

__global__ void accum_kernel(size_t n, float *g, float *sum, float w, int first, int last) {
    GRID_STRIDE(i, n) {
        float t = __fmul_rn(w, g[i]); /* as train_accum.c: the product, then the add */
        float v = first ? t : __fadd_rn(sum[i], t);
        if (last) g[i] = v;
        else sum[i] = v;
    }
}

extern "C" int cuda_accum_fold(size_t n, float *grads, float *sum, float w, int first, int last,
                               cudaStream_t s, StkErr *err) {
    if (!grads || (!sum && !(first && last)))
        return stk_errf(err, "cuda_accum_fold: no gradient or sum buffer");
    if (!n) return 0;
    accum_kernel<<<cuda_grid_for(n, ACC_BLOCK, ACC_MAX_BLOCKS), ACC_BLOCK, 0, s>>>(n, grads, sum, w, first, last);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
