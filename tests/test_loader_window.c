/* test_loader_window.c: restart-marked files (data_restart) decode to the same pixels as
 * their originals, and crops cut to their MCUs (loader_window) are bit-identical to crops
 * of the whole file: 4:2:0, 4:2:2, 4:4:0, 4:4:4, 4:1:1, gray (also with sampling factors),
 * YCCK, progressive sources, edges, 1x1, DCT scales, unresized whole-pixel boxes, and
 * restart intervals that divide a row's MCUs or do not; progressive and one-scan-per-
 * component files with markers are not cut; broken segment markers fall back to the
 * whole file and fail with libjpeg's reason. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <turbojpeg.h>

#include "data_restart.h"
#include "loader_decode.h"
#include "stk_rng.h"

typedef struct Src {
    const char *name;
    int w, h, subsamp, pf, flags;
} Src;

static const Src SRCS[] = {
    {"420 333x251", 333, 251, TJSAMP_420, TJPF_RGB, 0},
    {"422 200x150", 200, 150, TJSAMP_422, TJPF_RGB, 0},
    {"440 120x97", 120, 97, TJSAMP_440, TJPF_RGB, 0},
    {"444 97x61", 97, 61, TJSAMP_444, TJPF_RGB, 0},
    {"gray 129x77", 129, 77, TJSAMP_GRAY, TJPF_GRAY, 0},
    {"ycck 120x90", 120, 90, TJSAMP_420, TJPF_CMYK, 0},
    {"progressive 420 160x144", 160, 144, TJSAMP_420, TJPF_RGB, TJFLAG_PROGRESSIVE},
    {"420 tall 40x700", 40, 700, TJSAMP_420, TJPF_RGB, 0},
    {"420 1x1", 1, 1, TJSAMP_420, TJPF_RGB, 0},
    {"411 333x251", 333, 251, TJSAMP_411, TJPF_RGB, 0},
};
#define N_SRCS ((int)(sizeof SRCS / sizeof SRCS[0]))

/* A JPEG of smooth gradients plus noise (coefficients in every band), made by TurboJPEG. */
static uint8_t *make_jpeg(const Src *s, size_t *len) {
    int ch = tjPixelSize[s->pf];
    uint8_t *px = malloc((size_t)s->w * s->h * ch);
    for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++)
            for (int c = 0; c < ch; c++) {
                uint64_t r = stk_rng_at(7, (uint64_t)(y * s->w + x) * 4 + (uint64_t)c);
                px[((size_t)y * s->w + x) * ch + c] = (uint8_t)((x * (c + 1) + y * (3 - c % 3)) / 3 + r % 40);
            }
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long n = 0;
    cr_assert_eq(tjCompress2(tj, px, s->w, 0, s->h, s->pf, &buf, &n, s->subsamp, 90, s->flags), 0,
                 "%s: %s", s->name, tjGetErrorStr2(tj));
    tjDestroy(tj);
    free(px);
    uint8_t *out = malloc(n);
    memcpy(out, buf, n);
    tjFree(buf);
    *len = n;
    return out;
}

static uint8_t *decode_full(LoaderDecoder *d, const uint8_t *p, size_t n, int *w, int *h) {
    StkErr err;
    cr_assert_eq(loader_decode_open_mem(d, p, n, &err), 0, "%s", err.msg);
    *w = d->width, *h = d->height;
    AugImage img = {malloc((size_t)*w * *h * 3), *w, *h, 3, (size_t)*w * 3};
    cr_assert_eq(loader_decode_full(d, &img, &err), 0, "%s", err.msg);
    return img.data;
}

/* A crop of p per spec into a fresh buffer; *windowed and *denom as the decoder says. */
static uint8_t *crop(LoaderDecoder *d, const uint8_t *p, size_t n, const LoaderCropSpec *spec,
                     int dw, int dh, int *windowed, int *denom) {
    StkErr err;
    cr_assert_eq(loader_decode_open_mem(d, p, n, &err), 0, "%s", err.msg);
    AugImage img = {malloc((size_t)dw * dh * 3), dw, dh, 3, (size_t)dw * 3};
    cr_assert_eq(loader_decode_crop(d, spec, &img, &err), 0, "%s", err.msg);
    *windowed = d->windowed, *denom = d->scale_denom;
    return img.data;
}

/* Random boxes (fractional, some at the edges, some tiny) and target sizes from 1/10 of
 * the box (a scaled decode) to 2x; the window is all of the output or a centre part. */
static LoaderCropSpec random_spec(int w, int h, uint64_t k, int *dw, int *dh) {
    double u[6];
    for (int i = 0; i < 6; i++) u[i] = (double)(stk_rng_at(11, k * 8 + (uint64_t)i) >> 11) / 9007199254740992.0;
    double bw = w * (0.05 + 0.95 * u[0]), bh = h * (0.05 + 0.95 * u[1]);
    if (k % 5 == 0) bw = w, bh = h;
    double x0 = (w - bw) * (k % 7 == 1 ? 1.0 : u[2]), y0 = (h - bh) * (k % 7 == 2 ? 1.0 : u[3]);
    double f = k % 3 == 0 ? 0.1 + 0.2 * u[4] : 0.4 + 1.6 * u[4];
    LoaderCropSpec s = {{x0, y0, x0 + bw, y0 + bh}, (int)fmax(1, bw * f), (int)fmax(1, bh * f), 0, 0, (int)(k & 1)};
    if (k % 6 == 5) { /* whole pixels at their size: the decoded pixels themselves, unresized */
        s.box.x0 = floor(x0), s.box.y0 = floor(y0);
        s.box.x1 = s.box.x0 + fmax(1, floor(bw)), s.box.y1 = s.box.y0 + fmax(1, floor(bh));
        s.out_w = (int)(s.box.x1 - s.box.x0), s.out_h = (int)(s.box.y1 - s.box.y0), s.flip = 0;
    }
    *dw = s.out_w, *dh = s.out_h;
    if (k % 4 == 3 && s.out_w > 4 && s.out_h > 4)
        *dw = s.out_w / 2, *dh = s.out_h / 2, s.win_x = s.out_w / 4, s.win_y = s.out_h / 4;
    return s;
}

/* Every source rewritten with a marker every `interval` MCUs: the whole decode and 40
 * random crops equal the original's, bit for bit. Returns the crops cut to a window. */
static int same_crops(LoaderDecoder *d, unsigned interval, int *scaled) {
    StkErr err;
    int windows = 0;
    for (int i = 0; i < N_SRCS; i++) {
        const Src *s = &SRCS[i];
        size_t n, m;
        uint8_t *orig = make_jpeg(s, &n), *rst;
        cr_assert_eq(data_restart_jpeg(orig, n, interval, &rst, &m, &err), 0, "%s: %s", s->name, err.msg);
        cr_assert_eq(loader_decode_open_mem(d, orig, n, &err), 0);
        cr_expect_eq(d->can_window, 0, "%s: no restart markers in the original", s->name);
        cr_assert_eq(loader_decode_open_mem(d, rst, m, &err), 0, "%s: %s", s->name, err.msg);
        cr_assert_eq(d->can_window, 1, "%s: the rewrite can be cut", s->name);
        cr_expect_eq(d->geom.interval, (int)interval, "%s", s->name);
        int w, h, w2, h2;
        uint8_t *a = decode_full(d, orig, n, &w, &h), *b = decode_full(d, rst, m, &w2, &h2);
        cr_assert(w == w2 && h == h2 && !memcmp(a, b, (size_t)w * h * 3), "%s: other pixels", s->name);
        free(a), free(b);
        for (uint64_t k = 0; k < 40; k++) {
            int dw, dh, win_a, win_b, den_a, den_b;
            LoaderCropSpec spec = random_spec(w, h, k + 100 * (uint64_t)i, &dw, &dh);
            a = crop(d, orig, n, &spec, dw, dh, &win_a, &den_a);
            b = crop(d, rst, m, &spec, dw, dh, &win_b, &den_b);
            cr_assert(!win_a && den_a == den_b, "%s", s->name);
            const LoaderWindowGeom *g = &d->geom; /* the rewrite's, opened last */
            int whole = spec.box.x0 < 2 * g->mcu_w && spec.box.y0 < 2 * g->mcu_h &&
                        ceil(spec.box.x1 / g->mcu_w) + 1 >= g->cols;
            cr_assert(win_b || interval > 1 || whole, "%s: a marker per MCU gives a window", s->name);
            cr_assert(!memcmp(a, b, (size_t)dw * dh * 3),
                      "%s, interval %u, crop %llu: (%.2f,%.2f)-(%.2f,%.2f) to %dx%d at 1/%d differs%s",
                      s->name, interval, (unsigned long long)k, spec.box.x0, spec.box.y0, spec.box.x1,
                      spec.box.y1, spec.out_w, spec.out_h, den_b, win_b ? " in a window" : "");
            windows += win_b, *scaled += win_b && den_b > 1;
            free(a), free(b);
        }
        free(orig), free(rst);
    }
    return windows;
}

Test(loader_window, restart_files_decode_to_the_same_pixels_and_windows_to_the_same_crops) {
    StkErr err;
    LoaderDecoder d;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    int scaled = 0, windows = same_crops(&d, 1, &scaled);
    cr_expect_gt(scaled, 20, "DCT-scaled windows too: %d", scaled);
    cr_log_info("%d windowed crops, %d of them DCT-scaled", windows, scaled);
    loader_decoder_free(&d);
}

/* Intervals that divide no row or only some (3 divides 333 px's 21 MCUs, 5 and 50 do
 * not: windows of whole rows from a row where a segment starts, when that is not the
 * first). */
Test(loader_window, other_intervals_cut_columns_or_whole_rows) {
    StkErr err;
    LoaderDecoder d;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    /* 333 px of 4:2:0 are 21 MCUs a row: 3 divides them, 5 does not (a segment starts a
     * row every 5 rows), 42 is two rows a segment (every other row) */
    static const unsigned intervals[] = {3, 5, 42};
    for (int i = 0; i < 3; i++) {
        int scaled = 0, windows = same_crops(&d, intervals[i], &scaled);
        cr_log_info("interval %u: %d windowed crops", intervals[i], windows);
        cr_expect_gt(windows, 20, "interval %u: %d windows", intervals[i], windows);
    }
    loader_decoder_free(&d);
}

/* Files TurboJPEG cannot make, by jpeglib: sampling factors on a single component, and
 * restart markers in progressive and in non-interleaved (one scan per component) files. */
typedef struct JlSrc {
    const char *name;
    int ncomp, hs, vs;          /* components; the first one's sampling factors */
    int progressive, per_comp;  /* scan layout */
    int windowable;             /* what loader_window_geom must say */
} JlSrc;

static uint8_t *make_jpeglib(const JlSrc *j, int w, int h, size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &buf, &n);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h;
    c.input_components = j->ncomp, c.in_color_space = j->ncomp == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    c.comp_info[0].h_samp_factor = j->hs, c.comp_info[0].v_samp_factor = j->vs;
    c.restart_interval = 1;
    static const jpeg_scan_info scans[3] = {{1, {0}, 0, 63, 0, 0}, {1, {1}, 0, 63, 0, 0}, {1, {2}, 0, 63, 0, 0}};
    if (j->progressive) jpeg_simple_progression(&c);
    if (j->per_comp) c.scan_info = scans, c.num_scans = 3;
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * j->ncomp);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w * j->ncomp; x++)
            row[x] = (uint8_t)((x * 3 + y * 5) / 4 + stk_rng_at(9, (uint64_t)(y * w * j->ncomp + x)) % 40);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    uint8_t *out = malloc(n);
    memcpy(out, buf, n);
    free(buf);
    *len = n;
    return out;
}

/* The same bytes with windows and without: equal crops, and windows only where the
 * layout allows them. */
Test(loader_window, jpeglib_layouts_window_where_they_can_and_only_there) {
    static const JlSrc srcs[] = {{"gray sampled 2x2", 1, 2, 2, 0, 0, 1},
                                 {"gray sampled 1x2", 1, 1, 2, 0, 0, 1},
                                 {"progressive with markers", 3, 2, 2, 1, 0, 0},
                                 {"one scan per component", 3, 2, 2, 0, 1, 0}};
    StkErr err;
    LoaderDecoder d;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    for (int i = 0; i < 4; i++) {
        size_t n;
        uint8_t *p = make_jpeglib(&srcs[i], 203, 141, &n);
        cr_assert_eq(loader_decode_open_mem(&d, p, n, &err), 0, "%s: %s", srcs[i].name, err.msg);
        cr_assert_eq(d.can_window, srcs[i].windowable, "%s", srcs[i].name);
        int windows = 0;
        for (uint64_t k = 0; k < 30; k++) {
            int dw, dh, wa, wb, da, db;
            LoaderCropSpec spec = random_spec(203, 141, k + 7000 * (uint64_t)i, &dw, &dh);
            d.use_windows = 0;
            uint8_t *a = crop(&d, p, n, &spec, dw, dh, &wa, &da);
            d.use_windows = 1;
            uint8_t *b = crop(&d, p, n, &spec, dw, dh, &wb, &db);
            cr_assert(!memcmp(a, b, (size_t)dw * dh * 3), "%s crop %llu differs", srcs[i].name,
                      (unsigned long long)k);
            windows += wb;
            free(a), free(b);
        }
        cr_expect(srcs[i].windowable ? windows > 10 : windows == 0, "%s: %d windows", srcs[i].name, windows);
        free(p);
    }
    loader_decoder_free(&d);
}

/* A window of a small crop holds far fewer bytes than the file: the point of it. */
Test(loader_window, a_small_crop_cuts_a_small_window) {
    StkErr err;
    LoaderDecoder d;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    size_t n, m;
    uint8_t *orig = make_jpeg(&SRCS[0], &n), *rst;
    cr_assert_eq(data_restart_jpeg(orig, n, 1, &rst, &m, &err), 0, "%s", err.msg);
    LoaderCropSpec spec = {{100.5, 80.25, 180.5, 150.75}, 64, 56, 0, 0, 0};
    int win, den;
    free(crop(&d, rst, m, &spec, 64, 56, &win, &den));
    cr_assert(win);
    /* (80/16 + 3) x (70/16 + 3) MCUs of 21 x 16 */
    cr_expect_lt(d.window.out_len, m / 3, "window %zu of %zu bytes", d.window.out_len, m);
    free(orig), free(rst);
    loader_decoder_free(&d);
}

/* Offset of the j-th restart marker of p (FF D0..D7 after the scan header). */
static size_t nth_marker(const uint8_t *p, size_t n, int j) {
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == 0xFF && p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7 && j-- == 0) return i;
    cr_assert_fail("no restart marker %d", j);
    return 0;
}

static void expect_fallback_error(uint8_t *p, size_t n, const char *what) {
    StkErr err;
    LoaderDecoder d;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    cr_assert_eq(loader_decode_open_mem(&d, p, n, &err), 0, "%s: %s", what, err.msg);
    LoaderCropSpec spec = {{10, 150, 300, 250}, 224, 224, 0, 0, 0};
    uint8_t px[224 * 224 * 3];
    AugImage img = {px, 224, 224, 3, 224 * 3};
    err.msg[0] = 0;
    cr_expect_eq(loader_decode_crop(&d, &spec, &img, &err), -1, "%s decoded", what);
    cr_expect_eq(d.windowed, 0, "%s: a window was cut", what);
    cr_expect(err.msg[0], "%s: no reason given", what);
    cr_log_info("%s: %s", what, err.msg);
    loader_decoder_free(&d);
}

Test(loader_window, broken_segments_fall_back_and_fail_with_the_reason) {
    StkErr err;
    size_t n, m;
    uint8_t *orig = make_jpeg(&SRCS[0], &n), *rst;
    cr_assert_eq(data_restart_jpeg(orig, n, 1, &rst, &m, &err), 0, "%s", err.msg);
    /* a marker out of order */
    uint8_t *bad = malloc(m);
    memcpy(bad, rst, m);
    size_t at = nth_marker(bad, m, 20);
    bad[at + 1] = (uint8_t)(0xD0 + ((bad[at + 1] - 0xD0 + 3) & 7));
    expect_fallback_error(bad, m, "renumbered marker");
    /* the data cut short (an end marker after half of it) */
    memcpy(bad, rst, m);
    size_t half = nth_marker(bad, m, 200);
    bad[half] = 0xFF, bad[half + 1] = 0xD9;
    cr_log_info("cut at %zu of %zu bytes", half, m);
    expect_fallback_error(bad, half + 2, "cut short");
    free(bad), free(orig), free(rst);
}

Test(loader_window, the_rewrite_refuses_what_the_decoder_refuses) {
    StkErr err;
    uint8_t *out;
    size_t len;
    static const uint8_t text[] = "not a jpeg at all";
    cr_expect_eq(data_restart_jpeg(text, sizeof text, 1, &out, &len, &err), -1);
    cr_expect(strstr(err.msg, "not a JPEG"), "%s", err.msg);
    size_t n;
    uint8_t *orig = make_jpeg(&SRCS[0], &n);
    cr_expect_eq(data_restart_jpeg(orig, n / 2, 1, &out, &len, &err), -1, "truncated accepted");
    cr_expect(err.msg[0], "no reason");
    cr_log_info("truncated: %s", err.msg);
    free(orig);
}
