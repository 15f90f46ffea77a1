/* test_data_shrink.c: `stoker-data shrink` on fx_jpeg_dataset plus two large gradients
 * (1200x900 RGB in train/a, 600x800 grayscale in train/c): layout, byte-identical
 * copies, shrunk sizes and pixels, bad files left out, the new index, refusals, the
 * command line. With --max-side 512, strip_2000x3 and the two gradients are shrunk; the
 * other 15 good files are copied. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "data_shrink.h"
#include "data_synth.h"
#include "loader_batch.h"
#include "data_tree.h"
#include "loader_decode.h"
#include "loader_index.h"
#include "test_loader_fixture.h"

#define GOOD_FILES (FX_DATASET_GOOD + 6 + 2) /* train + val + the two gradients */
#define SHRUNK_FILES 3                       /* strip_2000x3 and the two gradients */

static char *root, *src, *dst;
static char out[16384], errout[4096];

static void setup(void) {
    root = fx_tmpdir();
    src = fx_path(root, "src");
    dst = fx_path(root, "dst");
    fx_jpeg_dataset(src);
    fx_gradient_jpeg(src, "train/a/big.jpg", 1200, 900, 0);
    fx_gradient_jpeg(src, "train/c/tallgray.jpg", 600, 800, 1);
    StkErr err;
    cr_assert_eq(loader_index_build(src, NULL, NULL, NULL, &err), 0, "%s", err.msg);
}

static void teardown(void) {
    fx_rmtree(root);
    free(root);
    free(src);
    free(dst);
}

TestSuite(data_shrink, .init = setup, .fini = teardown, .timeout = 60);

/* Shrinks src into to with max side 512 on threads; asserts success. */
static void shrink_to(const char *to, int threads, DataShrinkResult *res) {
    DataShrinkOptions o = {.max_side = 512, .quality = 90, .threads = threads};
    StkErr err;
    cr_assert_eq(data_shrink_run(src, to, &o, res, &err), 0, "%s", err.msg);
}

/* Opens dir/stoker.index into ix; asserts success. */
static void open_index(const char *dir, LoaderIndex *ix) {
    char *p = fx_path(dir, LOADER_INDEX_DEFAULT_NAME);
    StkErr err;
    cr_assert_eq(loader_index_open(ix, p, &err), 0, "%s", err.msg);
    free(p);
}

/* Returns 1 if root/rel and other/rel hold the same bytes. */
static int same_file(const char *a_root, const char *b_root, const char *rel) {
    char *a = fx_path(a_root, rel), *b = fx_path(b_root, rel);
    size_t na, nb;
    uint8_t *x = fx_read(a, &na), *y = fx_read(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    free(a);
    free(b);
    return same;
}

/* Decodes dst/rel with TurboJPEG to RGB; checks its size and subsampling, and returns
 * the mean absolute difference from the source gradient (sw x sh) at the positions
 * the shrunk pixels' centres map to. */
static double gradient_error(const char *rel, int sw, int sh, int gray, int ow, int oh,
                             int subsamp) {
    char *p = fx_path(dst, rel);
    size_t n;
    uint8_t *jpeg = fx_read(p, &n);
    tjhandle tj = tjInitDecompress();
    int w, h, ss, cs;
    cr_assert_eq(tjDecompressHeader3(tj, jpeg, n, &w, &h, &ss, &cs), 0, "%s", rel);
    cr_assert_eq(w, ow, "%s: width %d", rel, w);
    cr_assert_eq(h, oh, "%s: height %d", rel, h);
    cr_expect_eq(ss, subsamp, "%s: subsampling %d", rel, ss);
    uint8_t *px = malloc((size_t)w * h * 3);
    cr_assert_eq(tjDecompress2(tj, jpeg, n, px, w, 0, h, TJPF_RGB, 0), 0, "%s", rel);
    double sum = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double sx = (x + 0.5) * sw / w - 0.5, sy = (y + 0.5) * sh / h - 0.5;
                sum += fabs(px[((size_t)y * w + x) * 3 + c] -
                            fx_gradient_value(sx, sy, sw, sh, c, gray));
            }
    tjDestroy(tj);
    free(px);
    free(jpeg);
    free(p);
    return sum / ((double)w * h * 3);
}

Test(data_shrink, keeps_every_good_file_under_its_relative_path_and_label) {
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    LoaderIndex a, b;
    open_index(src, &a);
    open_index(dst, &b);
    for (int s = 0; s < LOADER_NUM_SPLITS; s++) {
        uint64_t j = 0;
        LoaderSample x, y;
        for (uint64_t i = 0; loader_index_get(&a, (LoaderSplit)s, i, &x) == 0; i++) {
            if (strstr(x.path, "empty") || strstr(x.path, "text") || strstr(x.path, "trunc"))
                continue;
            cr_assert_eq(loader_index_get(&b, (LoaderSplit)s, j++, &y), 0, "%s missing", x.path);
            cr_expect_str_eq(y.path, x.path);
            cr_expect_eq(y.label, x.label, "%s", x.path);
        }
        cr_expect_eq(loader_index_count(&b, (LoaderSplit)s), j);
    }
    loader_index_close(&a);
    loader_index_close(&b);
    data_shrink_result_free(&res);
}

Test(data_shrink, copies_images_that_fit_byte_for_byte) {
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    cr_expect_eq(res.copied, GOOD_FILES - SHRUNK_FILES);
    cr_expect_eq(res.shrunk, SHRUNK_FILES);
    LoaderIndex ix;
    open_index(dst, &ix);
    LoaderSample s;
    int copies = 0;
    for (int sp = 0; sp < LOADER_NUM_SPLITS; sp++)
        for (uint64_t i = 0; loader_index_get(&ix, (LoaderSplit)sp, i, &s) == 0; i++) {
            if (strstr(s.path, "big") || strstr(s.path, "tallgray") || strstr(s.path, "strip"))
                cr_expect_not(same_file(src, dst, s.path), "%s was copied", s.path);
            else
                copies += same_file(src, dst, s.path);
        }
    cr_expect_eq(copies, GOOD_FILES - SHRUNK_FILES);
    loader_index_close(&ix);
    data_shrink_result_free(&res);
}

/* root/rel decoded whole by the loader's decoder (malloc'd, w x h x 3); *windowable: it
 * has restart segments the loader can cut. */
static uint8_t *decode_whole(const char *dir, const char *rel, int *w, int *h, int *windowable) {
    char *p = fx_path(dir, rel);
    LoaderDecoder d;
    StkErr err;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    cr_assert_eq(loader_decode_open(&d, p, &err), 0, "%s: %s", p, err.msg);
    *w = d.width, *h = d.height, *windowable = d.can_window;
    AugImage img = {malloc((size_t)d.width * d.height * 3), d.width, d.height, 3, (size_t)d.width * 3};
    cr_assert_eq(loader_decode_full(&d, &img, &err), 0, "%s: %s", p, err.msg);
    loader_decoder_free(&d);
    free(p);
    return img.data;
}

/* --restart: every file has restart segments and the pixels of the file written
 * without it (the source itself where the image was kept at its size). */
Test(data_shrink, restart_rewrites_every_file_to_the_same_pixels) {
    DataShrinkResult plain, res;
    shrink_to(dst, 2, &plain);
    char *rdst = fx_path(root, "rdst");
    DataShrinkOptions o = {.max_side = 512, .quality = 90, .threads = 2, .restart = 1};
    StkErr err;
    cr_assert_eq(data_shrink_run(src, rdst, &o, &res, &err), 0, "%s", err.msg);
    cr_expect_eq(res.copied, plain.copied);
    cr_expect_eq(res.shrunk, plain.shrunk);
    cr_expect_eq(res.bad.count, plain.bad.count);
    LoaderIndex ix;
    open_index(rdst, &ix);
    LoaderSample s;
    int files = 0;
    for (int sp = 0; sp < LOADER_NUM_SPLITS; sp++)
        for (uint64_t i = 0; loader_index_get(&ix, (LoaderSplit)sp, i, &s) == 0; i++, files++) {
            int w, h, win, w2, h2, win2;
            uint8_t *a = decode_whole(rdst, s.path, &w, &h, &win), *b = decode_whole(dst, s.path, &w2, &h2, &win2);
            cr_expect(win, "%s: no restart segments", s.path);
            cr_expect(w == w2 && h == h2 && !memcmp(a, b, (size_t)w * h * 3), "%s: other pixels", s.path);
            free(a), free(b);
        }
    cr_expect_eq(files, GOOD_FILES);
    loader_index_close(&ix);
    data_shrink_result_free(&plain);
    data_shrink_result_free(&res);
    free(rdst);
}

/* The loader's batches (RandomResizedCrop 64 + flip, two epochs) from a synthetic
 * dataset and from its restart-marked copy: the same bytes, and the copy's decoder cut
 * windows. The whole path a training run takes, shrink to batch. */
Test(data_shrink, restart_copy_gives_the_loader_the_same_batches) {
    char *sy = fx_path(root, "synth"), *rs = fx_path(root, "synth-restart");
    DataSynthOptions so = {.classes = 2, .per_class = 6, .val_per_class = 0, .width = 300,
                           .height = 200, .seed = 5, .quality = 90, .threads = 2};
    DataSynthResult sr;
    StkErr err;
    cr_assert_eq(data_synth_write(sy, &so, &sr, &err), 0, "%s", err.msg);
    DataShrinkOptions o = {.max_side = 8192, .quality = 90, .threads = 2, .restart = 1};
    DataShrinkResult res;
    cr_assert_eq(data_shrink_run(sy, rs, &o, &res, &err), 0, "%s", err.msg);
    cr_assert_eq(res.copied, 12);
    LoaderIndex a, b;
    open_index(sy, &a);
    open_index(rs, &b);
    LoaderBatchConfig c = loader_batch_config_default();
    c.batch = 4, c.crop = 64, c.seed = 3, c.train = 1, c.split = LOADER_TRAIN;
    LoaderBatcher ba, bb;
    cr_assert_eq(loader_batcher_init(&ba, &a, sy, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_batcher_init(&bb, &b, rs, &c, &err), 0, "%s", err.msg);
    static uint8_t pa[4 * 64 * 64 * 3], pb[4 * 64 * 64 * 3];
    int32_t la[4], lb[4];
    uint64_t ia[4], ib[4];
    uint32_t na, nb;
    int windows = 0;
    for (uint32_t e = 0; e < 2; e++)
        for (uint64_t i = 0; i < loader_batcher_batches(&ba); i++) {
            cr_assert_eq(loader_batch_fill(&ba, e, i, pa, la, ia, &na, NULL, NULL, &err), 0, "%s", err.msg);
            cr_assert_eq(loader_batch_fill(&bb, e, i, pb, lb, ib, &nb, NULL, NULL, &err), 0, "%s", err.msg);
            cr_assert(na == nb && !memcmp(la, lb, sizeof la) && !memcmp(ia, ib, sizeof ia));
            cr_assert(!memcmp(pa, pb, sizeof pa), "epoch %u batch %llu differs", e, (unsigned long long)i);
            cr_expect(bb.dec.can_window && !ba.dec.can_window);
            windows += bb.dec.windowed; /* the batch's last crop */
        }
    cr_expect_gt(windows, 0, "no crop of the copy was cut to a window");
    loader_batcher_free(&ba), loader_batcher_free(&bb);
    loader_index_close(&a), loader_index_close(&b);
    data_shrink_result_free(&res);
    free(sy), free(rs);
}

Test(data_shrink, shrinks_a_1200x900_photo_to_512x384_that_decodes_to_the_same_picture) {
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    double e = gradient_error("train/a/big.jpg", 1200, 900, 0, 512, 384, TJSAMP_420);
    cr_expect_lt(e, 2.0, "mean error %.2f levels", e);
    cr_expect_lt(res.bytes_out, res.bytes_in);
    data_shrink_result_free(&res);
}

Test(data_shrink, keeps_a_grayscale_source_grayscale) {
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    double e = gradient_error("train/c/tallgray.jpg", 600, 800, 1, 384, 512, TJSAMP_GRAY);
    cr_expect_lt(e, 2.0, "mean error %.2f levels", e);
    data_shrink_result_free(&res);
}

Test(data_shrink, a_2000x3_strip_keeps_a_shorter_side_of_1) {
    DataShrinkResult res;
    shrink_to(dst, 1, &res);
    char *p = fx_path(dst, "train/b/strip_2000x3.jpg");
    size_t n;
    uint8_t *jpeg = fx_read(p, &n);
    tjhandle tj = tjInitDecompress();
    int w, h, ss, cs;
    cr_assert_eq(tjDecompressHeader3(tj, jpeg, n, &w, &h, &ss, &cs), 0);
    cr_expect_eq(w, 512);
    cr_expect_eq(h, 1);
    tjDestroy(tj);
    free(jpeg);
    free(p);
    data_shrink_result_free(&res);
}

/* One row of the size table: w x h with max side m becomes ow x oh. */
typedef struct SizeCase {
    int w, h, m, ow, oh;
} SizeCase;

ParameterizedTestParameters(data_shrink, scaled_size) {
    static SizeCase cases[] = {
        {1200, 900, 512, 512, 384}, /* the example */
        {900, 1200, 512, 384, 512}, /* portrait */
        {512, 300, 512, 512, 300},  /* fits exactly: unchanged */
        {3, 200, 128, 2, 128},      /* 1.92 rounds to 2 */
        {8, 3, 4, 4, 2},            /* 1.5: halves round up */
        {2000, 3, 256, 256, 1},     /* 0.384: at least 1 */
        {640, 640, 256, 256, 256},  /* square */
    };
    return cr_make_param_array(SizeCase, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(SizeCase *c, data_shrink, scaled_size) {
    int ow, oh;
    data_shrink_size(c->w, c->h, c->m, &ow, &oh);
    cr_expect(ow == c->ow && oh == c->oh, "%dx%d max %d: got %dx%d, want %dx%d", c->w, c->h,
              c->m, ow, oh, c->ow, c->oh);
}

Test(data_shrink, leaves_out_and_reports_bad_files) {
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    cr_assert_eq(res.bad.count, 3);
    cr_expect_str_eq(res.bad.items[0].text, "train/b/empty.jpg: empty file");
    cr_expect_str_eq(res.bad.items[1].text,
                     "train/b/text.jpg: not a JPEG file: starts with 0x68 0x65");
    cr_expect_str_eq(res.bad.items[2].text,
                     "train/b/truncated.jpg: truncated: no end-of-image marker");
    const char *bad[] = {"train/b/empty.jpg", "train/b/text.jpg", "train/b/truncated.jpg"};
    for (int i = 0; i < 3; i++) {
        char *p = fx_path(dst, bad[i]);
        cr_expect_not(fx_exists(p), "%s was copied", bad[i]);
        free(p);
    }
    data_shrink_result_free(&res);
}

Test(data_shrink, writes_an_index_of_the_new_tree) {
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    cr_expect_eq(res.index.num_classes, 3);
    cr_expect_eq(res.index.num_samples[LOADER_TRAIN], FX_DATASET_GOOD + 2);
    cr_expect_eq(res.index.num_samples[LOADER_VAL], 6);
    LoaderIndex ix;
    open_index(dst, &ix);
    cr_expect_eq(loader_index_count(&ix, LOADER_TRAIN), FX_DATASET_GOOD + 2);
    cr_expect_eq(loader_index_count(&ix, LOADER_VAL), 6);
    cr_expect_eq(ix.header->split_mode, LOADER_SPLIT_FOLDER);
    loader_index_close(&ix);
    data_shrink_result_free(&res);
}

Test(data_shrink, keeps_a_hash_split_with_its_fraction_and_seed) {
    char *val = fx_path(src, "val");
    fx_rmtree(val);
    LoaderScanOptions so = {.val_fraction = 0.5, .seed = 7};
    StkErr err;
    cr_assert_eq(loader_index_build(src, &so, NULL, NULL, &err), 0, "%s", err.msg);
    DataShrinkResult res;
    shrink_to(dst, 2, &res);
    LoaderIndex a, b;
    open_index(src, &a);
    open_index(dst, &b);
    cr_expect_eq(b.header->split_mode, LOADER_SPLIT_HASH);
    cr_expect_eq(b.header->split_seed, 7);
    LoaderSample x, y;
    uint64_t j = 0;
    for (uint64_t i = 0; loader_index_get(&a, LOADER_VAL, i, &x) == 0; i++) {
        if (strstr(x.path, "empty") || strstr(x.path, "text") || strstr(x.path, "trunc"))
            continue;
        cr_assert_eq(loader_index_get(&b, LOADER_VAL, j++, &y), 0, "%s", x.path);
        cr_expect_str_eq(y.path, x.path);
    }
    cr_expect_gt(j, 0);
    cr_expect_eq(loader_index_count(&b, LOADER_VAL), j);
    loader_index_close(&a);
    loader_index_close(&b);
    data_shrink_result_free(&res);
    free(val);
}

Test(data_shrink, refuses_an_existing_destination_and_leaves_it_alone) {
    fx_write(dst, "keep.txt", "mine", 4);
    DataShrinkOptions o = {.max_side = 512, .quality = 90, .threads = 2};
    DataShrinkResult res;
    StkErr err;
    cr_assert_eq(data_shrink_run(src, dst, &o, &res, &err), -1);
    cr_expect(strstr(err.msg, "already exists: refusing to overwrite") != NULL, "%s", err.msg);
    char *keep = fx_path(dst, "keep.txt");
    size_t n;
    uint8_t *bytes = fx_read(keep, &n);
    cr_expect(n == 4 && memcmp(bytes, "mine", 4) == 0);
    free(bytes);
    free(keep);
    char *train = fx_path(dst, "train");
    cr_expect_not(fx_exists(train));
    free(train);
}

Test(data_shrink, refuses_a_destination_inside_the_source) {
    char *inside = fx_path(src, "small");
    DataShrinkOptions o = {.max_side = 512, .quality = 90, .threads = 2};
    DataShrinkResult res;
    StkErr err;
    cr_assert_eq(data_shrink_run(src, inside, &o, &res, &err), -1);
    cr_expect(strstr(err.msg, "inside") != NULL, "%s", err.msg);
    cr_expect_not(fx_exists(inside));
    cr_expect_eq(data_tree_stale(inside), 0, "a partial directory was left");
    free(inside);
}

Test(data_shrink, output_is_byte_identical_for_1_and_2_threads) {
    char *dst2 = fx_path(root, "dst2");
    DataShrinkResult r1, r2;
    shrink_to(dst, 1, &r1);
    shrink_to(dst2, 2, &r2);
    LoaderIndex ix;
    open_index(dst, &ix);
    LoaderSample s;
    for (int sp = 0; sp < LOADER_NUM_SPLITS; sp++)
        for (uint64_t i = 0; loader_index_get(&ix, (LoaderSplit)sp, i, &s) == 0; i++)
            cr_expect(same_file(dst, dst2, s.path), "%s differs", s.path);
    loader_index_close(&ix);
    data_shrink_result_free(&r1);
    data_shrink_result_free(&r2);
    free(dst2);
}

Test(data_shrink, cli_lists_bad_files_and_prints_a_summary) {
    char args[8192];
    snprintf(args, sizeof args, "shrink '%s' '%s' --max-side 512 -j 2", src, dst);
    cr_assert_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 0, "%s", errout);
    cr_expect(strncmp(out, "bad: train/b/empty.jpg: empty file\nbad: train/b/text.jpg: ",
                      58) == 0, "%s", out);
    cr_expect(strstr(out, ": 15 copied, 3 shrunk, 3 bad; ") != NULL, "%s", out);
    cr_expect(strstr(out, "index: 3 classes, 12 train + 6 val samples") != NULL, "%s", out);
}

Test(data_shrink, cli_restart_writes_files_the_loader_can_cut) {
    char args[8192];
    snprintf(args, sizeof args, "shrink '%s' '%s' --max-side 8192 --restart -j 2", src, dst);
    cr_assert_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 0, "%s", errout);
    cr_expect(strstr(out, ": 18 rewritten with restart markers, 0 shrunk, 3 bad; ") != NULL, "%s", out);
    int w, h, win;
    free(decode_whole(dst, "train/a/big.jpg", &w, &h, &win));
    cr_expect(win && w == 1200 && h == 900, "%dx%d, windows %d", w, h, win);
}

Test(data_shrink, cli_refuses_an_existing_destination_with_status_1) {
    fx_mkdir(dst, ".");
    char args[8192];
    snprintf(args, sizeof args, "shrink '%s' '%s' --max-side 512", src, dst);
    cr_expect_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 1);
    cr_expect(strstr(errout, "already exists") != NULL, "%s", errout);
}

Test(data_shrink, cli_usage_errors_exit_2) {
    char args[8192];
    snprintf(args, sizeof args, "shrink '%s' '%s'", src, dst);
    cr_expect_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 2);
    cr_expect(strstr(errout, "missing --max-side") != NULL, "%s", errout);
    snprintf(args, sizeof args, "shrink '%s' --max-side 512", src);
    cr_expect_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 2);
    cr_expect(strstr(errout, "missing DST") != NULL, "%s", errout);
    snprintf(args, sizeof args, "shrink '%s' '%s' --max-side 0", src, dst);
    cr_expect_eq(fx_run_tool(root, "stoker-data", args, out, sizeof out, errout,
                             sizeof errout), 2);
    cr_expect_not(fx_exists(dst));
}
