/* cuda_device.h: what GPUs there are and what the libraries behind them are, for
 * `stoker-train --list-devices`, logs and the VRAM planner. */
#ifndef CUDA_DEVICE_H
#define CUDA_DEVICE_H

#include <stddef.h>

#include "stk_err.h"

typedef struct CudaDeviceInfo {
    char name[256];       /* e.g. "NVIDIA H100 80GB HBM3" */
    int major, minor;     /* compute capability */
    int sm_count;         /* streaming multiprocessors */
    size_t total_bytes;   /* device memory */
    size_t free_bytes;    /* free now (cudaMemGetInfo) */
    int runtime_version;  /* CUDA runtime, e.g. 13000 */
    int driver_version;   /* driver's CUDA version */
    size_t cudnn_version; /* cudnnGetVersion(), e.g. 91900 */
} CudaDeviceInfo;

/* Number of usable GPUs in *count. No GPU or no driver is not an error: *count = 0 and
 * 0 is returned; err then says why (for the message a user sees). */
int cuda_device_count(int *count, StkErr *err);

/* Fills info for device `dev` (makes it current). Returns 0 or -1 + err. */
int cuda_device_info(int dev, CudaDeviceInfo *info, StkErr *err);

#endif
