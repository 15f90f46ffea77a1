/* model_efficientnet.c: torchvision's efficientnet_b0 (efficientnet.py, width and depth
 * 1.0) with its module names: features.0 the stem, features.1..7 the stages of MBConv
 * blocks (features.<s>.<b>.block.<j> = expand 1x1 unless the ratio is 1, depthwise k x k,
 * squeeze-and-excitation, project 1x1; features.<s>.<b>.stochastic_depth before the
 * residual add), features.8 the last 1x1 conv, then classifier.0 (dropout 0.2) and
 * classifier.1 (linear). b0's batch norms are PyTorch's defaults (eps 1e-5, momentum 0.1:
 * torchvision passes eps 1e-3 only for b5-b7 and the v2 models); initialisation is
 * MODEL_INIT_EFFICIENTNET. */
#include <stdio.h>

#include "model.h"

#define STOCHASTIC_DEPTH_PROB 0.2 /* EfficientNet's default, scaled per block below */

/* One stage of torchvision's inverted_residual_setting (MBConvConfig). */
typedef struct Stage {
    int expand_ratio, k, stride, in, out, layers;
} Stage;

static const Stage b0_setting[] = {
    {1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},   {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1},
};

/* torchvision's MBConv named prefix with input channels in_c and stochastic-depth
 * probability p: the residual (through stochastic depth) only when the stride is 1 and
 * the channel count is kept. */
static int mbconv(Model *m, const char *prefix, const Stage *c, int in, int in_c, int stride,
                  double p) {
    char name[64];
    int j = 0, x = in, expanded = model_make_divisible((double)in_c * c->expand_ratio, 8);
    if (expanded != in_c) {
        snprintf(name, sizeof name, "%s.block.%d", prefix, j++);
        x = model_add_conv_bn_act(m, name, x, expanded, 1, 1, 1, CPU_ACT_SILU);
    }
    snprintf(name, sizeof name, "%s.block.%d", prefix, j++);
    x = model_add_conv_bn_act(m, name, x, expanded, c->k, stride, expanded, CPU_ACT_SILU);
    snprintf(name, sizeof name, "%s.block.%d", prefix, j++);
    x = model_add_se(m, name, x, in_c / 4 > 1 ? in_c / 4 : 1, CPU_ACT_SILU, CPU_ACT_SIGMOID);
    snprintf(name, sizeof name, "%s.block.%d", prefix, j++);
    x = model_add_conv_bn_act(m, name, x, c->out, 1, 1, 1, -1);
    if (stride != 1 || in_c != c->out) return x;
    snprintf(name, sizeof name, "%s.stochastic_depth", prefix);
    return model_add_add(m, model_add_drop_path(m, name, x, p), in);
}

int model_efficientnet_b0(Model *m) {
    int stages = (int)(sizeof b0_setting / sizeof *b0_setting), total = 0, id = 0;
    for (int s = 0; s < stages; s++) total += b0_setting[s].layers;
    m->init = MODEL_INIT_EFFICIENTNET;
    int x = model_add_conv_bn_act(m, "features.0", 0, b0_setting[0].in, 3, 2, 1, CPU_ACT_SILU);
    for (int s = 0; s < stages; s++) {
        const Stage *c = &b0_setting[s];
        for (int b = 0; b < c->layers; b++, id++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "features.%d.%d", s + 1, b);
            /* the block's probability grows linearly with its index, as torchvision's */
            double p = STOCHASTIC_DEPTH_PROB * (double)id / total;
            x = mbconv(m, prefix, c, x, b ? c->out : c->in, b ? 1 : c->stride, p);
        }
    }
    char last[32];
    snprintf(last, sizeof last, "features.%d", stages + 1);
    x = model_add_conv_bn_act(m, last, x, 4 * b0_setting[stages - 1].out, 1, 1, 1, CPU_ACT_SILU);
    x = model_add_dropout(m, model_add_avgpool(m, x), 0.2);
    return model_add_linear(m, "classifier.1", x, m->num_classes);
}
