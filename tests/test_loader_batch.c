/* test_loader_batch.c: batches are a function of (seed, epoch, index) only, cover every
 * good sample once per epoch, and bad files are reported once with their slots filled. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "loader_batch.h"
#include "test_loader_fixture.h"

static char *root;
static LoaderIndex ix;
enum { CROP = 16, BATCH = 5 };
#define NGOOD FX_DATASET_GOOD

static void setup(void) {
    root = fx_tmpdir();
    fx_jpeg_dataset(root);
    LoaderScanOptions opt = {.val_fraction = -1};
    StkErr err;
    char *index = fx_path(root, "stoker.index");
    cr_assert_eq(loader_index_build(root, &opt, index, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_index_open(&ix, index, &err), 0, "%s", err.msg);
    free(index);
}

static void teardown(void) {
    loader_index_close(&ix);
    fx_rmtree(root);
    free(root);
}

TestSuite(loader_batch, .init = setup, .fini = teardown, .timeout = 60);

static LoaderBatchConfig config(int train) {
    LoaderBatchConfig c = loader_batch_config_default();
    c.batch = BATCH, c.crop = CROP, c.seed = 11, c.train = train;
    c.split = train ? LOADER_TRAIN : LOADER_VAL;
    c.val_resize = 20;
    return c;
}

typedef struct Batch {
    uint8_t px[BATCH * CROP * CROP * 3];
    int32_t labels[BATCH];
    uint64_t ids[BATCH];
    uint32_t n;
} Batch;

typedef struct BadLog {
    int calls;
    char reasons[8][256];
} BadLog;

static void log_bad(void *ctx, uint64_t id, const char *path, const char *reason) {
    (void)id;
    BadLog *l = ctx;
    if (l->calls < 8) snprintf(l->reasons[l->calls], 256, "%s: %s", path, reason);
    l->calls++;
}

static void fill(LoaderBatcher *b, uint32_t epoch, uint64_t i, Batch *out, BadLog *log) {
    StkErr err;
    cr_assert_eq(loader_batch_fill(b, epoch, i, out->px, out->labels, out->ids, &out->n,
                                   log_bad, log, &err), 0, "%s", err.msg);
}

Test(loader_batch, identical_whoever_makes_them_in_whatever_order) {
    LoaderBatchConfig c = config(1);
    c.jitter = (AugJitter){0.4, 0.4, 0.4};
    c.erase = aug_erase_default();
    LoaderBatcher one, other;
    StkErr err;
    cr_assert_eq(loader_batcher_init(&one, &ix, NULL, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(loader_batcher_init(&other, &ix, NULL, &c, &err), 0, "%s", err.msg);
    uint64_t nb = loader_batcher_batches(&one);
    cr_assert_eq(nb, 3); /* 13 samples, batches of 5 */
    static Batch a[2][3], b;
    BadLog log = {0};
    for (uint32_t e = 0; e < 2; e++)
        for (uint64_t i = 0; i < nb; i++) fill(&one, e, i, &a[e][i], &log);
    /* the other process: epoch 1 first, batches backwards, knowing no bad file yet */
    for (int e = 1; e >= 0; e--)
        for (uint64_t i = nb; i-- > 0;) {
            memset(&b, 0, sizeof b); /* a partial batch leaves its tail untouched */
            fill(&other, (uint32_t)e, i, &b, &log);
            cr_assert(!memcmp(&b, &a[e][i], sizeof b), "epoch %d batch %llu differs", e,
                      (unsigned long long)i);
        }
    cr_assert(memcmp(&a[0][0], &a[1][0], sizeof b), "epochs 0 and 1 are the same");
    loader_batcher_free(&one);
    loader_batcher_free(&other);
}

Test(loader_batch, bad_files_reported_once_and_slots_filled) {
    LoaderBatchConfig c = config(1);
    LoaderBatcher b;
    StkErr err;
    cr_assert_eq(loader_batcher_init(&b, &ix, NULL, &c, &err), 0, "%s", err.msg);
    BadLog log = {0};
    static Batch out;
    for (uint32_t e = 0; e < 3; e++) {
        uint64_t seen[16] = {0}, total = 0;
        for (uint64_t i = 0; i < loader_batcher_batches(&b); i++) {
            fill(&b, e, i, &out, &log);
            cr_assert_eq(out.n, i < 2 ? BATCH : 3, "batch %llu keeps its size", (unsigned long long)i);
            for (uint32_t j = 0; j < out.n; j++) {
                LoaderSample s;
                cr_assert_eq(loader_index_get(&ix, LOADER_TRAIN, out.ids[j], &s), 0);
                cr_assert_eq(out.labels[j], s.label, "label of sample %llu", (unsigned long long)out.ids[j]);
                cr_assert(!strstr(s.path, "empty") && !strstr(s.path, "text") &&
                          !strstr(s.path, "truncated"), "bad file %s in a batch", s.path);
                seen[out.ids[j]]++;
                total++;
            }
        }
        cr_assert_eq(total, 13);
        int distinct = 0;
        for (int k = 0; k < 16; k++) distinct += seen[k] > 0;
        /* the 10 good files all appear; 3 slots hold repeats in place of the bad ones */
        cr_assert_eq(distinct, (int)NGOOD, "epoch %u: %d distinct samples", e, distinct);
    }
    cr_assert_eq(log.calls, 3, "bad files reported %d times over 3 epochs", log.calls);
    char all[1024] = "";
    for (int i = 0; i < 3; i++) strcat(all, log.reasons[i]), strcat(all, "\n");
    cr_assert(strstr(all, "empty.jpg: empty file"), "%s", all);
    cr_assert(strstr(all, "text.jpg: not a JPEG file"), "%s", all);
    cr_assert(strstr(all, "truncated.jpg: truncated"), "%s", all);
    cr_assert_eq(b.bad_count, 3);
    loader_batcher_free(&b);
}

Test(loader_batch, eval_is_in_order_with_centre_crops) {
    LoaderBatchConfig c = config(0);
    LoaderBatcher b;
    StkErr err;
    cr_assert_eq(loader_batcher_init(&b, &ix, NULL, &c, &err), 0, "%s", err.msg);
    static Batch out;
    fill(&b, 4, 0, &out, NULL);
    LoaderDecoder d;
    cr_assert_eq(loader_decoder_init(&d, 0, &err), 0);
    for (uint32_t j = 0; j < out.n; j++) {
        cr_assert_eq(out.ids[j], j, "eval order is the index order");
        LoaderSample s;
        loader_index_get(&ix, LOADER_VAL, j, &s);
        char *path = fx_path(root, s.path);
        cr_assert_eq(loader_decode_open(&d, path, &err), 0, "%s", err.msg);
        LoaderCropSpec spec = {{0, 0, d.width, d.height}, 0, 0, 0, 0, 0};
        aug_eval_geometry(d.width, d.height, 20, CROP, &spec.out_w, &spec.out_h, &spec.win_x,
                          &spec.win_y);
        uint8_t want[CROP * CROP * 3];
        AugImage img = {want, CROP, CROP, 3, CROP * 3};
        cr_assert_eq(loader_decode_crop(&d, &spec, &img, &err), 0, "%s", err.msg);
        cr_assert(!memcmp(want, out.px + j * sizeof want, sizeof want), "sample %u", j);
        free(path);
    }
    loader_decoder_free(&d);
    loader_batcher_free(&b);
}

Test(loader_batch, rejects_bad_configs_and_indices) {
    LoaderBatcher b;
    StkErr err;
    LoaderBatchConfig c = config(0);
    c.val_resize = CROP - 1;
    cr_assert_eq(loader_batcher_init(&b, &ix, NULL, &c, &err), -1);
    cr_assert(strstr(err.msg, "eval resize 15 is smaller than the crop 16"), "%s", err.msg);
    c = config(1);
    c.batch = 0;
    cr_assert_eq(loader_batcher_init(&b, &ix, NULL, &c, &err), -1);
    cr_assert(strstr(err.msg, "batch size 0"), "%s", err.msg);
    c = config(1);
    cr_assert_eq(loader_batcher_init(&b, &ix, NULL, &c, &err), 0);
    static Batch out;
    cr_assert_eq(loader_batch_fill(&b, 0, 3, out.px, out.labels, out.ids, &out.n, NULL, NULL,
                                   &err), -1);
    cr_assert(strstr(err.msg, "the epoch has 3 batches"), "%s", err.msg);
    loader_batcher_free(&b);
}

Test(loader_batch, last_batch_of_one_bad_file_borrows_from_the_epoch) {
    /* batches of 12 over 13 samples: the last batch has one sample; pick a seed that puts
     * a bad file there */
    LoaderBatchConfig c = config(1);
    c.batch = 12;
    uint64_t seed = 0;
    for (; seed < 1000; seed++) {
        LoaderOrder o;
        loader_order_init(&o, 13, seed, 0, 1);
        LoaderSample s;
        loader_index_get(&ix, LOADER_TRAIN, loader_order_at(&o, 12), &s);
        if (strstr(s.path, "empty.jpg")) break;
    }
    cr_assert(seed < 1000);
    c.seed = seed;
    LoaderBatcher b;
    StkErr err;
    cr_assert_eq(loader_batcher_init(&b, &ix, NULL, &c, &err), 0, "%s", err.msg);
    static uint8_t px[12 * CROP * CROP * 3];
    int32_t labels[12];
    uint64_t ids[12];
    uint32_t n;
    BadLog log = {0};
    cr_assert_eq(loader_batch_fill(&b, 0, 1, px, labels, ids, &n, log_bad, &log, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(n, 1);
    LoaderSample s;
    loader_index_get(&ix, LOADER_TRAIN, ids[0], &s);
    cr_assert(!strstr(s.path, "empty") && !strstr(s.path, "text") && !strstr(s.path, "trunc"),
              "slot filled with %s", s.path);
    cr_assert(log.calls >= 1 && strstr(log.reasons[0], "empty.jpg: empty file"));
    loader_batcher_free(&b);
}
