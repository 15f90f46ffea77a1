/* test_finetune.c: transfer learning pays, on the CPU backend, end to end and small.
 * stoker pretrains resnet18 (32x32 crops) on one synthetic task (stoker-data synth seed 1:
 * 6 classes, each a shape kind + hue), then learns a second one (seed 2: 3 classes with
 * other hues, positions and sizes, only 8 training images each) twice for the same 4
 * epochs: from scratch, and from the pretrained weights with --freeze-backbone (the head
 * of 6 classes replaced by one of 3). The fine-tune must reach a clearly better val
 * top-1. Measured on 2 cores: 33% from scratch (chance), 98% fine-tuned; 7 s in all
 * (41 s under ASan).  */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_loader_fixture.h"

static char *root;

static void setup(void) { root = fx_tmpdir(); }
static void teardown(void) { fx_rmtree(root), free(root); }

TestSuite(finetune, .init = setup, .fini = teardown, .timeout = 400);

#define COMMON "--model resnet18 --train-crop-size 32 --val-resize-size 36 --val-crop-size 32 " \
               "-j 1 --deterministic --rrc-scale 0.35,1 --lr 0.02 "

/* Trains on root/data into root/out with extra flags; returns the best val top-1. */
static double train(const char *data, const char *out, const char *extra, char *log, size_t cap) {
    char args[2048];
    snprintf(args, sizeof args, "--data-path %s/%s --output-dir %s/%s " COMMON "%s", root, data,
             root, out, extra);
    cr_assert_eq(fx_run_tool(root, "stoker-train", args, log, cap, NULL, 0), 0, "%s", log);
    const char *best = strstr(log, "best val top-1 ");
    cr_assert(best, "%s", log);
    return atof(best + strlen("best val top-1 "));
}

Test(finetune, pretrained_weights_beat_training_from_scratch) {
    static char log[65536];
    char args[1024];
    snprintf(args, sizeof args, "synth %s/a --classes 6 --per-class 40 --val-per-class 5 "
             "--size 40x40 --seed 1 -j 2", root);
    cr_assert_eq(fx_run_tool(root, "stoker-data", args, NULL, 0, NULL, 0), 0);
    snprintf(args, sizeof args, "synth %s/b --classes 3 --per-class 8 --val-per-class 20 "
             "--size 40x40 --seed 2 -j 2", root);
    cr_assert_eq(fx_run_tool(root, "stoker-data", args, NULL, 0, NULL, 0), 0);
    double pre = train("a", "pre", "-b 16 --epochs 4", log, sizeof log);
    snprintf(args, sizeof args, "-b 8 --epochs 4 --freeze-backbone --weights %s/pre/checkpoints/last.safetensors",
             root);
    double tuned = train("b", "tuned", args, log, sizeof log);
    cr_assert(strstr(log, "replaced the head fc: 6 classes in the weights, 3 in the dataset"), "%s", log);
    double scratch = train("b", "scratch", "-b 8 --epochs 4", log, sizeof log);
    cr_log_info("val top-1: pretraining %.1f%%; second task from scratch %.1f%%, fine-tuned %.1f%%",
                pre, scratch, tuned);
    cr_assert(tuned >= 70 && tuned >= scratch + 20, "fine-tuned %.1f%% vs scratch %.1f%%", tuned, scratch);
}
