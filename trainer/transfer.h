/* transfer.h: starting a model from weights trained elsewhere (stoker-train --weights):
 * a safetensors file with torchvision's state_dict names, from
 * scripts/export_torchvision.py or a stoker checkpoint.
 *
 * Every tensor the model has must be in the file with its dtype (F32) and shape, and the
 * file must hold nothing else: the first missing, extra or mismatched tensor is named.
 * Two exceptions, both as PyTorch behaves: the head's last linear layer (fc,
 * classifier.N) may differ in its class count only, and is then left as the caller
 * initialised it (model_init_params: torchvision's initialisation) and reported; a
 * missing num_batches_tracked (state_dicts older than PyTorch 0.4.1) reads as 0. */
#ifndef TRANSFER_H
#define TRANSFER_H

#include <stdint.h>

#include "model.h"

/* What transfer_load did. */
typedef struct TransferReport {
    int loaded;          /* tensors taken from the file (num_batches_tracked included) */
    int head_replaced;   /* 1: the file's head has another class count; not loaded */
    int file_classes;    /* the file's class count (rows of its head's weight) */
    char head[64];       /* the head's last linear layer ("fc", "classifier.3") */
} TransferReport;

/* Loads path into params (the model's arena, already initialised) and nbt (one per batch
 * norm, in layer order). Fails, naming the file and tensor, on a file that is not
 * safetensors, one whose "arch" metadata names another architecture, or a tensor
 * missing, extra or of the wrong dtype or shape (both shapes printed). */
int transfer_load(const char *path, const Model *m, float *params, int64_t *nbt,
                  TransferReport *rep, StkErr *err);

#endif
