/* bench_train_gpu.c: training steps of a model on the CUDA backend with synthetic data
 * already on the GPU (what scripts/bench_train.sh compares with PyTorch in the same
 * run). Prints one line: model, batch, precision, set-up seconds (cuDNN algorithm
 * search included), images/s over the timed steps, and device memory in use.
 * The labels are on the device too (data already on the GPU: nothing is copied per step).
 * usage: bench_train_gpu MODEL [--batch B] [--size S] [--steps N] [--warmup W]
 *        [--precision fp32|tf32|bf16|fp16] [--classes K] [--opt sgd|adamw] [--profile] [--eval]
 *        [--layout auto|nhwc|nchw] [--recompute] [--graphs] [--dw-grid BLOCKS]
 * --dw-grid: a cap on the depthwise forward and backward-data launches' blocks
 * (cuda_dwconv.h; backward filter keeps its parts, which size the scratch), to compare.
 * --eval: an evaluator's network instead (inference only, eval-mode forward passes).
 * --layout: float32 convolutions' layout (cuda_conv.h), measured per layer by default.
 * --recompute: batch norm + activation outputs recomputed in backward (vram_nodes.h).
 * --graphs: steps as stoker-train takes them (cuda_train_step: uint8 pixels in one of the
 *   two device input buffers, normalised in the step, the pass replayed from a captured
 *   CUDA graph after warm-up), not the bare net's forward/backward/step calls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_dwconv.h"
#include "cuda_net.h"
#include "cuda_train.h"
#include "stk_rng.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, const StkErr *err) {
    fprintf(stderr, "bench_train_gpu: %s: %s\n", what, err->msg);
    exit(1);
}

static const char *kind_name(const ModelLayer *l) {
    static const char *names[] = {"conv", "bn", "act", "maxpool", "avgpool", "linear", "add",
                                  "dropout", "scale", "drop_path"};
    if (l->kind == LAYER_CONV && l->conv.groups > 1) return "conv-grouped";
    return (unsigned)l->kind < sizeof names / sizeof *names ? names[l->kind] : "?";
}

/* Five profiled steps after the timed ones; per layer kind, forward and backward ms per
 * step (the events themselves cost a little: the total is above the timed step). */
static void report_profile(CudaNet *net, const Model *m, const int32_t *d_labels, StkErr *err) {
    const int steps = 5;
    if (cuda_net_profile_start(net, err)) die("profile", err);
    for (int s = 0; s < steps; s++)
        if (cuda_net_forward(net, 1, 0, err) || cuda_net_backward_dev(net, d_labels, 0, err) ||
            cuda_net_profile_read(net, err) || cuda_net_step(net, 0.01, 1e-4, 1e-4, err))
            die("profiled step", err);
    double f[16] = {0}, b[16] = {0}, total = 0;
    const char *names[16] = {0};
    int nk = 0;
    for (int li = 0; li < m->nlayers; li++) {
        const char *k = kind_name(&m->layer[li]);
        int i = 0;
        while (i < nk && strcmp(names[i], k)) i++;
        if (i == nk) names[nk++] = k;
        f[i] += net->prof_ms[li] / steps;
        b[i] += net->prof_ms[m->nlayers + li] / steps;
        total += (net->prof_ms[li] + net->prof_ms[m->nlayers + li]) / steps;
    }
    for (int i = 0; i < nk; i++)
        printf("profile %-13s forward %7.2f ms  backward %7.2f ms  (%4.1f%%)\n", names[i], f[i], b[i],
               100 * (f[i] + b[i]) / total);
    printf("profile total %.2f ms per step in layers\n", total);
    /* every other layer on its own line; a batch norm with its bandwidth (the training
     * forward reads x twice and writes y, the backward reads x and dy twice and writes dx),
     * against which the card's ~4.8 TB/s says how far a pass is from its bound */
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        if (l->kind == LAYER_CONV && !(net->dwconv && net->dwconv[li])) continue;
        double fms = net->prof_ms[li] / steps, bms = net->prof_ms[m->nlayers + li] / steps;
        Shape4 xs = model_node_shape(m, l->in);
        double bytes = (double)net->batch * shape4_numel(xs) * cuda_dtype_size(net->dt);
        printf("profile layer %3d %-13s %-28s %4dx%-3dx%-3d fwd %6.3f ms  bwd %6.3f ms", li, kind_name(l),
               l->name, xs.c, xs.h, xs.w, fms, bms);
        if (l->kind == LAYER_BN && fms > 0 && bms > 0)
            printf("  %5.0f / %5.0f GB/s", 3 * bytes / fms * 1e-6, 5 * bytes / bms * 1e-6);
        printf("\n");
    }
    /* each convolution's measured forward/backward ms and the algorithms cudnnFind chose:
     * where a precision's time goes, and whether a layout or math type lacks fast kernels */
    for (int li = 0; li < m->nlayers; li++) {
        const CudaConv *cv = &net->conv[li];
        if (m->layer[li].kind != LAYER_CONV || (net->dwconv && net->dwconv[li]) || !cv->conv) continue;
        printf("profile conv %3d %4dx%-3d %dx%d/%d  %4dx%-3d fwd %6.3f ms (algo %d)  "
               "bwd %6.3f ms  find fwd %.3f data %.3f (algo %d) filter %.3f (algo %d)  %s/%d "
               "(estimates NHWC %.3f NCHW %.3f ms)\n",
               li, cv->in.c, cv->in.h, cv->d.kh, cv->d.kw, cv->d.stride_h, cv->out.c, cv->out.h,
               net->prof_ms[li] / steps, (int)cv->fwd, net->prof_ms[m->nlayers + li] / steps, cv->ms_fwd,
               cv->ms_bwd_data, (int)cv->bwd_data, cv->ms_bwd_filter, (int)cv->bwd_filter,
               cv->nchw ? "NCHW" : "NHWC", cv->nchw ? cv->chunk : cv->in.n, cv->ms_nhwc, cv->ms_nchw);
    }
}

/* Waits for the queued work; a training step's loss, NAN for eval passes (no loss). */
static int wait_step(CudaNet *net, int eval, double *loss, StkErr *err) {
    if (!eval) return cuda_net_loss(net, loss, err);
    *loss = NAN;
    cudaError_t st = cudaStreamSynchronize(net->stream);
    return st == cudaSuccess ? 0 : stk_errf(err, "cudaStreamSynchronize: %s", cudaGetErrorString(st));
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train_gpu MODEL [--batch B] [--size S] [--steps N] [--warmup W] "
                "[--precision fp32|tf32|bf16|fp16] [--classes K] [--opt sgd|adamw] [--profile] [--eval] [--layout auto|nhwc|nchw] [--recompute] [--graphs] [--dw-grid BLOCKS]\n");
        return 2;
    }
    const char *arch = argv[1];
    int batch = 256, size = 224, steps = 30, warmup = 5, classes = 1000;
    const char *prec = "bf16", *optname = "sgd";
    int profile = 0, eval = 0;
    CudaConvLayout layout = CUDA_CONV_AUTO;
    int recompute = 0, graphs = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--graphs")) graphs = 1;
        else if (!strcmp(argv[i], "--recompute")) recompute = 1;
        else if (!strcmp(argv[i], "--eval")) eval = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--precision")) prec = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--size")) size = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--classes")) classes = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--opt")) optname = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--dw-grid")) { /* depthwise launches' block cap */
            int b = atoi(argv[++i]);
            if (b < 1) {
                fprintf(stderr, "bench_train_gpu: --dw-grid %s: want a block count >= 1\n", argv[i]);
                return 2;
            }
            cuda_dwconv_set_grid_blocks((unsigned)b);
        }
        else if (i + 1 < argc && !strcmp(argv[i], "--layout")) {
            const char *l = argv[++i];
            layout = !strcmp(l, "nhwc") ? CUDA_CONV_NHWC : !strcmp(l, "nchw") ? CUDA_CONV_NCHW : CUDA_CONV_AUTO;
            if (layout == CUDA_CONV_AUTO && strcmp(l, "auto")) {
                fprintf(stderr, "bench_train_gpu: --layout %s: auto, nhwc or nchw\n", l);
                return 2;
            }
        }
        else { fprintf(stderr, "bench_train_gpu: unknown argument %s\n", argv[i]); return 2; }
    }
    static Model m;
    static CudaTrain t;
    CudaNet *net = &t.net;
    StkErr err;
    if (classes < 2 || (strcmp(optname, "sgd") && strcmp(optname, "adamw"))) {
        fprintf(stderr, "bench_train_gpu: --classes >= 2, --opt sgd or adamw\n");
        return 2;
    }
    if (model_build(&m, arch, 3, size, size, classes, &err)) die("model", &err);
    OptimConfig opt = !strcmp(optname, "adamw") ? (OptimConfig){OPTIM_ADAMW, 0, 0, 0, 0.9, 0.999, 1e-8}
                                                : (OptimConfig){OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = !strcmp(prec, "fp32") ? CUDA_PREC_FP32
                                     : !strcmp(prec, "tf32") ? CUDA_PREC_TF32
                                     : !strcmp(prec, "fp16") ? CUDA_PREC_FP16 : CUDA_PREC_BF16,
                        .inference = eval, .conv_layout = layout, .recompute = recompute};
    if (strcmp(prec, "fp32") && strcmp(prec, "tf32") && strcmp(prec, "bf16") && strcmp(prec, "fp16")) {
        fprintf(stderr, "bench_train_gpu: --precision %s: fp32, tf32, bf16 or fp16\n", prec);
        return 2;
    }
    /* the bare context's footprint, so the report can give what stoker adds above it */
    size_t free0, total0;
    if (cudaFree(0) != cudaSuccess || cudaMemGetInfo(&free0, &total0) != cudaSuccess) {
        fprintf(stderr, "bench_train_gpu: no usable GPU\n");
        return 1;
    }
    if (graphs && (eval || profile)) {
        fprintf(stderr, "bench_train_gpu: --graphs times training steps, without --eval or --profile\n");
        return 2;
    }
    double t0 = now_s();
    if ((graphs ? cuda_train_init(&t, &m, batch, &opt, &o, &err) : cuda_net_init(net, &m, batch, &opt, &o, &err)))
        die("init", &err);
    float *host = malloc(4 * (m.total_floats > (uint64_t)batch * 3 * size * size
                                  ? m.total_floats : (uint64_t)batch * 3 * size * size));
    model_init_params(&m, host, 1);
    if (cuda_net_set_params(net, host, &err)) die("params", &err);
    for (size_t i = 0; i < (size_t)batch * 3 * size * size; i++)
        host[i] = (float)stk_rng_unit(stk_rng_at(3, i)) * 4 - 2;
    if (cuda_net_set_input_nchw(net, host, &err)) die("input", &err);
    uint8_t *px = (uint8_t *)host; /* --graphs: the same values as uint8 NHWC, in both slots */
    for (size_t i = 0; i < (size_t)batch * 3 * size * size; i++) px[i] = (uint8_t)(stk_rng_at(3, i) >> 56);
    int32_t *labels = malloc(sizeof *labels * (size_t)batch), *d_labels;
    for (int i = 0; i < batch; i++) labels[i] = (int32_t)(stk_rng_at(4, (uint64_t)i) % (uint64_t)classes);
    if (cudaMalloc((void **)&d_labels, sizeof *labels * (size_t)batch) != cudaSuccess ||
        cudaMemcpy(d_labels, labels, sizeof *labels * (size_t)batch, cudaMemcpyHostToDevice) != cudaSuccess)
        die("labels", &(StkErr){"cudaMalloc/cudaMemcpy of the labels failed"});
    for (int s = 0; graphs && s < TRAIN_INPUT_SLOTS; s++)
        if (cuda_train_submit(&t, s, px, labels, batch, &err)) die("input", &err);
    double setup = now_s() - t0, loss = 0, t1 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            if (wait_step(net, eval, &loss, &err)) die("sync", &err);
            t1 = now_s();
        }
        if (eval) {
            if (cuda_net_forward(net, 0, 0, &err)) die("eval forward", &err);
            continue;
        }
        if (graphs) {
            if (cuda_train_step(&t, s % TRAIN_INPUT_SLOTS, 0, (uint64_t)s, 0.01, 1e-4, 1e-4, NULL, &err))
                die("step", &err);
            continue;
        }
        if (cuda_net_forward(net, 1, (uint64_t)s, &err) ||
            cuda_net_backward_dev(net, d_labels, 0, &err) ||
            cuda_net_step(net, 0.01, 1e-4, 1e-4, &err))
            die("step", &err);
    }
    if (wait_step(net, eval, &loss, &err)) die("sync", &err);
    double dt = now_s() - t1;
    if (profile && !eval) report_profile(net, &m, d_labels, &err);
    size_t free_b, total_b;
    cudaError_t st = cudaMemGetInfo(&free_b, &total_b);
    if (st != cudaSuccess) {
        fprintf(stderr, "bench_train_gpu: cudaMemGetInfo: %s\n", cudaGetErrorString(st));
        return 1;
    }
    if (graphs && t.graph_off) fprintf(stderr, "bench_train_gpu: %s\n", t.graph_note);
    printf("stoker %s batch=%d size=%d precision=%s opt=%s classes=%d recompute=%d graphs=%llu setup_s=%.2f "
           "images_per_s=%.1f step_ms=%.2f loss=%.4f plan_mib=%.0f used_mib=%.0f above_context_mib=%.0f\n",
           arch, batch, size, prec, optname, classes, recompute, (unsigned long long)t.graph_passes, setup,
           steps * batch / dt, dt / steps * 1e3, loss, net->plan.total / 1048576.0,
           (total_b - free_b) / 1048576.0, ((double)free0 - (double)free_b) / 1048576.0);
    if (graphs) cuda_train_free(&t);
    else cuda_net_free(net);
    cudaFree(d_labels);
    free(host), free(labels);
    return 0;
}
