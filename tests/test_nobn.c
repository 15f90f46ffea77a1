/* test_nobn.c: the shared batch-norm-free test model (see test_nobn.h). */
#include "test_nobn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int test_nobn_build(Model *m, int c, int s, int classes) {
    memset(m, 0, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "nobn");
    m->input = (Shape4){1, c, s, s};
    m->num_classes = classes;
    m->bn_eps = 1e-5, m->bn_momentum = 0.1;
    int x = model_add_act(m, model_add_conv(m, "c1", 0, 6, 3, 1, 1, 1, 1), CPU_ACT_RELU);
    x = model_add_maxpool(m, x, 2, 2, 0);
    x = model_add_act(m, model_add_conv(m, "c2", x, 8, 3, 1, 1, 1, 1), CPU_ACT_RELU);
    model_add_linear(m, "fc", model_add_avgpool(m, x), classes);
    if (m->failed) return -1;
    model_layout(m);
    return 0;
}

void test_nobn_sample(size_t i, int c, int s, int classes, float *x, int32_t *label) {
    for (size_t k = 0; k < (size_t)c * s * s; k++) x[k] = (float)sin(0.37 * (double)(i * 977 + k)) * 1.5f;
    *label = (int32_t)(i * 7 % (size_t)classes);
}
