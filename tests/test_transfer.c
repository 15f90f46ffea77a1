/* test_transfer.c: fine-tuning pieces on the CPU backend. Freezing (model_freeze.h):
 * blocks as torchvision's detection backbones count them, frozen tensors (weights,
 * biases, running statistics, num_batches_tracked) bit-identical after training steps
 * while the trainable part changes, the arenas shrinking to what trains. Loading
 * (transfer.h): a head of another class count replaced, mismatches named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "cpu_net.h"
#include "model_freeze.h"
#include "transfer.h"

enum { N = 4, K = 3, S = 32 };

TestSuite(transfer, .timeout = 240);

Test(transfer, blocks_per_architecture) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, S, S, K, &err), 0, "%s", err.msg);
    cr_assert_eq(model_num_blocks(&m), 5); /* stem, layer1..layer4 */
    cr_assert_eq(model_layer_block(&m, 0), 0);
    for (int li = 0; li < m.nlayers; li++) {
        if (!strncmp(m.layer[li].name, "layer3.", 7)) cr_assert_eq(model_layer_block(&m, li), 3);
        if (!strcmp(m.layer[li].name, "fc")) cr_assert(model_layer_is_head(&m, li));
    }
    cr_assert_eq(model_freeze(&m, 6, &err), -1);
    cr_assert(strstr(err.msg, "resnet18 has 5 blocks"), "%s", err.msg);
    cr_assert_eq(model_build(&m, "smallcnn", 3, 8, 8, K, &err), 0, "%s", err.msg);
    cr_assert_eq(model_num_blocks(&m), 3);
}

/* MobileNetV3 and EfficientNet count torchvision's features.<i> stages as blocks (17 and
 * 9 of them), the classifier is the head: --trainable-layers 1 trains the classifier and
 * the last stage only, and every SE inside that stage with it. */
Test(transfer, mobilenet_and_efficientnet_blocks_are_their_feature_stages) {
    static Model m;
    StkErr err;
    const char *archs[2] = {"mobilenet_v3_large", "efficientnet_b0"};
    const int blocks[2] = {17, 9};
    for (int a = 0; a < 2; a++) {
        cr_assert_eq(model_build(&m, archs[a], 3, 64, 64, K, &err), 0, "%s", err.msg);
        cr_assert_eq(model_num_blocks(&m), blocks[a], "%s: %d blocks", archs[a], model_num_blocks(&m));
        cr_assert_eq(model_freeze(&m, 1, &err), 0, "%s", err.msg);
        char last[32];
        snprintf(last, sizeof last, "features.%d.", blocks[a] - 1);
        for (int li = 0; li < m.nlayers; li++) {
            const ModelLayer *l = &m.layer[li];
            if (!l->nparams) continue;
            int should_train = !strncmp(l->name, last, strlen(last)) || !strncmp(l->name, "classifier", 10);
            cr_assert_eq(!model_layer_frozen(&m, li), should_train, "%s: layer %s trains: %d", archs[a],
                         l->name, !model_layer_frozen(&m, li));
        }
    }
}

/* Builds resnet18 with `trainable` blocks (-1: all), trains 3 SGD steps (momentum,
 * weight decay) on a fixed batch and returns the parameters before and after. */
static void train_steps(Model *m, int trainable, float **before, CpuNet *net, int64_t **nbt0) {
    StkErr err;
    cr_assert_eq(model_build(m, "resnet18", 3, S, S, K, &err), 0, "%s", err.msg);
    if (trainable >= 0) cr_assert_eq(model_freeze(m, trainable, &err), 0, "%s", err.msg);
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    cr_assert_eq(cpu_net_init(net, m, N, &opt, &err), 0, "%s", err.msg);
    model_init_params(m, net->params, 3);
    *before = malloc(m->total_floats * 4);
    memcpy(*before, net->params, m->total_floats * 4);
    *nbt0 = calloc((size_t)m->nbn, sizeof **nbt0);
    memcpy(*nbt0, net->num_batches_tracked, (size_t)m->nbn * sizeof **nbt0);
    int32_t labels[N] = {0, 2, 1, 2};
    for (int step = 0; step < 3; step++) {
        float *in = cpu_net_input(net);
        for (int i = 0; i < N * 3 * S * S; i++) in[i] = (float)((i * 2654435761u + step) % 997) / 498.0f - 1;
        const float *logits;
        double loss;
        cr_assert_eq(cpu_net_forward(net, 1, 0, &logits, &err), 0, "%s", err.msg);
        cr_assert_eq(cpu_net_backward(net, labels, 0, 0, &loss, &err), 0, "%s", err.msg);
        cpu_net_step(net, 0.1, 1e-4, 1e-4);
    }
}

/* Every tensor of layers in frozen blocks is bit-identical; every trainable one moved. */
static void check(const Model *m, const CpuNet *net, const float *before, const int64_t *nbt0) {
    for (int li = 0, b = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        int frozen = model_layer_frozen(m, li);
        for (int k = 0; k < l->nparams; k++) {
            const ModelParam *p = &m->param[l->param0 + k];
            int same = !memcmp(before + p->offset, net->params + p->offset, p->numel * 4);
            if (frozen) cr_assert(same, "frozen %s changed", p->name);
            else cr_assert(!same, "trainable %s did not change", p->name);
        }
        if (l->kind == LAYER_BN) {
            if (frozen) cr_assert_eq(net->num_batches_tracked[b], nbt0[b], "%s", l->name);
            else cr_assert_eq(net->num_batches_tracked[b], nbt0[b] + 3, "%s", l->name);
            b++;
        }
    }
}

Test(transfer, freeze_backbone_trains_only_the_head) {
    static Model m;
    CpuNet net;
    float *before;
    int64_t *nbt0;
    train_steps(&m, 0, &before, &net, &nbt0);
    cr_assert_eq(m.trainable_floats, 512 * K + K);  /* fc alone */
    cr_assert_eq(net.plan.grads, 4 * (512 * K + K)); /* gradients and momentum: the head's */
    cr_assert_eq(net.plan.optim, net.plan.grads);
    check(&m, &net, before, nbt0);
    free(before), free(nbt0);
    cpu_net_free(&net);
}

Test(transfer, trainable_layers_two_trains_layer3_layer4_and_the_head) {
    static Model m, full;
    CpuNet net;
    float *before;
    int64_t *nbt0;
    train_steps(&m, 2, &before, &net, &nbt0);
    check(&m, &net, before, nbt0);
    for (int li = 0; li < m.nlayers; li++) {
        const char *name = m.layer[li].name;
        if (m.layer[li].nparams)
            cr_assert_eq(model_layer_frozen(&m, li),
                         strncmp(name, "layer3", 6) && strncmp(name, "layer4", 6) && strcmp(name, "fc"),
                         "%s", name);
    }
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    cr_assert_eq(model_build(&full, "resnet18", 3, S, S, K, &err), 0);
    CpuNetPlan all = cpu_net_plan(&full, N, &opt);
    cr_assert(net.plan.dacts < all.dacts && net.plan.grads < all.grads, "no memory saved");
    free(before), free(nbt0);
    cpu_net_free(&net);
}

/* A smallcnn checkpoint for c-channel input with k classes at path. */
static void save_smallcnn(const char *path, int c, int k, const char *arch_meta) {
    static Model m;
    CpuNet net;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(model_build(&m, "smallcnn", c, 8, 8, k, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_init(&net, &m, 1, &opt, &err), 0, "%s", err.msg);
    model_init_params(&m, net.params, 21);
    for (int b = 0; b < m.nbn; b++) net.num_batches_tracked[b] = 40 + b;
    StMeta meta[1] = {{"arch", arch_meta}};
    cr_assert_eq(ckpt_save(path, &m, net.params, net.num_batches_tracked, meta, 1, &err), 0, "%s", err.msg);
    cpu_net_free(&net);
}

Test(transfer, a_head_of_another_class_count_is_replaced_the_rest_loaded) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/stoker-transfer-%d.safetensors", getpid());
    save_smallcnn(path, 3, 5, "smallcnn");
    static Model m;
    CpuNet net;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(model_build(&m, "smallcnn", 3, 8, 8, K, &err), 0);
    cr_assert_eq(cpu_net_init(&net, &m, 1, &opt, &err), 0, "%s", err.msg);
    model_init_params(&m, net.params, 4);
    float *fresh = malloc(m.total_floats * 4);
    memcpy(fresh, net.params, m.total_floats * 4);
    TransferReport rep;
    cr_assert_eq(transfer_load(path, &m, net.params, net.num_batches_tracked, &rep, &err), 0, "%s", err.msg);
    cr_assert(rep.head_replaced && rep.file_classes == 5 && !strcmp(rep.head, "classifier"));
    cr_assert_eq(rep.loaded, m.nparams - 2 + m.nbn);
    StFile f; /* every non-head tensor is the file's, the head keeps its fresh values */
    cr_assert_eq(st_open(&f, path, &err), 0, "%s", err.msg);
    for (int i = 0; i < m.nparams; i++) {
        const ModelParam *p = &m.param[i];
        int head = !strncmp(p->name, "classifier.", 11);
        const void *want = head ? fresh + p->offset : st_find(&f, p->name)->data;
        cr_assert(!memcmp(net.params + p->offset, want, p->numel * 4), "%s", p->name);
    }
    cr_assert_eq(net.num_batches_tracked[m.nbn - 1], 40 + m.nbn - 1);
    st_close(&f);
    free(fresh);
    cpu_net_free(&net);
    unlink(path);
}

Test(transfer, the_first_mismatch_and_another_architecture_are_named) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/stoker-transfer-%d.safetensors", getpid());
    static Model m;
    StkErr err;
    TransferReport rep;
    float *params = calloc(1 << 20, 4);
    int64_t nbt[8];
    save_smallcnn(path, 1, K, "smallcnn"); /* 1 input channel: the first conv differs */
    cr_assert_eq(model_build(&m, "smallcnn", 3, 8, 8, K, &err), 0);
    cr_assert_eq(transfer_load(path, &m, params, nbt, &rep, &err), -1);
    cr_assert(strstr(err.msg, "features.0.weight is F32 [32, 1, 3, 3], the model wants F32 [32, 3, 3, 3]"),
              "%s", err.msg);
    save_smallcnn(path, 3, K, "resnet18");
    cr_assert_eq(transfer_load(path, &m, params, nbt, &rep, &err), -1);
    cr_assert(strstr(err.msg, "holds resnet18 weights; the model is smallcnn"), "%s", err.msg);
    free(params);
    unlink(path);
}
