/* test_loader_index.c: the index file (loader_index.h): round trip through write and
 * open, O(1) lookup by split position, and rejection of damaged files with a message
 * that says what is wrong. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader_index.h"
#include "test_loader_fixture.h"

static char *root;     /* scratch tree */
static char *ixpath;   /* root/stoker.index */
static LoaderIndex ix; /* closed by teardown */
static StkErr err;

/* A small tree: 3 classes, nested files, a val/ folder. */
static void make_tree(void) {
    fx_touch(root, "train/cat/a.jpg");
    fx_touch(root, "train/cat/sub/b.jpg");
    fx_write(root, "train/dog/c.jpg", "0123456789", 10);
    fx_touch(root, "train/dog/d.jpeg");
    fx_touch(root, "train/\xc3\xa9mu sp/e.jpg");
    fx_touch(root, "val/dog/f.jpg");
    fx_touch(root, "val/cat/g.jpg");
}

static void setup(void) {
    root = fx_tmpdir();
    ixpath = fx_path(root, LOADER_INDEX_DEFAULT_NAME);
    memset(&ix, 0, sizeof ix);
    memset(&err, 0, sizeof err);
    make_tree();
}

static void teardown(void) {
    loader_index_close(&ix);
    fx_rmtree(root);
    free(root);
    free(ixpath);
}

TestSuite(loader_index, .init = setup, .fini = teardown);

static void build_ok(void) {
    cr_assert_eq(loader_index_build(root, NULL, NULL, NULL, &err), 0, "%s", err.msg);
}

Test(loader_index, round_trip_gives_the_scanned_samples) {
    LoaderScan scan;
    LoaderScanStats st;
    cr_assert_eq(loader_scan_run(&scan, root, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_index_write(&scan, &st, ixpath, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_index_open(&ix, ixpath, &err), 0, "%s", err.msg);
    cr_expect_str_eq(loader_index_root(&ix), scan.root);
    cr_assert_eq(loader_index_num_classes(&ix), scan.num_classes);
    for (uint32_t c = 0; c < scan.num_classes; c++)
        cr_expect_str_eq(loader_index_class_name(&ix, c), loader_scan_class_name(&scan, c));
    uint64_t k = 0;
    for (int s = 0; s < LOADER_NUM_SPLITS; s++) {
        cr_assert_eq(loader_index_count(&ix, s), scan.split_count[s]);
        for (uint64_t i = 0; i < scan.split_count[s]; i++, k++) {
            LoaderSample got;
            cr_assert_eq(loader_index_get(&ix, s, i, &got), 0);
            cr_expect_str_eq(got.path, scan.samples[k].path);
            cr_expect_eq(got.label, scan.samples[k].label);
            cr_expect_eq(got.file_size, scan.samples[k].size);
        }
    }
    cr_expect_eq(k, 7);
    loader_scan_free(&scan);
}

Test(loader_index, lookup_is_by_position_within_a_split) {
    build_ok();
    cr_assert_eq(loader_index_open(&ix, ixpath, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_index_count(&ix, LOADER_TRAIN), 5);
    cr_assert_eq(loader_index_count(&ix, LOADER_VAL), 2);
    LoaderSample s;
    cr_assert_eq(loader_index_get(&ix, LOADER_VAL, 0, &s), 0);
    cr_expect_str_eq(s.path, "val/cat/g.jpg");
    cr_expect_str_eq(loader_index_class_name(&ix, (uint32_t)s.label), "cat");
    cr_assert_eq(loader_index_get(&ix, LOADER_TRAIN, 2, &s), 0);
    cr_expect_str_eq(s.path, "train/dog/c.jpg");
    cr_expect_eq(s.file_size, 10);
    cr_expect_eq(loader_index_get(&ix, LOADER_VAL, 2, &s), -1);
    cr_expect_eq(loader_index_class_count(&ix, 1, LOADER_VAL), 1);
    cr_expect_null(loader_index_class_name(&ix, 3));
}

Test(loader_index, hash_split_settings_are_recorded) {
    char *dir = fx_path(root, "hashed");
    fx_touch(dir, "train/a/1.jpg");
    fx_touch(dir, "train/a/2.jpg");
    LoaderScanOptions o = {.val_fraction = 0.25, .seed = 42};
    cr_assert_eq(loader_index_build(dir, &o, ixpath, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_index_open(&ix, ixpath, &err), 0, "%s", err.msg);
    cr_expect_eq(ix.header->split_mode, LOADER_SPLIT_HASH);
    cr_expect_eq(ix.header->split_seed, 42);
    cr_expect_eq(ix.header->val_fraction, 0.25);
    free(dir);
}

Test(loader_index, writer_leaves_only_the_index) {
    build_ok();
    build_ok(); /* replacing an existing index works too */
    int others = 0;
    DIR *d = opendir(root);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strstr(de->d_name, ".tmp-")) others++;
    closedir(d);
    cr_expect_eq(others, 0, "temp files left behind");
    cr_expect(fx_exists(ixpath));
}

/* Builds the index, lets edit damage its bytes (it may shorten *n), writes it back, and
 * returns open's message. */
static const char *open_damaged(void (*edit)(uint8_t *buf, size_t *n)) {
    build_ok();
    size_t n;
    uint8_t *buf = fx_read(ixpath, &n);
    edit(buf, &n);
    fx_write(root, LOADER_INDEX_DEFAULT_NAME, buf, n);
    free(buf);
    cr_assert_eq(loader_index_open(&ix, ixpath, &err), -1, "damaged index accepted");
    cr_assert(strstr(err.msg, ixpath) != NULL, "message does not name the file: %s", err.msg);
    return err.msg;
}

static LoaderIndexHeader *hdr(uint8_t *buf) { return (LoaderIndexHeader *)(void *)buf; }

static LoaderIndexRecord *record(uint8_t *buf, uint64_t i) {
    return (LoaderIndexRecord *)(void *)(buf + hdr(buf)->records_off) + i;
}

static void bad_magic(uint8_t *b, size_t *n) { (void)n; b[0] = 'X'; }
static void truncated(uint8_t *b, size_t *n) { (void)b; *n -= 5; }
static void tiny(uint8_t *b, size_t *n) { (void)b; *n = 40; }
static void bad_version(uint8_t *b, size_t *n) { (void)n; hdr(b)->version = 99; }
static void path_offset(uint8_t *b, size_t *n) {
    (void)n;
    record(b, 0)->path_off = hdr(b)->strings_size + 10;
}
static void big_label(uint8_t *b, size_t *n) {
    (void)n;
    record(b, 1)->label = (int32_t)hdr(b)->num_classes;
}
static void unterminated(uint8_t *b, size_t *n) { b[*n - 1] = 'x'; }
static void class_count(uint8_t *b, size_t *n) {
    (void)n;
    ((LoaderIndexClass *)(void *)(b + hdr(b)->classes_off))[0].count[0]++;
}
static void records_past_end(uint8_t *b, size_t *n) {
    (void)n;
    hdr(b)->num_samples[LOADER_TRAIN] += 1000;
}

Test(loader_index, rejects_bad_magic) {
    cr_expect(strstr(open_damaged(bad_magic), "bad magic") != NULL, "%s", err.msg);
}

Test(loader_index, rejects_truncated_file) {
    cr_expect(strstr(open_damaged(truncated), "truncated") != NULL, "%s", err.msg);
}

Test(loader_index, rejects_file_shorter_than_header) {
    cr_expect(strstr(open_damaged(tiny), "truncated") != NULL, "%s", err.msg);
}

Test(loader_index, rejects_unsupported_version) {
    cr_expect(strstr(open_damaged(bad_version), "version 99") != NULL, "%s", err.msg);
}

Test(loader_index, rejects_out_of_range_path_offset) {
    const char *m = open_damaged(path_offset);
    cr_expect(strstr(m, "record 0") && strstr(m, "path offset") && strstr(m, "out of range"),
              "%s", m);
}

Test(loader_index, rejects_label_not_below_class_count) {
    const char *m = open_damaged(big_label);
    cr_expect(strstr(m, "record 1") && strstr(m, "label 3 out of range (3 classes)"), "%s", m);
}

Test(loader_index, rejects_unterminated_string_blob) {
    cr_expect(strstr(open_damaged(unterminated), "not NUL-terminated") != NULL, "%s", err.msg);
}

Test(loader_index, rejects_class_counts_that_disagree_with_records) {
    cr_expect(strstr(open_damaged(class_count), "class 0: table says") != NULL, "%s", err.msg);
}

Test(loader_index, rejects_records_running_past_the_end) {
    cr_expect(strstr(open_damaged(records_past_end), "record array") != NULL, "%s", err.msg);
}

Test(loader_index, missing_file_error_names_it) {
    cr_assert_eq(loader_index_open(&ix, ixpath, &err), -1);
    cr_expect(strstr(err.msg, ixpath) && strstr(err.msg, "No such file"), "%s", err.msg);
}
