/* cuda_device.c: device enumeration and library versions (see cuda_device.h). */
#include "cuda_device.h"

#include <cudnn.h>
#include <stdio.h>
#include <string.h>

#include "cuda_check.h"

int cuda_device_count(int *count, StkErr *err) {
    *count = 0;
    cudaError_t st = cudaGetDeviceCount(count);
    if (st != cudaSuccess) {
        *count = 0;
        stk_errf(err, "no usable GPU: cudaGetDeviceCount: %s", cudaGetErrorString(st));
        (void)cudaGetLastError(); /* clear it: not having a GPU is a normal state */
        return 0;
    }
    if (*count == 0) stk_errf(err, "no usable GPU: cudaGetDeviceCount found none");
    return 0;
}

int cuda_device_info(int dev, CudaDeviceInfo *info, StkErr *err) {
    struct cudaDeviceProp p;
    memset(info, 0, sizeof *info);
    CUDA_TRY(err, cudaSetDevice(dev));
    CUDA_TRY(err, cudaGetDeviceProperties(&p, dev));
    CUDA_TRY(err, cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
    CUDA_TRY(err, cudaRuntimeGetVersion(&info->runtime_version));
    CUDA_TRY(err, cudaDriverGetVersion(&info->driver_version));
    snprintf(info->name, sizeof info->name, "%.255s", p.name);
    info->major = p.major;
    info->minor = p.minor;
    info->sm_count = p.multiProcessorCount;
    info->cudnn_version = cudnnGetVersion();
    return 0;
}
