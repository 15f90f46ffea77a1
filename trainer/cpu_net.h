/* cpu_net.h: a Model run by the CPU backend: the memory plan (one arena per kind of
 * memory, sized once for a batch), forward, backward and the optimizer step.
 *
 * Arenas: parameters (trainable, then buffers), gradients, optimizer state, activations
 * (every node's output for the batch, kept for backward), activation gradients, and
 * per-layer saved state (batch-norm mean/invstd, max-pool argmax). Nothing is allocated
 * after cpu_net_init. Batches are always `batch` samples: evaluation of a short last
 * batch pads it (batch-norm in eval mode makes samples independent); training uses full
 * batches (the trainer drops the last partial one, as with --drop-last). */
#ifndef CPU_NET_H
#define CPU_NET_H

#include <stdint.h>

#include "cpu_bn.h"
#include "cpu_dnnl.h"
#include "model.h"
#include "optim.h"

/* How many bytes each arena takes for a model and batch: the plan. */
typedef struct CpuNetPlan {
    uint64_t params, grads, optim, acts, dacts, saved, total; /* bytes */
} CpuNetPlan;

typedef struct CpuNet {
    const Model *m;         /* not owned */
    int batch;
    OptimConfig opt;
    CpuDnnl dn;
    CpuConv *conv;          /* [nlayers]; used for LAYER_CONV entries */
    CpuBn *bn;              /* [nlayers]; used for LAYER_BN entries */
    float *params, *grads, *optim_state;
    int64_t *num_batches_tracked; /* [nbn] */
    float *acts, *dacts, *saved, *scratch;
    int32_t *argmax;
    uint64_t *act_off;      /* [nlayers + 1] floats into acts/dacts, per node */
    uint64_t *saved_off;    /* [nlayers] floats into saved (or argmax for max pools) */
    int *consumers;         /* [nlayers + 1] */
    uint8_t *dact_set;      /* [nlayers + 1] during backward: first gradient written */
    uint64_t steps;         /* optimizer steps taken */
    int first_trainable;    /* lowest layer with trainable parameters (model_freeze.h):
                               backward stops there */
    uint64_t dact_base;     /* act_off of the first node that needs a gradient: dacts
                               holds only nodes from there on */
    CpuNetPlan plan;
} CpuNet;

/* Sizes the arenas for m at batch (without allocating). */
CpuNetPlan cpu_net_plan(const Model *m, int batch, const OptimConfig *opt);

/* Plans, allocates every arena and makes the oneDNN primitives. Parameters start
 * zeroed: call model_init_params(m, net->params, seed) or load a checkpoint. */
int cpu_net_init(CpuNet *net, const Model *m, int batch, const OptimConfig *opt, StkErr *err);
void cpu_net_free(CpuNet *net);

/* The input node's buffer: batch x c x h x w floats, NCHW (cpu_input_normalize writes it). */
float *cpu_net_input(CpuNet *net);

/* Runs the model on the input buffer; train selects batch statistics (and updates the
 * running ones) and dropout, except in frozen batch norms, which stay in eval mode. *logits points at batch x num_classes floats. */
int cpu_net_forward(CpuNet *net, int train, uint64_t dropout_key, const float **logits,
                    StkErr *err);

/* Cross-entropy (label smoothing eps) of the last forward against labels, its gradient
 * propagated back to every trainable parameter (gradients overwritten). *loss gets the
 * mean. Frozen layers (model_freeze.h) get no weight gradient, and nothing below the
 * lowest trainable layer is computed. */
int cpu_net_backward(CpuNet *net, const int32_t *labels, double eps, uint64_t dropout_key,
                     double *loss, StkErr *err);

/* One optimizer step over every trainable tensor; norm_wd is the weight decay of
 * batch-norm weights and all biases (torchvision's --norm-weight-decay; pass wd to treat
 * them like the rest). */
void cpu_net_step(CpuNet *net, double lr, double wd, double norm_wd);

#endif
