/* test_transfer.c: freezing for fine-tuning (model_freeze.h) on the CPU backend: blocks
 * as torchvision's detection backbones count them, frozen tensors (weights, biases,
 * running statistics, num_batches_tracked) bit-identical after training steps while
 * the trainable part changes, and the arenas shrinking to what trains. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_net.h"
#include "model_freeze.h"

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
