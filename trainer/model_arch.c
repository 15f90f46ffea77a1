/* model_arch.c: architectures, one builder each, with torchvision's module names where
 * torchvision has the model. */
#include <stdio.h>
#include <string.h>

#include "model.h"

const char *const model_archs[] = {"smallcnn", "resnet18", "resnet34", NULL};


/* conv 3x3 (no bias) + batch norm + ReLU, named features.<i>, features.<i+1>. */
static int conv_bn_relu(Model *m, int in, int *idx, int out_c) {
    char conv[32], bn[32];
    snprintf(conv, sizeof conv, "features.%d", *idx);
    snprintf(bn, sizeof bn, "features.%d", *idx + 1);
    *idx += 3;
    int x = model_add_conv(m, conv, in, out_c, 3, 1, 1, 1, 0);
    return model_add_act(m, model_add_bn(m, bn, x), CPU_ACT_RELU);
}

/* The small fast CNN for 28x28 inputs (Fashion-MNIST's default): three stages of
 * conv-BN-ReLU pairs (32, 64, 128 channels) with max pooling between them, global average
 * pooling and a linear classifier. ~0.3 M parameters, ~23 M multiply-adds per 28x28 image. */
static int smallcnn(Model *m) {
    int idx = 0, x = 0;
    static const int widths[3] = {32, 64, 128};
    for (int stage = 0; stage < 3; stage++) {
        x = conv_bn_relu(m, x, &idx, widths[stage]);
        x = conv_bn_relu(m, x, &idx, widths[stage]);
        if (stage < 2) x = model_add_maxpool(m, x, 2, 2, 0), idx++;
    }
    x = model_add_avgpool(m, x);
    return model_add_linear(m, "classifier", x, m->num_classes);
}

/* conv + batch norm named prefix.conv<i> / prefix.bn<i>. */
static int conv_bn(Model *m, const char *prefix, int i, int in, int out_c, int k, int stride, int pad) {
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%s.conv%d", prefix, i);
    snprintf(bn, sizeof bn, "%s.bn%d", prefix, i);
    return model_add_bn(m, bn, model_add_conv(m, conv, in, out_c, k, stride, pad, 1, 0));
}

/* torchvision's BasicBlock: conv3x3-bn-relu-conv3x3-bn, plus the identity or, when the
 * shape changes, downsample.0 (conv1x1) + downsample.1 (bn); then relu. */
static int basic_block(Model *m, const char *prefix, int in, int out_c, int stride) {
    int x = model_add_act(m, conv_bn(m, prefix, 1, in, out_c, 3, stride, 1), CPU_ACT_RELU);
    x = conv_bn(m, prefix, 2, x, out_c, 3, 1, 1);
    int identity = in;
    if (stride != 1 || model_node_shape(m, in).c != out_c) {
        char conv[64], bn[64];
        snprintf(conv, sizeof conv, "%s.downsample.0", prefix);
        snprintf(bn, sizeof bn, "%s.downsample.1", prefix);
        identity = model_add_bn(m, bn, model_add_conv(m, conv, in, out_c, 1, stride, 0, 1, 0));
    }
    return model_add_act(m, model_add_add(m, x, identity), CPU_ACT_RELU);
}

/* torchvision's ResNet with BasicBlocks: blocks[i] blocks in layer i+1. */
static int resnet_basic(Model *m, const int blocks[4]) {
    int x = model_add_conv(m, "conv1", 0, 64, 7, 2, 3, 1, 0);
    x = model_add_maxpool(m, model_add_act(m, model_add_bn(m, "bn1", x), CPU_ACT_RELU), 3, 2, 1);
    static const int widths[4] = {64, 128, 256, 512};
    for (int layer = 0; layer < 4; layer++)
        for (int b = 0; b < blocks[layer]; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", layer + 1, b);
            x = basic_block(m, prefix, x, widths[layer], b == 0 && layer > 0 ? 2 : 1);
        }
    return model_add_linear(m, "fc", model_add_avgpool(m, x), m->num_classes);
}

int model_build(Model *m, const char *arch, int c, int h, int w, int num_classes, StkErr *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->input = (Shape4){1, c, h, w};
    m->num_classes = num_classes;
    if (c < 1 || h < 1 || w < 1 || num_classes < 1)
        return stk_errf(err, "model %s: input %dx%dx%d with %d classes", arch, c, h, w, num_classes);
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    if (!strcmp(arch, "smallcnn")) smallcnn(m);
    else if (!strcmp(arch, "resnet18")) resnet_basic(m, r18);
    else if (!strcmp(arch, "resnet34")) resnet_basic(m, r34);
    else {
        char known[256] = "";
        for (int i = 0; model_archs[i]; i++) strcat(known, i ? ", " : ""), strcat(known, model_archs[i]);
        return stk_errf(err, "unknown model '%s' (known: %s)", arch, known);
    }
    if (m->failed) return stk_errf(err, "%s", m->err.msg);
    model_layout(m);
    return 0;
}
