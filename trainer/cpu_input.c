/* cpu_input.c: uint8 NHWC -> normalised float32 NCHW (see cpu_input.h). */
#include "cpu_input.h"

const float CPU_IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
const float CPU_IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

int cpu_input_normalize(const uint8_t *in, float *out, Shape4 s, const float *mean,
                        const float *std, StkErr *err) {
    if (s.n < 1 || s.h < 1 || s.w < 1 || s.c < 1 || s.c > 4)
        return stk_errf(err, "cpu_input_normalize: bad shape %dx%dx%dx%d", s.n, s.h, s.w, s.c);
    float scale[4], shift[4];
    for (int c = 0; c < s.c; c++) {
        if (std[c] == 0.0f) return stk_errf(err, "cpu_input_normalize: std[%d] is 0", c);
        scale[c] = 1.0f / (255.0f * std[c]);
        shift[c] = -mean[c] / std[c];
    }
    const size_t hw = (size_t)s.h * s.w;
    for (int n = 0; n < s.n; n++) {
        const uint8_t *src = in + (size_t)n * hw * s.c;
        float *dst = out + (size_t)n * hw * s.c;
        for (int c = 0; c < s.c; c++)
            for (size_t p = 0; p < hw; p++) dst[c * hw + p] = src[p * s.c + c] * scale[c] + shift[c];
    }
    return 0;
}
