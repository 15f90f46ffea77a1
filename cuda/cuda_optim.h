/* cuda_optim.h: torch.optim's SGD and AdamW over every trainable tensor in one launch,
 * element for element the arithmetic of trainer/optim.c (float32, PyTorch's order),
 * with the bfloat16 copies of convolution and linear weights refreshed in the same pass
 * (the step reads each weight once and writes both copies).
 *
 * The tensors are segments of one parameter arena (their offsets; gradients at the same
 * offsets); a segment's optimizer state is at offset * per-element count (SGD: momentum;
 * AdamW: exp_avg[n] then exp_avg_sq[n]), as cpu_net.c lays it out. The table is made once
 * (cuda_optim_table_init) and cut into chunks, so one kernel covers every tensor whatever
 * their sizes. Returns 0 or -1 + err. */
#ifndef CUDA_OPTIM_H
#define CUDA_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda_dtype.h"
#include "cuda_scaler.h"
#include "stk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "optim.h" /* OptimConfig */

typedef struct CudaOptimSeg {
    uint64_t offset, n; /* floats into the parameter / gradient arenas */
    int64_t lowp;       /* elements into the bfloat16 copies, or -1: none */
    int norm;           /* 1: decays with norm_wd (batch-norm weights and biases), else wd */
} CudaOptimSeg;

typedef struct CudaOptimTable {
    int nseg, nchunk;
    void *dev;          /* device: the segments, then the chunks */
} CudaOptimTable;

/* Copies segs (nseg >= 0) to the device. */
int cuda_optim_table_init(CudaOptimTable *t, const CudaOptimSeg *segs, int nseg, StkErr *err);
void cuda_optim_table_free(CudaOptimTable *t);

/* One step over every segment: SGD (state: momentum, NULL when momentum is 0;
 * first_step initialises it from the update as PyTorch does) or AdamW (step counts from
 * 1), then lowp[seg.lowp + i] = lowp_dt(p) where a segment has a copy (lowp may be NULL
 * when none has; lowp_dt CUDA_BF16 or CUDA_F16). With a loss scaler's state (dyn, else
 * NULL) the device decides: dyn->skip leaves everything as it was, and AdamW's bias
 * corrections and SGD's first step come from dyn (the steps taken), not from step. */
int cuda_optim_step(const CudaOptimTable *t, const OptimConfig *c, float *params, const float *grads,
                    float *state, void *lowp, CudaDtype lowp_dt, const CudaScalerState *dyn,
                    double lr, double wd, double norm_wd, uint64_t step, int first_step,
                    cudaStream_t s, StkErr *err);

#ifdef __cplusplus
}
#endif

#endif
