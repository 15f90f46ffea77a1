/* model_resnet.c: torchvision's ResNets (resnet.py, v1.5: a Bottleneck strides in its 3x3
 * conv) with its module names: BasicBlock for resnet18/34, Bottleneck for resnet50.
 * Initialisation is MODEL_INIT_RESNET (zero_init_residual is False by default, so the
 * last batch norm of each block starts at weight 1 like the others). */
#include <stdio.h>

#include "model.h"

/* conv + batch norm named prefix.conv<i> / prefix.bn<i>. */
static int conv_bn(Model *m, const char *prefix, int i, int in, int out_c, int k, int stride, int pad) {
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%s.conv%d", prefix, i);
    snprintf(bn, sizeof bn, "%s.bn%d", prefix, i);
    return model_add_bn(m, bn, model_add_conv(m, conv, in, out_c, k, stride, pad, 1, 0));
}

/* The block's shortcut: the identity, or when the shape changes downsample.0 (conv1x1 with
 * the block's stride) + downsample.1 (bn). */
static int shortcut(Model *m, const char *prefix, int in, int out_c, int stride) {
    if (stride == 1 && model_node_shape(m, in).c == out_c) return in;
    char conv[64], bn[64];
    snprintf(conv, sizeof conv, "%s.downsample.0", prefix);
    snprintf(bn, sizeof bn, "%s.downsample.1", prefix);
    return model_add_bn(m, bn, model_add_conv(m, conv, in, out_c, 1, stride, 0, 1, 0));
}

/* torchvision's BasicBlock: conv3x3-bn-relu-conv3x3-bn, plus the shortcut; then relu. */
static int basic_block(Model *m, const char *prefix, int in, int width, int stride) {
    int x = model_add_act(m, conv_bn(m, prefix, 1, in, width, 3, stride, 1), CPU_ACT_RELU);
    x = conv_bn(m, prefix, 2, x, width, 3, 1, 1);
    int identity = shortcut(m, prefix, in, width, stride);
    return model_add_act(m, model_add_add(m, x, identity), CPU_ACT_RELU);
}

/* torchvision's Bottleneck (expansion 4): conv1x1-bn-relu, conv3x3 (stride)-bn-relu,
 * conv1x1 to 4 x width-bn, plus the shortcut; then relu. */
static int bottleneck(Model *m, const char *prefix, int in, int width, int stride) {
    int x = model_add_act(m, conv_bn(m, prefix, 1, in, width, 1, 1, 0), CPU_ACT_RELU);
    x = model_add_act(m, conv_bn(m, prefix, 2, x, width, 3, stride, 1), CPU_ACT_RELU);
    x = conv_bn(m, prefix, 3, x, 4 * width, 1, 1, 0);
    int identity = shortcut(m, prefix, in, 4 * width, stride);
    return model_add_act(m, model_add_add(m, x, identity), CPU_ACT_RELU);
}

typedef int (*BlockFn)(Model *m, const char *prefix, int in, int width, int stride);

/* The stem (conv1 7x7/2, bn1, relu, maxpool 3x3/2), layer1-4 of blocks[i] blocks of
 * widths 64-512 (the first block of layers 2-4 strides 2), global pooling and fc. */
static int resnet(Model *m, const int blocks[4], BlockFn block) {
    int x = model_add_conv(m, "conv1", 0, 64, 7, 2, 3, 1, 0);
    x = model_add_maxpool(m, model_add_act(m, model_add_bn(m, "bn1", x), CPU_ACT_RELU), 3, 2, 1);
    static const int widths[4] = {64, 128, 256, 512};
    for (int layer = 0; layer < 4; layer++)
        for (int b = 0; b < blocks[layer]; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", layer + 1, b);
            x = block(m, prefix, x, widths[layer], b == 0 && layer > 0 ? 2 : 1);
        }
    return model_add_linear(m, "fc", model_add_avgpool(m, x), m->num_classes);
}

int model_resnet_basic(Model *m, const int blocks[4]) { return resnet(m, blocks, basic_block); }

int model_resnet_bottleneck(Model *m, const int blocks[4]) { return resnet(m, blocks, bottleneck); }
