/* model.h: a model as a list of layers with torchvision's module names, built by a
 * function per architecture, and the table of its parameters and buffers (names, shapes,
 * offsets into one float arena) that the memory plan, the optimizer and checkpoints use.
 *
 * Nodes: node 0 is the input; layer i produces node i + 1. Each layer reads one node (two
 * for a residual add and for squeeze-and-excitation's scale). Shapes are per sample (n = 1); the backend multiplies by its
 * batch. The parameter table lists trainable tensors first (their offsets are also their
 * gradients' offsets), then buffers (batch-norm running statistics). */
#ifndef MODEL_H
#define MODEL_H

#include <stdint.h>

#include "cpu_act.h"
#include "cpu_conv.h"
#include "cpu_linear.h"
#include "cpu_pool.h"

#define MODEL_MAX_LAYERS 512
#define MODEL_MAX_PARAMS 1024
#define MODEL_NAME_LEN 96

typedef enum LayerKind {
    LAYER_CONV, LAYER_BN, LAYER_ACT, LAYER_MAXPOOL, LAYER_AVGPOOL, LAYER_LINEAR, LAYER_ADD,
    LAYER_DROPOUT,
    LAYER_SCALE,     /* node in (N,C,H,W) times node in2 (N,C,1,1) per channel (SE's output) */
    LAYER_DROP_PATH  /* stochastic depth, mode "row": whole samples dropped (EfficientNet) */
} LayerKind;

/* How model_init_params fills conv and linear layers: each torchvision family has its
 * own loop over modules (batch norms are weight 1, bias 0 in all of them). */
typedef enum ModelInit {
    MODEL_INIT_RESNET,       /* conv kaiming-normal fan_out (bias PyTorch's default);
                              * linear PyTorch's default uniform(+-1/sqrt(fan_in)) */
    MODEL_INIT_MOBILENET,    /* conv kaiming-normal fan_out, bias 0; linear N(0, 0.01), bias 0 */
    MODEL_INIT_EFFICIENTNET  /* conv kaiming-normal fan_out, bias 0; linear
                              * uniform(+-1/sqrt(out_features)), bias 0 */
} ModelInit;

typedef struct ModelLayer {
    LayerKind kind;
    char name[64];             /* torchvision module name ("layer1.0.conv1"); "" if none */
    int in, in2;               /* input node(s); in2 for LAYER_ADD and LAYER_SCALE, else -1 */
    Shape4 out;                /* output shape per sample */
    ConvDesc conv;             /* LAYER_CONV */
    CpuActKind act;            /* LAYER_ACT */
    CpuMaxPool pool;           /* LAYER_MAXPOOL */
    CpuLinear linear;          /* LAYER_LINEAR */
    double p;                  /* LAYER_DROPOUT, LAYER_DROP_PATH: drop probability */
    double eps, momentum;      /* LAYER_BN: torch.nn.BatchNorm2d's eps and momentum */
    int param0, nparams;       /* its entries in the parameter table */
} ModelLayer;

typedef struct ModelParam {
    char name[MODEL_NAME_LEN]; /* state_dict name: "layer1.0.bn1.running_mean" */
    int ndim;
    int64_t shape[4];
    uint64_t numel;
    uint64_t offset;           /* in floats, into the parameter arena */
    int trainable;             /* 1: has a gradient and optimizer state */
    int norm_or_bias;          /* 1: a batch-norm weight/bias or any bias (wd exemption) */
} ModelParam;

typedef struct Model {
    char arch[32];
    Shape4 input;                         /* per sample: {1, c, h, w} */
    int num_classes;
    ModelInit init;                       /* initialisation scheme (model_init_params) */
    double bn_eps, bn_momentum;           /* given to the batch norms added from now on */
    ModelLayer layer[MODEL_MAX_LAYERS];
    int nlayers;
    ModelParam param[MODEL_MAX_PARAMS];
    int nparams;
    uint64_t trainable_floats;            /* size of the trainable block (and gradients) */
    uint64_t total_floats;                /* trainable + buffers */
    int nbn;                              /* batch-norm layers (num_batches_tracked each) */
    int failed;                           /* a builder step failed: err says why */
    StkErr err;
} Model;

/* Builds architecture `arch` for inputs of c x h x w with num_classes outputs. Known:
 * "smallcnn" (the 28x28 default; any size works) and torchvision's "resnet18", "resnet34",
 * "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0" (same module
 * and state_dict names, batch-norm settings, dropout and stochastic-depth probabilities,
 * and initialisation scheme; each checked against torchvision 0.14 in test_cpu_net.c and
 * test_cpu_models.c). Returns 0 or -1 + err (unknown arch, input too small). */
int model_build(Model *m, const char *arch, int c, int h, int w, int num_classes, StkErr *err);

/* The input sizes arch is trained and evaluated at unless told: resize 28 and crop 28 for
 * the small models made for 28-32 px inputs (smallcnn, smallresnet), else torchvision's
 * 256 and 224. stoker-train, stoker-eval and stoker-predict all default through this. */
void model_default_sizes(const char *arch, int *resize, int *crop);

/* Architectures model_build knows, NULL-terminated. */
extern const char *const model_archs[];

/* Fills the parameter arena like torchvision's initialisation for this model (m->init:
 * the distributions of each scheme are in ModelInit; batch norms weight 1, bias 0,
 * running mean 0, var 1). Random numbers from stk_rng keyed by seed and the parameter's
 * index (the same distributions as PyTorch, not the same numbers). */
void model_init_params(const Model *m, float *params, uint64_t seed);

/* Assigns the parameter table's offsets (trainable first); model_build calls it. */
void model_layout(Model *m);

/* Parameters: trainable elements (what people quote as "parameters"). */
uint64_t model_num_trainable(const Model *m);

/* Builder steps, for architectures: each appends a layer reading node `in` and returns
 * its output node, or -1 after setting m's error state (checked by model_build). */
int model_add_conv(Model *m, const char *name, int in, int out_c, int k, int stride, int pad,
                   int groups, int bias);
/* Batch norm with m->bn_eps and m->bn_momentum (model_build sets PyTorch's 1e-5, 0.1). */
int model_add_bn(Model *m, const char *name, int in);
int model_add_act(Model *m, int in, CpuActKind act);
int model_add_maxpool(Model *m, int in, int k, int stride, int pad);
int model_add_avgpool(Model *m, int in);
int model_add_linear(Model *m, const char *name, int in, int out_f);
int model_add_add(Model *m, int a, int b);
int model_add_dropout(Model *m, int in, double p);
/* x * s per channel: x (C,H,W), s (C,1,1). */
int model_add_scale(Model *m, int x, int s);
int model_add_drop_path(Model *m, const char *name, int in, double p);

/* torchvision.ops.Conv2dNormActivation named prefix.0 (conv k x k, padding (k - 1) / 2, no
 * bias), prefix.1 (batch norm), then activation act unless act < 0. */
int model_add_conv_bn_act(Model *m, const char *prefix, int in, int out_c, int k, int stride,
                          int groups, int act);
/* torchvision.ops.SqueezeExcitation named prefix.fc1 / prefix.fc2 (1x1 convs with bias):
 * x * scale_act(fc2(act(fc1(avgpool(x))))). */
int model_add_se(Model *m, const char *prefix, int x, int squeeze_c, CpuActKind act,
                 CpuActKind scale_act);
/* torchvision's _make_divisible(v, divisor, min_value = divisor): v rounded to a multiple
 * of divisor, never below min_value nor more than 10% below v. */
int model_make_divisible(double v, int divisor);

/* Architecture builders (model_resnet.c, model_mobilenet.c, model_efficientnet.c): each
 * appends its layers to m (input, classes and arch already set) and returns the logits'
 * node or -1 with m's error state set. */
int model_resnet_basic(Model *m, const int blocks[4]);
int model_resnet_bottleneck(Model *m, const int blocks[4]);
int model_mobilenet_v3(Model *m, int large);
int model_efficientnet_b0(Model *m);

/* Shape of node `node` (per sample). */
Shape4 model_node_shape(const Model *m, int node);

#endif
