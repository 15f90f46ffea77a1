/* vram_plan.h: the GPU memory plan as host arithmetic, so it can be computed (and
 * printed: stoker-train --plan) on a machine with no GPU and in a build without CUDA.
 *
 * vram_arenas is THE formula for the CUDA backend's arenas: cuda_net_plan calls it, so
 * what --plan prints is what cuda_net_init allocates. Two sizes depend on how the CUDA
 * kernels split their work (the reduction scratch and the depthwise backward-filter
 * partials); a CUDA build passes the kernels' own functions (VramKernels), a build
 * without CUDA uses host copies of the same rules (VRAM_HOST_KERNELS).
 *
 * vram_plan_search then fits a training run onto a card: the largest micro-batch whose
 * arenas, two uint8 input buffers, the CUDA context reserve and an evaluator's share fit
 * the budget, and the gradient-accumulation steps that reach the effective batch. Not yet
 * modelled (left for later): activation recomputation and half-precision storage of
 * saved activations beyond what the bf16 precision already does. The node pool's layout
 * (what is kept, what reuses what) is vram_nodes.h's. */
#ifndef VRAM_PLAN_H
#define VRAM_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "optim.h"
#include "stk_err.h"

#define VRAM_MIB (1ull << 20)
#define VRAM_DEFAULT_WORKSPACE (256ull << 20) /* cuDNN workspace bound (cuda_net's default) */
#define VRAM_INPUT_BUFFERS 2                  /* cuda_train's double-buffered uint8 batches */
#define VRAM_DEFAULT_RESERVE (384ull << 20)   /* the CUDA context when no preset says */
/* cuDNN and cuBLAS: their handles, cuBLAS's workspace and the kernels they load, on top of
 * the arenas: measured 86-91 MiB over the arenas for every model on an H200 (cudaMemGetInfo
 * above the bare context, docs/BENCHMARKS.md), rounded up. */
#define VRAM_LIBRARY_BYTES (96ull << 20)

/* Same values as CudaPrecision (cuda_net.h), which needs CUDA headers. */
typedef enum VramPrecision {
    VRAM_FP32 = 0, /* 4-byte activations */
    VRAM_TF32 = 1, /* 4-byte activations (TF32 is a compute mode, not a storage type) */
    VRAM_BF16 = 2, /* 2-byte activations, bf16 weight copies + one weight-gradient slot */
    VRAM_FP16 = 3, /* as bf16, in IEEE half (the loss scaler's few bytes are not counted) */
} VramPrecision;

/* The kernel-dependent sizes (both in floats). NULL members: host rules. */
typedef struct VramKernels {
    size_t (*colsum_scratch)(int c);               /* cuda_colsum_scratch */
    size_t (*dw_scratch)(const ConvDesc *d, Shape4 in, Shape4 out); /* cuda_dwconv_filter_scratch:
                                                      0 for a conv the kernels do not run */
} VramKernels;

/* The host rule a NULL dw_scratch stands for (what a build without CUDA plans); tests
 * compare it with the kernels' layer by layer. */
size_t vram_host_dw_scratch(const ConvDesc *d, Shape4 in, Shape4 out);

/* Bytes of each device arena (CudaNetPlan's fields, same meaning). */
typedef struct VramArenas {
    uint64_t params, grads, optim, lowp, saved, scratch, workspace;
    uint64_t acts;       /* the node pool: activations and their gradients by lifetime
                            (vram_nodes.h) */
    uint64_t acts_kept;  /* part of acts: activations alive at the loss (saved for backward) */
    uint64_t dw_scratch; /* part of scratch: depthwise backward-filter partials */
    uint64_t total;      /* sum of all but dw_scratch */
} VramArenas;

/* "fp32", "tf32", "bf16" or "fp16": --precision's word for p. */
const char *vram_precision_name(VramPrecision p);

/* The arenas for m at batch; workspace 0: VRAM_DEFAULT_WORKSPACE; k NULL: host rules. */
VramArenas vram_arenas(const Model *m, int batch, const OptimConfig *opt, VramPrecision prec,
                       uint64_t workspace, const VramKernels *k);

/* The same, with recompute 1: the node pool of a recompute plan (vram_nodes_plan_recompute). */
VramArenas vram_arenas_ex(const Model *m, int batch, const OptimConfig *opt, VramPrecision prec,
                          uint64_t workspace, const VramKernels *k, int recompute);

/* The arenas of a network that runs forward passes only (an evaluator's: CudaNetOptions
 * .inference): parameters, 16-bit weight copies without a gradient slot, the forward-only
 * node pool (vram_nodes_plan_inference), the reduction scratch and the workspace; no
 * gradients, optimizer state, saved state or depthwise partials. */
VramArenas vram_arenas_inference(const Model *m, int batch, VramPrecision prec, uint64_t workspace,
                                 const VramKernels *k);

/* A card: capacity, what the driver/context and cuBLAS take before us, bf16 or not. */
typedef struct VramPreset {
    const char *name;      /* --gpu NAME */
    uint64_t capacity;     /* bytes on the card */
    uint64_t reserve;      /* bytes for the CUDA context (cuDNN/cuBLAS: VRAM_LIBRARY_BYTES) */
    int bf16;              /* 1: compute capability >= 8.0 (bf16, tf32); 0: fp32 only */
    const char *what;      /* a line for the table */
} VramPreset;

/* The preset called name, or NULL. */
const VramPreset *vram_preset(const char *name);
/* Preset names, comma-separated, for messages. */
const char *vram_preset_names(void);

/* Parses "2GiB", "1536MiB", "2G", "512M", or plain bytes; 0 or -1 + err. */
int vram_parse_size(const char *s, uint64_t *bytes, StkErr *err);

/* Whether batch norm + activation outputs are recomputed in backward (vram_nodes.h). */
typedef enum VramRecompute {
    VRAM_RECOMPUTE_AUTO, /* only when that fits more samples per pass than keeping them */
    VRAM_RECOMPUTE_OFF,
    VRAM_RECOMPUTE_ON
} VramRecompute;

/* What to fit. */
typedef struct VramRequest {
    const Model *m;
    const OptimConfig *opt;
    VramPrecision prec;
    uint64_t workspace;     /* cuDNN bound (0: default) */
    int batch;              /* the effective batch (--batch-size) */
    uint64_t budget;        /* bytes of the card (or --vram-budget) */
    uint64_t reserve;       /* bytes the context takes */
    double eval_share;      /* fraction of budget left to an evaluator on the same GPU */
    const VramKernels *k;   /* NULL: host rules */
    int inference;          /* 1: an evaluator's network (vram_arenas_inference): opt,
                               eval_share unused; batch is the largest evaluation batch */
    VramRecompute recompute; /* training: AUTO (the default), OFF or ON */
} VramRequest;

/* The result. */
typedef struct VramPlan {
    int micro, accum;       /* micro-batch and steps per optimizer step */
    int effective;          /* micro * accum: batch, or the next multiple (see search) */
    VramArenas a;           /* at micro */
    uint64_t inputs;        /* bytes: VRAM_INPUT_BUFFERS x micro x h x w x c uint8 */
    uint64_t accum_sum;     /* bytes: the accumulation sum when accum > 1 (cuda_accum.h) */
    uint64_t library;       /* bytes: VRAM_LIBRARY_BYTES */
    uint64_t peak;          /* a.total + inputs + accum_sum + library + reserve: the card's
                               use; peak - reserve is the process's above the bare context */
    uint64_t usable;        /* budget - reserve - eval share: what the training may use */
    uint64_t eval_bytes;    /* the evaluator's share */
    int recompute;          /* 1: the arenas are a recompute plan's (ON, or AUTO when keeping
                               the outputs would take more accumulation steps) */
} VramPlan;

/* Peak bytes (arenas + inputs + the accumulation sum when micro < batch + cuDNN/cuBLAS +
 * reserve) at micro-batch micro (an inference request: its arenas, no accumulation). */
uint64_t vram_peak(const VramRequest *r, int micro);

/* The largest micro <= batch that fits, accum = ceil(batch / micro), then micro =
 * ceil(batch / accum) (the smallest with the same accum): micro * accum == batch when
 * batch divides evenly, else the effective batch is rounded up to micro * accum (at most
 * accum - 1 samples more; plan->effective says). Recompute AUTO: first with the outputs
 * kept; when the whole batch does not fit in one pass, a recompute plan is taken if it
 * needs fewer accumulation steps (recomputing before shrinking: one elementwise pass per
 * batch norm, 1-5% of a step, against whole passes more). Fails with the numbers when
 * even micro-batch 1 does not fit. */
int vram_plan_search(const VramRequest *r, VramPlan *p, StkErr *err);

/* For an inference request: the largest evaluation batch <= r->batch whose peak (its own
 * context reserve included: an evaluator is a process of its own) fits r->budget, the
 * evaluator's share. p->micro is that batch (accum 1). Fails with the numbers when not
 * even batch 1 fits. */
int vram_eval_search(const VramRequest *r, VramPlan *p, StkErr *err);

/* The plan as a table, ending with "plan: micro_batch=M accum=K peak_mib=P". */
void vram_plan_print(FILE *f, const VramRequest *r, const VramPlan *p);

/* The pieces of the formula the allocator also walks (cuda_net.c lays its arenas out with
 * the same sizes): floats layer li saves for backward (batch-norm mean and invstd, max-pool
 * argmax in float-sized slots), the widest node or the class count, the largest node at
 * batch, and the bf16 weight copies' elements plus the largest single weight. */
uint64_t vram_saved_floats(const Model *m, int li, int batch);
int vram_max_channels(const Model *m);
uint64_t vram_biggest_node(const Model *m, int batch);
void vram_lowp_sizes(const Model *m, uint64_t *copies, uint64_t *largest);

#endif
