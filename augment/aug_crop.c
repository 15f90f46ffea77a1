/* aug_crop.c: torchvision's crop geometry (see aug_crop.h). */
#include "aug_crop.h"

#include <math.h>

#include "stk_rng.h"

AugRrcParams aug_rrc_default(void) {
    return (AugRrcParams){0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0};
}

/* Python's round() on floats: half to even, which nearbyint does in the default mode. */
static int py_round(double x) { return (int)nearbyint(x); }

static AugBox box_of(int top, int left, int h, int w) {
    return (AugBox){left, top, left + w, top + h};
}

AugBox aug_rrc_box(int width, int height, const AugRrcParams *p, uint64_t key) {
    double area = (double)width * height;
    double log_lo = log(p->ratio_lo), log_hi = log(p->ratio_hi);
    uint64_t ctr = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double u_area = stk_rng_unit(stk_rng_at(key, ctr++));
        double u_ratio = stk_rng_unit(stk_rng_at(key, ctr++));
        double target = area * (p->scale_lo + (p->scale_hi - p->scale_lo) * u_area);
        double ratio = exp(log_lo + (log_hi - log_lo) * u_ratio);
        int w = py_round(sqrt(target * ratio)), h = py_round(sqrt(target / ratio));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            int top = (int)stk_rng_below(stk_rng_at(key, ctr++), (uint64_t)(height - h + 1));
            int left = (int)stk_rng_below(stk_rng_at(key, ctr++), (uint64_t)(width - w + 1));
            return box_of(top, left, h, w);
        }
    }
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < p->ratio_lo) h = py_round(w / p->ratio_lo);
    else if (in_ratio > p->ratio_hi) w = py_round(h * p->ratio_hi);
    if (w < 1) w = 1; /* an image 1 pixel wide and very short */
    if (h < 1) h = 1;
    return box_of((height - h) / 2, (width - w) / 2, h, w);
}

void aug_eval_geometry(int width, int height, int resize, int crop, int *out_w, int *out_h,
                       int *win_x, int *win_y) {
    int short_side = width <= height ? width : height;
    int long_side = width <= height ? height : width;
    int new_long = (int)((double)resize * long_side / short_side);
    *out_w = width <= height ? resize : new_long;
    *out_h = width <= height ? new_long : resize;
    *win_x = py_round((*out_w - crop) / 2.0);
    *win_y = py_round((*out_h - crop) / 2.0);
}

void aug_flip_h(AugImage *img) {
    const int c = img->c;
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->data + (size_t)y * img->stride;
        for (int a = 0, b = img->w - 1; a < b; a++, b--)
            for (int ch = 0; ch < c; ch++) {
                uint8_t t = row[a * c + ch];
                row[a * c + ch] = row[b * c + ch];
                row[b * c + ch] = t;
            }
    }
}
