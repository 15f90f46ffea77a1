/* aug_color.c: ColorJitter and RandomErasing (see aug_color.h). The blend follows
 * Pillow's Blend.c: float arithmetic, truncation, clipping only when extrapolating. */
#include "aug_color.h"

#include <math.h>

#include "stk_rng.h"

AugErase aug_erase_default(void) {
    return (AugErase){0.5, 0.02, 1.0 / 3.0, 0.3, 3.3, {124, 116, 104}};
}

/* Pillow's RGB -> L (ITU-R 601-2 luma in 16-bit fixed point, rounded). */
static inline uint8_t luma(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

/* Pillow's Image.blend(degenerate, image, alpha) for one value. */
static inline uint8_t blend(uint8_t degenerate, uint8_t value, float alpha) {
    float t = (float)((int)degenerate + alpha * ((int)value - (int)degenerate));
    if (alpha >= 0 && alpha <= 1.0f) return (uint8_t)t;
    return t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
}

/* Blends every value with one constant degenerate value through a 256-entry table:
 * the same function of each byte as blend(), computed once per image. */
static void blend_constant(AugImage *img, uint8_t degenerate, float factor) {
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend(degenerate, (uint8_t)v, factor);
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->data + (size_t)y * img->stride;
        for (int x = 0; x < img->w * 3; x++) row[x] = lut[row[x]];
    }
}

void aug_adjust_brightness(AugImage *img, float factor) { blend_constant(img, 0, factor); }

void aug_adjust_contrast(AugImage *img, float factor) {
    uint64_t sum = 0;
    for (int y = 0; y < img->h; y++) {
        const uint8_t *row = img->data + (size_t)y * img->stride;
        for (int x = 0; x < img->w; x++) sum += luma(row + 3 * x);
    }
    /* ImageStat's mean of the L image, rounded as ImageEnhance.Contrast does */
    uint8_t mean = (uint8_t)(int)((double)sum / ((double)img->w * img->h) + 0.5);
    blend_constant(img, mean, factor);
}

void aug_adjust_saturation(AugImage *img, float factor) {
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->data + (size_t)y * img->stride;
        for (int x = 0; x < img->w; x++) {
            uint8_t *p = row + 3 * x, l = luma(p);
            for (int c = 0; c < 3; c++) p[c] = blend(l, p[c], factor);
        }
    }
}

/* A factor uniform in [max(0, 1 - s), 1 + s], as ColorJitter._check_input makes it. */
static float factor(double s, uint64_t h) {
    double lo = s < 1 ? 1 - s : 0, hi = 1 + s;
    return (float)(lo + (hi - lo) * stk_rng_unit(h));
}

void aug_color_jitter(AugImage *img, const AugJitter *j, uint64_t key) {
    if (img->c != 3 || (j->brightness <= 0 && j->contrast <= 0 && j->saturation <= 0)) return;
    /* a random order of the three (torchvision permutes four; hue is not offered) */
    int order[3] = {0, 1, 2};
    for (int i = 2; i > 0; i--) {
        int k = (int)stk_rng_below(stk_rng_at(key, (uint64_t)i), (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    for (int i = 0; i < 3; i++) {
        uint64_t h = stk_rng_at(key, 10 + (uint64_t)order[i]);
        if (order[i] == 0 && j->brightness > 0) aug_adjust_brightness(img, factor(j->brightness, h));
        if (order[i] == 1 && j->contrast > 0) aug_adjust_contrast(img, factor(j->contrast, h));
        if (order[i] == 2 && j->saturation > 0) aug_adjust_saturation(img, factor(j->saturation, h));
    }
}

void aug_random_erase(AugImage *img, const AugErase *e, uint64_t key) {
    if (e->p <= 0 || img->c != 3 || stk_rng_unit(stk_rng_at(key, 0)) >= e->p) return;
    double area = (double)img->w * img->h;
    double log_lo = log(e->ratio_lo), log_hi = log(e->ratio_hi);
    uint64_t ctr = 1;
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (e->scale_lo + (e->scale_hi - e->scale_lo) *
                                                  stk_rng_unit(stk_rng_at(key, ctr++)));
        double ratio = exp(log_lo + (log_hi - log_lo) * stk_rng_unit(stk_rng_at(key, ctr++)));
        int h = (int)nearbyint(sqrt(target * ratio)), w = (int)nearbyint(sqrt(target / ratio));
        if (!(h < img->h && w < img->w)) continue;
        int top = (int)stk_rng_below(stk_rng_at(key, ctr++), (uint64_t)(img->h - h + 1));
        int left = (int)stk_rng_below(stk_rng_at(key, ctr++), (uint64_t)(img->w - w + 1));
        for (int y = top; y < top + h; y++) {
            uint8_t *p = img->data + (size_t)y * img->stride + (size_t)left * 3;
            for (int x = 0; x < w; x++, p += 3) p[0] = e->fill[0], p[1] = e->fill[1], p[2] = e->fill[2];
        }
        return;
    }
}
