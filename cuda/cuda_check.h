/* cuda_check.h: every CUDA, cuDNN and cuBLAS status is checked, and a failure becomes
 * the library's usual -1 + StkErr naming the call, file, line and the library's text.
 * Use inside functions returning int that take `StkErr *err`:
 *     CUDA_TRY(err, cudaMemcpyAsync(...));
 *     CUDA_TRY(err, cudaGetLastError());   // after every kernel launch */
#ifndef CUDA_CHECK_H
#define CUDA_CHECK_H

#include <cuda_runtime_api.h>

#include "stk_err.h"

#define CUDA_TRY(err, call)                                                              \
    do {                                                                                 \
        cudaError_t st_ = (call);                                                        \
        if (st_ != cudaSuccess)                                                          \
            return stk_errf((err), "%s:%d: %s: %s", __FILE__, __LINE__, #call,           \
                            cudaGetErrorString(st_));                                    \
    } while (0)

#define CUDNN_TRY(err, call)                                                             \
    do {                                                                                 \
        cudnnStatus_t st_ = (call);                                                      \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                 \
            return stk_errf((err), "%s:%d: %s: %s", __FILE__, __LINE__, #call,           \
                            cudnnGetErrorString(st_));                                   \
    } while (0)

#define CUBLAS_TRY(err, call)                                                            \
    do {                                                                                 \
        cublasStatus_t st_ = (call);                                                     \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                \
            return stk_errf((err), "%s:%d: %s: %s", __FILE__, __LINE__, #call,           \
                            cublasGetStatusString(st_));                                 \
    } while (0)

#endif
