/* test_cuda_net.c: the CUDA backend (cuda_net) against the CPU backend (cpu_net), the
 * reference that is itself checked against PyTorch: same model, same weights, same
 * input; logits, loss, every gradient, the running statistics and the parameters after
 * optimizer steps. Strict float32 on the GPU (no TF32) unless a test says bfloat16.
 * Tolerances: logits 1e-4 of their largest value; gradients 2e-3 of the largest gradient
 * of their layer (cuDNN's algorithms sum in other orders than oneDNN, and batch norm's
 * backward amplifies that), looser for deep nets below, with the reason; parameters
 * after a step from the same gradients 1e-6. Skips where there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_input.h"
#include "cpu_net.h"
#include "cuda_device.h"
#include "test_cuda_skip.h"
#include "cuda_input.h"
#include "cuda_net.h"
#include "model_freeze.h"
#include "stk_rng.h"

static void fill(float *x, size_t n, uint64_t key, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)stk_rng_unit(stk_rng_at(key, i));
}

/* max |a - b| / max |b| over n values */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, scale = 1e-12;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return d / scale;
}

/* sqrt(sum (a - b)^2 / sum b^2): the relative error of a whole tensor, the measure for
 * bfloat16 (one rounding is 2^-9 relative; max-based measures would judge single
 * elements). */
static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, s = 1e-30;
    for (size_t i = 0; i < n; i++) d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), s += (double)b[i] * b[i];
    return sqrt(d / s);
}

typedef struct Pair {
    Model m;
    CpuNet cpu;
    CudaNet gpu;
    int n;
    float *host;    /* total_floats: the GPU's tensors brought back */
    int frozen, trainable_blocks; /* frozen: model_freeze(m, trainable_blocks) first */
    int32_t *labels;
} Pair;

static void pair_init_opts(Pair *p, const char *arch, int c, int size, int k, int n, OptimConfig opt,
                           const CudaNetOptions *o) {
    StkErr err;
    cr_assert_eq(model_build(&p->m, arch, c, size, size, k, &err), 0, "%s", err.msg);
    if (p->frozen)
        cr_assert_eq(model_freeze(&p->m, p->trainable_blocks, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_init(&p->cpu, &p->m, n, &opt, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_init(&p->gpu, &p->m, n, &opt, o, &err), 0, "%s", err.msg);
    model_init_params(&p->m, p->cpu.params, 7);
    cr_assert_eq(cuda_net_set_params(&p->gpu, p->cpu.params, &err), 0, "%s", err.msg);
    p->n = n;
    p->host = malloc(4 * p->m.total_floats);
    p->labels = malloc(sizeof *p->labels * (size_t)n);
    for (int i = 0; i < n; i++) p->labels[i] = (int32_t)stk_rng_below(stk_rng_at(99, (uint64_t)i), (uint64_t)k);
}

static void pair_init_prec(Pair *p, const char *arch, int c, int size, int k, int n, OptimConfig opt,
                           CudaPrecision prec) {
    /* fp16 starts at scale 256, not GradScaler's 65536: resnet18's first weight gradients
     * at 65536 overflow half (measured: inf), and that step is skipped, as PyTorch's
     * would be; these checks compare steps that are taken (the scaler test skips) */
    CudaNetOptions o = {.precision = prec, .loss_scale = prec == CUDA_PREC_FP16 ? 256.0f : 0};
    pair_init_opts(p, arch, c, size, k, n, opt, &o);
}

/* The GPU's gradients as the CPU's would be: fp16 keeps them multiplied by the loss scale
 * until its step unscales them (a power of two: dividing is exact). */
static double grad_scale(Pair *p) {
    float scale;
    uint64_t skipped;
    StkErr err;
    int rc = cuda_net_loss_scale(&p->gpu, &scale, &skipped, &err);
    cr_assert_geq(rc, 0, "%s", err.msg);
    return rc == 0 ? scale : 1.0;
}

static void pair_init(Pair *p, const char *arch, int c, int size, int k, int n, OptimConfig opt) {
    pair_init_prec(p, arch, c, size, k, n, opt, CUDA_PREC_FP32);
}

/* Fine-tuning: the head and the last `blocks` blocks train; the rest is frozen (its batch
 * norms in eval mode, no gradients, backward stopping at the first trainable layer). */
static void pair_init_frozen(Pair *p, const char *arch, int size, int k, int n, OptimConfig opt,
                             int blocks, CudaPrecision prec) {
    p->frozen = 1, p->trainable_blocks = blocks;
    pair_init_prec(p, arch, 3, size, k, n, opt, prec);
}

static void pair_free(Pair *p) {
    cpu_net_free(&p->cpu);
    cuda_net_free(&p->gpu);
    free(p->host), free(p->labels);
}

/* Same NCHW float input into both. */
static void pair_input(Pair *p, uint64_t key) {
    StkErr err;
    Shape4 s = p->m.input;
    size_t count = (size_t)p->n * shape4_numel(s);
    fill(cpu_net_input(&p->cpu), count, key, -2, 2);
    cr_assert_eq(cuda_net_set_input_nchw(&p->gpu, cpu_net_input(&p->cpu), &err), 0, "%s", err.msg);
}

/* One training forward + backward on both; compares logits, loss, gradients and the
 * running statistics. */
static void pair_train_pass(Pair *p, double grad_tol) {
    StkErr err;
    const float *cl;
    double closs, gloss;
    int k = p->m.num_classes;
    cr_assert_eq(cpu_net_forward(&p->cpu, 1, 0, &cl, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_forward(&p->gpu, 1, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_backward(&p->cpu, p->labels, 0.1, 0, &closs, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_backward(&p->gpu, p->labels, 0.1, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_loss(&p->gpu, &gloss, &err), 0, "%s", err.msg);
    float *logits = malloc(4 * (size_t)p->n * k);
    cr_assert_eq(cuda_net_get_logits(&p->gpu, logits, &err), 0, "%s", err.msg);
    double dl = rel_diff(logits, cl, (size_t)p->n * k);
    cr_log_info("%s: logits %.3g, loss %.7f vs %.7f", p->m.arch, dl, gloss, closs);
    cr_assert(dl < 1e-4, "%s: logits differ by %.3g", p->m.arch, dl);
    cr_assert(fabs(gloss - closs) < 1e-5 * (1 + fabs(closs)), "%s: loss %.7f vs %.7f", p->m.arch, gloss, closs);
    free(logits);
    cr_assert_eq(cuda_net_get_grads(&p->gpu, p->host, &err), 0, "%s", err.msg);
    /* every tensor is logged before any assertion, so a failure shows the whole picture;
     * each is judged against the largest gradient of its layer: a batch norm's bias
     * before another batch norm has a true gradient of 0 and only rounding noise */
    double worst = 0;
    const char *worst_name = "";
    for (int li = 0; li < p->m.nlayers; li++) {
        const ModelLayer *l = &p->m.layer[li];
        double scale = 1e-12;
        for (int i = l->param0; i < l->param0 + l->nparams; i++)
            for (uint64_t j = 0; p->m.param[i].trainable && j < p->m.param[i].numel; j++)
                scale = fmax(scale, fabs(p->cpu.grads[p->m.param[i].offset + j]));
        for (int i = l->param0; i < l->param0 + l->nparams; i++) {
            const ModelParam *q = &p->m.param[i];
            if (!q->trainable) continue;
            double d = 0;
            for (uint64_t j = 0; j < q->numel; j++)
                d = fmax(d, fabs((double)p->host[q->offset + j] - p->cpu.grads[q->offset + j]));
            d /= scale;
            if (d > grad_tol) cr_log_warn("%s: grad %s differs by %.3g of its layer's largest", p->m.arch, q->name, d);
            if (d > worst) worst = d, worst_name = q->name;
        }
    }
    cr_log_info("%s: gradients: largest relative difference %.3g (%s); all gradients %.3g (L2)",
                p->m.arch, worst, worst_name, rel_l2(p->host, p->cpu.grads, p->m.trainable_floats));
    cr_assert(worst < grad_tol, "%s: grad %s differs by %.3g", p->m.arch, worst_name, worst);
    /* running statistics, judged per layer against the largest of them (a mean whose true
     * value is 0, after a bias-free 1x1 conv of normalised channels, is rounding noise) */
    cr_assert_eq(cuda_net_get_params(&p->gpu, p->host, &err), 0, "%s", err.msg);
    for (int li = 0; li < p->m.nlayers; li++) {
        const ModelLayer *l = &p->m.layer[li];
        double scale = 1e-12, d = 0;
        for (int i = l->param0; i < l->param0 + l->nparams; i++)
            for (uint64_t j = 0; !p->m.param[i].trainable && j < p->m.param[i].numel; j++) {
                uint64_t o = p->m.param[i].offset + j;
                scale = fmax(scale, fabs(p->cpu.params[o]));
                d = fmax(d, fabs((double)p->host[o] - p->cpu.params[o]));
            }
        cr_assert(d / scale < 1e-4, "%s: running statistics of %s differ by %.3g after the forward",
                  p->m.arch, l->name, d / scale);
    }
}

/* One optimizer step on both from the same gradients (the GPU's, copied into the CPU
 * net): the update itself is compared tightly, apart from how the gradients were made.
 * AdamW's first steps move every weight by about lr whatever the gradient's size, so
 * gradients equal only to rounding would give lr-sized differences where they are tiny. */
/* A deep ReLU net, fp32: of the ~10^6 activations of resnet18 at 64 px and batch 8, a few
 * lie within rounding (1e-7 relative) of 0, so a ReLU can flip between two summation
 * orders. Forward, a flip moves a value by that rounding; backward, it passes or stops a
 * whole gradient element, which moves the gradients of every layer below it by up to ~10%
 * of their largest (one tensor) and the whole by under 1% (L2), and none above it. So:
 * every tensor within 0.5 (below), all of them within 1e-2 (L2), the head, which no ReLU precedes
 * in backward, at 2e-3, and logits and loss as strictly as in every test (pair_train_pass).
 * Seen on the H200: a change of cuDNN algorithm moved one flip from layer3.1 (6.3%, 0.42%
 * L2) to layer2.1 (9.0%). A pass computed wrong is caught at 1e-5 by test_cuda_conv; here
 * a lost chunk or a mixed-up layout would be tens of percent everywhere.
 * resnet50 (16 bottlenecks, 3x resnet18's ReLUs) passes tensor_tol 0.5 and l2_tol 6e-2:
 * its worst tensor was 0.19-0.285 in four H200 runs with different algorithm choices, and
 * all gradients 1.25%, 1.4%, 1.35% and once 3.1% (2026-12-03) in L2, so the bound is twice
 * the largest seen; the head is held to the same 2e-3. */
static void pair_train_pass_deep_tol(Pair *p, double tensor_tol, double l2_tol) {
    StkErr err;
    pair_train_pass(p, tensor_tol);
    cr_assert_eq(cuda_net_get_grads(&p->gpu, p->host, &err), 0, "%s", err.msg);
    double l2 = rel_l2(p->host, p->cpu.grads, p->m.trainable_floats);
    cr_log_info("%s: all gradients %.3g from the CPU's (L2)", p->m.arch, l2);
    cr_assert(l2 < l2_tol, "%s: gradients %.3g from the CPU's (L2)", p->m.arch, l2);
    int head = -1;
    for (int li = 0; li < p->m.nlayers; li++)
        if (p->m.layer[li].kind == LAYER_LINEAR) head = li;
    cr_assert_geq(head, 0, "%s has no linear head", p->m.arch);
    const ModelLayer *l = &p->m.layer[head];
    for (int i = l->param0; i < l->param0 + l->nparams; i++) {
        const ModelParam *q = &p->m.param[i];
        double d = rel_diff(p->host + q->offset, p->cpu.grads + q->offset, q->numel);
        cr_log_info("%s: head gradient %s %.3g from the CPU's", p->m.arch, q->name, d);
        cr_assert(d < 2e-3, "%s: head gradient %s differs by %.3g", p->m.arch, q->name, d);
    }
}

/* resnet18's worst tensor has been 0.063-0.090 and, in the NCHW-chunks test on
 * 2026-12-03, 0.167 (layer4.1.conv1, another algorithm choice): one flip's reach into the
 * tensors below it is not bounded by 0.1, so the per-tensor bound is resnet50's, and the
 * L2 over all gradients (which a wrong pass would break everywhere) stays at 1e-2. */
static void pair_train_pass_deep(Pair *p) { pair_train_pass_deep_tol(p, 0.5, 1e-2); }

static void pair_step_and_compare(Pair *p, double lr, double wd, double norm_wd) {
    StkErr err;
    cr_assert_eq(cuda_net_get_grads(&p->gpu, p->cpu.grads, &err), 0, "%s", err.msg);
    float inv = (float)(1.0 / grad_scale(p));
    for (uint64_t i = 0; i < p->m.trainable_floats; i++) p->cpu.grads[i] *= inv;
    cr_assert_eq(cuda_net_set_params(&p->gpu, p->cpu.params, &err), 0, "%s", err.msg);
    cpu_net_step(&p->cpu, lr, wd, norm_wd);
    cr_assert_eq(cuda_net_step(&p->gpu, lr, wd, norm_wd, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_get_params(&p->gpu, p->host, &err), 0, "%s", err.msg);
    double d = rel_diff(p->host, p->cpu.params, p->m.trainable_floats);
    cr_log_info("%s: parameters after step %llu: %.3g", p->m.arch, (unsigned long long)p->cpu.steps, d);
    cr_assert(d < 1e-6, "%s: parameters differ by %.3g after step %llu", p->m.arch, d,
              (unsigned long long)p->cpu.steps);
}

Test(cuda_net, smallcnn_sgd_nesterov_matches_cpu_over_three_steps, .timeout = 120) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 1, 0, 0, 0};
    pair_init(&p, "smallcnn", 3, 16, 10, 8, opt);
    /* after steps the two backends' parameters differ by rounding, which can flip a ReLU
     * or a max-pool choice and move one gradient contribution (seen: 4.7% of a layer's
     * largest gradient at step 3, the whole gradient 0.7% in L2): later passes are held to
     * 5e-2 per tensor; the first, from identical weights, to 2e-3 */
    for (int step = 0; step < 3; step++) {
        pair_input(&p, 100 + (uint64_t)step);
        pair_train_pass(&p, step == 0 ? 2e-3 : 5e-2);
        pair_step_and_compare(&p, 0.05, 1e-4, 0);
    }
    pair_free(&p);
}

Test(cuda_net, smallcnn_adamw_matches_cpu, .timeout = 120) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_ADAMW, 0, 0, 0, 0.9, 0.999, 1e-8};
    pair_init(&p, "smallcnn", 1, 28, 10, 16, opt);
    for (int step = 0; step < 2; step++) {
        pair_input(&p, 200 + (uint64_t)step);
        pair_train_pass(&p, 2e-3);
        pair_step_and_compare(&p, 1e-3, 0.05, 0.05);
    }
    pair_free(&p);
}

Test(cuda_net, resnet18_matches_cpu, .timeout = 300) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init(&p, "resnet18", 3, 64, 10, 8, opt);
    pair_input(&p, 300);
    pair_train_pass_deep(&p);
    pair_step_and_compare(&p, 0.1, 1e-4, 1e-4);
    pair_free(&p);
}

/* float32 convolutions run in NCHW on copies (cuda_conv.h), forced wherever they fit a
 * 2 MiB workspace bound: the early layers split their batch into chunks, layer3 and 4
 * (weights over 1 MiB) stay NHWC. The same figures as the CPU backend, as in NHWC
 * (resnet18's downsampling blocks also exercise backward data accumulating into a
 * gradient already there, and the two layouts meet at layer3). */
Test(cuda_net, resnet18_nchw_convolutions_in_chunks_match_cpu, .timeout = 300) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP32, .workspace_limit = (size_t)2 << 20,
                        .conv_layout = CUDA_CONV_NCHW};
    pair_init_opts(&p, "resnet18", 3, 64, 10, 8, opt, &o);
    int nchw = 0, chunked = 0, convs = 0;
    for (int li = 0; li < p.m.nlayers; li++) {
        const CudaConv *cv = &p.gpu.conv[li];
        if (p.m.layer[li].kind != LAYER_CONV || p.gpu.gemm[li]) continue;
        convs++;
        nchw += cv->nchw;
        chunked += cv->nchw && cv->chunk < 8;
        cr_log_info("%s: %s, %d images per pass, algorithms %d/%d/%d", p.m.layer[li].name,
                    cv->nchw ? "NCHW" : "NHWC", cv->nchw ? cv->chunk : 8, (int)cv->fwd,
                    (int)cv->bwd_data, (int)cv->bwd_filter);
    }
    cr_log_info("resnet18: %d of %d cuDNN convolutions in NCHW, %d of them in chunks", nchw, convs, chunked);
    cr_assert(nchw > 0 && nchw < convs, "NCHW where the copies fit, NHWC elsewhere: %d of %d", nchw, convs);
    cr_assert_gt(chunked, 0, "a 2 MiB bound should split some layer's batch");
    /* held as any deep net (pair_train_pass_deep) */
    for (int step = 0; step < 2; step++) {
        pair_input(&p, 310 + (uint64_t)step);
        pair_train_pass_deep(&p);
        pair_step_and_compare(&p, 0.1, 1e-4, 1e-4);
    }
    pair_free(&p);
}

/* Eval mode (running statistics) from the trainer's real input path: uint8 NHWC
 * normalised on the GPU by cuda_input_normalize straight into the network's input, and by
 * cpu_input_normalize on the CPU. */
Test(cuda_net, eval_from_uint8_batches_matches_cpu, .timeout = 120) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init(&p, "resnet18", 3, 32, 5, 4, opt);
    pair_input(&p, 400);
    pair_train_pass(&p, 2e-3); /* running statistics move away from 0 and 1 */
    const int n = 4, h = 32, w = 32, c = 3;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    uint8_t px[4 * 32 * 32 * 3], *d_px;
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(stk_rng_at(5, i) >> 56);
    StkErr err;
    cr_assert_eq(cpu_input_normalize(px, cpu_net_input(&p.cpu), (Shape4){n, c, h, w}, mean, std, &err), 0, "%s", err.msg);
    cr_assert_eq(cudaMalloc((void **)&d_px, sizeof px), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d_px, px, sizeof px, cudaMemcpyHostToDevice), cudaSuccess);
    cr_assert_eq(cuda_input_normalize(d_px, cuda_net_input(&p.gpu), n, h, w, c, mean, std, CUDA_F32,
                                      CUDA_NHWC, p.gpu.stream, &err), 0, "%s", err.msg);
    const float *cl;
    cr_assert_eq(cpu_net_forward(&p.cpu, 0, 0, &cl, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_forward(&p.gpu, 0, 0, &err), 0, "%s", err.msg);
    float logits[4 * 5];
    cr_assert_eq(cuda_net_get_logits(&p.gpu, logits, &err), 0, "%s", err.msg);
    double d = rel_diff(logits, cl, 4 * 5);
    cr_assert(d < 1e-4, "eval logits differ by %.3g", d);
    cudaFree(d_px);
    pair_free(&p);
}

Test(cuda_net, refuses_what_it_lacks_and_names_out_of_memory, .timeout = 120) {
    need_gpu();
    static Model m;
    StkErr err;
    CudaNet net;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    /* ~100 TB of activations: cudaMalloc must fail and the message must say so */
    cr_assert_eq(cuda_net_init(&net, &m, 1 << 20, &opt, NULL, &err), -1);
    cr_assert(strstr(err.msg, "cudaMalloc") && strstr(err.msg, "plan needs"), "%s", err.msg);
    memset(&m, 0, sizeof m);
    snprintf(m.arch, sizeof m.arch, "drop");
    m.input = (Shape4){1, 4, 3, 3}; /* a linear layer on a spatial tensor: NHWC != NCHW */
    m.num_classes = 4;
    model_add_linear(&m, "fc", model_add_dropout(&m, 0, 0.5), 4);
    model_layout(&m);
    cr_assert_eq(cuda_net_init(&net, &m, 2, &opt, NULL, &err), -1);
    cr_assert(strstr(err.msg, "linear layer fc reads a 4x3x3"), "%s", err.msg);
}

/* bfloat16 (and IEEE half, its gradients unscaled) against the CPU's float32: logits
 * within 5% (relative L2; bf16 2.5% measured), the loss within 1%, the gradient's
 * direction (see below); a wrong layout or a missing term is off by order 1. */
static void half_tracks_cpu_step(CudaPrecision prec) {
    need_gpu();
    static Pair p;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init_prec(&p, "resnet18", 3, 64, 10, 8, opt, prec);
    pair_input(&p, 500);
    const float *cl;
    double closs, gloss;
    cr_assert_eq(cpu_net_forward(&p.cpu, 1, 0, &cl, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_forward(&p.gpu, 1, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_backward(&p.cpu, p.labels, 0.1, 0, &closs, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_backward(&p.gpu, p.labels, 0.1, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_loss(&p.gpu, &gloss, &err), 0, "%s", err.msg);
    float logits[8 * 10];
    cr_assert_eq(cuda_net_get_logits(&p.gpu, logits, &err), 0, "%s", err.msg);
    double dl = rel_l2(logits, cl, 80);
    cr_log_info("resnet18 %s: logits %.3g, loss %.5f vs %.5f", prec == CUDA_PREC_FP16 ? "fp16" : "bf16",
                dl, gloss, closs);
    cr_assert_eq(cuda_net_get_grads(&p.gpu, p.host, &err), 0, "%s", err.msg);
    float inv = (float)(1.0 / grad_scale(&p));
    for (uint64_t i = 0; i < p.m.trainable_floats; i++) p.host[i] *= inv;
    /* the gradient direction: at initialisation, with 8 random samples, early layers'
     * gradients are small sums of large terms of both signs, and bfloat16's rounding of
     * the incoming gradients is a large share of them (measured 38% L2 over all tensors);
     * what training needs is the direction, cos > 0.9, and the loss curve below */
    double all = rel_l2(p.host, p.cpu.grads, p.m.trainable_floats), dot = 0, na = 0, nb = 0;
    for (uint64_t i = 0; i < p.m.trainable_floats; i++)
        dot += (double)p.host[i] * p.cpu.grads[i], na += (double)p.host[i] * p.host[i],
            nb += (double)p.cpu.grads[i] * p.cpu.grads[i];
    double cosine = dot / sqrt(na * nb);
    cr_log_info("resnet18 bf16: gradients %.3g (L2), cosine %.4f", all, cosine);
    cr_assert(dl < 5e-2, "bf16 logits off by %.3g", dl);
    cr_assert(fabs(gloss - closs) < 1e-2 * closs, "bf16 loss %f vs %f", gloss, closs);
    cr_assert(cosine > 0.9, "bf16 gradient direction: cosine %.4f", cosine);
    pair_step_and_compare(&p, 0.1, 1e-4, 1e-4); /* the float32 master update is exact */
    pair_free(&p);
}

Test(cuda_net, resnet18_bf16_tracks_the_cpu_float32_step, .timeout = 300) { half_tracks_cpu_step(CUDA_PREC_BF16); }
Test(cuda_net, resnet18_fp16_tracks_the_cpu_float32_step, .timeout = 300) { half_tracks_cpu_step(CUDA_PREC_FP16); }

/* The other architectures, float32 strict against the CPU: squeeze-and-excitation,
 * Hardswish, SiLU, dropout and stochastic depth in training mode (the masks are the CPU's:
 * same keys, and both act where the order of elements agrees). Deeper nets amplify
 * summation-order differences: 5e-2 here; resnet50's 16 bottleneck blocks get the deep
 * ReLU net's check (pair_train_pass_deep_tol: test_cpu_models.c measures PyTorch's own
 * float32 step up to 15% from float64 there, and the CPU backend within 1.5x of that, so
 * two float32 backends may differ by twice it); smallcnn and resnet18 above hold 2e-3. */
static void arch_matches_cpu(const char *arch, double grad_tol) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init(&p, arch, 3, 64, 10, 8, opt);
    pair_input(&p, 600);
    if (grad_tol > 0.1) pair_train_pass_deep_tol(&p, grad_tol, 6e-2);
    else pair_train_pass(&p, grad_tol);
    pair_step_and_compare(&p, 0.05, 1e-4, 0);
    pair_free(&p);
}

Test(cuda_net, mobilenet_v3_small_matches_cpu, .timeout = 300) { arch_matches_cpu("mobilenet_v3_small", 5e-2); }
Test(cuda_net, mobilenet_v3_large_matches_cpu, .timeout = 300) { arch_matches_cpu("mobilenet_v3_large", 5e-2); }
Test(cuda_net, efficientnet_b0_matches_cpu, .timeout = 300) { arch_matches_cpu("efficientnet_b0", 5e-2); }
Test(cuda_net, resnet50_matches_cpu, .timeout = 300) { arch_matches_cpu("resnet50", 0.5); }

/* A recompute plan (CudaNetOptions.recompute, vram_nodes.h): batch norm + activation
 * outputs made again in backward from the norm's input and saved statistics, not kept.
 * The same arithmetic as the forward, so held to the same tolerances as the plan that
 * keeps them (resnet18 as any deep ReLU net, pair_train_pass_deep); and over two steps,
 * so the second's recompute sees the first step's weights and statistics. */
static void recompute_matches_cpu(const char *arch, double grad_tol) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP32, .recompute = 1};
    pair_init_opts(&p, arch, 3, 64, 10, 8, opt, &o);
    int redone = 0;
    for (int li = 0; li < p.m.nlayers; li++) redone += p.gpu.nodes.redo[li] >= 0;
    cr_assert_gt(redone, 0, "%s: nothing recomputed", arch);
    cr_log_info("%s: %d batch-norm outputs recomputed in backward", arch, redone);
    for (int step = 0; step < 2; step++) {
        pair_input(&p, (grad_tol > 1e-2 ? 600 : 300) + (uint64_t)step);
        if (grad_tol > 1e-2) pair_train_pass(&p, grad_tol);
        else pair_train_pass_deep(&p);
        pair_step_and_compare(&p, 0.05, 1e-4, 0);
    }
    pair_free(&p);
}

Test(cuda_net, resnet18_recompute_matches_cpu, .timeout = 300) { recompute_matches_cpu("resnet18", 2e-3); }
Test(cuda_net, mobilenet_v3_small_recompute_matches_cpu, .timeout = 300) { recompute_matches_cpu("mobilenet_v3_small", 5e-2); }
Test(cuda_net, efficientnet_b0_recompute_matches_cpu, .timeout = 300) { recompute_matches_cpu("efficientnet_b0", 5e-2); }

/* The loss curve: 12 SGD steps of resnet18 on one fixed batch (it memorises it), the
 * GPU in bfloat16 against the CPU in float32, each backend on its own weights: every
 * step's loss within 10% of the first loss of the CPU's (the curve is steep: one step
 * takes it from 2.7 to 0.8, and bf16 lands 0.07 away), and both fall below half the first. */
static void half_loss_curve(CudaPrecision prec) {
    need_gpu();
    static Pair p;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init_prec(&p, "resnet18", 3, 64, 10, 8, opt, prec);
    pair_input(&p, 700);
    double first = 0, closs = 0, gloss = 0;
    for (int step = 0; step < 12; step++) {
        const float *cl;
        cr_assert_eq(cpu_net_forward(&p.cpu, 1, 0, &cl, &err), 0, "%s", err.msg);
        cr_assert_eq(cpu_net_backward(&p.cpu, p.labels, 0, 0, &closs, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_net_forward(&p.gpu, 1, 0, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_net_backward(&p.gpu, p.labels, 0, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_net_loss(&p.gpu, &gloss, &err), 0, "%s", err.msg);
        cr_log_info("step %d: loss cpu %.4f gpu-bf16 %.4f", step, closs, gloss);
        if (step == 0) first = closs;
        cr_assert(fabs(gloss - closs) < 0.1 * first, "step %d: %.4f vs %.4f", step, gloss, closs);
        cpu_net_step(&p.cpu, 0.02, 0, 0);
        cr_assert_eq(cuda_net_step(&p.gpu, 0.02, 0, 0, &err), 0, "%s", err.msg);
    }
    cr_assert(closs < first / 2 && gloss < first / 2, "no learning: %.4f -> cpu %.4f, gpu %.4f", first, closs, gloss);
    pair_free(&p);
}

Test(cuda_net, resnet18_bf16_loss_curve_tracks_cpu, .timeout = 300) { half_loss_curve(CUDA_PREC_BF16); }
Test(cuda_net, resnet18_fp16_loss_curve_tracks_cpu, .timeout = 300) { half_loss_curve(CUDA_PREC_FP16); }

/* The loss scaler (cuda_scaler.h) as GradScaler behaves: a scale so large that the
 * gradients overflow IEEE half skips the step (weights and momentum untouched) and
 * halves the scale; a fitting scale steps and, after `interval` good steps, doubles. */
Test(cuda_net, fp16_overflow_skips_the_step_and_the_scale_adapts, .timeout = 120) {
    need_gpu();
    static Pair p;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP16, .loss_scale = 0x1p60f, .scale_interval = 2};
    pair_init_opts(&p, "smallcnn", 3, 16, 10, 8, opt, &o);
    pair_input(&p, 800);
    float scale;
    uint64_t skipped;
    cr_assert_eq(cuda_net_forward(&p.gpu, 1, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_backward(&p.gpu, p.labels, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_step(&p.gpu, 0.05, 0, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_loss_scale(&p.gpu, &scale, &skipped, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_get_params(&p.gpu, p.host, &err), 0, "%s", err.msg);
    cr_log_info("fp16 at 2^60: scale %g after, %llu skipped", scale, (unsigned long long)skipped);
    /* dlogits * 2^60 is far past 65504: the first step overflowed and was skipped */
    cr_assert_eq(skipped, 1);
    cr_assert_eq(scale, 0x1p59f);
    cr_assert_eq(rel_diff(p.host, p.cpu.params, p.m.trainable_floats), 0, "a skipped step moved weights");
    pair_free(&p);

    o.loss_scale = 1024.0f;
    pair_init_opts(&p, "smallcnn", 3, 16, 10, 8, opt, &o);
    pair_input(&p, 801);
    for (int step = 0; step < 2; step++) {
        cr_assert_eq(cuda_net_forward(&p.gpu, 1, 0, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_net_backward(&p.gpu, p.labels, 0, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_net_step(&p.gpu, 0.05, 0, 0, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(cuda_net_loss_scale(&p.gpu, &scale, &skipped, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_get_params(&p.gpu, p.host, &err), 0, "%s", err.msg);
    cr_expect_eq(skipped, 0);
    cr_expect_eq(scale, 2048.0f, "two good steps at interval 2 double it: %g", scale);
    cr_expect_gt(rel_diff(p.host, p.cpu.params, p.m.trainable_floats), 0, "the good steps moved nothing");
    pair_free(&p);
}

/* Fine-tuning on the GPU: resnet18 with the head and layer4 trainable, fp32 and bf16,
 * against the CPU backend's frozen path; frozen weights and running statistics stay
 * bit-identical through two steps on both. */
static void frozen_matches_cpu(CudaPrecision prec) {
    need_gpu();
    static Pair p;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init_frozen(&p, "resnet18", 64, 10, 8, opt, 1, prec);
    uint64_t want = 0; /* layer4 and fc train: their weights and biases, not the statistics */
    for (int i = 0; i < p.m.nparams; i++)
        if ((!strncmp(p.m.param[i].name, "layer4.", 7) || !strncmp(p.m.param[i].name, "fc.", 3)) &&
            !strstr(p.m.param[i].name, "running_"))
            want += p.m.param[i].numel;
    cr_assert(want > 0 && p.m.trainable_floats == want, "freezing left %llu trainable floats, not %llu",
              (unsigned long long)p.m.trainable_floats, (unsigned long long)want);
    float *before = malloc(4 * p.m.total_floats);
    memcpy(before, p.cpu.params, 4 * p.m.total_floats);
    for (int step = 0; step < 2; step++) {
        pair_input(&p, 800 + (uint64_t)step);
        if (prec == CUDA_PREC_FP32) pair_train_pass(&p, 2e-3);
        else {
            const float *cl;
            double closs;
            cr_assert_eq(cpu_net_forward(&p.cpu, 1, 0, &cl, &err), 0, "%s", err.msg);
            cr_assert_eq(cuda_net_forward(&p.gpu, 1, 0, &err), 0, "%s", err.msg);
            cr_assert_eq(cpu_net_backward(&p.cpu, p.labels, 0.1, 0, &closs, &err), 0, "%s", err.msg);
            cr_assert_eq(cuda_net_backward(&p.gpu, p.labels, 0.1, &err), 0, "%s", err.msg);
        }
        pair_step_and_compare(&p, 0.05, 1e-4, 0);
    }
    cr_assert_eq(cuda_net_get_params(&p.gpu, p.host, &err), 0, "%s", err.msg);
    for (int i = 0; i < p.m.nparams; i++) {
        const ModelParam *q = &p.m.param[i];
        int layer_frozen = 0;
        for (int li = 0; li < p.m.nlayers; li++)
            if (i >= p.m.layer[li].param0 && i < p.m.layer[li].param0 + p.m.layer[li].nparams)
                layer_frozen = model_layer_frozen(&p.m, li);
        if (!layer_frozen) continue;
        cr_assert(!memcmp(p.host + q->offset, before + q->offset, 4 * q->numel),
                  "frozen %s changed on the GPU", q->name);
    }
    free(before);
    pair_free(&p);
}

Test(cuda_net, resnet18_frozen_backbone_matches_cpu_fp32, .timeout = 300) { frozen_matches_cpu(CUDA_PREC_FP32); }
Test(cuda_net, resnet18_frozen_backbone_keeps_frozen_weights_bf16, .timeout = 300) { frozen_matches_cpu(CUDA_PREC_BF16); }

/* An evaluator's network (CudaNetOptions.inference): after a training pass moved the
 * running statistics, the same parameters in an inference net give the CPU's eval-mode
 * logits (fp32: 1e-4 of the largest, as every fp32 check here; bf16: 5% relative L2, as
 * half_tracks_cpu_step), its arenas hold no gradients or optimizer state; backward, steps
 * and gradient or optimizer copies are refused by name. (What it takes on the device is
 * measured by scripts/bench_eval_share.sh: suites running in parallel here would blur a
 * cudaMemGetInfo difference.) */
static void inference_matches_cpu_eval(const char *arch, int size, CudaPrecision prec) {
    need_gpu();
    static Pair p;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    pair_init(&p, arch, 3, size, 7, 4, opt);
    pair_input(&p, 500);
    pair_train_pass(&p, 5e-2);
    StkErr err;
    cr_assert_eq(cuda_net_get_params(&p.gpu, p.host, &err), 0, "%s", err.msg);
    static CudaNet inf;
    CudaNetOptions o = {.precision = prec, .inference = 1};
    cr_assert_eq(cuda_net_init(&inf, &p.m, 4, &opt, &o, &err), 0, "%s", err.msg);
    cr_log_info("%s %d inference: plan %.1f MiB (the training net's %.1f)", arch, (int)prec,
                inf.plan.total / 1048576.0, p.gpu.plan.total / 1048576.0);
    cr_expect_eq(inf.plan.grads + inf.plan.optim + inf.plan.saved, 0);
    cr_expect_lt(inf.plan.acts, p.gpu.plan.acts);
    cr_expect_lt(inf.plan.total, p.gpu.plan.total);
    cr_assert_eq(cuda_net_set_params(&inf, p.host, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_set_input_nchw(&inf, cpu_net_input(&p.cpu), &err), 0, "%s", err.msg);
    const float *cl;
    cr_assert_eq(cpu_net_forward(&p.cpu, 0, 0, &cl, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_forward(&inf, 0, 0, &err), 0, "%s", err.msg);
    float logits[4 * 7];
    cr_assert_eq(cuda_net_get_logits(&inf, logits, &err), 0, "%s", err.msg);
    double d = prec == CUDA_PREC_FP32 ? rel_diff(logits, cl, 4 * 7) : rel_l2(logits, cl, 4 * 7);
    cr_log_info("%s %d inference: eval logits differ from the CPU's by %.3g", arch, (int)prec, d);
    cr_expect(d < (prec == CUDA_PREC_FP32 ? 1e-4 : 5e-2), "%s: eval logits differ by %.3g", arch, d);
    cr_expect_eq(cuda_net_forward(&inf, 1, 0, &err), -1);
    cr_expect(strstr(err.msg, "inference only"), "%s", err.msg);
    cr_expect_eq(cuda_net_backward(&inf, p.labels, 0, &err), -1);
    cr_expect_eq(cuda_net_step(&inf, 0.1, 0, 0, &err), -1);
    cr_expect_eq(cuda_net_get_grads(&inf, p.host, &err), -1);
    cr_expect_eq(cuda_net_set_optim(&inf, p.host, &err), -1);
    cr_expect(strstr(err.msg, "inference only"), "%s", err.msg);
    cuda_net_free(&inf);
    pair_free(&p);
}

Test(cuda_net, resnet18_inference_net_matches_cpu_eval, .timeout = 300) {
    inference_matches_cpu_eval("resnet18", 32, CUDA_PREC_FP32);
}
Test(cuda_net, mobilenet_v3_small_inference_net_matches_cpu_eval, .timeout = 300) {
    inference_matches_cpu_eval("mobilenet_v3_small", 64, CUDA_PREC_FP32);
}
Test(cuda_net, efficientnet_b0_bf16_inference_net_tracks_cpu_eval, .timeout = 300) {
    inference_matches_cpu_eval("efficientnet_b0", 64, CUDA_PREC_BF16);
}
