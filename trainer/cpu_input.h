/* cpu_input.h: a batch as it arrives (uint8 NHWC) becomes the model's float32 NCHW input,
 * (x / 255 - mean[c]) / std[c] as torchvision's ToTensor + Normalize: the CPU twin of
 * cuda/cuda_input.h, with the same folded arithmetic so the two agree to the last bit of
 * float32 (x * (1 / (255 std)) + (-mean / std)). */
#ifndef CPU_INPUT_H
#define CPU_INPUT_H

#include <stdint.h>

#include "cpu_tensor.h"

/* ImageNet's mean and std, torchvision's usual Normalize. */
extern const float CPU_IMAGENET_MEAN[3], CPU_IMAGENET_STD[3];

/* Normalises shape.n images of shape.h x shape.w x shape.c uint8 at in into out (NCHW).
 * c is 1..4 and every std non-zero; returns 0 or -1 + err. */
int cpu_input_normalize(const uint8_t *in, float *out, Shape4 shape, const float *mean,
                        const float *std, StkErr *err);

#endif
