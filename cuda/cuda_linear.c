/* cuda_linear.c: cuBLAS is column-major; a row-major [r, c] matrix is its column-major
 * [c, r] transpose, so each product below is the transposed identity of the row-major one
 * (see cuda_linear.h). */
#include "cuda_linear.h"

#include "cuda_check.h"
#include "cuda_elem.h"

int cuda_linear_forward(cublasHandle_t h, cudaStream_t s, int n, int in, int out,
                        const float *x, const float *w, const float *b, float *y, StkErr *err) {
    if (n < 1 || in < 1 || out < 1)
        return stk_errf(err, "cuda_linear_forward: %d rows, %d -> %d features", n, in, out);
    const float one = 1.0f, zero = 0.0f;
    /* y^T [out, n] = W [out, in] . x^T [in, n] */
    CUBLAS_TRY(err, cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, w, in, x, in,
                                &zero, y, out));
    if (b && cuda_bias_add((size_t)n, out, b, y, s, err)) return -1;
    return 0;
}

int cuda_linear_backward(cublasHandle_t h, cudaStream_t s, int n, int in, int out,
                         const float *x, const float *w, const float *dy, float *dx,
                         float *dw, float *db, float *part, StkErr *err) {
    if (n < 1 || in < 1 || out < 1)
        return stk_errf(err, "cuda_linear_backward: %d rows, %d -> %d features", n, in, out);
    const float one = 1.0f, zero = 0.0f;
    if (dx) /* dx^T [in, n] = W^T [in, out] . dy^T [out, n] */
        CUBLAS_TRY(err, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy,
                                    out, &zero, dx, in));
    /* dw^T [in, out] = x^T [in, n] . dy [n, out] */
    CUBLAS_TRY(err, cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out,
                                &zero, dw, in));
    if (db && cuda_colsum((size_t)n, out, dy, db, part, s, err)) return -1;
    return 0;
}
