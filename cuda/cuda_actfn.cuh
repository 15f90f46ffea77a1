/* cuda_actfn.cuh: the activation functions and their derivatives as device functions,
 * shared by the elementwise kernels and the batch-norm kernels that fuse them. */
#ifndef CUDA_ACTFN_CUH
#define CUDA_ACTFN_CUH

#include "cpu_act.h" /* CpuActKind */

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

#endif
