/* test_loader_scan.c: ImageFolder scanning (loader_scan.h): class order, walk order,
 * what is skipped and counted, val/ mapping, the hash split, and errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader_scan.h"
#include "test_loader_fixture.h"

static char *root;      /* the scratch tree of the running test */
static LoaderScan scan; /* its scan, freed by teardown */
static LoaderScanStats st;
static StkErr err;

static void setup(void) {
    root = fx_tmpdir();
    memset(&scan, 0, sizeof scan);
    memset(&err, 0, sizeof err);
}

static void teardown(void) {
    loader_scan_free(&scan);
    fx_rmtree(root);
    free(root);
}

TestSuite(loader_scan, .init = setup, .fini = teardown);

/* Scans root with a val fraction (< 0: default) and seed; asserts success. */
static void scan_ok(double fraction, uint64_t seed) {
    LoaderScanOptions o = {.val_fraction = fraction, .seed = seed};
    loader_scan_free(&scan);
    cr_assert_eq(loader_scan_run(&scan, root, &o, &st, &err), 0, "scan failed: %s", err.msg);
}

/* Returns the index of the sample with this path, or -1. */
static int64_t find_sample(const char *path) {
    for (uint64_t i = 0; i < scan.num_samples; i++)
        if (strcmp(scan.samples[i].path, path) == 0) return (int64_t)i;
    return -1;
}

Test(loader_scan, classes_sort_by_code_point_like_python_sorted) {
    /* Python: sorted(["apple", "Zebra", "b c", "\u00e9t\u00e9 x", "\u00c4pfel"]) */
    const char *made[] = {"apple", "\xc3\xa9t\xc3\xa9 x", "Zebra", "\xc3\x84pfel", "b c"};
    const char *want[] = {"Zebra", "apple", "b c", "\xc3\x84pfel", "\xc3\xa9t\xc3\xa9 x"};
    char rel[256];
    for (int i = 0; i < 5; i++) {
        snprintf(rel, sizeof rel, "train/%s/img %d.jpg", made[i], i);
        fx_touch(root, rel);
    }
    scan_ok(0, 0);
    cr_assert_eq(scan.num_classes, 5);
    for (uint32_t c = 0; c < 5; c++) {
        cr_expect_str_eq(loader_scan_class_name(&scan, c), want[c], "class %u", c);
        snprintf(rel, sizeof rel, "train/%s/", want[c]);
        cr_expect_eq(strncmp(scan.samples[c].path, rel, strlen(rel)), 0, "sample %u: %s", c,
                     scan.samples[c].path);
        cr_expect_eq(scan.samples[c].label, (int32_t)c);
    }
}

Test(loader_scan, files_found_recursively_in_torchvision_walk_order) {
    /* sorted(os.walk(...)) orders directories by path ("sub" < "sub b" < "sub/deeper",
     * as ' ' < '/'), then files by name within each: not a plain sort of full paths. */
    const char *made[] = {"c/z.jpg", "c/sub/deeper/d.jpg", "c/a.jpg", "c/sub b/c.jpg",
                          "c/sub/b.jpg", "c/A.jpg"};
    const char *want[] = {"train/c/A.jpg", "train/c/a.jpg", "train/c/z.jpg", "train/c/sub/b.jpg",
                          "train/c/sub b/c.jpg", "train/c/sub/deeper/d.jpg"};
    char rel[256];
    for (int i = 0; i < 6; i++) {
        snprintf(rel, sizeof rel, "train/%s", made[i]);
        fx_touch(root, rel);
    }
    scan_ok(0, 0);
    cr_assert_eq(scan.split_count[LOADER_TRAIN], 6);
    for (int i = 0; i < 6; i++) cr_expect_str_eq(scan.samples[i].path, want[i], "sample %d", i);
}

Test(loader_scan, hidden_files_and_dirs_skipped_and_counted) {
    fx_touch(root, "train/cls/ok.jpg");
    fx_touch(root, "train/cls/.hidden.jpg");
    fx_touch(root, "train/cls/.git/inside.jpg");
    fx_touch(root, "train/cls/sub/.cache/deep.jpg");
    fx_touch(root, "train/.ipynb_checkpoints/x.jpg");
    scan_ok(0, 0);
    cr_expect_eq(scan.num_classes, 1);
    cr_expect_eq(scan.num_samples, 1);
    cr_expect_eq(st.hidden_files, 1);
    cr_expect_eq(st.hidden_dirs, 3);
    cr_expect_str_eq(scan.samples[0].path, "train/cls/ok.jpg");
}

Test(loader_scan, non_jpeg_files_skipped_and_counted) {
    fx_touch(root, "train/cls/ok.jpg");
    fx_touch(root, "train/cls/a.png");
    fx_touch(root, "train/cls/notes.txt");
    fx_touch(root, "train/cls/jpg");
    fx_touch(root, "train/cls/x.jpg.gz");
    fx_touch(root, "train/cls/nested/y.webp");
    scan_ok(0, 0);
    cr_expect_eq(scan.num_samples, 1);
    cr_expect_eq(st.non_jpeg, 5);
}

Test(loader_scan, jpeg_extensions_match_in_any_case) {
    const char *names[] = {"a.JPG", "b.Jpeg", "c.jpe", "d.JFIF", "e.jpeg", "f.jPg"};
    char rel[64];
    for (int i = 0; i < 6; i++) {
        snprintf(rel, sizeof rel, "train/cls/%s", names[i]);
        fx_touch(root, rel);
    }
    fx_touch(root, "train/cls/g.jpgx");
    scan_ok(0, 0);
    cr_expect_eq(scan.num_samples, 6);
    cr_expect_eq(st.non_jpeg, 1);
    cr_expect(loader_scan_is_jpeg_name("X.JpEg"));
    cr_expect_not(loader_scan_is_jpeg_name(".jpg"));
}

Test(loader_scan, empty_class_folder_is_not_a_class_and_is_reported) {
    fx_touch(root, "train/a/x.jpg");
    fx_mkdir(root, "train/b");
    fx_touch(root, "train/c/only.txt");
    fx_touch(root, "train/d/y.jpg");
    scan_ok(0, 0);
    cr_assert_eq(scan.num_classes, 2);
    cr_expect_str_eq(loader_scan_class_name(&scan, 0), "a");
    cr_expect_str_eq(loader_scan_class_name(&scan, 1), "d");
    cr_expect_eq(scan.samples[find_sample("train/d/y.jpg")].label, 1);
    cr_expect_eq(st.empty_classes, 2);
    cr_expect_str_eq(st.empty_class_names, "b, c");
}

Test(loader_scan, val_folders_follow_train_class_mapping) {
    fx_touch(root, "train/a/1.jpg");
    fx_touch(root, "train/b/1.jpg");
    fx_touch(root, "train/c/1.jpg");
    fx_touch(root, "val/c/2.jpg");
    fx_touch(root, "val/b/2.jpg");
    fx_touch(root, "val/zz_not_in_train/3.jpg");
    scan_ok(-1, 0);
    cr_expect(st.val_from_folder);
    cr_assert_eq(scan.split_count[LOADER_VAL], 2);
    cr_expect_eq(scan.samples[find_sample("val/b/2.jpg")].label, 1);
    cr_expect_eq(scan.samples[find_sample("val/c/2.jpg")].label, 2);
    cr_expect_eq(scan.samples[find_sample("val/b/2.jpg")].split, LOADER_VAL);
    cr_expect_eq(st.unknown_val_classes, 1);
    cr_expect_str_eq(st.unknown_val_names, "zz_not_in_train");
}

/* Makes n files train/k<i%2>/f<i>.jpg. */
static void make_files(int from, int to) {
    char rel[64];
    for (int i = from; i < to; i++) {
        snprintf(rel, sizeof rel, "train/k%d/f%04d.jpg", i % 2, i);
        fx_touch(root, rel);
    }
}

/* Copies the split of every sample, in path order, for comparisons. */
static uint8_t *splits_by_path(int n) {
    uint8_t *s = calloc((size_t)n, 1);
    char path[64];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "train/k%d/f%04d.jpg", i % 2, i);
        int64_t at = find_sample(path);
        cr_assert_geq(at, 0, "%s missing", path);
        s[i] = scan.samples[at].split;
    }
    return s;
}

Test(loader_scan, hash_split_is_near_fraction_disjoint_and_complete) {
    make_files(0, 1000);
    scan_ok(0.2, 1);
    cr_expect_not(st.val_from_folder);
    cr_expect_eq(scan.split_count[LOADER_TRAIN] + scan.split_count[LOADER_VAL], 1000);
    /* Binomial(1000, 0.2): sd 12.6; 150..250 is 4 sd. */
    cr_expect(scan.split_count[LOADER_VAL] >= 150 && scan.split_count[LOADER_VAL] <= 250,
              "val %llu", (unsigned long long)scan.split_count[LOADER_VAL]);
    uint8_t *s = splits_by_path(1000); /* each file exactly once, in one split */
    for (uint64_t i = 0; i < scan.num_samples; i++)
        cr_assert_eq(scan.samples[i].split, i < scan.split_count[0] ? LOADER_TRAIN : LOADER_VAL);
    free(s);
}

Test(loader_scan, hash_split_is_deterministic_per_seed) {
    make_files(0, 1000);
    scan_ok(0.2, 1);
    uint8_t *a = splits_by_path(1000);
    scan_ok(0.2, 1);
    uint8_t *b = splits_by_path(1000);
    scan_ok(0.2, 2);
    uint8_t *c = splits_by_path(1000);
    cr_expect_eq(memcmp(a, b, 1000), 0, "same seed, different split");
    cr_expect_neq(memcmp(a, c, 1000), 0, "seed 2 gave seed 1's split");
    free(a);
    free(b);
    free(c);
}

Test(loader_scan, hash_split_is_stable_when_files_are_added) {
    make_files(0, 500);
    scan_ok(0.3, 9);
    uint8_t *before = splits_by_path(500);
    make_files(500, 800);
    scan_ok(0.3, 9);
    uint8_t *after = splits_by_path(500);
    cr_expect_eq(memcmp(before, after, 500), 0, "adding files moved old ones");
    cr_expect_eq(scan.num_samples, 800);
    free(before);
    free(after);
}

Test(loader_scan, symlinked_dirs_followed_and_loops_skipped) {
    fx_touch(root, "train/cls/own.jpg");
    fx_touch(root, "elsewhere/linked.jpg");
    fx_symlink("../../elsewhere", root, "train/cls/link");
    fx_symlink("..", root, "train/cls/sub/loop"); /* back to cls: a loop */
    fx_touch(root, "train/cls/sub/deep.jpg");
    scan_ok(0, 0);
    cr_expect_eq(scan.num_samples, 3);
    cr_expect_geq(find_sample("train/cls/link/linked.jpg"), 0);
    cr_expect_eq(st.other, 1, "the loop is counted as other");
}

Test(loader_scan, missing_dir_error_names_path) {
    char *missing = fx_path(root, "nope");
    cr_assert_eq(loader_scan_run(&scan, missing, NULL, &st, &err), -1);
    cr_expect(strstr(err.msg, missing) != NULL, "%s", err.msg);
    cr_expect(strstr(err.msg, "No such file") != NULL, "%s", err.msg);
    free(missing);
}

Test(loader_scan, missing_train_error_names_path) {
    fx_touch(root, "val/a/1.jpg");
    cr_assert_eq(loader_scan_run(&scan, root, NULL, &st, &err), -1);
    cr_expect(strstr(err.msg, "/train") != NULL && strstr(err.msg, "No such file"), "%s",
              err.msg);
}

Test(loader_scan, no_class_with_a_jpeg_is_an_error) {
    fx_touch(root, "train/a/readme.txt");
    cr_assert_eq(loader_scan_run(&scan, root, NULL, &st, &err), -1);
    cr_expect(strstr(err.msg, "no class folder") != NULL, "%s", err.msg);
}

Test(loader_scan, val_fraction_with_val_folder_is_an_error) {
    fx_touch(root, "train/a/1.jpg");
    fx_touch(root, "val/a/2.jpg");
    LoaderScanOptions o = {.val_fraction = 0.1};
    cr_assert_eq(loader_scan_run(&scan, root, &o, &st, &err), -1);
    cr_expect(strstr(err.msg, "val exists") != NULL, "%s", err.msg);
}
