/* cpu_linear.h: the fully connected layer with PyTorch's conventions (nn.Linear after
 * torch.flatten(x, 1)): y = x W^T + b with W stored [out, in] row-major, forward and
 * backward, through OpenBLAS's cblas_sgemm.
 *
 * Nothing is allocated; buffers are caller-owned (cpu_tensor.h) and must not alias.
 * Backward functions overwrite dx, dw and db (no accumulation). */
#ifndef CPU_LINEAR_H
#define CPU_LINEAR_H

#include "cpu_tensor.h"

/* A linear layer's size. */
typedef struct CpuLinear {
    int in;  /* input features: x's c * h * w (flattened per sample) */
    int out; /* output features: W is [out, in], b is [out], y is {n, out, 1, 1} */
} CpuLinear;

/* y[n, out] = x[n, in] W^T + b; b may be NULL (bias=False). Fails if a dimension of xs
 * is not positive or xs.c * xs.h * xs.w != l->in. */
int cpu_linear_forward(const CpuLinear *l, Shape4 xs, const float *x, const float *w,
                       const float *b, float *y, StkErr *err);

/* From the forward's x and W and dy[n, out]: dx = dy W ([n, in], laid out as x),
 * dw = dy^T x ([out, in]), db = column sums of dy ([out], in double, in order). Any of
 * dx, dw, db may be NULL to skip it. Fails as the forward. */
int cpu_linear_backward(const CpuLinear *l, Shape4 xs, const float *x, const float *w,
                        const float *dy, float *dx, float *dw, float *db, StkErr *err);

#endif
