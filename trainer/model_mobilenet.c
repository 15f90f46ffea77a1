/* model_mobilenet.c: torchvision's MobileNetV3 (mobilenetv3.py, width 1.0, no reduced tail
 * or dilation) with its module names: features.0 the stem, features.1..n the inverted
 * residuals (block.<j> = expand 1x1, depthwise k x k, squeeze-and-excitation, project
 * 1x1), features.n+1 the last 1x1 conv, then classifier.0 (linear), hardswish, dropout
 * 0.2, classifier.3 (linear). Batch norms use eps 1e-3 and momentum 0.01, as torchvision
 * passes them; initialisation is MODEL_INIT_MOBILENET. */
#include <stdio.h>

#include "model.h"

/* One row of torchvision's inverted_residual_setting (bneck_conf). */
typedef struct Bneck {
    int in, k, expanded, out;
    int se;     /* squeeze-and-excitation after the depthwise conv */
    int hs;     /* hardswish ("HS") rather than ReLU ("RE") */
    int stride;
} Bneck;

static const Bneck large_setting[] = {
    {16, 3, 16, 16, 0, 0, 1},    {16, 3, 64, 24, 0, 0, 2},    {24, 3, 72, 24, 0, 0, 1},
    {24, 5, 72, 40, 1, 0, 2},    {40, 5, 120, 40, 1, 0, 1},   {40, 5, 120, 40, 1, 0, 1},
    {40, 3, 240, 80, 0, 1, 2},   {80, 3, 200, 80, 0, 1, 1},   {80, 3, 184, 80, 0, 1, 1},
    {80, 3, 184, 80, 0, 1, 1},   {80, 3, 480, 112, 1, 1, 1},  {112, 3, 672, 112, 1, 1, 1},
    {112, 5, 672, 160, 1, 1, 2}, {160, 5, 960, 160, 1, 1, 1}, {160, 5, 960, 160, 1, 1, 1},
};

static const Bneck small_setting[] = {
    {16, 3, 16, 16, 1, 0, 2},  {16, 3, 72, 24, 0, 0, 2},   {24, 3, 88, 24, 0, 0, 1},
    {24, 5, 96, 40, 1, 1, 2},  {40, 5, 240, 40, 1, 1, 1},  {40, 5, 240, 40, 1, 1, 1},
    {40, 5, 120, 48, 1, 1, 1}, {48, 5, 144, 48, 1, 1, 1},  {48, 5, 288, 96, 1, 1, 2},
    {96, 5, 576, 96, 1, 1, 1}, {96, 5, 576, 96, 1, 1, 1},
};

/* torchvision's InvertedResidual named features.<idx>: the residual add only when the
 * stride is 1 and the channel count is kept. */
static int inverted_residual(Model *m, int idx, const Bneck *c, int in) {
    char prefix[48];
    int j = 0, x = in, act = c->hs ? CPU_ACT_HARDSWISH : CPU_ACT_RELU;
    if (c->expanded != c->in) {
        snprintf(prefix, sizeof prefix, "features.%d.block.%d", idx, j++);
        x = model_add_conv_bn_act(m, prefix, x, c->expanded, 1, 1, 1, act);
    }
    snprintf(prefix, sizeof prefix, "features.%d.block.%d", idx, j++);
    x = model_add_conv_bn_act(m, prefix, x, c->expanded, c->k, c->stride, c->expanded, act);
    if (c->se) {
        snprintf(prefix, sizeof prefix, "features.%d.block.%d", idx, j++);
        x = model_add_se(m, prefix, x, model_make_divisible(c->expanded / 4, 8), CPU_ACT_RELU,
                         CPU_ACT_HARDSIGMOID);
    }
    snprintf(prefix, sizeof prefix, "features.%d.block.%d", idx, j++);
    x = model_add_conv_bn_act(m, prefix, x, c->out, 1, 1, 1, -1);
    return c->stride == 1 && c->in == c->out ? model_add_add(m, x, in) : x;
}

int model_mobilenet_v3(Model *m, int large) {
    const Bneck *setting = large ? large_setting : small_setting;
    int n = large ? (int)(sizeof large_setting / sizeof *large_setting)
                  : (int)(sizeof small_setting / sizeof *small_setting);
    int last_channel = large ? 1280 : 1024;
    m->init = MODEL_INIT_MOBILENET;
    m->bn_eps = 1e-3, m->bn_momentum = 0.01;
    int x = model_add_conv_bn_act(m, "features.0", 0, setting[0].in, 3, 2, 1, CPU_ACT_HARDSWISH);
    for (int i = 0; i < n; i++) x = inverted_residual(m, i + 1, &setting[i], x);
    char last[32];
    snprintf(last, sizeof last, "features.%d", n + 1);
    x = model_add_conv_bn_act(m, last, x, 6 * setting[n - 1].out, 1, 1, 1, CPU_ACT_HARDSWISH);
    x = model_add_act(m, model_add_linear(m, "classifier.0", model_add_avgpool(m, x), last_channel),
                      CPU_ACT_HARDSWISH);
    return model_add_linear(m, "classifier.3", model_add_dropout(m, x, 0.2), m->num_classes);
}
