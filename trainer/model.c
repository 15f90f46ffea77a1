/* model.c: the layer list, the parameter table and the builder steps (see model.h);
 * architectures are in model_arch.c. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "stk_rng.h"

Shape4 model_node_shape(const Model *m, int node) {
    return node == 0 ? m->input : m->layer[node - 1].out;
}

static int fail(Model *m, const char *what) {
    if (!m->failed) stk_errf(&m->err, "%s: %s", m->arch, what);
    m->failed = 1;
    return -1;
}

/* Appends a layer of kind reading node in; returns it (NULL on failure). */
static ModelLayer *append(Model *m, LayerKind kind, const char *name, int in) {
    if (m->failed) return NULL;
    if (m->nlayers == MODEL_MAX_LAYERS) return fail(m, "too many layers"), NULL;
    if (in < 0 || in > m->nlayers) return fail(m, "layer reads a node that does not exist"), NULL;
    ModelLayer *l = &m->layer[m->nlayers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    l->in = in;
    l->in2 = -1;
    l->param0 = m->nparams;
    l->out = model_node_shape(m, in);
    return l;
}

static int finish(Model *m, ModelLayer *l) {
    if (l->out.c < 1 || l->out.h < 1 || l->out.w < 1) return fail(m, "a layer's output is empty");
    return ++m->nlayers;
}

/* Adds parameter `suffix` of layer l with the given shape. */
static void add_param(Model *m, ModelLayer *l, const char *suffix, int ndim, const int64_t *shape,
                      int trainable, int norm_or_bias) {
    if (m->failed) return;
    if (m->nparams == MODEL_MAX_PARAMS) { fail(m, "too many parameters"); return; }
    ModelParam *p = &m->param[m->nparams++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", l->name, suffix);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->numel *= (uint64_t)shape[i];
    p->trainable = trainable;
    p->norm_or_bias = norm_or_bias;
    l->nparams++;
}

int model_add_conv(Model *m, const char *name, int in, int out_c, int k, int stride, int pad,
                   int groups, int bias) {
    ModelLayer *l = append(m, LAYER_CONV, name, in);
    if (!l) return -1;
    Shape4 s = model_node_shape(m, in);
    l->conv = (ConvDesc){s.c, out_c, k, k, stride, stride, pad, pad, groups, bias};
    l->out = cpu_conv_out_shape(&l->conv, s);
    if (!l->out.c) return fail(m, "a convolution does not fit its input");
    int64_t w[4] = {out_c, s.c / groups, k, k}, b[1] = {out_c};
    add_param(m, l, "weight", 4, w, 1, 0);
    if (bias) add_param(m, l, "bias", 1, b, 1, 1);
    return finish(m, l);
}

int model_add_bn(Model *m, const char *name, int in) {
    ModelLayer *l = append(m, LAYER_BN, name, in);
    if (!l) return -1;
    int64_t c[1] = {l->out.c};
    add_param(m, l, "weight", 1, c, 1, 1);
    add_param(m, l, "bias", 1, c, 1, 1);
    add_param(m, l, "running_mean", 1, c, 0, 0);
    add_param(m, l, "running_var", 1, c, 0, 0);
    l->eps = m->bn_eps;
    l->momentum = m->bn_momentum;
    m->nbn++;
    return finish(m, l);
}

int model_add_act(Model *m, int in, CpuActKind act) {
    ModelLayer *l = append(m, LAYER_ACT, NULL, in);
    if (!l) return -1;
    l->act = act;
    return finish(m, l);
}

int model_add_maxpool(Model *m, int in, int k, int stride, int pad) {
    ModelLayer *l = append(m, LAYER_MAXPOOL, NULL, in);
    if (!l) return -1;
    l->pool = (CpuMaxPool){k, k, stride, stride, pad, pad};
    StkErr err;
    if (cpu_maxpool_out_shape(&l->pool, model_node_shape(m, in), &l->out, &err))
        return fail(m, err.msg);
    return finish(m, l);
}

int model_add_avgpool(Model *m, int in) {
    ModelLayer *l = append(m, LAYER_AVGPOOL, NULL, in);
    if (!l) return -1;
    l->out.h = l->out.w = 1;
    return finish(m, l);
}

int model_add_linear(Model *m, const char *name, int in, int out_f) {
    ModelLayer *l = append(m, LAYER_LINEAR, name, in);
    if (!l) return -1;
    Shape4 s = model_node_shape(m, in);
    l->linear = (CpuLinear){s.c * s.h * s.w, out_f};
    l->out = (Shape4){1, out_f, 1, 1};
    int64_t w[2] = {out_f, l->linear.in}, b[1] = {out_f};
    add_param(m, l, "weight", 2, w, 1, 0);
    add_param(m, l, "bias", 1, b, 1, 1);
    return finish(m, l);
}

int model_add_add(Model *m, int a, int b) {
    ModelLayer *l = append(m, LAYER_ADD, NULL, a);
    if (!l) return -1;
    Shape4 sa = model_node_shape(m, a), sb = model_node_shape(m, b);
    if (b < 0 || b > m->nlayers || memcmp(&sa, &sb, sizeof sa))
        return fail(m, "a residual add of two different shapes");
    l->in2 = b;
    return finish(m, l);
}

int model_add_dropout(Model *m, int in, double p) {
    ModelLayer *l = append(m, LAYER_DROPOUT, NULL, in);
    if (!l) return -1;
    l->p = p;
    return finish(m, l);
}

int model_add_scale(Model *m, int x, int s) {
    ModelLayer *l = append(m, LAYER_SCALE, NULL, x);
    if (!l) return -1;
    if (s < 0 || s > m->nlayers) return fail(m, "a scale reads a node that does not exist");
    Shape4 xs = model_node_shape(m, x), ss = model_node_shape(m, s);
    if (ss.c != xs.c || ss.h != 1 || ss.w != 1)
        return fail(m, "a channel scale that is not one value per channel of its input");
    l->in2 = s;
    return finish(m, l);
}

int model_add_drop_path(Model *m, const char *name, int in, double p) {
    ModelLayer *l = append(m, LAYER_DROP_PATH, name, in);
    if (!l) return -1;
    if (!(p >= 0.0 && p <= 1.0)) return fail(m, "a stochastic-depth probability outside [0, 1]");
    l->p = p;
    return finish(m, l);
}

int model_add_conv_bn_act(Model *m, const char *prefix, int in, int out_c, int k, int stride,
                          int groups, int act) {
    char conv[MODEL_NAME_LEN], bn[MODEL_NAME_LEN];
    snprintf(conv, sizeof conv, "%s.0", prefix);
    snprintf(bn, sizeof bn, "%s.1", prefix);
    int x = model_add_conv(m, conv, in, out_c, k, stride, (k - 1) / 2, groups, 0);
    x = model_add_bn(m, bn, x);
    return act < 0 ? x : model_add_act(m, x, (CpuActKind)act);
}

int model_add_se(Model *m, const char *prefix, int x, int squeeze_c, CpuActKind act,
                 CpuActKind scale_act) {
    char fc1[MODEL_NAME_LEN], fc2[MODEL_NAME_LEN];
    snprintf(fc1, sizeof fc1, "%s.fc1", prefix);
    snprintf(fc2, sizeof fc2, "%s.fc2", prefix);
    int c = model_node_shape(m, x).c;
    int s = model_add_act(m, model_add_conv(m, fc1, model_add_avgpool(m, x), squeeze_c, 1, 1, 0, 1, 1), act);
    s = model_add_act(m, model_add_conv(m, fc2, s, c, 1, 1, 0, 1, 1), scale_act);
    return model_add_scale(m, x, s);
}

int model_make_divisible(double v, int divisor) {
    int r = (int)(v + divisor / 2.0) / divisor * divisor;
    if (r < divisor) r = divisor;
    if (r < 0.9 * v) r += divisor;
    return r;
}

/* Lays the table out: trainable tensors first, then buffers. */
void model_layout(Model *m) {
    uint64_t off = 0;
    m->trainable_floats = 0; /* stays 0 when everything is frozen (inference) */
    for (int pass = 1; pass >= 0; pass--)
        for (int i = 0; i < m->nparams; i++)
            if (m->param[i].trainable == pass) {
                m->param[i].offset = off;
                off += m->param[i].numel;
                if (pass) m->trainable_floats = off;
            }
    m->total_floats = off;
}

uint64_t model_num_trainable(const Model *m) { return m->trainable_floats; }

/* A standard normal from two uniforms (Box-Muller). */
static double normal(uint64_t key, uint64_t i) {
    double u1 = stk_rng_unit(stk_rng_at(key, 2 * i)), u2 = stk_rng_unit(stk_rng_at(key, 2 * i + 1));
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

static void fill_uniform(float *x, uint64_t n, double bound, uint64_t key) {
    for (uint64_t j = 0; j < n; j++) x[j] = (float)(bound * (2.0 * stk_rng_unit(stk_rng_at(key, j)) - 1.0));
}

static void fill(float *x, uint64_t n, float v) {
    for (uint64_t j = 0; j < n; j++) x[j] = v;
}

/* Conv weight: kaiming-normal with fan_out = out_c * kh * kw and gain sqrt(2) (every
 * torchvision family; for a depthwise conv too, as PyTorch computes fan_out). */
static void init_conv_weight(const ModelParam *w, float *x, uint64_t key) {
    double std = sqrt(2.0 / (double)(w->shape[0] * w->shape[2] * w->shape[3]));
    for (uint64_t j = 0; j < w->numel; j++) x[j] = (float)(std * normal(key, j));
}

/* Parameter k of conv or linear layer l under m's scheme. */
static void init_weighted(const Model *m, const ModelLayer *l, int k, float *x, uint64_t key) {
    const ModelParam *p = &m->param[l->param0 + k], *w = &m->param[l->param0];
    if (l->kind == LAYER_CONV && k == 0) init_conv_weight(p, x, key);
    else if (m->init != MODEL_INIT_RESNET && k == 1) fill(x, p->numel, 0.0f); /* biases */
    else if (l->kind == LAYER_CONV) /* bias: PyTorch's default */
        fill_uniform(x, p->numel, 1.0 / sqrt((double)(w->shape[1] * w->shape[2] * w->shape[3])), key);
    else if (m->init == MODEL_INIT_MOBILENET)
        for (uint64_t j = 0; j < p->numel; j++) x[j] = (float)(0.01 * normal(key, j));
    else if (m->init == MODEL_INIT_EFFICIENTNET)
        fill_uniform(x, p->numel, 1.0 / sqrt((double)l->linear.out), key);
    else /* PyTorch's default for a linear weight and bias */
        fill_uniform(x, p->numel, 1.0 / sqrt((double)l->linear.in), key);
}

void model_init_params(const Model *m, float *params, uint64_t seed) {
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        for (int k = 0; k < l->nparams; k++) {
            const ModelParam *p = &m->param[l->param0 + k];
            float *x = params + p->offset;
            uint64_t key = stk_rng_key(seed, (uint64_t)(l->param0 + k));
            if (l->kind == LAYER_BN) /* weight, bias, running_mean, running_var */
                fill(x, p->numel, k == 0 || k == 3 ? 1.0f : 0.0f);
            else if (l->kind == LAYER_CONV || l->kind == LAYER_LINEAR)
                init_weighted(m, l, k, x, key);
        }
    }
}
