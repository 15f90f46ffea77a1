/* predict.c: checkpoint -> model -> probabilities for JPEG files (see predict.h). */
#include "predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aug_crop.h"
#include "ckpt.h"
#include "cpu_input.h"

/* Rows of the head's weight in f: the class count the checkpoint was trained for. */
static int file_classes(const StFile *f, const char *arch, int crop, StkErr *err) {
    Model *probe = malloc(sizeof *probe); /* built only to learn the head's name */
    if (!probe) return stk_errf(err, "out of memory");
    if (model_build(probe, arch, 3, crop, crop, 1, err)) return free(probe), -1;
    int li = probe->nlayers - 1;
    while (li > 0 && !probe->layer[li].nparams) li--;
    char name[96];
    snprintf(name, sizeof name, "%s.weight", probe->layer[li].name);
    free(probe);
    const StTensor *t = st_find(f, name);
    if (!t || t->ndim < 1 || t->shape[0] < 1)
        return stk_errf(err, "%s: no head %s: not a %s checkpoint", f->path, name, arch);
    return (int)t->shape[0];
}

/* Architecture, sizes and class count from c, the metadata and the defaults. */
static int describe(Predictor *p, const PredictConfig *c, StkErr *err) {
    StFile f;
    if (st_open(&f, c->checkpoint, err)) return -1;
    int rc = ckpt_meta_read(&p->meta, &f, err);
    const char *arch = c->model ? c->model : p->meta.arch;
    if (!rc && !*arch)
        rc = stk_errf(err, "%s names no architecture (older checkpoint): pass --model", c->checkpoint);
    int resize, crop;
    model_default_sizes(arch, &resize, &crop);
    p->resize = c->val_resize ? c->val_resize : p->meta.val_resize ? p->meta.val_resize : resize;
    p->crop = c->val_crop ? c->val_crop : p->meta.val_crop ? p->meta.val_crop : crop;
    if (!rc && p->crop > p->resize)
        rc = stk_errf(err, "crop %d is larger than the resize %d", p->crop, p->resize);
    if (!rc && (p->classes = file_classes(&f, arch, p->crop, err)) < 0) rc = -1;
    if (!rc && p->meta.classes && p->meta.num_classes != p->classes)
        rc = stk_errf(err, "%s: %d class names for a head of %d", c->checkpoint,
                      p->meta.num_classes, p->classes);
    if (!rc && model_build(&p->model, arch, 3, p->crop, p->crop, p->classes, err)) rc = -1;
    st_close(&f);
    return rc;
}

int predictor_open(Predictor *p, const PredictConfig *c, StkErr *err) {
    memset(p, 0, sizeof *p);
    p->batch = c->batch;
    if (describe(p, c, err)) return -1;
    for (int i = 0; i < p->model.nparams; i++) p->model.param[i].trainable = 0;
    model_layout(&p->model); /* inference: no gradient or optimizer arena */
    OptimConfig opt = {OPTIM_SGD, 0, 0, 0, 0, 0, 0};
    if (cpu_net_init(&p->net, &p->model, p->batch, &opt, err) ||
        ckpt_load(c->checkpoint, &p->model, p->net.params, p->net.num_batches_tracked, err) ||
        loader_decoder_init(&p->dec, 0, err))
        return -1;
    p->pixels = calloc((size_t)p->batch * p->crop * p->crop * 3, 1);
    p->probs = calloc((size_t)p->batch * p->classes, sizeof *p->probs);
    if (!p->pixels || !p->probs) return stk_errf(err, "out of memory");
    return 0;
}

void predictor_free(Predictor *p) {
    if (p->net.m) cpu_net_free(&p->net);
    loader_decoder_free(&p->dec);
    ckpt_meta_free(&p->meta);
    free(p->pixels), free(p->probs);
    p->pixels = NULL, p->probs = NULL;
}

int predictor_add(Predictor *p, const char *path, StkErr *err) {
    if (p->filled >= p->batch) return stk_errf(err, "predictor: the batch is full");
    if (loader_decode_open(&p->dec, path, err)) return -1;
    LoaderCropSpec spec = {.box = {0, 0, p->dec.width, p->dec.height}};
    aug_eval_geometry(p->dec.width, p->dec.height, p->resize, p->crop, &spec.out_w, &spec.out_h,
                      &spec.win_x, &spec.win_y);
    size_t per = (size_t)p->crop * p->crop * 3;
    AugImage slot = {p->pixels + p->filled * per, p->crop, p->crop, 3, (size_t)p->crop * 3};
    if (loader_decode_crop(&p->dec, &spec, &slot, err)) return -1;
    p->filled++;
    return 0;
}

int predictor_run(Predictor *p, StkErr *err) {
    Shape4 s = {p->batch, 3, p->crop, p->crop};
    const float *logits;
    if (cpu_input_normalize(p->pixels, cpu_net_input(&p->net), s, CPU_IMAGENET_MEAN,
                            CPU_IMAGENET_STD, err) ||
        cpu_net_forward(&p->net, 0, 0, &logits, err))
        return -1;
    for (int i = 0; i < p->filled; i++) { /* softmax in double, from the largest logit */
        const float *l = logits + (size_t)i * p->classes;
        double *q = p->probs + (size_t)i * p->classes, top = l[0], sum = 0;
        for (int k = 1; k < p->classes; k++) top = fmax(top, l[k]);
        for (int k = 0; k < p->classes; k++) sum += q[k] = exp(l[k] - top);
        for (int k = 0; k < p->classes; k++) q[k] /= sum;
    }
    return 0;
}

int predictor_topk(const Predictor *p, int i, int k, int *idx) {
    const double *q = p->probs + (size_t)i * p->classes;
    if (k > p->classes) k = p->classes;
    for (int j = 0; j < k; j++) { /* k passes of a selection: k is small */
        int best = -1;
        for (int c = 0; c < p->classes; c++) {
            int taken = 0;
            for (int t = 0; t < j && !taken; t++) taken = idx[t] == c;
            if (!taken && (best < 0 || q[c] > q[best])) best = c;
        }
        idx[j] = best;
    }
    return k;
}

const char *predictor_class_name(const Predictor *p, int c, char *buf, size_t cap) {
    if (p->meta.classes) return p->meta.classes[c];
    snprintf(buf, cap, "class %d", c);
    return buf;
}
