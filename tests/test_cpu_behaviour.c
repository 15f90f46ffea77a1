/* test_cpu_behaviour.c: what the CPU layers promise beyond matching PyTorch's numbers:
 * masks that are functions of the key, identity in eval, in-place use where the headers
 * allow it, determinism that does not depend on thread counts, top-k ties and NaN. */
#include <cblas.h> /* openblas_set_num_threads */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "cpu_act.h"
#include "cpu_bn.h"
#include "cpu_linear.h"
#include "cpu_loss.h"
#include "test_cpu_fixture.h"

#define N 4096
static float x[N], y[N], z[N], g[N];

Test(cpu_behaviour, dropout_mask_is_a_function_of_the_key) {
    StkErr err;
    fx_fill(x, N, 1, 0.5f, 1.5f); /* never zero */
    cr_assert_eq(cpu_dropout_forward(N, 0.25, 1, 7, x, y, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_dropout_forward(N, 0.25, 1, 7, x, z, &err), 0);
    cr_assert(!memcmp(y, z, sizeof y), "same key, different masks");
    cr_assert_eq(cpu_dropout_forward(N, 0.25, 1, 8, x, z, &err), 0);
    size_t differ = 0, kept = 0;
    for (int i = 0; i < N; i++) differ += (y[i] == 0) != (z[i] == 0), kept += y[i] != 0;
    /* two independent masks disagree on 2 p (1 - p) = 37.5% of elements */
    cr_assert(differ > N / 4 && differ < N / 2, "keys 7 and 8 differ on %zu of %d", differ, N);
    cr_assert(kept > N * 0.70 && kept < N * 0.80, "kept %zu of %d at p = 0.25", kept, N);
    /* in place gives the same result */
    memcpy(z, x, sizeof z);
    cr_assert_eq(cpu_dropout_forward(N, 0.25, 1, 7, z, z, &err), 0);
    cr_assert(!memcmp(y, z, sizeof y), "in-place dropout differs");
}

Test(cpu_behaviour, dropout_backward_uses_the_forward_mask) {
    StkErr err;
    fx_fill(x, N, 2, 0.5f, 1.5f);
    cr_assert_eq(cpu_dropout_forward(N, 0.5, 1, 3, x, y, &err), 0);
    cr_assert_eq(cpu_dropout_backward(N, 0.5, 1, 3, x, z, &err), 0);
    cr_assert(!memcmp(y, z, sizeof y), "backward's mask differs from forward's");
    for (int i = 0; i < N; i++) cr_assert(y[i] == 0.0f || y[i] == x[i] * 2.0f);
}

Test(cpu_behaviour, dropout_is_identity_in_eval_and_zero_at_p_one) {
    StkErr err;
    fx_fill(x, N, 3, -1, 1);
    cr_assert_eq(cpu_dropout_forward(N, 0.5, 0, 3, x, y, &err), 0);
    cr_assert(!memcmp(x, y, sizeof y), "eval dropout changed x");
    cr_assert_eq(cpu_dropout_backward(N, 0.0, 1, 3, x, y, &err), 0);
    cr_assert(!memcmp(x, y, sizeof y), "p = 0 changed dy");
    cr_assert_eq(cpu_dropout_forward(N, 1.0, 1, 3, x, y, &err), 0);
    for (int i = 0; i < N; i++) cr_assert_eq(y[i], 0.0f, "p = 1 kept element %d", i);
}

Test(cpu_behaviour, drop_path_drops_whole_samples) {
    Shape4 s = {64, 4, 4, 4}; /* 64 samples of 64 values */
    StkErr err;
    fx_fill(x, N, 4, 0.5f, 1.5f);
    cr_assert_eq(cpu_drop_path_forward(s, 0.5, 1, 11, x, y, &err), 0, "%s", err.msg);
    int dropped = 0;
    for (int n = 0; n < 64; n++) {
        int zeros = 0;
        for (int i = 0; i < 64; i++) zeros += y[n * 64 + i] == 0.0f;
        cr_assert(zeros == 0 || zeros == 64, "sample %d partly dropped (%d zeros)", n, zeros);
        dropped += zeros == 64;
        if (!zeros) cr_assert_eq(y[n * 64], x[n * 64] * 2.0f);
    }
    cr_assert(dropped > 12 && dropped < 52, "%d of 64 samples dropped at p = 0.5", dropped);
    cr_assert_eq(cpu_drop_path_forward(s, 0.5, 0, 11, x, y, &err), 0);
    cr_assert(!memcmp(x, y, sizeof y), "eval stochastic depth changed x");
}

Test(cpu_behaviour, relu_backward_accepts_the_output_in_place) {
    StkErr err;
    for (CpuActKind k = CPU_ACT_RELU; k <= CPU_ACT_RELU6; k++) {
        fx_fill(x, N, 5, -8, 8);
        fx_fill(g, N, 6, -1, 1);
        cr_assert_eq(cpu_act_backward(k, N, x, g, z, &err), 0);
        cr_assert_eq(cpu_act_forward(k, N, x, x, &err), 0); /* in place: x now holds y */
        cr_assert_eq(cpu_act_backward(k, N, x, g, g, &err), 0);
        cr_assert(!memcmp(g, z, sizeof z), "%s: backward from y differs", cpu_act_name(k));
    }
}

Test(cpu_behaviour, bn_backward_in_place_and_repeatable) {
    Shape4 s = {4, 8, 8, 16}; /* 4096 values */
    float w[8], b[8], rm[8] = {0}, rv[8], sm[8], si[8], dw[8], db[8], dw2[8], db2[8];
    for (int c = 0; c < 8; c++) w[c] = 1.0f + 0.1f * c, b[c] = 0.1f * c, rv[c] = 1.0f;
    CpuBn bn = {8, 1e-5, 0.1, w, b, rm, rv, NULL};
    StkErr err;
    fx_fill(x, N, 7, -3, 5);
    fx_fill(g, N, 8, -1, 1);
    cr_assert_eq(cpu_bn_forward_train(&bn, s, x, y, sm, si, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_bn_backward_train(&bn, s, x, g, sm, si, z, dw, db, &err), 0);
    cr_assert_eq(cpu_bn_backward_train(&bn, s, x, g, sm, si, g, dw2, db2, &err), 0);
    cr_assert(!memcmp(g, z, sizeof z), "in-place dx differs");
    cr_assert(!memcmp(dw, dw2, sizeof dw) && !memcmp(db, db2, sizeof db), "sums differ");
    /* the output is normalised: per channel mean 0 (within float rounding) */
    for (int c = 0; c < 8; c++) {
        double m = 0;
        for (int n = 0; n < 4; n++)
            for (int i = 0; i < 128; i++) m += (y[(n * 8 + c) * 128 + i] - b[c]) / w[c];
        cr_assert(fabs(m / 512) < 1e-5, "channel %d mean %g", c, m / 512);
    }
}

/* OpenBLAS does not promise the same bits for different thread counts (on an AMD EPYC
 * its Haswell kernels differ by ~1e-6 between 1 and 2 threads), so what the CPU backend's
 * --deterministic mode relies on is repeatability at a fixed thread count; across thread
 * counts the products agree within float rounding. */
Test(cpu_behaviour, linear_repeats_bit_for_bit_at_a_thread_count) {
    static float xb[64 * 256], wb[100 * 256], ya[64 * 100], yb[64 * 100], yc[64 * 100],
        da[100 * 256], dbb[100 * 256], dc[100 * 256];
    CpuLinear l = {256, 100};
    Shape4 s = {64, 256, 1, 1};
    StkErr err;
    fx_fill(xb, 64 * 256, 9, -1, 1);
    fx_fill(wb, 100 * 256, 10, -1, 1);
    openblas_set_num_threads(4);
    cr_assert_eq(cpu_linear_forward(&l, s, xb, wb, NULL, ya, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_linear_backward(&l, s, xb, wb, ya, NULL, da, NULL, &err), 0);
    cr_assert_eq(cpu_linear_forward(&l, s, xb, wb, NULL, yb, &err), 0);
    cr_assert_eq(cpu_linear_backward(&l, s, xb, wb, yb, NULL, dbb, NULL, &err), 0);
    cr_assert(!memcmp(ya, yb, sizeof ya), "forward differs between two runs at 4 threads");
    cr_assert(!memcmp(da, dbb, sizeof da), "dw differs between two runs at 4 threads");
    openblas_set_num_threads(1);
    cr_assert_eq(cpu_linear_forward(&l, s, xb, wb, NULL, yc, &err), 0);
    cr_assert_eq(cpu_linear_backward(&l, s, xb, wb, ya, NULL, dc, NULL, &err), 0);
    for (int i = 0; i < 64 * 100; i++)
        cr_assert(fabsf(ya[i] - yc[i]) <= 1e-5f * (1 + fabsf(ya[i])), "y[%d] %g vs %g", i, ya[i], yc[i]);
    for (int i = 0; i < 100 * 256; i++)
        cr_assert(fabsf(da[i] - dc[i]) <= 1e-4f * (1 + fabsf(da[i])), "dw[%d] %g vs %g", i, da[i], dc[i]);
}

Test(cpu_behaviour, topk_ranks_ties_by_index_and_nan_first) {
    /* row 0: label 2 ties with class 0 (outranks it) -> top-5 not top-1;
     * row 1: label 0 ties with class 3 (lower index wins) -> top-1;
     * row 2: NaN in class 4 ranks first, label 1 is the largest number -> top-5 only;
     * row 3: all NaN, label 6: classes 0..5 outrank it -> neither. */
    const float n = NAN;
    float logits[4 * 7] = {5, 1, 5, 0, 0, 0, 0, /**/ 3, 1, 2, 3, 0, 0, 0,
                           /**/ 0, 9, 1, 2, n, 3, 4, /**/ n, n, n, n, n, n, n};
    int32_t labels[4] = {2, 0, 1, 6};
    int top1, top5;
    StkErr err;
    cr_assert_eq(cpu_topk_correct(4, 7, logits, labels, &top1, &top5, &err), 0, "%s", err.msg);
    cr_assert_eq(top1, 1);
    cr_assert_eq(top5, 3);
}

Test(cpu_behaviour, cross_entropy_is_stable_for_huge_logits) {
    float logits[2 * 3] = {1e30f, -1e30f, 0, -3e38f, 3e38f, 3e38f};
    int32_t labels[2] = {0, 1};
    float d[6];
    double loss;
    StkErr err;
    cr_assert_eq(cpu_ce_loss(2, 3, logits, labels, 0.0, &loss, d, &err), 0, "%s", err.msg);
    /* row 0 is certain (loss 0), row 1 splits between two equal classes (log 2) */
    cr_assert(fabs(loss - log(2.0) / 2) < 1e-12, "loss %.17g", loss);
    for (int i = 0; i < 6; i++) cr_assert(isfinite(d[i]), "dlogits[%d] = %g", i, d[i]);
    cr_assert(fabs(d[4] - (0.5 - 1.0) / 2) < 1e-7 && fabs(d[5] - 0.5 / 2) < 1e-7);
}
