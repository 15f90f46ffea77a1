/* cpu_act.h: the CPU backend's elementwise layers, forward and backward, with PyTorch
 * 1.13's semantics: activations (ReLU, ReLU6, Hardswish, Hardsigmoid, SiLU, Sigmoid), the
 * residual add, squeeze-and-excitation's per-channel scale, dropout and stochastic depth.
 *
 * Buffers are caller-owned float32 (cpu_tensor.h). Unless a function says otherwise its
 * output may alias its input (in-place), backward functions overwrite (never accumulate
 * into) their outputs, and nothing is allocated. Randomness (dropout, stochastic depth)
 * is a pure function of a caller-provided key (stk_rng.h), so the backward pass re-derives
 * the forward's mask from the same key instead of storing it. */
#ifndef CPU_ACT_H
#define CPU_ACT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_tensor.h"

/* Activation functions; the values are the fixture file's codes (test_cpu_layers.c). */
typedef enum CpuActKind {
    CPU_ACT_RELU = 0,        /* max(x, 0); grad 1 for x > 0, else 0 (so 0 at x = 0) */
    CPU_ACT_RELU6 = 1,       /* min(max(x, 0), 6); grad 1 for 0 < x < 6, else 0 */
    CPU_ACT_HARDSWISH = 2,   /* x * relu6(x + 3) / 6; grad 0 for x < -3, 1 for x > 3,
                              * x / 3 + 1/2 for -3 <= x <= 3 (-1/2 at -3, 3/2 at 3: the
                              * formula of PyTorch's scalar CPU and CUDA kernels; its
                              * vectorised CPU kernel gives 1 at exactly 3) */
    CPU_ACT_HARDSIGMOID = 3, /* relu6(x + 3) / 6; grad 1/6 for -3 < x < 3, else 0 */
    CPU_ACT_SILU = 4,        /* x * sigmoid(x) */
    CPU_ACT_SIGMOID = 5,     /* 1 / (1 + exp(-x)) (squeeze-and-excitation's gate) */
    CPU_ACT_COUNT
} CpuActKind;

/* Returns the activation's PyTorch name ("relu", "hardswish"...) or "?" if unknown. */
const char *cpu_act_name(CpuActKind kind);

/* y[i] = f(x[i]) for n elements. Fails only on an unknown kind. */
int cpu_act_forward(CpuActKind kind, size_t n, const float *x, float *y, StkErr *err);

/* dx[i] = dy[i] * f'(x[i]) from the forward's saved input x. For ReLU and ReLU6 the
 * forward's output y may be passed as x (same mask), so those may run in place. dx may
 * alias dy. Fails only on an unknown kind. */
int cpu_act_backward(CpuActKind kind, size_t n, const float *x, const float *dy, float *dx,
                     StkErr *err);

/* Residual add: y = a + b over n elements (y may alias a or b; with y = a it is also the
 * gradient sum where a tensor fans out to two consumers). */
void cpu_add_forward(size_t n, const float *a, const float *b, float *y);

/* Residual add backward: da = dy and db = dy (either may be NULL to skip, or alias dy). */
void cpu_add_backward(size_t n, const float *dy, float *da, float *db);

/* Squeeze-and-excitation: y[n,c,h,w] = x[n,c,h,w] * s[n,c] for x of shape xs and s of
 * s.n * s.c floats. Fails if a dimension is not positive. */
int cpu_scale_forward(Shape4 xs, const float *x, const float *s, float *y, StkErr *err);

/* Backward of cpu_scale_forward: dx = dy * s[n,c] (dx may alias dy; NULL skips it) and
 * ds[n,c] = sum over h, w of dy * x (summed in double, in order). */
int cpu_scale_backward(Shape4 xs, const float *x, const float *s, const float *dy, float *dx,
                       float *ds, StkErr *err);

/* Dropout (torch.nn.Dropout) on n elements. Training (train != 0, p > 0): element i is
 * kept iff stk_rng_unit(stk_rng_at(key, i)) < 1 - p, and kept ones are multiplied by
 * (float)(1 / (1 - p)) as PyTorch does; p = 1 zeroes everything. Eval or p = 0: y = x.
 * Fails if p is outside [0, 1]. */
int cpu_dropout_forward(size_t n, double p, int train, uint64_t key, const float *x, float *y,
                        StkErr *err);

/* Backward of cpu_dropout_forward with the same n, p, train and key: dx = dy * mask. */
int cpu_dropout_backward(size_t n, double p, int train, uint64_t key, const float *dy,
                         float *dx, StkErr *err);

/* Stochastic depth (torchvision.ops.stochastic_depth, mode "row") on x of shape xs:
 * training with p > 0 keeps sample n iff stk_rng_unit(stk_rng_at(key, n)) < 1 - p and
 * multiplies kept samples by (float)(1 / (1 - p)); eval or p = 0: y = x. Fails if p is
 * outside [0, 1] or a dimension is not positive. */
int cpu_drop_path_forward(Shape4 xs, double p, int train, uint64_t key, const float *x,
                          float *y, StkErr *err);

/* Backward of cpu_drop_path_forward with the same shape, p, train and key. */
int cpu_drop_path_backward(Shape4 xs, double p, int train, uint64_t key, const float *dy,
                           float *dx, StkErr *err);

#endif
