/* lr_sched.c: closed forms of torch.optim.lr_scheduler's StepLR, CosineAnnealingLR,
 * ExponentialLR, LinearLR and ConstantLR as SequentialLR chains them. */
#include "lr_sched.h"

#include <math.h>

SchedConfig sched_default(void) {
    return (SchedConfig){.kind = SCHED_STEP, .lr = 0.1, .epochs = 90, .step_size = 30,
                         .gamma = 0.1, .lr_min = 0, .warmup_epochs = 0,
                         .warmup = WARMUP_LINEAR, .warmup_decay = 0.01};
}

static double main_lr(const SchedConfig *c, double e) {
    switch (c->kind) {
    case SCHED_STEP: return c->lr * pow(c->gamma, floor(e / c->step_size));
    case SCHED_EXPONENTIAL: return c->lr * pow(c->gamma, e);
    case SCHED_COSINE: {
        int t_max = c->epochs - c->warmup_epochs;
        return c->lr_min + (c->lr - c->lr_min) * (1 + cos(M_PI * e / t_max)) / 2;
    }
    case SCHED_CONSTANT: break;
    }
    return c->lr;
}

double sched_lr(const SchedConfig *c, int epoch) { return sched_lr_at(c, epoch); }

double sched_lr_at(const SchedConfig *c, double epoch) {
    int w = c->warmup_epochs;
    if (w > 0 && epoch < w) {
        if (c->warmup == WARMUP_CONSTANT) return c->lr * c->warmup_decay;
        return c->lr * (c->warmup_decay + (1 - c->warmup_decay) * epoch / w);
    }
    return main_lr(c, epoch - w);
}
