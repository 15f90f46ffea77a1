/* test_train_resume.c: stoker-train as a user runs it, on a tiny dataset: a run stopped
 * after epoch 0 and resumed with --resume ends with the same weights, bit for bit, as
 * the run that never stopped (CPU backend, --deterministic); a bad --resume is named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

#include "loader_index.h"
#include "st_file.h"
#include "test_loader_fixture.h"

static char *root;

static void setup(void) {
    root = fx_tmpdir();
    char *data = fx_path(root, "data");
    fx_jpeg_dataset(data);
    free(data);
}

static void teardown(void) {
    fx_rmtree(root);
    free(root);
}

TestSuite(train_resume, .init = setup, .fini = teardown, .timeout = 300);

/* Runs stoker-train on root/data into root/out with extra flags; returns its status. */
static int train(const char *out, const char *extra) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s/stoker-train --data-path %s/data --model smallcnn --train-crop-size 16 "
             "--val-resize-size 16 --val-crop-size 16 -b 4 -j 1 --deterministic --lr 0.05 "
             "--output-dir %s/%s %s >/dev/null 2>&1",
             STOKER_BIN_DIR, root, root, out, extra);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static uint8_t *slurp(const char *rel, size_t *n) {
    char *p = fx_path(root, rel);
    uint8_t *b = fx_read(p, n);
    free(p);
    return b;
}

Test(train_resume, resumed_run_ends_with_the_same_weights) {
    cr_assert_eq(train("whole", "--epochs 2"), 0);
    cr_assert_eq(train("first", "--epochs 1"), 0);
    char extra[1024];
    snprintf(extra, sizeof extra, "--epochs 2 --resume %s/first/checkpoints/last.safetensors", root);
    cr_assert_eq(train("rest", extra), 0);
    size_t na, nb;
    uint8_t *a = slurp("whole/checkpoints/last.safetensors", &na);
    uint8_t *b = slurp("rest/checkpoints/last.safetensors", &nb);
    cr_assert(na == nb && !memcmp(a, b, na), "weights after a resume differ from an unbroken run");
    free(a), free(b);
    a = slurp("whole/checkpoints/last.state.safetensors", &na);
    b = slurp("rest/checkpoints/last.state.safetensors", &nb);
    cr_assert(na == nb && !memcmp(a, b, na), "optimizer state after a resume differs");
    free(a), free(b);
}

Test(train_resume, resume_without_training_state_is_refused) {
    cr_assert_eq(train("first", "--epochs 1"), 0);
    char path[1024], extra[1024];
    snprintf(path, sizeof path, "%s/first/checkpoints/last.state.safetensors", root);
    cr_assert_eq(unlink(path), 0);
    snprintf(extra, sizeof extra, "--epochs 2 --resume %s/first/checkpoints/last.safetensors", root);
    cr_assert_eq(train("rest", extra), 1);
}

/* Gradient accumulation as a user runs it: -b 4 as two micro-batches of 2 (--micro-batch
 * 2): loaders make batches of 2, the trainer steps once per two of them, so after two
 * epochs the optimizer took 2 * floor(floor(n / 2) / 2) steps (a short tail of fewer
 * than 2 micro-batches is not trained on, like --drop-last). */
Test(train_resume, micro_batches_accumulate_into_one_step_per_batch) {
    cr_assert_eq(train("acc", "--epochs 2 --micro-batch 2"), 0);
    LoaderIndex ix;
    StkErr err;
    char *ip = fx_path(root, "data/stoker.index");
    cr_assert_eq(loader_index_open(&ix, ip, &err), 0, "%s", err.msg);
    uint64_t n = loader_index_count(&ix, LOADER_TRAIN);
    loader_index_close(&ix);
    free(ip);
    StFile f;
    char *sp = fx_path(root, "acc/checkpoints/last.state.safetensors");
    cr_assert_eq(st_open(&f, sp, &err), 0, "%s", err.msg);
    const char *steps = st_meta(&f, "steps");
    cr_assert(steps, "no step count in %s", sp);
    unsigned long long want = 2 * ((n / 2) / 2);
    cr_assert_eq(strtoull(steps, NULL, 10), want, "%s optimizer steps for %llu samples, want %llu",
                 steps, (unsigned long long)n, want);
    st_close(&f);
    free(sp);
}
