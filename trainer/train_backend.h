/* train_backend.h: what stoker-train trains on, the CPU backend (cpu_net) or the CUDA
 * backend (cuda_train: cuda_net behind the double-buffered input), behind one small
 * table of calls, so the training loop, evaluation and checkpoints are written once.
 *
 * The host side always holds the parameter arena, the optimizer state, the step count
 * and num_batches_tracked in the CPU backend's layout (what checkpoints, --resume and
 * --weights read and write): on the CPU backend they are the net's own arenas; on the
 * CUDA backend, host copies moved by tb_upload / tb_download. */
#ifndef TRAIN_BACKEND_H
#define TRAIN_BACKEND_H

#include <stdint.h>

#include "cpu_net.h"
#include "train_accum.h"
#include "train_group.h"
#include "train_input.h"
#include "vram_plan.h"

typedef struct TrainBackend {
    int cuda;                     /* 0: CPU backend; 1: CUDA */
    const char *precision;        /* "fp32" on the CPU; CUDA: fp32, tf32 or bf16 */
    CpuNet cpu;                   /* the CPU backend */
    void *gpu;                    /* the CUDA backend (a CudaTrain), NULL on the CPU */
    float *params;                /* host parameter arena (model->total_floats) */
    float *optim_state;           /* host optimizer state */
    int64_t *num_batches_tracked; /* host [nbn] */
    uint64_t *steps;              /* optimizer steps taken */
    uint64_t plan_bytes;          /* the memory plan's total */
    int slot;                     /* CUDA: the slot the next training batch is in: train_input
                                     alternates its two slots batch by batch, and so do we */
    int eval_slot;                /* CUDA: the device buffer the next eval batch goes to
                                     (evaluation waits for each result, so its host slots
                                     are free again at once) */
    float *logits;                /* CUDA: host copy of the last eval logits */
    int pending;                  /* CUDA: a step was queued whose loss is not read yet */
    char device_name[256];        /* "CPU (2 cores)", "NVIDIA H200" */
    TrainAccum accum;             /* CPU: micro-batches per optimizer step (tb_set_accum) */
    int rank;                     /* --gpus: this rank; CUDA trains on device `rank` */
    TrainGroup *group;            /* --gpus > 1 (not owned): the CPU backend averages its
                                     gradients through it before each step */
    void *ddp;                    /* CUDA, --gpus > 1: the NCCL data parallel (a CudaDdp) */
} TrainBackend;

/* Opens the backend `device` ("cpu" or "cuda") for m at batch; precision (NULL: bf16 on
 * cards that have it, else fp32) is CUDA's. Fails with the reason (no GPU, a build
 * without CUDA, out of memory with the plan). */
int tb_init(TrainBackend *tb, const char *device, const char *precision, const Model *m,
            int batch, const OptimConfig *opt, StkErr *err);

/* fp16 on CUDA: the loss scale now and the steps skipped for inf/NaN gradients so far
 * (waits for the device); 1 (nothing set) in every other case. */
int tb_loss_scale(TrainBackend *tb, float *scale, uint64_t *skipped, StkErr *err);

/* The precision tb_init picks for `device` without one asked for: "fp32" on the CPU, on
 * CUDA device `rank` "bf16" where it has it, else "fp32" (so a memory plan made before the
 * backend opens is for the precision it will run). Fails without the device. */
int tb_default_precision(const char *device, int rank, const char **name, StkErr *err);

/* The same for rank `rank` of a data-parallel group: CUDA opens device `rank`. */
int tb_init_rank(TrainBackend *tb, const char *device, const char *precision, const Model *m,
                 int batch, const OptimConfig *opt, int rank, StkErr *err);

/* What a process tells the CUDA backend beyond that (tb_init_ex; zeros: the defaults). */
typedef struct TbExtra {
    uint64_t workspace;  /* cuDNN workspace bound in bytes, as the memory plan assumed (0: 256 MiB) */
    int evaluator;       /* 1: an evaluator beside a trainer on the same GPU: its stream keeps
                          * the default priority while the trainer's runs at the highest, so
                          * evaluation fills what training leaves idle */
    int inference;       /* 1: CUDA: tb_eval only (an evaluator's network: forward-only arenas,
                          * vram_arenas_inference); tb_train fails, tb_upload and tb_download
                          * move parameters and buffers only. The CPU backend ignores it */
    int recompute;       /* 1: CUDA: CudaNetOptions.recompute (vram_nodes.h); the CPU backend
                          * ignores it */
    int eager;           /* 1: CUDA: CudaNetOptions.eager (no CUDA graphs, cuda_train.h) */
} TbExtra;
int tb_init_ex(TrainBackend *tb, const char *device, const char *precision, const Model *m,
               int batch, const OptimConfig *opt, int rank, const TbExtra *x, StkErr *err);

/* Joins the group g (--gpus > 1; g outlives tb): from now on every optimizer step uses
 * the mean of the ranks' gradients. The CPU backend averages through g itself; the CUDA
 * backend sets up NCCL (cuda_ddp.h), its unique id broadcast from rank 0 through g, and
 * all-reduces in buckets during the backward pass. Fails when this build has no NCCL.
 * Returns 0, TRAIN_GROUP_STOPPED or -1 + err. */
int tb_join_group(TrainBackend *tb, TrainGroup *g, StkErr *err);
void tb_free(TrainBackend *tb);

/* k micro-batches (of the batch tb_init was given) per optimizer step, their gradients
 * averaged (train_accum.h). The CPU backend accumulates; the CUDA backend refuses k > 1
 * for now (its backward overwrites the device gradients; accumulating needs cuda/ work). */
int tb_set_accum(TrainBackend *tb, int k, StkErr *err);

/* Drops a partial accumulation (the epoch's tail that makes no whole step). */
void tb_accum_reset(TrainBackend *tb);

/* The CUDA kernels' work splits for the planner in a CUDA build; NULL (host rules) else. */
const VramKernels *tb_vram_kernels(void);

/* Where train_input should put batches: pinned memory for CUDA. */
TrainSlotAlloc tb_slot_alloc(const TrainBackend *tb);

/* The host's parameters, optimizer state and counters to the device, and back. No-ops on
 * the CPU backend. */
int tb_upload(TrainBackend *tb, StkErr *err);
int tb_download(TrainBackend *tb, StkErr *err);

/* tb_download in two halves, for a checkpoint written by another thread (ckpt_writer.h):
 * tb_snapshot copies the parameters (model total_floats) and the optimizer state into
 * params and state as the backend holds them (CUDA: one device-to-host copy each, its
 * stream drained; CPU: a copy of the arenas); tb_snapshot_layout, on any thread, turns
 * those copies into what tb_download gives (CUDA: every convolution weight and its
 * optimizer blocks transposed; CPU: a copy). The host copies tb->params and
 * tb->optim_state are not touched. */
int tb_snapshot(TrainBackend *tb, float *params, float *state, StkErr *err);
void tb_snapshot_layout(const TrainBackend *tb, const float *raw_params, const float *raw_state,
                        float *params, float *state);

/* Before train_input_next fetches the next training batch: the slot it will overwrite
 * must have been copied out (CUDA). */
int tb_before_next(TrainBackend *tb, StkErr *err);

/* One training pass on batch b (full size), and the optimizer step after the k-th pass
 * of an accumulation (every pass when k is 1); *stepped says whether it stepped. In a
 * group the gradients are averaged over the ranks first; returns TRAIN_GROUP_STOPPED
 * (1, nothing stepped) when that wait was ended by a stop.
 * *loss: the CPU's loss of this pass; on CUDA
 * the loss of the previous step (read while this one computes), NAN for the first. */
int tb_train(TrainBackend *tb, const TrainBatch *b, int crop, double eps, uint64_t key,
             double lr, double wd, double norm_wd, double *loss, int *stepped, StkErr *err);

/* The loss of the last step not yet reported by tb_train (waits); NAN if none. */
int tb_last_loss(TrainBackend *tb, double *loss, StkErr *err);

/* Device memory this process holds above the bare CUDA context (cuda_train_device_bytes):
 * 0 with *bytes, 1 on the CPU backend (no figure), -1 + err. */
int tb_device_bytes(TrainBackend *tb, uint64_t *bytes, StkErr *err);

/* Free device memory of GPU rank now (cudaMemGetInfo): 0, 1 in a build without CUDA or
 * on no usable GPU (nothing set), -1 + err. */
int tb_device_free(int rank, uint64_t *free_bytes, StkErr *err);

/* The CUDA backend's graph use (cuda_train.h): training passes replayed from a captured
 * graph and run eagerly so far, and why graphs went off (NULL: they did not). 0, or 1 on
 * the CPU backend (nothing set). */
int tb_graphs(const TrainBackend *tb, uint64_t *replayed, uint64_t *eager, const char **note);

/* Eval-mode logits (batch x classes, host) of b (b->n <= batch; rows past n are junk).
 * Call tb_last_loss first when training steps may be in flight. */
int tb_eval(TrainBackend *tb, const TrainBatch *b, int crop, const float **logits, StkErr *err);

#endif
