/* aug_resize.c: Pillow-compatible antialiased bilinear resize (see aug_resize.h).
 * The arithmetic follows Pillow's libImaging/Resample.c step for step (coefficients,
 * 22-bit fixed point, rounding, uint8 intermediate), so results are bit-identical. */
#include "aug_resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

/* 0 only in tests that compare the SIMD passes against the plain C ones. */
static int simd_allowed = 1;

void aug_resize_set_simd(int on) { simd_allowed = on; }

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
    free(w->pairs);
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

/* The AVX2 horizontal pass multiplies with pmaddwd, which takes 16-bit operands, while
 * the coefficients have 22 fractional bits. Each coefficient k is split exactly as
 * k = hi * 2^11 + lo (hi = k >> 11, lo = k & 2047, both fit int16 for |k| <= 2^22), and
 * sum(p * k) = sum(p * hi) * 2^11 + sum(p * lo): the same integer Pillow's int32 loop
 * adds up (integer addition does not care about order, and no partial sum overflows),
 * so the same bytes. One 256-bit register holds one output pixel: the low 128 bits
 * multiply two taps' R, G, B by their hi halves, the high 128 bits by their lo halves,
 * so one pmaddwd covers two taps where the SSE4.1 pass needed two pmulld. */
#define PAIR_LANES 16 /* int16 coefficients per tap pair: [hi of 8 lanes | lo of 8 lanes] */

/* Lays out the coefficients of output pixel i for pmaddwd: per tap pair (t, t+1), the
 * lanes [c_t c_t+1 c_t c_t+1 c_t c_t+1 0 0] with c = hi, then the same with c = lo; a
 * pair past the pixel's last tap has zeros. Returns 0, or -1 if a coefficient is too
 * large to split into int16 halves (never for bilinear; then the caller uses SSE4.1). */
static int pair_coeffs(const int32_t *k, int n, int npairs, int16_t *out) {
    for (int j = 0; j < npairs; j++, out += PAIR_LANES) {
        memset(out, 0, PAIR_LANES * sizeof *out);
        for (int t = 0; t < 2; t++) {
            int x = 2 * j + t;
            int32_t v = x < n ? k[x] : 0;
            int32_t hi = v >> 11, lo = v & 2047;
            if (hi > INT16_MAX || hi < INT16_MIN) return -1;
            for (int ch = 0; ch < 3; ch++) {
                out[2 * ch + t] = (int16_t)hi;
                out[8 + 2 * ch + t] = (int16_t)lo;
            }
        }
    }
    return 0;
}

/* What the AVX2 horizontal pass needs besides the coefficients: the pair layout (every
 * column padded to the same npairs, so the tap loop has a fixed trip count and unrolls),
 * and the columns [first, end) whose last 8-byte load stays inside the source row
 * (x0 is monotonic in the column, so the others are a prefix or a suffix). */
typedef struct HPairs {
    const int16_t *coef; /* npairs * PAIR_LANES per output column */
    int npairs;
    int first, end;
} HPairs;

/* Sums of output column xx over its npairs tap pairs: hi products in the low 128 bits,
 * lo products in the high 128 bits. NP > 0 is a constant in the unrolled callers. */
__attribute__((target("avx2"), always_inline)) static inline __m256i h_sums(
    const uint8_t *in, const int32_t *bounds, const int16_t *coef, int xx, int NP) {
    const __m256i shuf = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                          0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
    const uint8_t *p = in + (size_t)bounds[2 * xx] * 3;
    const int16_t *c = coef + (size_t)xx * NP * PAIR_LANES;
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < NP; j++) {
        int64_t px;
        memcpy(&px, p + 6 * j, 8);
        __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi64x(px), shuf);
        __m256i k = _mm256_loadu_si256((const __m256i *)(c + j * PAIR_LANES));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(v, k));
    }
    return acc;
}

/* Columns first..end-1 of one RGB row, two at a time: their hi and lo halves are
 * regrouped into one register each, combined, rounded and clamped together. Each store
 * writes 4 bytes (the 4th is the next column's first, written after); the row's last
 * column gets exactly 3. */
__attribute__((target("avx2"), always_inline)) static inline void h_span_avx2(
    const uint8_t *in, uint8_t *out, int ow, const int32_t *bounds, const HPairs *hp, int NP) {
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    int xx = hp->first;
    for (; xx + 1 < hp->end; xx += 2) {
        __m256i a = h_sums(in, bounds, hp->coef, xx, NP);
        __m256i b = h_sums(in, bounds, hp->coef, xx + 1, NP);
        __m256i hi = _mm256_permute2x128_si256(a, b, 0x20), lo = _mm256_permute2x128_si256(a, b, 0x31);
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi, 11), lo), half);
        s = _mm256_srai_epi32(s, PRECISION_BITS);
        s = _mm256_packs_epi32(s, s);  /* clamps to int16 */
        s = _mm256_packus_epi16(s, s); /* clamps to 0..255, as clip8 */
        uint32_t pa = (uint32_t)_mm256_cvtsi256_si32(s);
        uint32_t pb = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(s, 1));
        memcpy(out + xx * 3, &pa, 4);
        memcpy(out + xx * 3 + 3, &pb, xx + 2 < ow ? 4 : 3);
    }
    if (xx < hp->end) {
        __m256i a = h_sums(in, bounds, hp->coef, xx, NP);
        __m128i s = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(_mm256_castsi256_si128(a), 11),
                                                _mm256_extracti128_si256(a, 1)),
                                  _mm256_castsi256_si128(half));
        s = _mm_srai_epi32(s, PRECISION_BITS);
        s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
        uint32_t pa = (uint32_t)_mm_cvtsi128_si32(s);
        memcpy(out + xx * 3, &pa, 3);
    }
}

/* One RGB row of the horizontal pass with AVX2 (see above); the columns outside
 * [first, end) go scalar. */
__attribute__((target("avx2"))) static void h_row_rgb_avx2(
    const uint8_t *in, uint8_t *out, int ow, int ksize, const int32_t *kk,
    const int32_t *bounds, const HPairs *hp) {
    for (int xx = 0; xx < hp->first; xx++)
        h_pixel(in + (size_t)bounds[2 * xx] * 3, kk + (size_t)xx * ksize, bounds[2 * xx + 1], 3,
                out + xx * 3);
    switch (hp->npairs) { /* constant trip counts for the common filter sizes */
    case 1: h_span_avx2(in, out, ow, bounds, hp, 1); break;
    case 2: h_span_avx2(in, out, ow, bounds, hp, 2); break;
    case 3: h_span_avx2(in, out, ow, bounds, hp, 3); break;
    case 4: h_span_avx2(in, out, ow, bounds, hp, 4); break;
    default: h_span_avx2(in, out, ow, bounds, hp, hp->npairs); break;
    }
    for (int xx = hp->end; xx < ow; xx++)
        h_pixel(in + (size_t)bounds[2 * xx] * 3, kk + (size_t)xx * ksize, bounds[2 * xx + 1], 3,
                out + xx * 3);
}

static int have_sse41(void) { return simd_allowed && __builtin_cpu_supports("sse4.1"); }
static int have_avx2(void) { return simd_allowed && __builtin_cpu_supports("avx2"); }
#else
static int have_sse41(void) { return 0; }
static inline int have_avx2(void) { return 0; }
#endif


/* Horizontal pass: rows row0..row0+rows of src into tmp (ow columns, c channels). hp
 * (NULL if not made) holds what the AVX2 pass needs. */
static void pass_h(const AugImage *src, int row0, int rows, int ow, int ksize,
                   const int32_t *kk, const int32_t *bounds, const HPairs *hp, uint8_t *tmp) {
    const int c = src->c, simd = c == 3 && have_sse41();
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src->data + (size_t)(row0 + y) * src->stride;
        uint8_t *out = tmp + (size_t)y * ow * c;
#if defined(__x86_64__) && defined(__GNUC__)
        if (hp) {
            h_row_rgb_avx2(in, out, ow, ksize, kk, bounds, hp);
            continue;
        }
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
    (void)hp;
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
/* 32 output bytes of one output row: the taps are summed in four registers that never
 * leave the CPU (the plain loop keeps its sums in a row buffer in memory and passes over
 * it once per tap), then rounded and clamped as clip8 does: shift, saturate to int16,
 * saturate to 0..255. The same products in the same order per value. */
__attribute__((target("avx2"), always_inline)) static inline void v_block32_avx2(
    const uint8_t *col, size_t width, const int32_t *k, int n, uint8_t *out) {
    const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    __m256i a0 = half, a1 = half, a2 = half, a3 = half;
    for (int y = 0; y < n; y++) {
        const uint8_t *row = col + (size_t)y * width;
        const __m256i ky = _mm256_set1_epi32(k[y]);
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)row)), ky));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + 8))), ky));
        a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + 16))), ky));
        a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(row + 24))), ky));
    }
    __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, PRECISION_BITS), _mm256_srai_epi32(a1, PRECISION_BITS));
    __m256i p23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, PRECISION_BITS), _mm256_srai_epi32(a3, PRECISION_BITS));
    /* the packs work per 128-bit lane: put the 4-byte groups back in column order */
    __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23),
                                            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, b);
}

/* The vertical pass with AVX2: 32 bytes of an output row at a time, the rest (fewer than
 * 32) as the plain loop computes them. */
__attribute__((target("avx2"))) static void pass_v_avx2(
    const uint8_t *tmp, int row0, int ksize, const int32_t *kk, const int32_t *bounds,
    int32_t *acc, AugImage *dst) {
    (void)acc;
    const size_t width = (size_t)dst->w * dst->c;
    for (int yy = 0; yy < dst->h; yy++) {
        const int32_t *k = kk + (size_t)yy * ksize;
        const uint8_t *col = tmp + (size_t)(bounds[2 * yy] - row0) * width;
        int n = bounds[2 * yy + 1];
        uint8_t *out = dst->data + (size_t)yy * dst->stride;
        size_t xx = 0;
        for (; xx + 32 <= width; xx += 32) v_block32_avx2(col + xx, width, k, n, out + xx);
        for (; xx < width; xx++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++) ss += col[xx + (size_t)y * width] * k[y];
            out[xx] = clip8(ss);
        }
    }
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

/* Mirrors the horizontal pass's output columns by reversing its per-column coefficients
 * and bounds: the pass then writes column i what it would have written at n-1-i, and the
 * vertical pass, column by column, keeps that order. A flip after resizing for free. */
static void mirror_columns(int32_t *kk, int32_t *bounds, int n, int ksize) {
    for (int a = 0, b = n - 1; a < b; a++, b--) {
        for (int x = 0; x < ksize; x++) {
            int32_t t = kk[(size_t)a * ksize + x];
            kk[(size_t)a * ksize + x] = kk[(size_t)b * ksize + x];
            kk[(size_t)b * ksize + x] = t;
        }
        for (int i = 0; i < 2; i++) {
            int32_t t = bounds[2 * a + i];
            bounds[2 * a + i] = bounds[2 * b + i];
            bounds[2 * b + i] = t;
        }
    }
}

/* Sets up hp for the AVX2 pass over the ow columns of a src_w-wide source: the pair
 * layout in w->pairs and the columns that may use it. Returns NULL when that pass does
 * not apply (not RGB, no AVX2, a coefficient too large to split) or memory is short (the
 * SSE4.1 pass needs none). */
static const HPairs *make_pairs(AugWork *w, int c, int src_w, const int32_t *kk,
                                const int32_t *bounds, int ow, int ksize, HPairs *hp) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (c != 3 || !have_avx2()) return NULL;
    int maxn = 1;
    for (int xx = 0; xx < ow; xx++)
        if (bounds[2 * xx + 1] > maxn) maxn = bounds[2 * xx + 1];
    const int np = (maxn + 1) / 2;
    StkErr ignored;
    size_t len = (size_t)ow * np * PAIR_LANES;
    if (grow((void **)&w->pairs, &w->pairs_cap, len, sizeof *w->pairs, &ignored)) return NULL;
    hp->coef = w->pairs;
    hp->npairs = np;
    hp->first = ow, hp->end = 0;
    for (int xx = 0; xx < ow; xx++) {
        if (pair_coeffs(kk + (size_t)xx * ksize, bounds[2 * xx + 1], np,
                        w->pairs + (size_t)xx * np * PAIR_LANES))
            return NULL;
        if (3 * bounds[2 * xx] + 6 * np + 2 <= 3 * src_w) { /* last load inside the row */
            if (xx < hp->first) hp->first = xx;
            hp->end = xx + 1;
        }
    }
    if (hp->first > hp->end) hp->first = hp->end = 0; /* no column may: all go scalar */
    return hp;
#else
    (void)w, (void)c, (void)src_w, (void)kk, (void)bounds, (void)ow, (void)ksize, (void)hp;
    return NULL;
#endif
}

int aug_resize(AugWork *w, const AugImage *src, AugBox box, int out_w, int out_h, int win_x,
               int win_y, AugImage *dst, StkErr *err) {
    return aug_resize_flip(w, src, box, out_w, out_h, win_x, win_y, 0, dst, err);
}

int aug_resize_flip(AugWork *w, const AugImage *src, AugBox box, int out_w, int out_h,
                    int win_x, int win_y, int flip, AugImage *dst, StkErr *err) {
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
    if (flip) mirror_columns(kh, bh, dst->w, kx);
    /* Source rows the vertical pass reads: bounds grow with the output row. */
    int row0 = bv[0], row1 = bv[2 * (dst->h - 1)] + bv[2 * (dst->h - 1) + 1];
    size_t tmp_bytes = (size_t)(row1 - row0) * dst->w * src->c;
    size_t acc_len = (size_t)dst->w * src->c;
    if (grow((void **)&w->tmp, &w->tmp_cap, tmp_bytes, 1, err) ||
        grow((void **)&w->acc, &w->acc_cap, acc_len, sizeof *w->acc, err))
        return -1;
    HPairs hp;
    const HPairs *php = make_pairs(w, src->c, src->w, kh, bh, dst->w, kx, &hp);
    pass_h(src, row0, row1 - row0, dst->w, kx, kh, bh, php, w->tmp);
    pass_v(w->tmp, row0, ky, kv, bv, w->acc, dst);
    return 0;
}
