/* cuda_optim.cu: SGD and AdamW kernels (see cuda_optim.h). The scalars are computed on
 * the host exactly as trainer/optim.c computes them, so both backends round alike. */
#include <math.h>

#include "cuda_check.h"
#include "cuda_launch.cuh"
#include "cuda_optim.h"

#define OPT_BLOCK 256
#define OPT_MAX_BLOCKS 4096

static unsigned grid_for(size_t n) { return cuda_grid_for(n, OPT_BLOCK, OPT_MAX_BLOCKS); }

__global__ void sgd_kernel(size_t n, float *p, const float *g, float *buf, float lr, float wd,
                           float mom, float damp, int nesterov, int first) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float d = g[i];
        if (wd != 0.0f) d = __fadd_rn(d, __fmul_rn(wd, p[i]));
        if (mom != 0.0f) {
            float b = first ? d : __fadd_rn(__fmul_rn(mom, buf[i]), __fmul_rn(damp, d));
            buf[i] = b;
            d = nesterov ? __fadd_rn(d, __fmul_rn(mom, b)) : b;
        }
        p[i] = __fsub_rn(p[i], __fmul_rn(lr, d));
    }
}

__global__ void adamw_kernel(size_t n, float *p, const float *g, float *m, float *v, float b1,
                             float b2, float eps, float step_size, float bc2_sqrt, float decay) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i];
        float pi = __fmul_rn(p[i], decay);
        float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(1.0f - b1, gi));
        float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(1.0f - b2, gi), gi));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        p[i] = __fsub_rn(pi, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" int cuda_sgd_step(const OptimConfig *c, float *p, const float *g, float *buf, size_t n,
                             double lr, double wd, int first_step, cudaStream_t s, StkErr *err) {
    if (c->momentum != 0 && !buf) return stk_errf(err, "cuda_sgd_step: momentum without a buffer");
    if (!n) return 0;
    sgd_kernel<<<grid_for(n), OPT_BLOCK, 0, s>>>(n, p, g, buf, (float)lr, (float)wd,
                                                 (float)c->momentum, (float)(1 - c->dampening),
                                                 c->nesterov, first_step);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

extern "C" int cuda_adamw_step(const OptimConfig *c, float *p, const float *g, float *state,
                               size_t n, double lr, double wd, uint64_t step, cudaStream_t s,
                               StkErr *err) {
    if (step < 1) return stk_errf(err, "cuda_adamw_step: step %llu (counts from 1)", (unsigned long long)step);
    if (!n) return 0;
    const double bc1 = 1 - pow(c->beta1, (double)step), bc2 = 1 - pow(c->beta2, (double)step);
    adamw_kernel<<<grid_for(n), OPT_BLOCK, 0, s>>>(n, p, g, state, state + n, (float)c->beta1,
                                                   (float)c->beta2, (float)c->eps, (float)(lr / bc1),
                                                   (float)sqrt(bc2), (float)(1 - lr * wd));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
