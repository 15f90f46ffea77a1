/* cuda_linear.h: nn.Linear on cuBLAS: y[n, out] = x[n, in] W[out, in]^T + b, and its
 * backward, row-major float32 device buffers (the layouts of trainer/cpu_linear.h, so
 * weights need no conversion). Returns 0 or -1 + err. */
#ifndef CUDA_LINEAR_H
#define CUDA_LINEAR_H

#include <cublas_v2.h>

#include "stk_err.h"

/* y = x W^T (+ b when b is not NULL, by the per-channel add of cuda_elem.h). */
int cuda_linear_forward(cublasHandle_t h, cudaStream_t s, int n, int in, int out,
                        const float *x, const float *w, const float *b, float *y, StkErr *err);

/* dx = dy W (NULL skips), dw = dy^T x, db = column sums of dy (NULL skips; part is
 * cuda_colsum scratch). */
int cuda_linear_backward(cublasHandle_t h, cudaStream_t s, int n, int in, int out,
                         const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db, float *part, StkErr *err);

#endif
