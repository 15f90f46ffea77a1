/* aug_color.h: colour augmentations with torchvision's semantics on PIL images.
 *
 * ColorJitter: brightness, contrast and saturation factors drawn uniformly from
 * [max(0, 1 - x), 1 + x], applied in a random order, each as Pillow's ImageEnhance does
 * (a blend with a degenerate image: black, the grey mean, the grey version), so the
 * single operations match Pillow byte for byte. RandomErasing: torchvision's rectangle
 * rules (10 tries of area and log-ratio); as the loader's output is uint8 before
 * normalisation, the default "erase to 0" becomes a fill with round(255 * mean), the
 * uint8 value that normalises to (almost exactly) 0. Randomness from stk_rng with the
 * caller's key: a pure function of (seed, epoch, sample). RGB images only (c == 3). */
#ifndef AUG_COLOR_H
#define AUG_COLOR_H

#include <stdint.h>

#include "aug_resize.h"

/* ColorJitter strengths; 0 turns an operation off (torchvision's default). */
typedef struct AugJitter {
    double brightness, contrast, saturation;
} AugJitter;

/* RandomErasing settings (torchvision: p 0.5, scale 0.02-0.33, ratio 0.3-3.3). */
typedef struct AugErase {
    double p;                  /* probability of erasing; 0 turns it off */
    double scale_lo, scale_hi; /* erased fraction of the area */
    double ratio_lo, ratio_hi; /* aspect ratio of the rectangle */
    uint8_t fill[3];           /* the value written */
} AugErase;

/* torchvision's RandomErasing defaults with fill round(255 * ImageNet mean). */
AugErase aug_erase_default(void);

/* Pillow's ImageEnhance.Brightness/Contrast/Color(img).enhance(factor), in place. */
void aug_adjust_brightness(AugImage *img, float factor);
void aug_adjust_contrast(AugImage *img, float factor);
void aug_adjust_saturation(AugImage *img, float factor);

/* ColorJitter(brightness, contrast, saturation) with randomness from key. */
void aug_color_jitter(AugImage *img, const AugJitter *j, uint64_t key);

/* RandomErasing with randomness from key; may leave img untouched (p, or no fit). */
void aug_random_erase(AugImage *img, const AugErase *e, uint64_t key);

#endif
