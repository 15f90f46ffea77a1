/* test_vram_plan.c: the memory planner (vram_plan.h) on known models, stoker-train
 * --plan as users run it, and gradient accumulation (train_accum.h) against one step on
 * the whole batch on the CPU backend. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_net.h"
#include "model.h"
#include "train_accum.h"
#include "train_plan.h"
#include "vram_plan.h"

static const OptimConfig sgd = {OPTIM_SGD, 0.9, 0, 0, 0.9, 0.999, 1e-8};

static uint64_t field_sum(const VramArenas *a) {
    return a->params + a->grads + a->optim + a->lowp + a->acts + a->saved + a->scratch +
           a->workspace;
}

Test(vram_plan, resnet18_fields_sum_to_total) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    VramArenas f = vram_arenas(&m, 32, &sgd, VRAM_FP32, 0, NULL);
    VramArenas b = vram_arenas(&m, 32, &sgd, VRAM_BF16, 0, NULL);
    cr_expect_eq(field_sum(&f), f.total);
    cr_expect_eq(field_sum(&b), b.total);
    cr_expect_eq(f.params, 4 * m.total_floats);
    cr_expect_eq(f.optim, f.grads, "SGD with momentum: one float per trainable float");
    cr_expect_eq(f.lowp, 0);
    cr_expect_gt(b.lowp, 2 * 11000000ull, "bf16 copies of ~11.2 M conv/linear weights");
    cr_expect_eq(2 * b.acts, f.acts, "bf16 activations take half");
    cr_expect_eq(f.workspace, VRAM_DEFAULT_WORKSPACE);
    /* resnet18 at 224, batch 32, fp32: every node's output (convs, batch norms, ReLUs,
     * adds) is ~8.4 M floats per sample, 1023 MiB; the pool keeps what backward reads
     * (conv outputs and the fused ReLUs' outputs, ~4.3 M floats per sample) plus the
     * gradients' working set, 536 MiB (vram_nodes.h) */
    cr_expect(f.acts > 500 * VRAM_MIB && f.acts < 560 * VRAM_MIB, "acts %llu", (unsigned long long)f.acts);
    cr_expect(f.acts_kept <= f.acts && f.acts_kept > 480 * VRAM_MIB, "kept %llu", (unsigned long long)f.acts_kept);
}

/* An evaluator's network: parameters, 16-bit copies without the gradient slot, a
 * forward-only pool; nothing a backward or a step needs. */
Test(vram_plan, inference_arenas_hold_no_training_state) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    for (int prec = VRAM_FP32; prec <= VRAM_FP16; prec++) {
        VramArenas t = vram_arenas(&m, 32, &sgd, (VramPrecision)prec, 0, NULL);
        VramArenas e = vram_arenas_inference(&m, 32, (VramPrecision)prec, 0, NULL);
        cr_expect_eq(field_sum(&e), e.total);
        cr_expect_eq(e.params, t.params);
        cr_expect_eq(e.grads + e.optim + e.saved + e.dw_scratch, 0);
        uint64_t copies, largest;
        vram_lowp_sizes(&m, &copies, &largest);
        cr_expect_eq(e.lowp, prec >= VRAM_BF16 ? 2 * copies : 0, "%s", vram_precision_name(prec));
        /* resnet18 b32 fp32: the training pool is 536 MiB; a forward holds the stem's two
         * 112x112x64 outputs and the input at once, 214 MiB */
        cr_expect_lt(2 * e.acts, t.acts, "%s: inference acts %llu vs training %llu",
                     vram_precision_name(prec), (unsigned long long)e.acts, (unsigned long long)t.acts);
    }
}

/* The evaluator's share: the largest batch whose peak (its own context included) fits,
 * not one more; a share too small even for batch 1 fails naming the share. */
Test(vram_plan, eval_search_fits_the_share) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    const VramPreset *p = vram_preset("gtx1050-2g");
    VramRequest r = {.m = &m, .prec = VRAM_FP32, .batch = 256, .budget = 512 * VRAM_MIB,
                     .reserve = p->reserve, .workspace = 32 * VRAM_MIB, .inference = 1};
    VramPlan plan;
    cr_assert_eq(vram_eval_search(&r, &plan, &err), 0, "%s", err.msg);
    cr_expect(plan.micro > 1 && plan.micro < 256, "batch %d", plan.micro);
    cr_expect_eq(plan.accum, 1);
    cr_expect_leq(plan.peak, r.budget);
    cr_expect_gt(vram_peak(&r, plan.micro + 1), r.budget, "batch %d + 1 would fit too", plan.micro);
    cr_expect_eq(plan.peak, plan.a.total + plan.inputs + VRAM_LIBRARY_BYTES + r.reserve);
    r.batch = 4; /* asked for less than fits: that */
    cr_assert_eq(vram_eval_search(&r, &plan, &err), 0, "%s", err.msg);
    cr_expect_eq(plan.micro, 4);
    r.budget = 300 * VRAM_MIB; /* the context and the libraries alone take 352 */
    cr_expect_eq(vram_eval_search(&r, &plan, &err), -1);
    cr_expect(strstr(err.msg, "evaluator's share is 300 MiB"), "%s", err.msg);
    r.inference = 0;
    cr_expect_eq(vram_eval_search(&r, &plan, &err), -1, "a training request is refused");
}

Test(vram_plan, peak_grows_with_micro_batch) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "mobilenet_v3_small", 3, 224, 224, 10, &err), 0, "%s", err.msg);
    VramRequest r = {.m = &m, .opt = &sgd, .prec = VRAM_BF16, .batch = 64, .budget = 1ull << 40};
    for (int b = 1; b < 64; b++) cr_expect_lt(vram_peak(&r, b), vram_peak(&r, b + 1), "at %d", b);
}

Test(vram_plan, search_picks_the_largest_that_fits) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    const VramPreset *p = vram_preset("gtx1050-2g");
    cr_assert(p);
    VramRequest r = {.m = &m, .opt = &sgd, .prec = VRAM_FP32, .batch = 256,
                     .budget = p->capacity, .reserve = p->reserve, .recompute = VRAM_RECOMPUTE_OFF};
    VramPlan plan;
    cr_assert_eq(vram_plan_search(&r, &plan, &err), 0, "%s", err.msg);
    cr_expect_eq(plan.recompute, 0);
    cr_expect_leq(plan.peak, r.budget);
    cr_expect_eq(plan.micro * plan.accum, plan.effective);
    cr_expect_geq(plan.effective, 256);
    cr_expect_lt(plan.effective - 256, plan.accum, "rounded up by less than one per step");
    int most = (256 + plan.accum - 2) / (plan.accum - 1); /* one step fewer needs this */
    cr_expect_gt(vram_peak(&r, most), r.budget, "accum - 1 steps would have fit");
    r.batch = 64; /* even splits stay exact */
    cr_assert_eq(vram_plan_search(&r, &plan, &err), 0, "%s", err.msg);
    cr_expect_eq(plan.micro * plan.accum, 64, "micro %d accum %d", plan.micro, plan.accum);
}

/* Recompute (vram_nodes.h): ON plans the smaller pool (the arenas are
 * vram_arenas_ex's); AUTO keeps the outputs when the batch fits in one pass, and
 * recomputes when that takes fewer micro-batches: efficientnet_b0 at 224 under a 2 GiB
 * card, batch 256, goes from 11 passes of 24 to 7 of 37; OFF keeps the 11. */
Test(vram_plan, recompute_before_shrinking) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "efficientnet_b0", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    const VramPreset *p = vram_preset("gtx1050-2g");
    VramRequest r = {.m = &m, .opt = &sgd, .prec = VRAM_FP32, .batch = 256,
                     .budget = p->capacity, .reserve = p->reserve};
    VramPlan autop, off, on;
    cr_assert_eq(vram_plan_search(&r, &autop, &err), 0, "%s", err.msg);
    r.recompute = VRAM_RECOMPUTE_OFF;
    cr_assert_eq(vram_plan_search(&r, &off, &err), 0, "%s", err.msg);
    r.recompute = VRAM_RECOMPUTE_ON;
    cr_assert_eq(vram_plan_search(&r, &on, &err), 0, "%s", err.msg);
    cr_expect(autop.recompute && on.recompute && !off.recompute);
    cr_expect_lt(autop.accum, off.accum, "auto %d passes, off %d", autop.accum, off.accum);
    cr_expect_eq(autop.micro, on.micro);
    cr_expect_leq(autop.peak, r.budget);
    VramArenas a = vram_arenas_ex(&m, on.micro, &sgd, VRAM_FP32, 0, NULL, 1);
    cr_expect_eq(on.a.acts, a.acts, "the recompute plan's pool");
    cr_expect_lt(a.acts, vram_arenas(&m, on.micro, &sgd, VRAM_FP32, 0, NULL).acts);
    /* a batch that fits whole keeps its outputs under auto */
    r.recompute = VRAM_RECOMPUTE_AUTO, r.batch = 8;
    cr_assert_eq(vram_plan_search(&r, &autop, &err), 0, "%s", err.msg);
    cr_expect(autop.accum == 1 && !autop.recompute, "accum %d recompute %d", autop.accum, autop.recompute);
}

Test(vram_plan, nothing_fits_says_the_numbers) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet50", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    VramRequest r = {.m = &m, .opt = &sgd, .prec = VRAM_FP32, .batch = 8,
                     .budget = 600 * VRAM_MIB, .reserve = VRAM_DEFAULT_RESERVE};
    VramPlan plan;
    cr_assert_eq(vram_plan_search(&r, &plan, &err), -1);
    cr_expect(strstr(err.msg, "does not fit: micro-batch 1 needs"), "%s", err.msg);
    cr_expect(strstr(err.msg, "budget is 600 MiB"), "%s", err.msg);
}

Test(vram_plan, sizes_parse) {
    uint64_t b;
    StkErr err;
    cr_expect_eq(vram_parse_size("2GiB", &b, &err), 0);
    cr_expect_eq(b, 2ull << 30);
    cr_expect_eq(vram_parse_size("1536MiB", &b, &err), 0);
    cr_expect_eq(b, 1536ull << 20);
    cr_expect_eq(vram_parse_size("2 furlongs", &b, &err), -1);
    cr_expect_eq(vram_parse_size("-1G", &b, &err), -1);
}

/* Runs stoker-train with args; its stdout's last line and stderr into buf. */
static int run_train(const char *args, char *last, size_t cap, char *all, size_t allcap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/stoker-train %s 2>&1", STOKER_BIN_DIR, args);
    FILE *f = popen(cmd, "r");
    cr_assert(f);
    char line[1024];
    size_t used = 0;
    last[0] = all[0] = 0;
    while (fgets(line, sizeof line, f)) {
        strncpy(last, line, cap - 1);
        last[cap - 1] = 0;
        used += (size_t)snprintf(all + used, used < allcap ? allcap - used : 0, "%s", line);
        if (used >= allcap) used = allcap - 1;
    }
    return pclose(f);
}

Test(vram_plan, plan_flag_prints_the_plan_and_exits, .timeout = 60) {
    char last[256], all[8192];
    int rc = run_train("--plan --gpu rtx3070 --model resnet18 -b 256", last, sizeof last, all, sizeof all);
    cr_assert_eq(rc, 0, "%s", all);
    int micro, accum;
    unsigned long long peak;
    cr_assert_eq(sscanf(last, "plan: micro_batch=%d accum=%d peak_mib=%llu", &micro, &accum, &peak), 3,
                 "%s", last);
    /* the same as in process with the host rules (and, in a CUDA build, the kernels') */
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0);
    const VramPreset *p = vram_preset("rtx3070");
    VramRequest r = {.m = &m, .opt = &sgd, .prec = VRAM_BF16, .batch = 256,
                     .budget = p->capacity, .reserve = p->reserve};
    VramPlan plan;
    cr_assert_eq(vram_plan_search(&r, &plan, &err), 0);
    cr_expect_eq(micro, plan.micro);
    cr_expect_eq(accum, plan.accum);
    cr_expect_eq(peak, (plan.peak + VRAM_MIB - 1) / VRAM_MIB);
    cr_expect(strstr(all, "activations"), "the table: %s", all);
    cr_expect(strstr(last, " precision=bf16"), "rtx3070's best: %s", last);
    cr_expect(strstr(last, " recompute=off"), "resnet18 256 fits rtx3070 in one pass: %s", last);
    cr_assert_eq(run_train("--plan --gpu rtx3070 --model resnet18 -b 256 --recompute on", last, sizeof last,
                           all, sizeof all), 0, "%s", all);
    cr_expect(strstr(last, " recompute=on") && strstr(all, "recomputed there instead"), "%s", all);
    cr_expect_neq(run_train("--plan --gpu rtx3070 --model resnet18 --recompute maybe", last, sizeof last,
                            all, sizeof all), 0, "%s", all);
    cr_expect(strstr(all, "bad value for --recompute: 'maybe'"), "%s", all);
    /* --cuda-graphs on|off (cuda_train.h) is accepted and leaves the plan as it is; other
     * values are refused */
    char plain[256];
    cr_assert_eq(run_train("--plan --gpu rtx3070 --model resnet18 -b 256", plain, sizeof plain, all,
                           sizeof all), 0, "%s", all);
    cr_assert_eq(run_train("--plan --gpu rtx3070 --model resnet18 -b 256 --cuda-graphs off", last, sizeof last,
                           all, sizeof all), 0, "%s", all);
    cr_expect_str_eq(last, plain);
    cr_expect_neq(run_train("--plan --gpu rtx3070 --model resnet18 --cuda-graphs maybe", last, sizeof last,
                            all, sizeof all), 0, "%s", all);
    cr_expect(strstr(all, "bad value for --cuda-graphs: 'maybe'"), "%s", all);
}

/* A preset's plan names its precision, which stoker-train then runs (train_plan.h): a
 * gtx1050-2g plan is for fp32 on any card; --precision overrides both. */
Test(vram_plan, plan_names_the_precision_it_assumes, .timeout = 60) {
    char last[256], all[8192];
    cr_assert_eq(run_train("--plan --gpu gtx1050-2g --model resnet18 -b 64", last, sizeof last, all,
                           sizeof all), 0, "%s", all);
    cr_expect(strstr(last, " precision=fp32"), "%s", last);
    cr_assert_eq(run_train("--plan --gpu h100 --model resnet18 -b 64 --precision tf32", last, sizeof last,
                           all, sizeof all), 0, "%s", all);
    cr_expect(strstr(last, " precision=tf32"), "%s", last);
}

Test(vram_plan, plan_flag_fails_when_nothing_fits, .timeout = 60) {
    char last[256], all[8192];
    int rc = run_train("--plan --vram-budget 600MiB --model resnet50 -b 64", last, sizeof last, all,
                       sizeof all);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(all, "does not fit: micro-batch 1 needs"), "%s", all);
}

Test(vram_plan, pascal_presets_refuse_bf16, .timeout = 60) {
    char last[256], all[8192];
    int rc = run_train("--plan --gpu gtx1050-4g --precision bf16 --model resnet18", last,
                       sizeof last, all, sizeof all);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(all, "fp32 only"), "%s", all);
}

/* --gpus N plans one card for its own --batch-size: the same plan as one GPU, said to be
 * per GPU (the batch is per rank, as torchvision's train.py). */
Test(vram_plan, gpus_plan_each_card_for_its_own_batch, .timeout = 60) {
    char last1[256], all1[8192], last4[256], all4[8192];
    cr_assert_eq(run_train("--plan --gpu rtx3070 --model resnet18 -b 256", last1, sizeof last1,
                           all1, sizeof all1), 0, "%s", all1);
    cr_assert_eq(run_train("--plan --gpu rtx3070 --model resnet18 -b 256 --gpus 4", last4,
                           sizeof last4, all4, sizeof all4), 0, "%s", all4);
    cr_assert_str_eq(last4, last1, "the same micro-batch and peak per card");
    cr_assert(strstr(all4, "per GPU, for each of the 4 ranks (a step trains 4 x 256 samples)"), "%s", all4);
    cr_assert(!strstr(all1, "per GPU"), "%s", all1);
}

/* The small models are made for 28-32 px inputs: without --train-crop-size they plan (and
 * train) at 28 px, not at the ImageNet models' 224 (where smallresnet's activations at
 * batch 512 exceed what one cuDNN tensor may hold). */
Test(vram_plan, small_models_default_to_28_px, .timeout = 60) {
    char last[256], all[8192];
    const char *archs[] = {"smallcnn", "smallresnet"};
    for (int i = 0; i < 2; i++) {
        char args[256];
        snprintf(args, sizeof args, "--plan --gpu h100 --precision bf16 --model %s -b 512", archs[i]);
        cr_assert_eq(run_train(args, last, sizeof last, all, sizeof all), 0, "%s", all);
        int micro, accum;
        unsigned long long peak;
        cr_assert_eq(sscanf(last, "plan: micro_batch=%d accum=%d peak_mib=%llu", &micro, &accum, &peak),
                     3, "%s", last);
        static Model m;
        StkErr err;
        cr_assert_eq(model_build(&m, archs[i], 3, 28, 28, 1000, &err), 0);
        const VramPreset *p = vram_preset("h100");
        VramRequest r = {.m = &m, .opt = &sgd, .prec = VRAM_BF16, .batch = 512,
                         .budget = p->capacity, .reserve = p->reserve};
        VramPlan plan;
        cr_assert_eq(vram_plan_search(&r, &plan, &err), 0);
        cr_expect_eq(micro, 512, "%s: %s", archs[i], last);
        cr_expect_eq(peak, (plan.peak + VRAM_MIB - 1) / VRAM_MIB, "%s at 28 px: %s", archs[i], last);
    }
}

/* An allocation that fails anyway (train_plan_oom_hint): the free memory, a --vram-budget
 * that plans for it (free + the default context reserve) and half the micro-batch; a run
 * without a card is told it had no plan. */
Test(train_plan, out_of_memory_hint_names_what_to_change) {
    char hint[STK_ERR_LEN];
    TrainSplit planned = {.micro = 86, .accum = 3, .planned = 1};
    TrainConfig none = {0}, gtx = {.gpu = "gtx1050-2g"};
    train_plan_oom_hint(&none, &planned, 1000ull << 20, hint, sizeof hint);
    cr_assert(strstr(hint, "1000 MiB free now"), "%s", hint);
    cr_assert(strstr(hint, "--vram-budget 1384MiB"), "%s", hint);
    cr_assert(strstr(hint, "--micro-batch 43"), "%s", hint);
    cr_assert(!strstr(hint, "without a card"), "%s", hint);
    /* with --gpu, the preset's reserve: what the planner will take for that budget */
    train_plan_oom_hint(&gtx, &planned, 1000ull << 20, hint, sizeof hint);
    char want[64];
    snprintf(want, sizeof want, "--vram-budget %lluMiB",
             (unsigned long long)(1000 + (vram_preset("gtx1050-2g")->reserve >> 20)));
    cr_assert(strstr(hint, want), "%s (%s)", hint, want);
    TrainSplit bare = {.micro = 1, .accum = 1};
    train_plan_oom_hint(&none, &bare, 0, hint, sizeof hint);
    cr_assert(strstr(hint, "without a card: no --gpu or --vram-budget"), "%s", hint);
    cr_assert(strstr(hint, "--micro-batch 1"), "%s", hint);
}
