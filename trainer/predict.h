/* predict.h: a checkpoint turned into a classifier of JPEG files (stoker-predict): the
 * model it names, its weights, the eval transform (loader_decode: resize the short side,
 * centre crop; Pillow-exact) and the trainer's normalisation (cpu_input.h), in batches.
 *
 * Sizes: the caller's, else the checkpoint's metadata (ckpt_meta.h), else stoker-train's
 * defaults (28/28 for smallcnn, else 256 -> 224). The class count is the rows of the
 * head's weight in the file; class names come from the metadata, else "class N". The
 * model runs with every parameter frozen: no gradient or optimizer memory. */
#ifndef PREDICT_H
#define PREDICT_H

#include <stdint.h>

#include "ckpt_meta.h"
#include "cpu_net.h"
#include "loader_decode.h"

typedef struct PredictConfig {
    const char *checkpoint; /* a stoker checkpoint or an export_torchvision.py file */
    const char *model;      /* architecture; NULL: the checkpoint's "arch" metadata */
    int val_resize, val_crop; /* 0: from the metadata or the defaults */
    int batch;              /* images per forward pass, >= 1 */
} PredictConfig;

typedef struct Predictor {
    Model model;
    CpuNet net;
    CkptMeta meta;
    LoaderDecoder dec;
    int resize, crop, batch, classes;
    int filled;             /* images decoded into the batch so far */
    uint8_t *pixels;        /* [batch][crop][crop][3] (owned) */
    double *probs;          /* [batch][classes] softmax of the last run (owned) */
} Predictor;

/* Loads c->checkpoint (model, weights, metadata) and sets up the decoder. Returns 0 or
 * -1 + err naming the file and what is wrong (no architecture known, a tensor mismatch). */
int predictor_open(Predictor *p, const PredictConfig *c, StkErr *err);
void predictor_free(Predictor *p);

/* Decodes path into the next batch slot (p->filled < p->batch). A bad file fails with
 * the decoder's reason and takes no slot. */
int predictor_add(Predictor *p, const char *path, StkErr *err);

/* Runs the model on the p->filled images: p->probs rows 0..filled-1. Leaves filled as it
 * is (the caller reads the rows, then sets filled to 0). */
int predictor_run(Predictor *p, StkErr *err);

/* The k most probable classes of row i into idx[k], most probable first (ties: lower
 * index first); k is clamped to the class count and returned. */
int predictor_topk(const Predictor *p, int i, int k, int *idx);

/* Name of class c: the metadata's, or "class c" written into buf. */
const char *predictor_class_name(const Predictor *p, int c, char *buf, size_t cap);

#endif
