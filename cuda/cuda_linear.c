/* cuda_linear.c: cuBLAS is column-major; a row-major [r, c] matrix is its column-major
 * [c, r] transpose, so each product below is the transposed identity of the row-major one
 * (see cuda_linear.h). */
#include "cuda_linear.h"

#include "cuda_check.h"
#include "cuda_elem.h"

/* C[m, n] = op(A) op(B), column-major, in the layer's dtype with float32 accumulation. */
static int gemm(const CudaLinear *l, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                int m, int n, int k, const void *a, int lda, const void *b, int ldb, void *c,
                int ldc, int accumulate, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    cudaDataType_t t = l->dt == CUDA_BF16 ? CUDA_R_16BF : l->dt == CUDA_F16 ? CUDA_R_16F : CUDA_R_32F;
    cublasComputeType_t ct = l->dt == CUDA_F32 && l->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                          : CUBLAS_COMPUTE_32F;
    CUBLAS_TRY(err, cublasGemmEx(h, ta, tb, m, n, k, &one, a, t, lda, b, t, ldb,
                                 accumulate ? &one : &zero, c, t, ldc, ct, CUBLAS_GEMM_DEFAULT));
    return 0;
}

static int check(const CudaLinear *l, int n, const char *fn, StkErr *err) {
    if (n < 1 || l->in < 1 || l->out < 1)
        return stk_errf(err, "%s: %d rows, %d -> %d features", fn, n, l->in, l->out);
    return 0;
}

int cuda_linear_forward(const CudaLinear *l, cublasHandle_t h, cudaStream_t s, int n,
                        const void *x, const void *w, const float *b, void *y, StkErr *err) {
    if (check(l, n, "cuda_linear_forward", err)) return -1;
    /* y^T [out, n] = W [out, in] . x^T [in, n] */
    if (gemm(l, h, CUBLAS_OP_T, CUBLAS_OP_N, l->out, n, l->in, w, l->in, x, l->in, y, l->out, 0, err))
        return stk_err_wrap(err, "cuda_linear_forward");
    if (b && cuda_bias_add(l->dt, (size_t)n, l->out, b, y, s, err)) return -1;
    return 0;
}

int cuda_linear_backward(const CudaLinear *l, cublasHandle_t h, cudaStream_t s, int n,
                         const void *x, const void *w, const void *dy, void *dx, int accumulate_dx,
                         void *dw, float *db, float *part, StkErr *err) {
    if (check(l, n, "cuda_linear_backward", err)) return -1;
    /* dx^T [in, n] = W^T [in, out] . dy^T [out, n] */
    if (dx && gemm(l, h, CUBLAS_OP_N, CUBLAS_OP_N, l->in, n, l->out, w, l->in, dy, l->out, dx,
                   l->in, accumulate_dx, err))
        return stk_err_wrap(err, "cuda_linear_backward (data)");
    /* dw^T [in, out] = x^T [in, n] . dy [n, out] */
    if (dw && gemm(l, h, CUBLAS_OP_N, CUBLAS_OP_T, l->in, l->out, n, x, l->in, dy, l->out, dw, l->in, 0, err))
        return stk_err_wrap(err, "cuda_linear_backward (weights)");
    if (db && cuda_colsum(l->dt, (size_t)n, l->out, dy, db, part, s, err)) return -1;
    return 0;
}
