/* cuda_optim.cu: the multi-tensor SGD and AdamW kernel (see cuda_optim.h). The scalars
 * are computed on the host exactly as trainer/optim.c computes them, so both backends
 * round alike. A block takes a chunk (a stretch of one segment) at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "cuda_dtype.h"
#include "cuda_optim.h"

#define OPT_BLOCK 256
#define OPT_CHUNK 8192 /* elements: short enough to spread a small model over the GPU */
#define OPT_MAX_BLOCKS 2048

typedef struct Chunk { uint32_t seg; uint32_t len; uint64_t begin; } Chunk;

/* The step's scalars, as optim.c derives them. */
typedef struct OptArgs {
    int adamw, nesterov, first;
    float lr, wd, norm_wd, mom, damp;           /* SGD */
    float b1, b2, eps, step_size, bc2_sqrt;     /* AdamW */
    float decay, norm_decay;                    /* AdamW: 1 - lr * wd */
} OptArgs;

__device__ static inline void sgd_one(const OptArgs &a, float wd, float *p, float g, float *buf) {
    float d = g;
    if (wd != 0.0f) d = __fadd_rn(d, __fmul_rn(wd, *p));
    if (a.mom != 0.0f) {
        float b = a.first ? d : __fadd_rn(__fmul_rn(a.mom, *buf), __fmul_rn(a.damp, d));
        *buf = b;
        d = a.nesterov ? __fadd_rn(d, __fmul_rn(a.mom, b)) : b;
    }
    *p = __fsub_rn(*p, __fmul_rn(a.lr, d));
}

__device__ static inline void adamw_one(const OptArgs &a, float decay, float *p, float g, float *m,
                                        float *v) {
    float pi = __fmul_rn(*p, decay);
    float mi = __fadd_rn(__fmul_rn(a.b1, *m), __fmul_rn(1.0f - a.b1, g));
    float vi = __fadd_rn(__fmul_rn(a.b2, *v), __fmul_rn(__fmul_rn(1.0f - a.b2, g), g));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.bc2_sqrt), a.eps);
    *p = __fsub_rn(pi, __fmul_rn(a.step_size, __fdiv_rn(mi, denom)));
    *m = mi;
    *v = vi;
}

template <typename L>
__global__ void optim_kernel(int nchunk, const CudaOptimSeg *__restrict__ segs, const Chunk *__restrict__ chunks,
                             OptArgs a, float *params, const float *grads, float *state,
                             L *lowp, const CudaScalerState *dyn) {
    if (dyn) { /* the loss scaler decided this step on the device */
        if (dyn->skip) return;
        a.step_size = dyn->step_size, a.bc2_sqrt = dyn->bc2_sqrt, a.first = dyn->first;
    }
    for (int ci = blockIdx.x; ci < nchunk; ci += gridDim.x) {
        Chunk ch = chunks[ci];
        CudaOptimSeg sg = segs[ch.seg];
        for (uint32_t j = threadIdx.x; j < ch.len; j += blockDim.x) {
            uint64_t i = ch.begin + j, at = sg.offset + i;
            float *p = params + at, g = grads[at];
            if (a.adamw) {
                float *m = state + 2 * sg.offset + i;
                adamw_one(a, sg.norm ? a.norm_decay : a.decay, p, g, m, m + sg.n);
            } else {
                sgd_one(a, sg.norm ? a.norm_wd : a.wd, p, g, state ? state + at : NULL);
            }
            if (sg.lowp >= 0) st(lowp + sg.lowp + i, *p);
        }
    }
}

extern "C" int cuda_optim_table_init(CudaOptimTable *t, const CudaOptimSeg *segs, int nseg, StkErr *err) {
    t->nseg = nseg, t->nchunk = 0, t->dev = NULL;
    for (int i = 0; i < nseg; i++) t->nchunk += (int)((segs[i].n + OPT_CHUNK - 1) / OPT_CHUNK);
    size_t sb = sizeof(CudaOptimSeg) * (size_t)nseg, bytes = sb + sizeof(Chunk) * (size_t)t->nchunk;
    char *host = (char *)malloc(bytes ? bytes : 1);
    if (!host) return stk_errf(err, "cuda_optim_table_init: out of host memory");
    memcpy(host, segs, sb);
    Chunk *ch = (Chunk *)(host + sb);
    for (int i = 0, k = 0; i < nseg; i++)
        for (uint64_t b = 0; b < segs[i].n; b += OPT_CHUNK)
            ch[k++] = Chunk{(uint32_t)i, (uint32_t)(segs[i].n - b < OPT_CHUNK ? segs[i].n - b : OPT_CHUNK), b};
    cudaError_t st = cudaMalloc(&t->dev, bytes ? bytes : 1);
    if (st == cudaSuccess) st = cudaMemcpy(t->dev, host, bytes, cudaMemcpyHostToDevice);
    free(host);
    if (st != cudaSuccess) return stk_errf(err, "cuda_optim_table_init: %s", cudaGetErrorString(st));
    return 0;
}

extern "C" void cuda_optim_table_free(CudaOptimTable *t) {
    if (t->dev) cudaFree(t->dev);
    t->dev = NULL, t->nseg = t->nchunk = 0;
}

extern "C" int cuda_optim_step(const CudaOptimTable *t, const OptimConfig *c, float *params,
                               const float *grads, float *state, void *lowp, CudaDtype lowp_dt,
                               const CudaScalerState *dyn, double lr, double wd, double norm_wd,
                               uint64_t step, int first_step, cudaStream_t s, StkErr *err) {
    OptArgs a = {};
    a.adamw = c->kind == OPTIM_ADAMW;
    if (a.adamw) {
        if (step < 1) return stk_errf(err, "cuda_optim_step: step %llu (counts from 1)", (unsigned long long)step);
        const double bc1 = 1 - pow(c->beta1, (double)step), bc2 = 1 - pow(c->beta2, (double)step);
        a.b1 = (float)c->beta1, a.b2 = (float)c->beta2, a.eps = (float)c->eps;
        a.step_size = (float)(lr / bc1), a.bc2_sqrt = (float)sqrt(bc2);
        a.decay = (float)(1 - lr * wd), a.norm_decay = (float)(1 - lr * norm_wd);
        if (!state) return stk_errf(err, "cuda_optim_step: AdamW without its state");
    } else {
        a.lr = (float)lr, a.wd = (float)wd, a.norm_wd = (float)norm_wd, a.mom = (float)c->momentum;
        a.damp = (float)(1 - c->dampening), a.nesterov = c->nesterov, a.first = first_step;
        if (c->momentum != 0 && !state) return stk_errf(err, "cuda_optim_step: momentum without a buffer");
        if (c->momentum == 0) state = NULL;
    }
    if (!t->nchunk) return 0;
    const CudaOptimSeg *segs = (const CudaOptimSeg *)t->dev;
    const Chunk *chunks = (const Chunk *)((const char *)t->dev + sizeof(CudaOptimSeg) * (size_t)t->nseg);
    int blocks = t->nchunk < OPT_MAX_BLOCKS ? t->nchunk : OPT_MAX_BLOCKS;
    if (lowp_dt == CUDA_F16)
        optim_kernel<<<blocks, OPT_BLOCK, 0, s>>>(t->nchunk, segs, chunks, a, params, grads, state,
                                                  (__half *)lowp, dyn);
    else
        optim_kernel<<<blocks, OPT_BLOCK, 0, s>>>(t->nchunk, segs, chunks, a, params, grads, state,
                                                  (__nv_bfloat16 *)lowp, dyn);
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
