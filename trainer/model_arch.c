/* model_arch.c: architectures, one builder each, with torchvision's module names where
 * torchvision has the model. */
#include <stdio.h>
#include <string.h>

#include "model.h"

const char *const model_archs[] = {"smallcnn", NULL};


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

int model_build(Model *m, const char *arch, int c, int h, int w, int num_classes, StkErr *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->input = (Shape4){1, c, h, w};
    m->num_classes = num_classes;
    if (c < 1 || h < 1 || w < 1 || num_classes < 1)
        return stk_errf(err, "model %s: input %dx%dx%d with %d classes", arch, c, h, w, num_classes);
    if (!strcmp(arch, "smallcnn")) smallcnn(m);
    else {
        char known[256] = "";
        for (int i = 0; model_archs[i]; i++) strcat(known, i ? ", " : ""), strcat(known, model_archs[i]);
        return stk_errf(err, "unknown model '%s' (known: %s)", arch, known);
    }
    if (m->failed) return stk_errf(err, "%s", m->err.msg);
    model_layout(m);
    return 0;
}
