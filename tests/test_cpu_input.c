/* test_cpu_input.c: uint8 NHWC -> normalised float32 NCHW against a double reference. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cpu_input.h"

Test(cpu_input, matches_to_normalize_in_double) {
    enum { N = 2, H = 5, W = 7, C = 3 };
    uint8_t px[N * H * W * C];
    float out[N * C * H * W];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37 + 5);
    Shape4 s = {N, C, H, W};
    StkErr err;
    cr_assert_eq(cpu_input_normalize(px, out, s, CPU_IMAGENET_MEAN, CPU_IMAGENET_STD, &err), 0);
    for (int n = 0; n < N; n++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) {
                    double ref = (px[((n * H + y) * W + x) * C + c] / 255.0 - CPU_IMAGENET_MEAN[c]) /
                                 CPU_IMAGENET_STD[c];
                    float got = out[((n * C + c) * H + y) * W + x];
                    cr_assert(fabs(got - ref) <= 2e-6, "[%d,%d,%d,%d] %f vs %f", n, c, y, x, got, ref);
                }
}

Test(cpu_input, rejects_bad_shapes_and_zero_std) {
    uint8_t px[4] = {0};
    float out[4], std0[3] = {1, 0, 1};
    StkErr err;
    cr_assert_eq(cpu_input_normalize(px, out, (Shape4){1, 5, 1, 1}, CPU_IMAGENET_MEAN,
                                     CPU_IMAGENET_STD, &err), -1);
    cr_assert(strstr(err.msg, "bad shape"), "%s", err.msg);
    cr_assert_eq(cpu_input_normalize(px, out, (Shape4){1, 3, 1, 1}, CPU_IMAGENET_MEAN, std0, &err), -1);
    cr_assert(strstr(err.msg, "std[1] is 0"), "%s", err.msg);
}
