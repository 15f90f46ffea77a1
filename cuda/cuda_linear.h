/* cuda_linear.h: nn.Linear on cuBLAS: y[n, out] = x[n, in] W[out, in]^T + b, and its
 * backward, row-major device buffers (the layouts of trainer/cpu_linear.h, so weights
 * need no conversion) of one dtype: float32 (strict, or TF32 when `tf32`), or bfloat16
 * with float32 accumulation. Biases and their gradients are float32. Returns 0 or -1 +
 * err. */
#ifndef CUDA_LINEAR_H
#define CUDA_LINEAR_H

#include <cublas_v2.h>

#include "cuda_dtype.h"
#include "stk_err.h"

typedef struct CudaLinear {
    int in, out;
    CudaDtype dt;
    int tf32;      /* float32 products may use TF32 tensor cores */
} CudaLinear;

/* y = x W^T (+ b when b is not NULL, by the per-channel add of cuda_elem.h). */
int cuda_linear_forward(const CudaLinear *l, cublasHandle_t h, cudaStream_t s, int n,
                        const void *x, const void *w, const float *b, void *y, StkErr *err);

/* dx = dy W (dx += when accumulate_dx), dw = dy^T x (of the layer's dtype), db = column
 * sums of dy (part is cuda_colsum scratch); each NULL skips (a frozen layer gives dx
 * only). A 1x1 convolution over NHWC data is this product with n = batch * h * w rows
 * (cuda_net.c runs those here when cuBLAS beats cuDNN on them). */
int cuda_linear_backward(const CudaLinear *l, cublasHandle_t h, cudaStream_t s, int n,
                         const void *x, const void *w, const void *dy, void *dx, int accumulate_dx,
                         void *dw, float *db, float *part, StkErr *err);

#endif
