/* test_cpu_graph.c: the graph's layers for squeeze-and-excitation and stochastic depth
 * inside a CpuNet (the ops themselves are checked in test_cpu_layers.c and
 * test_cpu_gradcheck.c): the whole net's gradients against central differences of its
 * loss, with a node read by three layers and both inputs of the channel scale, and
 * stochastic depth's masks per sample, key and layer; plus the init schemes.
 *
 * The net (batch 8, 3 x 6 x 6 input, 3 classes; no batch norm, so the loss is smooth):
 *   a = silu(conv3x3 c1)                 read by SE's pool, SE's scale and the last add
 *   s = SE(a): avgpool, fc1, silu, fc2, sigmoid, scale (a * s)
 *   b = conv1x1 c2 (s)                   read by both stochastic depths
 *   y = (drop_path d1 (b) + drop_path d2 (b)) + a, avgpool, linear fc
 * Tolerances as test_cpu_gradcheck.c: steps 1e-2, |fd - grad| <= 1e-4 + 1e-3 |fd|. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_loss.h"
#include "cpu_net.h"
#include "model.h"
#include "test_cpu_fixture.h"

enum { N = 8, K = 3, S = 6 };
static Model m;
static CpuNet net;
static int32_t labels[N] = {0, 1, 2, 0, 1, 2, 2, 1};
static int node_a, node_b, node_d1, node_d2, layer_d1, layer_d2;
static uint64_t key = 5;

static void build(void) {
    memset(&m, 0, sizeof m);
    snprintf(m.arch, sizeof m.arch, "graph");
    m.input = (Shape4){1, 3, S, S};
    m.num_classes = K;
    m.bn_eps = 1e-5, m.bn_momentum = 0.1;
    node_a = model_add_act(&m, model_add_conv(&m, "c1", 0, 4, 3, 1, 1, 1, 1), CPU_ACT_SILU);
    int s = model_add_se(&m, "se", node_a, 2, CPU_ACT_SILU, CPU_ACT_SIGMOID);
    node_b = model_add_conv(&m, "c2", s, 4, 1, 1, 0, 1, 1);
    node_d1 = model_add_drop_path(&m, "d1", node_b, 0.5);
    node_d2 = model_add_drop_path(&m, "d2", node_b, 0.5);
    int y = model_add_add(&m, model_add_add(&m, node_d1, node_d2), node_a);
    model_add_linear(&m, "fc", model_add_avgpool(&m, y), K);
    cr_assert(!m.failed, "%s", m.err.msg);
    layer_d1 = node_d1 - 1, layer_d2 = node_d2 - 1;
    model_layout(&m);
}

static void setup(void) {
    build();
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    cr_assert_eq(cpu_net_init(&net, &m, N, &opt, &err), 0, "%s", err.msg);
    fx_fill(net.params, m.total_floats, 1, -0.6f, 0.6f);
    fx_fill(cpu_net_input(&net), (size_t)N * 3 * S * S, 2, -2, 2);
}

static void teardown(void) { cpu_net_free(&net); }

TestSuite(cpu_graph, .init = setup, .fini = teardown, .timeout = 60);

static const float *node(int i) { return net.acts + net.act_off[i]; }
static size_t per_sample(int i) { return shape4_numel(model_node_shape(&m, i)); }

static double loss_of(void *ctx) {
    (void)ctx;
    const float *logits;
    double loss;
    StkErr err;
    cr_assert_eq(cpu_net_forward(&net, 1, key, &logits, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_ce_loss(N, K, logits, labels, 0.1, &loss, NULL, &err), 0, "%s", err.msg);
    return loss;
}

/* Which samples drop_path node d kept in the last forward (against its input node_b). */
static unsigned kept(int d) {
    unsigned mask = 0;
    for (int n = 0; n < N; n++) mask |= (unsigned)(node(d)[n * per_sample(d)] != 0.0f) << n;
    return mask;
}

Test(cpu_graph, gradients_match_central_differences_through_se_and_stochastic_depth) {
    loss_of(NULL);
    unsigned k1 = kept(node_d1), k2 = kept(node_d2);
    /* the key was chosen so the check sees each case: both, one and neither path kept */
    cr_assert(k1 & k2 && k1 & ~k2 && ~k1 & k2 & 0xffu && ~(k1 | k2) & 0xffu, "masks %02x %02x", k1, k2);
    double loss;
    StkErr err;
    cr_assert_eq(cpu_net_backward(&net, labels, 0.1, key, &loss, &err), 0, "%s", err.msg);
    for (int i = 0; i < m.nparams; i++) {
        const ModelParam *p = &m.param[i];
        fx_gradcheck(p->name, loss_of, NULL, net.params + p->offset, p->numel,
                     net.grads + p->offset, 1e-2, 1e-4, 1e-3, 12);
    }
}

Test(cpu_graph, stochastic_depth_drops_whole_samples_and_scales_the_rest) {
    loss_of(NULL);
    size_t per = per_sample(node_b);
    for (int n = 0; n < N; n++) {
        const float *b = node(node_b) + n * per, *d = node(node_d1) + n * per;
        int keep = d[0] != 0.0f;
        for (size_t i = 0; i < per; i++)
            cr_assert_eq(d[i], keep ? b[i] * 2.0f : 0.0f, "sample %d element %zu", n, i);
    }
}

Test(cpu_graph, stochastic_depth_is_the_identity_in_eval) {
    const float *logits;
    StkErr err;
    cr_assert_eq(cpu_net_forward(&net, 0, key, &logits, &err), 0, "%s", err.msg);
    size_t n = N * per_sample(node_b);
    cr_assert(!memcmp(node(node_d1), node(node_b), n * 4));
    cr_assert(!memcmp(node(node_d2), node(node_b), n * 4));
}

Test(cpu_graph, stochastic_depth_masks_depend_on_step_key_and_layer_only) {
    loss_of(NULL);
    unsigned k1 = kept(node_d1), k2 = kept(node_d2);
    cr_assert_neq(k1, k2, "two layers drew the same mask from one key");
    loss_of(NULL);
    cr_assert_eq(kept(node_d1), k1, "same key, different mask");
    int differs = 0;
    for (key = 6; key < 10; key++) loss_of(NULL), differs += kept(node_d1) != k1;
    key = 5;
    cr_assert(differs > 0, "four other keys all gave the same mask");
}

Test(cpu_graph, stochastic_depth_gradient_is_zero_for_dropped_samples) {
    double loss;
    StkErr err;
    loss_of(NULL);
    unsigned k1 = kept(node_d1), k2 = kept(node_d2);
    cr_assert_eq(cpu_net_backward(&net, labels, 0.1, key, &loss, &err), 0, "%s", err.msg);
    /* d(loss)/d b = 2 (kept1 + kept2) d(loss)/d y, and d y is the same for d1 and d2 */
    size_t per = per_sample(node_b);
    /* dacts start at the first node that needs a gradient (dact_base) */
    const float *db = net.dacts + net.act_off[node_b] - net.dact_base;
    const float *dy = net.dacts + net.act_off[node_d1] - net.dact_base;
    for (int n = 0; n < N; n++) {
        int kept_paths = (int)((k1 >> n) & 1) + (int)((k2 >> n) & 1);
        for (size_t i = 0; i < per; i++)
            cr_assert(fabsf(db[n * per + i] - 2.0f * kept_paths * dy[n * per + i]) <= 1e-6f,
                      "sample %d: %g vs %d paths x 2 x %g", n, db[n * per + i], kept_paths,
                      dy[n * per + i]);
    }
}

/* Mean and standard deviation of a parameter after model_init_params. */
static void moments(const float *x, uint64_t n, double *mean, double *sd, double *maxabs) {
    double s = 0, s2 = 0;
    *maxabs = 0;
    for (uint64_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i], *maxabs = fmax(*maxabs, fabs(x[i]));
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
}

static const ModelParam *param(const Model *mm, const char *name) {
    for (int i = 0; i < mm->nparams; i++)
        if (!strcmp(mm->param[i].name, name)) return &mm->param[i];
    cr_assert_fail("no parameter %s", name);
    return NULL;
}

/* Each family's torchvision loop: conv kaiming-normal fan_out; MobileNet's linear N(0, 0.01)
 * and EfficientNet's uniform(+-1/sqrt(out_features)), their biases (SE's included) 0;
 * batch norms with the family's eps and momentum. */
Test(cpu_graph, init_schemes_and_batch_norm_settings_follow_torchvision) {
    static Model mm;
    StkErr err;
    const char *archs[2] = {"mobilenet_v3_large", "efficientnet_b0"};
    for (int a = 0; a < 2; a++) {
        cr_assert_eq(model_build(&mm, archs[a], 3, 32, 32, 1000, &err), 0, "%s", err.msg);
        float *w = calloc(mm.total_floats, 4);
        model_init_params(&mm, w, 3);
        double mean, sd, mx;
        const ModelParam *conv = param(&mm, a ? "features.8.0.weight" : "features.16.0.weight");
        moments(w + conv->offset, conv->numel, &mean, &sd, &mx);
        cr_assert(fabs(sd / sqrt(2.0 / conv->shape[0]) - 1) < 0.02, "%s conv sd %g", archs[a], sd);
        const ModelParam *fc = param(&mm, a ? "classifier.1.weight" : "classifier.3.weight");
        moments(w + fc->offset, fc->numel, &mean, &sd, &mx);
        if (a) cr_assert(mx <= 1 / sqrt(1000.0) && mx > 0.99 / sqrt(1000.0), "%s max %g", archs[a], mx);
        else cr_assert(fabs(sd / 0.01 - 1) < 0.02, "%s linear sd %g", archs[a], sd);
        const char *bias[2] = {a ? "classifier.1.bias" : "classifier.3.bias",
                               a ? "features.1.0.block.1.fc1.bias" : "features.4.block.2.fc1.bias"};
        for (int b = 0; b < 2; b++) {
            moments(w + param(&mm, bias[b])->offset, param(&mm, bias[b])->numel, &mean, &sd, &mx);
            cr_assert_eq(mx, 0.0, "%s: %s not zero", archs[a], bias[b]);
        }
        for (int li = 0; li < mm.nlayers; li++)
            if (mm.layer[li].kind == LAYER_BN)
                cr_assert(mm.layer[li].eps == (a ? 1e-5 : 1e-3) &&
                          mm.layer[li].momentum == (a ? 0.1 : 0.01), "%s %s", archs[a], mm.layer[li].name);
        free(w);
    }
}
