/* aug_resize.h: antialiased bilinear resize of uint8 images, matching Pillow.
 *
 * Same algorithm as Pillow's Image.resize(size, BILINEAR, box): separable, horizontal
 * pass into a uint8 intermediate then vertical; the filter support grows with the
 * downscale factor (that is the antialiasing); coefficients are normalised per output
 * pixel and applied in 22-bit fixed point with Pillow's rounding. torchvision's
 * Resize/RandomResizedCrop on PIL images call exactly this, so recipes carry over.
 *
 * Two things Pillow's API lacks, both free here: the source box is fractional (a crop
 * expressed in a DCT-downscaled decode stays exact), and only a window of the output
 * can be produced (resize-then-centre-crop without computing the pixels thrown away,
 * bit-identical to resizing everything and cropping). */
#ifndef AUG_RESIZE_H
#define AUG_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

/* An image in memory: rows of w*c bytes, stride bytes apart. */
typedef struct AugImage {
    uint8_t *data;  /* first pixel */
    int w, h, c;    /* width, height, channels (1..4) */
    size_t stride;  /* bytes from one row to the next, >= w*c */
} AugImage;

/* A region of an image in pixel coordinates, x0 < x1, y0 < y1; may be fractional. */
typedef struct AugBox {
    double x0, y0, x1, y1;
} AugBox;

/* Scratch space reused across calls; grows to the largest call seen, so the steady
 * state allocates nothing. Zero-initialise it ({0}) before first use. */
typedef struct AugWork {
    int32_t *coef;  /* fixed-point coefficients, horizontal then vertical */
    int32_t *bound; /* (first source index, count) per output column then row */
    uint8_t *tmp;   /* the horizontal pass's output */
    int32_t *acc;   /* one output row's sums in the vertical pass */
    int16_t *pairs; /* horizontal coefficients split and laid out for the AVX2 pass */
    size_t coef_cap, bound_cap, tmp_cap, acc_cap, pairs_cap; /* elements allocated in each */
} AugWork;

void aug_work_free(AugWork *w);

/* Resizes box of src to an out_w x out_h image and writes the window starting at
 * (win_x, win_y) of size dst->w x dst->h of that image into dst (dst->c == src->c).
 * The window must lie inside out_w x out_h; the box inside src. Returns 0, or -1 with
 * err (bad geometry, out of memory). */
int aug_resize(AugWork *w, const AugImage *src, AugBox box, int out_w, int out_h,
               int win_x, int win_y, AugImage *dst, StkErr *err);

/* The same, mirrored left to right when flip: bytes equal to aug_resize then aug_flip_h,
 * at no extra cost (the horizontal pass writes its columns in reverse). */
int aug_resize_flip(AugWork *w, const AugImage *src, AugBox box, int out_w, int out_h,
                    int win_x, int win_y, int flip, AugImage *dst, StkErr *err);

/* Tests only: 0 makes every pass take its plain C path (same bytes, slower), 1 (the
 * default) lets each use SSE4.1/AVX2 where the CPU has them. */
void aug_resize_set_simd(int on);

#endif
