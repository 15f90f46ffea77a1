/* test_cuda_train.c: the CUDA trainer's double-buffered input (cuda_train.h) fed by the
 * real receiving side (train_input, pinned slots) from a ZeroMQ socket: batches copied
 * on the copy stream while the previous step computes, exactly two device input
 * buffers, and the result equal to the CPU backend trained on the same batches (if a
 * slot were refilled before its copy finished, the GPU would train on the wrong pixels
 * and the losses would part). Skips where there is no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_input.h"
#include "cpu_net.h"
#include "cuda_device.h"
#include "test_cuda_skip.h"
#include "cuda_train.h"
#include "proto_zmq.h"
#include "stk_rng.h"
#include "test_nobn.h"

enum { B = 8, S = 16, C = 3, K = 10, NB = 6 };

/* Two trainers of one model starting from the same parameters: a and b (batch, options
 * each), for the tests that compare two ways of training it. */
static void init_twins(CudaTrain *a, int batch_a, const CudaNetOptions *oa, CudaTrain *b, int batch_b,
                       const CudaNetOptions *ob, const Model *m, const OptimConfig *opt,
                       const float *params) {
    StkErr err;
    cr_assert_eq(cuda_train_init(a, m, batch_a, opt, oa, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_train_init(b, m, batch_b, opt, ob, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_set_params(&a->net, params, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_set_params(&b->net, params, &err), 0, "%s", err.msg);
}

static void send_batches(void *push) {
    static uint8_t px[B * S * S * C];
    int32_t labels[B];
    uint64_t ids[B];
    ProtoOut out;
    StkErr err;
    cr_assert_eq(proto_out_init(&out, &err), 0, "%s", err.msg);
    for (uint64_t b = 0; b < NB; b++) {
        for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(stk_rng_at(b + 1, i) >> 56);
        for (int i = 0; i < B; i++) labels[i] = (int32_t)(stk_rng_at(100 + b, (uint64_t)i) % K), ids[i] = b * B + i;
        ProtoMsg m = {.type = PROTO_BATCH};
        m.u.batch = (ProtoBatch){.epoch = 0, .loader = 0, .seq = b, .index = b, .n = B, .h = S,
                                 .w = S, .c = C, .pixels = px, .labels = labels, .ids = ids};
        cr_assert_eq(proto_send(&out, push, &m, NULL, 0, &err), PROTO_OK, "%s", err.msg);
    }
    proto_out_free(&out);
}

Test(cuda_train, double_buffered_steps_equal_the_cpu_on_the_same_batches, .timeout = 120) {
    need_gpu();
    static Model m;
    static CpuNet cpu;
    static CudaTrain t;
    StkErr err;
    cr_assert_eq(model_build(&m, "smallcnn", C, S, S, K, &err), 0, "%s", err.msg);
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 1, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP32};
    cr_assert_eq(cuda_train_init(&t, &m, B, &opt, &o, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_train_input_buffers(&t), 2, "the card's rule: two input batches in VRAM");
    cr_assert_eq(cpu_net_init(&cpu, &m, B, &opt, &err), 0, "%s", err.msg);
    model_init_params(&m, cpu.params, 3);
    cr_assert_eq(cuda_net_set_params(&t.net, cpu.params, &err), 0, "%s", err.msg);

    void *ctx = zmq_ctx_new(), *push = zmq_socket(ctx, ZMQ_PUSH);
    TrainInput *in;
    TrainInputConfig c = {.endpoint = "inproc://data", .batches_per_epoch = NB, .batch = B,
                          .height = S, .width = S, .channels = C, .epochs = 1, .deterministic = 1,
                          .window = 8, .alloc = cuda_train_slot_alloc()};
    cr_assert_eq(train_input_open(&in, ctx, &c, &err), 0, "%s", err.msg);
    int hwm = 100;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    cr_assert_eq(zmq_connect(push, "inproc://data"), 0);
    send_batches(push);

    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    double closs = 0, gloss = 0;
    int done = 0;
    for (int k = 0; !done; k++) {
        int s = k % TRAIN_INPUT_SLOTS;
        TrainBatch b;
        cr_assert_eq(cuda_train_slot_free(&t, s, &err), 0, "%s", err.msg);
        cr_assert_eq(train_input_next(in, 0, 5000, &b, &done, &err), 0, "%s", err.msg);
        if (done) break;
        cr_assert_eq(cuda_train_submit(&t, s, b.pixels, b.labels, (int)b.n, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_train_step(&t, s, 0.1, (uint64_t)k, 0.05, 1e-4, 0, NULL, &err), 0, "%s", err.msg);
        const float *logits;
        cr_assert_eq(cpu_input_normalize(b.pixels, cpu_net_input(&cpu), (Shape4){B, C, S, S}, mean, std, &err), 0);
        cr_assert_eq(cpu_net_forward(&cpu, 1, (uint64_t)k, &logits, &err), 0, "%s", err.msg);
        cr_assert_eq(cpu_net_backward(&cpu, b.labels, 0.1, (uint64_t)k, &closs, &err), 0, "%s", err.msg);
        cpu_net_step(&cpu, 0.05, 1e-4, 0);
    }
    cr_assert_eq(cuda_train_loss(&t, &gloss, &err), 0, "%s", err.msg);
    cr_log_info("after %d double-buffered steps: loss gpu %.7f cpu %.7f", NB, gloss, closs);
    /* past the warm-up, the passes were graph replays: the CPU's result holds for them too */
    cr_expect_eq(t.graph_off, 0, "%s", t.graph_note);
    cr_expect_eq(t.eager_passes, CUDA_TRAIN_GRAPH_WARMUP);
    cr_expect_eq(t.graph_passes, NB - CUDA_TRAIN_GRAPH_WARMUP);
    cr_assert(fabs(gloss - closs) < 1e-4 * closs, "loss %.7f vs %.7f", gloss, closs);
    float *host = malloc(4 * m.total_floats);
    cr_assert_eq(cuda_net_get_params(&t.net, host, &err), 0, "%s", err.msg);
    double d = 0, scale = 1e-12;
    for (uint64_t i = 0; i < m.trainable_floats; i++)
        d = fmax(d, fabs((double)host[i] - cpu.params[i])), scale = fmax(scale, fabs(cpu.params[i]));
    cr_assert(d / scale < 1e-4, "weights after %d steps differ by %.3g", NB, d / scale);
    free(host);
    zmq_close(push);
    train_input_close(in);
    zmq_ctx_term(ctx);
    cuda_train_free(&t);
    cpu_net_free(&cpu);
}

/* Gradient accumulation on the device: 4 micro-batches of 2 then one SGD step give the
 * weights of one step on the batch of 8 (strict float32; the products' summation order
 * differs between batch sizes, so within 2e-5 relative, not bit for bit), and the step is
 * taken after the 4th pass only. */
Test(cuda_train, four_micro_batches_equal_one_batch, .timeout = 120) {
    need_gpu();
    static Model m;
    static CudaTrain big, small;
    StkErr err;
    enum { MICRO = 2, STEPS = B / MICRO };
    cr_assert_eq(test_nobn_build(&m, C, S, K), 0, "%s", m.err.msg); /* no batch norm */
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP32};
    float *p0 = malloc(4 * m.total_floats), *pb = malloc(4 * m.total_floats), *ps = malloc(4 * m.total_floats);
    model_init_params(&m, p0, 5);
    init_twins(&big, B, &o, &small, MICRO, &o, &m, &opt, p0);
    cr_assert_eq(cuda_train_set_accum(&small, STEPS, &err), 0, "%s", err.msg);
    static uint8_t px[B * S * S * C];
    int32_t labels[B];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(stk_rng_at(77, i) >> 56);
    for (int i = 0; i < B; i++) labels[i] = (int32_t)(stk_rng_at(78, (uint64_t)i) % K);
    int stepped;
    cr_assert_eq(cuda_train_submit(&big, 0, px, labels, B, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_train_step(&big, 0, 0.1, 1, 0.1, 1e-4, 0, &stepped, &err), 0, "%s", err.msg);
    cr_expect_eq(stepped, 1);
    size_t per = (size_t)S * S * C;
    for (int k = 0; k < STEPS; k++) {
        int s = k % 2;
        cr_assert_eq(cuda_train_submit(&small, s, px + k * MICRO * per, labels + k * MICRO, MICRO, &err), 0,
                     "%s", err.msg);
        cr_assert_eq(cuda_train_step(&small, s, 0.1, 1, 0.1, 1e-4, 0, &stepped, &err), 0, "%s", err.msg);
        cr_expect_eq(stepped, k == STEPS - 1, "micro-batch %d: stepped %d", k, stepped);
    }
    cr_expect_eq(small.net.steps, 1);
    cr_assert_eq(cuda_net_get_params(&big.net, pb, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_get_params(&small.net, ps, &err), 0, "%s", err.msg);
    double worst = 0, moved = 0;
    for (uint64_t i = 0; i < m.total_floats; i++) {
        double rel = fabs((double)pb[i] - ps[i]) / fmax(fabs((double)pb[i]), 1e-3);
        worst = rel > worst ? rel : worst;
        moved = fmax(moved, fabs((double)pb[i] - p0[i]));
    }
    cr_log_info("cuda accumulation: largest relative weight difference %.3g", worst);
    cr_expect_gt(moved, 1e-4, "the step changed nothing");
    cr_expect_leq(worst, 2e-5, "largest relative difference %.3g", worst);
    free(p0), free(pb), free(ps);
    cuda_train_free(&big), cuda_train_free(&small);
}

/* conv - batch norm - ReLU - avgpool - dropout 0.5 - linear, for c x S x S inputs */
static int build_dropout_bn(Model *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "dropbn");
    m->input = (Shape4){1, C, S, S};
    m->num_classes = K;
    m->bn_eps = 1e-5, m->bn_momentum = 0.1;
    int x = model_add_act(m, model_add_bn(m, "bn1", model_add_conv(m, "c1", 0, 8, 3, 1, 1, 1, 0)), CPU_ACT_RELU);
    model_add_linear(m, "fc", model_add_dropout(m, model_add_avgpool(m, x), 0.5), K);
    if (m->failed) return -1;
    model_layout(m);
    return 0;
}

/* What changes per step survives graph replay: 8 steps, each with its own dropout key
 * (the masks must be the CPU's for that key, bit for bit, or the weights part), batch
 * norm's running statistics and num_batches_tracked, on both slots' graphs; and
 * --cuda-graphs off (CudaNetOptions.eager) replays nothing and ends at the same weights. */
Test(cuda_train, graph_replays_take_each_steps_dropout_key, .timeout = 120) {
    need_gpu();
    enum { STEPS = 8 };
    static Model m;
    static CpuNet cpu;
    static CudaTrain g, e;
    StkErr err;
    cr_assert_eq(build_dropout_bn(&m), 0, "%s", m.err.msg);
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP32}, oe = {.precision = CUDA_PREC_FP32, .eager = 1};
    cr_assert_eq(cpu_net_init(&cpu, &m, B, &opt, &err), 0, "%s", err.msg);
    model_init_params(&m, cpu.params, 11);
    init_twins(&g, B, &o, &e, B, &oe, &m, &opt, cpu.params);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    uint8_t *px[2];
    int32_t *labels[2];
    for (int s = 0; s < 2; s++) { /* pinned, as train_input's slots are */
        cr_assert_eq(cudaMallocHost((void **)&px[s], B * S * S * C), cudaSuccess);
        cr_assert_eq(cudaMallocHost((void **)&labels[s], 4 * B), cudaSuccess);
    }
    double closs = 0, gloss = 0, eloss = 0;
    for (int k = 0; k < STEPS; k++) {
        int s = k % 2;
        cr_assert_eq(cuda_train_slot_free(&g, s, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_train_slot_free(&e, s, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < (size_t)B * S * S * C; i++) px[s][i] = (uint8_t)(stk_rng_at(500 + k, i) >> 56);
        for (int i = 0; i < B; i++) labels[s][i] = (int32_t)(stk_rng_at(600 + k, (uint64_t)i) % K);
        uint64_t key = 1000 + 7 * (uint64_t)k;
        cr_assert_eq(cuda_train_submit(&g, s, px[s], labels[s], B, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_train_step(&g, s, 0.1, key, 0.05, 1e-4, 0, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_train_submit(&e, s, px[s], labels[s], B, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_train_step(&e, s, 0.1, key, 0.05, 1e-4, 0, NULL, &err), 0, "%s", err.msg);
        const float *logits;
        cr_assert_eq(cpu_input_normalize(px[s], cpu_net_input(&cpu), (Shape4){B, C, S, S}, mean, std, &err), 0);
        cr_assert_eq(cpu_net_forward(&cpu, 1, key, &logits, &err), 0, "%s", err.msg);
        cr_assert_eq(cpu_net_backward(&cpu, labels[s], 0.1, key, &closs, &err), 0, "%s", err.msg);
        cpu_net_step(&cpu, 0.05, 1e-4, 0);
    }
    cr_assert_eq(cuda_train_loss(&g, &gloss, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_train_loss(&e, &eloss, &err), 0, "%s", err.msg);
    cr_log_info("dropout + bn, %d steps: loss graphs %.7f eager %.7f cpu %.7f", STEPS, gloss, eloss, closs);
    cr_assert_eq(g.graph_off, 0, "%s", g.graph_note);
    cr_assert_eq(g.graph_passes, STEPS - CUDA_TRAIN_GRAPH_WARMUP);
    cr_assert_eq(e.graph_passes, 0, "--cuda-graphs off replayed a graph");
    cr_assert(fabs(gloss - closs) < 1e-4 * closs, "loss %.7f vs cpu %.7f", gloss, closs);
    cr_assert_eq(g.net.num_batches_tracked[0], cpu.num_batches_tracked[0]);
    cr_assert_eq(cpu.num_batches_tracked[0], STEPS);
    float *hg = malloc(4 * m.total_floats), *he = malloc(4 * m.total_floats);
    cr_assert_eq(cuda_net_get_params(&g.net, hg, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_get_params(&e.net, he, &err), 0, "%s", err.msg);
    double dg = 0, de = 0, scale = 1e-12;
    for (uint64_t i = 0; i < m.total_floats; i++) { /* running mean and variance included */
        dg = fmax(dg, fabs((double)hg[i] - cpu.params[i]));
        de = fmax(de, fabs((double)hg[i] - he[i]));
        scale = fmax(scale, fabs(cpu.params[i]));
    }
    cr_expect(dg / scale < 1e-4, "graph-replayed weights differ from the CPU's by %.3g", dg / scale);
    cr_expect(de / scale < 1e-5, "graph-replayed and eager weights differ by %.3g", de / scale);
    free(hg), free(he);
    for (int s = 0; s < 2; s++) cudaFreeHost(px[s]), cudaFreeHost(labels[s]);
    cuda_train_free(&g), cuda_train_free(&e);
    cpu_net_free(&cpu);
}

/* fp16 under replay: the dynamic loss scale doubles every 2 good steps (1024 to 16384
 * over 8), and each replayed backward must scale the loss by the scale the device holds
 * then, which the optimizer step unscales by; a scale baked in at capture would leave
 * the gradients 2-16x off from step 4 on. Graphs against eager: the same scale and skips,
 * the weights within a tenth of how far the steps moved them. */
Test(cuda_train, fp16_replays_follow_the_loss_scale, .timeout = 120) {
    need_gpu();
    enum { STEPS = 8 };
    static Model m;
    static CudaTrain g, e;
    StkErr err;
    cr_assert_eq(build_dropout_bn(&m), 0, "%s", m.err.msg);
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    CudaNetOptions o = {.precision = CUDA_PREC_FP16, .loss_scale = 1024.0f, .scale_interval = 2};
    CudaNetOptions oe = o;
    oe.eager = 1;
    float *p0 = malloc(4 * m.total_floats), *hg = malloc(4 * m.total_floats), *he = malloc(4 * m.total_floats);
    model_init_params(&m, p0, 13);
    init_twins(&g, B, &o, &e, B, &oe, &m, &opt, p0);
    static uint8_t px[B * S * S * C];
    int32_t labels[B];
    for (int k = 0; k < STEPS; k++) {
        int s = k % 2;
        cr_assert_eq(cuda_train_slot_free(&g, s, &err), 0, "%s", err.msg);
        cr_assert_eq(cuda_train_slot_free(&e, s, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(stk_rng_at(700 + k, i) >> 56);
        for (int i = 0; i < B; i++) labels[i] = (int32_t)(stk_rng_at(800 + k, (uint64_t)i) % K);
        CudaTrain *both[2] = {&g, &e};
        for (int w = 0; w < 2; w++) {
            cr_assert_eq(cuda_train_submit(both[w], s, px, labels, B, &err), 0, "%s", err.msg);
            cr_assert_eq(cuda_train_step(both[w], s, 0, 2000 + (uint64_t)k, 0.05, 0, 0, NULL, &err), 0,
                         "%s", err.msg);
        }
    }
    float sg, se;
    uint64_t kg, ke;
    cr_assert_eq(cuda_net_loss_scale(&g.net, &sg, &kg, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_loss_scale(&e.net, &se, &ke, &err), 0, "%s", err.msg);
    cr_log_info("fp16, %d steps: scale %g (graphs) / %g (eager), skipped %llu / %llu", STEPS, sg, se,
                (unsigned long long)kg, (unsigned long long)ke);
    cr_assert_eq(g.graph_passes, STEPS - CUDA_TRAIN_GRAPH_WARMUP, "%s", g.graph_note);
    /* 16384 if no step overflowed; whatever it is, the scale moved during the replays and
     * the graphs' run saw the same scales and skips as the eager one */
    cr_assert_neq(se, 1024.0f, "the scale never moved: the test tests nothing");
    cr_assert_eq(sg, se);
    cr_assert_eq(kg, ke);
    cr_assert_eq(cuda_net_get_params(&g.net, hg, &err), 0, "%s", err.msg);
    cr_assert_eq(cuda_net_get_params(&e.net, he, &err), 0, "%s", err.msg);
    double d = 0, moved = 0, scale = 1e-12;
    for (uint64_t i = 0; i < m.trainable_floats; i++) {
        d = fmax(d, fabs((double)hg[i] - he[i]));
        moved = fmax(moved, fabs((double)he[i] - p0[i]));
        scale = fmax(scale, fabs((double)he[i]));
    }
    cr_log_info("fp16 graphs against eager: weights %.3g apart (relative), moved %.3g", d / scale, moved);
    cr_expect_gt(moved, 1e-4, "the steps moved nothing");
    cr_expect_lt(d, 0.1 * moved, "graph-replayed weights %.3g from eager's, moved %.3g", d, moved);
    free(p0), free(hg), free(he);
    cuda_train_free(&g), cuda_train_free(&e);
}
