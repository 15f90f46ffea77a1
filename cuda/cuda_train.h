/* cuda_train.h: the CUDA trainer's input pipeline around a CudaNet, as the design card
 * draws it: batches arrive in one of TWO pinned host slots (train_input.h, through
 * cuda_train_slot_alloc), a copy stream moves slot k's pixels and labels into device
 * input buffer k, events order copy and compute, so receiving (host), copying (copy
 * engine) and computing (the net's stream) overlap. Exactly two device input buffers
 * exist (cuda_train_input_buffers() says how many the plan holds; a test checks it is 2).
 *
 * Per batch k in slot s = k % 2, the caller does:
 *   cuda_train_slot_free(t, s)   before train_input_next writes slot s again (waits until
 *                                the copy out of it, two batches ago, is done);
 *   cuda_train_submit(t, s, ...) queues the copy into device buffer s (after the compute
 *                                that last read it);
 *   cuda_train_step(t, s, ...)   queues normalisation + forward + backward + optimizer step
 *                                after the copy; nothing waits.
 * cuda_train_loss waits for the last step's loss when the caller wants to log it.
 *
 * CUDA graphs: after CUDA_TRAIN_GRAPH_WARMUP eager passes (cuDNN, cuBLAS and the kernels
 * loaded), a step's normalise + forward + loss + backward + row-loss copy on slot s is
 * captured once into graph[s] and replayed from then on: one launch instead of hundreds,
 * so the host's launch rate no longer sets the pace of small steps. What changes per step
 * stays outside the graph: the dropout key (written to device memory first,
 * cuda_net_forward_begin), the host's batch-norm counts, the accumulation fold and the
 * optimizer step (its learning rate is an argument). A changed label smoothing captures
 * again. Not captured: with CudaNetOptions.eager, while profiling, and with --gpus (the
 * backward launches NCCL collectives from a callback); a graph made before one of those
 * was switched on is dropped. If capturing fails, graph_note says why (stoker-train
 * repeats it on each epoch line) and every later step runs eagerly: nothing is lost. */
#ifndef CUDA_TRAIN_H
#define CUDA_TRAIN_H

#include <stdint.h>

#include "cuda_net.h"
#include "train_input.h" /* TrainSlotAlloc, TRAIN_INPUT_SLOTS */

#define CUDA_TRAIN_GRAPH_WARMUP 2 /* eager training passes before the first capture */

typedef struct CudaTrain {
    CudaNet net;
    int h, w, c;                          /* the input batches' shape */
    float mean[4], std[4];                /* normalisation (torchvision's ImageNet values) */
    cudaStream_t copy;                    /* host-to-device copies */
    uint8_t *dev_pixels[TRAIN_INPUT_SLOTS];   /* the two device input buffers */
    int32_t *dev_labels[TRAIN_INPUT_SLOTS];
    cudaEvent_t copied[TRAIN_INPUT_SLOTS];    /* slot's copy finished (host slot reusable) */
    cudaEvent_t consumed[TRAIN_INPUT_SLOTS];  /* compute finished reading device buffer */
    cudaEvent_t stepped[TRAIN_INPUT_SLOTS];   /* the step on that slot has its loss on the host */
    float *host_loss[TRAIN_INPUT_SLOTS];      /* pinned: that step's row losses */
    int last;                                 /* slot of the last step queued, -1 before any */
    /* --gpus: called between the backward and the optimizer step (cuda_ddp_finish: the
       step waits for the gradients' all-reduce); NULL alone */
    int (*before_step)(void *ctx, StkErr *err);
    void *before_step_ctx;
    size_t ctx_free;                          /* device bytes free before the net existed */
    cudaGraphExec_t graph[TRAIN_INPUT_SLOTS];  /* slot s's captured pass, NULL before */
    double graph_eps[TRAIN_INPUT_SLOTS];      /* the label smoothing it was captured with */
    uint64_t eager_passes, graph_passes;      /* training passes run each way */
    int graph_off;                            /* 1: capturing failed once; eager from then */
    char graph_note[200];                     /* why graph_off (for the trainer to print) */
    int accum_k, accum_have;                  /* micro-batches per optimizer step, folded */
    float *accum_sum;                         /* device [trainable]: their weighted sum */
} CudaTrain;

/* Pinned host memory for train_input's two slots (cudaMallocHost): page-locked, so the
 * copy engine reads it while the CPU goes on. */
TrainSlotAlloc cuda_train_slot_alloc(void);

/* Makes the net (cuda_net_init) and the input side for batches of batch x h x w x c
 * uint8 pixels. Returns 0 or -1 + err. */
int cuda_train_init(CudaTrain *t, const Model *m, int batch, const OptimConfig *opt,
                    const CudaNetOptions *o, StkErr *err);
void cuda_train_free(CudaTrain *t);

/* Device input buffers the trainer holds: always TRAIN_INPUT_SLOTS (2). */
int cuda_train_input_buffers(const CudaTrain *t);

/* Host waits until slot s's last copy to the device is done, so train_input may refill it. */
int cuda_train_slot_free(CudaTrain *t, int s, StkErr *err);

/* Queues the copy of n samples (pixels, labels: pinned, in slot s) into device buffer s.
 * n may be short of the batch (eval's last batch): the rest of the buffer keeps old
 * samples, whose outputs the caller ignores. */
int cuda_train_submit(CudaTrain *t, int s, const uint8_t *pixels, const int32_t *labels, int n,
                      StkErr *err);

/* Queues a training pass on device buffer s: normalise, forward, loss (label smoothing
 * eps), backward, then the optimizer step, or with accumulation (cuda_train_set_accum)
 * the fold of this micro-batch's gradients and the step after the K-th only; *stepped
 * (may be NULL) says whether the step was taken. The dropout key as cpu_net's. */
int cuda_train_step(CudaTrain *t, int s, double eps, uint64_t key, double lr, double wd,
                    double norm_wd, int *stepped, StkErr *err);

/* Device memory this process holds above the bare CUDA context, in bytes: what the
 * planner's peak less its reserve predicts (cudaMemGetInfo now against before
 * cuda_train_init made anything). */
int cuda_train_device_bytes(const CudaTrain *t, uint64_t *bytes, StkErr *err);

/* K micro-batches per optimizer step (cuda_accum.h): allocates the sum arena (trainable
 * floats, once, before training; the plan counts it). K = 1: no accumulation. */
int cuda_train_set_accum(CudaTrain *t, int k, StkErr *err);

/* Forgets a partial accumulation (an epoch's tail that does not make a whole step). */
void cuda_train_accum_reset(CudaTrain *t);

/* Queues an eval-mode forward on device buffer s and copies the logits (batch x classes
 * floats) to host; waits for them. */
int cuda_train_eval(CudaTrain *t, int s, float *logits, StkErr *err);

/* Waits for the last step queued on slot s and gives its mean loss (while the step on the
 * other slot computes: the way to log without stalling the GPU). */
int cuda_train_loss_of(CudaTrain *t, int s, double *loss, StkErr *err);

/* Waits for the last step queued and gives its mean loss. */
int cuda_train_loss(CudaTrain *t, double *loss, StkErr *err);

#endif
