/* test_cpu_shapes.c: the CPU layers reject bad shapes and settings with a message that
 * names the function and the offending values, and write nothing when they do. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>

#include "cpu_act.h"
#include "cpu_bn.h"
#include "cpu_linear.h"
#include "cpu_loss.h"
#include "cpu_pool.h"

static float zeros[256], out[256];

/* Asserts rc == -1, that err holds every one of the NULL-terminated fragments and that
 * nothing was written to out. */
static void rejects(int rc, const StkErr *err, const char *first, ...) {
    cr_assert_eq(rc, -1, "accepted; expected an error with \"%s\"", first);
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        cr_assert(strstr(err->msg, s), "message \"%s\" lacks \"%s\"", err->msg, s);
    va_end(ap);
    for (int i = 0; i < 256; i++) cr_assert_eq(out[i], 0.0f, "a rejected call wrote out[%d]", i);
}

Test(cpu_shapes, bn_rejects_channel_mismatch) {
    int64_t t = 0;
    CpuBn bn = {4, 1e-5, 0.1, zeros, zeros, zeros, zeros, &t};
    StkErr err;
    rejects(cpu_bn_forward_train(&bn, (Shape4){2, 3, 2, 2}, zeros, out, out, out, &err), &err,
            "cpu_bn_forward_train", "2x3x2x2 has 3 channels, the layer has 4", NULL);
    rejects(cpu_bn_forward_eval(&bn, (Shape4){2, 5, 1, 1}, zeros, out, &err), &err,
            "cpu_bn_forward_eval", "has 5 channels", NULL);
    rejects(cpu_bn_backward_train(&bn, (Shape4){2, 3, 2, 2}, zeros, zeros, zeros, zeros, out, out,
                                  out, &err), &err, "cpu_bn_backward_train", NULL);
    rejects(cpu_bn_backward_eval(&bn, (Shape4){0, 4, 2, 2}, zeros, zeros, out, out, out, &err),
            &err, "cpu_bn_backward_eval", "not positive", NULL);
    cr_assert_eq(t, 0, "a rejected forward counted a batch");
}

Test(cpu_shapes, bn_rejects_one_value_per_channel_in_training) {
    int64_t t = 0;
    CpuBn bn = {3, 1e-5, 0.1, zeros, zeros, zeros, zeros, &t};
    StkErr err;
    rejects(cpu_bn_forward_train(&bn, (Shape4){1, 3, 1, 1}, zeros, out, out, out, &err), &err,
            "more than 1 value per channel when training", "1x3x1x1", NULL);
    cr_assert_eq(cpu_bn_forward_eval(&bn, (Shape4){1, 3, 1, 1}, zeros, out, &err), 0, "%s",
                 err.msg);
}

Test(cpu_shapes, maxpool_rejects_bad_geometry) {
    Shape4 in = {1, 1, 8, 8}, os;
    StkErr err;
    rejects(cpu_maxpool_out_shape(&(CpuMaxPool){3, 3, 2, 2, 2, 1}, in, &os, &err), &err,
            "padding 2x1 must be between 0 and half of kernel 3x3", NULL);
    rejects(cpu_maxpool_out_shape(&(CpuMaxPool){3, 3, 0, 2, 1, 1}, in, &os, &err), &err,
            "stride 0x2 must be positive", NULL);
    rejects(cpu_maxpool_out_shape(&(CpuMaxPool){11, 3, 1, 1, 0, 0}, in, &os, &err), &err,
            "kernel 11x3 larger than padded input 1x1x8x8", NULL);
}

Test(cpu_shapes, maxpool_rejects_wrong_output_shape) {
    CpuMaxPool p = {3, 3, 2, 2, 1, 1};
    Shape4 in = {1, 2, 7, 7};
    int32_t idx[64];
    StkErr err;
    rejects(cpu_maxpool_forward(&p, in, zeros, (Shape4){1, 2, 3, 4}, out, idx, &err), &err,
            "cpu_maxpool_forward", "output 1x2x3x4 should be 1x2x4x4", NULL);
    rejects(cpu_maxpool_backward(&p, in, (Shape4){1, 1, 4, 4}, zeros, idx, out, &err), &err,
            "cpu_maxpool_backward", "should be 1x2x4x4", NULL);
}

Test(cpu_shapes, avgpool_rejects_channel_change_and_empty_output) {
    StkErr err;
    rejects(cpu_avgpool_adaptive_forward((Shape4){2, 3, 4, 4}, zeros, (Shape4){2, 4, 1, 1}, out,
                                         &err),
            &err, "cpu_avgpool_adaptive_forward", "must keep the input's 2x3x4x4", NULL);
    rejects(cpu_avgpool_adaptive_backward((Shape4){2, 3, 4, 4}, (Shape4){2, 3, 0, 1}, zeros, out,
                                          &err),
            &err, "cpu_avgpool_adaptive_backward", "output shape 2x3x0x1", NULL);
}

Test(cpu_shapes, linear_rejects_feature_mismatch) {
    CpuLinear l = {16, 10};
    StkErr err;
    rejects(cpu_linear_forward(&l, (Shape4){4, 3, 2, 2}, zeros, zeros, zeros, out, &err), &err,
            "cpu_linear_forward", "4x3x2x2 has 12 features per sample, the layer takes 16", NULL);
    rejects(cpu_linear_backward(&l, (Shape4){4, 17, 1, 1}, zeros, zeros, zeros, out, out, out,
                                &err),
            &err, "cpu_linear_backward", "17 features", NULL);
    rejects(cpu_linear_forward(&(CpuLinear){16, 0}, (Shape4){1, 16, 1, 1}, zeros, zeros, NULL,
                               out, &err),
            &err, "layer 16 -> 0 features must be positive", NULL);
}

Test(cpu_shapes, cross_entropy_rejects_bad_labels_and_smoothing) {
    int32_t labels[3] = {0, 5, 2};
    double loss;
    StkErr err;
    rejects(cpu_ce_loss(3, 5, zeros, labels, 0.0, &loss, out, &err), &err,
            "cpu_ce_loss: label 5 of row 1 is outside [0, 5)", NULL);
    labels[1] = -100; /* PyTorch's ignore_index is not supported */
    rejects(cpu_ce_loss(3, 5, zeros, labels, 0.0, &loss, out, &err), &err, "label -100", NULL);
    labels[1] = 1;
    rejects(cpu_ce_loss(3, 5, zeros, labels, 1.5, &loss, out, &err), &err,
            "label smoothing 1.5 is outside [0, 1]", NULL);
    rejects(cpu_ce_loss(0, 5, zeros, labels, 0.0, &loss, out, &err), &err,
            "logits 0x5 must have positive sizes", NULL);
    int t1, t5;
    labels[2] = 7;
    rejects(cpu_topk_correct(3, 5, zeros, labels, &t1, &t5, &err), &err, "cpu_topk_correct",
            "label 7 of row 2", NULL);
}

Test(cpu_shapes, elementwise_ops_reject_bad_settings) {
    StkErr err;
    rejects(cpu_act_forward((CpuActKind)17, 4, zeros, out, &err), &err,
            "cpu_act_forward: unknown activation 17", NULL);
    rejects(cpu_act_backward(CPU_ACT_COUNT, 4, zeros, zeros, out, &err), &err,
            "cpu_act_backward: unknown activation", NULL);
    rejects(cpu_dropout_forward(4, 1.5, 1, 0, zeros, out, &err), &err,
            "cpu_dropout_forward: p = 1.5 is outside [0, 1]", NULL);
    rejects(cpu_dropout_backward(4, -0.1, 0, 0, zeros, out, &err), &err, "cpu_dropout_backward",
            NULL);
    rejects(cpu_drop_path_forward((Shape4){2, 0, 1, 1}, 0.1, 1, 0, zeros, out, &err), &err,
            "cpu_drop_path_forward: shape 2x0x1x1", NULL);
    rejects(cpu_scale_forward((Shape4){2, 3, -1, 1}, zeros, zeros, out, &err), &err,
            "cpu_scale_forward: shape 2x3x-1x1", NULL);
    rejects(cpu_scale_backward((Shape4){0, 3, 1, 1}, zeros, zeros, zeros, out, out, &err), &err,
            "cpu_scale_backward", NULL);
}
