/* test_data_fmnist.c: Fashion-MNIST to ImageFolder (data_fmnist.h) on a crafted source
 * of 12 train and 5 val images: tree, counts, labels, pixels, idempotence, refusals. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "data_fmnist.h"
#include "data_idx.h"
#include "data_tree.h"
#include "loader_index.h"
#include "test_loader_fixture.h"

#define SIDE DATA_FMNIST_SIDE
#define NTRAIN 12
#define NVAL 5

static const uint8_t train_labels[NTRAIN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 7};
static const uint8_t val_labels[NVAL] = {9, 0, 5, 5, 1};

static char *root, *src, *out;
static uint8_t images[2][NTRAIN][SIDE * SIDE]; /* the source pixels per split */
static DataFmnistResult res;
static StkErr err;

/* Image i of a split: a gradient plus a bright square whose place depends on i. */
static void draw(uint8_t *px, int i, int label) {
    int x0 = 2 + (i * 5) % 18, y0 = 2 + (i * 7) % 18;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            px[y * SIDE + x] = (x >= x0 && x < x0 + 8 && y >= y0 && y < y0 + 8)
                                   ? (uint8_t)(230 - 10 * label)
                                   : (uint8_t)(20 + 3 * x + 2 * y);
}

/* Writes prefix-images-idx3-ubyte.gz and prefix-labels-idx1-ubyte.gz into src. */
static void write_split(const char *prefix, int split, const uint8_t *labels, uint32_t n,
                        uint32_t nlabels) {
    char name[128];
    size_t len;
    for (uint32_t i = 0; i < n; i++) draw(images[split][i], (int)i, labels[i]);
    uint8_t *b = fx_idx_bytes(DATA_IDX_MAGIC_IMAGES, n, SIDE, SIDE, images[split][0],
                              (size_t)n * SIDE * SIDE, &len);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    fx_write_gz(src, name, b, len);
    free(b);
    b = fx_idx_bytes(DATA_IDX_MAGIC_LABELS, nlabels, 0, 0, labels, nlabels, &len);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    fx_write_gz(src, name, b, len);
    free(b);
}

static void setup(void) {
    root = fx_tmpdir();
    src = fx_path(root, "src");
    out = fx_path(root, "fm");
    memset(&err, 0, sizeof err);
    write_split("train", 0, train_labels, NTRAIN, NTRAIN);
    write_split("t10k", 1, val_labels, NVAL, NVAL);
}

static void teardown(void) {
    fx_rmtree(root);
    free(root);
    free(src);
    free(out);
}

TestSuite(data_fmnist, .init = setup, .fini = teardown);

static int run(uint32_t limit) {
    DataFmnistOptions o = {.source = src, .limit = limit, .quality = 95, .threads = 2};
    return data_fmnist_write(out, &o, &res, &err);
}

/* Returns "out/<split>/<class of label>/<i>.jpg" (malloc'd). */
static char *image_path(const char *split, int label, int i) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s/%05d.jpg", split, data_fmnist_class_name((uint32_t)label), i);
    return fx_path(out, rel);
}

Test(data_fmnist, writes_the_tree_counts_and_marker) {
    cr_assert_eq(run(0), 0, "%s", err.msg);
    cr_expect_eq(res.written[LOADER_TRAIN], NTRAIN);
    cr_expect_eq(res.written[LOADER_VAL], NVAL);
    cr_expect_not(res.already_complete);
    for (int i = 0; i < NTRAIN; i++) {
        char *p = image_path("train", train_labels[i], i);
        cr_expect(fx_exists(p), "%s missing", p);
        free(p);
    }
    for (int i = 0; i < NVAL; i++) {
        char *p = image_path("val", val_labels[i], i);
        cr_expect(fx_exists(p), "%s missing", p);
        free(p);
    }
    char *marker = fx_path(out, DATA_TREE_MARKER);
    cr_expect(fx_exists(marker));
    free(marker);
    cr_expect_eq(data_tree_stale(out), 0, "a partial directory was left");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(data_fmnist, labels_are_imagefolder_indices_of_the_sorted_names) {
    cr_assert_eq(run(0), 0, "%s", err.msg);
    const char *sorted[DATA_FMNIST_NUM_CLASSES];
    for (uint32_t c = 0; c < DATA_FMNIST_NUM_CLASSES; c++) sorted[c] = data_fmnist_class_name(c);
    qsort(sorted, DATA_FMNIST_NUM_CLASSES, sizeof *sorted, cmp_str);
    cr_expect_str_eq(data_fmnist_class_name(0), "T-shirt_top");
    cr_expect_str_eq(data_fmnist_class_name(9), "Ankle boot");
    LoaderIndex ix;
    char *path = fx_path(out, LOADER_INDEX_DEFAULT_NAME);
    cr_assert_eq(loader_index_open(&ix, path, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_index_num_classes(&ix), DATA_FMNIST_NUM_CLASSES);
    for (uint32_t c = 0; c < DATA_FMNIST_NUM_CLASSES; c++)
        cr_expect_str_eq(loader_index_class_name(&ix, c), sorted[c]);
    cr_expect_eq(loader_index_count(&ix, LOADER_TRAIN), NTRAIN);
    cr_expect_eq(loader_index_count(&ix, LOADER_VAL), NVAL);
    for (int s = 0; s < LOADER_NUM_SPLITS; s++) {
        LoaderSample smp;
        for (uint64_t i = 0; loader_index_get(&ix, s, i, &smp) == 0; i++) {
            int n = atoi(strrchr(smp.path, '/') + 1);
            int orig = s == LOADER_TRAIN ? train_labels[n] : val_labels[n];
            cr_expect_str_eq(loader_index_class_name(&ix, (uint32_t)smp.label),
                             data_fmnist_class_name((uint32_t)orig), "%s", smp.path);
        }
    }
    loader_index_close(&ix);
    free(path);
}

/* Decodes a 28x28 grayscale JPEG into px. */
static void decode(const char *path, uint8_t *px) {
    size_t n;
    uint8_t *jpeg = fx_read(path, &n);
    tjhandle tj = tjInitDecompress();
    int w, h, sub, cs;
    cr_assert_eq(tjDecompressHeader3(tj, jpeg, n, &w, &h, &sub, &cs), 0, "%s", path);
    cr_assert_eq(w, SIDE);
    cr_assert_eq(h, SIDE);
    cr_expect_eq(cs, TJCS_GRAY, "%s is not grayscale", path);
    cr_assert_eq(tjDecompress2(tj, jpeg, n, px, SIDE, 0, SIDE, TJPF_GRAY, 0), 0, "%s: %s", path,
                 tjGetErrorStr2(tj));
    tjDestroy(tj);
    free(jpeg);
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b) {
    double s = 0;
    for (int i = 0; i < SIDE * SIDE; i++) s += abs((int)a[i] - (int)b[i]);
    return s / (SIDE * SIDE);
}

Test(data_fmnist, jpegs_decode_to_their_source_pixels) {
    cr_assert_eq(run(0), 0, "%s", err.msg);
    uint8_t px[SIDE * SIDE];
    for (int i = 0; i < NTRAIN; i++) {
        char *p = image_path("train", train_labels[i], i);
        decode(p, px);
        double own = mean_abs_diff(px, images[0][i]);
        int worst = 0;
        for (int k = 0; k < SIDE * SIDE; k++)
            if (abs((int)px[k] - (int)images[0][i][k]) > worst)
                worst = abs((int)px[k] - (int)images[0][i][k]);
        cr_expect_leq(own, 1.5, "%s: mean |diff| %.2f", p, own); /* q95: measured 0.7 */
        cr_expect_leq(worst, 16, "%s: max |diff| %d", p, worst);
        for (int j = 0; j < NTRAIN; j++) /* and it is this image, not another */
            if (j != i) cr_expect_lt(own, mean_abs_diff(px, images[0][j]), "%s vs %d", p, j);
        free(p);
    }
}

Test(data_fmnist, second_run_of_the_same_build_does_nothing) {
    cr_assert_eq(run(0), 0, "%s", err.msg);
    char *p = image_path("train", train_labels[0], 0);
    struct stat before, after;
    cr_assert_eq(stat(p, &before), 0);
    cr_assert_eq(run(0), 0, "%s", err.msg);
    cr_expect(res.already_complete);
    cr_expect_eq(res.written[LOADER_TRAIN], NTRAIN);
    cr_expect_eq(res.index.num_samples[LOADER_VAL], NVAL);
    cr_assert_eq(stat(p, &after), 0);
    cr_expect_eq(before.st_ino, after.st_ino, "the tree was rewritten");
    free(p);
}

Test(data_fmnist, another_build_in_out_is_refused) {
    cr_assert_eq(run(0), 0, "%s", err.msg);
    cr_assert_eq(run(3), -1);
    cr_expect(strstr(err.msg, "holds another build") && strstr(err.msg, out), "%s", err.msg);
}

Test(data_fmnist, limit_writes_the_first_n_of_each_split) {
    cr_assert_eq(run(4), 0, "%s", err.msg);
    cr_expect_eq(res.written[LOADER_TRAIN], 4);
    cr_expect_eq(res.written[LOADER_VAL], 4);
    cr_expect_eq(res.index.num_samples[LOADER_TRAIN], 4);
    char *p = image_path("train", train_labels[3], 3), *q = image_path("train", train_labels[4], 4);
    cr_expect(fx_exists(p));
    cr_expect_not(fx_exists(q));
    free(p);
    free(q);
}

Test(data_fmnist, label_out_of_range_is_refused_and_leaves_nothing) {
    const uint8_t bad[NVAL] = {1, 2, 10, 3, 4};
    write_split("t10k", 1, bad, NVAL, NVAL);
    cr_assert_eq(run(0), -1);
    cr_expect(strstr(err.msg, "t10k-labels-idx1-ubyte.gz: label 10 of item 2"), "%s", err.msg);
    cr_expect_not(fx_exists(out));
    cr_expect_eq(data_tree_stale(out), 0);
}

Test(data_fmnist, image_and_label_counts_must_agree) {
    write_split("train", 0, train_labels, NTRAIN, NTRAIN - 1);
    cr_assert_eq(run(0), -1);
    cr_expect(strstr(err.msg, "declares 12 images") && strstr(err.msg, "declares 11 labels"),
              "%s", err.msg);
}

Test(data_fmnist, existing_directory_without_marker_is_refused) {
    fx_touch(out, "train/x/1.jpg");
    cr_assert_eq(run(0), -1);
    cr_expect(strstr(err.msg, "no " DATA_TREE_MARKER " marker") != NULL, "%s", err.msg);
}
