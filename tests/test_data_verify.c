/* test_data_verify.c: `stoker-data verify` on fx_jpeg_dataset (10 good train files, 6
 * good val files, 3 bad ones in train/b): which files are bad and why, in index order,
 * the summary line and exit status, the index being what is read, the pixel cap, and
 * the same output for any thread count. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_verify.h"
#include "loader_index.h"
#include "test_loader_fixture.h"

#define GOOD_FILES (FX_DATASET_GOOD + 6) /* train + val */

/* What the three bad files of fx_jpeg_dataset are reported as, in index order. */
static const char *const bad_lines =
    "bad: train/b/empty.jpg: empty file\n"
    "bad: train/b/text.jpg: not a JPEG file: starts with 0x68 0x65\n"
    "bad: train/b/truncated.jpg: truncated: no end-of-image marker\n";

static char *root, *ds;
static char out[16384], errout[4096];

static void index_ds(void) {
    StkErr err;
    cr_assert_eq(loader_index_build(ds, NULL, NULL, NULL, &err), 0, "%s", err.msg);
}

static void setup(void) {
    root = fx_tmpdir();
    ds = fx_path(root, "ds");
    fx_jpeg_dataset(ds);
    index_ds();
}

static void teardown(void) {
    fx_rmtree(root);
    free(root);
    free(ds);
}

TestSuite(data_verify, .init = setup, .fini = teardown, .timeout = 60);

/* Runs data_verify_run on ds with threads and max_pixels (0: default). */
static void verify(int threads, uint64_t max_pixels, DataVerifyResult *res) {
    DataVerifyOptions o = {.threads = threads, .max_pixels = max_pixels};
    StkErr err;
    cr_assert_eq(data_verify_run(ds, &o, res, &err), 0, "%s", err.msg);
}

/* Runs `stoker-data verify` with args after ds; returns its exit status. */
static int run_verify(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "verify '%s' %s", ds, args);
    return fx_run_tool(root, "stoker-data", cmd, out, sizeof out, errout, sizeof errout);
}

Test(data_verify, reports_the_three_bad_files_with_reasons_in_index_order) {
    DataVerifyResult res;
    verify(2, 0, &res);
    cr_assert_eq(res.bad.count, 3);
    cr_expect_str_eq(res.bad.items[0].text, "train/b/empty.jpg: empty file");
    cr_expect_str_eq(res.bad.items[1].text,
                     "train/b/text.jpg: not a JPEG file: starts with 0x68 0x65");
    cr_expect_str_eq(res.bad.items[2].text,
                     "train/b/truncated.jpg: truncated: no end-of-image marker");
    data_verify_result_free(&res);
}

Test(data_verify, counts_every_good_file_of_both_splits_as_ok) {
    DataVerifyResult res;
    verify(2, 0, &res);
    cr_expect_eq(res.ok, GOOD_FILES);
    cr_expect_eq(res.from_index, 1);
    data_verify_result_free(&res);
}

Test(data_verify, reads_the_files_the_index_lists) {
    char *gone = fx_path(ds, "train/a/ycc420.jpg");
    cr_assert_eq(unlink(gone), 0);
    fx_write(ds, "train/a/zz_not_indexed.jpg", "junk", 4); /* not in the index: unseen */
    DataVerifyResult res;
    verify(2, 0, &res);
    cr_assert_eq(res.bad.count, 4);
    cr_expect_str_eq(res.bad.items[0].text, "train/a/ycc420.jpg: No such file or directory");
    cr_expect_eq(res.ok, GOOD_FILES - 1);
    data_verify_result_free(&res);
    free(gone);
}

Test(data_verify, without_an_index_verifies_a_scan_and_writes_nothing) {
    char *ix = fx_path(ds, LOADER_INDEX_DEFAULT_NAME);
    cr_assert_eq(unlink(ix), 0);
    DataVerifyResult res;
    verify(2, 0, &res);
    cr_expect_eq(res.from_index, 0);
    cr_expect_eq(res.ok, GOOD_FILES);
    cr_expect_eq(res.bad.count, 3);
    cr_expect_not(fx_exists(ix), "verify wrote %s", ix);
    data_verify_result_free(&res);
    free(ix);
}

Test(data_verify, decodes_every_row_not_just_the_header) {
    /* Half of the scan data, then an end-of-image marker: the header reads fine. */
    char *src = fx_path(ds, "train/a/ycc420.jpg");
    size_t n;
    uint8_t *bytes = fx_read(src, &n);
    bytes[n / 2] = 0xFF;
    bytes[n / 2 + 1] = 0xD9;
    fx_write(ds, "train/a/ycc420.jpg", bytes, n / 2 + 2);
    DataVerifyResult res;
    verify(1, 0, &res);
    cr_assert_eq(res.bad.count, 4);
    cr_expect_str_eq(res.bad.items[0].text, "train/a/ycc420.jpg: Corrupt JPEG data: "
                     "premature end of data segment");
    data_verify_result_free(&res);
    free(bytes);
    free(src);
}

Test(data_verify, applies_the_pixel_cap) {
    DataVerifyResult res;
    verify(2, 10000, &res); /* strip_2000x3 has 6000 pixels, scaled_256x192 49152 */
    cr_assert_eq(res.bad.count, 4);
    cr_expect_str_eq(res.bad.items[0].text, "train/a/scaled_256x192.jpg: 256x192 = 0.0 "
                     "megapixels, over the 0.0 megapixel cap");
    cr_expect_eq(res.ok, GOOD_FILES - 1);
    data_verify_result_free(&res);
}

Test(data_verify, cli_lists_bad_files_then_the_summary_and_exits_1) {
    cr_expect_eq(run_verify("-j 2"), 1, "%s", errout);
    char want[1024];
    snprintf(want, sizeof want, "%sverified: %d ok, 3 bad\n", bad_lines, GOOD_FILES);
    cr_expect_str_eq(out, want);
}

Test(data_verify, cli_exits_0_when_every_file_decodes) {
    const char *bad[] = {"empty.jpg", "text.jpg", "truncated.jpg"};
    for (int i = 0; i < 3; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "train/b/%s", bad[i]);
        char *p = fx_path(ds, rel);
        cr_assert_eq(unlink(p), 0);
        free(p);
    }
    index_ds();
    cr_expect_eq(run_verify(""), 0, "%s", errout);
    char want[64];
    snprintf(want, sizeof want, "verified: %d ok, 0 bad\n", GOOD_FILES);
    cr_expect_str_eq(out, want);
}

Test(data_verify, cli_output_is_the_same_for_1_and_2_threads) {
    /* Twenty more bad files alternating slow (a 1600x1200 photo cut short near its end:
     * nearly every row decodes before it fails) and fast (not a JPEG): a fast one
     * finishes first on the other thread, so unsorted reports would come out of order. */
    fx_gradient_jpeg(root, "slow.jpg", 1600, 1200, 0);
    char *slow_path = fx_path(root, "slow.jpg");
    size_t n;
    uint8_t *slow = fx_read(slow_path, &n);
    n = n * 9 / 10;
    slow[n++] = 0xFF;
    slow[n++] = 0xD9;
    for (int i = 0; i < 20; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "train/c/x%02d.jpg", i);
        fx_write(ds, rel, i % 2 ? (const void *)"junk" : slow, i % 2 ? 4 : n);
    }
    free(slow);
    free(slow_path);
    index_ds();
    cr_assert_eq(run_verify("-j 1"), 1, "%s", errout);
    char one[sizeof out];
    memcpy(one, out, sizeof out);
    cr_assert_eq(run_verify("-j 2"), 1, "%s", errout);
    cr_expect_str_eq(out, one);
    cr_expect(strstr(out, "bad: train/c/x18.jpg: Corrupt JPEG data: premature end of data "
                          "segment\nbad: train/c/x19.jpg: not a JPEG file: starts with "
                          "0x6a 0x75\n") != NULL, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "verified: %d ok, 23 bad\n", GOOD_FILES);
    cr_expect(strstr(out, want) != NULL, "%s", out);
}

Test(data_verify, cli_usage_errors_exit_2) {
    cr_expect_eq(fx_run_tool(root, "stoker-data", "verify", out, sizeof out, errout,
                             sizeof errout), 2);
    cr_expect(strstr(errout, "missing DIR") != NULL, "%s", errout);
    cr_expect_eq(run_verify("-j 0"), 2);
    cr_expect(strstr(errout, "-j: \"0\" is not an integer") != NULL, "%s", errout);
    cr_expect_eq(run_verify("--max-pixels many"), 2);
    cr_expect_eq(run_verify("extra"), 2);
    cr_expect(strstr(errout, "unexpected argument \"extra\"") != NULL, "%s", errout);
}

Test(data_verify, cli_missing_directory_exits_1_naming_it) {
    char args[4200];
    snprintf(args, sizeof args, "verify '%s/absent'", root);
    cr_expect_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 1);
    cr_expect(strstr(errout, "/absent") != NULL, "%s", errout);
    cr_expect_str_eq(out, "");
}
