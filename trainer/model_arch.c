/* model_arch.c: the list of architectures, model_build's dispatch and smallcnn (stoker's
 * own); torchvision's families are in model_resnet.c, model_mobilenet.c and
 * model_efficientnet.c with its module names. */
#include <stdio.h>
#include <string.h>

#include "model.h"

const char *const model_archs[] = {"smallcnn",           "smallresnet",        "resnet18",
                                   "resnet34",           "resnet50",           "mobilenet_v3_small",
                                   "mobilenet_v3_large", "efficientnet_b0",    NULL};


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

/* conv 3x3 (no bias) + batch norm + ReLU named prefix.0, prefix.1 (prefix.2 the ReLU). */
static int cbr(Model *m, const char *prefix, int in, int out_c) {
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%.60s.0", prefix); /* names fit ModelLayer's 64 bytes */
    snprintf(bn, sizeof bn, "%.60s.1", prefix);
    return model_add_act(m, model_add_bn(m, bn, model_add_conv(m, conv, in, out_c, 3, 1, 1, 1, 0)), CPU_ACT_RELU);
}

/* x + b(a(x)), a and b conv-BN-ReLU at x's width (prefix.a, prefix.b). */
static int residual(Model *m, const char *prefix, int x, int c) {
    char a[64], b[64];
    snprintf(a, sizeof a, "%.58s.a", prefix);
    snprintf(b, sizeof b, "%.58s.b", prefix);
    return model_add_add(m, x, cbr(m, b, cbr(m, a, x, c), c));
}

/* The small ResNet for 28-32 px inputs (the layout of the DAWNBench ResNet-9; ~6.57 M
 * parameters at 10 classes): prep conv 64, then conv 128 + max pool + a residual pair,
 * conv 256 + max pool, conv 512 + max pool + a residual pair, global average pooling and a
 * linear classifier. Blocks features.0-5 (model_freeze.h), head "classifier". */
static int smallresnet(Model *m) {
    int x = cbr(m, "features.0", 0, 64);
    x = model_add_maxpool(m, cbr(m, "features.1", x, 128), 2, 2, 0);
    x = residual(m, "features.2", x, 128);
    x = model_add_maxpool(m, cbr(m, "features.3", x, 256), 2, 2, 0);
    x = model_add_maxpool(m, cbr(m, "features.4", x, 512), 2, 2, 0);
    x = residual(m, "features.5", x, 512);
    return model_add_linear(m, "classifier", model_add_avgpool(m, x), m->num_classes);
}

void model_default_sizes(const char *arch, int *resize, int *crop) {
    int small = !strcmp(arch, "smallcnn") || !strcmp(arch, "smallresnet");
    *resize = small ? 28 : 256;
    *crop = small ? 28 : 224;
}

int model_build(Model *m, const char *arch, int c, int h, int w, int num_classes, StkErr *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->input = (Shape4){1, c, h, w};
    m->num_classes = num_classes;
    m->init = MODEL_INIT_RESNET;
    m->bn_eps = 1e-5, m->bn_momentum = 0.1; /* torch.nn.BatchNorm2d's defaults */
    if (c < 1 || h < 1 || w < 1 || num_classes < 1)
        return stk_errf(err, "model %s: input %dx%dx%d with %d classes", arch, c, h, w, num_classes);
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    if (!strcmp(arch, "smallcnn")) smallcnn(m);
    else if (!strcmp(arch, "smallresnet")) smallresnet(m);
    else if (!strcmp(arch, "resnet18")) model_resnet_basic(m, r18);
    else if (!strcmp(arch, "resnet34")) model_resnet_basic(m, r34);
    else if (!strcmp(arch, "resnet50")) model_resnet_bottleneck(m, r34);
    else if (!strcmp(arch, "mobilenet_v3_small")) model_mobilenet_v3(m, 0);
    else if (!strcmp(arch, "mobilenet_v3_large")) model_mobilenet_v3(m, 1);
    else if (!strcmp(arch, "efficientnet_b0")) model_efficientnet_b0(m);
    else {
        char known[256] = "";
        for (int i = 0; model_archs[i]; i++) strcat(known, i ? ", " : ""), strcat(known, model_archs[i]);
        return stk_errf(err, "unknown model '%s' (known: %s)", arch, known);
    }
    if (m->failed) return stk_errf(err, "%s", m->err.msg);
    model_layout(m);
    return 0;
}
