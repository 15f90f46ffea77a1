/* test_data_idx.c: the IDX reader (data_idx.h) on small crafted gzip files: good files
 * read back exactly; bad magic, truncation, trailing bytes and absurd sizes are refused
 * with a message naming the file. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "data_idx.h"
#include "test_loader_fixture.h"

static char *root;
static DataIdx idx;
static StkErr err;

static void setup(void) {
    root = fx_tmpdir();
    memset(&idx, 0, sizeof idx);
    memset(&err, 0, sizeof err);
}

static void teardown(void) {
    data_idx_free(&idx);
    fx_rmtree(root);
    free(root);
}

TestSuite(data_idx, .init = setup, .fini = teardown);

/* Writes root/name.gz: an IDX header for (magic, count, rows, cols) and len payload bytes
 * of a known pattern; returns the path (malloc'd). */
static char *write_idx(const char *name, uint32_t magic, uint32_t count, uint32_t rows,
                       uint32_t cols, size_t len) {
    uint8_t *payload = calloc(len + 1, 1);
    for (size_t i = 0; i < len; i++) payload[i] = (uint8_t)(i * 7 + 3);
    size_t n;
    uint8_t *bytes = fx_idx_bytes(magic, count, rows, cols, payload, len, &n);
    fx_write_gz(root, name, bytes, n);
    free(bytes);
    free(payload);
    return fx_path(root, name);
}

Test(data_idx, reads_images_exactly) {
    char *p = write_idx("img.gz", DATA_IDX_MAGIC_IMAGES, 3, 4, 5, 60);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_IMAGES, 0, &err), 0, "%s", err.msg);
    cr_expect_eq(idx.count, 3);
    cr_expect_eq(idx.rows, 4);
    cr_expect_eq(idx.cols, 5);
    for (size_t i = 0; i < 60; i++) cr_assert_eq(idx.data[i], (uint8_t)(i * 7 + 3), "byte %zu", i);
    free(p);
}

Test(data_idx, reads_labels) {
    char *p = write_idx("lab.gz", DATA_IDX_MAGIC_LABELS, 9, 0, 0, 9);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_LABELS, 0, &err), 0, "%s", err.msg);
    cr_expect_eq(idx.count, 9);
    cr_expect_eq(idx.rows * idx.cols, 1);
    cr_expect_eq(idx.data[8], (uint8_t)(8 * 7 + 3));
    free(p);
}

Test(data_idx, limit_keeps_the_first_items) {
    char *p = write_idx("img.gz", DATA_IDX_MAGIC_IMAGES, 10, 2, 2, 40);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_IMAGES, 4, &err), 0, "%s", err.msg);
    cr_expect_eq(idx.count, 4);
    cr_expect_eq(idx.file_count, 10);
    cr_expect_eq(idx.data[15], (uint8_t)(15 * 7 + 3));
    free(p);
}

Test(data_idx, rejects_bad_magic) {
    char *p = write_idx("img.gz", DATA_IDX_MAGIC_LABELS, 3, 0, 0, 3);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_IMAGES, 0, &err), -1);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, "bad magic 0x00000801"), "%s", err.msg);
    free(p);
}

Test(data_idx, rejects_truncated_data) {
    char *p = write_idx("img.gz", DATA_IDX_MAGIC_IMAGES, 5, 2, 2, 17); /* 20 declared */
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_IMAGES, 0, &err), -1);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, "truncated: 3 bytes of the data missing"),
              "%s", err.msg);
    free(p);
}

Test(data_idx, rejects_truncated_gzip_stream) {
    char *p = write_idx("img.gz", DATA_IDX_MAGIC_IMAGES, 50, 10, 10, 5000);
    size_t n;
    uint8_t *gz = fx_read(p, &n);
    fx_write(root, "cut.gz", gz, n / 2); /* a download cut short */
    free(gz);
    char *cut = fx_path(root, "cut.gz");
    cr_assert_eq(data_idx_read(&idx, cut, DATA_IDX_MAGIC_IMAGES, 0, &err), -1);
    cr_expect(strstr(err.msg, cut) && strstr(err.msg, "truncated"), "%s", err.msg);
    free(p);
    free(cut);
}

Test(data_idx, rejects_trailing_bytes) {
    char *p = write_idx("lab.gz", DATA_IDX_MAGIC_LABELS, 4, 0, 0, 6);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_LABELS, 0, &err), -1);
    cr_expect(strstr(err.msg, "trailing bytes") != NULL, "%s", err.msg);
    free(p);
}

Test(data_idx, rejects_absurd_dimensions_before_allocating) {
    char *p = write_idx("img.gz", DATA_IDX_MAGIC_IMAGES, 2, 100000, 28, 0);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_IMAGES, 0, &err), -1);
    cr_expect(strstr(err.msg, "image size 100000x28 out of range") != NULL, "%s", err.msg);
    free(p);
    p = write_idx("lab.gz", DATA_IDX_MAGIC_LABELS, 0xFFFFFFFFu, 0, 0, 0);
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_LABELS, 0, &err), -1);
    cr_expect(strstr(err.msg, "item count 4294967295 out of range") != NULL, "%s", err.msg);
    free(p);
}

Test(data_idx, missing_file_error_names_it) {
    char *p = fx_path(root, "absent.gz");
    cr_assert_eq(data_idx_read(&idx, p, DATA_IDX_MAGIC_LABELS, 0, &err), -1);
    cr_expect(strstr(err.msg, p) && strstr(err.msg, "No such file"), "%s", err.msg);
    free(p);
}
