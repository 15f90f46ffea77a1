/* aug_resize.c: Pillow-compatible antialiased bilinear resize (see aug_resize.h).
 * The arithmetic follows Pillow's libImaging/Resample.c step for step (coefficients,
 * 22-bit fixed point, rounding, uint8 intermediate), so results are bit-identical. */
#include "aug_resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Grows *p to hold n elements of size sz (never shrinks). */
static int grow(void **p, size_t *cap, size_t n, size_t sz, StkErr *err) {
    if (n <= *cap) return 0;
    void *q = realloc(*p, n * sz);
    if (!q) return stk_errf(err, "aug_resize: out of memory (%zu bytes)", n * sz);
    *p = q;
    *cap = n;
    return 0;
}

void aug_work_free(AugWork *w) {
    free(w->coef);
    free(w->bound);
    free(w->tmp);
    free(w->acc);
    *w = (AugWork){0};
}

/* Taps per output pixel when in0..in1 maps onto out_size pixels. */
static int taps(double in0, double in1, int out_size) {
    double scale = (in1 - in0) / out_size;
    return (int)ceil(1.0 * (scale < 1.0 ? 1.0 : scale)) * 2 + 1;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for output pixels first..first+n of
 * the box in0..in1 of an axis resized to out_size. Writes ksize coefficients and a
 * (min, count) bound per output pixel. Taps are clamped to the box's pixels
 * floor(in0)..ceil(in1), not the whole image: torchvision crops and then resizes, so
 * pixels outside the crop never contribute (for integer boxes this is bit-identical). */
static void coeffs(double in0, double in1, int out_size, int first, int n, int ksize,
                   int32_t *kk, int32_t *bounds) {
    int lo = (int)floor(in0), hi = (int)ceil(in1);
    double scale = (in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    for (int i = 0; i < n; i++) {
        int xx = first + i;
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < lo) xmin = lo;
        int xmax = (int)(center + support + 0.5);
        if (xmax > hi) xmax = hi;
        xmax -= xmin;
        /* Twice through the taps (sum, then normalise) instead of a ksize-long buffer. */
        for (int x = 0; x < xmax; x++) ww += bilinear((x + xmin - center + 0.5) * ss);
        int32_t *k = kk + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? bilinear((x + xmin - center + 0.5) * ss) : 0.0;
            if (ww != 0.0) v /= ww;
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                   : 0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * i] = xmin;
        bounds[2 * i + 1] = xmax;
    }
}

/* One output pixel of the horizontal pass for C channels: C accumulators over the taps,
 * as Pillow does; C is a constant in each caller so the channel loop unrolls. */
static inline void h_pixel(const uint8_t *p, const int32_t *k, int n, int C, uint8_t *out) {
    int32_t ss[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                     1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1)};
    for (int x = 0; x < n; x++)
        for (int ch = 0; ch < C; ch++) ss[ch] += p[x * C + ch] * k[x];
    for (int ch = 0; ch < C; ch++) out[ch] = clip8(ss[ch]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* One RGB row of the horizontal pass with SSE4.1: per tap, the pixel's 3 bytes (and one
 * more, ignored) widen to 4 int32 lanes and multiply-add with the broadcast coefficient.
 * Same integers, same order per channel as the scalar code, so the same bytes. The last
 * pixel of the row is never read 4 bytes wide: output pixels touching it go scalar. */
__attribute__((target("sse4.1"))) static void h_row_rgb_sse41(
    const uint8_t *in, int in_w, uint8_t *out, int ow, int ksize, const int32_t *kk,
    const int32_t *bounds) {
    const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
    for (int xx = 0; xx < ow; xx++) {
        const int32_t *k = kk + (size_t)xx * ksize;
        int x0 = bounds[2 * xx], n = bounds[2 * xx + 1];
        if (x0 + n >= in_w) {
            h_pixel(in + (size_t)x0 * 3, k, n, 3, out + xx * 3);
            continue;
        }
        const uint8_t *p = in + (size_t)x0 * 3;
        __m128i acc = half;
        for (int x = 0; x < n; x++) {
            int32_t px;
            memcpy(&px, p + 3 * x, 4);
            __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
            acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[x])));
        }
        acc = _mm_srai_epi32(acc, PRECISION_BITS);
        acc = _mm_packs_epi32(acc, acc);   /* clamps to int16 */
        acc = _mm_packus_epi16(acc, acc);  /* clamps to 0..255, as clip8 */
        uint32_t rgbx = (uint32_t)_mm_cvtsi128_si32(acc);
        memcpy(out + xx * 3, &rgbx, 3);
    }
}

static int have_sse41(void) { return __builtin_cpu_supports("sse4.1"); }
static int have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#else
static int have_sse41(void) { return 0; }
#endif

/* Horizontal pass: rows row0..row0+rows of src into tmp (ow columns, c channels). */
static void pass_h(const AugImage *src, int row0, int rows, int ow, int ksize,
                   const int32_t *kk, const int32_t *bounds, uint8_t *tmp) {
    const int c = src->c, simd = c == 3 && have_sse41();
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src->data + (size_t)(row0 + y) * src->stride;
        uint8_t *out = tmp + (size_t)y * ow * c;
#if defined(__x86_64__) && defined(__GNUC__)
        if (simd) {
            h_row_rgb_sse41(in, src->w, out, ow, ksize, kk, bounds);
            continue;
        }
#endif
        for (int xx = 0; xx < ow; xx++) {
            const int32_t *k = kk + (size_t)xx * ksize;
            const uint8_t *p = in + (size_t)bounds[2 * xx] * c;
            int n = bounds[2 * xx + 1];
            switch (c) {
            case 3: h_pixel(p, k, n, 3, out + xx * 3); break;
            case 1: h_pixel(p, k, n, 1, out + xx); break;
            default: h_pixel(p, k, n, c, out + xx * c); break;
            }
        }
    }
    (void)simd;
}

/* Vertical pass: tmp (rows starting at source row row0, ow*c wide) into dst. Taps outer,
 * columns inner into an int32 row accumulator, so the inner loop is contiguous and
 * vectorises; the sums are the same integers in the same order per output value. */
static inline __attribute__((always_inline)) void pass_v_body(
    const uint8_t *tmp, int row0, int ksize, const int32_t *kk, const int32_t *bounds,
    int32_t *acc, AugImage *dst) {
    const size_t width = (size_t)dst->w * dst->c;
    for (int yy = 0; yy < dst->h; yy++) {
        const int32_t *k = kk + (size_t)yy * ksize;
        const uint8_t *col = tmp + (size_t)(bounds[2 * yy] - row0) * width;
        int n = bounds[2 * yy + 1];
        for (size_t xx = 0; xx < width; xx++) acc[xx] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *row = col + (size_t)y * width;
            const int32_t ky = k[y];
            for (size_t xx = 0; xx < width; xx++) acc[xx] += row[xx] * ky;
        }
        uint8_t *out = dst->data + (size_t)yy * dst->stride;
        for (size_t xx = 0; xx < width; xx++) out[xx] = clip8(acc[xx]);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The same loop compiled for AVX2: 8-lane 32-bit multiplies instead of SSE2's emulated
 * ones; chosen at run time. */
__attribute__((target("avx2"))) static void pass_v_avx2(
    const uint8_t *tmp, int row0, int ksize, const int32_t *kk, const int32_t *bounds,
    int32_t *acc, AugImage *dst) {
    pass_v_body(tmp, row0, ksize, kk, bounds, acc, dst);
}
#endif

static void pass_v(const uint8_t *tmp, int row0, int ksize, const int32_t *kk,
                   const int32_t *bounds, int32_t *acc, AugImage *dst) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (have_avx2()) {
        pass_v_avx2(tmp, row0, ksize, kk, bounds, acc, dst);
        return;
    }
#endif
    pass_v_body(tmp, row0, ksize, kk, bounds, acc, dst);
}

static int check_geometry(const AugImage *src, AugBox b, int out_w, int out_h, int win_x,
                          int win_y, const AugImage *dst, StkErr *err) {
    if (src->c < 1 || src->c > 4 || dst->c != src->c)
        return stk_errf(err, "aug_resize: channels %d -> %d (must match, 1..4)", src->c, dst->c);
    if (!(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= src->w && b.y1 <= src->h && b.x0 < b.x1 &&
          b.y0 < b.y1))
        return stk_errf(err, "aug_resize: box (%g,%g)-(%g,%g) outside the %dx%d image", b.x0,
                        b.y0, b.x1, b.y1, src->w, src->h);
    if (out_w < 1 || out_h < 1 || dst->w < 1 || dst->h < 1 || win_x < 0 || win_y < 0 ||
        win_x + dst->w > out_w || win_y + dst->h > out_h)
        return stk_errf(err, "aug_resize: window %dx%d at (%d,%d) outside the %dx%d output",
                        dst->w, dst->h, win_x, win_y, out_w, out_h);
    return 0;
}

int aug_resize(AugWork *w, const AugImage *src, AugBox box, int out_w, int out_h, int win_x,
               int win_y, AugImage *dst, StkErr *err) {
    if (check_geometry(src, box, out_w, out_h, win_x, win_y, dst, err)) return -1;
    int kx = taps(box.x0, box.x1, out_w), ky = taps(box.y0, box.y1, out_h);
    size_t ncoef = (size_t)dst->w * kx + (size_t)dst->h * ky;
    if (grow((void **)&w->coef, &w->coef_cap, ncoef, sizeof *w->coef, err) ||
        grow((void **)&w->bound, &w->bound_cap, 2 * (size_t)(dst->w + dst->h),
             sizeof *w->bound, err))
        return -1;
    int32_t *kh = w->coef, *kv = w->coef + (size_t)dst->w * kx;
    int32_t *bh = w->bound, *bv = w->bound + 2 * (size_t)dst->w;
    coeffs(box.x0, box.x1, out_w, win_x, dst->w, kx, kh, bh);
    coeffs(box.y0, box.y1, out_h, win_y, dst->h, ky, kv, bv);
    /* Source rows the vertical pass reads: bounds grow with the output row. */
    int row0 = bv[0], row1 = bv[2 * (dst->h - 1)] + bv[2 * (dst->h - 1) + 1];
    size_t tmp_bytes = (size_t)(row1 - row0) * dst->w * src->c;
    size_t acc_len = (size_t)dst->w * src->c;
    if (grow((void **)&w->tmp, &w->tmp_cap, tmp_bytes, 1, err) ||
        grow((void **)&w->acc, &w->acc_cap, acc_len, sizeof *w->acc, err))
        return -1;
    pass_h(src, row0, row1 - row0, dst->w, kx, kh, bh, w->tmp);
    pass_v(w->tmp, row0, ky, kv, bv, w->acc, dst);
    return 0;
}
