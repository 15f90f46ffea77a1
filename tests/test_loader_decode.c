/* test_loader_decode.c: every kind of JPEG decodes as Pillow decodes it, crops match
 * torchvision's resized_crop (fixtures from tests/fixtures/make_jpeg_fixtures.py), and
 * bad files fail with a reason instead of crashing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader_decode.h"

typedef struct JCase {
    char name[64];
    int32_t w, h, crop[4], size;
    double tol;
    uint8_t *full, *crop_px;
} JCase;

static int read_cases(JCase **out) {
    FILE *f = fopen(STOKER_TEST_DATA "/jpeg_expected.bin", "rb");
    cr_assert(f, "cannot open jpeg_expected.bin");
    char magic[4];
    uint32_t version, n;
    cr_assert(fread(magic, 4, 1, f) == 1 && !memcmp(magic, "STKJ", 4));
    cr_assert(fread(&version, 4, 1, f) == 1 && version == 1);
    cr_assert(fread(&n, 4, 1, f) == 1 && n < 100);
    JCase *cs = calloc(n, sizeof *cs);
    for (uint32_t i = 0; i < n; i++) {
        JCase *c = &cs[i];
        uint32_t len;
        int32_t v[7];
        cr_assert(fread(&len, 4, 1, f) == 1 && len < sizeof c->name);
        cr_assert(fread(c->name, 1, len, f) == len);
        cr_assert(fread(v, 4, 7, f) == 7 && fread(&c->tol, 8, 1, f) == 1);
        c->w = v[0], c->h = v[1], c->size = v[6];
        memcpy(c->crop, v + 2, sizeof c->crop);
        size_t fb = (size_t)c->w * c->h * 3, cb = (size_t)c->size * c->size * 3;
        c->full = malloc(fb);
        c->crop_px = malloc(cb);
        cr_assert(fread(c->full, 1, fb, f) == fb && fread(c->crop_px, 1, cb, f) == cb);
    }
    fclose(f);
    *out = cs;
    return (int)n;
}

static void free_cases(JCase *cs, int n) {
    for (int i = 0; i < n; i++) free(cs[i].full), free(cs[i].crop_px);
    free(cs);
}

static double mean_diff(const uint8_t *a, const uint8_t *b, size_t n, int *maxd) {
    double s = 0;
    *maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs(a[i] - b[i]);
        s += d;
        if (d > *maxd) *maxd = d;
    }
    return s / n;
}

static void jpeg_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/jpeg/%s.jpg", STOKER_TEST_DATA, name);
}

Test(loader_decode, full_decode_is_pillows) {
    JCase *cs;
    int n = read_cases(&cs);
    LoaderDecoder d;
    StkErr err;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    for (int i = 0; i < n; i++) {
        JCase *c = &cs[i];
        char path[512];
        jpeg_path(path, sizeof path, c->name);
        cr_assert_eq(loader_decode_open(&d, path, &err), 0, "%s: %s", c->name, err.msg);
        cr_assert(d.width == c->w && d.height == c->h, "%s: %dx%d", c->name, d.width, d.height);
        uint8_t *px = malloc((size_t)c->w * c->h * 3);
        AugImage dst = {px, c->w, c->h, 3, (size_t)c->w * 3};
        cr_assert_eq(loader_decode_full(&d, &dst, &err), 0, "%s: %s", c->name, err.msg);
        int maxd;
        double m = mean_diff(px, c->full, (size_t)c->w * c->h * 3, &maxd);
        cr_assert(maxd == 0, "%s: full decode differs from Pillow (mean %.3f, max %d)", c->name,
                  m, maxd);
        free(px);
    }
    free_cases(cs, n);
    loader_decoder_free(&d);
}

Test(loader_decode, crops_match_torchvision_resized_crop) {
    JCase *cs;
    int n = read_cases(&cs);
    LoaderDecoder d;
    StkErr err;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    for (int i = 0; i < n; i++) {
        JCase *c = &cs[i];
        char path[512];
        jpeg_path(path, sizeof path, c->name);
        cr_assert_eq(loader_decode_open(&d, path, &err), 0, "%s: %s", c->name, err.msg);
        size_t cb = (size_t)c->size * c->size * 3;
        uint8_t *px = malloc(cb);
        AugImage dst = {px, c->size, c->size, 3, (size_t)c->size * 3};
        LoaderCropSpec spec = {{c->crop[0], c->crop[1], c->crop[0] + c->crop[2],
                                c->crop[1] + c->crop[3]}, c->size, c->size, 0, 0, 0};
        cr_assert_eq(loader_decode_crop(&d, &spec, &dst, &err), 0, "%s: %s", c->name, err.msg);
        int maxd;
        double m = mean_diff(px, c->crop_px, cb, &maxd);
        cr_log_info("%s: 1/%d scale, mean |diff| %.3f, max %d", c->name, d.scale_denom, m, maxd);
        if (c->tol == 0) {
            cr_assert_eq(d.scale_denom, 1, "%s", c->name);
            cr_assert(maxd == 0, "%s: crop differs (mean %.3f, max %d)", c->name, m, maxd);
        } else {
            cr_assert(d.scale_denom > 1, "%s: expected a DCT-scaled decode", c->name);
            cr_assert(m < c->tol, "%s: mean |diff| %.3f >= %.1f", c->name, m, c->tol);
        }
        free(px);
    }
    free_cases(cs, n);
    loader_decoder_free(&d);
}

/* Decoding only a crop's rows and columns must give what decoding everything and
 * resizing the box gives, wherever the box falls relative to iMCU boundaries. */
Test(loader_decode, crop_decode_equals_full_decode_then_resize) {
    static const char *names[] = {"ycc420", "restart", "progressive", "gray", "cmyk"};
    static const int xs[] = {0, 9, 15, 16, 17, 30, 33}, ys[] = {0, 5, 8, 15, 16, 17};
    LoaderDecoder d;
    StkErr err;
    AugWork work = {0};
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char path[512];
        jpeg_path(path, sizeof path, names[k]);
        cr_assert_eq(loader_decode_open(&d, path, &err), 0, "%s", err.msg);
        int w = d.width, h = d.height;
        uint8_t *full = malloc((size_t)w * h * 3);
        AugImage f = {full, w, h, 3, (size_t)w * 3};
        cr_assert_eq(loader_decode_full(&d, &f, &err), 0, "%s", err.msg);
        for (size_t a = 0; a < sizeof xs / sizeof *xs; a++)
            for (size_t b = 0; b < sizeof ys / sizeof *ys; b++) {
                AugBox box = {xs[a], ys[b], xs[a] + 40, ys[b] + 35};
                uint8_t want[24 * 24 * 3], got[24 * 24 * 3];
                AugImage dw = {want, 24, 24, 3, 72}, dg = {got, 24, 24, 3, 72};
                cr_assert_eq(aug_resize(&work, &f, box, 24, 24, 0, 0, &dw, &err), 0);
                LoaderCropSpec spec = {box, 24, 24, 0, 0, 0};
                cr_assert_eq(loader_decode_open(&d, path, &err), 0);
                cr_assert_eq(loader_decode_crop(&d, &spec, &dg, &err), 0, "%s", err.msg);
                cr_assert(!memcmp(want, got, sizeof got), "%s: box at (%d,%d) differs",
                          names[k], xs[a], ys[b]);
            }
        free(full);
    }
    aug_work_free(&work);
    loader_decoder_free(&d);
}

Test(loader_decode, flip_mirrors_the_crop) {
    LoaderDecoder d;
    StkErr err;
    char path[512];
    jpeg_path(path, sizeof path, "ycc420");
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    uint8_t a[16 * 16 * 3], b[16 * 16 * 3];
    AugImage da = {a, 16, 16, 3, 48}, db = {b, 16, 16, 3, 48};
    LoaderCropSpec spec = {{5, 5, 45, 45}, 16, 16, 0, 0, 0};
    cr_assert_eq(loader_decode_open(&d, path, &err), 0);
    cr_assert_eq(loader_decode_crop(&d, &spec, &da, &err), 0);
    spec.flip = 1;
    cr_assert_eq(loader_decode_open(&d, path, &err), 0);
    cr_assert_eq(loader_decode_crop(&d, &spec, &db, &err), 0);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            cr_assert(!memcmp(a + (y * 16 + x) * 3, b + (y * 16 + 15 - x) * 3, 3));
    loader_decoder_free(&d);
}

/* Writes bytes to a temporary file and returns its path (static buffer). */
static const char *temp_file(const void *data, size_t len) {
    static char path[64];
    strcpy(path, "/tmp/stoker-decode-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, data, len) == (ssize_t)len);
    close(fd);
    return path;
}

static uint8_t *slurp(const char *name, size_t *len) {
    char path[512];
    jpeg_path(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    static uint8_t buf[1 << 20];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

/* Opens (and if that works, fully decodes) bytes; expects a failure mentioning want. */
static void expect_bad(const void *data, size_t len, uint64_t cap, const char *want) {
    LoaderDecoder d;
    StkErr err = {{0}};
    cr_assert_eq(loader_decoder_init(&d, cap, &err), 0);
    const char *path = temp_file(data, len);
    int rc = loader_decode_open(&d, path, &err);
    if (rc == 0) {
        uint8_t *px = malloc((size_t)d.width * d.height * 3);
        AugImage dst = {px, d.width, d.height, 3, (size_t)d.width * 3};
        rc = loader_decode_full(&d, &dst, &err);
        free(px);
    }
    unlink(path);
    cr_assert_eq(rc, -1, "accepted a bad file, expected '%s'", want);
    cr_assert(strstr(err.msg, want), "error '%s' does not mention '%s'", err.msg, want);
    loader_decoder_free(&d);
}

Test(loader_decode, rejects_empty_file) { expect_bad("", 0, 0, "empty file"); }

Test(loader_decode, rejects_non_jpeg) {
    expect_bad("\x89PNG\r\n\x1a\n0000", 12, 0, "not a JPEG file: starts with 0x89 0x50");
}

Test(loader_decode, rejects_truncated_file) {
    size_t len;
    const uint8_t *p = slurp("ycc420", &len);
    expect_bad(p, len / 2, 0, "truncated");
    expect_bad(p, 300, 0, "truncated");
}

Test(loader_decode, rejects_truncation_that_keeps_an_eoi) {
    size_t len;
    const uint8_t *p = slurp("ycc444", &len);
    uint8_t buf[1 << 16];
    cr_assert(len < sizeof buf);
    memcpy(buf, p, len / 2);
    buf[len / 2] = 0xFF, buf[len / 2 + 1] = 0xD9; /* EOI right after half the scan */
    expect_bad(buf, len / 2 + 2, 0, "premature end of data segment");
}

Test(loader_decode, rejects_corrupt_scan_data) {
    size_t len;
    const uint8_t *p = slurp("ycc444", &len);
    uint8_t buf[1 << 16];
    memcpy(buf, p, len);
    /* bytes 0xFF 0xD0.. inside the scan: a restart marker where none may be */
    for (size_t i = len / 2; i < len / 2 + 64; i += 2) buf[i] = 0xFF, buf[i + 1] = 0xD3;
    expect_bad(buf, len, 0, "Corrupt JPEG data");
}

Test(loader_decode, enforces_the_pixel_cap_on_the_header) {
    size_t len;
    const uint8_t *p = slurp("ycc420", &len);
    expect_bad(p, len, 1000, "75x53 = 0.0 megapixels, over the 0.0 megapixel cap");
    /* a header claiming 60000x60000 is refused before libjpeg allocates for it */
    uint8_t buf[1 << 16];
    memcpy(buf, p, len);
    for (size_t i = 2; i + 8 < len; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xC0) { /* SOF0: FF C0 len(2) P(1) Y(2) X(2) */
            buf[i + 5] = 0xEA, buf[i + 6] = 0x60, buf[i + 7] = 0xEA, buf[i + 8] = 0x60;
            break;
        }
    expect_bad(buf, len, 0, "60000x60000 = 3600.0 megapixels, over the 100.0 megapixel cap");
}

Test(loader_decode, rejects_directories_and_missing_files) {
    LoaderDecoder d;
    StkErr err;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    cr_assert_eq(loader_decode_open(&d, "/tmp", &err), -1);
    cr_assert(strstr(err.msg, "not a regular file"), "%s", err.msg);
    cr_assert_eq(loader_decode_open(&d, "/nonexistent/x.jpg", &err), -1);
    cr_assert(strstr(err.msg, "No such file"), "%s", err.msg);
    loader_decoder_free(&d);
}

Test(loader_decode, decoder_survives_a_bad_file_between_good_ones) {
    LoaderDecoder d;
    StkErr err;
    char path[512];
    jpeg_path(path, sizeof path, "progressive");
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    uint8_t px[8 * 8 * 3], first[8 * 8 * 3];
    AugImage dst = {px, 8, 8, 3, 24};
    LoaderCropSpec spec = {{0, 0, 75, 53}, 8, 8, 0, 0, 0};
    cr_assert_eq(loader_decode_open(&d, path, &err), 0);
    cr_assert_eq(loader_decode_crop(&d, &spec, &dst, &err), 0, "%s", err.msg);
    memcpy(first, px, sizeof px);
    cr_assert_eq(loader_decode_open_mem(&d, "\xFF\xD8\xFF\xFF\xFF\xD9", 6, &err), -1);
    cr_assert_eq(loader_decode_open(&d, path, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_decode_crop(&d, &spec, &dst, &err), 0, "%s", err.msg);
    cr_assert(!memcmp(first, px, sizeof px), "decoder state leaked across images");
    loader_decoder_free(&d);
}
