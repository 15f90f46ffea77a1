/* cuda_train.c: the double-buffered input around the CUDA net (see cuda_train.h). */
#include "cuda_train.h"

#include <string.h>

#include "cuda_accum.h"
#include "cuda_check.h"
#include "cuda_input.h"

static void *pinned_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    void *p = NULL;
    return cudaMallocHost(&p, bytes) == cudaSuccess ? p : NULL;
}

static void pinned_free(void *ctx, void *p) {
    (void)ctx;
    cudaFreeHost(p);
}

TrainSlotAlloc cuda_train_slot_alloc(void) { return (TrainSlotAlloc){pinned_alloc, pinned_free, NULL}; }

static int make_input(CudaTrain *t, StkErr *err) {
    size_t px = (size_t)t->net.batch * t->h * t->w * t->c;
    CUDA_TRY(err, cudaStreamCreateWithFlags(&t->copy, cudaStreamNonBlocking));
    t->last = -1;
    for (int s = 0; s < TRAIN_INPUT_SLOTS; s++) {
        CUDA_TRY(err, cudaEventCreateWithFlags(&t->stepped[s], cudaEventDisableTiming));
        CUDA_TRY(err, cudaMallocHost((void **)&t->host_loss[s], sizeof(float) * (size_t)t->net.batch));
        memset(t->host_loss[s], 0, sizeof(float) * (size_t)t->net.batch);
        CUDA_TRY(err, cudaMalloc((void **)&t->dev_pixels[s], px));
        CUDA_TRY(err, cudaMalloc((void **)&t->dev_labels[s], sizeof(int32_t) * (size_t)t->net.batch));
        CUDA_TRY(err, cudaMemset(t->dev_pixels[s], 0, px));
        CUDA_TRY(err, cudaMemset(t->dev_labels[s], 0, sizeof(int32_t) * (size_t)t->net.batch));
        CUDA_TRY(err, cudaEventCreateWithFlags(&t->copied[s], cudaEventDisableTiming));
        CUDA_TRY(err, cudaEventCreateWithFlags(&t->consumed[s], cudaEventDisableTiming));
        /* both "done" at the start, so the first waits return at once */
        CUDA_TRY(err, cudaEventRecord(t->copied[s], t->copy));
        CUDA_TRY(err, cudaEventRecord(t->consumed[s], t->copy));
    }
    return 0;
}

int cuda_train_init(CudaTrain *t, const Model *m, int batch, const OptimConfig *opt,
                    const CudaNetOptions *o, StkErr *err) {
    memset(t, 0, sizeof *t);
    t->c = m->input.c, t->h = m->input.h, t->w = m->input.w;
    if (t->c > 4) return stk_errf(err, "cuda_train_init: %d input channels (at most 4)", t->c);
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int i = 0; i < t->c; i++) t->mean[i] = mean[i % 3], t->std[i] = std[i % 3];
    size_t total;
    /* the context first (cudaFree(0) makes it), so what follows is ours alone */
    CUDA_TRY(err, cudaFree(0));
    CUDA_TRY(err, cudaMemGetInfo(&t->ctx_free, &total));
    if (cuda_net_init(&t->net, m, batch, opt, o, err)) return -1;
    if (make_input(t, err)) {
        cuda_train_free(t);
        return stk_err_wrap(err, "cuda_train_init");
    }
    return 0;
}

void cuda_train_free(CudaTrain *t) {
    if (t->copy) cudaStreamSynchronize(t->copy);
    if (t->net.stream) cudaStreamSynchronize(t->net.stream); /* no replay still reading */
    for (int s = 0; s < TRAIN_INPUT_SLOTS; s++) {
        cudaFree(t->dev_pixels[s]), cudaFree(t->dev_labels[s]);
        if (t->copied[s]) cudaEventDestroy(t->copied[s]);
        if (t->consumed[s]) cudaEventDestroy(t->consumed[s]);
        if (t->stepped[s]) cudaEventDestroy(t->stepped[s]);
        cudaFreeHost(t->host_loss[s]);
    }
    if (t->copy) cudaStreamDestroy(t->copy);
    for (int s = 0; s < TRAIN_INPUT_SLOTS; s++)
        if (t->graph[s]) cudaGraphExecDestroy(t->graph[s]);
    cudaFree(t->accum_sum);
    cuda_net_free(&t->net);
    memset(t, 0, sizeof *t);
}

int cuda_train_input_buffers(const CudaTrain *t) {
    int n = 0;
    for (int s = 0; s < TRAIN_INPUT_SLOTS; s++) n += t->dev_pixels[s] != NULL;
    return n;
}

static int check_slot(int s, StkErr *err) {
    if (s < 0 || s >= TRAIN_INPUT_SLOTS) return stk_errf(err, "cuda_train: slot %d (0 or 1)", s);
    return 0;
}

int cuda_train_slot_free(CudaTrain *t, int s, StkErr *err) {
    if (check_slot(s, err)) return -1;
    CUDA_TRY(err, cudaEventSynchronize(t->copied[s]));
    return 0;
}

int cuda_train_submit(CudaTrain *t, int s, const uint8_t *pixels, const int32_t *labels, int n,
                      StkErr *err) {
    if (check_slot(s, err)) return -1;
    if (n < 1 || n > t->net.batch) return stk_errf(err, "cuda_train_submit: %d samples (batch %d)", n, t->net.batch);
    size_t px = (size_t)n * t->h * t->w * t->c;
    /* the device buffer may still be read by the step queued two batches ago */
    CUDA_TRY(err, cudaStreamWaitEvent(t->copy, t->consumed[s], 0));
    CUDA_TRY(err, cudaMemcpyAsync(t->dev_pixels[s], pixels, px, cudaMemcpyHostToDevice, t->copy));
    CUDA_TRY(err, cudaMemcpyAsync(t->dev_labels[s], labels, sizeof *labels * (size_t)n,
                                  cudaMemcpyHostToDevice, t->copy));
    CUDA_TRY(err, cudaEventRecord(t->copied[s], t->copy));
    return 0;
}

/* Compute waits for slot s's copy, then normalises it into the net's input. */
static int take_input(CudaTrain *t, int s, StkErr *err) {
    CudaNet *net = &t->net;
    CUDA_TRY(err, cudaStreamWaitEvent(net->stream, t->copied[s], 0));
    if (cuda_input_normalize(t->dev_pixels[s], cuda_net_input(net), net->batch, t->h, t->w, t->c,
                             t->mean, t->std, net->dt, CUDA_NHWC, net->stream, err))
        return -1;
    return 0;
}

int cuda_train_set_accum(CudaTrain *t, int k, StkErr *err) {
    if (k < 1) return stk_errf(err, "cuda_train_set_accum: %d micro-batches per step", k);
    cudaFree(t->accum_sum);
    t->accum_sum = NULL, t->accum_k = k, t->accum_have = 0;
    if (k == 1) return 0;
    uint64_t n = t->net.m->trainable_floats;
    cudaError_t st = cudaMalloc((void **)&t->accum_sum, 4 * (n ? n : 1));
    if (st != cudaSuccess)
        return stk_errf(err, "cuda_train_set_accum: cudaMalloc of %.1f MB for the gradient sum: %s",
                        4.0 * n / 1e6, cudaGetErrorString(st));
    return 0;
}

void cuda_train_accum_reset(CudaTrain *t) { t->accum_have = 0; }

int cuda_train_device_bytes(const CudaTrain *t, uint64_t *bytes, StkErr *err) {
    size_t free_b, total;
    CUDA_TRY(err, cudaMemGetInfo(&free_b, &total));
    *bytes = t->ctx_free > free_b ? (uint64_t)(t->ctx_free - free_b) : 0;
    return 0;
}

/* Folds this micro-batch's gradients in; 1 when the K-th made the mean (take the step). */
static int fold(CudaTrain *t, StkErr *err) {
    if (t->accum_k <= 1) return 1;
    int first = t->accum_have == 0, last = t->accum_have + 1 == t->accum_k;
    if (cuda_accum_fold(t->net.m->trainable_floats, t->net.grads, t->accum_sum, 1.0f / (float)t->accum_k,
                        first, last, t->net.stream, err))
        return -1;
    t->accum_have = last ? 0 : t->accum_have + 1;
    return last;
}

/* What a graph holds: slot s normalised into the net's input, the training forward,
 * loss and backward, and the row losses' copy to host slot s. */
static int queue_pass(CudaTrain *t, int s, double eps, StkErr *err) {
    CudaNet *net = &t->net;
    if (cuda_input_normalize(t->dev_pixels[s], cuda_net_input(net), net->batch, t->h, t->w, t->c,
                             t->mean, t->std, net->dt, CUDA_NHWC, net->stream, err) ||
        cuda_net_forward_queue(net, 1, err) || cuda_net_backward_dev(net, t->dev_labels[s], eps, err))
        return -1;
    CUDA_TRY(err, cudaMemcpyAsync(t->host_loss[s], net->row_loss, sizeof(float) * (size_t)net->batch,
                                  cudaMemcpyDeviceToHost, net->stream));
    return 0;
}

static int graphs_allowed(const CudaTrain *t) {
    const CudaNet *n = &t->net;
    return !n->o.eager && !t->graph_off && !n->prof_ev && !n->grads_ready && !t->before_step;
}

/* Captures slot s's pass into t->graph[s] without running it. 0, or 1 when it could not
 * be captured (graph_off set, graph_note says why: the caller runs the pass eagerly). */
static int capture(CudaTrain *t, int s, double eps) {
    CudaNet *net = &t->net;
    cudaGraph_t g = NULL;
    StkErr qerr = {{0}};
    /* thread-local: the checkpoint writer's thread may call CUDA meanwhile */
    cudaError_t st = cudaStreamBeginCapture(net->stream, cudaStreamCaptureModeThreadLocal);
    int rc = st == cudaSuccess ? queue_pass(t, s, eps, &qerr) : -1;
    if (st == cudaSuccess) {
        cudaError_t end = cudaStreamEndCapture(net->stream, &g);
        if (rc == 0 && end != cudaSuccess) st = end;
        if (rc == 0 && st == cudaSuccess) st = cudaGraphInstantiate(&t->graph[s], g, 0);
    }
    if (g) cudaGraphDestroy(g);
    if (rc == 0 && st == cudaSuccess) {
        t->graph_eps[s] = eps;
        return 0;
    }
    (void)cudaGetLastError(); /* a failed capture's error is not sticky: clear it */
    t->graph[s] = NULL, t->graph_off = 1;
    snprintf(t->graph_note, sizeof t->graph_note, "CUDA graphs off, every step runs eagerly: "
             "capturing the training pass failed: %.110s",
             st != cudaSuccess ? cudaGetErrorString(st) : qerr.msg);
    return 1;
}

/* Queues slot s's pass: its graph's launch, once captured, else the kernels one by one. */
static int pass(CudaTrain *t, int s, double eps, StkErr *err) {
    /* a changed label smoothing, or profiling / data parallel switched on since: drop it */
    if (t->graph[s] && (t->graph_eps[s] != eps || !graphs_allowed(t))) {
        CUDA_TRY(err, cudaGraphExecDestroy(t->graph[s]));
        t->graph[s] = NULL;
    }
    if (!t->graph[s] && graphs_allowed(t) && t->eager_passes >= CUDA_TRAIN_GRAPH_WARMUP)
        capture(t, s, eps);
    if (t->graph[s]) {
        CUDA_TRY(err, cudaGraphLaunch(t->graph[s], t->net.stream));
        t->graph_passes++;
        return 0;
    }
    t->eager_passes++;
    return queue_pass(t, s, eps, err);
}

int cuda_train_step(CudaTrain *t, int s, double eps, uint64_t key, double lr, double wd,
                    double norm_wd, int *stepped, StkErr *err) {
    if (stepped) *stepped = 0;
    if (check_slot(s, err)) return -1;
    CudaNet *net = &t->net;
    CUDA_TRY(err, cudaStreamWaitEvent(net->stream, t->copied[s], 0));
    if (cuda_net_forward_begin(net, 1, key, err) || pass(t, s, eps, err))
        return stk_err_wrap(err, "cuda_train_step");
    /* the labels are read by the loss, inside the backward: consumed after the pass */
    CUDA_TRY(err, cudaEventRecord(t->consumed[s], net->stream));
    CUDA_TRY(err, cudaEventRecord(t->stepped[s], net->stream));
    t->last = s;
    int take = fold(t, err);
    if (take <= 0) return take;
    if (t->before_step && t->before_step(t->before_step_ctx, err)) return stk_err_wrap(err, "cuda_train_step");
    if (cuda_net_step(net, lr, wd, norm_wd, err)) return -1;
    if (stepped) *stepped = 1;
    return 0;
}

int cuda_train_eval(CudaTrain *t, int s, float *logits, StkErr *err) {
    if (check_slot(s, err) || take_input(t, s, err)) return -1;
    CUDA_TRY(err, cudaEventRecord(t->consumed[s], t->net.stream));
    if (cuda_net_forward(&t->net, 0, 0, err)) return stk_err_wrap(err, "cuda_train_eval");
    return cuda_net_get_logits(&t->net, logits, err);
}

int cuda_train_loss_of(CudaTrain *t, int s, double *loss, StkErr *err) {
    if (check_slot(s, err)) return -1;
    CUDA_TRY(err, cudaEventSynchronize(t->stepped[s]));
    double sum = 0;
    for (int i = 0; i < t->net.batch; i++) sum += t->host_loss[s][i];
    *loss = sum / t->net.batch;
    return 0;
}

int cuda_train_loss(CudaTrain *t, double *loss, StkErr *err) {
    if (t->last < 0) return stk_errf(err, "cuda_train_loss: no step yet");
    return cuda_train_loss_of(t, t->last, loss, err);
}
