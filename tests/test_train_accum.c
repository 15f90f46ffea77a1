/* test_train_accum.c: gradient accumulation (train_accum.h) on the CPU backend: K = 4
 * micro-batches of 2 then one SGD step give the weights one step on the batch of 8 gives,
 * on a model without batch norm (where the two are the same function). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cpu_net.h"
#include "model.h"
#include "test_nobn.h"
#include "stk_rng.h"
#include "train_accum.h"

enum { B = 8, M = 2, KSTEPS = B / M, C = 3, S = 8, CLASSES = 5 };

/* the batch-norm-free model of test_nobn.h */
static void build(Model *m) { cr_assert_eq(test_nobn_build(m, C, S, CLASSES), 0, "%s", m->err.msg); }

Test(train_accum, four_micro_batches_equal_one_batch) {
    static Model m;
    build(&m);
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0.9, 0.999, 1e-8};
    static CpuNet big, small;
    StkErr err;
    cr_assert_eq(cpu_net_init(&big, &m, B, &opt, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_init(&small, &m, M, &opt, &err), 0, "%s", err.msg);
    model_init_params(&m, big.params, 3);
    memcpy(small.params, big.params, m.total_floats * 4);
    size_t per = (size_t)C * S * S;
    float *in = cpu_net_input(&big);
    for (size_t i = 0; i < B * per; i++) in[i] = (float)sin(0.37 * (double)i) * 1.5f;
    int32_t labels[B] = {0, 1, 2, 3, 4, 0, 2, 4};
    const float *logits;
    double loss, micro_loss, mean_loss = 0;
    cr_assert_eq(cpu_net_forward(&big, 1, 1, &logits, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_backward(&big, labels, 0.1, 1, &loss, &err), 0, "%s", err.msg);
    cpu_net_step(&big, 0.1, 1e-4, 0);

    TrainAccum acc;
    cr_assert_eq(train_accum_init(&acc, KSTEPS, m.trainable_floats, &err), 0, "%s", err.msg);
    for (int k = 0; k < KSTEPS; k++) {
        memcpy(cpu_net_input(&small), in + (size_t)k * M * per, M * per * 4);
        cr_assert_eq(cpu_net_forward(&small, 1, 1, &logits, &err), 0, "%s", err.msg);
        cr_assert_eq(cpu_net_backward(&small, labels + k * M, 0.1, 1, &micro_loss, &err), 0);
        mean_loss += micro_loss / KSTEPS;
        int ready = train_accum_add(&acc, small.grads);
        cr_assert_eq(ready, k == KSTEPS - 1, "step only after the last micro-batch");
        if (ready) cpu_net_step(&small, 0.1, 1e-4, 0);
    }
    cr_expect_eq(small.steps, 1);
    cr_expect(fabs(mean_loss - loss) <= 1e-6 * fabs(loss), "loss %.9g vs %.9g", mean_loss, loss);
    double worst = 0;
    for (uint64_t i = 0; i < m.total_floats; i++) {
        double a = big.params[i], b = small.params[i];
        double rel = fabs(a - b) / fmax(fabs(a), 1e-3);
        worst = rel > worst ? rel : worst;
    }
    printf("train_accum: largest relative weight difference %.3g\n", worst);
    cr_expect_leq(worst, 1e-6, "largest relative difference %.3g", worst);
    train_accum_free(&acc);
    cpu_net_free(&big), cpu_net_free(&small);
}

Test(train_accum, one_step_needs_no_sum) {
    TrainAccum acc;
    StkErr err;
    float g[3] = {1, 2, 3};
    cr_assert_eq(train_accum_init(&acc, 1, 3, &err), 0);
    cr_expect_null(acc.sum);
    cr_expect_eq(train_accum_add(&acc, g), 1);
    cr_expect_eq(g[1], 2.0f);
    cr_expect_eq(train_accum_init(&acc, 0, 3, &err), -1);
}
