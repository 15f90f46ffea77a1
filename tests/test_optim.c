/* test_optim.c: SGD (momentum, Nesterov, weight decay), AdamW and the learning-rate
 * schedules against torch.optim (fixtures: tests/fixtures/make_optim_fixtures.py). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "lr_sched.h"

static FILE *open_fixture(void) {
    FILE *f = fopen(STOKER_TEST_DATA "/optim.bin", "rb");
    cr_assert(f, "cannot open optim.bin");
    char magic[4];
    uint32_t version;
    cr_assert(fread(magic, 4, 1, f) == 1 && !memcmp(magic, "STKO", 4));
    cr_assert(fread(&version, 4, 1, f) == 1 && version == 1);
    return f;
}

#define READ(f, p, n) cr_assert(fread((p), sizeof *(p), (n), (f)) == (size_t)(n), "short fixture")

Test(optim, steps_match_torch_optim) {
    FILE *f = open_fixture();
    uint32_t count;
    READ(f, &count, 1);
    for (uint32_t c = 0; c < count; c++) {
        uint32_t kind, nesterov, n, steps;
        double d[7]; /* lr momentum dampening wd beta1 beta2 eps */
        READ(f, &kind, 1);
        READ(f, d, 7);
        READ(f, &nesterov, 1);
        READ(f, &n, 1);
        READ(f, &steps, 1);
        cr_assert(n <= 1024 && steps <= 16);
        OptimConfig cfg = {kind == 1 ? OPTIM_ADAMW : OPTIM_SGD, d[1], d[2], (int)nesterov,
                           d[4], d[5], d[6]};
        float p[1024], g[1024], want[1024], state[2048] = {0};
        READ(f, p, n);
        double worst = 0;
        for (uint32_t s = 0; s < steps; s++) {
            READ(f, g, n);
            READ(f, want, n);
            if (kind == 1) optim_adamw_step(&cfg, p, g, state, n, d[0], d[3], s + 1);
            else optim_sgd_step(&cfg, p, g, state, n, d[0], d[3], s == 0);
            for (uint32_t i = 0; i < n; i++) {
                double diff = fabs((double)p[i] - want[i]);
                /* float32 rounding of a few operations per step, accumulated over steps */
                cr_assert(diff <= 2e-6 * (1 + fabs(want[i])), "case %u step %u [%u]: %.9g vs %.9g",
                          c, s, i, p[i], want[i]);
                if (diff > worst) worst = diff;
            }
        }
        cr_log_info("optimizer case %u (%s): largest |diff| %.3g", c, kind ? "AdamW" : "SGD", worst);
    }
    fclose(f);
}

Test(optim, schedules_match_torch_lr_scheduler) {
    FILE *f = open_fixture();
    uint32_t count;
    READ(f, &count, 1); /* skip the optimizer cases */
    for (uint32_t c = 0; c < count; c++) {
        uint32_t hdr[4]; /* kind; nesterov, n, steps */
        double d[7];
        READ(f, hdr, 1);
        READ(f, d, 7);
        READ(f, hdr + 1, 3);
        uint32_t n = hdr[2], steps = hdr[3];
        cr_assert_eq(fseek(f, (long)(n * 4 + (size_t)steps * 2 * n * 4), SEEK_CUR), 0);
    }
    READ(f, &count, 1);
    for (uint32_t c = 0; c < count; c++) {
        uint32_t kind, epochs, step_size, warm, wmethod;
        double lr, gamma, lr_min, decay;
        READ(f, &kind, 1); READ(f, &lr, 1); READ(f, &epochs, 1); READ(f, &step_size, 1);
        READ(f, &gamma, 1); READ(f, &lr_min, 1); READ(f, &warm, 1); READ(f, &wmethod, 1);
        READ(f, &decay, 1);
        SchedConfig s = {(SchedKind)kind, lr, (int)epochs, (int)step_size, gamma, lr_min,
                         (int)warm, (WarmupKind)wmethod, decay};
        for (uint32_t e = 0; e < epochs; e++) {
            double want;
            READ(f, &want, 1);
            double got = sched_lr(&s, (int)e);
            cr_assert(fabs(got - want) <= 1e-12 + 1e-9 * want, "schedule %u epoch %u: %.12g vs %.12g",
                      c, e, got, want);
        }
    }
    fclose(f);
}

Test(optim, state_sizes) {
    OptimConfig sgd = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0}, plain = {OPTIM_SGD, 0, 0, 0, 0, 0, 0};
    OptimConfig adam = {OPTIM_ADAMW, 0, 0, 0, 0.9, 0.999, 1e-8};
    cr_assert_eq(optim_state_per_element(&sgd), 1);
    cr_assert_eq(optim_state_per_element(&plain), 0);
    cr_assert_eq(optim_state_per_element(&adam), 2);
}
