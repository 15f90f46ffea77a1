/* test_data_synth.c: the synthetic set (data_synth.h): reproducible bytes for any
 * thread count, seeds that matter, image and file sizes, class folders, learnability. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "data_synth.h"
#include "loader_index.h"
#include "test_loader_fixture.h"

static char *root;
static DataSynthResult res;
static StkErr err;

static void setup(void) {
    root = fx_tmpdir();
    memset(&err, 0, sizeof err);
}

static void teardown(void) {
    fx_rmtree(root);
    free(root);
}

TestSuite(data_synth, .init = setup, .fini = teardown);

/* Small, quick options: 3 classes x 4 train + 2 val, 64x48. */
static DataSynthOptions small(uint64_t seed, int threads) {
    return (DataSynthOptions){.classes = 3, .per_class = 4, .val_per_class = 2, .width = 64,
                              .height = 48, .seed = seed, .quality = 90, .threads = threads};
}

/* Writes root/name with o; returns the path (malloc'd). */
static char *make(const char *name, DataSynthOptions o) {
    char *out = fx_path(root, name);
    cr_assert_eq(data_synth_write(out, &o, &res, &err), 0, "%s", err.msg);
    return out;
}

/* Returns how many of a's 18 samples have a byte-identical file at the same path in b. */
static int count_identical(const char *a, const char *b) {
    LoaderIndex ix;
    char *path = fx_path(a, LOADER_INDEX_DEFAULT_NAME);
    cr_assert_eq(loader_index_open(&ix, path, &err), 0, "%s", err.msg);
    int same = 0, total = 0;
    for (int s = 0; s < LOADER_NUM_SPLITS; s++) {
        LoaderSample smp;
        for (uint64_t i = 0; loader_index_get(&ix, s, i, &smp) == 0; i++, total++) {
            char *pa = fx_path(a, smp.path), *pb = fx_path(b, smp.path);
            size_t na, nb;
            uint8_t *da = fx_read(pa, &na), *db = fx_read(pb, &nb);
            same += na == nb && memcmp(da, db, na) == 0;
            free(da);
            free(db);
            free(pa);
            free(pb);
        }
    }
    cr_assert_eq(total, 18);
    loader_index_close(&ix);
    free(path);
    return same;
}

Test(data_synth, same_seed_gives_identical_bytes_for_any_thread_count) {
    char *a = make("a", small(5, 1)), *b = make("b", small(5, 2));
    cr_expect_eq(count_identical(a, b), 18);
    free(a);
    free(b);
}

Test(data_synth, different_seed_gives_different_images) {
    char *a = make("a", small(5, 2)), *b = make("b", small(6, 2));
    cr_expect_eq(count_identical(a, b), 0);
    free(a);
    free(b);
}

Test(data_synth, jpeg_dimensions_counts_and_class_folders) {
    char *out = make("s", small(1, 2));
    cr_expect_eq(res.written[LOADER_TRAIN], 12);
    cr_expect_eq(res.written[LOADER_VAL], 6);
    cr_expect_eq(res.index.num_classes, 3);
    cr_expect_eq(res.index.num_samples[LOADER_VAL], 6);
    char *p = fx_path(out, "val/class_002/00001.jpg");
    size_t n;
    uint8_t *jpeg = fx_read(p, &n);
    tjhandle tj = tjInitDecompress();
    int w, h, sub, cs;
    cr_assert_eq(tjDecompressHeader3(tj, jpeg, n, &w, &h, &sub, &cs), 0);
    cr_expect_eq(w, 64);
    cr_expect_eq(h, 48);
    cr_expect_eq(cs, TJCS_YCbCr);
    cr_expect_eq(sub, TJSAMP_420);
    tjDestroy(tj);
    free(jpeg);
    free(p);
    free(out);
}

Test(data_synth, class_folder_names_sort_in_numeric_order) {
    DataSynthOptions o = small(1, 2);
    o.classes = 1001;
    o.per_class = 1;
    o.val_per_class = 0;
    o.width = o.height = 8;
    char *out = make("many", o);
    char *last = fx_path(out, "train/class_1000/00000.jpg"), *first = fx_path(out, "train/class_0000");
    cr_expect(fx_exists(last), "%s", last);
    cr_expect(fx_exists(first), "%s", first);
    free(last);
    free(first);
    free(out);
}

Test(data_synth, imagenet_size_at_q90_is_80_to_120_kib) {
    DataSynthOptions o = small(3, 2);
    o.classes = 6; /* one of each shape kind */
    o.per_class = 1;
    o.val_per_class = 0;
    o.width = DATA_SYNTH_DEFAULT_WIDTH;
    o.height = DATA_SYNTH_DEFAULT_HEIGHT;
    char *out = make("big", o);
    char rel[64];
    for (int c = 0; c < 6; c++) {
        snprintf(rel, sizeof rel, "train/class_%03d/00000.jpg", c);
        char *p = fx_path(out, rel);
        size_t n;
        free(fx_read(p, &n));
        cr_expect(n >= 80 * 1024 && n <= 120 * 1024, "%s: %zu bytes", p, n);
        free(p);
    }
    cr_expect_eq(res.bytes[LOADER_TRAIN] / 6 / 1024 >= 80, 1);
    free(out);
}

/* Mean colour of the most saturated tenth of pixels: the shape's colour, roughly. */
static void shape_colour(const uint8_t *rgb, int n, float out[3]) {
    int hist[256] = {0}, cut = 255, taken = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *p = rgb + 3 * i;
        int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
        int mn = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
        hist[mx - mn]++;
    }
    for (int acc = 0; cut > 0 && acc + hist[cut] < n / 10; cut--) acc += hist[cut];
    out[0] = out[1] = out[2] = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t *p = rgb + 3 * i;
        int mx = p[0] > p[1] ? (p[0] > p[2] ? p[0] : p[2]) : (p[1] > p[2] ? p[1] : p[2]);
        int mn = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
        if (mx - mn < cut) continue;
        for (int c = 0; c < 3; c++) out[c] += p[c];
        taken++;
    }
    for (int c = 0; c < 3; c++) out[c] /= (float)(taken ? taken : 1);
}

Test(data_synth, classes_are_separable_by_a_nearest_centroid_on_colour) {
    enum { C = 8, K = 6 };
    DataSynthOptions o = small(11, 1);
    o.width = 128;
    o.height = 96;
    uint8_t *buf = malloc(data_synth_buffer_bytes(&o));
    float feat[C][K][3], centroid[C][3] = {{0}};
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) {
            data_synth_render(&o, LOADER_TRAIN, (uint32_t)c, (uint32_t)k, buf);
            shape_colour(buf, 128 * 96, feat[c][k]);
            for (int j = 0; j < 3; j++) centroid[c][j] += feat[c][k][j] / K;
        }
    int right = 0;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) {
            int best = -1;
            float bestd = 1e30f;
            for (int d = 0; d < C; d++) {
                float dist = 0;
                for (int j = 0; j < 3; j++)
                    dist += (feat[c][k][j] - centroid[d][j]) * (feat[c][k][j] - centroid[d][j]);
                if (dist < bestd) bestd = dist, best = d;
            }
            right += best == c;
        }
    cr_expect_geq(right, C * K * 8 / 10, "%d of %d right", right, C * K);
    free(buf);
}
