/* train_backend.c: the CPU and CUDA backends behind stoker-train's loop (see
 * train_backend.h). Built into stoker-train with STOKER_HAVE_CUDA when the CUDA backend
 * is (the CUDA library builds on the trainer's, so this file cannot live in it). */
#include "train_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_input.h"
#ifdef STOKER_HAVE_CUDA
#include "cuda_check.h"
#include "cuda_device.h"
#include "cuda_dwconv.h"
#include "cuda_elem.h"
#include "cuda_train.h"
#ifdef STOKER_HAVE_NCCL
#include "cuda_ddp.h"
#endif
#endif

static int cpu_init(TrainBackend *tb, const Model *m, int batch, const OptimConfig *opt, StkErr *err) {
    if (cpu_net_init(&tb->cpu, m, batch, opt, err)) return -1;
    tb->params = tb->cpu.params;
    tb->optim_state = tb->cpu.optim_state;
    tb->num_batches_tracked = tb->cpu.num_batches_tracked;
    tb->steps = &tb->cpu.steps;
    tb->plan_bytes = tb->cpu.plan.total;
    tb->precision = "fp32";
    snprintf(tb->device_name, sizeof tb->device_name, "CPU (%ld cores)", sysconf(_SC_NPROCESSORS_ONLN));
    return 0;
}

#ifdef STOKER_HAVE_CUDA
/* bf16 where the card computes it (compute capability 8.0 on), else fp32; fp16 (with
 * loss scaling) from Volta's tensor cores (7.0) on: Pascal's half rate is a fraction of
 * its fp32 rate. */
static int pick_precision(const char *want, const CudaDeviceInfo *d, CudaPrecision *p, StkErr *err) {
    int has_bf16 = d->major >= 8, has_fp16 = d->major >= 7;
    if (!want) want = has_bf16 ? "bf16" : "fp32";
    if (!strcmp(want, "fp32")) *p = CUDA_PREC_FP32;
    else if (!strcmp(want, "tf32") && has_bf16) *p = CUDA_PREC_TF32;
    else if (!strcmp(want, "bf16") && has_bf16) *p = CUDA_PREC_BF16;
    else if (!strcmp(want, "fp16") && has_fp16) *p = CUDA_PREC_FP16;
    else if (!strcmp(want, "tf32") || !strcmp(want, "bf16") || !strcmp(want, "fp16"))
        return stk_errf(err, "--precision %s: %s (compute capability %d.%d) has no fast %s; use fp32",
                        want, d->name, d->major, d->minor, want);
    else return stk_errf(err, "--precision %s: fp32, tf32, bf16 or fp16", want);
    return 0;
}

static int gpu_default_precision(int rank, const char **name, StkErr *err) {
    int count;
    CudaDeviceInfo d;
    if (cuda_device_count(&count, err)) return -1;
    if (rank >= count) return stk_errf(err, "--device cuda: no GPU %d (this host has %d)", rank, count);
    if (cuda_device_info(rank, &d, err)) return -1;
    *name = d.major >= 8 ? "bf16" : "fp32"; /* pick_precision's rule */
    return 0;
}

static int gpu_init(TrainBackend *tb, const char *precision, const Model *m, int batch,
                    const OptimConfig *opt, const TbExtra *x, StkErr *err) {
    int count;
    CudaDeviceInfo d;
    if (cuda_device_count(&count, err)) return -1;
    if (!count) return stk_err_wrap(err, "--device cuda"); /* err says "no usable GPU: why" */
    if (tb->rank >= count)
        return stk_errf(err, "--rank %d: this host has %d GPU(s) (rank r trains on device r)",
                        tb->rank, count);
    if (cuda_device_info(tb->rank, &d, err)) return -1;
    CUDA_TRY(err, cudaSetDevice(tb->rank)); /* every later allocation and stream is on it */
    /* an evaluator waits for its results by sleeping, not spinning: a spinning wait holds a
     * core the loaders and the trainer's launching thread need */
    if (x && x->evaluator) CUDA_TRY(err, cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync));
    CudaNetOptions o = {.workspace_limit = x ? x->workspace : 0, .high_priority = !(x && x->evaluator),
                        .inference = x && x->inference, .recompute = x && x->recompute,
                        .eager = x && x->eager};
    if (pick_precision(precision, &d, &o.precision, err)) return -1;
    static const char *const names[] = {[CUDA_PREC_FP32] = "fp32", [CUDA_PREC_TF32] = "tf32",
                                         [CUDA_PREC_BF16] = "bf16", [CUDA_PREC_FP16] = "fp16"};
    tb->precision = names[o.precision];
    CudaTrain *t = calloc(1, sizeof *t);
    size_t per = (size_t)optim_state_per_element(opt);
    tb->params = calloc(m->total_floats ? m->total_floats : 1, 4);
    tb->optim_state = calloc(o.inference ? 1 : m->trainable_floats * per + 1, 4); /* none to hold */
    tb->logits = calloc((size_t)batch * m->num_classes, 4);
    if (!t || !tb->params || !tb->optim_state || !tb->logits)
        return stk_errf(err, "--device cuda: out of host memory");
    tb->gpu = t;
    if (cuda_train_init(t, m, batch, opt, &o, err)) return -1;
    tb->num_batches_tracked = t->net.num_batches_tracked;
    tb->steps = &t->net.steps;
    tb->plan_bytes = t->net.plan.total + (uint64_t)cuda_train_input_buffers(t) * batch *
                     m->input.c * m->input.h * m->input.w;
    snprintf(tb->device_name, sizeof tb->device_name, "%s", d.name);
    return 0;
}
#endif

int tb_init(TrainBackend *tb, const char *device, const char *precision, const Model *m,
            int batch, const OptimConfig *opt, StkErr *err) {
    return tb_init_rank(tb, device, precision, m, batch, opt, 0, err);
}

int tb_init_rank(TrainBackend *tb, const char *device, const char *precision, const Model *m,
                 int batch, const OptimConfig *opt, int rank, StkErr *err) {
    return tb_init_ex(tb, device, precision, m, batch, opt, rank, NULL, err);
}

int tb_init_ex(TrainBackend *tb, const char *device, const char *precision, const Model *m,
               int batch, const OptimConfig *opt, int rank, const TbExtra *x, StkErr *err) {
    memset(tb, 0, sizeof *tb);
    tb->rank = rank;
    if (!device || !strcmp(device, "cpu")) {
        if (precision && strcmp(precision, "fp32"))
            return stk_errf(err, "--precision %s: the CPU backend computes in fp32", precision);
        return cpu_init(tb, m, batch, opt, err);
    }
    if (strcmp(device, "cuda")) return stk_errf(err, "--device %s: cpu or cuda", device);
#ifdef STOKER_HAVE_CUDA
    tb->cuda = 1;
    if (gpu_init(tb, precision, m, batch, opt, x, err)) {
        tb_free(tb);
        return -1;
    }
    return 0;
#else
    (void)precision, (void)batch, (void)opt, (void)x;
    return stk_errf(err, "--device cuda: this stoker-train was built without the CUDA backend "
                    "(configure found no nvcc or cuDNN; see README 'Building for your GPU')");
#endif
}

int tb_loss_scale(TrainBackend *tb, float *scale, uint64_t *skipped, StkErr *err) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) return cuda_net_loss_scale(&((CudaTrain *)tb->gpu)->net, scale, skipped, err);
#endif
    (void)tb, (void)scale, (void)skipped, (void)err;
    return 1;
}

int tb_default_precision(const char *device, int rank, const char **name, StkErr *err) {
    *name = "fp32";
    if (!device || !strcmp(device, "cpu")) return 0;
    if (strcmp(device, "cuda")) return stk_errf(err, "--device %s: cpu or cuda", device);
#ifdef STOKER_HAVE_CUDA
    return gpu_default_precision(rank, name, err);
#else
    (void)rank;
    return stk_errf(err, "--device cuda: this stoker-train was built without the CUDA backend");
#endif
}

int tb_set_accum(TrainBackend *tb, int k, StkErr *err) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) return cuda_train_set_accum(tb->gpu, k, err);
#endif
    train_accum_free(&tb->accum);
    const Model *m = tb->cpu.m;
    return train_accum_init(&tb->accum, k, m ? m->trainable_floats : 0, err);
}

void tb_accum_reset(TrainBackend *tb) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) cuda_train_accum_reset(tb->gpu);
#endif
    train_accum_reset(&tb->accum);
}

const VramKernels *tb_vram_kernels(void) {
#ifdef STOKER_HAVE_CUDA
    static const VramKernels k = {cuda_colsum_scratch, cuda_dwconv_filter_scratch};
    return &k;
#else
    return NULL;
#endif
}

#if defined(STOKER_HAVE_CUDA) && defined(STOKER_HAVE_NCCL)
static int ddp_finish(void *d, StkErr *err) { return cuda_ddp_finish(d, err); }

/* NCCL's id from rank 0 through the group, then the communicator and the backward hook. */
static int gpu_join(TrainBackend *tb, TrainGroup *g, StkErr *err) {
    CudaDdpId id;
    if (g->rank == 0 && cuda_ddp_make_id(&id, err)) return -1;
    int rc = train_group_broadcast(g, &id, sizeof id, err);
    if (rc) return rc;
    CudaDdp *d = calloc(1, sizeof *d);
    if (!d) return stk_errf(err, "--gpus: out of host memory");
    tb->ddp = d;
    CudaTrain *t = tb->gpu;
    if (cuda_ddp_init(d, &t->net, g->rank, g->world, &id, CUDA_DDP_BUCKET_BYTES, err)) return -1;
    t->before_step = ddp_finish, t->before_step_ctx = d;
    return 0;
}
#endif

int tb_join_group(TrainBackend *tb, TrainGroup *g, StkErr *err) {
    if (!tb->cuda) {
        tb->group = g;
        return 0;
    }
#if defined(STOKER_HAVE_CUDA) && defined(STOKER_HAVE_NCCL)
    /* the all-reduce runs inside each backward, the fold after it: they would race */
    if (((CudaTrain *)tb->gpu)->accum_k > 1)
        return stk_errf(err, "--gpus %d with %d micro-batches per step on the CUDA backend: not yet; "
                        "give a --batch-size (per GPU) that fits the card", g->world,
                        ((CudaTrain *)tb->gpu)->accum_k);
    return gpu_join(tb, g, err);
#else
    (void)g;
    return stk_errf(err, "--gpus %d --device cuda: this stoker-train was built without NCCL "
                    "(configure found no nccl.h / libnccl: see README 'Building for your GPU')",
                    g->world);
#endif
}

void tb_free(TrainBackend *tb) {
    train_accum_free(&tb->accum);
    if (!tb->cuda) {
        cpu_net_free(&tb->cpu);
    } else {
#ifdef STOKER_HAVE_CUDA
#ifdef STOKER_HAVE_NCCL
        if (tb->ddp) cuda_ddp_free(tb->ddp);
        free(tb->ddp);
#endif
        if (tb->gpu) cuda_train_free(tb->gpu);
#endif
        free(tb->gpu), free(tb->params), free(tb->optim_state), free(tb->logits);
    }
    memset(tb, 0, sizeof *tb);
}

TrainSlotAlloc tb_slot_alloc(const TrainBackend *tb) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) return cuda_train_slot_alloc();
#endif
    (void)tb;
    return (TrainSlotAlloc){0};
}

int tb_upload(TrainBackend *tb, StkErr *err) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) {
        CudaTrain *t = tb->gpu;
        if (cuda_net_set_params(&t->net, tb->params, err) ||
            (!t->net.o.inference && cuda_net_set_optim(&t->net, tb->optim_state, err)))
            return stk_err_wrap(err, "to the GPU");
    }
#endif
    (void)tb, (void)err;
    return 0;
}

int tb_download(TrainBackend *tb, StkErr *err) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) {
        CudaTrain *t = tb->gpu;
        if (cuda_net_get_params(&t->net, tb->params, err) ||
            (!t->net.o.inference && cuda_net_get_optim(&t->net, tb->optim_state, err)))
            return stk_err_wrap(err, "from the GPU");
    }
#endif
    (void)tb, (void)err;
    return 0;
}

/* The parameter arena's floats and the optimizer state's (none for an evaluator's
 * network). */
static size_t param_floats(const TrainBackend *tb) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) return ((const CudaTrain *)tb->gpu)->net.m->total_floats;
#endif
    return tb->cpu.m->total_floats;
}

static size_t state_floats(const TrainBackend *tb) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) {
        const CudaNet *n = &((const CudaTrain *)tb->gpu)->net;
        return n->o.inference ? 0 : n->m->trainable_floats * (size_t)optim_state_per_element(&n->opt);
    }
#endif
    return tb->cpu.m->trainable_floats * (size_t)optim_state_per_element(&tb->cpu.opt);
}

int tb_snapshot(TrainBackend *tb, float *params, float *state, StkErr *err) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) {
        if (cuda_net_get_raw(&((CudaTrain *)tb->gpu)->net, params, state_floats(tb) ? state : NULL, err))
            return stk_err_wrap(err, "from the GPU");
        return 0;
    }
#endif
    (void)err;
    memcpy(params, tb->params, 4 * param_floats(tb));
    memcpy(state, tb->optim_state, 4 * state_floats(tb));
    return 0;
}

void tb_snapshot_layout(const TrainBackend *tb, const float *raw_params, const float *raw_state,
                        float *params, float *state) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) {
        cuda_net_raw_to_host(&((const CudaTrain *)tb->gpu)->net, raw_params, raw_state, params, state);
        return;
    }
#endif
    memcpy(params, raw_params, 4 * param_floats(tb));
    memcpy(state, raw_state, 4 * state_floats(tb));
}

int tb_before_next(TrainBackend *tb, StkErr *err) {
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) return cuda_train_slot_free(tb->gpu, tb->slot, err);
#endif
    (void)tb, (void)err;
    return 0;
}

/* The CPU net's input from a batch (a short batch's padding samples are zeros). */
static int cpu_normalize(TrainBackend *tb, const TrainBatch *b, int crop, StkErr *err) {
    Shape4 s = {(int)b->n, 3, crop, crop};
    if (cpu_input_normalize(b->pixels, cpu_net_input(&tb->cpu), s, CPU_IMAGENET_MEAN, CPU_IMAGENET_STD, err))
        return -1;
    size_t per = (size_t)3 * crop * crop;
    memset(cpu_net_input(&tb->cpu) + b->n * per, 0, (size_t)(tb->cpu.batch - (int)b->n) * per * 4);
    return 0;
}

static int check_crop(const TrainBackend *tb, int crop, StkErr *err) {
    const Model *m = tb->cuda ? NULL : tb->cpu.m;
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) m = ((CudaTrain *)tb->gpu)->net.m;
#endif
    if (crop != m->input.h || crop != m->input.w)
        return stk_errf(err, "a %dx%d batch for a network built for %dx%d inputs", crop, crop,
                        m->input.h, m->input.w);
    return 0;
}

int tb_train(TrainBackend *tb, const TrainBatch *b, int crop, double eps, uint64_t key,
             double lr, double wd, double norm_wd, double *loss, int *stepped, StkErr *err) {
    if (check_crop(tb, crop, err)) return -1;
    *stepped = 1;
    if (!tb->cuda) {
        const float *logits;
        if (cpu_normalize(tb, b, crop, err) || cpu_net_forward(&tb->cpu, 1, key, &logits, err) ||
            cpu_net_backward(&tb->cpu, b->labels, eps, key, loss, err))
            return -1;
        if (!(*stepped = train_accum_add(&tb->accum, tb->cpu.grads))) return 0;
        if (tb->group) { /* the group's mean gradient, the same bits on every rank */
            int rc = train_group_mean(tb->group, tb->cpu.grads, tb->cpu.m->trainable_floats, err);
            if (rc) return *stepped = 0, rc;
        }
        cpu_net_step(&tb->cpu, lr, wd, norm_wd);
        return 0;
    }
#ifdef STOKER_HAVE_CUDA
    CudaTrain *t = tb->gpu;
    int s = tb->slot;
    if (cuda_train_submit(t, s, b->pixels, b->labels, (int)b->n, err) ||
        cuda_train_step(t, s, eps, key, lr, wd, norm_wd, stepped, err))
        return -1;
    /* the previous step's loss, read while this one computes */
    *loss = NAN;
    if (tb->pending && cuda_train_loss_of(t, s ^ 1, loss, err)) return -1;
    tb->pending = 1;
    tb->slot = s ^ 1;
#endif
    return 0;
}

int tb_last_loss(TrainBackend *tb, double *loss, StkErr *err) {
    *loss = NAN;
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda && tb->pending) {
        tb->pending = 0;
        return cuda_train_loss_of(tb->gpu, tb->slot ^ 1, loss, err);
    }
#endif
    (void)err;
    return 0;
}

int tb_device_bytes(TrainBackend *tb, uint64_t *bytes, StkErr *err) {
    *bytes = 0;
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) return cuda_train_device_bytes(tb->gpu, bytes, err);
#endif
    (void)err;
    return 1;
}

int tb_device_free(int rank, uint64_t *free_bytes, StkErr *err) {
    *free_bytes = 0;
#ifdef STOKER_HAVE_CUDA
    int count;
    if (cuda_device_count(&count, err) || rank >= count) return 1;
    size_t f, total;
    CUDA_TRY(err, cudaSetDevice(rank));
    CUDA_TRY(err, cudaMemGetInfo(&f, &total));
    *free_bytes = f;
    return 0;
#else
    (void)rank, (void)err;
    return 1;
#endif
}

int tb_graphs(const TrainBackend *tb, uint64_t *replayed, uint64_t *eager, const char **note) {
    *replayed = *eager = 0, *note = NULL;
#ifdef STOKER_HAVE_CUDA
    if (tb->cuda) {
        const CudaTrain *t = tb->gpu;
        *replayed = t->graph_passes, *eager = t->eager_passes;
        *note = t->graph_off ? t->graph_note : NULL;
        return 0;
    }
#endif
    (void)tb;
    return 1;
}

int tb_eval(TrainBackend *tb, const TrainBatch *b, int crop, const float **logits, StkErr *err) {
    if (check_crop(tb, crop, err)) return -1;
    if (!tb->cuda) return cpu_normalize(tb, b, crop, err) || cpu_net_forward(&tb->cpu, 0, 0, logits, err) ? -1 : 0;
#ifdef STOKER_HAVE_CUDA
    CudaTrain *t = tb->gpu;
    int s = tb->eval_slot;
    if (cuda_train_submit(t, s, b->pixels, b->labels, (int)b->n, err) ||
        cuda_train_eval(t, s, tb->logits, err))
        return -1;
    tb->eval_slot = s ^ 1;
    *logits = tb->logits;
#endif
    return 0;
}
