/* model.h: a model as a list of layers with torchvision's module names, built by a
 * function per architecture, and the table of its parameters and buffers (names, shapes,
 * offsets into one float arena) that the memory plan, the optimizer and checkpoints use.
 *
 * Nodes: node 0 is the input; layer i produces node i + 1. Each layer reads one node (two
 * for a residual add). Shapes are per sample (n = 1); the backend multiplies by its
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
    LAYER_DROPOUT
} LayerKind;

typedef struct ModelLayer {
    LayerKind kind;
    char name[64];             /* torchvision module name ("layer1.0.conv1"); "" if none */
    int in, in2;               /* input node(s); in2 only for LAYER_ADD, else -1 */
    Shape4 out;                /* output shape per sample */
    ConvDesc conv;             /* LAYER_CONV */
    CpuActKind act;            /* LAYER_ACT */
    CpuMaxPool pool;           /* LAYER_MAXPOOL */
    CpuLinear linear;          /* LAYER_LINEAR */
    double p;                  /* LAYER_DROPOUT: drop probability */
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
 * "smallcnn" (the 28x28 default; any size works), "resnet18" and "resnet34" (torchvision's,
 * same module names). Returns 0 or -1 + err (unknown arch, input too small). */
int model_build(Model *m, const char *arch, int c, int h, int w, int num_classes, StkErr *err);

/* Architectures model_build knows, NULL-terminated. */
extern const char *const model_archs[];

/* Fills the parameter arena like PyTorch's initialisation for this model: conv weights
 * kaiming-normal (fan_out, relu) as torchvision's ResNet, linear layers PyTorch's default
 * uniform(+-1/sqrt(fan_in)), batch-norm weight 1 and bias 0, running mean 0 and var 1.
 * Random numbers from stk_rng keyed by seed and the parameter's index. */
void model_init_params(const Model *m, float *params, uint64_t seed);

/* Assigns the parameter table's offsets (trainable first); model_build calls it. */
void model_layout(Model *m);

/* Parameters: trainable elements (what people quote as "parameters"). */
uint64_t model_num_trainable(const Model *m);

/* Builder steps, for architectures: each appends a layer reading node `in` and returns
 * its output node, or -1 after setting m's error state (checked by model_build). */
int model_add_conv(Model *m, const char *name, int in, int out_c, int k, int stride, int pad,
                   int groups, int bias);
int model_add_bn(Model *m, const char *name, int in);
int model_add_act(Model *m, int in, CpuActKind act);
int model_add_maxpool(Model *m, int in, int k, int stride, int pad);
int model_add_avgpool(Model *m, int in);
int model_add_linear(Model *m, const char *name, int in, int out_f);
int model_add_add(Model *m, int a, int b);
int model_add_dropout(Model *m, int in, double p);

/* Shape of node `node` (per sample). */
Shape4 model_node_shape(const Model *m, int node);

#endif
