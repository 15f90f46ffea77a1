/* test_cuda_dtype.c: cuda_dtype.h's host conversions for the 16-bit types against GCC's
 * _Float16 (IEEE binary16, correctly rounded): every half value round-trips, and float32
 * values spread over the whole range (normals, subnormals, ties, overflow, NaN) round to
 * the same half. Host code only: no GPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cuda_dtype.h"

static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint16_t ref_half(float f) { _Float16 h = (_Float16)f; uint16_t u; memcpy(&u, &h, 2); return u; }

Test(cuda_dtype, every_half_widens_exactly_and_narrows_back) {
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 r;
        uint16_t hh = (uint16_t)h;
        memcpy(&r, &hh, 2);
        float f = cuda_f16_to_f32(hh);
        if (isnan((float)r)) {
            cr_assert(isnan(f), "0x%04x", h);
            cr_assert(isnan(cuda_f16_to_f32(cuda_f32_to_f16(f))), "0x%04x", h);
            continue;
        }
        cr_assert_eq(f, (float)r, "0x%04x: %g vs %g", h, f, (float)r);
        cr_assert_eq(cuda_f32_to_f16(f), hh, "0x%04x", h);
    }
}

Test(cuda_dtype, float_rounds_to_nearest_even_half) {
    /* a stride coprime with 2^32 visits every exponent, both signs and many mantissas */
    uint32_t u = 0;
    for (int i = 0; i < 20000000; i++, u += 214739u) {
        float f = from_bits(u);
        if (isnan(f)) { cr_assert_eq(cuda_f32_to_f16(f) & 0x7c00, 0x7c00); continue; }
        cr_assert_eq(cuda_f32_to_f16(f), ref_half(f), "0x%08x (%g)", u, f);
    }
    /* the ties and edges by name: between halves, at 65504/65520, at 2^-24 and 2^-25 */
    const float edge[] = {65504.0f, 65519.99f, 65520.0f, 1e6f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f,
                          0x1p-14f, 0x1.ffcp-15f, 1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -2.5e-8f};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        cr_expect_eq(cuda_f32_to_f16(edge[i]), ref_half(edge[i]), "%a", edge[i]);
    cr_expect_eq(cuda_f32_to_half(CUDA_BF16, 1.0f), 0x3f80);
    cr_expect_eq(cuda_half_to_f32(CUDA_F16, 0x3c00), 1.0f);
}
