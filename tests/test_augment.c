/* test_augment.c: resize against Pillow/torchvision fixtures (tests/data/aug_resize.bin,
 * made by tests/fixtures/make_aug_fixtures.py), crop geometry against torchvision's
 * rules, flips. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aug_color.h"
#include "aug_crop.h"
#include "aug_resize.h"

typedef struct Case {
    char name[128];
    int32_t geo[3];      /* src w, h, c */
    double box[4];
    int32_t out[6];      /* out_w, out_h, win_x, win_y, dst_w, dst_h */
    uint8_t *src, *expected;
} Case;

static int read_cases(Case **cases) {
    FILE *f = fopen(STOKER_TEST_DATA "/aug_resize.bin", "rb");
    cr_assert(f, "cannot open %s/aug_resize.bin", STOKER_TEST_DATA);
    char magic[4];
    uint32_t version, n;
    cr_assert(fread(magic, 4, 1, f) == 1 && !memcmp(magic, "STKF", 4));
    cr_assert(fread(&version, 4, 1, f) == 1 && version == 1);
    cr_assert(fread(&n, 4, 1, f) == 1 && n > 0 && n < 1000);
    *cases = calloc(n, sizeof **cases);
    for (uint32_t i = 0; i < n; i++) {
        Case *c = &(*cases)[i];
        uint32_t len;
        cr_assert(fread(&len, 4, 1, f) == 1 && len < sizeof c->name);
        cr_assert(fread(c->name, 1, len, f) == len);
        cr_assert(fread(c->geo, 4, 3, f) == 3 && fread(c->box, 8, 4, f) == 4 &&
                  fread(c->out, 4, 6, f) == 6);
        size_t sb = (size_t)c->geo[0] * c->geo[1] * c->geo[2];
        size_t db = (size_t)c->out[4] * c->out[5] * c->geo[2];
        c->src = malloc(sb);
        c->expected = malloc(db);
        cr_assert(fread(c->src, 1, sb, f) == sb && fread(c->expected, 1, db, f) == db);
    }
    fclose(f);
    return (int)n;
}

Test(augment, resize_matches_pillow_and_torchvision) {
    Case *cases;
    int n = read_cases(&cases);
    AugWork work = {0};
    for (int i = 0; i < n; i++) {
        Case *c = &cases[i];
        AugImage src = {c->src, c->geo[0], c->geo[1], c->geo[2], (size_t)c->geo[0] * c->geo[2]};
        size_t db = (size_t)c->out[4] * c->out[5] * c->geo[2];
        uint8_t *got = malloc(db);
        AugImage dst = {got, c->out[4], c->out[5], c->geo[2], (size_t)c->out[4] * c->geo[2]};
        AugBox box = {c->box[0], c->box[1], c->box[2], c->box[3]};
        StkErr err;
        cr_assert_eq(aug_resize(&work, &src, box, c->out[0], c->out[1], c->out[2], c->out[3],
                                &dst, &err), 0, "%s: %s", c->name, err.msg);
        double sum = 0;
        int maxd = 0;
        size_t exact = 0;
        for (size_t k = 0; k < db; k++) {
            int d = abs(got[k] - c->expected[k]);
            sum += d;
            maxd = d > maxd ? d : maxd;
            exact += d == 0;
        }
        cr_log_info("%s: mean |diff| %.4f, max %d, %zu of %zu exact", c->name, sum / db, maxd,
                    exact, db);
        /* The bar is a mean under 1 grey level; we follow Pillow's arithmetic, so
         * anything beyond off-by-one somewhere is a regression. */
        cr_assert(sum / db < 1.0, "%s: mean |diff| %.3f", c->name, sum / db);
        cr_assert(maxd <= 1, "%s: max |diff| %d", c->name, maxd);
        free(got);
        free(c->src);
        free(c->expected);
    }
    aug_work_free(&work);
    free(cases);
}

Test(augment, resize_rejects_box_outside_image) {
    uint8_t px[4 * 4 * 3] = {0}, out[2 * 2 * 3];
    AugImage src = {px, 4, 4, 3, 12}, dst = {out, 2, 2, 3, 6};
    AugWork work = {0};
    StkErr err;
    cr_assert_eq(aug_resize(&work, &src, (AugBox){0, 0, 5, 4}, 2, 2, 0, 0, &dst, &err), -1);
    cr_assert(strstr(err.msg, "outside the 4x4 image"), "%s", err.msg);
    cr_assert_eq(aug_resize(&work, &src, (AugBox){0, 0, 4, 4}, 2, 2, 1, 0, &dst, &err), -1);
    cr_assert(strstr(err.msg, "outside the 2x2 output"), "%s", err.msg);
    aug_work_free(&work);
}

Test(augment, rrc_boxes_obey_torchvision_ranges) {
    AugRrcParams p = aug_rrc_default();
    double area_sum = 0;
    const int draws = 20000;
    for (int i = 0; i < draws; i++) {
        AugBox b = aug_rrc_box(500, 375, &p, (uint64_t)i * 7919);
        double w = b.x1 - b.x0, h = b.y1 - b.y0;
        cr_assert(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= 500 && b.y1 <= 375, "box out of image");
        cr_assert(w == floor(w) && h == floor(h) && b.x0 == floor(b.x0), "box not integer");
        double frac = w * h / (500.0 * 375.0);
        /* rounding w and h to integers moves area and ratio by a pixel's worth */
        cr_assert(frac > 0.08 * 0.97 && frac <= 1.0, "area fraction %f", frac);
        cr_assert(w / h > 0.75 * 0.97 && w / h < 4.0 / 3.0 * 1.03, "ratio %f", w / h);
        area_sum += frac;
    }
    /* torchvision's get_params gives a mean of 0.4348 over 20,000 draws on 500x375
     * (measured with Debian's torchvision 0.14); its standard error is about 0.002. */
    double mean = area_sum / draws;
    cr_assert(fabs(mean - 0.4348) < 0.01, "mean area fraction %f, torchvision 0.4348", mean);
}

Test(augment, rrc_is_a_function_of_the_key) {
    AugRrcParams p = aug_rrc_default();
    AugBox a = aug_rrc_box(640, 480, &p, 42), b = aug_rrc_box(640, 480, &p, 42);
    cr_assert(!memcmp(&a, &b, sizeof a));
    int differ = 0;
    for (uint64_t k = 0; k < 16; k++) {
        AugBox c = aug_rrc_box(640, 480, &p, 1000 + k);
        differ += memcmp(&a, &c, sizeof a) != 0;
    }
    cr_assert(differ >= 15, "only %d of 16 keys gave a different crop", differ);
}

Test(augment, rrc_falls_back_to_torchvision_centre_crop) {
    AugRrcParams p = aug_rrc_default();
    /* 2000x3: no try can fit (h would be > 3), so torchvision's fallback applies:
     * in_ratio > 4/3 -> h = 3, w = round(3 * 4/3) = 4, centred. */
    AugBox b = aug_rrc_box(2000, 3, &p, 7);
    cr_assert_eq(b.x0, 998); cr_assert_eq(b.x1, 1002);
    cr_assert_eq(b.y0, 0); cr_assert_eq(b.y1, 3);
    /* 3x2000: in_ratio < 3/4 -> w = 3, h = round(3 / 0.75) = 4 */
    b = aug_rrc_box(3, 2000, &p, 7);
    cr_assert_eq(b.x0, 0); cr_assert_eq(b.x1, 3);
    cr_assert_eq(b.y0, 998); cr_assert_eq(b.y1, 1002);
    /* 1x1 always fits its only crop */
    b = aug_rrc_box(1, 1, &p, 7);
    cr_assert(b.x0 == 0 && b.x1 == 1 && b.y0 == 0 && b.y1 == 1);
}

Test(augment, eval_geometry_matches_torchvision) {
    int ow, oh, wx, wy;
    aug_eval_geometry(500, 375, 256, 224, &ow, &oh, &wx, &wy);
    /* Resize(256): short 375 -> 256, long int(256*500/375) = 341; crop offsets round((341-224)/2) = 58 (58.5 to even), 16 */
    cr_assert_eq(ow, 341); cr_assert_eq(oh, 256);
    cr_assert_eq(wx, 58); cr_assert_eq(wy, 16);
    aug_eval_geometry(300, 800, 256, 224, &ow, &oh, &wx, &wy);
    cr_assert_eq(ow, 256); cr_assert_eq(oh, 682);
    cr_assert_eq(wx, 16); cr_assert_eq(wy, 229);
}

Test(augment, flip_mirrors_rows) {
    uint8_t px[2 * 3 * 2] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    AugImage img = {px, 3, 2, 2, 6};
    aug_flip_h(&img);
    uint8_t want[12] = {5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8};
    cr_assert(!memcmp(px, want, sizeof want));
}

Test(augment, color_operations_match_pillow_imageenhance) {
    FILE *f = fopen(STOKER_TEST_DATA "/aug_color.bin", "rb");
    cr_assert(f);
    char magic[4];
    uint32_t version, n;
    int32_t w, h;
    cr_assert(fread(magic, 4, 1, f) == 1 && !memcmp(magic, "STKC", 4));
    cr_assert(fread(&version, 4, 1, f) == 1 && fread(&w, 4, 1, f) == 1 &&
              fread(&h, 4, 1, f) == 1 && fread(&n, 4, 1, f) == 1 && w * h < 100000);
    size_t bytes = (size_t)w * h * 3;
    uint8_t *src = malloc(bytes), *want = malloc(bytes), *got = malloc(bytes);
    cr_assert(fread(src, 1, bytes, f) == bytes);
    static const char *names[] = {"brightness", "contrast", "saturation"};
    for (uint32_t i = 0; i < n; i++) {
        uint32_t op;
        float factor;
        cr_assert(fread(&op, 4, 1, f) == 1 && fread(&factor, 4, 1, f) == 1 && op < 3);
        cr_assert(fread(want, 1, bytes, f) == bytes);
        memcpy(got, src, bytes);
        AugImage img = {got, w, h, 3, (size_t)w * 3};
        if (op == 0) aug_adjust_brightness(&img, factor);
        if (op == 1) aug_adjust_contrast(&img, factor);
        if (op == 2) aug_adjust_saturation(&img, factor);
        size_t differ = 0;
        for (size_t k = 0; k < bytes; k++) differ += got[k] != want[k];
        cr_assert_eq(differ, 0, "%s %.3f: %zu of %zu bytes differ from Pillow", names[op],
                     factor, differ, bytes);
    }
    fclose(f);
    free(src), free(want), free(got);
}

Test(augment, color_jitter_is_keyed_and_off_when_zero) {
    uint8_t a[16 * 16 * 3], b[16 * 16 * 3], orig[16 * 16 * 3];
    for (size_t i = 0; i < sizeof a; i++) orig[i] = (uint8_t)(i * 37 + 11);
    AugJitter j = {0.4, 0.4, 0.4}, off = {0, 0, 0};
    memcpy(a, orig, sizeof a), memcpy(b, orig, sizeof b);
    AugImage ia = {a, 16, 16, 3, 48}, ib = {b, 16, 16, 3, 48};
    aug_color_jitter(&ia, &j, 99);
    aug_color_jitter(&ib, &j, 99);
    cr_assert(!memcmp(a, b, sizeof a), "same key, different result");
    cr_assert(memcmp(a, orig, sizeof a), "jitter changed nothing");
    int differ = 0;
    for (uint64_t k = 0; k < 8; k++) {
        memcpy(b, orig, sizeof b);
        aug_color_jitter(&ib, &j, 1000 + k);
        differ += memcmp(a, b, sizeof a) != 0;
    }
    cr_assert_eq(differ, 8);
    memcpy(b, orig, sizeof b);
    aug_color_jitter(&ib, &off, 5);
    cr_assert(!memcmp(b, orig, sizeof b), "all-zero jitter must be the identity");
}

Test(augment, random_erasing_follows_torchvision_rules) {
    AugErase e = aug_erase_default();
    enum { W = 32, H = 24 };
    static uint8_t px[H][W][3];
    int erased_images = 0;
    double frac_sum = 0;
    for (uint64_t key = 0; key < 2000; key++) {
        memset(px, 200, sizeof px);
        AugImage img = {&px[0][0][0], W, H, 3, W * 3};
        aug_random_erase(&img, &e, key);
        int count = 0, x0 = W, x1 = -1, y0 = H, y1 = -1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                if (px[y][x][0] == 124 && px[y][x][1] == 116 && px[y][x][2] == 104) {
                    count++;
                    x0 = x < x0 ? x : x0, x1 = x > x1 ? x : x1;
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                }
        if (!count) continue;
        erased_images++;
        /* one solid rectangle, strictly smaller than the image on both sides */
        cr_assert_eq(count, (x1 - x0 + 1) * (y1 - y0 + 1), "not a rectangle");
        cr_assert(x1 - x0 + 1 < W && y1 - y0 + 1 < H);
        frac_sum += (double)count / (W * H);
    }
    /* p = 0.5, and a few draws find no fitting rectangle in 10 tries */
    cr_assert(erased_images > 850 && erased_images < 1050, "%d of 2000 erased", erased_images);
    double mean = frac_sum / erased_images;
    cr_assert(mean > 0.08 && mean < 0.2, "mean erased fraction %f", mean);
}

/* A deterministic pseudo-random byte source for the property tests below. */
static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

/* The SSE4.1/AVX2 passes must give the plain C passes' bytes (Pillow's arithmetic) for
 * any geometry: fractional boxes, down- and upscaling, windows, odd widths, boxes at the
 * right edge (where the AVX2 pass falls back per column), 1-4 channels, flipped or not;
 * and a flipped resize must equal resize then flip. */
Test(augment, simd_resize_equals_plain_resize) {
    uint32_t seed = 12345;
    AugWork w1 = {0}, w2 = {0};
    StkErr err;
    for (int it = 0; it < 400; it++) {
        int c = 1 + (int)(lcg(&seed) % 4 == 0 ? lcg(&seed) % 4 : 2); /* mostly RGB */
        int sw = 1 + (int)(lcg(&seed) % 160), sh = 1 + (int)(lcg(&seed) % 120);
        size_t sb = (size_t)sw * sh * c;
        uint8_t *px = malloc(sb);
        for (size_t i = 0; i < sb; i++) px[i] = (uint8_t)(lcg(&seed) >> 24);
        AugImage src = {px, sw, sh, c, (size_t)sw * c};
        double x0 = (lcg(&seed) % 1000) / 1000.0 * sw * 0.6, y0 = (lcg(&seed) % 1000) / 1000.0 * sh * 0.6;
        double x1 = x0 + (sw - x0) * (0.05 + (lcg(&seed) % 950) / 1000.0);
        double y1 = y0 + (sh - y0) * (0.05 + (lcg(&seed) % 950) / 1000.0);
        if (it % 5 == 0) x1 = sw; /* taps up to the last column */
        if (it % 3 == 0) x0 = floor(x0), y0 = floor(y0), x1 = ceil(x1), y1 = ceil(y1);
        AugBox box = {x0, y0, x1, y1};
        int ow = 1 + (int)(lcg(&seed) % 90), oh = 1 + (int)(lcg(&seed) % 90);
        int dw = 1 + (int)(lcg(&seed) % ow), dh = 1 + (int)(lcg(&seed) % oh);
        int wx = (int)(lcg(&seed) % (ow - dw + 1)), wy = (int)(lcg(&seed) % (oh - dh + 1));
        int flip = (int)(lcg(&seed) % 2);
        size_t db = (size_t)dw * dh * c;
        uint8_t *plain = malloc(db), *simd = malloc(db);
        AugImage dp = {plain, dw, dh, c, (size_t)dw * c}, ds = {simd, dw, dh, c, (size_t)dw * c};
        aug_resize_set_simd(0);
        cr_assert_eq(aug_resize(&w1, &src, box, ow, oh, wx, wy, &dp, &err), 0, "%s", err.msg);
        if (flip) aug_flip_h(&dp);
        aug_resize_set_simd(1);
        cr_assert_eq(aug_resize_flip(&w2, &src, box, ow, oh, wx, wy, flip, &ds, &err), 0, "%s",
                     err.msg);
        cr_assert(!memcmp(plain, simd, db),
                  "case %d: %dx%dx%d box (%g,%g)-(%g,%g) -> %dx%d window %dx%d at (%d,%d) flip %d",
                  it, sw, sh, c, x0, y0, x1, y1, ow, oh, dw, dh, wx, wy, flip);
        free(px), free(plain), free(simd);
    }
    aug_work_free(&w1);
    aug_work_free(&w2);
}
