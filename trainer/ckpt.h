/* ckpt.h: a model's weights as a safetensors checkpoint with torchvision's state_dict
 * names and shapes (batch norms' num_batches_tracked as I64 scalars), so PyTorch's
 * load_state_dict(strict=True) takes it; written atomically (st_file.h). */
#ifndef CKPT_H
#define CKPT_H

#include <stdint.h>

#include "model.h"
#include "st_file.h"

/* Writes params (the model's arena) and nbt (one per batch norm, in layer order) to path
 * with the given metadata. Returns 0 or -1 + err (the previous file stays intact). */
int ckpt_save(const char *path, const Model *m, const float *params, const int64_t *nbt,
              const StMeta *meta, size_t meta_count, StkErr *err);

/* Reads path into params and nbt, checking every name, shape and dtype; the first
 * mismatch, a missing or an extra tensor is named. */
int ckpt_load(const char *path, const Model *m, float *params, int64_t *nbt, StkErr *err);

/* The same, and the position its metadata records, read from the same open file (a
 * trainer may replace path meanwhile: what a later open says need not be what was
 * loaded): *epoch from "epoch" (0 when absent or not positive), *steps from "steps" (0
 * when absent). Either may be NULL. */
int ckpt_load_at(const char *path, const Model *m, float *params, int64_t *nbt, uint32_t *epoch,
                 uint64_t *steps, StkErr *err);

#endif
