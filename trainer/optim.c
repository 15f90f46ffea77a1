/* optim.c: SGD and AdamW with torch.optim's update order and float32 arithmetic, so the
 * results agree with PyTorch to rounding (test_optim.c checks it on fixtures). */
#include "optim.h"

#include <math.h>

int optim_state_per_element(const OptimConfig *c) {
    if (c->kind == OPTIM_ADAMW) return 2;
    return c->momentum != 0 ? 1 : 0;
}

void optim_sgd_step(const OptimConfig *c, float *p, const float *g, float *buf, size_t n,
                    double lr, double wd, int first_step) {
    const float mom = (float)c->momentum, damp = (float)(1 - c->dampening);
    const float flr = (float)lr, fwd = (float)wd;
    for (size_t i = 0; i < n; i++) {
        float d = g[i];
        if (wd != 0) d += fwd * p[i];
        if (mom != 0) {
            buf[i] = first_step ? d : mom * buf[i] + damp * d;
            d = c->nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= flr * d;
    }
}

void optim_adamw_step(const OptimConfig *c, float *p, const float *g, float *state, size_t n,
                      double lr, double wd, uint64_t step) {
    float *m = state, *v = state + n;
    const float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    /* PyTorch computes these in Python floats (double) and uses them as scalars */
    const double bc1 = 1 - pow(c->beta1, (double)step), bc2 = 1 - pow(c->beta2, (double)step);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = (float)(1 - lr * wd);
    for (size_t i = 0; i < n; i++) {
        p[i] *= decay;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * (m[i] / denom);
    }
}
