/* loader_batch.c: batch assembly: order, decode, augment, bad-file fallback (see
 * loader_batch.h). */
#include "loader_batch.h"

#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "stk_rng.h"

#define KEY_DOMAIN_AUGMENT 0xa06ull /* separates augmentation keys from the order's */

LoaderBatchConfig loader_batch_config_default(void) {
    return (LoaderBatchConfig){.split = LOADER_TRAIN, .seed = 0, .batch = 256,
                               .drop_last = 0, .train = 1, .crop = 224, .val_resize = 256,
                               .rrc = aug_rrc_default(), .flip_p = 0.5, .max_pixels = 0,
                               .jitter = {0, 0, 0}, .erase = {.p = 0}};
}

static int check_config(const LoaderBatchConfig *c, StkErr *err) {
    if (c->batch < 1 || c->batch > PROTO_MAX_BATCH_N)
        return stk_errf(err, "batch size %u, must be 1..%u", c->batch, PROTO_MAX_BATCH_N);
    if (c->crop < 1 || c->crop > 4096) return stk_errf(err, "crop size %d, must be 1..4096", c->crop);
    if (!c->train && c->val_resize < c->crop)
        return stk_errf(err, "eval resize %d is smaller than the crop %d", c->val_resize, c->crop);
    if (c->flip_p < 0 || c->flip_p > 1) return stk_errf(err, "flip probability %g", c->flip_p);
    if (c->jitter.brightness < 0 || c->jitter.contrast < 0 || c->jitter.saturation < 0)
        return stk_errf(err, "color jitter strengths must be >= 0");
    if (c->erase.p < 0 || c->erase.p > 1 ||
        (c->erase.p > 0 && !(c->erase.scale_lo > 0 && c->erase.scale_lo <= c->erase.scale_hi &&
                             c->erase.scale_hi < 1 && c->erase.ratio_lo > 0 &&
                             c->erase.ratio_lo <= c->erase.ratio_hi)))
        return stk_errf(err, "random erasing p %g scale %g-%g ratio %g-%g", c->erase.p,
                        c->erase.scale_lo, c->erase.scale_hi, c->erase.ratio_lo, c->erase.ratio_hi);
    if (!(c->rrc.scale_lo > 0 && c->rrc.scale_lo <= c->rrc.scale_hi && c->rrc.scale_hi <= 1 &&
          c->rrc.ratio_lo > 0 && c->rrc.ratio_lo <= c->rrc.ratio_hi))
        return stk_errf(err, "RandomResizedCrop ranges scale %g-%g ratio %g-%g", c->rrc.scale_lo,
                        c->rrc.scale_hi, c->rrc.ratio_lo, c->rrc.ratio_hi);
    return 0;
}

int loader_batcher_init(LoaderBatcher *b, const LoaderIndex *ix, const char *root,
                        const LoaderBatchConfig *cfg, StkErr *err) {
    memset(b, 0, sizeof *b);
    if (check_config(cfg, err)) return -1;
    b->cfg = *cfg;
    b->ix = ix;
    b->n = loader_index_count(ix, cfg->split);
    if (b->n == 0)
        return stk_errf(err, "%s: the %s split is empty", ix->path,
                        cfg->split == LOADER_TRAIN ? "train" : "val");
    b->root = strdup(root ? root : loader_index_root(ix));
    b->bad = calloc((b->n + 7) / 8, 1);
    b->order_epoch = UINT32_MAX;
    if (!b->root || !b->bad) {
        loader_batcher_free(b);
        return stk_errf(err, "loader_batcher_init: out of memory");
    }
    if (loader_decoder_init(&b->dec, cfg->max_pixels, err)) {
        loader_batcher_free(b);
        return -1;
    }
    return 0;
}

void loader_batcher_free(LoaderBatcher *b) {
    if (b->ix) loader_decoder_free(&b->dec);
    free(b->root);
    free(b->path);
    free(b->bad);
    memset(b, 0, sizeof *b);
}

uint64_t loader_batcher_batches(const LoaderBatcher *b) {
    return loader_order_batches(b->n, b->cfg.batch, b->cfg.drop_last);
}

static int is_bad(const LoaderBatcher *b, uint64_t s) { return b->bad[s / 8] >> (s % 8) & 1; }

/* root + "/" + rel into b->path (grown as needed). */
static const char *join(LoaderBatcher *b, const char *rel, StkErr *err) {
    size_t need = strlen(b->root) + strlen(rel) + 2;
    if (need > b->path_cap) {
        char *p = realloc(b->path, need);
        if (!p) return stk_errf(err, "out of memory"), NULL;
        b->path = p;
        b->path_cap = need;
    }
    snprintf(b->path, b->path_cap, "%s/%s", b->root, rel);
    return b->path;
}

/* Decodes sample s with augmentation key `key` into the slot image. */
static int decode_sample(LoaderBatcher *b, uint64_t s, uint64_t key, AugImage *slot,
                         int32_t *label, StkErr *err) {
    LoaderSample smp;
    if (loader_index_get(b->ix, b->cfg.split, s, &smp))
        return stk_errf(err, "sample %llu out of range", (unsigned long long)s);
    *label = smp.label;
    const char *path = join(b, smp.path, err);
    if (!path || loader_decode_open(&b->dec, path, err)) return -1;
    LoaderCropSpec spec = {.out_w = b->cfg.crop, .out_h = b->cfg.crop};
    int w = b->dec.width, h = b->dec.height;
    if (b->cfg.train) {
        spec.box = aug_rrc_box(w, h, &b->cfg.rrc, key);
        spec.flip = stk_rng_unit(stk_rng_at(stk_rng_key(key, 1), 0)) < b->cfg.flip_p;
    } else {
        spec.box = (AugBox){0, 0, w, h};
        aug_eval_geometry(w, h, b->cfg.val_resize, b->cfg.crop, &spec.out_w, &spec.out_h,
                          &spec.win_x, &spec.win_y);
    }
    if (loader_decode_crop(&b->dec, &spec, slot, err)) return -1;
    if (b->cfg.train) {
        /* torchvision's order: crop, flip, ColorJitter, (ToTensor, Normalize), erasing */
        aug_color_jitter(slot, &b->cfg.jitter, stk_rng_key(key, 2));
        aug_random_erase(slot, &b->cfg.erase, stk_rng_key(key, 3));
    }
    return 0;
}

/* Tries sample s; on failure marks it bad and reports it the first time. */
static int try_sample(LoaderBatcher *b, uint64_t s, uint64_t key, AugImage *slot,
                      int32_t *label, LoaderBadFileFn *on_bad, void *ctx) {
    if (is_bad(b, s)) return -1;
    StkErr why;
    if (decode_sample(b, s, key, slot, label, &why) == 0) return 0;
    b->bad[s / 8] |= (uint8_t)(1u << (s % 8));
    b->bad_count++;
    if (on_bad) on_bad(ctx, s, b->path ? b->path : "?", why.msg);
    return -1;
}

int loader_batch_fill(LoaderBatcher *b, uint32_t epoch, uint64_t index, uint8_t *pixels,
                      int32_t *labels, uint64_t *ids, uint32_t *n, LoaderBadFileFn *on_bad,
                      void *ctx, StkErr *err) {
    if (index >= loader_batcher_batches(b))
        return stk_errf(err, "batch %llu of epoch %u: the epoch has %llu batches",
                        (unsigned long long)index, epoch,
                        (unsigned long long)loader_batcher_batches(b));
    if (b->order_epoch != epoch) {
        loader_order_init(&b->order, b->n, b->cfg.seed, epoch, b->cfg.train);
        b->order_epoch = epoch;
    }
    const uint32_t count = loader_order_batch_size(b->n, b->cfg.batch, index);
    const size_t slot_bytes = (size_t)b->cfg.crop * b->cfg.crop * 3;
    const uint64_t epoch_key = stk_rng_key(stk_rng_key(b->cfg.seed, KEY_DOMAIN_AUGMENT), epoch);
    const uint64_t first = index * b->cfg.batch;
    for (uint32_t j = 0; j < count; j++) {
        AugImage slot = {pixels + j * slot_bytes, b->cfg.crop, b->cfg.crop, 3,
                         (size_t)b->cfg.crop * 3};
        uint64_t s = loader_order_at(&b->order, first + j);
        if (try_sample(b, s, stk_rng_key(epoch_key, s), &slot, &labels[j], on_bad, ctx) == 0) {
            ids[j] = s;
            continue;
        }
        /* The next good sample of this batch, with a key of its own for this slot; a
         * batch with none (a last batch of one bad file) takes the positions after it. */
        uint64_t k = 1;
        for (; k < b->n; k++) {
            uint64_t pos = k < count ? first + (j + k) % count : (first + k) % b->n;
            uint64_t r = loader_order_at(&b->order, pos);
            uint64_t key = stk_rng_key(stk_rng_key(epoch_key, r), 1 + (uint64_t)j);
            if (try_sample(b, r, key, &slot, &labels[j], on_bad, ctx) == 0) {
                ids[j] = r;
                break;
            }
        }
        if (k == b->n)
            return stk_errf(err, "batch %llu of epoch %u: every sample of the split is a bad file",
                            (unsigned long long)index, epoch);
    }
    *n = count;
    return 0;
}
