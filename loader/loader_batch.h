/* loader_batch.h: makes batch b of epoch e: which samples, decoded and augmented.
 *
 * The content of a batch is a function of (seed, epoch, batch index) alone: samples
 * come from loader_order, every crop and flip from stk_rng keyed by (seed, epoch,
 * sample), so 1 loader or 16 produce byte-identical batches.
 *
 * A bad file (corrupt, truncated, not a JPEG, over the pixel cap...) is reported once
 * through the callback, remembered, and skipped in later epochs; its slot is filled by
 * the next good sample of the same batch (or, if it has none, of the positions after
 * it), augmented anew (its own key mixed with the slot), so the batch keeps its size and its content stays deterministic: whether this
 * process already knew the file was bad changes nothing but the work done. */
#ifndef LOADER_BATCH_H
#define LOADER_BATCH_H

#include <stdint.h>

#include "aug_color.h"
#include "aug_crop.h"
#include "loader_decode.h"
#include "loader_index.h"
#include "loader_order.h"

/* How batches are made. Defaults: loader_batch_config_default(). */
typedef struct LoaderBatchConfig {
    LoaderSplit split;      /* which split of the index */
    uint64_t seed;          /* the run's seed */
    uint32_t batch;         /* samples per batch */
    int drop_last;          /* drop the last partial batch (torchvision's drop_last) */
    int train;              /* 1: shuffle + RandomResizedCrop + flip; 0: eval transform */
    int crop;               /* output side: train crop, or eval centre crop */
    int val_resize;         /* eval: the short side is resized to this first */
    AugRrcParams rrc;       /* RandomResizedCrop ranges */
    double flip_p;          /* probability of a horizontal flip (train) */
    AugJitter jitter;       /* train: ColorJitter after the flip; all 0 = off */
    AugErase erase;         /* train: RandomErasing last; p 0 = off */
    uint64_t max_pixels;    /* decoder's pixel cap; 0: LOADER_DEFAULT_MAX_PIXELS */
} LoaderBatchConfig;

/* Train split, seed 0, batch 256, 224 crops, eval 256 -> 224, flip 0.5, RRC defaults. */
LoaderBatchConfig loader_batch_config_default(void);

/* Called once per file found bad by this process: sample id, path, reason. */
typedef void LoaderBadFileFn(void *ctx, uint64_t sample_id, const char *path,
                             const char *reason);

typedef struct LoaderBatcher {
    LoaderBatchConfig cfg;
    const LoaderIndex *ix;  /* not owned */
    uint64_t n;             /* samples in the split */
    char *root;             /* dataset root; paths are joined to it (owned) */
    char *path;             /* joined path scratch (owned) */
    size_t path_cap;
    uint8_t *bad;           /* bitmap: samples known bad (owned) */
    uint64_t bad_count;     /* files found bad so far */
    LoaderDecoder dec;      /* one decoder, reused */
    LoaderOrder order;      /* the current epoch's order */
    uint32_t order_epoch;   /* epoch `order` was made for, UINT32_MAX before the first */
} LoaderBatcher;

/* Sets up b over ix (which must outlive it); root overrides the index's root when not
 * NULL (a dataset moved since indexing). Fails on a bad config or an empty split. */
int loader_batcher_init(LoaderBatcher *b, const LoaderIndex *ix, const char *root,
                        const LoaderBatchConfig *cfg, StkErr *err);
void loader_batcher_free(LoaderBatcher *b);

/* Batches per epoch under this config. */
uint64_t loader_batcher_batches(const LoaderBatcher *b);

/* Fills batch `index` of `epoch`: pixels (n x crop x crop x 3, NHWC), labels and ids
 * (n each; capacity cfg.batch), *n the samples in it (the last may be partial). Bad
 * files go to on_bad (may be NULL). Fails only if every sample of the split is bad or
 * on an out-of-range index. */
int loader_batch_fill(LoaderBatcher *b, uint32_t epoch, uint64_t index, uint8_t *pixels,
                      int32_t *labels, uint64_t *ids, uint32_t *n, LoaderBadFileFn *on_bad,
                      void *ctx, StkErr *err);

#endif
