/* aug_crop.h: where crops land, with torchvision's semantics so recipes carry over.
 *
 * RandomResizedCrop.get_params (10 tries, then the centre fallback), the eval transform
 * Resize(short side) + CenterCrop expressed as a resize window, and horizontal flip.
 * Randomness comes from stk_rng.h with a caller's key, so a sample's crop depends only
 * on (seed, epoch, sample), never on which loader or thread made it. */
#ifndef AUG_CROP_H
#define AUG_CROP_H

#include <stdint.h>

#include "aug_resize.h"

/* RandomResizedCrop's ranges (torchvision defaults: 0.08-1 and 3/4-4/3). */
typedef struct AugRrcParams {
    double scale_lo, scale_hi; /* fraction of the image area */
    double ratio_lo, ratio_hi; /* width / height */
} AugRrcParams;

/* torchvision's defaults. */
AugRrcParams aug_rrc_default(void);

/* The crop RandomResizedCrop takes from a width x height image: integer box, drawn from
 * stk_rng_at(key, 0..). Same rules as torchvision: up to 10 tries of (area, log-ratio)
 * uniforms with Python rounding, then the central fallback clamped to the ratio range. */
AugBox aug_rrc_box(int width, int height, const AugRrcParams *p, uint64_t key);

/* Eval geometry: torchvision's Resize(resize) (short side to resize, long side truncated
 * as int(resize * long / short)) then CenterCrop(crop). Sets the resized size and the
 * crop window within it. crop must be <= resize (checked by the caller's config). */
void aug_eval_geometry(int width, int height, int resize, int crop, int *out_w, int *out_h,
                       int *win_x, int *win_y);

/* Mirrors img left to right in place. */
void aug_flip_h(AugImage *img);

#endif
