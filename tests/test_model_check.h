/* test_model_check.h: a whole model on the CPU backend against torchvision, shared by
 * the model suites: tests/fixtures/make_model_fixtures.py writes the same model's weights,
 * input and one training-mode forward and backward (in float32, and optionally again in
 * float64 from the same float32 weights), and these run stoker on the same weights and
 * input and measure the differences. */
#ifndef TEST_MODEL_CHECK_H
#define TEST_MODEL_CHECK_H

#include <stdint.h>

/* Largest differences of one computation against a reference, each relative to the
 * reference tensor's largest |value| (gradients differ in scale from tensor to tensor). */
typedef struct ModelDiff {
    double logits;      /* over batch x classes */
    double logits_abs;  /* the same, absolute */
    double loss;        /* absolute */
    double grads;       /* worst trainable tensor's gradient */
    double stats;       /* worst running statistic after the forward */
    char worst[128];    /* the name of the worst gradient tensor */
} ModelDiff;

/* What mc_check measured: stoker against torch-f32, and when f64 was asked for, stoker and
 * torch-f32 each against torch-f64, and per gradient tensor how much farther from f64
 * stoker is than torch-f32: ratio = stoker's diff / max(torch-f32's largest diff in the
 * tensor's block, MC_FLOOR) (test_model_check.c says why the block's). */
typedef struct ModelCheck {
    ModelDiff vs_f32, vs_f64, torch_f32_vs_f64;
    double ratio;             /* the largest over gradient tensors */
    char ratio_worst[160];    /* its tensor, with stoker's and torch-f32's differences */
} ModelCheck;

/* Relative differences below this are float32 rounding in any tensor (~100 ulps):
 * the ratio does not reward torch-f32 for being closer than that. */
#define MC_FLOOR 1e-4

/* How much farther from f64 than torch-f32 stoker may be in any measure: float32 rounding
 * in a different order scatters both around f64 (measured up to 1.5x), a bug moves a
 * result by far more than the rounding (a wrong term is off by 1e-2 or more). */
#define MC_RATIO 3.0

/* Asserts every measure of c (from mc_check with f64) as close to f64 as torch-f32 is,
 * within MC_RATIO: logits and running statistics (each floored at 1e-6, where both are at
 * rounding level) and every gradient tensor (c->ratio); the loss within what the logits'
 * difference allows. */
void mc_assert_like_torch(const ModelCheck *c, const char *arch);

/* Asserts arch's parameter table is torchvision's state_dict at 1000 classes, name for
 * name and shape for shape in order (num_batches_tracked after each batch norm's
 * running_var), as make_model_fixtures.py --names prints it, and that the trainable
 * elements number `params` (torchvision's published count). */
void mc_assert_state_dict(const char *arch, uint64_t params);

/* Builds arch (k classes) for batch n of 3 x size x size, makes the fixture(s), loads the
 * fixture's weights (asserting every state_dict name and size is ours), sets every dropout
 * and stochastic-depth probability to 0 as the script does, runs one training-mode forward
 * and backward (label smoothing 0.1) and returns the differences, logging them. Skips the
 * test when /usr/bin/python3 has no torchvision. */
ModelCheck mc_check(const char *arch, int k, int size, int n, int f64);

#endif
